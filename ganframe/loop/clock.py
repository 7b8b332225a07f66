"""Wall-clock time of a run, stamped on every logged row (``time`` and ``elapsed_s``).

The clock is kept out of checkpoints on purpose: a stopped and resumed run writes the same
checkpoint, byte for byte, as one that never stopped, and wall-clock numbers differ between
any two runs. A resumed run continues its count from the last row its log kept (the rows up
to the checkpoint's step, see :meth:`RunClock.continue_from`), so ``elapsed_s`` sums the
training time of every attempt; a stop between two log rows leaves out at most the steps
after the last row, which the resumed attempt runs again anyway.

Standard library only: the loop imports it, and readers of metrics.jsonl can too.
"""

from __future__ import annotations

import time
from datetime import UTC, datetime
from typing import Any

__all__ = ["TIME_KEYS", "RunClock", "strip_time"]

#: The keys the clock adds to each row: wall-clock time (ISO 8601, UTC) and seconds of
#: training so far, over every attempt of the run.
TIME_KEYS = ("time", "elapsed_s")


class RunClock:
    """Seconds of training since the run began, carried over resumes by the loggers."""

    def __init__(self) -> None:
        self.base = 0.0  #: seconds the earlier attempts of the run trained
        self.t0: float | None = None

    def start(self) -> None:
        self.t0 = time.monotonic()

    def continue_from(self, elapsed: Any) -> None:
        """A resumed run: what the earlier attempts took, read back from the log kept."""
        if isinstance(elapsed, int | float) and not isinstance(elapsed, bool) and elapsed > 0:
            self.base = max(self.base, float(elapsed))

    def elapsed(self) -> float:
        return self.base + (time.monotonic() - self.t0 if self.t0 is not None else 0.0)

    def stamp(self, row: dict[str, Any]) -> dict[str, Any]:
        """``row`` with ``time`` and ``elapsed_s`` added (keys it has already are kept)."""
        now = datetime.now(UTC).isoformat(timespec="milliseconds").replace("+00:00", "Z")
        return {**row, "time": row.get("time", now),
                "elapsed_s": row.get("elapsed_s", round(self.elapsed(), 3))}


def strip_time(row: dict[str, Any]) -> dict[str, Any]:
    """``row`` without the clock's keys: what two runs of one recipe log identically."""
    return {k: v for k, v in row.items() if k not in TIME_KEYS}
