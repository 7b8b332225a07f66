"""Steady-state throughput of a ``ganframe run`` command line, measured from outside.

The command runs untouched (so ``--nproc 2`` goes through the real launcher); this process
watches the run's ``metrics.jsonl`` and notes when each logged row appears. Rank 0 writes a
row every ``log_every`` steps after a cross-rank reduction, so the times between rows are
the time of the steps in between on every rank; launch, data loading, the first rows
(warm-up) and the final sample grid and checkpoint fall outside the measured span.
Peak memory is that of the largest process of the run (``RUSAGE_CHILDREN``). A run that
fails after the measured span still yields its figure, with its exit code and error line.
"""

from __future__ import annotations

import json
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

from measure import peak_rss_mb

POLL_S = 0.01


def _argv_out(argv: list[str]) -> Path:
    return Path(argv[argv.index("--out") + 1])


def measure_cli(argv: list[str], batch: int, world: int, skip_rows: int) -> dict[str, Any]:
    """Run ``python -m ganframe ARGV`` (``{out}`` in ARGV becomes a fresh folder)."""
    folder = Path(tempfile.mkdtemp(prefix="ganframe-bench-cli-"))
    try:
        argv = [a.replace("{out}", str(folder / "run")) for a in argv]
        log = _argv_out(argv) / "metrics.jsonl"
        seen: list[tuple[int, float]] = []
        offset = 0
        buffer = ""
        with tempfile.TemporaryFile() as errors:
            proc = subprocess.Popen([sys.executable, "-m", "ganframe", *argv],
                                    stdout=subprocess.DEVNULL, stderr=errors)
            while True:
                done = proc.poll() is not None
                now = time.perf_counter()
                if log.exists():
                    with log.open("r", encoding="utf-8") as fh:
                        fh.seek(offset)
                        chunk = fh.read()
                        offset = fh.tell()
                    buffer += chunk
                    *lines, buffer = buffer.split("\n")
                    for line in lines:
                        row = json.loads(line)
                        if row.get("event") == "train":
                            seen.append((int(row["step"]), now))
                if done:
                    break
                time.sleep(POLL_S)
            errors.seek(0)
            lines = errors.read().decode(errors="replace").strip().splitlines()
        failure = None
        if proc.returncode != 0:
            important = [ln.strip() for ln in lines if "terminate" in ln or "Error" in ln
                         or "error:" in ln]
            failure = important[-1] if important else (lines[-1] if lines else "no output")
            if len(seen) <= skip_rows + 1:  # it failed before the measured span was complete
                tail = "\n".join(lines[-20:])
                raise RuntimeError(f"ganframe {' '.join(argv)} failed ({proc.returncode}): "
                                   f"{failure}\n{tail}")
    finally:
        shutil.rmtree(folder, ignore_errors=True)
    timed = seen[skip_rows:]
    if len(timed) < 2:
        raise RuntimeError(f"too few logged rows to time ({len(seen)}); run more steps")
    (s0, t0), (s1, t1) = timed[0], timed[-1]
    return {
        "steps": s1 - s0,
        "seconds": t1 - t0,
        "images_per_s": (s1 - s0) * batch * world / (t1 - t0),
        "world": world,
        "peak_rss_mb": round(peak_rss_mb(children=True), 1),
        "exit_code": proc.returncode,
        "failure": failure,
    }
