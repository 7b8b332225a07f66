"""Registers the core's sample writers for images and 2-D points.

A hookimpl module: only lazy strings here, so nothing heavy is imported until a sample is
actually written. The first writer registered for a data kind is that kind's default, which
is why PNG comes first for both.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from ganframe import hookimpl

_MODULE = "ganframe.builtin.writers"

_WRITERS: tuple[tuple[str, str, str, str], ...] = (
    ("image", ".png", "write_image_png",
     "Grid of images, ceil(sqrt(N)) per row; one row per class for chosen labels."),
    ("image", ".npy", "write_image_npy", "Raw float32 N×C×H×W array in [-1, 1]."),
    ("points", ".png", "write_points_png", "Scatter plot of the first two coordinates."),
    ("points", ".npy", "write_points_npy", "Raw float32 N×D array."),
    ("points", ".csv", "write_points_csv", "Coordinates as CSV with a header row."),
)


@hookimpl
def register_sample_writers(register: Callable[..., Any]) -> None:
    for kind, suffix, attr, summary in _WRITERS:
        register(kind, suffix, f"{_MODULE}:{attr}", summary=summary)
