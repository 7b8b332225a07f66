"""Live progress: a rich display in a terminal, plain periodic lines everywhere else.

The display is a logger like any other: a callback that listens to phase starts, step ends,
log rows and messages. The command line adds it to every run it starts, and
:func:`ganframe.api.train` adds it in its plain form by default (notebooks, scripts).

In a terminal (or a notebook), a bar per phase shows the phase, its steps, the run's step
out of the steps it will run (``--max-steps`` counted), throughput, elapsed time and ETA,
with the latest losses and metric values on the line below. Where output is not a terminal
(a pipe, a file, ``nohup``, CI) or with ``--quiet``, the same facts come as one plain line per
log interval: a log file shows the run moving from its first minutes.
"""

from __future__ import annotations

import time
from typing import Any

from rich.console import Console
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn
from rich.text import Text

from ganframe.loop.clock import TIME_KEYS
from ganframe.loop.events import Callback
from ganframe.textsafe import printable

__all__ = ["RichProgress", "duration", "throughput_unit"]

_NOT_SHOWN = {"step", "phase", "event", "metric", *TIME_KEYS}


def _fmt(row: dict[str, Any]) -> str:
    parts = []
    for k, v in row.items():
        if k in _NOT_SHOWN or isinstance(v, bool):
            continue
        if isinstance(v, float):
            parts.append(f"{k}={v:.4g}")
        elif isinstance(v, int | str):
            parts.append(f"{k}={v}")
    return " ".join(parts)


def duration(seconds: float) -> str:
    """``3h04m``, ``4m10s`` or ``12s``: an ETA needs no more precision."""
    s = max(0, round(seconds))
    if s >= 3600:
        return f"{s // 3600}h{s % 3600 // 60:02d}m"
    if s >= 60:
        return f"{s // 60}m{s % 60:02d}s"
    return f"{s}s"


def throughput_unit(kind: str, info: dict[str, Any]) -> tuple[str, int]:
    """How a data kind's speed reads, and how many units one real sample is: images per
    second, tokens per second for text (a sample is ``seq_len`` tokens), points..."""
    if kind == "image":
        return "img/s", 1
    if kind == "text":
        seq = info.get("seq_len") or info.get("max_len")
        if isinstance(seq, int) and not isinstance(seq, bool) and seq > 0:
            return "tok/s", seq
        return "seq/s", 1
    if kind == "points":
        return "pts/s", 1
    return "samples/s", 1


class _Bar(Progress):
    """A rich progress bar with one status line (losses, metrics) below it."""

    status: Text = Text()

    def get_renderables(self) -> Any:
        yield self.make_tasks_table(self.tasks)
        if self.status.plain:
            yield self.status


