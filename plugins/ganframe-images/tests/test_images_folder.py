"""The image-folder dataset on folders the tests draw: layout, transform, cache, streaming,
and every bad input the issue lists (an error naming the file, or skipped and counted)."""

from __future__ import annotations

import logging
import os
import time
from pathlib import Path

import numpy as np
import pytest
import torch
from ganframe_images import decode as decode_module
from ganframe_images import imagecache
from PIL import Image

from ganframe.components import Batch
from ganframe.errors import UserError
from ganframe.testing import build_component, make_context


def build(path: Path, **options):
    ctx = make_context({}, kind="image", data_root=None, recipe_dir=path.parent)
    return build_component("dataset", "image-folder", options={"path": str(path), **options},
                           ctx=ctx)


def count_decodes(monkeypatch) -> list[Path]:
    seen: list[Path] = []
    real = decode_module.decode

    def counting(path, t):
        seen.append(path)
        return real(path, t)

    monkeypatch.setattr("ganframe_images.folder.decode", counting)
    return seen


# -- layout and transform -----------------------------------------------------------------


def test_class_folders_become_labels_and_names(tmp_path, imgtools):
    root = imgtools.make_folder(tmp_path / "pets", {"cat": 3, "dog": 5})
    ds = build(root, size=16)
    assert len(ds) == 8
    info = ds.info()
    assert info["num_classes"] == 2 and info["class_names"] == ["cat", "dog"]
    assert info["shape"] == [3, 16, 16] and info["value_range"] == [-1.0, 1.0]
    batch = ds.get(torch.arange(8))
    assert isinstance(batch, Batch)
    assert batch.labels.tolist() == [0, 0, 0, 1, 1, 1, 1, 1]
    assert batch.data.shape == (8, 3, 16, 16)
    assert -1.0 <= float(batch.data.min()) and float(batch.data.max()) <= 1.0
    # class 0 is mostly light, class 1 mostly dark: the labels belong to their images
    assert batch.data[:3].mean() > batch.data[3:].mean()


def test_flat_folder_is_unconditional(tmp_path, imgtools):
    ds = build(imgtools.make_folder(tmp_path / "flat", 5), size=8, channels=1)
    x = ds.get(torch.arange(5))
    assert isinstance(x, torch.Tensor) and x.shape == (5, 1, 8, 8)
    assert "num_classes" not in ds.info()


def test_resize_and_centre_crop_of_mixed_sizes(tmp_path):
    root = tmp_path / "mixed"
    root.mkdir()
    wide = np.zeros((20, 60, 3), np.uint8)
    wide[:, 20:40] = 255  # a white centre square, black bars left and right
    Image.fromarray(wide).save(root / "wide.png")
    Image.fromarray(np.full((50, 30, 3), 255, np.uint8)).save(root / "tall.jpg", quality=95)
    Image.fromarray(np.full((64, 64, 3), 128, np.uint8)).save(root / "square.webp")
    Image.fromarray(np.full((10, 10, 3), 60, np.uint8)).save(root / "small.bmp")
    ds = build(root, size=10)
    x = ds.images
    assert x.shape == (4, 3, 10, 10)
    by_name = dict(zip(["small", "square", "tall", "wide"], x, strict=True))
    # the crop kept the centre only: white (the filter's edge reaches just past the box)
    assert by_name["wide"][:, :, 1:-1].min() >= 250 and by_name["wide"].min() > 200
    assert by_name["tall"].float().mean() > 245
    assert by_name["small"].float().mean() == pytest.approx(60, abs=1)


def test_alpha_is_composited_over_the_background(tmp_path):
    root = tmp_path / "alpha"
    root.mkdir()
    rgba = np.zeros((16, 16, 4), np.uint8)
    rgba[..., 0] = 255  # red, but fully transparent
    Image.fromarray(rgba, "RGBA").save(root / "clear.png")
    black = build(root, size=8)
    assert int(black.images.max()) == 0 and black.info()["alpha_composited"] == 1
    white = build(root, size=8, background="white")
    assert int(white.images.min()) == 255


