"""Sample writer for text: one decoded poem per line, so ``ganframe sample`` output can be
read, diffed and scored with ordinary tools. Written atomically like the core's sample files
(:func:`ganframe.builtin.writers.atomic_write`): a run killed mid-write leaves no truncated
file, and the temporary file a killed write left is removed by the next write of the file."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from torch import Tensor

from ganframe.builtin.writers import atomic_write
from ganframe.errors import UserError
from ganframe_poet.text import decode_ids


def write_text(samples: Tensor, path: Path, info: dict[str, Any]) -> None:
    if "vocab" not in info:
        raise UserError(
            f"{path}: cannot decode these samples to text: the checkpoint's data info has no "
            "vocabulary."
        )
    if samples.dim() == 3:  # relaxed one-hot rows
        samples = samples.argmax(dim=-1)
    poems = decode_ids(samples.long().cpu().tolist(), info)
    atomic_write(Path(path), "".join(p + "\n" for p in poems).encode("utf-8"))
