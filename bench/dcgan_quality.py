"""Sample quality of the shipped MNIST recipes against a plain PyTorch DCGAN, at equal steps.

    GANFRAME_DATA=/path/to/datasets python bench/dcgan_quality.py            # recorded setting
    GANFRAME_DATA=/path/to/datasets python bench/dcgan_quality.py --quick    # smoke run

Cases, each trained in a fresh process with one torch thread (``--jobs`` at a time):

* ``plain``: the DCGAN loop a user writes from the PyTorch example: the plugin's
  ``DcganGenerator``/``DcganCritic`` (so the architecture is identical), non-saturating loss,
  Adam 2e-4 with betas (0.5, 0.999), batch 64, one fake batch per step used for both updates,
  no EMA, no regulariser, no schedule. Batches are shuffled slices of the in-memory MNIST
  training tensor, a new permutation every epoch.
* ``dcgan-mnist``: ``ganframe`` training the registered recipe as shipped (only the length,
  the seed and the checkpoint interval changed; no metrics during training).
* ``wgan-gp-mnist``: the same for the WGAN-GP recipe (5 critic updates, each on a fresh real
  batch, per generator step).

An "epoch" is 938 real batches of 64 (60,000 images): 938 steps for the first two, 188
generator steps (940 critic batches) for WGAN-GP. At 1, 3 and 6 epochs the generator is
kept (the EMA generator for the recipes, which is what they sample with) and afterwards
scored with ``mnist-fid`` on ``--samples`` images against the 10,000 test digits; the same
latent draws for every case. Times are training only (the step clock, evaluation excluded).
The real-data floor (10,000 training digits against the test set) is scored in the same run.

Writes ``quality.json`` (every figure) and a 64-digit grid per case and epoch into ``--out``,
and prints the table recorded in ``plugins/ganframe-dcgan/README.md``.
"""

from __future__ import annotations

import argparse
import concurrent.futures
import json
import os
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

HERE = Path(__file__).resolve().parent
BATCH, LATENT = 64, 100
EPOCH_BATCHES = 938
GRID_SEED, EVAL_SEED = 7, 1234


def _steps_per_epoch(case: str) -> int:
    return 188 if case == "wgan-gp-mnist" else EPOCH_BATCHES


# -- one case, in its own process ----------------------------------------------------------


def _plain(seed: int, marks: list[int], out: Path) -> dict[int, float]:
    """The hand-written loop; saves the generator's state at each mark. Returns the training
    seconds elapsed at each mark."""
    import torch
    import torch.nn.functional as F
    from ganframe_dcgan.mnist import load_split
    from ganframe_dcgan.models import DcganCritic, DcganGenerator
    from safetensors.torch import save_file

    torch.manual_seed(seed)
    images, _, _ = load_split("train", None, download_missing=False, progress=False)
    gen = DcganGenerator(LATENT, 64, 28, 1)
    critic = DcganCritic(64, "batch", 28, 1)
    opt_g = torch.optim.Adam(gen.parameters(), lr=2e-4, betas=(0.5, 0.999))
    opt_c = torch.optim.Adam(critic.parameters(), lr=2e-4, betas=(0.5, 0.999))
    order_rng = torch.Generator().manual_seed(seed)
    order, pos = torch.randperm(len(images), generator=order_rng), 0
    elapsed: dict[int, float] = {}
    clock = 0.0
    for step in range(1, max(marks) + 1):
        t0 = time.perf_counter()
        if pos + BATCH > len(images):
            order, pos = torch.randperm(len(images), generator=order_rng), 0
        real = images[order[pos : pos + BATCH]].float().div_(127.5).sub_(1.0)
        pos += BATCH
        fake = gen(torch.randn(BATCH, LATENT))
        loss_c = F.softplus(-critic(real)).mean() + F.softplus(critic(fake.detach())).mean()
        opt_c.zero_grad()
        loss_c.backward()
        opt_c.step()
        loss_g = F.softplus(-critic(fake)).mean()
        opt_g.zero_grad()
        loss_g.backward()
        opt_g.step()
        clock += time.perf_counter() - t0
        if step in marks:
            elapsed[step] = clock
            save_file(gen.state_dict(), str(out / f"plain-{step}.safetensors"))
    return elapsed


