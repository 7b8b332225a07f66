"""What a report plots, as :class:`~ganframe.report.plots.Panel` lists built from runs.

Five groups: the training scalars (every loss and regulariser each phase logs), the metrics
(every value of every ``[[metrics]]`` entry), the learning rates, the throughput and the
rows of any other event (what a plugin's callback logs). A
quantity that only some runs have is drawn for those runs. Learning rates come from the rows
when a logger put them there, else from the run's TensorBoard events when the tensorboard
package is installed; throughput from the ``throughput`` callback's rows, else from the
clock's ``elapsed_s`` between two rows.
"""

from __future__ import annotations

import math
import re
from collections.abc import Sequence
from typing import Any

from ganframe.report.collect import Run, scalars
from ganframe.report.plots import COLOURS, Line, Panel

__all__ = ["groups"]

#: Panels drawn per group at most: each costs matplotlib time and the page space.
MAX_PANELS = 48
THROUGHPUT = "throughput"  #: the event of the core's ``throughput`` callback's rows
_LR = re.compile(r"(lr|learning_rate)([/_.].*)?")
_RATE = re.compile(r".*(_per_s|/s|per_sec|throughput)")


def colour(index: int) -> str:
    return COLOURS[index % len(COLOURS)]


def groups(runs: Sequence[Run]) -> list[tuple[str, str, list[Panel]]]:
    """(section id, title, panels) for each group that has something to draw."""
    out = []
    for key, title, build in (("losses", "Training losses and scalars", _train_panels),
                              ("metrics", "Metrics", _metric_panels),
                              ("lr", "Learning rates", _lr_panels),
                              ("throughput", "Throughput", _rate_panels),
                              ("other", "Other logged values", _other_panels)):
        panels = build(runs)
        if len(panels) > MAX_PANELS:  # a plugin logging hundreds of scalars
            title += f" (the first {MAX_PANELS} of {len(panels)})"
            panels = panels[:MAX_PANELS]
        if panels:
            out.append((key, title, panels))
    return out


def _series(rows: list[dict[str, Any]], keep: Any) -> dict[str, tuple[list[float], list[float]]]:
    out: dict[str, tuple[list[float], list[float]]] = {}
    for row in rows:
        for key, value in scalars(row).items():
            if keep(key):
                xs, ys = out.setdefault(key, ([], []))
                xs.append(row["step"])
                ys.append(value)
    return out


def _panels(runs: Sequence[Run], per_run: list[dict[str, tuple[list[float], list[float]]]],
            marks: bool = True, ylabel: str = "") -> list[Panel]:
    panels: dict[str, Panel] = {}
    for i, (run, series) in enumerate(zip(runs, per_run, strict=True)):
        for key, (xs, ys) in series.items():
            panel = panels.setdefault(key, Panel(key, ylabel=ylabel))
            panel.lines.append(Line(run.name, colour(i), xs, ys))
    if marks and len(runs) == 1:
        starts = _phase_starts(runs[0])
        for panel in panels.values():
            panel.marks = starts
    return list(panels.values())


def _phase_starts(run: Run) -> list[tuple[float, str]]:
    """Where each phase after the first begins (a single-phase run has none)."""
    out, current = [], None
    for row in run.train_rows():
        phase = row.get("phase")
        if isinstance(phase, str) and phase != current:
            if current is not None:
                out.append((float(row["step"]), phase))
            current = phase
    return out


def _is_plain(key: str) -> bool:
    return not _LR.fullmatch(key) and not _RATE.fullmatch(key)


def _train_panels(runs: Sequence[Run]) -> list[Panel]:
    return _panels(runs, [_series(r.train_rows(), _is_plain) for r in runs])


def _metric_panels(runs: Sequence[Run]) -> list[Panel]:
    per_run = []
    for run in runs:
        series: dict[str, tuple[list[float], list[float]]] = {}
        for row in run.metric_rows():
            name = str(row.get("metric", "metric"))
            for key, value in scalars(row).items():
                xs, ys = series.setdefault(f"{name}/{key}", ([], []))
                xs.append(row["step"])
                ys.append(value)
        per_run.append(series)
    return _panels(runs, per_run)


def _lr_panels(runs: Sequence[Run]) -> list[Panel]:
    per_run = []
    for run in runs:
        series = _series(run.train_rows(), lambda k: bool(_LR.fullmatch(k)))
        per_run.append(series or _tensorboard_lr(run))
    return _panels(runs, per_run, ylabel="learning rate")


def _tensorboard_lr(run: Run) -> dict[str, tuple[list[float], list[float]]]:
    """``lr/<network>`` scalars from the run's ``tb/`` event files, if any can be read."""
    folder = run.path / "tb"
    if not folder.is_dir():
        return {}
    try:
        from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

        acc = EventAccumulator(str(folder), size_guidance={"images": 1, "tensors": 1,
                                                           "histograms": 1, "scalars": 0})
        acc.Reload()
        tags = [t for t in acc.Tags().get("scalars", []) if t.startswith("lr/")]
        return {t: ([e.step for e in acc.Scalars(t)], [e.value for e in acc.Scalars(t)])
                for t in tags}
    except Exception:  # no tensorboard, or files it cannot read: no lr panel
        return {}


def _rate_panels(runs: Sequence[Run]) -> list[Panel]:
    """The ``throughput`` callback's rows (event "throughput"), rate keys of train rows, or
    else the rate computed from the clock."""
    per_run = []
    for run in runs:
        rows = [r for r in run.rows if r.get("event") == THROUGHPUT]
        series = _series(rows, lambda k: True) or _series(
            run.train_rows(), lambda k: bool(_RATE.fullmatch(k)))
        per_run.append(series or _rate_from_clock(run))
    return _panels(runs, per_run)


def _other_panels(runs: Sequence[Run]) -> list[Panel]:
    """Rows of any other event (a plugin's callback logging weight norms...), as
    ``event/key``."""
    per_run = []
    for run in runs:
        series: dict[str, tuple[list[float], list[float]]] = {}
        for row in run.rows:
            event = row.get("event", "train")
            if event in ("train", "metric", THROUGHPUT):
                continue
            for key, value in scalars(row).items():
                xs, ys = series.setdefault(f"{event}/{key}", ([], []))
                xs.append(row["step"])
                ys.append(value)
        per_run.append(series)
    return _panels(runs, per_run)


def _rate_from_clock(run: Run) -> dict[str, tuple[list[float], list[float]]]:
    """Samples per second between consecutive train rows of one attempt (batch size ×
    steps / seconds); rows whose clock went backwards (a resume) start a new count."""
    batch = (run.recipe.get("train") or {}).get("batch_size")
    batch = batch if isinstance(batch, int) and batch > 0 else 1
    xs: list[float] = []
    ys: list[float] = []
    prev = None
    for row in run.train_rows():
        t = row.get("elapsed_s")
        if not isinstance(t, int | float) or isinstance(t, bool) or not math.isfinite(t):
            continue
        if prev is not None and t > prev[1] and row["step"] > prev[0]:
            xs.append(row["step"])
            ys.append(batch * (row["step"] - prev[0]) / (t - prev[1]))
        prev = (row["step"], t)
    label = "samples/s" if batch > 1 else "steps/s"
    return {f"{label} (batch {batch})" if batch > 1 else label: (xs, ys)} if xs else {}
