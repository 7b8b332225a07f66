"""Read a run folder back, whatever state it is in.

A report is most wanted when something went wrong, so nothing here assumes a complete folder:
a run may still be writing it, have been killed mid-write (a half-written last line in
``metrics.jsonl``, a lock file nobody holds) or have stopped before its first checkpoint.
What can be read is read; what cannot becomes a note on the :class:`Run`, never an
exception. Only "this is not a run folder at all" is a :class:`~ganframe.errors.UserError`.

No torch: the checkpoint's JSON metadata is read from the safetensors header directly
(:func:`checkpoint_meta`), because importing :mod:`ganframe.checkpoint` costs torch's start-up
(seconds) and a report or ``ganframe runs`` needs no tensor.
"""

from __future__ import annotations

import json
import math
import os
import re
import socket
import stat
import struct
import tomllib
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from ganframe.errors import UserError
from ganframe.runfolder import (
    CHECKPOINTS,
    LOCK_FILE,
    MANIFEST_FILE,
    METRICS_FILE,
    RECIPE_FILE,
    SAMPLES,
)

__all__ = [
    "CheckpointFile",
    "Run",
    "SampleFile",
    "Status",
    "checkpoint_meta",
    "is_run_folder",
    "read_metrics",
    "read_run",
]

#: Keys of a logged row that are not scalars to plot (the clock's are ``time`` and
#: ``elapsed_s``, see :mod:`ganframe.loop.clock`).
ROW_KEYS = frozenset({"step", "phase", "event", "metric", "time", "elapsed_s"})
MAX_METRICS_BYTES = 512 * 1024 * 1024
MAX_RECIPE_BYTES = 4 * 1024 * 1024
MAX_HEADER_BYTES = 16 * 1024 * 1024
_STEP_FILE = re.compile(r"step-(\d+)\.safetensors")
_SAMPLE_FILE = re.compile(r"step-(\d+)\.([A-Za-z0-9]{1,16})")
_IMAGE_SUFFIXES = frozenset({"png", "jpg", "jpeg", "gif", "webp"})
_TEXT_SUFFIXES = frozenset({"txt"})


@dataclass
class CheckpointFile:
    path: Path
    step: int | None  #: from the name (``step-N``) or, for ``last``, from its metadata
    size: int
    mtime: float
    meta: dict[str, Any] | None = None
    problem: str = ""  #: why its metadata could not be read

    @property
    def name(self) -> str:
        return self.path.name


@dataclass
class SampleFile:
    path: Path
    step: int
    kind: str  #: "image", "text" or "file"


@dataclass
class Status:
    state: str  #: "training", "finished", "stopped", "interrupted" or "empty"
    step: int  #: the last step known (logged or checkpointed)
    planned: int | None
    text: str  #: one line for people


@dataclass
class Run:
    path: Path
    name: str
    recipe_text: str = ""
    recipe: dict[str, Any] = field(default_factory=dict)
    rows: list[dict[str, Any]] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)
    checkpoints: list[CheckpointFile] = field(default_factory=list)
    samples: list[SampleFile] = field(default_factory=list)
    status: Status = field(default_factory=lambda: Status("empty", 0, None, "nothing yet"))
    env: dict[str, str] = field(default_factory=dict)
    wall_s: float | None = None
    wall_note: str = ""

    @property
    def meta(self) -> dict[str, Any] | None:
        """The metadata of the newest readable checkpoint."""
        best = _newest(self.checkpoints)
        return best.meta if best is not None else None

    @property
    def description(self) -> str:
        text = self.recipe.get("description")
        return text if isinstance(text, str) else ""

    def train_rows(self) -> list[dict[str, Any]]:
        return [r for r in self.rows if r.get("event", "train") == "train"]

    def metric_rows(self) -> list[dict[str, Any]]:
        return [r for r in self.rows if r.get("event") == "metric"]

    def last_train_values(self) -> dict[str, float]:
        """Each training scalar's latest value."""
        out: dict[str, float] = {}
        for row in self.train_rows():
            out.update(scalars(row))
        return out

    def final_metrics(self) -> dict[str, float]:
        """``metric/key`` -> its latest value."""
        out: dict[str, float] = {}
        for row in self.metric_rows():
            name = str(row.get("metric", "metric"))
            out.update({f"{name}/{k}": v for k, v in scalars(row).items()})
        return out

    def last_checkpoint(self) -> CheckpointFile | None:
        return _newest(self.checkpoints)


