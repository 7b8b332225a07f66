"""Tiny image folders made by the tests, an isolated data/cache environment, one torch thread.

No test reads real data or the network: images are drawn here with Pillow, CIFAR archives are
faked in the binary format, and downloads come from a server on 127.0.0.1."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from types import SimpleNamespace

import numpy as np
import pytest
from PIL import Image

from ganframe.testing import build_ctx, fake_info, run_folder  # noqa: F401


def blob_image(kind: int, rng: np.random.Generator, size: int = 24) -> np.ndarray:
    """An RGB image of class ``kind``: 0 = a dark square on light, 1 = a light disc on dark,
    jittered in place and colour, so the two classes differ in mean brightness and layout."""
    yy, xx = np.mgrid[0:size, 0:size]
    cy, cx = size / 2 + rng.integers(-2, 3), size / 2 + rng.integers(-2, 3)
    tint = rng.integers(0, 40, 3)
    if kind == 0:
        img = np.full((size, size, 3), 200, np.int64) + tint
        mask = (abs(yy - cy) < size / 4) & (abs(xx - cx) < size / 4)
        img[mask] = 40
    else:
        img = np.full((size, size, 3), 30, np.int64) + tint
        img[np.hypot(yy - cy, xx - cx) < size / 3] = 230
    return np.clip(img, 0, 255).astype(np.uint8)


def make_folder(root: Path, counts: dict[str, int] | int, *, size: int = 24, seed: int = 0,
                ext: str = "png") -> Path:
    """A folder of images: ``counts`` per class name (sub-folders), or an int (flat)."""
    rng = np.random.default_rng(seed)
    root.mkdir(parents=True, exist_ok=True)
    items = counts.items() if isinstance(counts, dict) else [("", counts)]
    for k, (name, n) in enumerate(items):
        folder = root / name if name else root
        folder.mkdir(exist_ok=True)
        for i in range(n):
            Image.fromarray(blob_image(k % 2, rng, size)).save(folder / f"img{i:04d}.{ext}")
    return root


@pytest.fixture(autouse=True)
def isolated(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[Path]:
    """No real data or cache; downloads cannot leave the machine; one torch thread."""
    import torch
    from ganframe_images import cifar

    monkeypatch.delenv("GANFRAME_DATA", raising=False)
    monkeypatch.setenv("GANFRAME_CACHE", str(tmp_path / "cache"))
    monkeypatch.setattr(cifar, "MIRRORS", [])
    before = torch.get_num_threads()
    torch.set_num_threads(1)
    yield tmp_path
    torch.set_num_threads(before)


@pytest.fixture
def imgtools() -> SimpleNamespace:
    """The helpers above, for test modules (conftest is not importable under importlib)."""
    return SimpleNamespace(make_folder=make_folder, blob_image=blob_image)
