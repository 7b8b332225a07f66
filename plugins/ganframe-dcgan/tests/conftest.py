"""Tiny self-made MNIST-format files, a local HTTP mirror and an isolated environment.

No test reads real data or the network: IDX files are written here from synthetic
"digit-like" shapes, downloads come from a ``http.server`` on 127.0.0.1, and the data and
cache settings point into ``tmp_path``.
"""

from __future__ import annotations

import gzip
import hashlib
import struct
from collections.abc import Iterator
from pathlib import Path
from types import SimpleNamespace

import numpy as np
import pytest

from ganframe.testing_mirror import Mirror, serve_folder

SPLIT_NAMES = {
    "train": ("train-images-idx3-ubyte", "train-labels-idx1-ubyte"),
    "test": ("t10k-images-idx3-ubyte", "t10k-labels-idx1-ubyte"),
}


def idx_bytes(array: np.ndarray, magic: int) -> bytes:
    """IDX encoding of a uint8 array (big-endian header)."""
    a = np.ascontiguousarray(array, dtype=np.uint8)
    return struct.pack(f">i{a.ndim}i", magic, *a.shape) + a.tobytes()


def shapes(n: int, seed: int = 0, classes: int = 4) -> tuple[np.ndarray, np.ndarray]:
    """``n`` 28x28 uint8 "digits" drawn from a few stroke templates (ring, bar, dash,
    cross), jittered by up to 2 pixels, and their template labels."""
    rng = np.random.default_rng(seed)
    yy, xx = np.mgrid[0:28, 0:28]
    images = np.zeros((n, 28, 28), dtype=np.uint8)
    labels = rng.integers(0, classes, n).astype(np.uint8)
    for i in range(n):
        cy, cx = 14 + rng.integers(-2, 3), 14 + rng.integers(-2, 3)
        r = np.hypot(yy - cy, xx - cx)
        kind = labels[i]
        if kind == 0:
            mask = (r > 6) & (r < 9)
        elif kind == 1:
            mask = (abs(xx - cx) < 2) & (abs(yy - cy) < 10)
        elif kind == 2:
            mask = (abs(yy - cy) < 2) & (abs(xx - cx) < 10)
        else:
            mask = ((abs(xx - cx) < 2) | (abs(yy - cy) < 2)) & (r < 10)
        images[i][mask] = 255
    return images, labels


def write_split(
    folder: Path, split: str = "train", n: int = 64, *, gz: bool = True, seed: int = 0,
    labels: np.ndarray | None = None,
) -> tuple[np.ndarray, np.ndarray]:
    """Write a split's two IDX files into ``folder``; returns (images, labels)."""
    folder.mkdir(parents=True, exist_ok=True)
    images, made = shapes(n, seed)
    labels = made if labels is None else labels
    img_name, lab_name = SPLIT_NAMES[split]
    for name, data in ((img_name, idx_bytes(images, 2051)), (lab_name, idx_bytes(labels, 2049))):
        if gz:
            (folder / f"{name}.gz").write_bytes(gzip.compress(data))
        else:
            (folder / name).write_bytes(data)
    return images, labels


def md5(data: bytes) -> str:
    return hashlib.md5(data, usedforsecurity=False).hexdigest()


@pytest.fixture(autouse=True)
def one_torch_thread() -> Iterator[None]:
    """These tests use tiny networks, which gain nothing from a second thread; on a busy
    2-core machine two spinning OpenMP threads per process made them up to ten times slower."""
    import torch

    before = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(before)


@pytest.fixture
def isolated_env(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """No real data or real cache is visible; downloads cannot leave the machine."""
    from ganframe_dcgan import download, mnist

    monkeypatch.delenv("GANFRAME_DATA", raising=False)
    monkeypatch.setenv("GANFRAME_CACHE", str(tmp_path / "cache"))
    monkeypatch.setattr(download, "MIRRORS", [])
    monkeypatch.setattr(mnist, "_LOADED", {})
    return tmp_path


@pytest.fixture
def http_mirror(tmp_path: Path) -> Iterator[Mirror]:
    """A folder served on 127.0.0.1 by the core's test mirror (ETags, ranges, cut transfers)."""
    with serve_folder(tmp_path / "www") as mirror:
        yield mirror


@pytest.fixture
def idxtools() -> SimpleNamespace:
    """The helpers above, for test modules (conftest is not importable under importlib)."""
    return SimpleNamespace(
        idx_bytes=idx_bytes, shapes=shapes, write_split=write_split, md5=md5,
        SPLIT_NAMES=SPLIT_NAMES,
    )
