"""Sample writer for text: one decoded poem per line, so ``ganframe sample`` output can be
read, diffed and scored with ordinary tools."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from torch import Tensor

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
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text("".join(p + "\n" for p in poems), encoding="utf-8")
