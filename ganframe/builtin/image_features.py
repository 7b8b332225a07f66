"""Inception features of image sets, and the cache of reference statistics.

Image sets come from three places: a dataset (any registered dataset of image data, one
split of it), a folder of image files, or a generator. Every image becomes uint8 RGB before
the network sees it: generated images in [-1, 1] are quantised as a PNG writer would
(``round((x + 1) * 127.5)``), so a generator scores the same whether its samples are
measured in memory or saved and measured as files; one-channel images are repeated to RGB.

A reference set's features are computed once per (source, split, image count, network input
size, weights sha256) and kept in the user cache (``$GANFRAME_CACHE/inception-stats/``) as a
safetensors file holding the mean and covariance (FID) and the features themselves (KID,
precision/recall), so a metric during training pays only for the generated side.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch
from torch import Tensor, nn

from ganframe.errors import UserError

#: Image files a folder source reads (what Pillow opens without plugins).
IMAGE_SUFFIXES = (".png", ".jpg", ".jpeg", ".bmp", ".webp", ".tif", ".tiff")
CACHE_FOLDER = "inception-stats"
#: Bumped when what a cache file holds, or how features are computed, changes.
CACHE_VERSION = 1


def to_uint8_rgb(images: Tensor) -> Tensor:
    """(N, 3, H, W) uint8 from uint8 images or float images in [-1, 1]; 1 channel -> 3."""
    if images.dim() != 4 or images.shape[1] not in (1, 3):
        raise UserError(f"the Inception metrics measure images (N, 1 or 3, H, W); got a batch "
                        f"of shape {list(images.shape)}.")
    if images.dtype != torch.uint8:
        images = images.float().clamp(-1, 1).add(1).mul(127.5).round().to(torch.uint8)
    return images.expand(-1, 3, -1, -1) if images.shape[1] == 1 else images


@torch.no_grad()
def embed(net: nn.Module, batches: Iterator[Tensor], device: torch.device | str,
          limit: int | None = None) -> tuple[Tensor, Tensor]:
    """(pool features (N, 2048), unbiased logits (N, 1008)) on the CPU, float32, for the
    images ``batches`` yields (at most ``limit``)."""
    pools, logits, n = [], [], 0
    for batch in batches:
        if limit is not None and n >= limit:
            break
        if limit is not None:
            batch = batch[: limit - n]
        x = to_uint8_rgb(batch).to(device)
        pool, logit = net(x)
        pools.append(pool.float().cpu())
        logits.append(logit.float().cpu())
        n += x.shape[0]
    if not pools:
        raise UserError("no images to measure (the image set is empty).")
    return torch.cat(pools), torch.cat(logits)


# -- sources -------------------------------------------------------------------------------


def dataset_batches(dataset: Any, batch_size: int) -> Iterator[Tensor]:
    """A dataset's items in order, in batches (its image tensors, labels dropped)."""
    from ganframe.components import as_batch

    if getattr(dataset, "kind", "image") != "image":
        raise UserError(f"the Inception metrics measure images, but the reference dataset "
                        f"holds {dataset.kind!r} data.")
    n = len(dataset)
    for i in range(0, n, batch_size):
        yield as_batch(dataset.get(torch.arange(i, min(i + batch_size, n)))).data


def folder_files(folder: Path) -> list[Path]:
    """The image files directly in ``folder``, sorted by name (refused when none)."""
    if not folder.is_dir():
        raise UserError(f"{folder}: not a folder of images.")
    files = sorted(p for p in folder.iterdir()
                   if p.suffix.lower() in IMAGE_SUFFIXES and p.is_file())
    if not files:
        raise UserError(f"{folder}: holds no image files ({', '.join(IMAGE_SUFFIXES)}).")
    return files


def _read_image(path: Path) -> Tensor:
    import numpy as np
    from PIL import Image

    try:
        with Image.open(path) as im:
            array = np.asarray(im.convert("RGB"), dtype=np.uint8)
    except (OSError, ValueError) as exc:
        raise UserError(f"{path}: cannot read the image ({exc}).") from None
    return torch.from_numpy(array.copy()).permute(2, 0, 1)


