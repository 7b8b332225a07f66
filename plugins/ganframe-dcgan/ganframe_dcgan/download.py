"""Fetching the MNIST IDX files from public mirrors, safely and resumably.

Why the care: a half-written file that looks final would be read as a corrupt dataset on every
later run. So bytes go to a hidden ``.<file>.<mirror hash>.part`` file beside the target, the
md5 of the *decompressed* content is checked against the published IDX checksums (mirrors
re-compress, so the ``.gz`` hashes differ between them), and only then is the file renamed
into place.

Resuming: the part file stays when a connection drops or the user interrupts, together with a
small JSON sidecar naming the URL and the server's validator (ETag or Last-Modified). The
next attempt, right away or in a later run, asks for the missing bytes only
(``Range: bytes=N-`` with ``If-Range``); a server that ignores ranges or whose file changed
answers with the whole file, which then replaces the part. Content that fails its checksum
after a resume is fetched once more from the start before the next mirror is tried, so a bad
part file can cost a download but never a wrong dataset.
"""

from __future__ import annotations

import contextlib
import errno
import gzip
import hashlib
import http.client
import json
import os
import re
import urllib.error
import urllib.request
import zlib
from pathlib import Path
from typing import Any, BinaryIO

from ganframe.errors import UserError

#: Tried in order; each serves ``<name>.gz``. Tests replace this list with a local server.
MIRRORS: list[str] = [
    "https://ossci-datasets.s3.amazonaws.com/mnist/",
    "https://storage.googleapis.com/cvdf-datasets/mnist/",
    "http://yann.lecun.com/exdb/mnist/",
]

#: md5 of each decompressed IDX file (LeCun et al.'s originals).
MD5: dict[str, str] = {
    "train-images-idx3-ubyte": "6bbc9ace898e44ae57da46a324031adb",
    "train-labels-idx1-ubyte": "a25bea736e30d166cdddb491f175f624",
    "t10k-images-idx3-ubyte": "2646ac647ad5339dbf082846283269ea",
    "t10k-labels-idx1-ubyte": "27ae3e4e09519cfbb04c329615203637",
}

TIMEOUT_S = 30.0
CHUNK = 1 << 16
#: Requests per mirror for one file: a dropped connection is resumed at once this many times.
ATTEMPTS = 3

_CONTENT_RANGE = re.compile(r"^bytes (\d+)-(\d+)/(\d+|\*)$")


class _DownloadFailed(Exception):
    """One mirror did not deliver a good file; the next one is tried."""


class _Dropped(_DownloadFailed):
    """The transfer stopped part-way; what arrived is kept and can be resumed."""


class _Gone(_DownloadFailed):
    """The server refused the file for good (404 and the like): its part file is useless."""


class _Partial:
    """The part file of one (file, mirror) pair and its sidecar: URL, validator, size."""

    def __init__(self, folder: Path, name: str, url: str) -> None:
        tag = hashlib.sha1(url.encode("utf-8"), usedforsecurity=False).hexdigest()[:10]
        self.path = folder / f".{name}.gz.{tag}.part"
        self.meta_path = folder / f".{name}.gz.{tag}.part.json"
        self.url = url

    def resumable(self) -> tuple[int, str | None]:
        """(bytes already here, validator) for a part this URL wrote; (0, None) otherwise."""
        try:
            meta = json.loads(self.meta_path.read_text(encoding="utf-8"))
            size = self.path.stat().st_size
        except (OSError, ValueError):
            return 0, None
        if not isinstance(meta, dict) or meta.get("url") != self.url:
            return 0, None
        validator = meta.get("validator")
        return (size, validator) if size and isinstance(validator, str) else (0, None)

    def start(self, validator: str | None, append: bool) -> BinaryIO:
        """Open the part for writing (appending when resuming) and record how to resume."""
        self.meta_path.write_text(json.dumps({"url": self.url, "validator": validator}),
                                  encoding="utf-8")
        return self.path.open("ab" if append else "wb")

    def discard(self) -> None:
        for p in (self.path, self.meta_path):
            with contextlib.suppress(FileNotFoundError):
                p.unlink()


def download_files(names: list[str], folder: Path, *, progress: bool = True) -> list[Path]:
    """Download each IDX file ``name`` into ``folder``; returns the final paths."""
    return [download_file(name, folder, progress=progress) for name in names]


def download_file(name: str, folder: Path, *, progress: bool = True) -> Path:
    """Try every mirror in turn for ``name``; nothing gets the final name unless verified."""
    try:
        folder.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        raise UserError(
            f"cannot create the MNIST download folder {folder}: {exc.strerror or exc}. "
            "Set 'root' in the recipe's [data] table or GANFRAME_DATA to a writable folder."
        ) from exc
    failures: list[str] = []
    for mirror in MIRRORS:
        url = f"{mirror}{name}.gz"
        part = _Partial(folder, name, url)
        try:
            return _from_mirror(name, folder, part, progress)
        except _DownloadFailed as exc:
            failures.append(f"{url}: {exc}")
    tried = "; ".join(failures) or "no mirrors configured"
    raise UserError(
        f"could not download MNIST file {name}.gz ({tried}). If this machine is offline, put "
        f"the four MNIST IDX files (train-images-idx3-ubyte.gz, train-labels-idx1-ubyte.gz, "
        f"t10k-images-idx3-ubyte.gz, t10k-labels-idx1-ubyte.gz; gzipped or not) into {folder}, "
        "or set the GANFRAME_DATA environment variable to a folder that has them in its "
        "mnist/ subfolder. A download cut short resumes where it stopped on the next run."
    )


