"""Registers the commands that read run folders back (``report``, ``runs``) lazily: the
``ganframe.report`` package (and matplotlib) is imported only when one of them runs."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from ganframe import hookimpl


@hookimpl
def register_commands(register: Callable[..., Any]) -> None:
    register("report", "ganframe.report.commands:report",
             summary="Write one self-contained HTML report of runs: curves, samples, recipe, "
             "environment; several runs are compared.")
    register("runs", "ganframe.report.commands:runs",
             summary="List the runs under a folder: status, steps, last values, checkpoint, "
             "wall time (--json for scripts).")
