"""ganframe's benchmark suite: one command, one table of ratios measured in the same run.

    GANFRAME_DATA=/path/to/datasets python bench/run.py            # the recorded configuration
    GANFRAME_DATA=/path/to/datasets python bench/run.py --quick    # every row short (smoke test)
    python bench/run.py --only bleu,checkpoint                      # some rows only

Every ratio compares ganframe with the code a user would otherwise write, both measured in
this run: the cases alternate for several repeats (training throughput: blocks of steps
interleaved inside one process; other rows: separate runs in rotating order), each ratio is
the median of the per-repeat ratios, and the range of those ratios is shown next to it. Each
training case also runs alone in a fresh process, which reports its peak resident memory.
Rows whose data, tools or hardware are missing are skipped with a note. See bench/README.md.
"""

from __future__ import annotations

import argparse
import datetime
import importlib.metadata
import importlib.util
import json
import os
import platform
import subprocess
import sys
import time
import traceback
from collections.abc import Callable
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))

from measure import load_average, median, parse_result  # noqa: E402

# -- configuration ------------------------------------------------------------------------

#: Per group: the recorded configuration, the same on a GPU, and ``--quick``.
SETTINGS: dict[str, dict[str, dict[str, Any]]] = {
    "dcgan": {
        "cpu": {"warmup": 10, "block_steps": 10, "blocks": 30, "solo_steps": 10},
        "cuda": {"warmup": 50, "block_steps": 100, "blocks": 20, "solo_steps": 100},
        "quick": {"warmup": 2, "block_steps": 3, "blocks": 2, "solo_steps": 3},
    },
    "mle": {
        "cpu": {"warmup": 5, "block_steps": 4, "blocks": 20, "solo_steps": 5},
        "cuda": {"warmup": 30, "block_steps": 50, "blocks": 20, "solo_steps": 50},
        "quick": {"warmup": 1, "block_steps": 2, "blocks": 2, "solo_steps": 2},
    },
    "seqgan": {
        "cpu": {"batch": 64, "rollouts": 16, "repeats": 2},
        "cuda": {"batch": 64, "rollouts": 16, "repeats": 3},
        "quick": {"batch": 8, "rollouts": 2, "repeats": 2},
    },
    "bleu": {"cpu": {"poems": 1000, "repeats": 5}, "quick": {"poems": 40, "repeats": 2}},
    "checkpoint": {
        "cpu": {"repeats": 9},
        "cuda": {"repeats": 9},
        "quick": {"repeats": 3},
    },
    "startup": {"cpu": {"repeats": 7}, "quick": {"repeats": 2}},
    "images": {"cpu": {"n": 10_000, "repeats": 3}, "quick": {"n": 640, "repeats": 1}},
    "ddp": {
        "cpu": {"steps": 150, "log_every": 25, "skip_rows": 2, "repeats": 3},
        "cuda": {"steps": 1500, "log_every": 100, "skip_rows": 2, "repeats": 3},
        "quick": {"steps": 20, "log_every": 5, "skip_rows": 1, "repeats": 1},
    },
}
CPU_GROUPS = ["dcgan", "mle", "seqgan", "bleu", "checkpoint", "startup", "ddp", "images"]
GPU_GROUPS = ["dcgan-gpu", "mle-gpu", "seqgan-gpu", "checkpoint-gpu", "ddp-gpu"]
TITLES = {
    "dcgan": "DCGAN-MNIST training throughput",
    "mle": "LSTM-poet MLE training throughput",
    "seqgan": "SeqGAN generator update",
    "bleu": "BLEU-2..4 vs nltk",
    "checkpoint": "Checkpoint save and load",
    "startup": "CLI startup",
    "images": "image-folder pipeline vs PIL + DataLoader",
    "ddp": "DCGAN-MNIST `ganframe run --nproc 2` vs 1 process",
}
GOALS = {"dcgan-hand": 0.97, "seqgan": 10.0, "bleu": 100.0}