def folder_batches(files: list[Path], batch_size: int) -> Iterator[Tensor]:
    """The images of ``files`` as uint8 RGB batches; a batch ends where the size changes
    (Inception resizes every image to its input size anyway)."""
    batch: list[Tensor] = []
    for path in files:
        image = _read_image(path)
        if batch and (len(batch) == batch_size or batch[0].shape != image.shape):
            yield torch.stack(batch)
            batch = []
        batch.append(image)
    if batch:
        yield torch.stack(batch)


def generated_batches(generator: nn.Module, n: int, batch_size: int, device: Any,
                      seed: int) -> Iterator[Tensor]:
    """``n`` samples of ``generator`` (eval mode, seeded), in batches."""
    from ganframe.components import generate

    rng = torch.Generator(device=device).manual_seed(seed)
    was_training = generator.training
    generator.eval()
    try:
        for i in range(0, n, batch_size):
            yield generate(generator, min(batch_size, n - i), device=device, rng=rng)
    finally:
        generator.train(was_training)


# -- reference statistics ------------------------------------------------------------------


@dataclass
class Reference:
    """A reference set's features and Gaussian (float64 mean and covariance)."""

    features: Tensor
    mu: Tensor
    sigma: Tensor
    source: str
    cached: Path | None = None

    _sqrt: Tensor | None = None

    @property
    def n(self) -> int:
        return int(self.features.shape[0])

    def sigma_sqrt(self) -> Tensor:
        """The covariance's square root, computed once (FID against many generated sets)."""
        if self._sqrt is None:
            from ganframe.builtin.image_scores import sqrt_psd

            self._sqrt = sqrt_psd(self.sigma)
        return self._sqrt


def cache_path(key: dict[str, Any]) -> Path:
    from ganframe.download import cache_dir

    text = json.dumps({**key, "version": CACHE_VERSION}, sort_keys=True)
    digest = hashlib.sha256(text.encode("utf-8")).hexdigest()[:24]
    return cache_dir(CACHE_FOLDER, f"{digest}.safetensors")


def _load_cached(path: Path, key: dict[str, Any]) -> Reference | None:
    from safetensors import safe_open

    try:
        with safe_open(str(path), framework="pt") as f:
            meta = json.loads((f.metadata() or {}).get("key", "null"))
            if meta != {**key, "version": CACHE_VERSION}:
                return None
            t = {name: f.get_tensor(name) for name in ("features", "mu", "sigma")}
    except Exception:  # an unreadable or foreign cache file: recompute
        return None
    return Reference(t["features"], t["mu"], t["sigma"], key["source"], cached=path)


def reference(key: dict[str, Any], compute: Callable[[], Tensor], *,
              use_cache: bool = True) -> Reference:
    """The reference statistics for ``key`` (must name ``source``): from the cache, else
    ``compute()`` -> features, then stored (atomically) for next time."""
    from ganframe.builtin.image_scores import gaussian

    path = cache_path(key)
    if use_cache and path.is_file():
        found = _load_cached(path, key)
        if found is not None:
            return found
    features = compute().float().contiguous()
    mu, sigma = gaussian(features)
    ref = Reference(features, mu, sigma, key["source"])
    if use_cache:
        from safetensors.torch import save

        from ganframe.fileio import atomic_write

        blob = save({"features": features, "mu": mu.contiguous(), "sigma": sigma.contiguous()},
                    metadata={"key": json.dumps({**key, "version": CACHE_VERSION},
                                                sort_keys=True)})
        try:
            atomic_write(path, blob, parents=True)
            ref.cached = path
        except OSError:
            pass  # a read-only cache costs time at the next run, never the result
    return ref


def folder_key(files: list[Path]) -> str:
    """A digest of a folder's image files (names, sizes, times): edits invalidate its
    cache entry."""
    h = hashlib.sha256()
    for p in files:
        st = p.stat()
        h.update(f"{p.name}\0{st.st_size}\0{st.st_mtime_ns}\n".encode())
    return h.hexdigest()[:16]
