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
    register(
        "csv",
        "ganframe.builtin.loggers:CsvLogger",
        config="ganframe.builtin.loggers:CsvConfig",
        summary="Every logged row in one wide metrics.csv (step, phase, event, then each key).",
    )
    register(
        "tensorboard",
        "ganframe.builtin.loggers:TensorBoardLogger",
        config="ganframe.builtin.loggers:TensorBoardConfig",
        summary="Scalars, learning rates, sample grids or text and the recipe as TensorBoard "
        "event files in the run folder's tb/ (pip install 'ganframe[tensorboard]').",
    )
