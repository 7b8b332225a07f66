"""The ``image-folder`` dataset: any folder of PNG/JPEG/WebP/BMP images, with or without
class sub-folders.

Building it: scan the folder (:mod:`ganframe_images.scan`, stat calls only), then either read
the decoded images from the cache (:mod:`ganframe_images.imagecache`, keyed by the scan and
the transform), or decode every file once with a few threads and write the cache. A set whose
decoded size (N x C x size x size bytes) is over ``memory_mb`` is streamed instead: every
file's header is checked now (format, size; a bad file is reported or skipped as usual), and
each batch is decoded when the loop asks for it, so memory holds one batch of images.
"""

from __future__ import annotations

import logging
import os
import time
from pathlib import Path
from typing import Any

import numpy as np
import torch

from ganframe.errors import UserError
from ganframe_images import imagecache
from ganframe_images.decode import BadImage, Transform, decode, header_check
from ganframe_images.scan import Found, scan_folder
from ganframe_images.tensorset import ImageTensorDataset, StreamedImageDataset

log = logging.getLogger("ganframe_images")


def default_workers() -> int:
    return max(1, min(8, os.cpu_count() or 1))


def build_image_folder(config: Any, ctx: Any) -> ImageTensorDataset | StreamedImageDataset:
    """Factory for ``image-folder`` (config: :class:`ganframe_images.plugin.ImageFolderConfig`)."""
    root = ctx.data_path(config, "path", must_exist=True) if hasattr(ctx, "data_path") else \
        Path(config.path).expanduser()
    found = scan_folder(Path(root), skip_bad=config.skip_bad)
    if config.limit is not None:
        found.files, found.labels = found.files[: config.limit], found.labels[: config.limit]
        found.stats = found.stats[: config.limit]
    t = Transform(config.size, config.channels, config.background, config.min_size)
    workers = config.workers or default_workers()
    labels = torch.tensor(found.labels, dtype=torch.int64) if found.conditional else None
    extra: dict[str, Any] = {"source": str(found.root)}
    if len(found.files) * t.channels * t.size * t.size > config.memory_mb * 2**20:
        return _streamed(found, t, labels, config, workers, extra)
    images, kept, skipped, alpha = _decoded(found, t, config, workers)
    if images.shape[0] == 0:
        raise UserError(f"data.path: every image in {found.root} was bad and skipped "
                        f"({len(skipped)} files); see the log for why.")
    _report(found, skipped, alpha)
    extra.update(skipped_files=len(found.skipped) + len(skipped), alpha_composited=alpha)
    return ImageTensorDataset(
        images, None if labels is None else labels[kept], name="image-folder",
        class_names=found.class_names, hflip=config.hflip, extra_info=extra)


def _decoded(found: Found, t: Transform, config: Any,
             workers: int) -> tuple[torch.Tensor, torch.Tensor, list[str], int]:
    """(images, kept indices, skipped, alpha count): from the cache, or decoded and cached."""
    prefix = len(str(found.root).rstrip(os.sep)) + 1  # files are built as root / ...
    rel = [str(p)[prefix:] for p in found.files]
    key = imagecache.cache_key(found.root, rel, found.stats, found.labels, found.class_names,
                               t.key(), config.skip_bad)
    path = imagecache.cache_path(key)
    if config.cache:
        hit = imagecache.load(path, len(found.files), (t.channels, t.size))
        if hit is not None:
            log.info("image-folder: %d images from the cache %s", len(hit["kept"]), path)
            return hit["images"], hit["kept"], hit["skipped"], hit["alpha"]
    start = time.perf_counter()
    arrays, kept, skipped, alpha = _decode_all(found.files, t, config.skip_bad, workers)
    shape = (0, t.channels, t.size, t.size)
    images = torch.from_numpy(np.stack(arrays)) if arrays else torch.empty(shape,
                                                                           dtype=torch.uint8)
    kept_t = torch.tensor(kept, dtype=torch.int64)
    log.info("image-folder: decoded %d images in %.1f s", len(arrays),
             time.perf_counter() - start)
    if config.cache and arrays:
        labels = torch.tensor(found.labels, dtype=torch.int64)[kept_t]
        imagecache.save(path, images, labels, kept_t, skipped, alpha, found.root)
    return images, kept_t, skipped, alpha


def _decode_all(files: list[Path], t: Transform, skip_bad: bool,
                workers: int) -> tuple[list[np.ndarray], list[int], list[str], int]:
    def one(path: Path) -> tuple[np.ndarray, bool] | str:
        try:
            return decode(path, t)
        except BadImage as exc:
            return f"{path}: {exc}"

    if workers > 1 and len(files) > 16:
        from concurrent.futures import ThreadPoolExecutor

        with ThreadPoolExecutor(workers, thread_name_prefix="ganframe-decode") as pool:
            results = list(pool.map(one, files, chunksize=32))
    else:
        results = [one(p) for p in files]
    arrays, kept, skipped, alpha = [], [], [], 0
    for i, r in enumerate(results):
        if isinstance(r, str):
            if not skip_bad:
                raise UserError(f"image-folder: {r}. Remove or replace the file, or set "
                                "skip_bad = true in the recipe's [data] table to skip bad "
                                "files (they are counted in the log).")
            skipped.append(r)
            continue
        arrays.append(r[0])
        alpha += int(r[1])
        kept.append(i)
    return arrays, kept, skipped, alpha


def _streamed(found: Found, t: Transform, labels: torch.Tensor | None, config: Any,
              workers: int, extra: dict[str, Any]) -> StreamedImageDataset:
    files, kept, skipped = [], [], []
    for i, path in enumerate(found.files):
        problem = header_check(path, t)
        if problem is None:
            files.append(path)
            kept.append(i)
        elif config.skip_bad:
            skipped.append(f"{path}: {problem}")
        else:
            raise UserError(f"image-folder: {path}: {problem}. Remove or replace the file, or "
                            "set skip_bad = true in the recipe's [data] table.")
    if not files:
        raise UserError(f"data.path: every image in {found.root} was bad and skipped.")
    _report(found, skipped, 0)
    log.info("image-folder: %d images larger than memory_mb = %g once decoded; decoding each "
             "batch as it is needed", len(files), config.memory_mb)
    extra.update(skipped_files=len(found.skipped) + len(skipped))
    kept_t = torch.tensor(kept, dtype=torch.int64)
    return StreamedImageDataset(
        files, None if labels is None else labels[kept_t], t, name="image-folder",
        class_names=found.class_names, hflip=config.hflip, workers=workers, extra_info=extra)


def _report(found: Found, skipped: list[str], alpha: int) -> None:
    bad = found.skipped + skipped
    if bad:
        shown = "; ".join(bad[:5]) + (f"; and {len(bad) - 5} more" if len(bad) > 5 else "")
        log.warning("image-folder: skipped %d bad inputs in %s (skip_bad = true): %s",
                    len(bad), found.root, shown)
    if alpha:
        log.info("image-folder: %d images had transparency, composited over the background",
                 alpha)
