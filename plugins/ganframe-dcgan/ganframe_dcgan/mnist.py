"""The ``mnist`` dataset: where the files are looked for, and the split held in memory.

A split is one uint8 tensor ``N x 1 x 28 x 28`` (47 MB for train); a batch is one indexing
operation plus one scale to [-1, 1], so the training loop never runs Python per image. Batches
carry the digits' labels, for class-conditional models; unconditional ones ignore them.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

import torch
from torch import Tensor

from ganframe.components import Batch, data_path, resolve_data_path
from ganframe.download import cache_dir as download_cache_dir
from ganframe.errors import UserError
from ganframe_dcgan import download, idx

DATA_ENV = "GANFRAME_DATA"
CACHE_ENV = "GANFRAME_CACHE"

SPLIT_FILES: dict[str, tuple[str, str]] = {
    "train": ("train-images-idx3-ubyte", "train-labels-idx1-ubyte"),
    "test": ("t10k-images-idx3-ubyte", "t10k-labels-idx1-ubyte"),
}


def cache_dir() -> Path:
    """Where downloads go when no ``root`` is given: ``$GANFRAME_CACHE/mnist`` or
    ``~/.cache/ganframe/mnist``."""
    return download_cache_dir("mnist")


def search_folders(root: Path | None, data_root: Path | None = None) -> list[Path]:
    """Folders searched, in order: ``root``, ``$GANFRAME_DATA/mnist``, torchvision's
    ``MNIST/raw`` under those, then the download cache. ``data_root`` overrides
    ``$GANFRAME_DATA`` (the core passes it in the build context)."""
    bases: list[Path] = []
    if root is not None:
        bases.append(root)
    data = data_root if data_root is not None else os.environ.get(DATA_ENV) or None
    if data:
        bases.append(Path(data).expanduser() / "mnist")
    folders = list(bases)
    folders += [b / "MNIST" / "raw" for b in bases]
    if data:
        folders.append(Path(data).expanduser() / "MNIST" / "raw")
    folders.append(cache_dir())
    unique: list[Path] = []
    for f in folders:
        if f not in unique:
            unique.append(f)
    return unique


def find_file(folder: Path, name: str) -> Path | None:
    """``name`` raw or gzipped; also the dotted spelling some copies use
    (``train-images.idx3-ubyte``). Temporary ``*.part`` files never match. Anything with the
    name that is not a folder is found, also a FIFO or a device: reading it then fails with
    a message saying what it is, instead of a search that goes on elsewhere."""
    dotted = name.replace("-idx", ".idx")
    for candidate in (name, f"{name}.gz", dotted, f"{dotted}.gz"):
        path = folder / candidate
        if path.exists() and not path.is_dir():
            return path
    return None


def locate(
    split: str,
    root: Path | None,
    *,
    download_missing: bool,
    data_root: Path | None = None,
    progress: bool = True,
) -> tuple[Path, Path]:
    """Paths of the split's images and labels files, downloading them if allowed."""
    names = SPLIT_FILES[split]
    folders = search_folders(root, data_root)
    for folder in folders:
        found = [find_file(folder, n) for n in names]
        if found[0] is not None and found[1] is not None:
            return found[0], found[1]
    target = root if root is not None else cache_dir()
    if not download_missing:
        searched = ", ".join(str(f) for f in folders)
        raise UserError(
            f"MNIST {split} files ({names[0]}[.gz], {names[1]}[.gz]) not found; searched "
            f"{searched}. Put them into {target}, or set the GANFRAME_DATA environment "
            "variable to a folder that has them in its mnist/ subfolder, or set "
            "download = true in the recipe's [data] table."
        )
    paths = []
    for name in names:
        existing = find_file(target, name)
        paths.append(existing or download.download_file(name, target, progress=progress))
    return paths[0], paths[1]


_LOADED: dict[tuple[Any, ...], tuple[Tensor, Tensor]] = {}


