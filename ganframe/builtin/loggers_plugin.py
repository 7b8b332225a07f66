"""Registers the core's loggers, through the same hook as any plugin's (lazy strings only)."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from ganframe.hookspecs import hookimpl


@hookimpl
def register_loggers(register: Callable[..., Any]) -> None:
    register(
        "jsonl",
        "ganframe.builtin.loggers:JsonlLogger",
        config="ganframe.builtin.loggers:JsonlConfig",
        summary="Every logged row as one JSON line in the run folder's metrics.jsonl.",
    )