def scalars(row: dict[str, Any]) -> dict[str, float]:
    """The plottable numbers of a logged row (finite or not)."""
    return {k: float(v) for k, v in row.items()
            if k not in ROW_KEYS and isinstance(v, int | float) and not isinstance(v, bool)}


def regular_file(path: Path) -> os.stat_result | None:
    """The file's status when ``path`` is a regular file itself, not a link or a FIFO.

    A run folder may come from somebody else: a link named ``samples/step-1.txt`` could
    point at any file of yours, which a report would then copy into a page you share, and a
    FIFO would block the read forever. Reports read regular files only."""
    try:
        st = os.lstat(path)
    except OSError:
        return None
    return st if stat.S_ISREG(st.st_mode) else None


def is_run_folder(path: Path) -> bool:
    """Whether ``path`` looks like a run folder: it holds a recipe, a metrics log, a
    manifest or a checkpoints folder."""
    return path.is_dir() and any(
        os.path.lexists(path / n) for n in (RECIPE_FILE, METRICS_FILE, MANIFEST_FILE, CHECKPOINTS)
    )


def read_run(path: str | os.PathLike[str]) -> Run:
    """Everything a report shows about the run in ``path``; UserError if it is not one."""
    folder = Path(path)
    if not folder.exists():
        raise UserError(f"{folder}: no such folder. Pass a run folder (runs/NAME, as "
                        "'ganframe run' prints), or list them with 'ganframe runs'.")
    if not is_run_folder(folder):
        raise UserError(
            f"{folder}: not a run folder (it has no recipe.toml, metrics.jsonl, checkpoints/ or "
            f"{MANIFEST_FILE}). Pass the folder a run wrote, e.g. runs/NAME; 'ganframe runs "
            f"{folder}' lists the run folders inside it."
        )
    run = Run(path=folder, name=folder.resolve().name or str(folder))
    _read_recipe(run)
    run.rows, notes = read_metrics(folder / METRICS_FILE)
    run.notes += notes
    run.checkpoints = _checkpoints(folder, run.notes)
    run.samples = _samples(folder)
    run.status = _status(run)
    run.env = _environment(run)
    run.wall_s, run.wall_note = _wall_time(run)
    if run.status.state == "training":
        run.notes.insert(0, "the run is still training: this report shows it as it was when "
                         "the report was made")
    return run


def _read_recipe(run: Run) -> None:
    path = run.path / RECIPE_FILE
    try:
        st = regular_file(path)
        if st is None:
            run.notes.append("no recipe.toml in the folder" if not os.path.lexists(path) else
                             "recipe.toml is not a regular file (a link?); not read")
            return
        if st.st_size > MAX_RECIPE_BYTES:
            run.notes.append(f"recipe.toml is larger than {MAX_RECIPE_BYTES} bytes; not shown")
            return
        run.recipe_text = path.read_bytes().decode("utf-8", "replace")
    except OSError as exc:
        run.notes.append(f"recipe.toml could not be read ({exc.strerror})")
        return
    try:
        run.recipe = tomllib.loads(run.recipe_text)
    except tomllib.TOMLDecodeError as exc:
        run.notes.append(f"recipe.toml is not valid TOML ({exc}); shown as it is")
    name = run.recipe.get("name")
    if isinstance(name, str) and name and name != run.name:
        run.name = f"{run.name} ({name})"