def test_grey_images_in_an_rgb_set_and_back(tmp_path):
    root = tmp_path / "grey"
    root.mkdir()
    Image.fromarray(np.full((12, 12), 90, np.uint8), "L").save(root / "g.png")
    Image.fromarray(np.full((12, 12, 3), (255, 0, 0), np.uint8)).save(root / "red.png")
    rgb = build(root, size=8)
    assert rgb.images[0].float().mean() == pytest.approx(90, abs=1)
    grey = build(root, size=8, channels=1)
    assert grey.images.shape == (2, 1, 8, 8)
    assert grey.images[1].float().mean() == pytest.approx(76, abs=2)  # luma of pure red


def test_hflip_flips_about_half_and_follows_the_seed(tmp_path):
    root = tmp_path / "asym"
    root.mkdir()
    img = np.zeros((8, 8, 3), np.uint8)
    img[:, :4] = 255  # left half white
    for i in range(32):
        Image.fromarray(img).save(root / f"{i:02d}.png")
    ds = build(root, size=8, hflip=True)
    torch.manual_seed(0)
    a = ds.get(torch.arange(32))
    flipped = (a[:, 0, 0, 0] < 0).sum().item()
    assert 6 < flipped < 26
    torch.manual_seed(0)
    assert torch.equal(a, ds.get(torch.arange(32)))
    assert (build(root, size=8).get(torch.arange(32))[:, 0, 0, 0] > 0).all()


# -- the cache ---------------------------------------------------------------------------


def test_second_build_reads_the_cache_without_decoding(tmp_path, imgtools, monkeypatch):
    root = imgtools.make_folder(tmp_path / "set", {"a": 4, "b": 4})
    seen = count_decodes(monkeypatch)
    first = build(root, size=8)
    assert len(seen) == 8
    files = list((tmp_path / "cache" / "images").glob("*.safetensors"))
    assert len(files) == 1
    seen.clear()
    second = build(root, size=8)
    assert seen == []
    assert torch.equal(first.images, second.images)
    assert second.info()["class_names"] == ["a", "b"]
    assert torch.equal(first.get(torch.arange(8)).labels, second.get(torch.arange(8)).labels)


@pytest.mark.parametrize("change", ["size option", "file touched", "file added"])
def test_any_change_makes_a_new_cache_entry(tmp_path, imgtools, monkeypatch, change):
    root = imgtools.make_folder(tmp_path / "set", 4)
    build(root, size=8)
    seen = count_decodes(monkeypatch)
    options = {"size": 8}
    if change == "size option":
        options["size"] = 12
    elif change == "file touched":
        path = root / "img0000.png"
        st = path.stat()
        os.utime(path, ns=(st.st_atime_ns, st.st_mtime_ns + 10**9))
    else:
        imgtools.make_folder(root, 1, seed=5)  # overwrites img0000 with other pixels
        Image.open(root / "img0000.png").save(root / "new.png")
    ds = build(root, **options)
    assert len(seen) == len(ds)  # decoded again, not taken from the stale entry


def test_a_damaged_cache_file_is_rebuilt(tmp_path, imgtools, caplog):
    root = imgtools.make_folder(tmp_path / "set", 4)
    first = build(root, size=8)
    (cache,) = (tmp_path / "cache" / "images").glob("*.safetensors")
    cache.write_bytes(b"garbage")
    with caplog.at_level(logging.WARNING, "ganframe_images"):
        again = build(root, size=8)
    assert torch.equal(first.images, again.images)
    assert "ignoring the unreadable cache file" in caplog.text


def test_cache_off_writes_nothing(tmp_path, imgtools):
    build(imgtools.make_folder(tmp_path / "set", 3), size=8, cache=False)
    assert not (tmp_path / "cache" / "images").exists()


def test_ten_thousand_images_load_in_seconds_the_second_time(tmp_path):
    root = tmp_path / "many"
    root.mkdir()
    data = Image.fromarray(np.full((8, 8, 3), 7, np.uint8))
    for i in range(2000):  # 2,000 here to keep the test short; bench/ times 10,000
        data.save(root / f"{i:05d}.png")
    build(root, size=8)
    start = time.perf_counter()
    ds = build(root, size=8)
    assert len(ds) == 2000
    assert time.perf_counter() - start < 2.0


# -- streaming ---------------------------------------------------------------------------