def _recipe(case: str, seed: int, marks: list[int], out: Path) -> dict[int, float]:
    """``ganframe.api.train`` on a registered recipe, checkpointing at the marks."""
    from ganframe.api import load_recipe, train
    from ganframe.training import Progress

    every = marks[0]
    assert all(m % every == 0 for m in marks)
    t_start: list[float] = []
    elapsed: dict[int, float] = {}

    def on_phase(_name: str, _index: int, _steps: int, _done: int) -> None:
        t_start.append(time.perf_counter())  # networks built, data loaded: step 1 is next

    def on_step(_phase_step: int, step: int) -> None:
        if step in marks:
            elapsed[step] = time.perf_counter() - t_start[0]

    recipe = load_recipe(case, overrides=[
        f"seed={seed}", f"train.steps={max(marks)}", f"train.checkpoint_every={every}",
        "train.keep_last=0", "train.sample_every=0", "metrics=[]", "data.download=false",
        "device=cpu",
    ])
    train(recipe, out=out / "run", progress=Progress(on_phase=on_phase, on_step=on_step))
    for step in marks:
        src = out / "run" / "checkpoints" / f"step-{step:08d}.safetensors"
        shutil.copy(src, out / f"{case}-{step}.safetensors")
    shutil.rmtree(out / "run")
    return elapsed


def _load_generator(case: str, path: Path) -> Any:
    import torch
    from ganframe_dcgan.models import DcganGenerator
    from safetensors.torch import load_file

    if case == "plain":
        gen = DcganGenerator(LATENT, 64, 28, 1)
        gen.load_state_dict(load_file(str(path)))
        return gen.eval()
    from ganframe.api import load_checkpoint

    with torch.no_grad():
        return load_checkpoint(path).generator.eval()


def _draw(gen: Any, n: int, seed: int) -> Any:
    import torch

    rng = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        return torch.cat([gen(torch.randn(min(500, n - i), LATENT, generator=rng))
                          for i in range(0, n, 500)])


def run_case(case: str, seed: int, epochs: list[int], samples: int, out: Path) -> dict:
    """Train one case, then score its generator at every mark; one JSON result."""
    import torch
    from ganframe_dcgan.metric import MnistFid
    from ganframe_dcgan.plugin import MnistFidConfig

    torch.set_num_threads(1)
    marks = [e * _steps_per_epoch(case) for e in epochs]
    scratch = Path(tempfile.mkdtemp(prefix=f"ganframe-quality-{case}-"))
    try:
        t0 = time.perf_counter()
        elapsed = (_plain(seed, marks, scratch) if case == "plain"
                   else _recipe(case, seed, marks, scratch))
        total = time.perf_counter() - t0
        metric = MnistFid(MnistFidConfig(download=False))
        rows = []
        for epoch, step in zip(epochs, marks, strict=True):
            gen = _load_generator(case, scratch / f"{case}-{step}.safetensors")
            scores = metric.score(_draw(gen, samples, EVAL_SEED), seed=0)
            grid = out / f"{case}-seed{seed}-epoch{epoch}.png"
            _write_grid(_draw(gen, 64, GRID_SEED), grid)
            rows.append({"epoch": epoch, "step": step, "train_s": elapsed[step],
                         "grid": grid.name, **scores})
    finally:
        shutil.rmtree(scratch, ignore_errors=True)
    return {"case": case, "seed": seed, "rows": rows, "wall_s": total}


def _write_grid(images: Any, path: Path) -> None:
    from ganframe.builtin.writers import write_image_png

    write_image_png(images, path, {})


def real_floor(samples: int) -> dict:
    """The metric of real training digits (the floor a generator can approach)."""
    import torch
    from ganframe_dcgan.metric import MnistFid, uint8_to_float
    from ganframe_dcgan.mnist import load_split
    from ganframe_dcgan.plugin import MnistFidConfig

    torch.set_num_threads(1)
    images, _, _ = load_split("train", None, download_missing=False, progress=False)
    pick = torch.randperm(len(images), generator=torch.Generator().manual_seed(0))[:samples]
    return MnistFid(MnistFidConfig(download=False)).score(uint8_to_float(images[pick]), seed=0)


# -- the driver ----------------------------------------------------------------------------


def _child(args: list[str], saved: Path) -> dict | None:
    """One case in a fresh process; its result is kept in ``saved`` as soon as it is done,
    so a rerun of the driver (``--resume``) skips what already finished."""
    env = dict(os.environ, OMP_NUM_THREADS="1", MKL_NUM_THREADS="1")
    proc = subprocess.run([sys.executable, str(Path(__file__).resolve()), *args],
                          capture_output=True, text=True, env=env, check=False)
    if proc.returncode != 0:
        print(f"case {' '.join(args)} failed:\n{proc.stderr[-3000:]}", file=sys.stderr)
        return None
    result = json.loads(proc.stdout.strip().splitlines()[-1])
    saved.write_text(json.dumps(result), encoding="utf-8")
    return result


