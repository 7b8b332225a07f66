"""Decoding one image file into the square uint8 array a dataset stores, with Pillow.

The transform is fixed and small on purpose (it is part of the cache key): centre-crop to a
square, resize to ``size`` (one Pillow call with a crop box, antialiased), convert to grey or
RGB. Transparent pixels are composited over a solid background (black or white, the recipe's
choice) rather than dropped, so an RGBA logo on transparency does not turn into the colours
hidden under its alpha. JPEGs are decoded at a reduced scale when much larger than ``size``
(``Image.draft``), which makes photos several times faster to read.
"""

from __future__ import annotations

import warnings
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from ganframe.errors import UserError


@dataclass(frozen=True)
class Transform:
    """What turns a file into an array; its ``key()`` is part of the cache key."""

    size: int = 32
    channels: int = 3
    background: str = "black"
    min_size: int = 8

    def key(self) -> str:
        return f"v1 size={self.size} ch={self.channels} bg={self.background} min={self.min_size}"


class BadImage(Exception):
    """A file that is not a usable image; the message says why (the caller names the file)."""


def decode(path: Path, t: Transform) -> tuple[np.ndarray, bool]:
    """(uint8 array channels x size x size, whether an alpha channel was composited)."""
    from PIL import Image, UnidentifiedImageError

    try:
        with warnings.catch_warnings():
            warnings.simplefilter("error", Image.DecompressionBombWarning)
            with Image.open(path) as im:
                return _convert(im, t)
    except BadImage:
        raise
    except (UnidentifiedImageError, Image.DecompressionBombError,
            Image.DecompressionBombWarning) as exc:
        raise BadImage(f"not a readable image ({exc})") from None
    except PermissionError as exc:
        raise BadImage(f"cannot read it ({exc.strerror or exc})") from None
    except (OSError, SyntaxError, ValueError, EOFError, MemoryError) as exc:
        raise BadImage(f"damaged or truncated image data ({type(exc).__name__}: {exc})") from None


def _convert(im, t: Transform) -> tuple[np.ndarray, bool]:  # type: ignore[no-untyped-def]
    from PIL import Image

    w, h = im.size
    if min(w, h) < t.min_size:
        raise BadImage(f"too small ({w}x{h} px; images need at least min_size = "
                       f"{t.min_size} px on each side)")
    if im.format == "JPEG":
        im.draft("RGB" if t.channels == 3 else "L", (t.size, t.size))
        w, h = im.size  # draft may have scaled it down by 2, 4 or 8
    im.load()
    has_alpha = im.mode in ("RGBA", "LA", "PA", "RGBa", "La") or (
        im.mode == "P" and "transparency" in im.info)
    if has_alpha:
        rgba = im.convert("RGBA")
        fill = (255, 255, 255, 255) if t.background == "white" else (0, 0, 0, 255)
        im = Image.alpha_composite(Image.new("RGBA", rgba.size, fill), rgba)
    mode = "RGB" if t.channels == 3 else "L"
    if im.mode != mode:
        im = im.convert(mode)
    side = min(w, h)
    box = ((w - side) / 2, (h - side) / 2, (w + side) / 2, (h + side) / 2)
    out = im.resize((t.size, t.size), Image.Resampling.BICUBIC, box=box,
                    reducing_gap=None if side < 3 * t.size else 2.0)
    arr = np.asarray(out, dtype=np.uint8)
    arr = arr[None] if arr.ndim == 2 else arr.transpose(2, 0, 1)
    return np.ascontiguousarray(arr), has_alpha


def decode_or_explain(path: Path, t: Transform) -> tuple[np.ndarray, bool]:
    """:func:`decode`, with a bad file as a :class:`UserError` naming it."""
    try:
        return decode(path, t)
    except BadImage as exc:
        raise UserError(f"image-folder: {path}: {exc}. Remove or replace the file, or set "
                        "skip_bad = true in the recipe's [data] table to skip bad files "
                        "(they are counted in the log).") from None


def header_check(path: Path, t: Transform) -> str | None:
    """What is wrong with a file judged by its header alone (no pixel decoding), or None.

    For streamed sets: damage further into the file shows only when its batch is decoded,
    and then stops the run with an error naming the file."""
    from PIL import Image, UnidentifiedImageError

    try:
        with warnings.catch_warnings():
            warnings.simplefilter("error", Image.DecompressionBombWarning)
            with Image.open(path) as im:
                w, h = im.size
    except (UnidentifiedImageError, Image.DecompressionBombError,
            Image.DecompressionBombWarning) as exc:
        return f"not a readable image ({exc})"
    except PermissionError as exc:
        return f"cannot read it ({exc.strerror or exc})"
    except (OSError, SyntaxError, ValueError, EOFError) as exc:
        return f"damaged image header ({type(exc).__name__}: {exc})"
    if min(w, h) < t.min_size:
        return f"too small ({w}x{h} px; images need at least min_size = {t.min_size} px)"
    return None