def test_a_set_over_the_memory_budget_is_streamed(tmp_path, imgtools, monkeypatch):
    root = imgtools.make_folder(tmp_path / "big", {"a": 6, "b": 6})
    in_memory = build(root, size=16)
    seen = count_decodes(monkeypatch)
    monkeypatch.setattr("ganframe_images.tensorset.decode_or_explain",
                        lambda p, t: (seen.append(p), decode_module.decode_or_explain(p, t))[1])
    streamed = build(root, size=16, memory_mb=0.005)  # 12 x 3 x 16 x 16 bytes is 9 KB
    assert seen == []  # nothing decoded up front
    assert streamed.info()["streamed"] is True and streamed.info()["class_names"] == ["a", "b"]
    index = torch.tensor([3, 7, 0])
    got = streamed.get(index)
    assert len(seen) == 3
    want = in_memory.get(index)
    assert torch.equal(got.labels, want.labels) and torch.allclose(got.data, want.data)


def test_streamed_sets_check_headers_and_skip_bad_files(tmp_path, imgtools):
    root = imgtools.make_folder(tmp_path / "big", 6)
    (root / "junk.png").write_bytes(b"not a png at all")
    Image.fromarray(np.zeros((2, 2, 3), np.uint8)).save(root / "tiny.png")
    expect_error(root, str(root / "junk.png"), "not a readable image", memory_mb=0.001)
    ds = build(root, size=16, memory_mb=0.001, skip_bad=True)
    assert len(ds) == 6 and ds.info()["skipped_files"] == 2
    # damage past the header shows when the batch is decoded, naming the file
    good = (root / "img0003.png").read_bytes()
    (root / "img0003.png").write_bytes(good[:60])
    ds = build(root, size=16, memory_mb=0.001, skip_bad=True)
    index = torch.tensor([ds.files.index(root / "img0003.png")])
    with pytest.raises(UserError, match="img0003.png"):
        ds.get(index)


# -- bad inputs --------------------------------------------------------------------------


def expect_error(root: Path, *needles: str, **options) -> str:
    with pytest.raises(UserError) as err:
        build(root, **options)
    text = str(err.value)
    for needle in needles:
        assert needle in text, text
    return text


def test_missing_and_non_folder_paths(tmp_path):
    expect_error(tmp_path / "nope", "nope")
    (tmp_path / "file.png").write_bytes(b"x")
    expect_error(tmp_path / "file.png", "not a folder")


def test_empty_folder(tmp_path):
    (tmp_path / "empty").mkdir()
    expect_error(tmp_path / "empty", "no images in", "empty")


def test_folder_without_images(tmp_path):
    root = tmp_path / "docs"
    root.mkdir()
    (root / "readme.txt").write_text("hi")
    (root / "data.csv").write_text("1,2")
    expect_error(root, "no images in", "2 other files ignored")


