"""Ship a finished run's generator with its first-party plugin, with a measured model card.

    GANFRAME_DATA=/path/to/datasets python bench/ship_pretrained.py dcgan-mnist RUN_FOLDER
    GANFRAME_DATA=/path/to/datasets python bench/ship_pretrained.py lstm-poet RUN_FOLDER
    GANFRAME_DATA=/path/to/datasets python bench/ship_pretrained.py dcgan-mnist-cond RUN_FOLDER

What it does, in order (about a minute for a DCGAN, a few for the poet, on 2 CPU cores):

1. exports ``RUN_FOLDER/checkpoints/last.safetensors`` twice, fp32 and fp16
   (``ganframe export``, EMA weights where the run kept them);
2. compares their sampling quality on the same draws: ``mnist-fid`` on ``--compare`` images
   (2,000) for image models, the recipe's ``bleu`` metric (T = 0.825, 1,000 poems) for the
   poet; fp16 is shipped when it is as good (FID within 2 % + 0.1, the same classes covered;
   BLEU-3 within 0.005), else fp32;
3. measures the shipped file for its card: ``mnist-fid`` on ``--samples`` (10,000) images
   (FID, KID, IS, classes covered, and label accuracy for a conditional model), or BLEU-2..5,
   self-BLEU, form, copy rate and unique share of the poet at its recommended temperature,
   plus the small-sample figures the plugin's card test checks (``check_*``);
4. copies the file into the plugin's ``pretrained/`` folder, records it in
   ``pretrained/cards.json`` (file, sha256, summary, figures: the plugin registers what is
   listed there), draws the pictures into ``docs/images/pretrained/`` with ``ganframe
   sample`` (grid, interpolation, walk GIF, truncation; ten poems for the poet) and prints
   every figure as JSON, for the model card in the plugin's README.

Wall time: from the run folder's ``recipe.toml`` (written at the start) to the checkpoint
(mtimes); the machine is the one this script runs on, which is where the runs are made.
"""

from __future__ import annotations

import argparse
import itertools
import json
import os
import platform
import re
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
IMAGES = ROOT / "docs" / "images" / "pretrained"
TARGETS = {
    "dcgan-mnist": ("ganframe-dcgan", "ganframe_dcgan", "image",
                    "DCGAN on MNIST digits (recipe dcgan-mnist, 6 epochs, EMA)"),
    "dcgan-mnist-cond": ("ganframe-dcgan", "ganframe_dcgan", "image",
                         "Class-conditional DCGAN on MNIST (recipe dcgan-mnist-cond); pick "
                         "digits with --labels"),
    "lstm-poet": ("ganframe-poet", "ganframe_poet", "text",
                  "LSTM poet, quatrains of 5 characters (recipe lstm-poet: MLE + SeqGAN)"),
}
MAX_BYTES = 10_000_000


def _measure(path: Path, kind: str, n: int, seed: int = 0) -> dict[str, Any]:
    from ganframe import api

    loaded = api.load_checkpoint(path)
    metric = "mnist-fid" if kind == "image" else "bleu"
    values = api.evaluate(loaded, [metric], seed=seed, overrides=[f"{metric}.n_samples={n}"])
    return values[metric]


def _as_good(kind: str, full: dict[str, Any], half: dict[str, Any]) -> bool:
    if kind == "image":
        return (abs(half["fid"] - full["fid"]) <= 0.02 * full["fid"] + 0.1
                and half["classes_covered"] == full["classes_covered"])
    return abs(half["bleu3"] - full["bleu3"]) <= 0.005


def _machine() -> str:
    model = platform.processor() or platform.machine()
    try:
        out = subprocess.run(["lscpu"], capture_output=True, text=True, check=False).stdout
        found = re.search(r"Model name:\s*(.+)", out)
        model = found.group(1).strip() if found else model
    except OSError:
        pass
    return f"{os.cpu_count()} CPU cores ({model}), CPU only"


