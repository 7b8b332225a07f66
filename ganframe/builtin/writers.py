"""The core's sample writers for image and 2-D point data.

Every writer has the signature ``writer(samples, path, info)`` and writes atomically: the
file appears complete or not at all, so a run killed mid-write never leaves a truncated PNG
that looks like a real sample. numpy, PIL, matplotlib and torch are imported inside the
functions so that importing this module stays cheap.
"""

from __future__ import annotations

import csv
import io
import math
import os
import re
import stat
import time
from collections.abc import Callable
from pathlib import Path
from typing import IO, TYPE_CHECKING, Any

from ganframe import fileio
from ganframe.errors import UserError

if TYPE_CHECKING:  # pragma: no cover
    import numpy as np
    from torch import Tensor

__all__ = [
    "atomic_write",
    "image_grid",
    "remove_stale_temps",
    "write_image_npy",
    "write_image_png",
    "write_points_csv",
    "write_points_npy",
    "write_points_png",
]

GRID_PADDING = 2
PLOT_SIZE = 512
PLOT_DPI = 100
#: The plot's axes in pixels, (left, top, right, bottom): room for tick labels left and below.
PLOT_BOX = (44, 12, 500, 480)
POINT_RADIUS = 2.5
POINT_COLOUR = "#1f77b4"  # matplotlib's first colour (tab:blue)


def atomic_write(path: Path, write: Callable[[IO[bytes]], None] | bytes) -> None:
    """Create the parent folder and replace ``path`` with what ``write`` writes (or with the
    bytes given), atomically and durably (:func:`ganframe.fileio.atomic_write`), after
    removing what earlier, killed writes of the same file left behind
    (:func:`remove_stale_temps`); plugins' writers may use it too."""
    remove_stale_temps(Path(path))
    fileio.atomic_write(path, write, parents=True)


#: A temporary file untouched for this long belongs to a write that was killed: a live write
#: of a sample file is done within seconds, and its file grows while it runs.
STALE_TEMP_AGE_S = 60.0


def remove_stale_temps(path: Path, min_age_s: float = STALE_TEMP_AGE_S) -> int:
    """Delete the temporary siblings that killed writes of ``path`` left (``.NAME.<12 hex
    digits>.tmp``, :func:`ganframe.fileio.atomic_write`'s names) and that nobody has
    written to for ``min_age_s`` seconds, so that a concurrent write of the same file keeps
    its own. Returns how many were removed."""
    folder = path.parent
    pattern = re.compile(re.escape(f"{fileio.TEMP_PREFIX}{path.name}.") + "[0-9a-f]{12}"
                         + re.escape(fileio.TEMP_SUFFIX))
    try:
        names = [e for e in os.scandir(folder) if pattern.fullmatch(e.name)]
    except OSError:  # no folder yet, or not ours to list: the write reports what matters
        return 0
    removed = 0
    now = time.time()
    for entry in names:
        try:
            st = entry.stat(follow_symlinks=False)
            if stat.S_ISREG(st.st_mode) and now - st.st_mtime >= min_age_s:
                os.unlink(entry.path)
                removed += 1
        except OSError:
            continue
    return removed


def _as_array(samples: Tensor | Any) -> np.ndarray:
    """float32 numpy array on the CPU, whatever device/dtype/grad state the tensor is in."""
    import numpy as np

    if hasattr(samples, "detach"):
        samples = samples.detach().float().cpu().numpy()
    return np.ascontiguousarray(np.asarray(samples, dtype=np.float32))


def _npy(array: np.ndarray, path: Path) -> None:
    import numpy as np

    atomic_write(path, lambda f: np.save(f, array, allow_pickle=False))


# -- images -------------------------------------------------------------------------------
def _images(samples: Tensor | Any, path: Path) -> np.ndarray:
    x = _as_array(samples)
    if x.ndim == 3:  # N×H×W: single-channel images without the channel axis
        x = x[:, None]
    if x.ndim != 4 or x.shape[1] not in (1, 3) or x.shape[0] == 0:
        raise UserError(
            f"cannot write images to {path}: expected a non-empty batch shaped N×C×H×W with "
            f"1 or 3 channels, got shape {tuple(x.shape)}. Check the generator's output "
            "shape, or choose a .npy file to save the raw array."
        )
    return x


