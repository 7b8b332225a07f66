"""Reading the IDX files MNIST ships as, gzipped or raw, with every check a user can act on.

IDX: big-endian int32 magic (0x0000 08 NN: unsigned bytes, NN dimensions), then NN int32
sizes, then the bytes. A truncated download or a wrong file must surface as a
:class:`UserError` naming the file, never as a reshape error deep inside torch. A file is
also untrusted input: its header bounds what is read (a gzip stream is decompressed only up
to the declared size, and that size is bounded), and a path that is not a regular file
(FIFO, device, folder) is refused before reading.
"""

from __future__ import annotations

import gzip
import io
import os
import struct
import zlib
from collections.abc import Callable
from pathlib import Path
from typing import Any, BinaryIO

import torch
from torch import Tensor

from ganframe.errors import UserError

IMAGES_MAGIC = 2051  #: uint8 data, 3 dimensions (count, rows, cols)
LABELS_MAGIC = 2049  #: uint8 data, 1 dimension (count)
GZIP_MAGIC = b"\x1f\x8b"
#: Items (images or labels) a file may declare: MNIST has 60,000 + 10,000, EMNIST's digits
#: 240,000. A header declaring more is refused before any data is read.
MAX_ITEMS = 1_000_000
#: How much a gzipped IDX file may expand. Real MNIST files expand about 5x; a "gzip bomb"
#: (a few hundred KB of zeros' worth of gzip) about 1000x. Files whose declared data stays
#: under :data:`GZIP_FREE_BYTES` may expand any amount.
MAX_GZIP_RATIO = 100
GZIP_FREE_BYTES = 64 * 1024 * 1024

_GZIP_ERRORS = (OSError, EOFError, zlib.error)


def read_bytes(path: Path) -> bytes:
    """The decompressed content of ``path`` (gzip is recognised by content, not by name).

    Kept for callers that want the bytes of a small file; the readers below stream instead,
    with the size the IDX header declares as the limit."""
    with _open(path) as raw:
        if raw.read(2) != GZIP_MAGIC:
            raw.seek(0)
            return raw.read()
        raw.seek(0)
        try:
            return gzip.GzipFile(fileobj=raw, mode="rb").read()
        except _GZIP_ERRORS as exc:
            raise _damaged(path, exc) from exc


def _open(path: Path) -> BinaryIO:
    from ganframe.components import open_data_file  # refuses FIFOs, devices and folders

    try:
        return open_data_file(path, "MNIST file")
    except OSError as exc:
        raise UserError(f"cannot read MNIST file {path}: {exc.strerror or exc}.") from exc


def _damaged(path: Path, exc: BaseException) -> UserError:
    return UserError(
        f"MNIST file {path} is a damaged gzip file ({exc}); it was probably cut short "
        "while downloading. Delete it and run again to download it afresh, or replace it "
        "with a good copy."
    )


def _read_up_to(stream: BinaryIO, n: int) -> bytes:
    """Up to ``n`` bytes (fewer only at the end of the data)."""
    chunks, left = [], n
    while left > 0:
        chunk = stream.read(min(left, 1 << 20))
        if not chunk:
            break
        chunks.append(chunk)
        left -= len(chunk)
    return b"".join(chunks)


def _read_header(stream: BinaryIO, path: Path, magic: int) -> tuple[int, ...]:
    ndim = magic & 0xFF
    head = _read_up_to(stream, 4 + 4 * ndim)
    short = UserError(
        f"MNIST file {path} is truncated: {len(head)} bytes, shorter than the IDX header. "
        "Delete it and run again to download it afresh."
    )
    if len(head) < 4:
        raise short
    (found,) = struct.unpack(">i", head[:4])
    if found != magic:
        kind = "images" if magic == IMAGES_MAGIC else "labels"
        raise UserError(
            f"MNIST file {path} is not an IDX {kind} file: magic number {found}, expected "
            f"{magic}. Check that the file names match their contents "
            "(train-images-idx3-ubyte, train-labels-idx1-ubyte, t10k-...)."
        )
    if len(head) < 4 + 4 * ndim:
        raise short
    dims = struct.unpack(f">{ndim}i", head[4:])
    if any(d < 0 for d in dims) or (dims and dims[0] > MAX_ITEMS):
        raise UserError(
            f"MNIST file {path} is corrupt: its header declares shape {list(dims)}, more than "
            f"the {MAX_ITEMS} items (or fewer than 0) an MNIST file can hold. Replace it with "
            "a good copy."
        )
    return dims


