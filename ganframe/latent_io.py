"""Files for the latent tools (:mod:`ganframe.latent`): PNG strips and animated GIFs.

An interpolation is a grid with one interpolation per row; a walk is an animated GIF whose
every frame is a grid of the walking samples, or, written to a ``.png``, a strip with one
row per sample and one column per frame. Images are the data's ``N x C x H x W`` in
[-1, 1]; other kinds of data go through the sample writers of their kind instead.
Written atomically (:func:`ganframe.fileio.atomic_write`) with Pillow.
"""

from __future__ import annotations

import math
from pathlib import Path
from typing import Any

from torch import Tensor

from ganframe.errors import UserError
from ganframe.fileio import atomic_write

__all__ = ["GIF_FRAME_MS", "grid", "write_gif", "write_grid_png"]

#: Pixels between tiles, as in the sample grids of a run.
PADDING = 2
#: Default time each frame of a walk is shown.
GIF_FRAME_MS = 80


def grid(images: Tensor, ncol: int, padding: int = PADDING) -> Any:
    """Tile N x C x H x W images in [-1, 1] into one PIL image, ``ncol`` per row."""
    import numpy as np
    from PIL import Image

    x = images.detach().float().cpu().numpy()
    if x.ndim != 4 or x.shape[1] not in (1, 3) or x.shape[0] == 0:
        raise UserError(f"expected images shaped N x C x H x W with 1 or 3 channels, got "
                        f"{tuple(x.shape)}; choose a .npy file for other data.")
    n, c, h, w = x.shape
    ncol = max(1, min(ncol, n))
    nrow = math.ceil(n / ncol)
    pixels = np.round((np.clip(x, -1.0, 1.0) + 1.0) * 127.5).astype(np.uint8)
    out = np.zeros((nrow * (h + padding) + padding, ncol * (w + padding) + padding, c),
                   dtype=np.uint8)
    for i in range(n):
        top, left = padding + (i // ncol) * (h + padding), padding + (i % ncol) * (w + padding)
        out[top : top + h, left : left + w] = pixels[i].transpose(1, 2, 0)
    return Image.fromarray(out[:, :, 0], mode="L") if c == 1 else Image.fromarray(out, "RGB")


def write_grid_png(images: Tensor, path: Path, ncol: int) -> Path:
    """A PNG grid, ``ncol`` images per row (one interpolation per row)."""
    image = grid(images, ncol)
    atomic_write(Path(path), lambda f: image.save(f, format="PNG"))
    return Path(path)


def write_gif(frames: Tensor, path: Path, frame_ms: int = GIF_FRAME_MS) -> Path:
    """An animated GIF, looping: frame ``f`` is the grid of ``frames[f]`` (F x N x C x H x W)."""
    if frames.dim() != 5:
        raise UserError(f"a walk is F x N x C x H x W images, got {tuple(frames.shape)}.")
    ncol = math.ceil(math.sqrt(frames.shape[1]))
    images = [grid(f, ncol) for f in frames]
    first, rest = images[0], images[1:]

    def save(f: Any) -> None:
        first.save(f, format="GIF", save_all=True, append_images=rest, duration=frame_ms,
                   loop=0, optimize=False)

    atomic_write(Path(path), save)
    return Path(path)
