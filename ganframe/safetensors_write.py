"""Writing the safetensors format straight from tensor memory into an open file.

``safetensors.torch.save`` first copies every tensor into a bytes object and then builds the
whole file in memory, so a checkpoint is copied twice before it reaches the disk; for a run
state of many small tensors those copies took most of the save time (docs/performance.md).
The format is simple enough to stream: an 8-byte little-endian header length, a JSON header
(dtype, shape and byte range of each tensor, plus string metadata) padded with spaces to a
multiple of 8, then the raw little-endian bytes of each tensor, back to back. Here the header
is built from shapes alone and every CPU tensor's bytes go to ``write`` through a memoryview
of its own storage: nothing is copied that is already on the CPU and contiguous.

Reading stays with the ``safetensors`` library, which validates what this module writes (the
tests read every file back with it).
"""

from __future__ import annotations

import json
import struct
import sys
from collections.abc import Mapping
from typing import IO

import torch

#: torch dtype -> the safetensors name of it.
DTYPES: dict[torch.dtype, str] = {
    torch.float64: "F64",
    torch.float32: "F32",
    torch.float16: "F16",
    torch.bfloat16: "BF16",
    torch.int64: "I64",
    torch.int32: "I32",
    torch.int16: "I16",
    torch.int8: "I8",
    torch.uint8: "U8",
    torch.bool: "BOOL",
    torch.float8_e4m3fn: "F8_E4M3",
    torch.float8_e5m2: "F8_E5M2",
}
for _name, _code in (("uint16", "U16"), ("uint32", "U32"), ("uint64", "U64")):
    if hasattr(torch, _name):  # unsigned wide integers arrived in torch 2.3
        DTYPES[getattr(torch, _name)] = _code


class Layout:
    """A file about to be written: its header bytes and the byte views that follow it."""

    def __init__(self, header: bytes, parts: list[torch.Tensor]) -> None:
        self.header = header
        self.parts = parts

    @property
    def header_length(self) -> int:
        """Length of the JSON header (the number stored in the first 8 bytes)."""
        return len(self.header) - 8

    def write_to(self, f: IO[bytes]) -> None:
        f.write(self.header)
        for raw in self.parts:
            if raw.numel():
                f.write(memoryview(raw.numpy()))


def layout(tensors: Mapping[str, torch.Tensor], metadata: Mapping[str, str] | None) -> Layout:
    """Plan a safetensors file for ``tensors`` (any device, layout or dtype in :data:`DTYPES`).

    Tensors that share storage (tied weights) are each written in full, so the file needs no
    aliasing rules. Only tensors off the CPU or not contiguous are copied.
    """
    if sys.byteorder != "little":  # the format is little-endian; so is every torch platform
        raise RuntimeError("safetensors files are little-endian; this machine is not")
    header: dict[str, object] = {}
    if metadata:
        header["__metadata__"] = {str(k): str(v) for k, v in metadata.items()}
    parts: list[torch.Tensor] = []
    offset = 0
    for name, tensor in tensors.items():
        if name == "__metadata__":
            raise ValueError("'__metadata__' is reserved by the safetensors format")
        code = DTYPES.get(tensor.dtype)
        if code is None:
            raise TypeError(f"tensor {name!r} has dtype {tensor.dtype}, which safetensors "
                            "cannot store")
        t = tensor.detach()
        if t.device.type != "cpu":
            t = t.to("cpu")
        t = t.contiguous()
        raw = t.reshape(-1).view(torch.uint8)
        header[name] = {
            "dtype": code,
            "shape": list(t.shape),
            "data_offsets": [offset, offset + raw.numel()],
        }
        offset += raw.numel()
        parts.append(raw)
    text = json.dumps(header, separators=(",", ":"), ensure_ascii=False).encode("utf-8")
    text += b" " * (-len(text) % 8)  # the library aligns the data start to 8 bytes too
    return Layout(struct.pack("<Q", len(text)) + text, parts)
