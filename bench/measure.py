"""Timing and memory helpers shared by the benchmark workers (no torch at import time).

A worker runs one benchmark in a fresh process and prints exactly one ``BENCH-RESULT``
line of JSON, so peak resident memory (``ru_maxrss``) belongs to that benchmark alone.
"""

from __future__ import annotations

import json
import os
import resource
import statistics
import sys
import time
from collections.abc import Sequence
from typing import Any

RESULT_TAG = "BENCH-RESULT "


def peak_rss_mb(children: bool = False) -> float:
    """Peak resident set size of this process (or of its largest waited-for descendant)."""
    who = resource.RUSAGE_CHILDREN if children else resource.RUSAGE_SELF
    kib = resource.getrusage(who).ru_maxrss  # KiB on Linux
    return kib / 1024.0


def emit(result: dict[str, Any]) -> None:
    """Print the worker's single result line (peak RSS added here, after the work)."""
    result.setdefault("peak_rss_mb", round(peak_rss_mb(), 1))
    sys.stdout.write(RESULT_TAG + json.dumps(result) + "\n")
    sys.stdout.flush()


def parse_result(stdout: str) -> dict[str, Any]:
    for line in reversed(stdout.splitlines()):
        if line.startswith(RESULT_TAG):
            return json.loads(line[len(RESULT_TAG) :])
    raise RuntimeError("worker printed no result line")


def median(values: Sequence[float]) -> float:
    return float(statistics.median(values))


def load_average() -> str:
    try:
        one, five, fifteen = os.getloadavg()
    except OSError:
        return "n/a"
    return f"{one:.2f} {five:.2f} {fifteen:.2f}"


class StepClock:
    """Wall time between two step marks, synchronising the GPU at each mark so that queued
    kernels are counted where they belong."""

    def __init__(self, device: Any) -> None:
        self.cuda = getattr(device, "type", str(device)) == "cuda"
        self.t0: float | None = None
        self.t1: float | None = None

    def _now(self) -> float:
        if self.cuda:
            import torch

            torch.cuda.synchronize()
        return time.perf_counter()

    def start(self) -> None:
        self.t0 = self._now()

    def stop(self) -> float:
        self.t1 = self._now()
        assert self.t0 is not None, "stop() before start()"
        return self.t1 - self.t0


def gpu_peak_mb() -> float | None:
    """Peak GPU memory allocated by torch in this process, when a GPU was used."""
    if "torch" not in sys.modules:
        return None
    import torch

    if not torch.cuda.is_available() or not torch.cuda.is_initialized():
        return None
    return round(torch.cuda.max_memory_allocated() / 2**20, 1)
