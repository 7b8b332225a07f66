"""Reading the IDX files MNIST ships as, gzipped or raw, with every check a user can act on.

IDX: big-endian int32 magic (0x0000 08 NN: unsigned bytes, NN dimensions), then NN int32
sizes, then the bytes. A truncated download or a wrong file must surface as a
:class:`UserError` naming the file, never as a reshape error deep inside torch.
"""

from __future__ import annotations

import gzip
import struct
import zlib
from pathlib import Path

import torch
from torch import Tensor

from ganframe.errors import UserError

IMAGES_MAGIC = 2051  #: uint8 data, 3 dimensions (count, rows, cols)
LABELS_MAGIC = 2049  #: uint8 data, 1 dimension (count)
GZIP_MAGIC = b"\x1f\x8b"


def read_bytes(path: Path) -> bytes:
    """The decompressed content of ``path`` (gzip is recognised by content, not by name)."""
    try:
        raw = path.read_bytes()
    except OSError as exc:
        raise UserError(f"cannot read MNIST file {path}: {exc.strerror or exc}.") from exc
    if not raw.startswith(GZIP_MAGIC):
        return raw
    try:
        return gzip.decompress(raw)
    except (OSError, EOFError, zlib.error) as exc:
        raise UserError(
            f"MNIST file {path} is a damaged gzip file ({exc}); it was probably cut short "
            "while downloading. Delete it and run again to download it afresh, or replace it "
            "with a good copy."
        ) from exc


def parse_idx(data: bytes, path: Path, magic: int) -> Tensor:
    """Decode one IDX file's bytes to a uint8 tensor of its declared shape."""
    ndim = magic & 0xFF
    header = 4 + 4 * ndim
    short = UserError(
        f"MNIST file {path} is truncated: {len(data)} bytes, shorter than the IDX header. "
        "Delete it and run again to download it afresh."
    )
    if len(data) < 4:
        raise short
    (found,) = struct.unpack(">i", data[:4])
    if found != magic:
        kind = "images" if magic == IMAGES_MAGIC else "labels"
        raise UserError(
            f"MNIST file {path} is not an IDX {kind} file: magic number {found}, expected "
            f"{magic}. Check that the file names match their contents "
            "(train-images-idx3-ubyte, train-labels-idx1-ubyte, t10k-...)."
        )
    if len(data) < header:
        raise short
    dims = struct.unpack(f">{ndim}i", data[4:header])
    expected = header + _payload(dims)
    if any(d < 0 for d in dims) or len(data) != expected:
        what = "truncated" if len(data) < expected else "corrupt (extra bytes)"
        raise UserError(
            f"MNIST file {path} is {what}: its header declares shape {list(dims)} "
            f"({expected} bytes) but it holds {len(data)} bytes. Delete it and run again to "
            "download it afresh, or replace it with a good copy."
        )
    if expected == header:
        return torch.empty(dims, dtype=torch.uint8)
    buf = torch.frombuffer(bytearray(data), dtype=torch.uint8, offset=header)
    return buf.view(*dims)


def _payload(dims: tuple[int, ...]) -> int:
    n = 1
    for d in dims:
        n *= d
    return n


def read_images(path: Path) -> Tensor:
    """Images as uint8 ``N x 1 x 28 x 28``."""
    images = parse_idx(read_bytes(path), path, IMAGES_MAGIC)
    if tuple(images.shape[1:]) != (28, 28):
        raise UserError(
            f"MNIST file {path} holds {tuple(images.shape[1:])} images; MNIST digits are "
            "28x28. Is this another dataset's file?"
        )
    return images.unsqueeze(1)


def read_labels(path: Path) -> Tensor:
    """Labels as int64 ``N``; values outside 0-9 mean the file is not MNIST."""
    labels = parse_idx(read_bytes(path), path, LABELS_MAGIC)
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
