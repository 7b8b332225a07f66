"""The run folder: what a run writes and how it is protected.

Layout: ``recipe.toml`` (the fully resolved recipe), ``metrics.jsonl`` (one JSON object per
logged step), ``checkpoints/`` and ``samples/``. A run never silently reuses a folder that
already holds a run: the user says ``--resume`` or ``--force``.
"""

from __future__ import annotations

import contextlib
import json
import shutil
import tempfile
from pathlib import Path
from typing import Any

from ganframe.errors import UserError
from ganframe.fileio import atomic_write

RECIPE_FILE = "recipe.toml"
METRICS_FILE = "metrics.jsonl"
CHECKPOINTS = "checkpoints"
SAMPLES = "samples"


def write_atomic(path: Path, data: bytes) -> None:
    """Replace a run-folder file (``recipe.toml``, a rewritten ``metrics.jsonl``) atomically,
    with the user's usual file modes: see :func:`ganframe.fileio.atomic_write`."""
    atomic_write(path, data, parents=True)


def has_run(out: Path) -> bool:
    return any((out / name).exists() for name in (RECIPE_FILE, METRICS_FILE, CHECKPOINTS))


def prepare(out: Path, *, resume: bool, force: bool) -> None:
    """Check the folder can hold this run before anything is written to it."""
    if out.exists() and not out.is_dir():
        raise UserError(f"{out}: output path exists and is not a folder; choose another --out.")
    if has_run(out) and not resume and not force:
        raise UserError(
            f"{out}: this folder already holds a run. Use --resume to continue it, --force to "
            "start over (deletes its checkpoints, samples and metrics), or --out to choose "
            "another folder."
        )
    try:
        out.mkdir(parents=True, exist_ok=True)
        probe = tempfile.NamedTemporaryFile(dir=out, prefix=".write-test.", delete=True)
        probe.close()
    except OSError as exc:
        raise UserError(
            f"{out}: cannot write to the output folder ({exc.strerror}); choose another --out "
            "or fix its permissions."
        ) from None
    if force and not resume:
        for name in (CHECKPOINTS, SAMPLES):
            shutil.rmtree(out / name, ignore_errors=True)
        for name in (METRICS_FILE, RECIPE_FILE):
            (out / name).unlink(missing_ok=True)
    (out / CHECKPOINTS).mkdir(exist_ok=True)
    (out / SAMPLES).mkdir(exist_ok=True)


def discard(out: Path) -> None:
    """Undo :func:`prepare` for a run that failed before it wrote its first checkpoint, so
    the user can fix the recipe and run again into the same folder."""
    for name in (RECIPE_FILE, METRICS_FILE):
        (out / name).unlink(missing_ok=True)
    for name in (CHECKPOINTS, SAMPLES):
        shutil.rmtree(out / name, ignore_errors=True)
    with contextlib.suppress(OSError):
        out.rmdir()  # only if empty: the folder may have held the user's own files


class MetricsLog:
    """Appends JSON rows; on resume, rows past the checkpoint's step are dropped so that
    a resumed run's log reads as if it had never stopped."""

    def __init__(self, path: Path, *, enabled: bool = True) -> None:
        self.path = path
        self.enabled = enabled
        self.rows: list[dict[str, Any]] = []

    def truncate_after(self, step: int) -> None:
        if not self.enabled or not self.path.exists():
            return
        kept = []
        for line in self.path.read_text(encoding="utf-8").splitlines():
            try:
                row = json.loads(line)
            except json.JSONDecodeError:
                continue  # a line cut short by a crash
            if isinstance(row, dict) and int(row.get("step", 0)) <= step:
                kept.append(line)
        write_atomic(self.path, "".join(f"{line}\n" for line in kept).encode())

    def write(self, row: dict[str, Any]) -> None:
        self.rows.append(row)
        if not self.enabled:
            return
        with self.path.open("a", encoding="utf-8") as fh:
            fh.write(json.dumps(row, ensure_ascii=False) + "\n")
            fh.flush()
