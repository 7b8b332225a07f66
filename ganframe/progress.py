"""Live progress with rich: phase, step, losses, steps/s and ETA; or plain log lines.

The display is a logger like any other: a callback that listens to phase starts, step ends,
log rows and messages. The command line adds it to every run it starts.
"""

from __future__ import annotations

import time
from typing import Any

from rich.console import Console
from rich.progress import (
    BarColumn,
    MofNCompleteColumn,
    Progress,
    TextColumn,
    TimeElapsedColumn,
    TimeRemainingColumn,
)

from ganframe.loop.events import Callback
from ganframe.textsafe import printable


def _fmt(row: dict[str, Any]) -> str:
    skip = {"step", "phase", "event", "metric"}
    parts = []
    for k, v in row.items():
        if k in skip:
            continue
        if isinstance(v, float):
            parts.append(f"{k}={v:.4g}")
        elif isinstance(v, int | str):
            parts.append(f"{k}={v}")
    return " ".join(parts)


class RichProgress(Callback):
    """The run as a live rich progress bar per phase (or plain lines with ``quiet``)."""

    def __init__(self, console: Console, *, quiet: bool = False, total: int = 0) -> None:
        self.console = console
        self.quiet = quiet
        self.bar: Progress | None = None
        self.task: Any = None
        self.last = ""
        self.t0 = time.perf_counter()
        self.step0 = 0
        self.step = 0

    # the events ----------------------------------------------------------------------
    def on_phase_start(self, trainer: Any, phase: Any) -> None:
        idx = trainer.state.phase
        self.phase(phase.name, idx, trainer.phase_lengths[idx], trainer.state.phase_step)

    def on_step_end(self, trainer: Any) -> None:
        self.step_done(trainer.phase_step_done, trainer.state.step)

    def on_log(self, trainer: Any, row: dict[str, Any]) -> None:
        self.row(row)

    def on_message(self, trainer: Any, text: str) -> None:
        self.print(text)

    def on_run_end(self, trainer: Any, result: Any) -> None:
        self.close()

    # the display -----------------------------------------------------------------------
    def phase(self, name: str, index: int, steps: int, done: int) -> None:
        self.close()
        self.t0, self.step0 = time.perf_counter(), done
        if self.quiet:
            self._line(self.console, f"phase {index + 1} '{name}': {steps} steps")
            return
        # the phase name comes from the recipe: shown as text (no markup, no format fields)
        label = printable(name).replace("{", "{{").replace("}", "}}")
        self.bar = Progress(
            TextColumn(label, style="bold", markup=False),
            BarColumn(),
            MofNCompleteColumn(),
            TextColumn("{task.fields[rate]}", markup=False),
            TimeElapsedColumn(),
            TextColumn("eta"),
            TimeRemainingColumn(),
            TextColumn("{task.fields[losses]}", markup=False),
            console=self.console,
            transient=False,
        )
        self.bar.start()
        self.task = self.bar.add_task(name, total=steps, completed=done, rate="", losses="")

    def step_done(self, phase_step: int, step: int) -> None:
        self.step = step
        if self.bar is not None:
            elapsed = time.perf_counter() - self.t0
            rate = (phase_step - self.step0) / elapsed if elapsed > 0 else 0.0
            self.bar.update(self.task, completed=phase_step, rate=f"{rate:.1f} steps/s")

    def row(self, row: dict[str, Any]) -> None:
        text = _fmt(row)
        if row.get("event") == "metric":
            line = f"step {row['step']} {row.get('metric')}: {text}"
            self._line(self.bar.console if self.bar is not None else self.console, line)
            return
        if self.bar is not None:
            self.bar.update(self.task, losses=printable(text))
        else:
            self._line(self.console, f"step {row['step']} [{row.get('phase')}] {text}")

    def print(self, text: str) -> None:
        self._line(self.bar.console if self.bar is not None else self.console, text)

    @staticmethod
    def _line(console: Console, text: str) -> None:
        """Names and messages come from recipes, checkpoints and file names: printed as
        text (``[train]`` stays ``[train]``), with control characters escaped."""
        console.print(printable(text), highlight=False, markup=False)

    def close(self) -> None:
        if self.bar is not None:
            self.bar.stop()
            self.bar = None