def _table(results: list[dict], floor: dict) -> str:
    lines = ["| case | seed | epoch | steps | train time | FID | KID | IS | classes |",
             "|---|---|---|---|---|---|---|---|---|"]
    for r in results:
        for row in r["rows"]:
            lines.append(
                f"| {r['case']} | {r['seed']} | {row['epoch']} | {row['step']:,} | "
                f"{row['train_s'] / 60:.1f} min | {row['fid']:.1f} | {row['kid']:.3f} | "
                f"{row['is']:.2f} | {row['classes_covered']} |")
    lines.append(f"| real training digits | – | – | – | – | {floor['fid']:.1f} | "
                 f"{floor['kid']:.3f} | {floor['is']:.2f} | {floor['classes_covered']} |")
    by = {(r["case"], r["seed"], row["epoch"]): row for r in results for row in r["rows"]}
    ratios = []
    for (case, seed, epoch), row in sorted(by.items()):
        plain = by.get(("plain", seed, epoch))
        if case != "plain" and plain is not None:
            ratio = plain["fid"] / row["fid"]
            how = f"{ratio:.2f}x lower" if ratio >= 1 else f"{1 / ratio:.2f}x higher"
            ratios.append(f"* {case} seed {seed}, epoch {epoch}: FID {row['fid']:.1f} vs "
                          f"plain {plain['fid']:.1f} ({how})")
    return "\n".join([*lines, "", *ratios])


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--cases", default="plain,dcgan-mnist,wgan-gp-mnist")
    parser.add_argument("--seeds", default="0,1", help="Seeds of plain and dcgan-mnist.")
    parser.add_argument("--wgan-seeds", default="0", help="Seeds of wgan-gp-mnist.")
    parser.add_argument("--epochs", default="1,3,6")
    parser.add_argument("--samples", type=int, default=10_000)
    parser.add_argument("--jobs", type=int, default=2)
    parser.add_argument("--out", type=Path, default=Path("bench-quality"))
    parser.add_argument("--resume", action="store_true",
                        help="Reuse the results of cases already finished in --out.")
    parser.add_argument("--quick", action="store_true",
                        help="Smoke run: epochs 1, 2,000 samples, seed 0 only.")
    parser.add_argument("--case", help=argparse.SUPPRESS)  # internal: run one case
    parser.add_argument("--seed", type=int, default=0, help=argparse.SUPPRESS)
    args = parser.parse_args()
    epochs = [int(e) for e in args.epochs.split(",")]
    if args.quick:
        epochs, args.samples, args.seeds, args.wgan_seeds = [1], 2000, "0", "0"
    if args.case == "floor":
        print(json.dumps(real_floor(args.samples)))
        return 0
    if args.case:
        args.out.mkdir(parents=True, exist_ok=True)
        print(json.dumps(run_case(args.case, args.seed, epochs, args.samples, args.out)))
        return 0
    if not os.environ.get("GANFRAME_DATA"):
        print("set GANFRAME_DATA to the folder holding mnist/", file=sys.stderr)
        return 2
    args.out.mkdir(parents=True, exist_ok=True)
    common = ["--epochs", ",".join(map(str, epochs)), "--samples", str(args.samples),
              "--out", str(args.out)]
    jobs = []
    for case in args.cases.split(","):
        seeds = args.wgan_seeds if case == "wgan-gp-mnist" else args.seeds
        jobs += [(["--case", case, "--seed", s, *common], args.out / f"result-{case}-{s}.json")
                 for s in seeds.split(",")]
    jobs.append((["--case", "floor", *common], args.out / "result-floor.json"))
    started = time.time()

    def one(job: tuple[list[str], Path]) -> dict | None:
        argv, saved = job
        if args.resume and saved.is_file():
            return json.loads(saved.read_text(encoding="utf-8"))
        return _child(argv, saved)

    with concurrent.futures.ThreadPoolExecutor(args.jobs) as pool:
        done = list(pool.map(one, jobs))
    if any(r is None for r in done):
        print("some cases failed (above); rerun with --resume to retry only those",
              file=sys.stderr)
        return 1
    floor, results = done[-1], done[:-1]
    load = os.getloadavg()
    record = {"results": results, "floor": floor, "minutes": (time.time() - started) / 60,
              "load_average_end": load, "epochs": epochs, "samples": args.samples}
    (args.out / "quality.json").write_text(json.dumps(record, indent=2), encoding="utf-8")
    print(_table(results, floor))
    print(f"\n{record['minutes']:.0f} minutes, {args.jobs} cases at a time, one torch thread "
          f"each; load average at the end {load[0]:.2f} {load[1]:.2f} {load[2]:.2f}")
    return 0


if __name__ == "__main__":
    sys.path.insert(0, str(HERE))
    raise SystemExit(main())