def load_split(
    split: str = "train",
    root: Path | None = None,
    *,
    download_missing: bool = True,
    data_root: Path | None = None,
    progress: bool = True,
) -> tuple[Tensor, Tensor, Path]:
    """(uint8 images N x 1 x 28 x 28, int64 labels N, images path), memoised per process so
    a metric and the dataset that share a split read it once."""
    if split not in SPLIT_FILES:
        raise UserError(f"unknown MNIST split {split!r}; use 'train' or 'test'.")
    images_path, labels_path = locate(
        split, root, download_missing=download_missing, data_root=data_root, progress=progress
    )
    key = tuple(
        (str(p.resolve()), p.stat().st_size, p.stat().st_mtime_ns)
        for p in (images_path, labels_path)
    )
    if key not in _LOADED:
        _LOADED.clear()  # keep at most one split pair around; train is 47 MB
        _LOADED[key] = idx.read_pair(images_path, labels_path)
    images, labels = _LOADED[key]
    return images, labels, images_path


class MnistDataset:
    """One MNIST split (optionally some digits only, optionally the first ``limit``)."""

    kind = "image"

    def __init__(self, images: Tensor, labels: Tensor, *, split: str = "train",
                 source: Path | None = None) -> None:
        if images.dtype != torch.uint8 or images.dim() != 4 or images.shape[1:] != (1, 28, 28):
            raise ValueError(f"expected uint8 N x 1 x 28 x 28 images, got {images.dtype} "
                             f"{tuple(images.shape)}")
        self.images = images
        self.labels = labels
        self.split = split
        self.source = source

    def __len__(self) -> int:
        return int(self.images.shape[0])

    def get(self, index: Tensor) -> Batch:
        """Images in [-1, 1] (fresh memory) and their digits as int64 labels."""
        images = self.images[index].to(torch.float32).div_(127.5).sub_(1.0)
        return Batch(images, self.labels[index].to(torch.int64))

    def info(self) -> dict[str, Any]:
        return {
            "name": "mnist",
            "shape": [1, 28, 28],
            "channels": 1,
            "height": 28,
            "width": 28,
            "value_range": [-1.0, 1.0],
            "num_classes": 10,
            "class_names": [str(d) for d in range(10)],
            "split": self.split,
            "size": len(self),
            "classes": sorted(int(c) for c in torch.unique(self.labels).tolist()),
        }


def subset(images: Tensor, labels: Tensor, classes: list[int] | None,
           limit: int | None) -> tuple[Tensor, Tensor]:
    if classes is not None:
        keep = torch.isin(labels, torch.tensor(classes, dtype=labels.dtype))
        images, labels = images[keep], labels[keep]
    if limit is not None:
        images, labels = images[:limit], labels[:limit]
    return images, labels


def resolve_root(root: Path | None, ctx: Any) -> Path | None:
    """``root`` as ganframe's data-path convention reads it: a relative folder is looked up
    in $GANFRAME_DATA, the recipe's folder, then the working directory."""
    if root is None:
        return None
    return resolve_data_path(root, ctx, "data.root")


def build_mnist(config: Any, ctx: Any) -> MnistDataset:
    """Factory for the ``mnist`` dataset (config: :class:`ganframe_dcgan.plugin.MnistConfig`).
    ``root`` follows ganframe's data-path convention (recorded resolved for a shipped
    recipe)."""
    root = data_path(config, "root", ctx)
    images, labels, source = load_split(
        config.split,
        root,
        download_missing=config.download,
        data_root=getattr(ctx, "data_root", None),
    )
    images, labels = subset(images, labels, config.classes, config.limit)
    if len(images) == 0:
        raise UserError(
            f"the MNIST {config.split} split has no images of classes {config.classes} "
            f"(from {source}); check 'classes' in the recipe's [data] table."
        )
    return MnistDataset(images, labels, split=config.split, source=source)