def _run_facts(run: Path, ckpt: Path) -> dict[str, Any]:
    from ganframe.checkpoint import read_checkpoint

    meta = read_checkpoint(ckpt).meta
    step = meta["run"]["step"]
    rows = []
    for line in (run / "metrics.jsonl").read_text(encoding="utf-8").splitlines():
        try:
            rows.append(json.loads(line))
        except json.JSONDecodeError:  # a line being written
            continue
    rows = [r for r in rows if isinstance(r, dict) and r.get("step", 0) <= step]
    clock = [r["elapsed_s"] for r in rows if "elapsed_s" in r]
    # each resume restarts the clock: sum the segments; rows without a clock (written by an
    # older ganframe) make it a lower bound
    total = sum(a for a, b in itertools.pairwise(clock) if b < a) + (
        clock[-1] if clock else 0.0)
    partial = not clock or len(clock) < len(rows)
    if not clock:  # recipe.toml is written as the run starts
        total = ckpt.stat().st_mtime - (run / "recipe.toml").stat().st_mtime
    hours = total / 3600
    lengths = meta["run"].get("phase_lengths") or [meta["recipe"].get("train", {}).get(
        "steps", step)]
    return {"step": step, "planned": sum(lengths), "wall_h": round(hours, 2),
            "wall_at_least": partial,
            "machine": _machine(),
            "precision": meta["recipe"].get("train", {}).get("precision", "fp32")}


def _pictures(name: str, shipped: Path, kind: str, images: Path) -> list[str]:
    """Sample pictures (image models) or poems (the poet), by the command line itself."""
    images.mkdir(parents=True, exist_ok=True)
    sample = [sys.executable, "-m", "ganframe", "sample", str(shipped)]
    if kind == "text":
        out = Path(tempfile.mkdtemp()) / "poems.txt"
        subprocess.run([*sample, "-n", "10", "-o", str(out)], check=True)
        return out.read_text(encoding="utf-8").splitlines()
    runs = {f"{name}.png": ["-n", "64"],
            f"{name}-interpolate.png": ["--interpolate", "-n", "6", "--steps", "10"],
            f"{name}-walk.gif": ["--walk", "-n", "16", "--steps", "32"]}
    if "cond" in name:  # docs show the unconditional model's walks and truncation
        runs = {f"{name}.png": ["-n", "100", "--labels", "all"],
                f"{name}-classes.png": ["--interpolate", "-n", "5", "--steps", "10",
                                        "--labels", "3,8"]}
    for file, args in runs.items():
        subprocess.run([*sample, *args, "-o", str(images / file)], check=True)
    if "cond" in name:
        return list(runs)
    cuts = ("none", "1.0", "0.7", "0.4")
    for t in cuts:
        flag = [] if t == "none" else ["--truncation", t]
        subprocess.run([*sample, "-n", "16", *flag, "-o",
                        str(images / f"{name}-truncation-{t}.png")], check=True)
    return [*runs, *(f"{name}-truncation-{t}.png" for t in cuts)]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("name", choices=sorted(TARGETS))
    parser.add_argument("run", type=Path)
    parser.add_argument("--samples", type=int, default=10_000)
    parser.add_argument("--compare", type=int, default=2_000)
    parser.add_argument("--check", type=int, default=2_000)
    parser.add_argument("--checkpoint", type=Path, default=None,
                        help="a checkpoint of the run other than its last")
    parser.add_argument("--root", type=Path, default=ROOT,
                        help="write under this copy of the repository (a trial: /tmp/x)")
    args = parser.parse_args()
    dist, pkg, kind, summary = TARGETS[args.name]
    ckpt = args.checkpoint or args.run / "checkpoints" / "last.safetensors"
    from ganframe.cards import write_card
    from ganframe.export import export_generator
    from ganframe.pretrained import file_sha256

    tmp = Path(tempfile.mkdtemp())
    t0 = time.perf_counter()
    full = export_generator(ckpt, tmp / "fp32.safetensors")
    half = export_generator(ckpt, tmp / "fp16.safetensors", half=True)
    n_compare = args.compare if kind == "image" else 1000
    q_full, q_half = (_measure(p.path, kind, n_compare) for p in (full, half))
    chosen = half if _as_good(kind, q_full, q_half) or full.bytes > MAX_BYTES else full
    folder = args.root / "plugins" / dist / pkg / "pretrained"
    folder.mkdir(parents=True, exist_ok=True)
    shipped = folder / f"{args.name}.safetensors"
    shutil.copyfile(chosen.path, shipped)
    quality = _measure(shipped, kind, args.samples if kind == "image" else 1000)
    check = _measure(shipped, kind, args.check if kind == "image" else 200)
    facts = _run_facts(args.run, ckpt)
    card = _card_figures(kind, quality, check, facts, chosen, q_full, q_half)
    sha = file_sha256(shipped)
    write_card(folder, args.name, shipped.name, sha, summary, card)
    pictures = _pictures(args.name, shipped, kind, args.root / IMAGES.relative_to(ROOT))
    record = {"name": args.name, "sha256": sha, "bytes": shipped.stat().st_size,
              "card": card, "quality": quality, "fp32": q_full, "fp16": q_half,
              "facts": facts, "pictures": pictures, "seconds": time.perf_counter() - t0,
              "recipe": full.sampling}
    print(json.dumps(record, indent=2, ensure_ascii=False))
    markdown = _card_markdown(record, kind, dist, pkg, chosen)
    readme = args.root / "plugins" / dist / "README.md"
    if not _replace_card(readme, args.name, markdown):
        print(f"\n(no <!-- card:{args.name} --> markers in {readme}; the card:)\n\n{markdown}")


