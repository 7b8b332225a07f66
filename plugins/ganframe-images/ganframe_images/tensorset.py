"""Image datasets as ganframe's loop wants them: a batch is one indexing operation.

:class:`ImageTensorDataset` holds every image as one uint8 tensor N x C x S x S (an image
folder once decoded, CIFAR); :class:`StreamedImageDataset` holds file paths only and decodes
each batch when asked (an image folder larger than the memory budget). Both return images in
[-1, 1] and, for class folders, a :class:`ganframe.components.Batch` with the labels.
Horizontal flips are drawn from torch's global random generator, which checkpoints save and
restore, so a resumed run flips the same images as an uninterrupted one.
"""

from __future__ import annotations

from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch import Tensor

from ganframe.components import Batch
from ganframe_images.decode import Transform, decode_or_explain


def _flip(images: Tensor, hflip: bool) -> Tensor:
    if hflip and images.shape[0]:
        flip = torch.rand(images.shape[0]) < 0.5
        images[flip] = images[flip].flip(-1)
    return images


def _to_batch(images: Tensor, labels: Tensor | None) -> Tensor | Batch:
    return images if labels is None else Batch(images, labels)


class ImageTensorDataset:
    """Decoded images held in memory (uint8), labels optional."""

    kind = "image"

    def __init__(self, images: Tensor, labels: Tensor | None, *, name: str,
                 class_names: list[str] | None = None, hflip: bool = False,
                 extra_info: dict[str, Any] | None = None) -> None:
        if images.dtype != torch.uint8 or images.dim() != 4:
            raise ValueError(f"expected uint8 N x C x H x W images, got {images.dtype} "
                             f"{tuple(images.shape)}")
        self.images = images
        self.labels = labels
        self.name = name
        self.class_names = class_names or []
        self.hflip = hflip
        self.extra_info = extra_info or {}

    def __len__(self) -> int:
        return int(self.images.shape[0])

    def get(self, index: Tensor) -> Tensor | Batch:
        images = self.images[index].to(torch.float32).div_(127.5).sub_(1.0)
        labels = None if self.labels is None else self.labels[index].to(torch.int64)
        return _to_batch(_flip(images, self.hflip), labels)

    def info(self) -> dict[str, Any]:
        return image_info(self.name, tuple(self.images.shape[1:]), len(self),
                          self.class_names, self.extra_info)


class StreamedImageDataset:
    """Image files decoded per batch (for sets larger than the memory budget)."""

    kind = "image"

    def __init__(self, files: list[Path], labels: Tensor | None, transform: Transform, *,
                 name: str, class_names: list[str] | None = None, hflip: bool = False,
                 workers: int = 1, extra_info: dict[str, Any] | None = None) -> None:
        self.files = files
        self.labels = labels
        self.transform = transform
        self.name = name
        self.class_names = class_names or []
        self.hflip = hflip
        self.workers = max(1, workers)
        self.extra_info = extra_info or {}
        self._pool: ThreadPoolExecutor | None = None

    def __len__(self) -> int:
        return len(self.files)

    def __getstate__(self) -> dict[str, Any]:  # thread pools do not cross processes
        return {**self.__dict__, "_pool": None}

    def get(self, index: Tensor) -> Tensor | Batch:
        paths = [self.files[i] for i in index.tolist()]
        arrays = decode_many(paths, self.transform, self.workers, self)
        images = torch.from_numpy(np.stack([a for a, _alpha in arrays]))
        images = images.to(torch.float32).div_(127.5).sub_(1.0)
        labels = None if self.labels is None else self.labels[index].to(torch.int64)
        return _to_batch(_flip(images, self.hflip), labels)

    def info(self) -> dict[str, Any]:
        t = self.transform
        return image_info(self.name, (t.channels, t.size, t.size), len(self),
                          self.class_names, {**self.extra_info, "streamed": True})


def decode_many(paths: list[Path], transform: Transform, workers: int,
                owner: Any = None) -> list[tuple[np.ndarray, bool]]:
    """Decode ``paths`` in order (threads: Pillow releases the GIL while decoding)."""
    if workers <= 1 or len(paths) < 8:
        return [decode_or_explain(p, transform) for p in paths]
    pool = getattr(owner, "_pool", None)
    if pool is None:
        pool = ThreadPoolExecutor(workers, thread_name_prefix="ganframe-decode")
        if owner is not None:
            owner._pool = pool
    return list(pool.map(lambda p: decode_or_explain(p, transform), paths))


def image_info(name: str, shape: tuple[int, ...], size: int, class_names: list[str],
               extra: dict[str, Any]) -> dict[str, Any]:
    c, h, w = (int(v) for v in shape)
    info: dict[str, Any] = {"name": name, "shape": [c, h, w], "channels": c, "height": h,
                            "width": w, "value_range": [-1.0, 1.0], "size": size}
    if class_names:
        info["num_classes"] = len(class_names)
        info["class_names"] = list(class_names)
    info.update(extra)
    return info
