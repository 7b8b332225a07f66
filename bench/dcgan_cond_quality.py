"""Sample quality of a class-conditional MNIST checkpoint: label accuracy and mnist-fid.

    GANFRAME_DATA=/path/to/datasets python bench/dcgan_cond_quality.py \
        runs/dcgan-mnist-cond [--compare runs/dcgan-mnist] [--samples 10000] [--out DIR]

For the conditional checkpoint (a run folder means its last checkpoint; the EMA generator
when the run kept one), ``--samples`` images are generated, the same number of each digit
(1,000 per digit by default), from a fixed seed. The shipped MNIST classifier (the one
behind ``mnist-fid``, 99.3 % on the test set) reads each image:

* ``label_accuracy``: the share of images classified as the digit they were drawn for (the
  issue's bar: at least 97 %), and ``worst_label_accuracy``, the worst digit's share;
* ``fid``, ``kid``, ``is``, ``classes_covered``: ``mnist-fid`` of the same images against the
  10,000 test digits.

``--compare`` scores an unconditional checkpoint the same way (``--samples`` images from the
same seed; no label accuracy), so the two FIDs are at equal sample counts. The result is
printed as a table row and written to ``DIR/cond_quality.json`` with a 10x10 grid (one row
per digit) ``DIR/cond-grid.png``.
"""

from __future__ import annotations

import argparse
import json
import time
from pathlib import Path
from typing import Any

EVAL_SEED, GRID_SEED = 1234, 7


def _generator(path: Path) -> tuple[Any, int]:
    """The sampling generator of a checkpoint and its step."""
    from ganframe.api import load_checkpoint

    ckpt = load_checkpoint(path)
    return ckpt.generator.eval(), int(getattr(ckpt, "step", 0) or 0)


def _draw(gen: Any, n: int, seed: int, labels: Any = None) -> Any:
    import torch

    from ganframe.components import generate

    rng = torch.Generator().manual_seed(seed)
    chunks = []
    with torch.no_grad():
        for i in range(0, n, 500):
            b = min(500, n - i)
            chosen = None if labels is None else labels[i : i + b]
            chunks.append(generate(gen, b, device="cpu", rng=rng, labels=chosen).float())
    return torch.cat(chunks)


def score(path: Path, samples: int, conditional: bool) -> dict[str, Any]:
    """mnist-fid (and, for a conditional generator, label accuracy) of ``samples`` images."""
    import torch
    from ganframe_dcgan.metric import MnistFid
    from ganframe_dcgan.plugin import MnistFidConfig

    gen, step = _generator(path)
    if conditional and not getattr(gen, "conditional", False):
        raise SystemExit(f"{path}: the generator is not conditional")
    labels = torch.arange(samples) % 10 if conditional else None
    t0 = time.perf_counter()
    images = _draw(gen, samples, EVAL_SEED, labels)
    scores = MnistFid(MnistFidConfig(download=False)).score(images, seed=0, labels=labels)
    if labels is not None:
        from ganframe_dcgan.metric import embed

        _, probs = embed(images, "cpu")
        hits = probs.argmax(1) == labels
        scores["per_digit_accuracy"] = [float(hits[labels == k].float().mean())
                                        for k in range(10)]
    scores.update(checkpoint=str(path), step=step, score_s=time.perf_counter() - t0)
    return scores


def grid(path: Path, out: Path) -> Path:
    """10 samples of each digit, one row per digit."""
    import torch

    from ganframe.builtin.writers import write_image_png

    gen, _ = _generator(path)
    labels = torch.arange(100) % 10
    write_image_png(_draw(gen, 100, GRID_SEED, labels), out, {"sample_labels": labels.tolist()})
    return out


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("checkpoint", type=Path, nargs="?",
                        help="conditional checkpoint or run folder (leave out to score only "
                        "--compare)")
    parser.add_argument("--compare", type=Path, help="an unconditional checkpoint to score too")
    parser.add_argument("--samples", type=int, default=10_000)
    parser.add_argument("--out", type=Path, default=Path("bench-out/dcgan-cond"))
    args = parser.parse_args(argv)
    import torch

    torch.set_num_threads(1)
    args.out.mkdir(parents=True, exist_ok=True)
    result = {}
    if args.checkpoint is not None:
        result["conditional"] = score(args.checkpoint, args.samples, True)
        grid(args.checkpoint, args.out / "cond-grid.png")
    if args.compare is not None:
        result["unconditional"] = score(args.compare, args.samples, False)
    if not result:
        parser.error("give a conditional checkpoint, --compare, or both")
    (args.out / "cond_quality.json").write_text(json.dumps(result, indent=1) + "\n")
    print("| checkpoint | step | samples | label accuracy | worst digit | FID | KID | IS |")
    print("|---|---|---|---|---|---|---|---|")
    for name, r in result.items():
        acc = f"{r['label_accuracy']:.2%}" if "label_accuracy" in r else "–"
        worst = f"{r['worst_label_accuracy']:.2%}" if "worst_label_accuracy" in r else "–"
        print(f"| {name} | {r['step']} | {r['n_samples']} | {acc} | {worst} | {r['fid']:.1f} "
              f"| {r['kid']:.3f} | {r['is']:.2f} |")


if __name__ == "__main__":
    main()
