"""Poems for the report of a text run, drawn from its newest checkpoint.

The sample files a run writes while training are drawn at the generator's default
temperature; the run's text metrics (BLEU...) judge poems drawn at their own ``temperature``,
so the report shows a few drawn exactly so: what the numbers in the report describe. This
is the only part of a report that loads torch and a generator; it is skipped (with a note)
when the checkpoint or the plugin cannot be loaded.
"""

from __future__ import annotations

import tempfile
from pathlib import Path
from typing import Any

from ganframe.errors import UserError
from ganframe.report.collect import Run

__all__ = ["metric_temperature", "sample_poems"]


def metric_temperature(run: Run) -> float | None:
    """The ``temperature`` of the first ``[[metrics]]`` entry that sets one."""
    for table in run.recipe.get("metrics") or []:
        value = table.get("temperature") if isinstance(table, dict) else None
        if isinstance(value, int | float) and not isinstance(value, bool) and value > 0:
            return float(value)
    return None


def sample_poems(run: Run, n: int, seed: int = 0) -> tuple[str, list[str]] | None:
    """(heading, poems) for a text run with a checkpoint; None for other runs. A failure
    to sample is added to the run's notes."""
    last = run.last_checkpoint()
    meta: dict[str, Any] = run.meta or {}
    if n <= 0 or last is None or meta.get("data_kind") != "text":
        return None
    temperature = metric_temperature(run)
    try:
        from ganframe import api

        loaded = api.load_checkpoint(last.path)
        x = api.sample(loaded, n, seed=seed, temperature=temperature)
        with tempfile.TemporaryDirectory(prefix="ganframe-report-") as tmp:
            path = api.write_samples(x, Path(tmp) / "poems.txt", loaded)
            lines = path.read_text(encoding="utf-8", errors="replace").splitlines()
    except (UserError, OSError, ValueError, RuntimeError) as exc:
        run.notes.append(f"could not draw poems from {last.name}: {exc}")
        return None
    at = f"temperature {temperature:g}, the metrics'" if temperature else "default temperature"
    step = f"step {last.step:,}" if last.step is not None else last.name
    return f"Poems from the checkpoint of {step} ({at}, seed {seed})", lines[:n]