@dataclass
class Row:
    """One line of the table. ``ratio`` is always "how many times faster ganframe is"
    (baseline time / ganframe time), except where the row says otherwise."""

    name: str
    ours: str = ""
    base: str = ""
    ratio: float | None = None
    spread: tuple[float, float] | None = None
    goal: float | None = None
    rss: str = ""
    note: str = ""
    raw: dict[str, Any] = field(default_factory=dict)

    def ratio_cell(self) -> str:
        if self.ratio is None:
            return "—"
        text = _fmt_ratio(self.ratio)
        if self.spread is not None and self.spread[0] != self.spread[1]:
            text += f" [{_fmt_ratio(self.spread[0])}–{_fmt_ratio(self.spread[1])}]"
        return text

    def goal_cell(self, judge: bool = True) -> str:
        if self.goal is None:
            return "—"
        if self.ratio is None or not judge:
            return f">= {_fmt_ratio(self.goal)}" + ("" if judge else " (not judged: quick run)")
        verdict = "met" if self.ratio >= self.goal else "**missed**"
        return f">= {_fmt_ratio(self.goal)}: {verdict}"


def _fmt_ratio(x: float) -> str:
    return f"{x:.3g}x" if x < 100 else f"{x:.0f}x"


def _fmt_rate(x: float, unit: str) -> str:
    return f"{x:,.0f} {unit}" if x >= 100 else f"{x:.3g} {unit}"


def _fmt_s(x: float) -> str:
    if x < 0.01:
        return f"{x * 1000:.2f} ms"
    if x < 1:
        return f"{x * 1000:.0f} ms"
    return f"{x:.2f} s"


