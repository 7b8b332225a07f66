"""The ``mnist`` dataset: where files are found, subsets, and batches in [-1, 1]."""

from __future__ import annotations

from pathlib import Path
from types import SimpleNamespace

import numpy as np
import pydantic
import pytest
import torch
from ganframe_dcgan import mnist
from ganframe_dcgan.plugin import MnistConfig

from ganframe.errors import UserError


def build(ctx=None, **config):
    return mnist.build_mnist(MnistConfig(**config), ctx or SimpleNamespace())


def first_labels(ds: mnist.MnistDataset) -> list[int]:
    return ds.labels[:4].tolist()


def marked(n: int, value: int) -> np.ndarray:
    """Labels that say which folder a split came from."""
    return np.full(n, value, dtype=np.uint8)


def test_lookup_order(isolated_env, idxtools, monkeypatch):
    tmp = isolated_env
    root, data = tmp / "root", tmp / "data"
    monkeypatch.setenv("GANFRAME_DATA", str(data))
    places = [
        (root, 1),
        (data / "mnist", 2),
        (root / "MNIST" / "raw", 3),
        (data / "mnist" / "MNIST" / "raw", 4),
        (data / "MNIST" / "raw", 5),
        (tmp / "cache" / "mnist", 6),
    ]
    for folder, mark in places:
        idxtools.write_split(folder, "train", 8, labels=marked(8, mark), gz=mark % 2 == 0)
    seen = []
    for folder, _mark in places:
        seen.append(build(root=str(root), download=False).labels[0].item())
        for f in folder.iterdir():
            if f.is_file():
                f.unlink()
    assert seen == [1, 2, 3, 4, 5, 6]


def test_ganframe_data_from_build_context_wins_over_env(isolated_env, idxtools, monkeypatch):
    tmp = isolated_env
    idxtools.write_split(tmp / "env" / "mnist", "test", 8, labels=marked(8, 1))
    idxtools.write_split(tmp / "ctx" / "mnist", "test", 8, labels=marked(8, 2))
    monkeypatch.setenv("GANFRAME_DATA", str(tmp / "env"))
    ds = build(SimpleNamespace(data_root=tmp / "ctx"), split="test", download=False)
    assert first_labels(ds) == [2, 2, 2, 2]


def test_relative_root_is_relative_to_the_recipe(isolated_env, idxtools):
    tmp = isolated_env
    idxtools.write_split(tmp / "recipes" / "digits", "train", 8, labels=marked(8, 7))
    ds = build(SimpleNamespace(recipe_dir=tmp / "recipes"), root="digits", download=False)
    assert first_labels(ds) == [7, 7, 7, 7]


def test_dotted_file_names_are_found(isolated_env, idxtools):
    folder = isolated_env / "dotted"
    idxtools.write_split(folder, "train", 8, gz=False)
    for f in folder.iterdir():
        f.rename(folder / f.name.replace("-idx", ".idx"))
    assert len(build(root=str(folder), download=False)) == 8


def test_a_leftover_part_file_is_never_read(isolated_env, idxtools):
    folder = isolated_env / "root"
    idxtools.write_split(folder, "train", 8)
    img = folder / "train-images-idx3-ubyte.gz"
    img.rename(folder / "train-images-idx3-ubyte.gz.part")
    with pytest.raises(UserError, match="not found"):
        build(root=str(folder), download=False)


def test_missing_files_without_download_say_where_to_put_them(isolated_env, monkeypatch):
    monkeypatch.setenv("GANFRAME_DATA", str(isolated_env / "data"))
    with pytest.raises(UserError) as err:
        build(split="test", download=False)
    text = str(err.value)
    assert "t10k-images-idx3-ubyte" in text
    assert str(isolated_env / "cache" / "mnist") in text
    assert "GANFRAME_DATA" in text
    assert str(isolated_env / "data" / "mnist") in text  # searched folders are listed


