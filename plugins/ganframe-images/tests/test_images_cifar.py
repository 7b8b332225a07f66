"""CIFAR-10/100 from fake binary archives the tests write, read from $GANFRAME_DATA or served
from 127.0.0.1: records and labels, class names, checksum, resumed downloads, safe extraction."""

from __future__ import annotations

import dataclasses
import hashlib
import io
import tarfile
from pathlib import Path

import numpy as np
import pytest
import torch
from ganframe_images import cifar

from ganframe.download import DownloadError
from ganframe.errors import UserError
from ganframe.testing import build_component, make_context
from ganframe.testing_mirror import closed_port, serve_folder

C10 = cifar.VARIANTS["cifar10"]
C100 = cifar.VARIANTS["cifar100"]
NAMES10 = ["airplane", "automobile", "bird", "cat", "deer", "dog", "frog", "horse", "ship",
           "truck"]


def records(v, n: int, seed: int) -> tuple[bytes, np.ndarray, np.ndarray]:
    """``n`` records of variant ``v``: (bytes, images N x 3 x 32 x 32, fine labels)."""
    rng = np.random.default_rng(seed)
    images = rng.integers(0, 256, (n, 3, 32, 32), dtype=np.uint8)
    fine = rng.integers(0, 10 if v is C10 else 100, n).astype(np.uint8)
    heads = [fine[:, None]] if v is C10 else [(fine // 5)[:, None], fine[:, None]]
    rows = np.concatenate([*heads, images.reshape(n, -1)], axis=1)
    return rows.tobytes(), images, fine


def write_archive(path: Path, v, n: int = 6, *, extra: dict[str, bytes] | None = None) -> dict:
    """A fake binary archive: ``n`` records per batch file; returns what it holds."""
    truth: dict = {"train": [], "test": []}
    members: dict[str, bytes] = {}
    for split, names in (("train", v.train), ("test", v.test)):
        for k, name in enumerate(names):
            data, images, fine = records(v, n, seed=k + (100 if split == "test" else 0))
            members[f"{v.folder}/{name}"] = data
            truth[split].append((images, fine))
    if v is C10:
        members[f"{v.folder}/batches.meta.txt"] = ("\n".join(NAMES10) + "\n\n").encode()
    else:
        members[f"{v.folder}/fine_label_names.txt"] = "\n".join(
            f"fine{i}" for i in range(100)).encode()
        members[f"{v.folder}/coarse_label_names.txt"] = "\n".join(
            f"coarse{i}" for i in range(20)).encode()
    members[f"{v.folder}/readme.html"] = b"<html/>"
    members.update(extra or {})
    path.parent.mkdir(parents=True, exist_ok=True)
    with tarfile.open(path, "w:gz") as tar:
        for name, data in members.items():
            info = tarfile.TarInfo(name)
            info.size = len(data)
            tar.addfile(info, io.BytesIO(data))
    return truth


def md5(path: Path) -> str:
    return hashlib.md5(path.read_bytes(), usedforsecurity=False).hexdigest()


def build(variant: str = "cifar10", ctx=None, **options):
    ctx = ctx or make_context({}, kind="image")
    return build_component("dataset", variant, options=options, ctx=ctx)


def test_reads_the_archive_from_ganframe_data(tmp_path, monkeypatch):
    data = tmp_path / "data"
    truth = write_archive(data / "cifar10" / C10.archive, C10)
    monkeypatch.setenv("GANFRAME_DATA", str(data))
    ds = build()
    assert len(ds) == 5 * 6
    info = ds.info()
    assert info["num_classes"] == 10 and info["class_names"] == NAMES10
    assert info["shape"] == [3, 32, 32]
    images = np.concatenate([t[0] for t in truth["train"]])
    labels = np.concatenate([t[1] for t in truth["train"]])
    assert np.array_equal(ds.images.numpy(), images)
    batch = ds.get(torch.arange(len(ds)))
    assert batch.labels.tolist() == labels.tolist()
    assert torch.allclose(batch.data, torch.from_numpy(images).float() / 127.5 - 1)
    test = build(split="test")
    assert np.array_equal(test.images.numpy(), truth["test"][0][0])
    # extracted beside the archive, only the expected files
    assert sorted(p.name for p in (data / "cifar10" / C10.folder).iterdir()) == sorted(
        C10.files())


def test_cifar100_fine_and_coarse_labels(tmp_path, monkeypatch):
    data = tmp_path / "data"
    truth = write_archive(data / "cifar100" / C100.archive, C100)
    monkeypatch.setenv("GANFRAME_DATA", str(data))
    fine = build("cifar100")
    assert fine.info()["num_classes"] == 100 and fine.info()["class_names"][3] == "fine3"
    assert fine.labels.tolist() == truth["train"][0][1].tolist()
    coarse = build("cifar100", labels="coarse")
    assert coarse.info()["num_classes"] == 20
    assert coarse.labels.tolist() == (truth["train"][0][1] // 5).tolist()


def test_extracted_files_are_used_as_they_are(tmp_path, monkeypatch):
    data = tmp_path / "data"
    write_archive(tmp_path / "a.tar.gz", C10)
    with tarfile.open(tmp_path / "a.tar.gz") as tar:
        tar.extractall(data / "cifar10", filter="data")
    monkeypatch.setenv("GANFRAME_DATA", str(data))
    assert len(build(limit=7)) == 7


def test_downloads_from_the_mirror_into_the_cache(tmp_path, monkeypatch):
    with serve_folder(tmp_path / "www") as mirror:
        write_archive(mirror.root / "kriz" / C10.archive, C10)
        monkeypatch.setitem(cifar.VARIANTS, "cifar10",
                            dataclasses.replace(C10, md5=md5(mirror.root / "kriz" / C10.archive)))
        monkeypatch.setattr(cifar, "MIRRORS", [mirror.url("missing"), mirror.url("kriz")])
        ds = build()
        assert len(ds) == 30
        cache = tmp_path / "cache" / "cifar10"
        assert (cache / C10.archive).is_file() and (cache / C10.folder / "test_batch.bin").is_file()
        mirror.requests.clear()
        build()
        assert mirror.requests == []  # found in the cache


def test_wrong_checksum_is_refused(tmp_path, monkeypatch):
    with serve_folder(tmp_path / "www") as mirror:
        write_archive(mirror.root / "kriz" / C10.archive, C10)
        monkeypatch.setattr(cifar, "MIRRORS", [mirror.url("kriz")])  # the real md5 stays
        with pytest.raises(DownloadError) as err:
            build()
    text = str(err.value)
    assert "checksum mismatch" in text and C10.md5 in text and C10.archive in text
    assert "offline" in text
    cache = tmp_path / "cache" / "cifar10"
    assert not (cache / C10.archive).exists() and not list(cache.glob(".*.part"))


def test_interrupted_download_resumes(tmp_path, monkeypatch):
    from ganframe import download

    with serve_folder(tmp_path / "www") as mirror:
        archive = mirror.root / "kriz" / C10.archive
        write_archive(archive, C10)
        monkeypatch.setitem(cifar.VARIANTS, "cifar10", dataclasses.replace(C10, md5=md5(archive)))
        monkeypatch.setattr(cifar, "MIRRORS", [mirror.url("kriz")])
        monkeypatch.setattr(download, "ATTEMPTS", 1)
        mirror.cut[f"/kriz/{C10.archive}"] = 1000
        with pytest.raises(DownloadError, match="connection closed after 1000 of"):
            build()
        monkeypatch.setattr(download, "ATTEMPTS", 3)
        assert len(build()) == 30  # the next run
        assert mirror.ranges_asked == [None, "bytes=1000-"]


def test_offline_without_data_says_what_to_do(tmp_path, monkeypatch):
    monkeypatch.setattr(cifar, "MIRRORS", [f"http://127.0.0.1:{closed_port()}/"])
    with pytest.raises(DownloadError) as err:
        build()
    text = str(err.value)
    assert "unreachable" in text and "GANFRAME_DATA" in text and "binary version" in text


def test_download_off_names_the_places_searched(tmp_path, monkeypatch):
    monkeypatch.setenv("GANFRAME_DATA", str(tmp_path / "data"))
    with pytest.raises(UserError) as err:
        build(download=False)
    assert str(tmp_path / "data" / "cifar10") in str(err.value)


@pytest.mark.parametrize("evil", ["../../escape.bin", "/tmp/abs.bin"])
def test_paths_in_the_archive_are_never_trusted(tmp_path, monkeypatch, evil):
    data = tmp_path / "data"
    write_archive(data / "cifar10" / C10.archive, C10, extra={evil: b"pwned"})
    monkeypatch.setenv("GANFRAME_DATA", str(data))
    assert len(build()) == 30
    assert not (tmp_path / "escape.bin").exists() and not Path("/tmp/abs.bin").exists()
    assert sorted(p.name for p in (data / "cifar10" / C10.folder).iterdir()) == sorted(
        C10.files())


def test_a_link_member_is_refused(tmp_path, monkeypatch):
    data = tmp_path / "data"
    path = data / "cifar10" / C10.archive
    path.parent.mkdir(parents=True)
    with tarfile.open(path, "w:gz") as tar:
        info = tarfile.TarInfo(f"{C10.folder}/data_batch_1.bin")
        info.type, info.linkname = tarfile.SYMTYPE, "/etc/passwd"
        tar.addfile(info)
    monkeypatch.setenv("GANFRAME_DATA", str(data))
    with pytest.raises(UserError, match="not a regular file"):
        build()


def test_the_python_version_is_not_read(tmp_path, monkeypatch):
    """An archive of the pickled python version (cifar-10-batches-py/) has none of the binary
    files, so it is refused by name, never unpickled."""
    data = tmp_path / "data"
    path = data / "cifar10" / C10.archive
    path.parent.mkdir(parents=True)
    with tarfile.open(path, "w:gz") as tar:
        payload = b"\x80\x04pickled"
        info = tarfile.TarInfo("cifar-10-batches-py/data_batch_1")
        info.size = len(payload)
        tar.addfile(info, io.BytesIO(payload))
    monkeypatch.setenv("GANFRAME_DATA", str(data))
    with pytest.raises(UserError, match="pickled"):
        build()


def test_a_damaged_batch_file_is_named(tmp_path, monkeypatch):
    data = tmp_path / "data"
    write_archive(data / "cifar10" / C10.archive, C10)
    monkeypatch.setenv("GANFRAME_DATA", str(data))
    build()
    batch = data / "cifar10" / C10.folder / "data_batch_3.bin"
    batch.write_bytes(batch.read_bytes()[:-10])
    with pytest.raises(UserError, match="data_batch_3.bin.*not a whole number"):
        build()
