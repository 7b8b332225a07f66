"""FID of N generated 32x32 RGB images against cached reference statistics: ganframe's ``fid``
metric vs torchmetrics' ``FrechetInceptionDistance`` called directly, same network and weights,
in the same run: images/s and peak RSS, each side in a fresh process.

Both sides start from the same reference statistics (computed once, outside the clock):
ganframe reads them from its safetensors cache; torchmetrics gets the same cached features
put into its running sums (``real_features_sum``, ``real_features_cov_sum``, the count: what
its ``update(real=True)`` accumulates) with ``reset_real_features=False``, so each side's
clock covers the generated images' Inception pass and the FID.
The Inception weights are random ones of the standard architecture (the real file is not
needed to measure speed: the same 23.9 M parameters run the same operations); the FID values
of both sides are printed and must agree. ganframe runs the network channels-last (its
loader's choice); the torchmetrics side runs it in PyTorch's default layout, as torchmetrics'
own extractor does.

Run by hand (not part of ``bench/run.py``)::

    python bench/inception_fid.py --n 10000                    # the full row (GPU advised)
    python bench/inception_fid.py --n 10000 --n-reference 5000 --side-by-side   # on 2 CPU cores
    python bench/inception_fid.py --n 100 --resize 299          # reduced, CPU
    python bench/inception_fid.py --n 2500 --resize 75          # more images than features

Cases alternate over ``--repeats``; medians are printed.
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path


def images(n: int, seed: int):
    import torch

    g = torch.Generator().manual_seed(seed)
    x = torch.rand(n, 3, 8, 8, generator=g)
    x = torch.nn.functional.interpolate(x, size=32, mode="bilinear", align_corners=False)
    return (x * 2 - 1).clamp(-1, 1)  # generated images are floats in [-1, 1]


def batches(x, size: int):
    for i in range(0, x.shape[0], size):
        yield x[i:i + size]


def case(which: str, args: argparse.Namespace, weights: Path, ref_folder: Path) -> dict:
    """One timed run in this (fresh) process."""
    import torch

    from ganframe.builtin.image_features import to_uint8_rgb
    from ganframe.builtin.image_metrics import InceptionMetric, InceptionMetricConfig
    from ganframe.builtin.inception import FeatureHead, load_inception

    fake = images(args.n, 2)
    if which == "ganframe":
        config = InceptionMetricConfig(folder=str(ref_folder), weights=str(weights),
                                       resize=args.resize, batch_size=args.batch_size,
                                       device=args.device)
        metric = InceptionMetric("fid", config, None)
        metric.reference()  # from the cache: outside the clock
        metric.network()  # loaded outside the clock, as on the torchmetrics side
        start = time.perf_counter()
        with torch.no_grad():
            value = metric.score_images(batches(fake, args.batch_size))["fid"]
    else:
        from torchmetrics.image.fid import FrechetInceptionDistance

        # the network as torchmetrics' own extractor (torch-fidelity's) runs it: PyTorch's
        # default memory layout; ganframe's loader puts it in channels-last
        net = load_inception(weights, args.device, args.resize).to(
            memory_format=torch.contiguous_format)
        m = FrechetInceptionDistance(feature=FeatureHead(net, "pool"),
                                     reset_real_features=False).to(args.device)
        # The reference: the same cached features ganframe reads, put into torchmetrics'
        # own running sums (what its update(real=True) accumulates, in float64), so neither
        # side runs the reference images through the network inside or outside the clock.
        config = InceptionMetricConfig(folder=str(ref_folder), weights=str(weights),
                                       resize=args.resize, batch_size=args.batch_size,
                                       device=args.device)
        ref = InceptionMetric("fid", config, None).reference().features.double()
        m.real_features_sum = ref.sum(dim=0).to(args.device)
        m.real_features_cov_sum = (ref.T @ ref).to(args.device)
        m.real_features_num_samples = torch.tensor(ref.shape[0], device=args.device)
        start = time.perf_counter()
        with torch.no_grad():
            for b in batches(fake, args.batch_size):
                m.update(to_uint8_rgb(b).to(args.device), real=False)
            value = float(m.compute())
    if args.device.startswith("cuda"):
        torch.cuda.synchronize()
    seconds = time.perf_counter() - start
    return {"case": which, "seconds": seconds, "images_per_s": args.n / seconds, "fid": value,
            "rss_mb": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024}


def prepare(args: argparse.Namespace, folder: Path) -> tuple[Path, Path]:
    """Random weights of the architecture, a reference folder of PNGs, its cached stats."""
    import torch
    from PIL import Image
    from safetensors.torch import save_file

    from ganframe.builtin.image_features import to_uint8_rgb
    from ganframe.builtin.image_metrics import InceptionMetric, InceptionMetricConfig
    from ganframe.builtin.inception import FidInceptionV3

    torch.manual_seed(0)
    net = FidInceptionV3(args.resize)
    for m in net.modules():
        if isinstance(m, torch.nn.Conv2d):
            torch.nn.init.kaiming_normal_(m.weight, nonlinearity="relu")
    weights = folder / "inception-random.safetensors"
    save_file(net.state_dict(), str(weights))
    ref = folder / "reference"
    ref.mkdir()
    for i, im in enumerate(to_uint8_rgb(images(args.n_reference, 1))):
        Image.fromarray(im.permute(1, 2, 0).numpy()).save(ref / f"{i:05d}.png")
    config = InceptionMetricConfig(folder=str(ref), weights=str(weights), resize=args.resize,
                                   batch_size=args.batch_size, device=args.device)
    InceptionMetric("fid", config, None).reference()
    return weights, ref


def main() -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--n", type=int, default=10_000)
    p.add_argument("--n-reference", type=int, default=None, help="default: --n")
    p.add_argument("--resize", type=int, default=299)
    p.add_argument("--batch-size", type=int, default=50)
    p.add_argument("--device", default="cpu")
    p.add_argument("--repeats", type=int, default=1)
    p.add_argument("--side-by-side", action="store_true",
                   help="run the two cases at the same time (one process each; needs 2 cores)")
    p.add_argument("--case", help=argparse.SUPPRESS)
    p.add_argument("--dir", help=argparse.SUPPRESS)
    args = p.parse_args()
    args.n_reference = args.n_reference or args.n
    if args.case:
        folder = Path(args.dir)
        out = case(args.case, args, folder / "inception-random.safetensors",
                   folder / "reference")
        print(json.dumps(out))
        return 0
    folder = Path(tempfile.mkdtemp(prefix="ganframe-bench-fid-"))
    try:
        return measure(args, folder)
    finally:
        shutil.rmtree(folder, ignore_errors=True)


def measure(args: argparse.Namespace, folder: Path) -> int:
    os.environ["GANFRAME_CACHE"] = str(folder / "cache")
    prepare(args, folder)
    results: dict[str, list[dict]] = {"ganframe": [], "torchmetrics": []}
    order = ["ganframe", "torchmetrics"]
    options = [(f"--{k.replace('_', '-')}", str(v)) for k, v in vars(args).items()
               if k not in ("case", "dir", "repeats", "side_by_side")]

    def command(which: str) -> list[str]:
        return [sys.executable, __file__, "--case", which, "--dir", str(folder),
                *(part for pair in options for part in pair)]

    for r in range(args.repeats):
        if args.side_by_side:  # both at once, one process each: same machine conditions
            procs = {w: subprocess.Popen(command(w), stdout=subprocess.PIPE, text=True,
                                         env=os.environ) for w in order}
            for which, proc in procs.items():
                out, _ = proc.communicate()
                if proc.returncode:
                    raise SystemExit(f"{which} case failed ({proc.returncode})")
                results[which].append(json.loads(out.strip().splitlines()[-1]))
            continue
        for which in order[r % 2:] + order[:r % 2]:
            line = subprocess.run(command(which), check=True, capture_output=True, text=True,
                                  env=os.environ).stdout.strip().splitlines()[-1]
            results[which].append(json.loads(line))
    for which, rows in results.items():
        rate = statistics.median(r["images_per_s"] for r in rows)
        rss = max(r["rss_mb"] for r in rows)
        print(f"{which:13s} {rate:8.2f} img/s  peak RSS {rss:7.0f} MB  fid {rows[0]['fid']:.6f}"
              f"  (n={args.n}, reference {args.n_reference}, {args.resize} px, "
              f"{args.device}, threads {os.environ.get('OMP_NUM_THREADS', 'default')})")
    return 0


if __name__ == "__main__":
    sys.exit(main())
