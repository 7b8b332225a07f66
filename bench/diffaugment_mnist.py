"""DiffAugment on little data: the dcgan-mnist recipe on a 1,000-image MNIST subset, with and
without ``train.augment``, at equal steps, on two seeds.

    GANFRAME_DATA=/path/to/datasets python bench/diffaugment_mnist.py            # recorded setting
    GANFRAME_DATA=/path/to/datasets python bench/diffaugment_mnist.py --quick    # smoke run

Each case is the shipped ``dcgan-mnist`` recipe (non-saturating loss, TTUR, EMA 0.99) with
``data.limit = 1000`` (the first 1,000 training digits, about 100 per class), run by
``ganframe run`` in its own process with one torch thread (``--jobs`` at a time), without
metrics during training. Each ``--policies`` entry other than ``none`` adds ``train.augment =
"<policy>"`` (Zhao et al. 2020: the critic sees every real and fake image augmented); the
default compares none with the paper's full "color,translation,cutout". With 1,000 images
and ``--steps`` 3,000 steps of 64 the critic sees each real digit about 190 times, long
enough to memorise them, which is where the paper's augmentation helps.

Every final (EMA) generator is scored with ``mnist-fid`` on ``--samples`` images (the same
latent draws for all) against the 10,000 test digits. Writes ``diffaugment.json`` and
prints a table (FID per case and seed, and the mean).
"""

from __future__ import annotations

import argparse
import concurrent.futures
import json
import os
import subprocess
import sys
from pathlib import Path
from typing import Any

POLICY = "color,translation,cutout"
EVAL_SEED = 1234


def case_name(policy: str) -> str:
    return "plain" if policy == "none" else policy.replace(",", "-")


def run_case(policy: str, seed: int, steps: int, limit: int, out: Path,
             extra: list[str]) -> Path:
    """Train one case with ``ganframe run``; returns its last checkpoint."""
    folder = out / f"{case_name(policy)}-seed{seed}"
    sets = [f"seed={seed}", f"train.steps={steps}", f"data.limit={limit}", "metrics=[]",
            "train.sample_every=0", f"train.checkpoint_every={steps}", 'device="cpu"', *extra]
    if policy != "none":
        sets.append(f'train.augment="{policy}"')
    cmd = [sys.executable, "-m", "ganframe", "run", "dcgan-mnist", "-o", str(folder),
           "--force", "-q"]
    for item in sets:
        cmd += ["--set", item]
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    subprocess.run(cmd, check=True, env=env, stdout=subprocess.DEVNULL)
    return folder / "checkpoints" / "last.safetensors"


def score(checkpoint: Path, samples: int) -> dict[str, Any]:
    import torch
    from ganframe_dcgan.metric import MnistFid
    from ganframe_dcgan.plugin import MnistFidConfig

    from ganframe.api import load_checkpoint, sample

    torch.set_num_threads(1)
    images = sample(load_checkpoint(checkpoint), samples, seed=EVAL_SEED)
    return MnistFid(MnistFidConfig(download=False)).score(images, seed=0)


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--steps", type=int, default=3000)
    parser.add_argument("--limit", type=int, default=1000, help="training images kept")
    parser.add_argument("--seeds", type=int, nargs="+", default=[0, 1])
    parser.add_argument("--samples", type=int, default=10_000)
    parser.add_argument("--policies", nargs="+", default=["none", POLICY],
                        help="train.augment policies to compare ('none': no augmentation)")
    parser.add_argument("--jobs", type=int, default=2)
    parser.add_argument("--set", dest="sets", action="append", default=[], metavar="KEY=VALUE",
                        help="recipe override for every case (e.g. optim.critic.lr=2e-3)")
    parser.add_argument("--out", type=Path, default=Path("bench-out/diffaugment"))
    parser.add_argument("--quick", action="store_true", help="20 steps, 500 samples, 1 seed")
    args = parser.parse_args(argv)
    if args.quick:
        args.steps, args.samples, args.seeds = 20, 500, [0]
    args.out.mkdir(parents=True, exist_ok=True)
    cases = [(policy, seed) for seed in args.seeds for policy in args.policies]
    with concurrent.futures.ThreadPoolExecutor(args.jobs) as pool:
        ckpts = list(pool.map(
            lambda c: run_case(c[0], c[1], args.steps, args.limit, args.out, args.sets), cases))
    rows = [{"augment": policy, "seed": seed, "steps": args.steps, "limit": args.limit,
             "sets": args.sets,
             **score(ckpt, args.samples)}
            for (policy, seed), ckpt in zip(cases, ckpts, strict=True)]
    (args.out / "diffaugment.json").write_text(json.dumps(rows, indent=1) + "\n")
    print(f"| case | seed | steps | images | FID ({args.samples} samples) | KID | IS | classes |")
    print("|---|---|---|---|---|---|---|---|")
    for r in rows:
        name = "no augment" if r["augment"] == "none" else f"augment {r['augment']}"
        print(f"| {name} | {r['seed']} | {r['steps']} | {r['limit']} | {r['fid']:.1f} "
              f"| {r['kid']:.3f} | {r['is']:.2f} | {r['classes_covered']} |")
    for policy in args.policies:
        fids = [r["fid"] for r in rows if r["augment"] == policy]
        print(f"mean FID, augment {policy}: {sum(fids) / len(fids):.1f}")


if __name__ == "__main__":
    main()