class Suite:
    def __init__(self, quick: bool) -> None:
        self.quick = quick
        self.rows: list[Row] = []
        self.env = dict(os.environ)
        self.data = Path(os.environ["GANFRAME_DATA"]).expanduser() if os.environ.get(
            "GANFRAME_DATA", "").strip() else None

    # -- helpers --------------------------------------------------------------------------
    def settings(self, group: str, device: str = "cpu") -> dict[str, Any]:
        table = SETTINGS[group]
        if self.quick:
            return table["quick"]
        return table.get(device, table["cpu"])

    def worker(self, case: str, args: dict[str, Any]) -> dict[str, Any]:
        cmd = [sys.executable, str(HERE / "worker.py"), case, json.dumps(args)]
        proc = subprocess.run(cmd, capture_output=True, text=True, env=self.env,
                              cwd=HERE.parent)
        if proc.returncode != 0:
            lines = proc.stderr.strip().splitlines()
            errors = [ln.strip() for ln in lines if "Error" in ln or "error:" in ln]
            cause = errors[-1] if errors else (lines[-1] if lines else "no output")
            tail = "\n".join(lines[-15:])
            raise RuntimeError(f"{case} failed (exit {proc.returncode}): {cause}\n{tail}")
        return parse_result(proc.stdout)

    def alternate(
        self, cases: list[tuple[str, str, dict[str, Any]]], repeats: int, label: str
    ) -> dict[str, list[dict[str, Any]]]:
        """Run every case once per repeat, rotating their order between repeats."""
        results: dict[str, list[dict[str, Any]]] = {key: [] for key, _, _ in cases}
        for r in range(repeats):
            shift = r % len(cases)
            for key, case, args in cases[shift:] + cases[:shift]:
                t0 = time.perf_counter()
                results[key].append(self.worker(case, args))
                log(f"{label}: repeat {r + 1}/{repeats} {key} done in "
                    f"{time.perf_counter() - t0:.0f} s")
        return results

    def have_mnist(self) -> str | None:
        if self.data is None:
            return "GANFRAME_DATA is not set"
        folders = [self.data / "mnist", self.data / "MNIST" / "raw"]  # the plugin's layouts
        if not any(f.is_dir() and any(f.glob("train-images*")) for f in folders):
            return f"no MNIST train files in $GANFRAME_DATA/mnist ({folders[0]})"
        return None

    def have_poems(self) -> str | None:
        if self.data is None:
            return "GANFRAME_DATA is not set"
        folder = self.data / "poems"
        missing = [n for n in ("quatrains5.train.txt", "quatrains5.test.txt")
                   if not (folder / n).is_file()]
        return f"missing $GANFRAME_DATA/poems/{', '.join(missing)}" if missing else None

    def skip(self, names: list[str], why: str) -> None:
        for name in names:
            self.rows.append(Row(name, note=f"skipped: {why}"))

    # -- groups ---------------------------------------------------------------------------
    def paired_and_solo(
        self, group: str, device: str, variants: list[str]
    ) -> tuple[dict[str, Any], dict[str, dict[str, Any]]]:
        """One process interleaving all variants in blocks (the ratios), then each variant
        alone in a fresh process for a few steps (its peak memory)."""
        s = self.settings(group, device)
        tag = " [GPU]" if device == "cuda" else ""
        t0 = time.perf_counter()
        paired = self.worker(f"{group}-paired", {
            "blocks": s["blocks"], "block_steps": s["block_steps"], "warmup": s["warmup"],
            "device": device})
        log(f"{group}{tag}: interleaved run done in {time.perf_counter() - t0:.0f} s")
        solo = {}
        for name in variants:
            solo[name] = self.worker(f"{group}-{name}", {
                "steps": s["solo_steps"], "warmup": min(s["warmup"], 3), "device": device})
        log(f"{group}{tag}: memory runs done")
        return paired, solo

    def dcgan(self, device: str = "cpu") -> None:
        tag = " [GPU]" if device == "cuda" else ""
        names = [f"DCGAN-MNIST training{tag}: ganframe vs hand loop, in-memory tensors",
                 f"DCGAN-MNIST training{tag}: ganframe vs per-item Dataset + DataLoader"]
        missing = self.have_mnist()
        if missing:
            return self.skip(names, missing)
        s = self.settings("dcgan", device)
        paired, solo = self.paired_and_solo("dcgan", device, ["ganframe", "hand", "dataloader"])
        rates = paired["images_per_s"]
        ours = rates["ganframe"]
        for name, key, label, goal in (
            (names[0], "hand", "hand loop", GOALS["dcgan-hand"]),
            (names[1], "dataloader", "DataLoader loop", None),
        ):
            theirs = rates[key]
            ratios = [o / t for o, t in zip(ours, theirs, strict=True)]
            self.rows.append(Row(
                name,
                ours=_fmt_rate(median(ours), "img/s"),
                base=f"{label} {_fmt_rate(median(theirs), 'img/s')}",
                ratio=median(ratios), spread=(min(ratios), max(ratios)), goal=goal,
                rss=_rss([solo["ganframe"]], [solo[key]]),
                note=f"batch 64; {s['blocks']} blocks of {s['block_steps']} steps per variant, "
                     f"interleaved in one process after {s['warmup']} warm-up steps each; "
                     "ratio = ganframe img/s / baseline img/s per block; best blocks: "
                     f"{_fmt_ratio(max(ours) / max(theirs))}",
                raw={"paired": paired, "solo": solo},
            ))

    def mle(self, device: str = "cpu") -> None:
        tag = " [GPU]" if device == "cuda" else ""
        name = f"LSTM-poet MLE training{tag}: ganframe vs hand loop"
        missing = self.have_poems()
        if missing:
            return self.skip([name], missing)
        s = self.settings("mle", device)
        paired, solo = self.paired_and_solo("mle", device, ["ganframe", "hand"])
        ours = paired["tokens_per_s"]["ganframe"]
        theirs = paired["tokens_per_s"]["hand"]
        ratios = [o / t for o, t in zip(ours, theirs, strict=True)]
        self.rows.append(Row(
            name, ours=_fmt_rate(median(ours), "tok/s"),
            base=f"hand loop {_fmt_rate(median(theirs), 'tok/s')}",
            ratio=median(ratios), spread=(min(ratios), max(ratios)),
            rss=_rss([solo["ganframe"]], [solo["hand"]]),
            note=f"batch 64 x 25 tokens; {s['blocks']} blocks of {s['block_steps']} steps per "
                 f"variant, interleaved in one process after {s['warmup']} warm-up steps; "
                 "ratio = ganframe tok/s / hand loop tok/s per block; best blocks: "
                 f"{_fmt_ratio(max(ours) / max(theirs))}",
            raw={"paired": paired, "solo": solo},
        ))

    def seqgan(self, device: str = "cpu") -> None:
        tag = " [GPU]" if device == "cuda" else ""
        s = self.settings("seqgan", device)
        size = f"(batch {s['batch']}, {s['rollouts']} rollouts, length 24)"
        names = [f"SeqGAN generator update{tag} {size}: batched rollouts vs nested "
                 "per-rollout, per-prefix loop",
                 f"SeqGAN generator update{tag}: batched rollouts in bf16 autocast "
                 "(train.precision = \"bf16\") vs the nested loop in fp32"]
        missing = self.have_poems()
        if missing:
            return self.skip(names, missing)
        args = {"batch": s["batch"], "rollouts": s["rollouts"], "device": device}
        res = self.alternate(
            [("batched", "seqgan-batched", args), ("batched_bf16", "seqgan-batched_bf16", args),
             ("naive", "seqgan-naive", args)],
            s["repeats"], f"seqgan{tag}",
        )
        theirs = [r["seconds"] for r in res["naive"]]
        for name, key, goal, extra in (
            (names[0], "batched", GOALS["seqgan"], "both in fp32"),
            (names[1], "batched_bf16", None, "same estimator; bf16 matmuls in the LSTM and "
             "output layer of the batched side only"),
        ):
            ours = [r["seconds"] for r in res[key]]
            ratios = [t / o for o, t in zip(ours, theirs, strict=True)]
            self.rows.append(Row(
                name, ours=_fmt_s(median(ours)), base=f"nested loop {_fmt_s(median(theirs))}",
                ratio=median(ratios), spread=(min(ratios), max(ratios)), goal=goal,
                rss=_rss(res[key], res["naive"]),
                note=f"{res[key][0]['completions']:,} completions per update, "
                     f"{s['repeats']} repeats; ratio = loop time / batched time; {extra}",
                raw={key: res[key], "naive": res["naive"]},
            ))

    def bleu(self) -> None:
        s = self.settings("bleu")
        name = f"BLEU-2..4 of {s['poems']:,} poems vs the test split: ganframe vs nltk loop"
        missing = self.have_poems()
        if missing:
            return self.skip([name], missing)
        if importlib.util.find_spec("nltk") is None:
            return self.skip([name], "nltk is not installed (pip install nltk)")
        r = self.worker("bleu", {"poems": s["poems"], "repeats": s["repeats"]})
        self.rows.append(Row(
            name, ours=_fmt_s(r["ganframe_s"]),
            base=f"nltk sentence_bleu {_fmt_s(r['nltk_s'])}",
            ratio=median(r["ratios"]), spread=(min(r["ratios"]), max(r["ratios"])),
            goal=GOALS["bleu"],
            note=f"{r['references']:,} references; values equal nltk's (max |diff| "
                 f"{r['max_abs_diff']:.1e}); ganframe time includes building its tables; "
                 f"nltk's pass cut into {s['repeats']} chunks alternating with ganframe runs",
            raw=r,
        ))

    def checkpoint(self, device: str = "cpu") -> None:
        tag = " [GPU]" if device == "cuda" else ""
        names = [f"Checkpoint save{tag}, DCGAN run state: safetensors vs torch.save",
                 f"Checkpoint save{tag}, equally durable: safetensors vs torch.save + fsync "
                 "+ rename",
                 f"Checkpoint load{tag}, DCGAN run state: safetensors vs torch.load"]
        s = self.settings("checkpoint", device)
        r = self.worker("checkpoint", {"repeats": s["repeats"], "device": device})
        size = f"{r['ours_bytes'] / 2**20:.1f} MB vs {r['theirs_bytes'] / 2**20:.1f} MB"
        for name, what, theirs, ratios, extra in (
            (names[0], "save", "save", r["save_ratios"],
             "; ganframe writes atomically with fsync, torch.save does not"),
            (names[1], "save", "save_fsync", r["save_fsync_ratios"],
             "; both write a temporary file, fsync it and rename it"),
            (names[2], "load", "load", r["load_ratios"], "; both restore into the live objects"),
        ):
            self.rows.append(Row(
                name, ours=_fmt_s(r[f"ours_{what}_s"]),
                base=f"torch {_fmt_s(r[f'theirs_{theirs}_s'])}",
                ratio=median(ratios), spread=(min(ratios), max(ratios)),
                note=f"generator + critic + EMA + 2 Adam states, files {size}, "
                     f"{s['repeats']} repeats{extra}",
                raw=r,
            ))

    def startup(self) -> None:
        import startup as startup_bench

        s = self.settings("startup")
        base_key = "python -c 'import torch' (baseline)"
        times: dict[str, list[float]] = {}
        for r in range(s["repeats"]):  # one alternation per call, so ratios pair up
            for key, value in startup_bench.measure(1).items():
                times.setdefault(key, []).append(value)
            log(f"startup: repeat {r + 1}/{s['repeats']} done")
        base = times[base_key]
        for key in ("ganframe --help", "ganframe list-plugins"):
            ratios = [b / t for b, t in zip(base, times[key], strict=True)]
            self.rows.append(Row(
                f"`{key}` wall time vs `python -c \"import torch\"`",
                ours=_fmt_s(median(times[key])), base=f"import torch {_fmt_s(median(base))}",
                ratio=median(ratios), spread=(min(ratios), max(ratios)),
                note=f"fresh processes, {s['repeats']} repeats; ratio = import-torch time / "
                     "command time (bench/startup.py)",
                raw={k: v for k, v in times.items()},
            ))

    def images(self) -> None:
        """image-folder vs a hand-written PIL + DataLoader loader (bench/image_pipeline.py;
        torchvision, the usual baseline, does not import beside this torch build)."""
        import image_pipeline

        s = self.settings("images")
        for workers in (0, 2):
            r = image_pipeline.measure(s["n"], s["repeats"], workers)
            rate = r["rate"]
            for what, ours, base in (("first epoch", "ours_first", "base_first"),
                                     ("after a restart (cached)", "ours_cached",
                                      "base_second")):
                ratios = [a / b for a, b in zip(rate[ours], rate[base], strict=True)]
                self.rows.append(Row(
                    f"image-folder {what}: {r['n']:,} PNGs -> 32 px RGB, batch 64 vs PIL + "
                    f"DataLoader(num_workers={workers})",
                    ours=_fmt_rate(median(rate[ours]), "img/s"),
                    base=_fmt_rate(median(rate[base]), "img/s"),
                    ratio=median(ratios), spread=(min(ratios), max(ratios)),
                    note=(f"{s['repeats']} alternating repeats; images/s = images / (build + "
                          "one epoch); the baseline decodes every epoch (its second epoch is "
                          "the cached column); cached build (scan + cache read) "
                          f"{_fmt_s(median(r['cached_build_s']))}"),
                    raw=r,
                ))

    def ddp(self, device: str = "cpu") -> None:
        tag = " [GPU]" if device == "cuda" else ""
        name = f"DCGAN-MNIST `ganframe run --nproc 2` vs 1 process{tag} (global img/s)"
        missing = self.have_mnist()
        if missing:
            return self.skip([name], missing)
        s = self.settings("ddp", device)
        base = ["run", "dcgan-mnist", "--set", f"train.steps={s['steps']}",
                "--set", f"train.log_every={s['log_every']}", "--set", "train.sample_every=0",
                "--set", "train.checkpoint_every=0", "--set", "metrics=[]",
                "--set", "data.download=false", "--device", device, "--quiet",
                "--out", "{out}"]
        one = {"argv": base, "batch": 64, "world": 1, "skip_rows": s["skip_rows"]}
        two = {"argv": [*base, "--nproc", "2"], "batch": 64, "world": 2,
               "skip_rows": s["skip_rows"]}
        res = self.alternate([("one", "cli-throughput", one), ("two", "cli-throughput", two)],
                             s["repeats"], f"ddp{tag}")
        ours = [r["images_per_s"] for r in res["two"]]
        theirs = [r["images_per_s"] for r in res["one"]]
        ratios = [o / t for o, t in zip(ours, theirs, strict=True)]
        crashed = [r for runs in res.values() for r in runs if r["exit_code"] != 0]
        crash_note = ""
        if crashed:
            total = sum(len(v) for v in res.values())
            crash_note = (f"; **{len(crashed)} of {total} runs exited with code "
                          f"{crashed[0]['exit_code']} after the measured steps** "
                          f"({crashed[0]['failure']})")
        self.rows.append(Row(
            name, ours=f"2 procs {_fmt_rate(median(ours), 'img/s')}",
            base=f"1 proc {_fmt_rate(median(theirs), 'img/s')}",
            ratio=median(ratios), spread=(min(ratios), max(ratios)),
            rss=_rss(res["two"], res["one"]) + " (largest process)",
            note=f"batch 64 per process; {s['steps']} steps, timed between logged rows after "
                 f"the first {s['skip_rows']}; {s['repeats']} repeats; ratio = 2-process "
                 "img/s / 1-process img/s (scaling, not framework cost)" + crash_note,
            raw=res,
        ))