def _from_mirror(name: str, folder: Path, part: _Partial, progress: bool) -> Path:
    """Fetch (or finish) ``part`` from its URL, verify it and move it into place."""
    fresh_retry_done = False
    attempts = 0
    while True:
        attempts += 1
        resumed_from, _ = part.resumable()
        try:
            _fetch(part, label=f"{name}.gz", progress=progress)
        except _Dropped:
            if attempts < ATTEMPTS:
                continue  # what arrived is kept; ask for the rest
            raise
        except _Gone:
            part.discard()  # this URL will never finish it
            raise
        want = MD5[name]
        try:
            compressed, digest = _md5_of_content(part.path)
            problem = f"checksum mismatch (md5 {digest}, expected {want})"
        except _DownloadFailed as exc:  # not even valid gzip
            compressed, digest, problem = False, None, str(exc)
        if digest == want:
            final = folder / (f"{name}.gz" if compressed else name)
            part.path.chmod(0o644)
            os.replace(part.path, final)
            part.discard()
            return final
        part.discard()
        if resumed_from and not fresh_retry_done:
            fresh_retry_done = True  # the kept bytes may be what was wrong: once from scratch
            continue
        raise _DownloadFailed(problem)


def _fetch(part: _Partial, *, label: str, progress: bool) -> None:
    """Bring ``part`` up to the whole file: a ranged request if it has bytes, else all."""
    have, validator = part.resumable()
    headers = {"User-Agent": "ganframe-dcgan"}
    if have:
        headers["Range"] = f"bytes={have}-"
        headers["If-Range"] = validator or ""
    request = urllib.request.Request(part.url, headers=headers)
    try:
        with urllib.request.urlopen(request, timeout=TIMEOUT_S) as response:
            offset, total = _where(response, have)
            validator = response.headers.get("ETag") or response.headers.get("Last-Modified")
            with part.start(validator, append=offset > 0) as out:
                received = offset + _copy(response, out, total, offset, label, progress)
    except urllib.error.HTTPError as exc:
        if exc.code == 416 and have:  # nothing left to send: the part may be complete
            return
        gone = 400 <= exc.code < 500 and exc.code not in (408, 429)
        raise (_Gone if gone else _DownloadFailed)(f"HTTP {exc.code} {exc.reason}") from exc
    except urllib.error.URLError as exc:
        raise _DownloadFailed(f"unreachable ({exc.reason})") from exc
    except OSError as exc:
        if exc.errno in (errno.ENOSPC, errno.EDQUOT, errno.EROFS, errno.EACCES, errno.EPERM):
            raise UserError(
                f"cannot write the MNIST download into {part.path.parent}: "
                f"{exc.strerror or exc}. Free some space or set 'root' in the recipe's [data] "
                "table (or GANFRAME_DATA) to a writable folder; the download resumes there."
            ) from exc
        raise _Dropped(f"{type(exc).__name__}: {exc}") from exc
    except http.client.HTTPException as exc:
        if part.path.exists():
            raise _Dropped(f"{type(exc).__name__}: {exc}") from exc
        raise _DownloadFailed(f"{type(exc).__name__}: {exc}") from exc
    if total is not None and received != total:
        raise _Dropped(f"connection closed after {received} of {total} bytes")


def _where(response: Any, have: int) -> tuple[int, int | None]:
    """(offset the body starts at, size of the whole file or None) of a response."""
    length = int(response.headers.get("Content-Length") or 0) or None
    if response.status != 206:
        return 0, length  # the whole file (a server without ranges, or it changed)
    match = _CONTENT_RANGE.match(response.headers.get("Content-Range") or "")
    if match is None or int(match.group(1)) != have:
        raise _DownloadFailed(f"bad Content-Range {response.headers.get('Content-Range')!r}")
    return have, None if match.group(3) == "*" else int(match.group(3))


def _copy(
    response: BinaryIO, out: BinaryIO, total: int | None, done: int, label: str, show: bool
) -> int:
    """Stream the body into ``out`` with a progress bar; returns the bytes written."""
    from rich.console import Console
    from rich.progress import (
        BarColumn,
        DownloadColumn,
        Progress,
        TextColumn,
        TransferSpeedColumn,
    )

    received = 0
    columns = (TextColumn("{task.description}"), BarColumn(), DownloadColumn())
    with Progress(
        *columns,
        TransferSpeedColumn(),
        console=Console(stderr=True),
        transient=True,
        disable=not show,
    ) as bar:
        task = bar.add_task(f"downloading {label}", total=total, completed=done)
        while chunk := response.read(CHUNK):
            out.write(chunk)
            received += len(chunk)
            bar.update(task, advance=len(chunk))
    return received


def _md5_of_content(path: Path) -> tuple[bool, str]:
    """(was gzip, md5 of the decompressed bytes), streamed so memory stays flat."""
    with path.open("rb") as f:
        compressed = f.read(2) == b"\x1f\x8b"
    digest = hashlib.md5(usedforsecurity=False)
    opener = gzip.open if compressed else open
    try:
        with opener(path, "rb") as f:  # type: ignore[operator]
            while chunk := f.read(CHUNK):
                digest.update(chunk)
    except (OSError, EOFError, zlib.error) as exc:
        raise _DownloadFailed(f"damaged gzip data ({exc})") from exc
    return compressed, digest.hexdigest()