def read_metrics(path: Path) -> tuple[list[dict[str, Any]], list[str]]:
    """The rows of a ``metrics.jsonl`` and notes on what was wrong with it.

    A line that is not a JSON object with an integer ``step`` is skipped; a last line without
    its newline is what a run killed while writing leaves, and is called so."""
    if regular_file(path) is None:
        if os.path.lexists(path):
            return [], ["metrics.jsonl is not a regular file (a link?); not read"]
        return [], ["no metrics.jsonl: nothing was logged yet (or the recipe has no jsonl "
                    "logger)"]
    try:
        with path.open("rb") as fh:
            data = fh.read(MAX_METRICS_BYTES + 1)
    except OSError as exc:
        return [], [f"metrics.jsonl could not be read ({exc.strerror})"]
    notes = []
    if len(data) > MAX_METRICS_BYTES:
        data = data[:MAX_METRICS_BYTES]
        notes.append(f"metrics.jsonl is larger than {MAX_METRICS_BYTES} bytes; only its start "
                     "is shown")
    if not data.strip():
        return [], ["metrics.jsonl is empty: nothing was logged yet"]
    lines = data.decode("utf-8", "replace").split("\n")
    unfinished = lines.pop() if lines[-1] else None  # text after the last newline
    rows, bad = [], []
    for number, line in enumerate(lines, 1):
        row = _row(line)
        if row is not None:
            rows.append(row)
        elif line.strip():
            bad.append(number)
    if unfinished is not None:
        row = _row(unfinished)
        if row is not None:  # complete JSON, only the newline is missing
            rows.append(row)
        else:
            notes.append(f"the last line of metrics.jsonl (line {len(lines) + 1}) is cut short "
                         "(the run was stopped while writing it, or is writing it now); it is "
                         "left out")
    if bad:
        shown = ", ".join(map(str, bad[:5])) + (" ..." if len(bad) > 5 else "")
        notes.append(f"{len(bad)} damaged line(s) of metrics.jsonl left out (line {shown})")
    if not rows and not notes:
        notes.append("metrics.jsonl holds no rows")
    return rows, notes


def _row(line: str) -> dict[str, Any] | None:
    try:
        row = json.loads(line)
    except (json.JSONDecodeError, RecursionError):
        return None
    if not isinstance(row, dict):
        return None
    step = row.get("step")
    if not isinstance(step, int) or isinstance(step, bool) or step < 0:
        return None
    return row


# -- checkpoints ---------------------------------------------------------------------------


def checkpoint_meta(path: Path) -> dict[str, Any]:
    """The ganframe metadata of a checkpoint, from its safetensors header only.

    Raises ValueError saying what is wrong; :func:`ganframe.checkpoint.read_checkpoint`
    remains the reader that verifies a checkpoint before anything is restored from it."""
    with path.open("rb") as fh:
        size = os.fstat(fh.fileno()).st_size
        head = fh.read(8)
        if len(head) < 8:
            raise ValueError(f"only {size} bytes long")
        (length,) = struct.unpack("<Q", head)
        if length > min(MAX_HEADER_BYTES, size - 8):
            raise ValueError("truncated or not a safetensors file")
        raw = fh.read(length)
    try:
        header = json.loads(raw.decode("utf-8"))
        meta = json.loads(header["__metadata__"]["ganframe"])
    except (UnicodeDecodeError, json.JSONDecodeError, RecursionError, KeyError, TypeError):
        raise ValueError("not a ganframe checkpoint (no readable metadata)") from None
    if not isinstance(meta, dict):
        raise ValueError("its metadata is not a JSON object")
    return meta


def _checkpoints(folder: Path, notes: list[str]) -> list[CheckpointFile]:
    where = folder / CHECKPOINTS
    if where.is_symlink():
        notes.append("checkpoints/ is a link; not read (a report reads only the run folder)")
        return []
    try:
        names = sorted(p.name for p in where.iterdir()) if where.is_dir() else []
    except OSError as exc:
        notes.append(f"checkpoints/ could not be listed ({exc.strerror})")
        return []
    found = []
    for name in names:
        match = _STEP_FILE.fullmatch(name)
        if not match and name != "last.safetensors":
            continue
        path = where / name
        st = regular_file(path)
        if st is None:
            notes.append(f"checkpoints/{name} is not a regular file (a link?); left out")
            continue
        ckpt = CheckpointFile(path, int(match.group(1)) if match else None, st.st_size,
                              st.st_mtime)
        try:
            ckpt.meta = checkpoint_meta(path)
        except (OSError, ValueError) as exc:
            ckpt.problem = str(exc)
            notes.append(f"checkpoints/{name}: cannot read its metadata ({exc})")
        if ckpt.step is None and ckpt.meta is not None:
            ckpt.step = _int(_get(ckpt.meta, "run", "step"))
        found.append(ckpt)
    return sorted(found, key=lambda c: (c.step if c.step is not None else -1, c.name))


