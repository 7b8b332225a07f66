"""Fetching one file from a list of mirrors, safely and resumably; the user's download cache.

Why the care: a half-written file that looks final would be read as a corrupt dataset (or
broken weights) on every later run. So bytes go to a hidden ``.<name>.<mirror hash>.part``
file beside the target, the checksum (and size, and any check the caller adds) is verified,
and only then is the file renamed into place with one ``os.replace``.

Resuming: the part file stays when a connection drops or the user interrupts, together with a
small JSON sidecar naming the URL and the server's validator (ETag or Last-Modified). The
next attempt, right away or in a later run, asks for the missing bytes only
(``Range: bytes=N-`` with ``If-Range``); a server that ignores ranges or whose file changed
answers with the whole file, which then replaces the part. Content that fails its checks
after a resume is fetched once more from the start before the next mirror is tried, so a bad
part file can cost a download but never a wrong file.

Every plugin uses this module (MNIST, CIFAR, metric weights): it imports nothing heavy, and
the only network code is ``urllib`` from the standard library.
"""

from __future__ import annotations

import contextlib
import errno
import hashlib
import http.client
import json
import os
import re
import urllib.error
import urllib.request
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any, BinaryIO

from ganframe.errors import UserError

CACHE_ENV = "GANFRAME_CACHE"
TIMEOUT_S = 30.0
CHUNK = 1 << 16
#: Requests per mirror for one file: a dropped connection is resumed at once this many times.
ATTEMPTS = 3

_CONTENT_RANGE = re.compile(r"^bytes (\d+)-(\d+)/(\d+|\*)$")

#: A caller's own check of a finished part file: None when good, else what is wrong.
Verify = Callable[[Path], "str | None"]


class DownloadError(UserError):
    """No mirror delivered a good copy of a file, or the file cannot be written where asked.

    The message names the file, every URL tried with what went wrong there, and what to do on
    a machine without network access.
    """


def cache_dir(*parts: str) -> Path:
    """The user's ganframe cache, ``$GANFRAME_CACHE`` or ``~/.cache/ganframe``, joined with
    ``parts`` (``cache_dir("mnist")``). Not created here."""
    base = os.environ.get(CACHE_ENV)
    root = Path(base).expanduser() if base else Path.home() / ".cache" / "ganframe"
    return root.joinpath(*parts)


class _DownloadFailed(Exception):
    """One mirror did not deliver a good file; the next one is tried."""


class _Dropped(_DownloadFailed):
    """The transfer stopped part-way; what arrived is kept and can be resumed."""


class _Gone(_DownloadFailed):
    """The server refused the file for good (404 and the like): its part file is useless."""


class _Partial:
    """The part file of one (target, URL) pair and its sidecar: URL, validator, size."""

    def __init__(self, dest: Path, url: str) -> None:
        tag = hashlib.sha1(url.encode("utf-8"), usedforsecurity=False).hexdigest()[:10]
        self.path = dest.parent / f".{dest.name}.{tag}.part"
        self.meta_path = dest.parent / f".{dest.name}.{tag}.part.json"
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


class _Checks:
    """What a finished file must satisfy: size, md5, sha256, the caller's own check."""

    def __init__(self, sha256: str | None, md5: str | None, size: int | None,
                 verify: Verify | None) -> None:
        self.sha256 = sha256.lower() if sha256 else None
        self.md5 = md5.lower() if md5 else None
        self.size = size
        self.verify = verify

    def problem(self, path: Path) -> str | None:
        """None when ``path`` passes every check, else what is wrong with it."""
        got = path.stat().st_size
        if self.size is not None and got != self.size:
            return f"size mismatch ({got} bytes, expected {self.size})"
        if self.sha256 or self.md5:
            sha, md5 = _digests(path)
            if self.sha256 and sha != self.sha256:
                return f"checksum mismatch (sha256 {sha}, expected {self.sha256})"
            if self.md5 and md5 != self.md5:
                return f"checksum mismatch (md5 {md5}, expected {self.md5})"
        return self.verify(path) if self.verify is not None else None