def _replace_card(readme: Path, name: str, markdown: str) -> bool:
    """Put the card between ``<!-- card:NAME -->`` and ``<!-- /card:NAME -->``."""
    if not readme.is_file():
        return False
    text = readme.read_text(encoding="utf-8")
    start, end = f"<!-- card:{name} -->", f"<!-- /card:{name} -->"
    if start not in text or end not in text:
        return False
    head, rest = text.split(start, 1)
    readme.write_text(f"{head}{start}\n{markdown}\n{end}{rest.split(end, 1)[1]}",
                      encoding="utf-8")
    return True


def _how_many(name: str, kind: str) -> str:
    if "cond" in name:
        return "--labels all -n 100"
    return "-n 64" if kind == "image" else "-n 10"


def _card_markdown(r: dict[str, Any], kind: str, dist: str, pkg: str, chosen: Any) -> str:
    """The model card's table, as the plugin README shows it."""
    name, c, q, f = r["name"], r["card"], r["quality"], r["facts"]
    weights = "EMA generator" if chosen.weights == "ema" else "generator"
    rows = [
        ("sample it", f"`ganframe sample {name} {_how_many(name, kind)} -o "
                      f"{'digits.png' if kind == 'image' else 'poems.txt'}`, or "
                      f"`ganframe.api.pretrained(\"{name}\")`"),
        ("reproduce", f"`ganframe run {name}`, then `ganframe export runs/{name}/checkpoints/"
                      f"last.safetensors -o {name}.safetensors"
                      f"{' --half' if chosen.dtype == 'float16' else ''}`"),
        ("file", f"`{pkg}/pretrained/{name}.safetensors`: {r['bytes'] / 1e6:.1f} MB, "
                 f"{'fp16' if chosen.dtype == 'float16' else 'fp32'} weights of the {weights} "
                 f"at step {f['step']:,}; sha256 `{r['sha256'][:16]}...`"),
        ("trained", f"{f['step']:,} steps, {'at least ' if f['wall_at_least'] else ''}"
                    f"{f['wall_h']:.2f} h wall on {f['machine']} "
                    f"(shared with other jobs), {f['precision']}"),
    ]
    if kind == "image":
        label = (f", label accuracy {q['label_accuracy']:.3f} (worst digit "
                 f"{q['worst_label_accuracy']:.3f})" if "label_accuracy" in q else "")
        rows += [
            ("quality, 10,000 samples (seed 0)", f"`mnist-fid`: FID {q['fid']:.2f}, KID "
             f"{q['kid']:.4f}, IS {q['is']:.2f}, {q['classes_covered']} of 10 digits "
             f"covered{label}"),
            ("fp16 vs fp32, 2,000 samples", f"FID {r['fp16']['fid']:.3f} vs "
             f"{r['fp32']['fid']:.3f}, IS {r['fp16']['is']:.3f} vs {r['fp32']['is']:.3f}"),
            ("card test, 2,000 samples", f"FID {c['check_fid_2k']}, IS {c['check_is_2k']}"),
        ]
    else:
        rows += [
            ("quality, 1,000 poems at T = 0.825 (seed 0) vs the test split",
             f"BLEU-3 {q['bleu3']:.3f}, BLEU-4 {q['bleu4']:.3f}, self-BLEU-3 "
             f"{q['self_bleu3']:.3f}, self-BLEU-4 {q['self_bleu4']:.3f}, form "
             f"{q['valid_form']:.3f}, copied {q.get('copied', float('nan')):.3f}, unique "
             f"{q['unique']:.3f}"),
            ("fp16 vs fp32, 1,000 poems", f"BLEU-3 {r['fp16']['bleu3']:.4f} vs "
             f"{r['fp32']['bleu3']:.4f}, self-BLEU-3 {r['fp16']['self_bleu3']:.4f} vs "
             f"{r['fp32']['self_bleu3']:.4f}"),
            ("card test, 200 poems", f"BLEU-3 {c['check_bleu3_200']}, form "
             f"{c['check_valid_form_200']}"),
        ]
    table = "\n".join(f"| {k} | {v} |" for k, v in rows)
    if f["step"] < f["planned"]:
        table += (f"\n| status | **interim**: step {f['step']:,} of the run's "
                  f"{f['planned']:,}; shipping the finished run replaces it |")
    if kind == "image":
        shown = f"![samples of {name}](../../docs/images/pretrained/{name}.png)"
        if "cond" in name:
            shown += (f"\n\nClass interpolation, 3 to 8 (`--interpolate --labels 3,8`):\n\n"
                      f"![3 to 8](../../docs/images/pretrained/{name}-classes.png)")
    else:
        shown = "Ten poems (seed 0):\n\n```text\n" + "\n".join(r["pictures"]) + "\n```"
    return f"| | |\n|---|---|\n{table}\n\n{shown}\n"