def _newest(checkpoints: list[CheckpointFile]) -> CheckpointFile | None:
    readable = [c for c in checkpoints if c.meta is not None]
    if not readable:
        return None
    return max(readable, key=lambda c: (c.step or 0, c.name == "last.safetensors"))


def _samples(folder: Path) -> list[SampleFile]:
    where = folder / SAMPLES
    if where.is_symlink():
        return []
    try:
        names = sorted(p.name for p in where.iterdir()) if where.is_dir() else []
    except OSError:
        return []
    out = []
    for name in names:
        match = _SAMPLE_FILE.fullmatch(name)
        if not match or regular_file(where / name) is None:
            continue
        suffix = match.group(2).lower()
        kind = ("image" if suffix in _IMAGE_SUFFIXES else
                "text" if suffix in _TEXT_SUFFIXES else "file")
        out.append(SampleFile(where / name, int(match.group(1)), kind))
    return sorted(out, key=lambda s: (s.step, s.path.name))


# -- status --------------------------------------------------------------------------------


def lock_state(folder: Path) -> tuple[str, str]:
    """("none" | "held" | "stale" | "unknown", who holds it) for the run folder's lock.

    On Linux ``/proc/locks`` tells whether anybody holds the ``flock`` without taking it
    (taking it, even for a moment, could make a run starting right then fail); elsewhere,
    whether the process named in the file is alive on this host."""
    path = folder / LOCK_FILE
    st = regular_file(path)  # never a FIFO: reading one would block
    if st is None:
        return "none", ""
    try:
        text = path.read_text(encoding="utf-8", errors="replace")[:4096]
    except OSError:
        return "none", ""
    holder, pid, host = "holder unknown", None, None
    try:
        doc = json.loads(text)
        pid, host = doc.get("pid"), doc.get("host")
        if isinstance(pid, int) and isinstance(host, str):
            holder = f"pid {pid} on host {host[:100]}"
    except (json.JSONDecodeError, RecursionError, AttributeError):
        pass
    held = _flock_held(st)
    if held is None and isinstance(pid, int) and host == socket.gethostname():
        held = _alive(pid)
    if held is None:
        return "unknown", holder
    return ("held" if held else "stale"), holder


def _flock_held(st: os.stat_result) -> bool | None:
    try:
        text = Path("/proc/locks").read_text()
    except OSError:
        return None
    want = f"{os.major(st.st_dev):02x}:{os.minor(st.st_dev):02x}:{st.st_ino}"
    for line in text.splitlines():
        fields = line.split()
        if "->" not in fields and len(fields) > 5 and fields[5] == want:
            return True
    return False


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except OSError:
        return True
    return True


def planned_steps(run: Run) -> int | None:
    """Steps the run plans: from its newest checkpoint (``run.phase_lengths``), else from
    the recipe when it counts steps (a phase given in epochs needs the data's size)."""
    lengths = _get(run.meta or {}, "run", "phase_lengths")
    if isinstance(lengths, list) and lengths and all(isinstance(n, int) for n in lengths):
        return sum(lengths)
    phases = run.recipe.get("phases")
    if isinstance(phases, list) and phases:
        steps = [p.get("steps") if isinstance(p, dict) else None for p in phases]
        return sum(steps) if all(isinstance(s, int) for s in steps) else None
    return _int(_get(run.recipe, "train", "steps"))