def corrupt(root: Path) -> Path:
    path = root / "a" / "broken.png"
    good = (root / "a" / "img0000.png").read_bytes()
    path.write_bytes(good[: len(good) // 2])
    return path


def test_corrupt_file_is_named_or_skipped(tmp_path, imgtools, caplog):
    root = imgtools.make_folder(tmp_path / "set", {"a": 2, "b": 2})
    bad = corrupt(root)
    expect_error(root, str(bad), "skip_bad", size=8)
    with caplog.at_level(logging.WARNING, "ganframe_images"):
        ds = build(root, size=8, skip_bad=True)
    assert len(ds) == 4 and ds.info()["skipped_files"] == 1
    assert "skipped 1 bad inputs" in caplog.text and str(bad) in caplog.text
    # the skip is cached too: the same result without decoding
    assert build(root, size=8, skip_bad=True).info()["skipped_files"] == 1


def test_not_an_image_with_an_image_name(tmp_path, imgtools):
    root = imgtools.make_folder(tmp_path / "set", 2)
    (root / "fake.jpg").write_text("this is text")
    expect_error(root, str(root / "fake.jpg"), "not a readable image")


def test_one_pixel_image(tmp_path, imgtools):
    root = imgtools.make_folder(tmp_path / "set", 2)
    Image.fromarray(np.zeros((1, 1, 3), np.uint8)).save(root / "dot.png")
    expect_error(root, str(root / "dot.png"), "too small (1x1 px")
    assert len(build(root, skip_bad=True)) == 2
    assert len(build(root, min_size=1)) == 3  # allowed when asked for


def test_class_folder_with_no_images(tmp_path, imgtools):
    root = imgtools.make_folder(tmp_path / "set", {"a": 2, "b": 2})
    (root / "c").mkdir()
    (root / "c" / "notes.txt").write_text("x")
    expect_error(root, str(root / "c"), "class folder with no images")
    ds = build(root, skip_bad=True)
    assert ds.info()["class_names"] == ["a", "b"] and ds.info()["skipped_files"] == 1


def test_image_beside_class_folders(tmp_path, imgtools):
    root = imgtools.make_folder(tmp_path / "set", {"a": 2, "b": 2})
    Image.open(root / "a" / "img0000.png").save(root / "stray.png")
    expect_error(root, str(root / "stray.png"), "beside class sub-folders")


def test_symlink_loop(tmp_path, imgtools):
    root = imgtools.make_folder(tmp_path / "set", {"a": 2, "b": 2})
    (root / "a" / "loop").symlink_to(root / "a")
    expect_error(root, str(root / "a" / "loop"), "symbolic link loop")
    assert len(build(root, skip_bad=True)) == 4
    (root / "a" / "loop").unlink()
    (root / "a" / "self.png").symlink_to(root / "a" / "self.png")  # to itself: ELOOP
    expect_error(root, str(root / "a" / "self.png"), "cannot read the image")
    assert len(build(root, skip_bad=True)) == 4


def test_symlinked_class_folder_is_followed(tmp_path, imgtools):
    elsewhere = imgtools.make_folder(tmp_path / "elsewhere", 3)
    root = imgtools.make_folder(tmp_path / "set", {"a": 2})
    (root / "b").symlink_to(elsewhere)
    assert build(root).info()["class_names"] == ["a", "b"]


@pytest.mark.skipif(hasattr(os, "geteuid") and os.geteuid() == 0,
                    reason="root reads files whatever their mode")
def test_unreadable_file(tmp_path, imgtools):
    root = imgtools.make_folder(tmp_path / "set", 3)
    locked = root / "img0001.png"
    locked.chmod(0)
    try:
        expect_error(root, str(locked), "cannot read")
        assert len(build(root, skip_bad=True)) == 2
    finally:
        locked.chmod(0o644)


def test_every_image_bad_is_an_error_even_when_skipping(tmp_path):
    root = tmp_path / "bad"
    root.mkdir()
    (root / "a.png").write_bytes(b"nope")
    expect_error(root, "every image", skip_bad=True)


def test_bad_options_are_rejected_by_the_config(tmp_path, imgtools):
    from pydantic import ValidationError

    root = imgtools.make_folder(tmp_path / "set", 2)
    with pytest.raises(ValidationError):
        build(root, channels=2)
    with pytest.raises(ValidationError):
        build(root, size=0)


def test_cache_key_ignores_nothing_that_matters():
    base = dict(root=Path("/r"), rel_files=["a.png"], stats=[(10, 5)], labels=[0],
                class_names=[], transform_key="t", skip_bad=False)
    key = imagecache.cache_key(**base)
    for field, value in [("stats", [(11, 5)]), ("stats", [(10, 6)]), ("labels", [1]),
                         ("rel_files", ["b.png"]), ("transform_key", "u"), ("skip_bad", True),
                         ("class_names", ["x"]), ("root", Path("/s"))]:
        assert imagecache.cache_key(**{**base, field: value}) != key, field


def test_unreadable_file_simulated(tmp_path, imgtools, monkeypatch):
    """The same as root can see it: permission refused by the check, then by the decoder."""
    from ganframe_images import scan

    root = imgtools.make_folder(tmp_path / "set", 3)
    locked = root / "img0001.png"
    real_access = os.access
    monkeypatch.setattr(scan.os, "access",
                        lambda p, mode: Path(p) != locked and real_access(p, mode))
    expect_error(root, str(locked), "cannot read the image", "permission denied")
    monkeypatch.setattr(scan.os, "access", real_access)
    real_open = Image.open

    def refuse(path, *args, **kwargs):
        if Path(path) == locked:
            raise PermissionError(13, "Permission denied", str(path))
        return real_open(path, *args, **kwargs)

    monkeypatch.setattr(Image, "open", refuse)
    expect_error(root, str(locked), "cannot read it (Permission denied)", cache=False)
    assert len(build(root, skip_bad=True, cache=False)) == 2