def _tile_places(n: int, labels: Any = None) -> tuple[list[tuple[int, int]], int, int]:
    """(row, column) of each of ``n`` tiles, and the grid's rows and columns: ceil(sqrt(n))
    per row, or, given the samples' class labels with more than one class among them, one
    row per class (in class order, each row in sample order)."""
    classes = sorted(set(labels)) if labels is not None and len(labels) == n else []
    if len(classes) > 1:
        row_of = {k: r for r, k in enumerate(classes)}
        used = [0] * len(classes)
        places = []
        for label in labels:
            r = row_of[label]
            places.append((r, used[r]))
            used[r] += 1
        return places, len(classes), max(used)
    ncol = math.ceil(math.sqrt(n))
    return [(i // ncol, i % ncol) for i in range(n)], math.ceil(n / ncol), ncol


def image_grid(
    images: np.ndarray, padding: int = GRID_PADDING, labels: Any = None
) -> np.ndarray:
    """Tile N×C×H×W images in [-1, 1] into one H'×W'×C uint8 array, ceil(sqrt(N)) per row,
    with ``padding`` black pixels around and between the tiles. Given ``labels`` (one class
    per image, e.g. a conditional generator's ``--labels all``), each class gets a row."""
    import numpy as np

    n, c, h, w = images.shape
    places, nrow, ncol = _tile_places(n, labels)
    pixels = np.round((np.clip(images, -1.0, 1.0) + 1.0) * 127.5).astype(np.uint8)
    grid = np.zeros(
        (nrow * (h + padding) + padding, ncol * (w + padding) + padding, c), dtype=np.uint8
    )
    for i, (row, col) in enumerate(places):
        top = padding + row * (h + padding)
        left = padding + col * (w + padding)
        grid[top : top + h, left : left + w] = pixels[i].transpose(1, 2, 0)
    return grid


def _png(image: Any, path: Path) -> None:
    atomic_write(path, lambda f: image.save(f, format="PNG"))


def write_image_png(samples: Tensor, path: Path, info: dict[str, Any]) -> None:
    """One PNG grid of the batch, for looking at; one row per class when ``info`` has
    ``sample_labels`` (the class of each sample) with more than one class."""
    from PIL import Image

    grid = image_grid(_images(samples, path), labels=(info or {}).get("sample_labels"))
    image = Image.fromarray(grid[:, :, 0], mode="L") if grid.shape[2] == 1 else (
        Image.fromarray(grid, mode="RGB")
    )
    _png(image, path)


def write_image_npy(samples: Tensor, path: Path, info: dict[str, Any]) -> None:
    """The raw float32 N×C×H×W batch in [-1, 1], for computing with."""
    _npy(_images(samples, path), path)


# -- points -------------------------------------------------------------------------------
def _points(samples: Tensor | Any, path: Path) -> np.ndarray:
    x = _as_array(samples)
    if x.ndim == 1:
        x = x[:, None]
    if x.ndim != 2:
        raise UserError(
            f"cannot write points to {path}: expected an N×D array of coordinates, got shape "
            f"{tuple(x.shape)}."
        )
    return x


def _plot_range(info: dict[str, Any], xy: np.ndarray) -> tuple[tuple[float, float], ...]:
    """Axis limits: ``info["plot_range"]`` as ``[lo, hi]`` (both axes) or
    ``[[xlo, xhi], [ylo, yhi]]``; otherwise the data's extent plus a 5% margin."""
    import numpy as np

    given = _given_range(info.get("plot_range"))
    if given is not None:
        return given
    out = []
    for axis in range(2):
        values = xy[:, axis][np.isfinite(xy[:, axis])]
        lo, hi = (float(values.min()), float(values.max())) if values.size else (-1.0, 1.0)
        pad = 0.05 * (hi - lo) if hi > lo else 1.0
        out.append((lo - pad, hi + pad))
    return tuple(out)


def _given_range(given: Any) -> tuple[tuple[float, float], ...] | None:
    """``plot_range`` when it is usable: finite limits, each range wider than nothing. The
    value comes from a checkpoint's data description, so anything else is ignored (the
    plot then spans the data) rather than trusted."""

    def pair(value: Any) -> tuple[float, float] | None:
        if not (isinstance(value, list | tuple) and len(value) == 2 and all(
            isinstance(v, int | float) and not isinstance(v, bool) and math.isfinite(v)
            for v in value
        )):
            return None
        lo, hi = float(value[0]), float(value[1])
        return (lo, hi) if hi > lo else None

    both = pair(given)
    if both is not None:
        return (both, both)
    if isinstance(given, list | tuple) and len(given) >= 2:
        axes = (pair(given[0]), pair(given[1]))
        if axes[0] is not None and axes[1] is not None:
            return (axes[0], axes[1])
    return None


def points_plot(points: np.ndarray, info: dict[str, Any]) -> Any:
    """A scatter plot (PIL image, ``PLOT_SIZE`` square) of the first two coordinates, drawn
    with matplotlib: a frame with ticks, the zero axes when visible, one dot per point (1-D
    data is drawn on the x axis). The axes fill :data:`PLOT_BOX` exactly, so a point's pixel
    follows from the plot range (tests check the dots land there)."""
    import matplotlib
    import numpy as np
    from PIL import Image

    matplotlib.use("Agg", force=False)
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure

    xy = points[:, :2] if points.shape[1] >= 2 else np.pad(points, ((0, 0), (0, 1)))
    (x0, x1), (y0, y1) = _plot_range(info, xy)
    left, top, right, bottom = PLOT_BOX
    fig = Figure(figsize=(PLOT_SIZE / PLOT_DPI, PLOT_SIZE / PLOT_DPI), dpi=PLOT_DPI,
                 facecolor="white")
    FigureCanvasAgg(fig)
    ax = fig.add_axes((left / PLOT_SIZE, 1 - bottom / PLOT_SIZE, (right - left) / PLOT_SIZE,
                       (bottom - top) / PLOT_SIZE))
    ax.set_xlim(x0, x1)
    ax.set_ylim(y0, y1)
    ax.tick_params(labelsize=7, length=3, colors="#555555")
    for spine in ax.spines.values():
        spine.set_color("#a0a0a0")
    if x0 < 0 < x1:
        ax.axvline(0.0, color="#dcdcdc", linewidth=0.8, zorder=0)
    if y0 < 0 < y1:
        ax.axhline(0.0, color="#dcdcdc", linewidth=0.8, zorder=0)
    with np.errstate(invalid="ignore"):
        inside = ((xy[:, 0] >= x0) & (xy[:, 0] <= x1) & (xy[:, 1] >= y0) & (xy[:, 1] <= y1))
    # a dot of POINT_RADIUS pixels (marker size is in points squared, 72 points an inch),
    # over the frame, so a point on the edge of the range is drawn whole
    size = (2 * POINT_RADIUS * 72 / PLOT_DPI) ** 2
    ax.scatter(xy[inside, 0], xy[inside, 1], s=size, c=POINT_COLOUR, linewidths=0,
               clip_on=False, zorder=3)
    fig.canvas.draw()
    rgba = np.asarray(fig.canvas.buffer_rgba())
    return Image.fromarray(np.ascontiguousarray(rgba[..., :3]), mode="RGB")


def write_points_png(samples: Tensor, path: Path, info: dict[str, Any]) -> None:
    """A scatter plot of the first two coordinates."""
    _png(points_plot(_points(samples, path), info), path)


def write_points_npy(samples: Tensor, path: Path, info: dict[str, Any]) -> None:
    """The raw float32 N×D array."""
    _npy(_points(samples, path), path)


def _column_names(d: int) -> list[str]:
    return list("xyzw"[:d]) if d <= 4 else [f"x{i}" for i in range(d)]


def write_points_csv(samples: Tensor, path: Path, info: dict[str, Any]) -> None:
    """Comma-separated coordinates with a header row (x,y,... ), for spreadsheets and pandas."""
    points = _points(samples, path)
    text = io.StringIO()
    out = csv.writer(text, lineterminator="\n")
    out.writerow(_column_names(points.shape[1]))
    out.writerows([f"{v:.9g}" for v in row] for row in points.tolist())
    atomic_write(path, lambda f: f.write(text.getvalue().encode("utf-8")))