def _rss(ours: list[dict[str, Any]], theirs: list[dict[str, Any]]) -> str:
    def cell(results: list[dict[str, Any]]) -> str:
        text = f"{median([r['peak_rss_mb'] for r in results]):,.0f}"
        gpu = [r["gpu_peak_mb"] for r in results if "gpu_peak_mb" in r]
        return text + (f" (GPU {median(gpu):,.0f})" if gpu else "")

    return f"{cell(ours)} / {cell(theirs)}"


def log(message: str) -> None:
    sys.stderr.write(f"[bench {time.strftime('%H:%M:%S')}] {message}\n")
    sys.stderr.flush()


# -- machine and table ----------------------------------------------------------------------


def cpu_model() -> str:
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or platform.machine()


def gpu_count() -> tuple[int, str]:
    code = ("import torch; n = torch.cuda.device_count(); "
            "print(n); print(torch.cuda.get_device_name(0) if n else '')")
    proc = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True)
    if proc.returncode != 0:
        return 0, ""
    lines = proc.stdout.splitlines()
    return int(lines[0]), (lines[1] if len(lines) > 1 else "")


def machine(gpus: int, gpu_name: str) -> dict[str, str]:
    def version(dist: str) -> str:
        try:
            return importlib.metadata.version(dist)
        except importlib.metadata.PackageNotFoundError:
            return "not installed"

    return {
        "date": datetime.datetime.now(datetime.UTC).strftime("%Y-%m-%d %H:%M UTC"),
        "cpu": cpu_model(),
        "nproc": str(os.cpu_count()),
        "gpu": f"{gpus} x {gpu_name}" if gpus else "none",
        "python": platform.python_version(),
        "torch": version("torch"),
        "ganframe": version("ganframe"),
        "OMP_NUM_THREADS": os.environ.get("OMP_NUM_THREADS", "unset (torch default)"),
    }


