"""Reads a PyTorch ``.pth`` state dict (tensors in a possibly nested dict) without unpickling.

Why not torch's own loader with ``weights_only=True``: ganframe runs no deserialiser that can
execute code (tests/test_no_pickle.py), and ``weights_only`` is a restricted unpickler that has had
code-execution holes of its own. A state dict's serialised form is a tiny program, though: a
few opcodes that build dicts, tuples, strings and numbers, and two permitted calls (an
``OrderedDict`` and ``torch._utils._rebuild_tensor_v2``) over storages named by persistent
ids. This module interprets exactly that subset and refuses everything else, so a hostile file
can at worst be refused. Both layouts ``torch.save`` writes are read: the zip archive
(torch >= 1.6) and the older run of serialised records followed by raw storages (files saved
by older torch versions, as published weights often are).
"""

from __future__ import annotations

import struct
import zipfile
from collections import OrderedDict
from pathlib import Path
from typing import Any

import torch

from ganframe.errors import UserError

_DTYPES = {
    "FloatStorage": torch.float32, "DoubleStorage": torch.float64,
    "HalfStorage": torch.float16, "BFloat16Storage": torch.bfloat16,
    "LongStorage": torch.int64, "IntStorage": torch.int32, "ShortStorage": torch.int16,
    "CharStorage": torch.int8, "ByteStorage": torch.uint8, "BoolStorage": torch.bool,
}
_CALLS = {("collections", "OrderedDict"), ("torch._utils", "_rebuild_tensor_v2"),
          ("torch._utils", "_rebuild_tensor")}
_LEGACY_MAGIC = 0x1950A86A20F9469CFC6C
_MAX_STORAGE_BYTES = 1 << 34


class _Global:
    def __init__(self, module: str, name: str) -> None:
        self.module, self.name = module, name


class _Storage:
    def __init__(self, dtype: torch.dtype, key: str, numel: int) -> None:
        self.dtype, self.key, self.numel = dtype, key, numel


class _Tensor:
    def __init__(self, storage: _Storage, offset: int, size: tuple[int, ...],
                 stride: tuple[int, ...]) -> None:
        self.storage, self.offset, self.size, self.stride = storage, offset, size, stride


class Refused(ValueError):
    """The file holds something other than a plain state dict."""


class _Machine:
    """The permitted subset of the opcode stream (protocol 2, what ``torch.save`` writes)."""

    def __init__(self, data: bytes, pos: int) -> None:
        self.data, self.pos = data, pos
        self.stack: list[Any] = []
        self.marks: list[int] = []
        self.memo: dict[int, Any] = {}

    def take(self, n: int) -> bytes:
        if self.pos + n > len(self.data):
            raise Refused("truncated")
        out = self.data[self.pos:self.pos + n]
        self.pos += n
        return out

    def line(self) -> str:
        end = self.data.index(b"\n", self.pos)
        out = self.data[self.pos:end].decode("ascii")
        self.pos = end + 1
        return out

    def since_mark(self) -> list[Any]:
        at = self.marks.pop()
        items = self.stack[at:]
        del self.stack[at:]
        return items

    def unpack(self, fmt: str) -> Any:
        return struct.unpack(fmt, self.take(struct.calcsize(fmt)))[0]

    # -- opcodes that push a value ---------------------------------------------------------
    def value(self, op: bytes) -> Any:
        simple = {b"}": dict, b"]": list, b")": tuple, b"N": lambda: None,
                  b"\x88": lambda: True, b"\x89": lambda: False}
        if op in simple:
            return simple[op]()
        if op == b"c":
            return _Global(self.line(), self.line())
        if op == b"X":
            return self.take(self.unpack("<I")).decode("utf-8")
        numbers = {b"K": "<B", b"M": "<H", b"J": "<i", b"G": ">d"}
        if op in numbers:
            return self.unpack(numbers[op])
        if op == b"\x8a":
            return int.from_bytes(self.take(self.take(1)[0]), "little", signed=True)
        if op == b"h":
            return self.memo[self.take(1)[0]]
        if op == b"j":
            return self.memo[self.unpack("<I")]
        raise Refused(f"opcode {op!r} at byte {self.pos - 1}")

    # -- opcodes that change the stack ------------------------------------------------------
    def step(self, op: bytes) -> bool:
        """Run one opcode; False at the end (STOP)."""
        st = self.stack
        if op == b".":
            return False
        if op == b"\x80":
            self.take(1)
        elif op in (b"q", b"r"):
            self.memo[self.take(1)[0] if op == b"q" else self.unpack("<I")] = st[-1]
        elif op == b"(":
            self.marks.append(len(st))
        elif op == b"t":
            st.append(tuple(self.since_mark()))
        elif op in (b"\x85", b"\x86", b"\x87"):
            n = op[0] - 0x84
            items = tuple(st[-n:])
            del st[-n:]
            st.append(items)
        elif op in (b"s", b"u"):
            items = [st.pop(), st.pop()][::-1] if op == b"s" else self.since_mark()
            if not isinstance(st[-1], dict):
                raise Refused("items set on a non-dict")
            st[-1].update(zip(items[::2], items[1::2], strict=True))
        elif op in (b"a", b"e"):
            items = [st.pop()] if op == b"a" else self.since_mark()
            if not isinstance(st[-1], list):
                raise Refused("items appended to a non-list")
            st[-1].extend(items)
        elif op == b"Q":
            st.append(_persistent(st.pop()))
        elif op == b"R":
            args = st.pop()
            st.append(_call(st.pop(), args))
        elif op == b"b":
            st.pop()  # an OrderedDict's attributes (a state dict's _metadata): not needed
        else:
            st.append(self.value(op))
        return True