def read_idx(path: Path, magic: int, check: Callable[[tuple[int, ...]], None] | None = None
             ) -> Tensor:
    """One IDX file as a uint8 tensor of its declared shape, gzipped or raw.

    The header is read first and bounds everything after it: ``check`` sees the declared
    shape before any data is read, a gzip stream is decompressed only up to the declared size
    (a file that expands further is refused, not read to the end), and a raw file must have
    exactly the declared size."""
    with _open(path) as raw:
        size = os.fstat(raw.fileno()).st_size
        gz = raw.read(2) == GZIP_MAGIC
        raw.seek(0)
        stream: Any = gzip.GzipFile(fileobj=raw, mode="rb") if gz else raw
        try:
            dims = _read_header(stream, path, magic)
            if check is not None:
                check(dims)
            header = 4 + 4 * len(dims)
            expected = header + _payload(dims)
            if gz and expected > max(GZIP_FREE_BYTES, MAX_GZIP_RATIO * size):
                raise UserError(
                    f"MNIST file {path} is a {size}-byte gzip file whose header declares "
                    f"shape {list(dims)} ({expected} bytes): more than {MAX_GZIP_RATIO}x its "
                    "size, which no real MNIST file expands to. It is damaged or not an MNIST "
                    "file; replace it with a good copy."
                )
            if not gz and size != expected:
                raise _wrong_size(path, dims, expected, size)
            data = _read_up_to(stream, expected - header)
            if len(data) < expected - header:
                raise _wrong_size(path, dims, expected, header + len(data))
            if gz and stream.read(1):
                raise _wrong_size(path, dims, expected, None)
        except _GZIP_ERRORS as exc:
            if not gz:
                raise UserError(f"cannot read MNIST file {path}: {exc}.") from exc
            raise _damaged(path, exc) from exc
    if not data:
        return torch.empty(dims, dtype=torch.uint8)
    return torch.frombuffer(bytearray(data), dtype=torch.uint8).view(*dims)


def _wrong_size(path: Path, dims: tuple[int, ...], expected: int, found: int | None
                ) -> UserError:
    what = "truncated" if found is not None and found < expected else "corrupt (extra bytes)"
    holds = f"{found} bytes" if found is not None else f"more than {expected} bytes"
    return UserError(
        f"MNIST file {path} is {what}: its header declares shape {list(dims)} "
        f"({expected} bytes) but it holds {holds}. Delete it and run again to download it "
        "afresh, or replace it with a good copy."
    )


def parse_idx(data: bytes, path: Path, magic: int) -> Tensor:
    """Decode one IDX file's bytes to a uint8 tensor of its declared shape."""
    stream = io.BytesIO(data)
    dims = _read_header(stream, path, magic)
    expected = 4 + 4 * len(dims) + _payload(dims)
    if len(data) != expected:
        raise _wrong_size(path, dims, expected, len(data))
    payload = data[4 + 4 * len(dims):]
    if not payload:
        return torch.empty(dims, dtype=torch.uint8)
    return torch.frombuffer(bytearray(payload), dtype=torch.uint8).view(*dims)


def _payload(dims: tuple[int, ...]) -> int:
    n = 1
    for d in dims:
        n *= d
    return n


def read_images(path: Path) -> Tensor:
    """Images as uint8 ``N x 1 x 28 x 28``."""

    def digits_only(dims: tuple[int, ...]) -> None:
        if tuple(dims[1:]) != (28, 28):
            raise UserError(
                f"MNIST file {path} holds {tuple(dims[1:])} images; MNIST digits are "
                "28x28. Is this another dataset's file?"
            )

    return read_idx(path, IMAGES_MAGIC, digits_only).unsqueeze(1)


def read_labels(path: Path) -> Tensor:
    """Labels as int64 ``N``; values outside 0-9 mean the file is not MNIST."""
    labels = read_idx(path, LABELS_MAGIC)
    if labels.numel() and int(labels.max()) > 9:
        raise UserError(
            f"MNIST file {path} holds label {int(labels.max())}; MNIST labels are 0-9."
        )
    return labels.long()


def read_pair(images_path: Path, labels_path: Path) -> tuple[Tensor, Tensor]:
    images = read_images(images_path)
    labels = read_labels(labels_path)
    if images.shape[0] != labels.shape[0]:
        raise UserError(
            f"MNIST files disagree: {images_path} holds {images.shape[0]} images but "
            f"{labels_path} holds {labels.shape[0]} labels. One of them is from another "
            "split or damaged; replace both with matching files."
        )
    return images, labels