def _status(run: Run) -> Status:
    lock, holder = lock_state(run.path)
    meta = run.meta or {}
    ck_step = _int(_get(meta, "run", "step"))
    logged = max((r["step"] for r in run.rows), default=0)
    step = max(logged, ck_step or 0)
    planned = planned_steps(run)
    of = f" of {planned:,}" if planned else ""
    lengths = _get(meta, "run", "phase_lengths")
    phase = _int(_get(meta, "run", "phase"))
    complete = isinstance(lengths, list) and phase is not None and phase >= len(lengths)
    resume = f"; --resume continues from step {ck_step:,}" if ck_step is not None else ""
    if lock == "held":
        return Status("training", step, planned, f"still training ({holder}): step {step:,}{of}")
    if lock == "unknown":
        return Status("training", step, planned,
                      f"probably still training ({holder}, on another host): step {step:,}{of}")
    if complete or (planned and ck_step is not None and ck_step >= planned):
        return Status("finished", step, planned, f"finished: {step:,} steps")
    if lock == "stale":
        return Status("interrupted", step, planned,
                      f"interrupted at step {step:,}{of}: the process ({holder}) ended without "
                      f"cleaning up (killed or crashed){resume}")
    if ck_step is not None:
        return Status("stopped", ck_step, planned, f"stopped at step {ck_step:,}{of}{resume}")
    if run.rows:
        return Status("interrupted", step, planned,
                      f"interrupted at step {step:,}{of} before its first checkpoint")
    return Status("empty", 0, planned, "nothing trained yet (no checkpoint, nothing logged)")


# -- environment and time ------------------------------------------------------------------


def _environment(run: Run) -> dict[str, str]:
    """What the run ran with: versions from the checkpoint, the rest from the recipe (what
    it asked for: ``device = "auto"`` means the best device found) and the start-up row a
    newer ganframe logs, when there is one."""
    meta = run.meta or {}
    env: dict[str, str] = {}
    for key, label in (("ganframe", "ganframe"), ("torch", "torch")):
        if isinstance(meta.get(key), str):
            env[label] = meta[key]
    plugins = meta.get("plugins")
    if isinstance(plugins, dict):
        env["plugins"] = ", ".join(f"{k} {v}" for k, v in sorted(plugins.items())) or "none"
    recipe, train = run.recipe, run.recipe.get("train") or {}
    # the recipe says what was asked for: "auto" and 0 are resolved when the run starts
    for label, value in (("device", recipe.get("device")), ("threads", recipe.get("threads")),
                         ("precision", train.get("precision") if isinstance(train, dict)
                          else None)):
        if value == "auto":
            env[label] = "auto (the recipe's: the best device found at start)"
        elif label == "threads" and value == 0:
            env[label] = "0 (the recipe's: torch's default)"
        elif value is not None:
            env[label] = str(value)
    world = _int(_get(meta, "run", "world"))
    if world is not None:
        env["processes"] = str(world)
    for row in run.rows:
        if row.get("event") in ("start", "run_start"):
            env.update({k: str(v) for k, v in row.items() if k not in ROW_KEYS})
    if meta.get("data_kind"):
        env["data"] = str(meta["data_kind"])
    return env


def _wall_time(run: Run) -> tuple[float | None, str]:
    elapsed = [r["elapsed_s"] for r in run.rows if _finite(r.get("elapsed_s"))]
    if elapsed:
        first = min(r["step"] for r in run.rows if _finite(r.get("elapsed_s")))
        older = sum(1 for r in run.rows if r["step"] < first)
        note = "training time logged in metrics.jsonl (elapsed_s)"
        if older:  # an attempt by a ganframe that did not log it, resumed by one that does
            note += (f"; {older} earlier row(s) have none, so the time before them is "
                     "missing")
        return float(max(elapsed)), note
    times = []
    for path in (run.path / RECIPE_FILE, run.path / METRICS_FILE,
                 *(c.path for c in run.checkpoints)):
        try:
            times.append(path.stat().st_mtime)
        except OSError:
            continue
    if len(times) < 2:
        return None, ""
    return max(times) - min(times), "estimated from file times (this log has no elapsed_s)"


def _finite(value: Any) -> bool:
    return isinstance(value, int | float) and not isinstance(value, bool) and math.isfinite(
        value)


def _get(doc: Any, *keys: str) -> Any:
    for key in keys:
        if not isinstance(doc, dict):
            return None
        doc = doc.get(key)
    return doc


def _int(value: Any) -> int | None:
    return value if isinstance(value, int) and not isinstance(value, bool) else None