def _digests(path: Path) -> tuple[str, str]:
    """(sha256, md5) of a file, streamed so memory stays flat."""
    sha, md5 = hashlib.sha256(), hashlib.md5(usedforsecurity=False)
    with path.open("rb") as f:
        while chunk := f.read(1 << 20):
            sha.update(chunk)
            md5.update(chunk)
    return sha.hexdigest(), md5.hexdigest()


def fetch_file(
    urls: Sequence[str],
    dest: Path,
    *,
    sha256: str | None = None,
    md5: str | None = None,
    size: int | None = None,
    label: str = "",
    progress: bool = True,
    verify: Verify | None = None,
    hint: str = "",
) -> Path:
    """Download ``dest`` from the first of ``urls`` that delivers a good copy; returns ``dest``.

    A ``dest`` already present that passes the checks is returned without any request (one
    that fails them is replaced only once a good copy has arrived). ``verify`` is an extra
    check of the finished file (e.g. of its decompressed content) returning None or a
    problem; ``hint`` replaces the generic offline advice in the error. Raises
    :class:`DownloadError` when no mirror delivered.
    """
    dest = Path(dest)
    name = label or dest.name
    checks = _Checks(sha256, md5, size, verify)
    if dest.is_file() and checks.problem(dest) is None:
        return dest
    try:
        dest.parent.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        raise DownloadError(
            f"cannot create the download folder {dest.parent} for {name}: "
            f"{exc.strerror or exc}. Point the data or cache setting (GANFRAME_DATA, "
            f"GANFRAME_CACHE) at a writable folder."
        ) from exc
    failures: list[str] = []
    for url in urls:
        part = _Partial(dest, url)
        try:
            return _from_mirror(dest, part, checks, name, progress)
        except _DownloadFailed as exc:
            failures.append(f"{url}: {exc}")
    tried = "; ".join(failures) or "no mirrors configured"
    advice = hint or (
        f"If this machine is offline, fetch the file on another one (from {urls[0]})"
        if urls else "If this machine is offline, fetch the file on another one"
    ) + f" and put it at {dest}. A download cut short resumes where it stopped next time."
    raise DownloadError(f"could not download {name} ({tried}). {advice}")


def _from_mirror(dest: Path, part: _Partial, checks: _Checks, label: str,
                 progress: bool) -> Path:
    """Fetch (or finish) ``part`` from its URL, verify it and move it into place."""
    fresh_retry_done = False
    attempts = 0
    while True:
        attempts += 1
        resumed_from, _ = part.resumable()
        try:
            _fetch(part, label=label, progress=progress)
        except _Dropped:
            if attempts < ATTEMPTS:
                continue  # what arrived is kept; ask for the rest
            raise
        except _Gone:
            part.discard()  # this URL will never finish it
            raise
        problem = checks.problem(part.path) if part.path.exists() else "nothing arrived"
        if problem is None:
            part.path.chmod(0o644)
            os.replace(part.path, dest)
            part.discard()
            return dest
        part.discard()
        if resumed_from and not fresh_retry_done:
            fresh_retry_done = True  # the kept bytes may be what was wrong: once from scratch
            continue
        raise _DownloadFailed(problem)


def _fetch(part: _Partial, *, label: str, progress: bool) -> None:
    """Bring ``part`` up to the whole file: a ranged request if it has bytes, else all."""
    have, validator = part.resumable()
    headers = {"User-Agent": "ganframe"}
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
            raise DownloadError(
                f"cannot write the download of {label} into {part.path.parent}: "
                f"{exc.strerror or exc}. Free some space or point the data or cache setting "
                "(GANFRAME_DATA, GANFRAME_CACHE) at a writable folder; the download resumes "
                "there."
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
