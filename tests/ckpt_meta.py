"""Rewriting a checkpoint's JSON metadata in place of the original, tensor bytes untouched.

``safetensors.torch.save_file`` would lay the tensors out again (in its own order), so a
rewritten file would differ in more than its metadata; this keeps every data byte and offset
and replaces only the header, as a hand-edited or maliciously crafted file would.
"""

from __future__ import annotations

import json
import struct
from collections.abc import Callable
from pathlib import Path
from typing import Any


def read_meta(path: Path) -> dict[str, Any]:
    data = path.read_bytes()
    (n,) = struct.unpack("<Q", data[:8])
    return json.loads(json.loads(data[8 : 8 + n])["__metadata__"]["ganframe"])


def rewrite_meta(src: Path, dst: Path, change: Callable[[Any], Any] | Any) -> Path:
    """Write ``src`` to ``dst`` with the ``"ganframe"`` metadata document replaced.

    ``change`` is either a function that changes the document in place (what it returns is
    ignored) or the new document itself: any JSON value, or a string written as it is."""
    data = src.read_bytes()
    (n,) = struct.unpack("<Q", data[:8])
    header = json.loads(data[8 : 8 + n])
    meta = json.loads(header["__metadata__"]["ganframe"])
    if callable(change):
        change(meta)
        new = meta
    else:
        new = change
    header["__metadata__"]["ganframe"] = new if isinstance(new, str) else json.dumps(new)
    text = json.dumps(header, separators=(",", ":")).encode("utf-8")
    text += b" " * (-len(text) % 8)
    dst.write_bytes(struct.pack("<Q", len(text)) + text + data[8 + n :])
    return dst
