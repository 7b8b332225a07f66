"""The core's loggers: ``jsonl`` writes every logged row to the run folder's metrics.jsonl.

A logger is an ordinary callback that listens to :meth:`Callback.on_log`; a recipe chooses its
loggers in ``[[loggers]]`` tables (``jsonl`` when it names none). A resumed or rolled-back run
drops the rows logged after the step it continues from, so the file reads as if the run had
never stopped.
"""

from __future__ import annotations

from typing import Any

from pydantic import BaseModel, ConfigDict

from ganframe.loop.events import Callback
from ganframe.runfolder import METRICS_FILE, MetricsLog, register


class JsonlConfig(BaseModel):
    model_config = ConfigDict(extra="forbid")


class JsonlLogger(Callback):
    """One JSON object per line: ``{"step", "phase", "event", ...scalars}``."""

    def __init__(self, config: Any = None, ctx: Any = None) -> None:
        self.log: MetricsLog | None = None

    def on_run_start(self, trainer: Any) -> None:
        self._open(trainer).truncate_after(trainer.state.step)

    def on_restore(self, trainer: Any, path: Any) -> None:
        # A rollback while running; a resume restores before the run starts, and nothing
        # is written until on_run_start (a refused resume leaves the folder as it was).
        if self.log is not None:
            self.log.truncate_after(trainer.state.step)

    def on_log(self, trainer: Any, row: dict[str, Any]) -> None:
        self._open(trainer).write(row)

    def _open(self, trainer: Any) -> MetricsLog:
        if self.log is None:
            self.log = MetricsLog(trainer.out / METRICS_FILE, enabled=trainer.is_main)
            if trainer.is_main:  # listed in the run folder's manifest, for --force
                register(self.log.path)
        return self.log
