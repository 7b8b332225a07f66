"""Per-class PNG grids: given each sample's class (``info["sample_labels"]``), the image
writer lays out one row per class, in class order; otherwise ceil(sqrt(N)) per row."""

from __future__ import annotations

import numpy as np
import torch
from PIL import Image

from ganframe.builtin.writers import image_grid, write_image_png

H = W = 3
PAD = 2


def _tiles(n: int) -> np.ndarray:
    """n single-channel tiles, tile i filled with the value that becomes grey level 10 + i."""
    levels = (10 + np.arange(n)) / 127.5 - 1
    return np.broadcast_to(levels[:, None, None, None], (n, 1, H, W)).astype(np.float32)


def _level(grid: np.ndarray, row: int, col: int) -> int:
    return int(grid[PAD + row * (H + PAD), PAD + col * (W + PAD), 0])


def test_one_row_per_class_in_class_order():
    labels = [2, 0, 1, 2, 0, 1, 2]  # ragged: class 2 has three samples
    grid = image_grid(_tiles(7), labels=labels)
    assert grid.shape == (3 * (H + PAD) + PAD, 3 * (W + PAD) + PAD, 1)
    # row k holds the samples of class k, in sample order; empty places stay black
    assert [_level(grid, 0, c) for c in range(2)] == [11, 14]
    assert [_level(grid, 1, c) for c in range(2)] == [12, 15]
    assert [_level(grid, 2, c) for c in range(3)] == [10, 13, 16]
    assert _level(grid, 0, 2) == 0


def test_one_class_or_no_labels_keep_the_square_layout():
    square = image_grid(_tiles(9))
    assert square.shape[:2] == (3 * (H + PAD) + PAD,) * 2
    assert np.array_equal(image_grid(_tiles(9), labels=[4] * 9), square)
    assert np.array_equal(image_grid(_tiles(9), labels=[0, 1]), square)  # not one per sample


def test_the_png_writer_reads_sample_labels(tmp_path):
    path = tmp_path / "g.png"
    write_image_png(torch.from_numpy(_tiles(20)), path, {"sample_labels": [i % 10 for i in
                                                                         range(20)]})
    with Image.open(path) as im:
        assert im.size == (2 * (W + PAD) + PAD, 10 * (H + PAD) + PAD)
