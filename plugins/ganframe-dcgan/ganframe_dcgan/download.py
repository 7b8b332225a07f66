"""Fetching the MNIST IDX files from public mirrors, through the core's downloader.

:func:`ganframe.download.fetch_file` does the work (mirrors in order, resumable part files,
verification before an atomic rename). What is MNIST's own: the mirror list, and the check,
which is the md5 of the *decompressed* content against the published IDX checksums (mirrors
re-compress, so the ``.gz`` hashes differ between them). A mirror that serves the raw file
under the ``.gz`` name is accepted too; the file is then renamed to its raw name.
"""

from __future__ import annotations

import gzip
import hashlib
import os
import zlib
from pathlib import Path

from ganframe.download import fetch_file

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

CHUNK = 1 << 16


def download_files(names: list[str], folder: Path, *, progress: bool = True) -> list[Path]:
    """Download each IDX file ``name`` into ``folder``; returns the final paths."""
    return [download_file(name, folder, progress=progress) for name in names]


def download_file(name: str, folder: Path, *, progress: bool = True) -> Path:
    """Try every mirror in turn for ``name``; nothing gets the final name unless verified."""
    hint = (
        f"If this machine is offline, put the four MNIST IDX files (train-images-idx3-ubyte.gz, "
        f"train-labels-idx1-ubyte.gz, t10k-images-idx3-ubyte.gz, t10k-labels-idx1-ubyte.gz; "
        f"gzipped or not) into {folder}, or set the GANFRAME_DATA environment variable to a "
        "folder that has them in its mnist/ subfolder. A download cut short resumes where it "
        "stopped on the next run."
    )
    want = MD5[name]

    def verify(path: Path) -> str | None:
        try:
            digest = _md5_of_content(path)
        except (OSError, EOFError, zlib.error) as exc:
            return f"damaged gzip data ({exc})"
        return None if digest == want else f"checksum mismatch (md5 {digest}, expected {want})"

    dest = folder / f"{name}.gz"
    path = fetch_file([f"{m}{name}.gz" for m in MIRRORS], dest, verify=verify,
                      label=f"MNIST file {name}.gz", progress=progress, hint=hint)
    if not _is_gzip(path):  # a mirror served the raw file: give it its raw name
        raw = folder / name
        os.replace(path, raw)
        return raw
    return path


def _is_gzip(path: Path) -> bool:
    with path.open("rb") as f:
        return f.read(2) == b"\x1f\x8b"


def _md5_of_content(path: Path) -> str:
    """md5 of the decompressed bytes (of the bytes themselves when not gzip), streamed."""
    digest = hashlib.md5(usedforsecurity=False)
    opener = gzip.open if _is_gzip(path) else open
    with opener(path, "rb") as f:  # type: ignore[operator]
        while chunk := f.read(CHUNK):
            digest.update(chunk)
    return digest.hexdigest()
