"""Shipped pretrained generators described by one JSON file beside them.

A plugin keeps its generator files in a package folder (``pretrained/``) with a
``cards.json`` that lists, per name, the file, its sha256, a summary and the figures of its
model card. ``register_cards(register, folder)`` registers them all from the plugin's
``register_pretrained`` hook, so shipping new weights (``bench/ship_pretrained.py``) changes
data files only, never code. Standard library only: plugin entry modules import this while
``ganframe --help`` starts.

``cards.json``::

    {"dcgan-mnist": {"file": "dcgan-mnist.safetensors", "sha256": "...",
                     "summary": "...", "card": {"fid": 4.2, ...}}}
"""

from __future__ import annotations

import json
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import Any

__all__ = ["CARDS_FILE", "read_cards", "register_cards", "write_card"]

CARDS_FILE = "cards.json"


def read_cards(folder: Any) -> dict[str, dict[str, Any]]:
    """The entries of ``folder/cards.json`` (a path or an importlib.resources traversable);
    {} when there is none yet."""
    target = folder / CARDS_FILE
    if not target.is_file():
        return {}
    doc = json.loads(target.read_text(encoding="utf-8"))
    if not isinstance(doc, dict):
        raise ValueError(f"{CARDS_FILE} must hold a JSON object of entries by name")
    return doc


def register_cards(register: Callable[..., Any], folder: Any) -> None:
    """Register every generator ``folder/cards.json`` lists (see the module docstring)."""
    for name, entry in read_cards(folder).items():
        register(name, folder / entry["file"], entry["sha256"],
                 summary=entry.get("summary", ""), card=entry.get("card") or {})


def write_card(folder: Path, name: str, file: str, sha256: str, summary: str,
               card: Mapping[str, Any]) -> Path:
    """Add or replace one entry of ``folder/cards.json`` (keys sorted, one entry per name)."""
    path = Path(folder) / CARDS_FILE
    doc = read_cards(Path(folder))
    doc[name] = {"file": file, "sha256": sha256, "summary": summary, "card": dict(card)}
    path.write_text(json.dumps(doc, indent=2, sort_keys=True, ensure_ascii=False) + "\n",
                    encoding="utf-8")
    return path
