"""Downloads, against a local HTTP server on 127.0.0.1 serving tiny IDX files."""

from __future__ import annotations

import gzip
import socket
from pathlib import Path
from types import SimpleNamespace

import numpy as np
import pytest
from ganframe_dcgan import download, mnist
from ganframe_dcgan.plugin import MnistConfig

from ganframe.errors import UserError


@pytest.fixture
def served(isolated_env, http_mirror, idxtools, monkeypatch):
    """The test split served gzipped under /good/, with its md5s in the checksum table."""
    good = http_mirror.root / "good"
    images, labels = idxtools.write_split(good, "test", 16, gz=True)
    table = {
        name: idxtools.md5(gzip.decompress((good / f"{name}.gz").read_bytes()))
        for name in idxtools.SPLIT_NAMES["test"]
    }
    monkeypatch.setattr(download, "MD5", table)
    return SimpleNamespace(images=images, labels=labels, mirror=http_mirror,
                           cache=isolated_env / "cache" / "mnist")


def load_test_split():
    return mnist.build_mnist(MnistConfig(split="test"), SimpleNamespace())


def leftovers(folder: Path) -> list[str]:
    return sorted(p.name for p in folder.glob("*.part")) if folder.exists() else []


def test_falls_back_to_the_next_mirror(served, monkeypatch):
    monkeypatch.setattr(download, "MIRRORS", [served.mirror.url("missing"),
                                              served.mirror.url("good")])
    ds = load_test_split()
    assert np.array_equal(ds.labels.numpy(), served.labels)
    assert np.array_equal(ds.images[:, 0].numpy(), served.images)
    assert sorted(p.name for p in served.cache.iterdir()) == [
        "t10k-images-idx3-ubyte.gz", "t10k-labels-idx1-ubyte.gz",
    ]
    assert "/missing/t10k-images-idx3-ubyte.gz" in served.mirror.requests  # it did try first
    # A second load finds the files and asks nobody.
    served.mirror.requests.clear()
    mnist._LOADED.clear()
    load_test_split()
    assert served.mirror.requests == []


def test_checksum_mismatch_leaves_no_file(served, monkeypatch):
    monkeypatch.setattr(download, "MIRRORS", [served.mirror.url("good")])
    monkeypatch.setitem(download.MD5, "t10k-images-idx3-ubyte", "0" * 32)
    with pytest.raises(UserError) as err:
        load_test_split()
    text = str(err.value)
    assert "checksum mismatch" in text
    assert str(served.cache) in text and "GANFRAME_DATA" in text
    assert not (served.cache / "t10k-images-idx3-ubyte.gz").exists()
    assert not (served.cache / "t10k-images-idx3-ubyte").exists()
    assert leftovers(served.cache) == []


def test_a_corrupt_mirror_is_skipped(served, monkeypatch):
    bad = served.mirror.root / "bad"
    bad.mkdir()
    data = (served.mirror.root / "good" / "t10k-images-idx3-ubyte.gz").read_bytes()
    (bad / "t10k-images-idx3-ubyte.gz").write_bytes(data[: len(data) // 2])  # cut short
    monkeypatch.setattr(download, "MIRRORS", [served.mirror.url("bad"),
                                              served.mirror.url("good")])
    folder = served.cache
    path = download.download_file("t10k-images-idx3-ubyte", folder, progress=False)
    assert path.read_bytes() == data
    assert leftovers(folder) == []


def test_a_leftover_part_file_is_not_used(served, monkeypatch):
    monkeypatch.setattr(download, "MIRRORS", [served.mirror.url("good")])
    served.cache.mkdir(parents=True)
    stale = served.cache / "t10k-images-idx3-ubyte.gz.part"
    stale.write_bytes(b"\x1f\x8b half a download")
    ds = load_test_split()
    assert np.array_equal(ds.images[:, 0].numpy(), served.images)
    assert stale.read_bytes() == b"\x1f\x8b half a download"  # neither used nor renamed


def test_offline_error_names_folder_and_setting(isolated_env, monkeypatch):
    with socket.socket() as s:  # a port nobody listens on
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    monkeypatch.setattr(download, "MIRRORS", [f"http://127.0.0.1:{port}/"])
    root = isolated_env / "here"
    with pytest.raises(UserError) as err:
        mnist.build_mnist(MnistConfig(split="test", root=root), SimpleNamespace())
    text = str(err.value)
    assert "unreachable" in text and str(root) in text and "GANFRAME_DATA" in text
    assert leftovers(root) == []


def test_downloads_into_root_when_given(served, monkeypatch):
    monkeypatch.setattr(download, "MIRRORS", [served.mirror.url("good")])
    root = served.cache.parent.parent / "mine"
    mnist.build_mnist(MnistConfig(split="test", root=root), SimpleNamespace())
    assert (root / "t10k-labels-idx1-ubyte.gz").is_file()
    assert not served.cache.exists()


def test_only_missing_files_are_fetched(served, monkeypatch, idxtools):
    monkeypatch.setattr(download, "MIRRORS", [served.mirror.url("good")])
    served.cache.mkdir(parents=True)
    src = served.mirror.root / "good" / "t10k-labels-idx1-ubyte.gz"
    (served.cache / src.name).write_bytes(src.read_bytes())
    load_test_split()
    assert served.mirror.requests == ["/good/t10k-images-idx3-ubyte.gz"]


# -- resuming ----------------------------------------------------------------------------
# The generic cases (a run interrupted and resumed later, Ctrl-C, servers without ranges, a
# damaged part file, 416, 404) are tested on ganframe.download in tests/test_download.py;
# here, that MNIST goes through it.

IMAGES = "t10k-images-idx3-ubyte"
PATH = f"/good/{IMAGES}.gz"


def _served_bytes(served) -> bytes:
    return (served.mirror.root / "good" / f"{IMAGES}.gz").read_bytes()


def test_a_dropped_connection_resumes_where_it_stopped(served, monkeypatch):
    monkeypatch.setattr(download, "MIRRORS", [served.mirror.url("good")])
    data = _served_bytes(served)
    served.mirror.cut[PATH] = 100
    path = download.download_file(IMAGES, served.cache, progress=False)
    assert path.read_bytes() == data
    assert served.mirror.requests == [PATH, PATH]
    assert served.mirror.ranges_asked == [None, "bytes=100-"]  # only the rest, once
    assert leftovers(served.cache) == [] and not list(served.cache.glob(".*.json"))


def test_a_mirror_serving_the_raw_file_gives_it_its_raw_name(served, monkeypatch):
    raw = gzip.decompress(_served_bytes(served))
    (served.mirror.root / "raw").mkdir()
    (served.mirror.root / "raw" / f"{IMAGES}.gz").write_bytes(raw)  # not gzip after all
    monkeypatch.setattr(download, "MIRRORS", [served.mirror.url("raw")])
    path = download.download_file(IMAGES, served.cache, progress=False)
    assert path == served.cache / IMAGES and path.read_bytes() == raw
    assert not (served.cache / f"{IMAGES}.gz").exists()