def test_batches_are_float_in_minus_one_to_one(isolated_env, idxtools):
    folder = isolated_env / "root"
    images, _ = idxtools.write_split(folder, "train", 30)
    ds = build(root=str(folder))
    assert ds.kind == "image" and len(ds) == 30
    index = torch.tensor([3, 0, 29, 3])
    batch = ds.get(index).data
    assert batch.dtype == torch.float32 and batch.shape == (4, 1, 28, 28)
    assert batch.min() == -1.0 and batch.max() == 1.0
    expected = torch.from_numpy(images[[3, 0, 29, 3]]).float().unsqueeze(1) / 127.5 - 1
    assert torch.equal(batch, expected)
    # get() returns fresh memory: a caller scaling it in place must not touch the dataset.
    batch.add_(5)
    assert ds.get(index).data.max() == 1.0


def test_midtones_scale_linearly(isolated_env, idxtools):
    folder = isolated_env / "root"
    folder.mkdir()
    pixels = np.array([0, 51, 127, 255], dtype=np.uint8)
    images = np.broadcast_to(pixels[:, None, None], (4, 28, 28))
    (folder / "train-images-idx3-ubyte").write_bytes(idxtools.idx_bytes(images, 2051))
    (folder / "train-labels-idx1-ubyte").write_bytes(idxtools.idx_bytes(np.arange(4), 2049))
    values = build(root=str(folder)).get(torch.arange(4)).data[:, 0, 0, 0]
    assert torch.allclose(values, torch.tensor([-1.0, 51 / 127.5 - 1, 127 / 127.5 - 1, 1.0]))


def test_batches_carry_the_idx_labels(isolated_env, idxtools):
    folder = isolated_env / "root"
    labels = np.array([7, 0, 3, 9, 1, 4, 2, 8, 6, 5] * 3, dtype=np.uint8)
    _, written = idxtools.write_split(folder, "train", 30, labels=labels)
    ds = build(root=str(folder))
    index = torch.tensor([3, 0, 29, 3, 12])
    batch = ds.get(index)
    assert batch.labels.dtype == torch.int64 and batch.labels.shape == (5,)
    assert batch.labels.tolist() == written[[3, 0, 29, 3, 12]].tolist() == [9, 7, 5, 9, 3]
    assert len(batch) == 5 and batch.data.shape == (5, 1, 28, 28)
    info = ds.info()
    assert info["num_classes"] == 10 and info["class_names"] == [str(d) for d in range(10)]
    # A subset keeps each image's own digit.
    sub = build(root=str(folder), classes=[3, 9])
    assert sub.get(torch.arange(len(sub))).labels.tolist() == [3, 9, 3, 9, 3, 9]


def test_classes_and_limit(isolated_env, idxtools):
    folder = isolated_env / "root"
    labels = np.array([0, 1, 2, 3] * 10, dtype=np.uint8)
    idxtools.write_split(folder, "train", 40, labels=labels)
    ds = build(root=str(folder), classes=[3, 1])
    assert len(ds) == 20 and set(ds.labels.tolist()) == {1, 3}
    ds = build(root=str(folder), classes=[1, 3], limit=5)
    assert ds.labels.tolist() == [1, 3, 1, 3, 1]
    assert build(root=str(folder), limit=7).labels.tolist() == labels[:7].tolist()
    with pytest.raises(UserError, match="no images of classes"):
        build(root=str(folder), classes=[9])


def test_info_is_json_and_describes_images(isolated_env, idxtools):
    import json

    folder = isolated_env / "root"
    idxtools.write_split(folder, "test", 12)
    info = build(root=str(folder), split="test").info()
    json.dumps(info)
    assert info["shape"] == [1, 28, 28] and info["channels"] == 1
    assert info["split"] == "test" and info["size"] == 12


@pytest.mark.parametrize(
    "bad", [{"classes": [10]}, {"classes": []}, {"classes": [1, 1]}, {"limit": 0},
            {"split": "val"}, {"rooot": "x"}],
)
def test_config_rejects_mistakes(bad):
    with pytest.raises(pydantic.ValidationError):
        MnistConfig(**bad)


def test_cache_dir_honours_env(monkeypatch, tmp_path):
    monkeypatch.setenv("GANFRAME_CACHE", str(tmp_path))
    assert mnist.cache_dir() == tmp_path / "mnist"
    monkeypatch.delenv("GANFRAME_CACHE")
    assert mnist.cache_dir() == Path.home() / ".cache" / "ganframe" / "mnist"
