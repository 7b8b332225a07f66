"""Fetching the MNIST IDX files from public mirrors, safely.

Why the care: a half-written file that looks final would be read as a corrupt dataset on every
later run. So bytes go to a temporary ``*.part`` file beside the target, the md5 of the
*decompressed* content is checked against the published IDX checksums (mirrors re-compress,
so the ``.gz`` hashes differ between them), and only then is the file renamed into place.
"""

from __future__ import annotations

import contextlib
import gzip
import hashlib
import http.client
import os
import tempfile
import urllib.error
import urllib.request
import zlib
from pathlib import Path
from typing import BinaryIO

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


class _DownloadFailed(Exception):
    """One mirror did not deliver a good file; the next one is tried."""


def download_files(names: list[str], folder: Path, *, progress: bool = True) -> list[Path]:
    """Download each IDX file ``name`` into ``folder``; returns the final paths."""
    return [download_file(name, folder, progress=progress) for name in names]


def download_file(name: str, folder: Path, *, progress: bool = True) -> Path:
    """Try every mirror in turn for ``name``; leave nothing behind unless it verified."""
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
        fd, tmp_name = tempfile.mkstemp(dir=folder, prefix=f"{name}.", suffix=".part")
        tmp = Path(tmp_name)
        try:
            with os.fdopen(fd, "wb") as out:
                _fetch(url, out, label=f"{name}.gz", progress=progress)
            compressed, digest = _md5_of_content(tmp)
            want = MD5[name]
            if digest != want:
                raise _DownloadFailed(f"checksum mismatch (md5 {digest}, expected {want})")
            final = folder / (f"{name}.gz" if compressed else name)
            tmp.chmod(0o644)
            os.replace(tmp, final)
            return final
        except _DownloadFailed as exc:
            failures.append(f"{url}: {exc}")
        finally:
            with contextlib.suppress(FileNotFoundError):
                tmp.unlink()
    tried = "; ".join(failures) or "no mirrors configured"
    raise UserError(
        f"could not download MNIST file {name}.gz ({tried}). If this machine is offline, put "
        f"the four MNIST IDX files (train-images-idx3-ubyte.gz, train-labels-idx1-ubyte.gz, "
        f"t10k-images-idx3-ubyte.gz, t10k-labels-idx1-ubyte.gz; gzipped or not) into {folder}, "
        "or set the GANFRAME_DATA environment variable to a folder that has them in its "
        "mnist/ subfolder."
    )


def _fetch(url: str, out: BinaryIO, *, label: str, progress: bool) -> None:
    request = urllib.request.Request(url, headers={"User-Agent": "ganframe-dcgan"})
    try:
        with urllib.request.urlopen(request, timeout=TIMEOUT_S) as response:
            total = int(response.headers.get("Content-Length") or 0) or None
            received = _copy(response, out, total, label, progress)
    except urllib.error.HTTPError as exc:
        raise _DownloadFailed(f"HTTP {exc.code} {exc.reason}") from exc
    except urllib.error.URLError as exc:
        raise _DownloadFailed(f"unreachable ({exc.reason})") from exc
    except (OSError, http.client.HTTPException, ValueError) as exc:
        raise _DownloadFailed(f"{type(exc).__name__}: {exc}") from exc
    if total is not None and received != total:
        raise _DownloadFailed(f"connection closed after {received} of {total} bytes")


def _copy(response: BinaryIO, out: BinaryIO, total: int | None, label: str, show: bool) -> int:
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
        task = bar.add_task(f"downloading {label}", total=total)
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