class RichProgress(Callback):
    """The run as a live rich bar per phase, or plain lines (``quiet``, ``plain``, or output
    that is not a terminal)."""

    def __init__(self, console: Console, *, quiet: bool = False, total: int = 0,
                 plain: bool | None = None) -> None:
        self.console = console
        # a dumb terminal (TERM=dumb, some CI consoles) cannot redraw a bar: plain lines
        interactive = (console.is_terminal and not console.is_dumb_terminal) or (
            console.is_jupyter)
        self.quiet = quiet or (plain if plain is not None else not interactive)
        self.bar: _Bar | None = None
        self.task: Any = None
        self.limit = total  #: the step the run stops at (--max-steps counted)
        self.step = 0
        self.phase_name, self.phase_label = "", ""
        self.losses, self.metrics = "", ""
        self.unit, self.per_sample = "samples/s", 1
        self.data_kind = ""
        self.rate = ""  #: throughput of the last log interval, as text
        self.steps_per_s = 0.0
        self._mark: tuple[float, int, int] | None = None  # (time, step, samples seen)
        self._began: tuple[float, int] | None = None  # (time, step) when this process began

    # the events ----------------------------------------------------------------------
    def on_run_start(self, trainer: Any) -> None:
        kind = getattr(trainer.dataset, "kind", "")
        self.data_kind = kind  # the command line's end-of-run hint picks a sample suffix
        self.unit, self.per_sample = throughput_unit(kind, trainer.data_info or {})
        self.step = trainer.state.step
        self._reset_marks(trainer)

    def on_restore(self, trainer: Any, path: Any) -> None:
        self.step = trainer.state.step  # a rollback: rates restart from here
        self._reset_marks(trainer)

    def on_phase_start(self, trainer: Any, phase: Any) -> None:
        idx = trainer.state.phase
        self.limit = trainer.limit or self.limit
        length = trainer.phase_lengths[idx]
        done = trainer.state.phase_step
        begins = trainer.state.step - done  # the run's step where this phase began
        # with --max-steps, the phase runs only up to the limit
        runs = max(done, min(length, self.limit - begins)) if self.limit else length
        self.phase(phase.name, idx, runs, done, count=len(trainer.phases), length=length)

    def on_step_end(self, trainer: Any) -> None:
        self.step_done(trainer.phase_step_done, trainer.state.step)

    def on_log(self, trainer: Any, row: dict[str, Any]) -> None:
        self.step = trainer.state.step  # rows come before this display's on_step_end
        if row.get("event") == "train":
            self._measure(trainer)
        self.row(row)

    def on_message(self, trainer: Any, text: str) -> None:
        self.print(text)

    def on_run_end(self, trainer: Any, result: Any) -> None:
        self.close()

    # measuring -------------------------------------------------------------------------
    @staticmethod
    def _seen(trainer: Any) -> int:
        stream = trainer.stream
        try:
            batches = stream.epoch * stream.batches_per_epoch + stream.position
            return int(batches * stream.batch_size * trainer.dist.world)
        except (AttributeError, TypeError):
            return 0

    def _reset_marks(self, trainer: Any) -> None:
        now = time.perf_counter()
        self._mark = (now, trainer.state.step, self._seen(trainer))
        self._began = (now, trainer.state.step)

    def _measure(self, trainer: Any) -> None:
        """Speed over the last log interval: steps/s (for the ETA) and real samples/s."""
        now, step, seen = time.perf_counter(), trainer.state.step, self._seen(trainer)
        if self._mark is not None:
            t0, s0, n0 = self._mark
            if now > t0 and step > s0:
                self.steps_per_s = (step - s0) / (now - t0)
                per_s = (seen - n0) * self.per_sample / (now - t0)
                self.rate = f"{per_s:,.0f} {self.unit}" if per_s >= 10 else (
                    f"{per_s:.2f} {self.unit}")
        self._mark = (now, step, seen)

    def eta(self) -> str:
        """Time to the step the run stops at, at the last interval's speed."""
        if not self.limit or self.step >= self.limit:
            return "0s" if self.limit else "?"
        rate = self.steps_per_s
        if rate <= 0 and self._began is not None:
            t0, s0 = self._began
            elapsed = time.perf_counter() - t0
            rate = (self.step - s0) / elapsed if elapsed > 0 and self.step > s0 else 0.0
        return duration((self.limit - self.step) / rate) if rate > 0 else "?"

    def elapsed(self) -> str:
        return duration(time.perf_counter() - self._began[0]) if self._began else "0s"

    # the display -----------------------------------------------------------------------
    def phase(self, name: str, index: int, steps: int, done: int, *, count: int = 0,
              length: int | None = None) -> None:
        self.close()
        self.phase_name = name
        of = f"/{count}" if count else ""
        self.phase_label = f"phase {index + 1}{of} {name}"
        if self.quiet:
            full = f" of {length:,}" if length is not None and length != steps else ""
            self._line(self.console, f"phase {index + 1}{of} '{name}': {steps:,} steps{full}"
                       + (f", from step {done:,}" if done else ""))
            return
        self.bar = _Bar(
            TextColumn("{task.fields[label]}", style="bold", markup=False),
            BarColumn(bar_width=24),
            MofNCompleteColumn(),
            TextColumn("{task.fields[where]}", markup=False),
            TextColumn("{task.fields[rate]}", markup=False),
            TimeElapsedColumn(),
            TextColumn("{task.fields[eta]}", markup=False),
            console=self.console,
            transient=False,
        )
        self.bar.start()
        # the phase name comes from the recipe: a field, shown as text (no markup)
        self.task = self.bar.add_task("", total=steps, completed=done, rate="", eta="",
                                      where="", label=printable(self.phase_label))

    def step_done(self, phase_step: int, step: int) -> None:
        self.step = step
        if self.bar is not None:
            where = f"step {step:,}/{self.limit:,}" if self.limit else f"step {step:,}"
            self.bar.update(self.task, completed=phase_step, where=where,
                            rate=self.rate, eta=f"eta {self.eta()}")

    def row(self, row: dict[str, Any]) -> None:
        text = _fmt(row)
        event = row.get("event")
        if event == "metric":
            self.metrics = f"{row.get('metric')}: {text}"
            line = f"step {row['step']} {row.get('metric')}: {text}"
            self._line(self.bar.console if self.bar is not None else self.console, line)
            self._status()
            return
        if event != "train":
            return  # a plugin's own rows (throughput, weight norms...) go to the loggers
        self.losses = text
        if self.bar is not None:
            self._status()
        else:
            self._line(self.console, self._plain(row, text))

    def _plain(self, row: dict[str, Any], text: str) -> str:
        """One log interval as a line: step/total, phase, losses, throughput, ETA."""
        step = int(row["step"])
        where = f"step {step:,}"
        if self.limit:
            where += f"/{self.limit:,} ({100 * step / self.limit:.0f}%)"
        speed = f" | {self.rate}" if self.rate else ""
        return (f"{where} [{row.get('phase', self.phase_name)}] {text}{speed} | "
                f"{self.elapsed()} elapsed, eta {self.eta()}")

    def _status(self) -> None:
        if self.bar is not None:
            parts = [p for p in (self.losses, self.metrics) if p]
            # wrapped to the terminal (the console may soft-wrap, which a live display crops)
            self.bar.status = Text(printable("  " + " | ".join(parts)) if parts else "",
                                   no_wrap=False, overflow="fold")
            self.bar.refresh()

    def print(self, text: str) -> None:
        self._line(self.bar.console if self.bar is not None else self.console, text)

    @staticmethod
    def _line(console: Console, text: str) -> None:
        """Names and messages come from recipes, checkpoints and file names: printed as
        text (``[train]`` stays ``[train]``), with control characters escaped; one line each,
        never wrapped, so a log file holds one line per interval."""
        console.print(printable(text), highlight=False, markup=False, soft_wrap=True)

    def close(self) -> None:
        if self.bar is not None:
            self.bar.stop()
            self.bar = None