def _interpret(data: bytes, pos: int) -> tuple[Any, int]:
    """Run the stream at ``data[pos:]`` over the permitted subset; (value, end offset)."""
    machine = _Machine(data, pos)
    while machine.step(machine.take(1)):
        pass
    return machine.stack.pop(), machine.pos


def _persistent(pid: Any) -> _Storage:
    if not (isinstance(pid, tuple) and len(pid) >= 5 and pid[0] == "storage"
            and isinstance(pid[1], _Global) and pid[1].module == "torch"
            and pid[1].name in _DTYPES and isinstance(pid[2], str) and isinstance(pid[4], int)):
        raise Refused("a persistent id that is not a storage")
    return _Storage(_DTYPES[pid[1].name], pid[2], pid[4])


def _call(fn: Any, args: Any) -> Any:
    if not isinstance(fn, _Global) or (fn.module, fn.name) not in _CALLS:
        name = f"{fn.module}.{fn.name}" if isinstance(fn, _Global) else type(fn).__name__
        raise Refused(f"a call of {name}")
    if fn.name == "OrderedDict":
        return OrderedDict()
    if not (isinstance(args, tuple) and len(args) >= 4 and isinstance(args[0], _Storage)):
        raise Refused("a tensor without a storage")
    storage, offset, size, stride = args[:4]
    if not (isinstance(offset, int) and all(isinstance(v, int) for v in (*size, *stride))):
        raise Refused("a tensor with a bad shape")
    return _Tensor(storage, offset, tuple(size), tuple(stride))


def _tensors(obj: Any, storages: dict[str, torch.Tensor], prefix: str = "") -> dict[str, Any]:
    """The flat ``name -> tensor`` state dict (nested dicts joined with dots)."""
    out: dict[str, Any] = {}
    if not isinstance(obj, dict):
        raise Refused("not a dict of tensors")
    for key, value in obj.items():
        name = f"{prefix}{key}"
        if isinstance(value, dict):
            out.update(_tensors(value, storages, name + "."))
        elif isinstance(value, _Tensor):
            flat = storages[value.storage.key]
            out[name] = flat.as_strided(value.size, value.stride, value.offset).clone()
        else:
            raise Refused(f"{name!r} is not a tensor")
    return out


def _storage(raw: bytes, dtype: torch.dtype) -> torch.Tensor:
    return torch.frombuffer(bytearray(raw), dtype=dtype) if raw else torch.empty(0, dtype=dtype)


def _read_zip(path: Path) -> dict[str, Any]:
    with zipfile.ZipFile(path) as z:
        names = z.namelist()
        pkl = next((n for n in names if n.endswith("/data.pkl") or n == "data.pkl"), None)
        if pkl is None:
            raise Refused("no data.pkl in the archive")
        if any(i.file_size > _MAX_STORAGE_BYTES for i in z.infolist()):
            raise Refused("an archive member larger than 16 GiB")
        root = pkl[: -len("data.pkl")]
        obj, _ = _interpret(z.read(pkl), 0)
        found: dict[str, _Storage] = {}
        _collect(obj, found)
        storages = {k: _storage(z.read(f"{root}data/{k}"), s.dtype) for k, s in found.items()}
    return _tensors(obj, storages)


def _collect(obj: Any, found: dict[str, _Storage]) -> None:
    if isinstance(obj, dict):
        for v in obj.values():
            _collect(v, found)
    elif isinstance(obj, _Tensor):
        found[obj.storage.key] = obj.storage


def _read_legacy(data: bytes) -> dict[str, Any]:
    magic, pos = _interpret(data, 0)
    if magic != _LEGACY_MAGIC:
        raise Refused("not a PyTorch file")
    _version, pos = _interpret(data, pos)
    _sys_info, pos = _interpret(data, pos)
    obj, pos = _interpret(data, pos)
    keys, pos = _interpret(data, pos)
    found: dict[str, _Storage] = {}
    _collect(obj, found)
    storages = {}
    for key in keys:
        numel = struct.unpack("<q", data[pos:pos + 8])[0]
        s = found.get(key)
        dtype = s.dtype if s is not None else torch.uint8
        nbytes = numel * torch.empty(0, dtype=dtype).element_size()
        if numel < 0 or nbytes > _MAX_STORAGE_BYTES or pos + 8 + nbytes > len(data):
            raise Refused("a storage runs past the end of the file")
        storages[key] = _storage(data[pos + 8:pos + 8 + nbytes], dtype)
        pos += 8 + nbytes
    return _tensors(obj, storages)


def read_pth(path: Path) -> dict[str, torch.Tensor]:
    """The tensors of the state dict in ``path`` (zip or legacy ``torch.save`` layout).

    Raises :class:`UserError` naming the file when it is not a plain state dict."""
    path = Path(path)
    try:
        if zipfile.is_zipfile(path):
            return _read_zip(path)
        return _read_legacy(path.read_bytes())
    except (Refused, KeyError, IndexError, ValueError, struct.error, zipfile.BadZipFile,
            RuntimeError, RecursionError) as exc:
        raise UserError(f"{path}: not a plain PyTorch state dict ({exc}); ganframe reads "
                        "only tensors from .pth files, without unpickling.") from None