def _card_figures(kind: str, q: dict[str, Any], check: dict[str, Any], facts: dict[str, Any],
                  chosen: Any, q_full: dict[str, Any], q_half: dict[str, Any]
                  ) -> dict[str, Any]:
    """The figures ``ganframe models`` shows and the card test checks."""
    out: dict[str, Any] = {"step": facts["step"], "dtype": chosen.dtype}
    if kind == "image":
        out.update({"fid_10k": round(q["fid"], 3), "kid_10k": round(q["kid"], 5),
                    "is_10k": round(q["is"], 3), "classes_covered": q["classes_covered"],
                    "check_fid_2k": round(check["fid"], 3), "check_is_2k": round(check["is"], 3),
                    "fp32_fid_2k": round(q_full["fid"], 3),
                    "fp16_fid_2k": round(q_half["fid"], 3)})
        if "label_accuracy" in q:
            out["label_accuracy_10k"] = round(q["label_accuracy"], 4)
            out["check_label_accuracy_2k"] = round(check["label_accuracy"], 4)
    else:
        out.update({k: round(v, 4) for k, v in q.items() if isinstance(v, float)})
        out.update({"check_bleu3_200": round(check["bleu3"], 4),
                    "check_valid_form_200": round(check["valid_form"], 4),
                    "fp32_bleu3": round(q_full["bleu3"], 4),
                    "fp16_bleu3": round(q_half["bleu3"], 4)})
    return out


if __name__ == "__main__":
    main()