def render(rows: list[Row], info: dict[str, str], command: str, judge: bool = True) -> str:
    lines = [
        "| benchmark | ganframe | baseline | ratio [range] | goal | peak RSS MB (ganframe / "
        "baseline) |",
        "|---|---|---|---|---|---|",
    ]
    notes = []
    for i, row in enumerate(rows, 1):
        lines.append(f"| {i}. {row.name} | {row.ours or '—'} | {row.base or '—'} | "
                     f"{row.ratio_cell()} | {row.goal_cell(judge)} | {row.rss or '—'} |")
        if row.note:
            notes.append(f"{i}. {row.note}")
    head = [
        f"command: `{command}`",
        "machine: " + ", ".join(f"{k} {v}" for k, v in info.items()),
        "ratio: how many times faster ganframe is than the baseline (unless the row says "
        "otherwise); median of the per-repeat ratios, [lowest–highest] repeat",
        "",
    ]
    return "\n".join(head + lines + ["", *notes]) + "\n"


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--quick", action="store_true", help="short rows (smoke test)")
    parser.add_argument(
        "--only", default="",
        help=f"comma-separated groups: {', '.join(CPU_GROUPS + GPU_GROUPS)} ('gpu' = all GPU "
             "groups)",
    )
    parser.add_argument("--json", type=Path, help="also write every figure to this JSON file")
    args = parser.parse_args(argv)

    wanted = [g.strip() for g in args.only.split(",") if g.strip()] or CPU_GROUPS + GPU_GROUPS
    if "gpu" in wanted:
        wanted = [g for g in wanted if g != "gpu"] + GPU_GROUPS
    unknown = [g for g in wanted if g not in CPU_GROUPS + GPU_GROUPS]
    if unknown:
        parser.error(f"unknown group(s) {unknown}; choose from {CPU_GROUPS + GPU_GROUPS}")

    gpus, gpu_name = gpu_count()
    info = machine(gpus, gpu_name)
    suite = Suite(args.quick)
    load_start = load_average()
    started = time.perf_counter()
    command = " ".join(["python", "bench/run.py", *(argv if argv is not None else sys.argv[1:])])
    runners: dict[str, Callable[[], None]] = {
        "dcgan": suite.dcgan,
        "mle": suite.mle,
        "seqgan": suite.seqgan,
        "bleu": suite.bleu,
        "checkpoint": suite.checkpoint,
        "startup": suite.startup,
        "ddp": suite.ddp,
        "images": suite.images,
        "dcgan-gpu": lambda: suite.dcgan("cuda"),
        "mle-gpu": lambda: suite.mle("cuda"),
        "seqgan-gpu": lambda: suite.seqgan("cuda"),
        "checkpoint-gpu": lambda: suite.checkpoint("cuda"),
        "ddp-gpu": lambda: suite.ddp("cuda"),
    }
    gpu_skipped = False
    for group in wanted:
        if group.endswith("-gpu"):
            need = 2 if group == "ddp-gpu" else 1
            if gpus < need:
                if gpus == 0 and not gpu_skipped:
                    suite.rows.append(Row("GPU rows", note="skipped: no CUDA device"))
                    gpu_skipped = True
                elif gpus:
                    suite.rows.append(Row(TITLES[group.removesuffix("-gpu")] + " [GPU]",
                                          note=f"skipped: needs {need} CUDA devices, found "
                                               f"{gpus}"))
                continue
        log(f"{group}: start (load average {load_average()})")
        t0 = time.perf_counter()
        before = len(suite.rows)
        try:
            runners[group]()
        except Exception as exc:
            traceback.print_exc()
            title = TITLES[group.removesuffix("-gpu")] + (" [GPU]" if "gpu" in group else "")
            suite.rows.append(Row(title, note=f"failed: {str(exc).splitlines()[0]}"))
        for row in suite.rows[before:]:
            row.raw.setdefault("group_seconds", round(time.perf_counter() - t0, 1))
        log(f"{group}: done in {time.perf_counter() - t0:.0f} s")
    info["load average (1/5/15 min) at start"] = load_start
    info["at end"] = load_average()
    info["suite wall time"] = f"{(time.perf_counter() - started) / 60:.1f} min"
    sys.stdout.write(render(suite.rows, info, command, judge=not args.quick))
    if args.json:
        args.json.write_text(json.dumps(
            {"command": command, "machine": info, "rows": [asdict(r) for r in suite.rows]},
            indent=2), encoding="utf-8")
    return 1 if any(r.note.startswith("failed") for r in suite.rows) else 0


if __name__ == "__main__":
    sys.exit(main())
