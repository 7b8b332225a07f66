"""Registers the core's optional callbacks, through the same hook as any plugin's."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from ganframe.hookspecs import hookimpl


@hookimpl
def register_callbacks(register: Callable[..., Any]) -> None:
    register(
        "throughput",
        "ganframe.builtin.callbacks:Throughput",
        config="ganframe.builtin.callbacks:ThroughputConfig",
        summary="Rows of steps and real samples per second (event 'throughput').",
    )
