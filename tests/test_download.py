"""ganframe.download.fetch_file against a local HTTP server on 127.0.0.1 (never the network):
mirrors in order, checksums before the rename, resuming cut transfers, offline errors."""

from __future__ import annotations

import hashlib
import os
from collections.abc import Iterator
from pathlib import Path

import pytest

from ganframe import download
from ganframe.download import DownloadError, cache_dir, fetch_file
from ganframe.errors import UserError
from ganframe.testing_mirror import Mirror, closed_port, serve_folder

DATA = bytes(range(256)) * 40  # 10,240 bytes
NAME = "blob.bin"
PATH = f"/good/{NAME}"
MD5 = hashlib.md5(DATA, usedforsecurity=False).hexdigest()
SHA = hashlib.sha256(DATA).hexdigest()


@pytest.fixture
def mirror(tmp_path: Path) -> Iterator[Mirror]:
    with serve_folder(tmp_path / "www") as m:
        (m.root / "good").mkdir()
        (m.root / "good" / NAME).write_bytes(DATA)
        yield m


@pytest.fixture
def dest(tmp_path: Path) -> Path:
    return tmp_path / "dl" / NAME


def url(m: Mirror, sub: str = "good") -> str:
    return m.url(sub) + NAME


def leftovers(folder: Path) -> list[str]:
    return sorted(p.name for p in folder.glob(".*")) if folder.exists() else []


def test_good_file_is_verified_and_renamed(mirror, dest):
    got = fetch_file([url(mirror)], dest, sha256=SHA, md5=MD5, size=len(DATA), progress=False)
    assert got == dest and dest.read_bytes() == DATA
    assert leftovers(dest.parent) == []
    assert os.stat(dest).st_mode & 0o777 == 0o644
    # Present and good: no request at all the second time.
    mirror.requests.clear()
    assert fetch_file([url(mirror)], dest, sha256=SHA, progress=False) == dest
    assert mirror.requests == []


def test_mirrors_are_tried_in_order(mirror, dest):
    got = fetch_file([url(mirror, "missing"), url(mirror)], dest, md5=MD5, progress=False)
    assert got.read_bytes() == DATA
    # (a 404 is logged twice by http.server: as an error and as a request)
    assert mirror.requests[0] == f"/missing/{NAME}" and mirror.requests[-1] == PATH
    assert mirror.requests.count(PATH) == 1


@pytest.mark.parametrize("kind", ["sha256", "md5", "size"])
def test_wrong_checksum_leaves_no_file(mirror, dest, kind):
    wrong = {"sha256": {"sha256": "0" * 64}, "md5": {"md5": "0" * 32},
             "size": {"size": len(DATA) + 1}}[kind]
    with pytest.raises(DownloadError) as err:
        fetch_file([url(mirror)], dest, progress=False, **wrong)
    text = str(err.value)
    assert ("checksum mismatch" if kind != "size" else "size mismatch") in text
    assert url(mirror) in text and str(dest) in text and "offline" in text
    assert isinstance(err.value, UserError)
    assert not dest.exists() and leftovers(dest.parent) == []


def test_a_present_file_with_a_wrong_checksum_is_replaced(mirror, dest):
    dest.parent.mkdir(parents=True)
    dest.write_bytes(b"old and wrong")
    assert fetch_file([url(mirror)], dest, sha256=SHA, progress=False).read_bytes() == DATA


def test_caller_check_is_applied(mirror, dest):
    with pytest.raises(DownloadError, match="not what I want"):
        fetch_file([url(mirror)], dest, verify=lambda p: "not what I want", progress=False)
    assert not dest.exists()


def test_offline_error_names_url_file_and_what_to_do(tmp_path, dest):
    dead = f"http://127.0.0.1:{closed_port()}/{NAME}"
    with pytest.raises(DownloadError) as err:
        fetch_file([dead], dest, sha256=SHA, label="the blob", progress=False)
    text = str(err.value)
    assert "the blob" in text and dead in text and "unreachable" in text
    assert "offline" in text and str(dest) in text
    assert leftovers(dest.parent) == []


def test_hint_replaces_the_generic_advice(tmp_path, dest):
    dead = f"http://127.0.0.1:{closed_port()}/{NAME}"
    with pytest.raises(DownloadError, match="put it in the drawer") as err:
        fetch_file([dead], dest, hint="put it in the drawer.", progress=False)
    assert "another one" not in str(err.value)


def test_unwritable_folder_is_a_clear_error(tmp_path, mirror):
    blocker = tmp_path / "file"
    blocker.write_text("x")
    with pytest.raises(DownloadError, match="cannot create the download folder"):
        fetch_file([url(mirror)], blocker / "sub" / NAME, progress=False)


