"""The core's sample writers: what ends up in the files, read back independently."""

from __future__ import annotations

import csv

import numpy as np
import pytest
import torch
from PIL import Image

from ganframe.builtin import writers
from ganframe.builtin.writers_plugin import register_sample_writers
from ganframe.errors import UserError


def files_in(folder) -> list[str]:
    return sorted(p.name for p in folder.iterdir())


def test_png_grid_size_and_gray_values(tmp_path) -> None:
    # 5 images of 1×4×3: ceil(sqrt(5)) = 3 per row, 2 rows, 2 px padding everywhere
    values = [-1.0, 0.0, 1.0, 0.5, 3.0]  # 3.0 is out of range and must clip to 255
    x = torch.stack([torch.full((1, 4, 3), v) for v in values])
    path = tmp_path / "grid.png"
    writers.write_image_png(x, path, {})
    with Image.open(path) as im:
        assert im.mode == "L"
        assert im.size == (3 * (3 + 2) + 2, 2 * (4 + 2) + 2)  # (width, height) = (17, 14)
        a = np.asarray(im)
    expected = [0, 128, 255, 191, 255]  # round((v + 1) * 127.5), clipped
    for i, want in enumerate(expected):
        top, left = 2 + (i // 3) * 6, 2 + (i % 3) * 5
        assert (a[top : top + 4, left : left + 3] == want).all(), i
    assert (a[:2] == 0).all() and (a[:, :2] == 0).all()  # padding
    assert (a[8:12, 12:15] == 0).all()  # the empty sixth tile
    assert files_in(tmp_path) == ["grid.png"]


def test_png_grid_rgb_channels(tmp_path) -> None:
    x = torch.zeros(4, 3, 2, 2)
    x[:, 0], x[:, 1], x[:, 2] = 1.0, -1.0, 0.0
    x[3, 2] = 1.0
    path = tmp_path / "rgb.png"
    writers.write_image_png(x, path, {})
    with Image.open(path) as im:
        assert im.mode == "RGB" and im.size == (10, 10)  # 2 per row: 2 * (2 + 2) + 2
        a = np.asarray(im)
    assert tuple(a[2, 2]) == (255, 0, 128)
    assert tuple(a[6, 6]) == (255, 0, 255)  # fourth image, bottom right


def test_png_accepts_gpu_style_tensors(tmp_path) -> None:
    x = torch.zeros(2, 1, 3, 3, dtype=torch.bfloat16, requires_grad=True)
    writers.write_image_png(x, tmp_path / "b.png", {})
    with Image.open(tmp_path / "b.png") as im:
        assert im.size == (2 * (3 + 2) + 2, 3 + 2 + 2)
        assert np.asarray(im)[2, 2] == 128


def test_png_rejects_wrong_channel_count(tmp_path) -> None:
    with pytest.raises(UserError, match=r"bad\.png.*2, 4, 4"):
        writers.write_image_png(torch.zeros(3, 2, 4, 4), tmp_path / "bad.png", {})
    assert files_in(tmp_path) == []


def test_image_npy_round_trips(tmp_path) -> None:
    x = torch.rand(3, 3, 5, 4, dtype=torch.float64) * 2 - 1
    path = tmp_path / "sub" / "dir" / "s.npy"  # parent folders are created
    writers.write_image_npy(x, path, {})
    back = np.load(path, allow_pickle=False)
    assert back.shape == (3, 3, 5, 4) and back.dtype == np.float32
    np.testing.assert_allclose(back, x.float().numpy())
    assert files_in(path.parent) == ["s.npy"]


POINTS = torch.tensor([[0.0, 0.0], [1.0, 1.0], [-0.5, 0.25]])


def test_points_csv(tmp_path) -> None:
    path = tmp_path / "p.csv"
    writers.write_points_csv(POINTS, path, {})
    with open(path, newline="") as f:
        rows = list(csv.reader(f))
    assert rows[0] == ["x", "y"]
    assert [[float(v) for v in r] for r in rows[1:]] == POINTS.tolist()
    writers.write_points_csv(torch.zeros(2, 3), path, {})
    assert path.read_text().splitlines()[0] == "x,y,z"


def test_points_npy(tmp_path) -> None:
    writers.write_points_npy(POINTS.double(), tmp_path / "p.npy", {})
    back = np.load(tmp_path / "p.npy", allow_pickle=False)
    assert back.dtype == np.float32 and back.tolist() == POINTS.tolist()


def _is_dot(pixel) -> bool:
    r, _g, b = (int(v) for v in pixel)
    return b > 150 and r < 100  # the blue point colour, not white/grey/black


def _pixel(x: float, y: float, xr: tuple[float, float], yr: tuple[float, float]):
    """(row, column) of a data point in the plot: the axes fill writers.PLOT_BOX exactly."""
    left, top, right, bottom = writers.PLOT_BOX
    col = left + (x - xr[0]) / (xr[1] - xr[0]) * (right - left)
    row = bottom - (y - yr[0]) / (yr[1] - yr[0]) * (bottom - top)
    return min(round(row), bottom - 1), min(round(col), right - 1)


def test_points_png_plot_range_places_points(tmp_path) -> None:
    path = tmp_path / "p.png"
    writers.write_points_png(POINTS, path, {"plot_range": [-1, 1]})
    with Image.open(path) as im:
        assert im.size == (writers.PLOT_SIZE, writers.PLOT_SIZE)
        a = np.asarray(im.convert("RGB"))

    def pixel(x: float, y: float) -> tuple[int, int]:
        return _pixel(x, y, (-1, 1), (-1, 1))

    for x, y in POINTS.tolist():
        assert _is_dot(a[pixel(x, y)]), (x, y)
    assert not _is_dot(a[pixel(0.5, -0.5)])  # no point there
    assert tuple(a[pixel(0.5, -0.5)]) == (255, 255, 255)
    dots = sum(_is_dot(p) for p in a.reshape(-1, 3))
    r = writers.POINT_RADIUS
    assert 3 <= dots <= 3 * (2 * r + 1) ** 2
    # matplotlib drew the frame and tick labels: dark pixels left of and below the axes
    left, top, right, bottom = writers.PLOT_BOX
    assert (a[top:bottom, :left].min(axis=2) < 128).any()  # y tick labels
    assert (a[bottom + 2:, left:right].min(axis=2) < 128).any()  # x tick labels


def test_points_png_uses_data_extent_without_plot_range(tmp_path) -> None:
    pts = torch.tensor([[10.0, 100.0], [20.0, 300.0]])
    writers.write_points_png(pts, tmp_path / "p.png", {})
    with Image.open(tmp_path / "p.png") as im:
        a = np.asarray(im.convert("RGB"))
    # the extent padded by 5% each side: the two points sit 1/22 in from opposite corners
    xr, yr = (10 - 0.5, 20 + 0.5), (100 - 10, 300 + 10)
    assert _is_dot(a[_pixel(10, 100, xr, yr)])
    assert _is_dot(a[_pixel(20, 300, xr, yr)])
    assert not _is_dot(a[_pixel(15, 200, xr, yr)])


def test_failed_write_leaves_no_files(tmp_path) -> None:
    def broken(f) -> None:
        f.write(b"partial")
        raise RuntimeError("disk full")

    with pytest.raises(RuntimeError):
        writers.atomic_write(tmp_path / "x.png", broken)
    assert files_in(tmp_path) == []


def test_overwrite_is_atomic_and_leaves_no_temp_files(tmp_path) -> None:
    path = tmp_path / "s.png"
    writers.write_image_png(torch.zeros(4, 1, 2, 2), path, {})
    writers.write_image_png(torch.ones(1, 1, 2, 2), path, {})
    with Image.open(path) as im:
        assert im.size == (6, 6) and np.asarray(im)[2, 2] == 255
    writers.write_points_csv(POINTS, tmp_path / "p.csv", {})
    writers.write_points_npy(POINTS, tmp_path / "p.npy", {})
    writers.write_points_png(POINTS, tmp_path / "q.png", {})
    assert files_in(tmp_path) == ["p.csv", "p.npy", "q.png", "s.png"]


def test_plugin_registers_writers_lazily_png_first() -> None:
    from ganframe.registry import Registry, WriterSpec

    reg = Registry()

    def register(kind, suffix, writer, summary=""):
        assert isinstance(writer, str) and writer.startswith("ganframe.builtin.writers:")
        assert summary
        reg.writers.append(WriterSpec(kind, suffix, writer, "builtin", summary))

    register_sample_writers(register=register)
    assert [(w.data_kind, w.suffix) for w in reg.writers] == [
        ("image", ".png"), ("image", ".npy"),
        ("points", ".png"), ("points", ".npy"), ("points", ".csv"),
    ]
    assert reg.default_writer("image").suffix == ".png"
    assert reg.default_writer("points").suffix == ".png"


def test_writers_through_the_plugin_host(tmp_path) -> None:
    from ganframe.plugins import load_plugins

    reg = load_plugins(autoload=False).registry
    reg.writer("image", ".NPY").write(torch.zeros(2, 1, 3, 3), tmp_path / "a.npy", {})
    reg.default_writer("points").write(POINTS, tmp_path / "b.png", {})
    assert np.load(tmp_path / "a.npy").shape == (2, 1, 3, 3)
    with Image.open(tmp_path / "b.png") as im:
        assert im.size == (writers.PLOT_SIZE,) * 2
