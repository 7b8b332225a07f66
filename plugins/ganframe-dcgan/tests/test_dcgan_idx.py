"""The IDX reader: good files (gzipped and raw) and every kind of bad one."""

from __future__ import annotations

import gzip

import numpy as np
import pytest
import torch
from ganframe_dcgan import idx

from ganframe.errors import UserError


@pytest.mark.parametrize("gz", [True, False])
def test_reads_images_and_labels_exactly(tmp_path, idxtools, gz):
    images, labels = idxtools.write_split(tmp_path, "train", 20, gz=gz)
    suffix = ".gz" if gz else ""
    x, y = idx.read_pair(
        tmp_path / f"train-images-idx3-ubyte{suffix}", tmp_path / f"train-labels-idx1-ubyte{suffix}"
    )
    assert x.dtype == torch.uint8 and x.shape == (20, 1, 28, 28)
    assert y.dtype == torch.int64 and y.shape == (20,)
    assert np.array_equal(x[:, 0].numpy(), images)
    assert np.array_equal(y.numpy(), labels)


def test_gzip_is_recognised_by_content_not_name(tmp_path, idxtools):
    images, _ = idxtools.shapes(3)
    path = tmp_path / "train-images-idx3-ubyte"  # gzip data without a .gz suffix
    path.write_bytes(gzip.compress(idxtools.idx_bytes(images, 2051)))
    assert np.array_equal(idx.read_images(path)[:, 0].numpy(), images)


def test_truncated_raw_file_names_the_file(tmp_path, idxtools):
    images, _ = idxtools.shapes(5)
    path = tmp_path / "t10k-images-idx3-ubyte"
    path.write_bytes(idxtools.idx_bytes(images, 2051)[:-100])
    with pytest.raises(UserError, match="truncated") as err:
        idx.read_images(path)
    assert str(path) in str(err.value)


def test_truncated_gzip_names_the_file(tmp_path, idxtools):
    images, _ = idxtools.shapes(5)
    data = gzip.compress(idxtools.idx_bytes(images, 2051))
    path = tmp_path / "t10k-images-idx3-ubyte.gz"
    path.write_bytes(data[: len(data) // 2])
    with pytest.raises(UserError, match="damaged gzip") as err:
        idx.read_images(path)
    assert str(path) in str(err.value)


def test_header_shorter_than_declared(tmp_path):
    path = tmp_path / "train-labels-idx1-ubyte"
    path.write_bytes(b"\x00\x00\x08")
    with pytest.raises(UserError, match="truncated") as err:
        idx.read_labels(path)
    assert str(path) in str(err.value)


def test_extra_bytes_are_corrupt(tmp_path, idxtools):
    path = tmp_path / "train-labels-idx1-ubyte"
    path.write_bytes(idxtools.idx_bytes(np.arange(5), 2049) + b"junk")
    with pytest.raises(UserError, match="corrupt"):
        idx.read_labels(path)


def test_wrong_magic_number(tmp_path, idxtools):
    _, labels = idxtools.shapes(4)
    path = tmp_path / "train-images-idx3-ubyte"
    path.write_bytes(idxtools.idx_bytes(labels, 2049))  # a labels file under an images name
    with pytest.raises(UserError, match="magic number 2049, expected 2051") as err:
        idx.read_images(path)
    assert str(path) in str(err.value)


def test_images_must_be_28x28(tmp_path, idxtools):
    path = tmp_path / "train-images-idx3-ubyte"
    path.write_bytes(idxtools.idx_bytes(np.zeros((2, 32, 32)), 2051))
    with pytest.raises(UserError, match="28x28") as err:
        idx.read_images(path)
    assert str(path) in str(err.value)


def test_labels_must_be_digits(tmp_path, idxtools):
    path = tmp_path / "train-labels-idx1-ubyte"
    path.write_bytes(idxtools.idx_bytes(np.array([1, 2, 12]), 2049))
    with pytest.raises(UserError, match="label 12"):
        idx.read_labels(path)


def test_image_and_label_counts_must_agree(tmp_path, idxtools):
    idxtools.write_split(tmp_path, "train", 10, gz=False)
    labels = tmp_path / "train-labels-idx1-ubyte"
    labels.write_bytes(idxtools.idx_bytes(np.zeros(9), 2049))
    with pytest.raises(UserError, match="10 images") as err:
        idx.read_pair(tmp_path / "train-images-idx3-ubyte", labels)
    assert str(labels) in str(err.value)
