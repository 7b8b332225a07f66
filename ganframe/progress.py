"""Live progress with rich: phase, step, losses, steps/s and ETA; or plain log lines."""

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


class RichProgress:
    """Adapter from the loop's callbacks (:class:`ganframe.training.Progress`) to rich."""

    def __init__(self, console: Console, *, quiet: bool = False, total: int = 0) -> None:
        self.console = console
        self.quiet = quiet
        self.bar: Progress | None = None
        self.task: Any = None
        self.last = ""
        self.t0 = time.perf_counter()
        self.step0 = 0
        self.step = 0

    # the callbacks -------------------------------------------------------------------
    def on_phase(self, name: str, index: int, steps: int, done: int) -> None:
        self.close()
        self.t0, self.step0 = time.perf_counter(), done
        if self.quiet:
            self.console.print(f"phase {index + 1} '{name}': {steps} steps", highlight=False)
            return
        self.bar = Progress(
            TextColumn(f"[bold]{name}[/]"),
            BarColumn(),
            MofNCompleteColumn(),
            TextColumn("{task.fields[rate]}"),
            TimeElapsedColumn(),
            TextColumn("eta"),
            TimeRemainingColumn(),
            TextColumn("{task.fields[losses]}"),
            console=self.console,
            transient=False,
        )
        self.bar.start()
        self.task = self.bar.add_task(name, total=steps, completed=done, rate="", losses="")

    def on_step(self, phase_step: int, step: int) -> None:
        self.step = step
        if self.bar is not None:
            elapsed = time.perf_counter() - self.t0
            rate = (phase_step - self.step0) / elapsed if elapsed > 0 else 0.0
            self.bar.update(self.task, completed=phase_step, rate=f"{rate:.1f} steps/s")

    def on_log(self, row: dict[str, Any]) -> None:
        text = _fmt(row)
        if row.get("event") == "metric":
            line = f"step {row['step']} {row.get('metric')}: {text}"
            if self.bar is not None:
                self.bar.console.print(line, highlight=False)
            else:
                self.console.print(line, highlight=False)
            return
        if self.bar is not None:
            self.bar.update(self.task, losses=text)
        else:
            self.console.print(f"step {row['step']} [{row.get('phase')}] {text}", highlight=False)

    def on_message(self, text: str) -> None:
        (self.bar.console if self.bar is not None else self.console).print(text, highlight=False)

    def close(self) -> None:
        if self.bar is not None:
            self.bar.stop()
            self.bar = None

    def as_progress(self) -> Any:
        from ganframe.training import Progress as LoopProgress

        return LoopProgress(self.on_phase, self.on_step, self.on_log, self.on_message)
