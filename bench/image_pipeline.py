"""The image-folder pipeline vs the loader a user would write by hand (PIL + torch DataLoader).

    python bench/image_pipeline.py                 # 10,000 images, 3 repeats
    python bench/image_pipeline.py --n 2000 --repeats 1

A folder of ``n`` small RGB PNGs (48x40 px, 10 class sub-folders, drawn here) is read at
32 px RGB, batch 64, shuffled, for one epoch:

* ganframe, first epoch: ``image-folder`` built with an empty cache (scan, decode every file
  with its decoding threads, write the safetensors cache), then every batch through
  ``get()``, as the loop asks for them;
* ganframe, cached: the same after a restart: the cache is read instead of the files;
* baseline: a ``torch.utils.data.Dataset`` whose ``__getitem__`` opens the file with PIL,
  converts to RGB, centre-crops and resizes to 32 px (the same Pillow call) and scales to
  [-1, 1], fed through ``DataLoader(batch_size=64, shuffle=True, num_workers=W)``; it decodes
  every epoch (the second epoch is its "cached" figure: only the OS file cache is warm).

torchvision's ``ImageFolder`` is the usual baseline, but torchvision does not import beside
this machine's CPU torch 2.13 wheel, so the hand-written PIL loader stands in for it (it is
what ``ImageFolder`` + ``transforms.Resize/CenterCrop/ToTensor/Normalize`` do, minus
torchvision's overhead). Cases alternate per repeat; images/s = n / (build + epoch) seconds.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import numpy as np

SIZE, BATCH = 32, 64


def make_images(root: Path, n: int, classes: int = 10) -> Path:
    """``n`` PNGs of 48x40 px in ``classes`` sub-folders (made once per folder)."""
    from PIL import Image

    marker = root / f".made-{n}"
    if marker.exists():
        return root
    rng = np.random.default_rng(0)
    for k in range(classes):
        (root / f"class{k}").mkdir(parents=True, exist_ok=True)
    for i in range(n):
        pixels = rng.integers(0, 256, (40, 48, 3), dtype=np.uint8)
        pixels[10:30, 12:36] = (k := i % classes) * 25
        Image.fromarray(pixels).save(root / f"class{k}" / f"{i:05d}.png")
    marker.write_text("ok")
    return root


def ganframe_epoch(root: Path, cache: Path, *, fresh: bool) -> dict[str, float]:
    """Build the image-folder dataset (with an empty cache when ``fresh``) and read one
    shuffled epoch through ``get``; seconds for each part."""
    import torch

    from ganframe.testing import build_component, make_context

    if fresh:
        shutil.rmtree(cache, ignore_errors=True)
    os.environ["GANFRAME_CACHE"] = str(cache)
    t0 = time.perf_counter()
    ds = build_component("dataset", "image-folder",
                         options={"path": str(root), "size": SIZE, "channels": 3},
                         ctx=make_context({}, kind="image"))
    t1 = time.perf_counter()
    order = torch.randperm(len(ds), generator=torch.Generator().manual_seed(0))
    seen = 0
    for start in range(0, len(ds) - BATCH + 1, BATCH):
        batch = ds.get(order[start:start + BATCH])
        seen += batch.data.shape[0]
    t2 = time.perf_counter()
    return {"build_s": t1 - t0, "epoch_s": t2 - t1, "images": seen}


class HandDataset:
    """What a user writes without ganframe: one PIL decode per item."""

    def __init__(self, root: Path) -> None:
        self.files = sorted(root.glob("*/*.png"))
        names = sorted({p.parent.name for p in self.files})
        self.labels = [names.index(p.parent.name) for p in self.files]

    def __len__(self) -> int:
        return len(self.files)

    def __getitem__(self, i: int) -> Any:
        import torch
        from PIL import Image

        with Image.open(self.files[i]) as im:
            im = im.convert("RGB")
            w, h = im.size
            side = min(w, h)
            box = ((w - side) / 2, (h - side) / 2, (w + side) / 2, (h + side) / 2)
            im = im.resize((SIZE, SIZE), Image.Resampling.BICUBIC, box=box)
            x = torch.from_numpy(np.asarray(im).copy()).permute(2, 0, 1)
        return x.float().div_(127.5).sub_(1.0), self.labels[i]


def baseline_epochs(root: Path, workers: int) -> dict[str, float]:
    """Two shuffled epochs of the hand-written loader; seconds for each."""
    import torch
    from torch.utils.data import DataLoader

    t0 = time.perf_counter()
    ds = HandDataset(root)
    loader = DataLoader(ds, batch_size=BATCH, shuffle=True, num_workers=workers,
                        drop_last=True, generator=torch.Generator().manual_seed(0),
                        persistent_workers=workers > 0)
    times, seen = [], 0
    for _epoch in range(2):
        for x, _y in loader:
            seen += x.shape[0]
        times.append(time.perf_counter() - t0)
        t0 = time.perf_counter()
    return {"epoch1_s": times[0], "epoch2_s": times[1], "images": seen // 2}


def measure(n: int = 10_000, repeats: int = 3, workers: int = 0,
            folder: Path | None = None) -> dict[str, Any]:
    """Alternate the cases ``repeats`` times; raw seconds and images/s per repeat."""
    import torch

    torch.set_num_threads(1)
    tmp = Path(tempfile.mkdtemp(prefix="ganframe-bench-images-"))
    root = make_images(folder or tmp / "images", n)
    cache = tmp / "cache"
    runs: dict[str, list[dict[str, float]]] = {"first": [], "cached": [], "base": []}
    try:
        # warm-up, not timed: plugin loading and first imports are no part of reading data
        ganframe_epoch(make_images(tmp / "warm", BATCH), tmp / "warm-cache", fresh=True)
        baseline_epochs(tmp / "warm", 0)
        for r in range(repeats):
            order = ["ganframe", "base"] if r % 2 == 0 else ["base", "ganframe"]
            for case in order:
                if case == "ganframe":
                    runs["first"].append(ganframe_epoch(root, cache, fresh=True))
                    runs["cached"].append(ganframe_epoch(root, cache, fresh=False))
                else:
                    runs["base"].append(baseline_epochs(root, workers))
            print(f"images: repeat {r + 1}/{repeats} done", file=sys.stderr, flush=True)
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
    rate = {
        "ours_first": [n / (x["build_s"] + x["epoch_s"]) for x in runs["first"]],
        "ours_cached": [n / (x["build_s"] + x["epoch_s"]) for x in runs["cached"]],
        "base_first": [n / x["epoch1_s"] for x in runs["base"]],
        "base_second": [n / x["epoch2_s"] for x in runs["base"]],
    }
    return {"n": n, "repeats": repeats, "workers": workers, "runs": runs, "rate": rate,
            "cached_build_s": [x["build_s"] for x in runs["cached"]]}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--n", type=int, default=10_000)
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--workers", type=int, default=0, help="baseline DataLoader workers")
    args = parser.parse_args()
    print(json.dumps(measure(args.n, args.repeats, args.workers), indent=1))


if __name__ == "__main__":
    main()