def test_cache_dir_follows_the_setting(monkeypatch, tmp_path):
    monkeypatch.setenv("GANFRAME_CACHE", str(tmp_path / "c"))
    assert cache_dir("mnist") == tmp_path / "c" / "mnist"
    monkeypatch.delenv("GANFRAME_CACHE")
    assert cache_dir() == Path.home() / ".cache" / "ganframe"


# -- resuming ----------------------------------------------------------------------------


def cut_short(mirror, dest, monkeypatch, at: int) -> Path:
    """A first run whose only request drops after ``at`` bytes and gives up; returns the
    part file it left behind."""
    monkeypatch.setattr(download, "ATTEMPTS", 1)
    mirror.cut[PATH] = at
    with pytest.raises(DownloadError, match=f"connection closed after {at} of"):
        fetch_file([url(mirror)], dest, sha256=SHA, progress=False)
    monkeypatch.setattr(download, "ATTEMPTS", 3)
    (part,) = [p for p in dest.parent.glob(".*.part")]
    return part


def test_a_dropped_connection_resumes_where_it_stopped(mirror, dest):
    mirror.cut[PATH] = 100
    assert fetch_file([url(mirror)], dest, sha256=SHA, progress=False).read_bytes() == DATA
    assert mirror.requests == [PATH, PATH]
    assert mirror.ranges_asked == [None, "bytes=100-"]  # only the rest, once
    assert leftovers(dest.parent) == []


def test_an_interrupted_run_resumes_in_the_next_one(mirror, dest, monkeypatch):
    part = cut_short(mirror, dest, monkeypatch, 150)
    assert not dest.exists() and part.read_bytes() == DATA[:150]
    assert fetch_file([url(mirror)], dest, sha256=SHA, progress=False).read_bytes() == DATA
    assert mirror.ranges_asked == [None, "bytes=150-"]
    assert leftovers(dest.parent) == []


def test_ctrl_c_keeps_the_part_for_later(mirror, dest, monkeypatch):
    real_copy = download._copy

    def copy_then_interrupt(response, out, total, done, label, show):
        out.write(response.read(64))
        raise KeyboardInterrupt

    monkeypatch.setattr(download, "_copy", copy_then_interrupt)
    with pytest.raises(KeyboardInterrupt):
        fetch_file([url(mirror)], dest, sha256=SHA, progress=False)
    monkeypatch.setattr(download, "_copy", real_copy)
    assert fetch_file([url(mirror)], dest, sha256=SHA, progress=False).read_bytes() == DATA
    assert mirror.ranges_asked[-1] == "bytes=64-"


@pytest.mark.parametrize("why", ["server ignores ranges", "file changed on the server"])
def test_resume_falls_back_to_the_whole_file(mirror, dest, monkeypatch, why):
    cut_short(mirror, dest, monkeypatch, 80)
    data = DATA
    if why == "server ignores ranges":
        mirror.ranges = False
    else:  # new content: another ETag, so If-Range must fail
        data = DATA[::-1]
        (mirror.root / "good" / NAME).write_bytes(data)
    sha = hashlib.sha256(data).hexdigest()
    assert fetch_file([url(mirror)], dest, sha256=sha, progress=False).read_bytes() == data
    assert leftovers(dest.parent) == []


def test_a_bad_part_file_costs_one_fresh_download_not_a_wrong_file(mirror, dest, monkeypatch):
    part = cut_short(mirror, dest, monkeypatch, 120)
    part.write_bytes(b"\0" * 120)  # damaged on disk, same length
    assert fetch_file([url(mirror)], dest, sha256=SHA, progress=False).read_bytes() == DATA
    assert mirror.ranges_asked[-2:] == ["bytes=120-", None]  # resumed, then from 0
    assert leftovers(dest.parent) == []


def test_a_complete_part_is_verified_without_refetching(mirror, dest, monkeypatch):
    part = cut_short(mirror, dest, monkeypatch, 60)
    part.write_bytes(DATA)  # e.g. the bytes arrived, the rename did not
    assert fetch_file([url(mirror)], dest, sha256=SHA, progress=False).read_bytes() == DATA
    assert mirror.ranges_asked[-1] == f"bytes={len(DATA)}-"  # answered 416


def test_a_missing_file_on_a_mirror_discards_its_part(mirror, dest, monkeypatch):
    part = cut_short(mirror, dest, monkeypatch, 90)
    assert part.exists()
    (mirror.root / "good" / NAME).unlink()
    with pytest.raises(DownloadError, match="HTTP 404"):
        fetch_file([url(mirror)], dest, sha256=SHA, progress=False)
    assert leftovers(dest.parent) == []


def test_a_stale_part_of_another_name_is_not_used(mirror, dest):
    dest.parent.mkdir(parents=True)
    stale = dest.parent / f"{NAME}.part"
    stale.write_bytes(b"half a download")
    assert fetch_file([url(mirror)], dest, sha256=SHA, progress=False).read_bytes() == DATA
    assert stale.read_bytes() == b"half a download"
