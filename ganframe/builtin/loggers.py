"""The core's loggers: ``jsonl`` writes every logged row to the run folder's metrics.jsonl,
``csv`` to one wide metrics.csv, ``tensorboard`` to event files in ``tb/`` (optional extra).

A logger is an ordinary callback that listens to :meth:`Callback.on_log`; a recipe chooses its
loggers in ``[[loggers]]`` tables (``jsonl`` when it names none). A resumed or rolled-back run
drops the rows logged after the step it continues from, so the file reads as if the run had
never stopped.
"""

from __future__ import annotations

import csv
import importlib.util
import io
import json
import os
import re
from pathlib import Path
from typing import Any

from pydantic import BaseModel, ConfigDict, Field, model_validator

from ganframe.loop.clock import TIME_KEYS
from ganframe.loop.events import Callback
from ganframe.runfolder import METRICS_FILE, RECIPE_FILE, MetricsLog, register, write_atomic


class JsonlConfig(BaseModel):
    model_config = ConfigDict(extra="forbid")


class JsonlLogger(Callback):
    """One JSON object per line: ``{"step", "phase", "event", ...scalars}``."""

    def __init__(self, config: Any = None, ctx: Any = None) -> None:
        self.log: MetricsLog | None = None

    def on_run_start(self, trainer: Any) -> None:
        last = self._open(trainer).truncate_after(trainer.state.step)
        if trainer.resumed and last is not None:  # elapsed_s goes on from the rows kept
            trainer.clock.continue_from(last.get("elapsed_s"))

    def on_restore(self, trainer: Any, path: Any) -> None:
        # A rollback while running; a resume restores before the run starts, and nothing
        # is written until on_run_start (a refused resume leaves the folder as it was).
        if self.log is not None:
            self.log.truncate_after(trainer.state.step)

    def on_log(self, trainer: Any, row: dict[str, Any]) -> None:
        self._open(trainer).write(row)

    def _open(self, trainer: Any) -> MetricsLog:
        if self.log is None:
            self.log = MetricsLog(trainer.out / METRICS_FILE, enabled=trainer.is_main)
            if trainer.is_main:  # listed in the run folder's manifest, for --force
                register(self.log.path)
        return self.log


# -- csv -----------------------------------------------------------------------------------

CSV_FILE = "metrics.csv"
_FIXED = ("step", "phase", "event")


class CsvConfig(BaseModel):
    model_config = ConfigDict(extra="forbid")


class CsvLogger(Callback):
    """One wide ``metrics.csv``: ``step, phase, event``, then every key any row has had, in
    the order they first appeared; a row leaves the keys it lacks empty.

    Rows are appended; a key never seen before rewrites the whole file atomically with the
    wider header, so the file on disk always has one header that fits every line (readers
    such as pandas need that). Rank 0 only; a resume or rollback drops rows after its step.
    """

    def __init__(self, config: Any = None, ctx: Any = None) -> None:
        self.path: Path | None = None
        self.columns: list[str] = list(_FIXED)
        self.rows: list[dict[str, Any]] = []

    def on_run_start(self, trainer: Any) -> None:
        if trainer.is_main:
            self.path = trainer.out / CSV_FILE
            self.columns, self.rows = _read_csv(self.path)
            self._truncate(trainer.state.step)
            if trainer.resumed and self.rows:  # elapsed_s goes on from the rows kept
                trainer.clock.continue_from(_number(self.rows[-1].get("elapsed_s")))

    def on_restore(self, trainer: Any, path: Any) -> None:
        if self.path is not None:  # a rollback while running (a resume comes before start)
            self._truncate(trainer.state.step)

    def on_log(self, trainer: Any, row: dict[str, Any]) -> None:
        if self.path is None:
            return
        row = {k: _cell(v) for k, v in row.items()}
        self.rows.append(row)
        new = [k for k in row if k not in self.columns]
        if new or not self.path.exists():
            self.columns += new
            self._rewrite()
            return
        flags = os.O_WRONLY | os.O_APPEND | os.O_CREAT | getattr(os, "O_NOFOLLOW", 0)
        with os.fdopen(os.open(self.path, flags, 0o666), "a", encoding="utf-8",
                       newline="") as fh:
            csv.DictWriter(fh, self.columns, restval="").writerow(row)

    def _truncate(self, step: int) -> None:
        self.rows = [r for r in self.rows if _step(r) <= step]
        if self.path is not None and (self.rows or self.path.exists()):
            self._rewrite()

    def _rewrite(self) -> None:
        assert self.path is not None
        buf = io.StringIO(newline="")
        writer = csv.DictWriter(buf, self.columns, restval="")
        writer.writeheader()
        writer.writerows(self.rows)
        write_atomic(self.path, buf.getvalue().encode("utf-8"))  # registers the file


def _cell(value: Any) -> Any:
    # repr of a float reads back as the same float (str() of a Python float does too)
    return value if isinstance(value, str | int | float) else json.dumps(value)


def _number(text: Any) -> float | None:
    try:
        return float(text)
    except (TypeError, ValueError):
        return None


def _step(row: dict[str, Any]) -> int:
    try:
        return int(row.get("step") or 0)
    except ValueError:
        return 0


def _read_csv(path: Path) -> tuple[list[str], list[dict[str, Any]]]:
    """The header and rows of an earlier attempt's file (a resume), or an empty log."""
    if not path.is_file():
        return list(_FIXED), []
    with path.open(encoding="utf-8", newline="") as fh:
        reader = csv.DictReader(fh)
        columns = list(reader.fieldnames or _FIXED)
        rows = [r for r in reader if None not in r]  # a line cut short by a crash is dropped
    return columns, rows


# -- tensorboard ---------------------------------------------------------------------------

TB_FOLDER = "tb"
TB_INSTALL = "pip install 'ganframe[tensorboard]'"


class TensorBoardConfig(BaseModel):
    model_config = ConfigDict(extra="forbid")

    max_images: int = Field(64, ge=1, le=1024,
                            description="How many samples of each image grid to log.")
    hparams: bool = Field(True, description="At the end, log the recipe as hyper-parameters "
                          "with the final metric values (TensorBoard's HPARAMS tab).")

    @model_validator(mode="after")
    def _installed(self) -> TensorBoardConfig:
        # checked when the recipe is validated, not at the first step; find_spec imports
        # nothing, so `ganframe validate` stays free of torch
        if importlib.util.find_spec("tensorboard") is None:
            raise ValueError(f"the tensorboard logger needs the tensorboard package, which is "
                             f"not installed: {TB_INSTALL}")
        return self


class TensorBoardLogger(Callback):
    """Event files in ``<run>/tb/`` through ``torch.utils.tensorboard.SummaryWriter``.

    Tags: ``<event>/<key>`` for each scalar of a row (``train/g_loss``), ``metric/<name>/<key>``
    for metric rows, ``lr/<network>`` at each train row, ``samples`` images (image data) or
    text (token ids with a ``vocab`` in the data info), the recipe as text and, at the end,
    as hyper-parameters. A resume or rollback reopens the writer with ``purge_step`` one past
    the restored step, so TensorBoard drops what the interrupted attempt logged after it."""

    def __init__(self, config: TensorBoardConfig | None = None, ctx: Any = None) -> None:
        self.config = config or TensorBoardConfig()
        self.writer: Any = None
        self.folder: Path | None = None
        self.final: dict[str, float] = {}
        self.said = False

    def on_run_start(self, trainer: Any) -> None:
        if not trainer.is_main:
            return
        self.folder = trainer.out / TB_FOLDER
        self._open(trainer.state.step + 1 if trainer.resumed else None)
        recipe = trainer.out / RECIPE_FILE
        if not trainer.resumed and recipe.is_file():
            text = recipe.read_text(encoding="utf-8")
            self.writer.add_text("recipe", f"```toml\n{text}\n```", 0)

    def on_restore(self, trainer: Any, path: Any) -> None:
        if self.writer is not None:  # a rollback while running
            self.writer.close()
            self._open(trainer.state.step + 1)

    def on_phase_start(self, trainer: Any, phase: Any) -> None:
        if self.folder is not None and not self.said:  # after the run's start-up lines
            self.said = True
            trainer.message(f"TensorBoard logs: {self.folder} (watch while it trains: "
                            f"tensorboard --logdir {self.folder})")

    def on_log(self, trainer: Any, row: dict[str, Any]) -> None:
        if self.writer is None:
            return
        step, event = int(row["step"]), str(row.get("event", "train"))
        prefix = f"metric/{row.get('metric')}" if event == "metric" else event
        for key, value in row.items():
            if key in _NOT_SCALARS or not _is_number(value):
                continue
            self.writer.add_scalar(f"{prefix}/{key}", float(value), step)
            if event == "metric":
                self.final[f"{prefix}/{key}"] = float(value)
        if event == "train":
            for name, rate in trainer.learning_rates.current().items():
                self.writer.add_scalar(f"lr/{name}", float(rate), step)

    def on_samples(self, trainer: Any, samples: Any, path: Any) -> None:
        if self.writer is None:
            return
        step = trainer.state.step
        if samples.is_floating_point() and samples.dim() == 4 and samples.shape[1] in (1, 3):
            images = samples[: self.config.max_images].clamp(-1, 1).add(1).div(2)
            self.writer.add_images("samples", images, step, dataformats="NCHW")
        elif not samples.is_floating_point() and samples.dim() == 2:
            poems = _decode(samples.tolist(), trainer.data_info or {})
            if poems:
                self.writer.add_text("samples", "\n\n".join(poems), step)

    def on_checkpoint(self, trainer: Any, path: Any) -> None:
        if self.writer is not None:  # what a resume continues from is on disk
            self.writer.flush()

    def on_train_end(self, trainer: Any) -> None:
        if self.writer is None or not self.config.hparams:
            return
        if trainer.state.phase < len(trainer.phases):  # stopped early (--max-steps): not final
            return
        recipe = getattr(trainer.record, "recipe", None) or {}
        self.writer.add_hparams(_flat(recipe), dict(self.final) or {"step": trainer.state.step},
                                run_name="hparams", global_step=trainer.state.step)
        self._register()

    def on_run_end(self, trainer: Any, result: Any) -> None:
        if self.writer is not None:
            self.writer.close()
            self.writer = None

    def _open(self, purge_step: int | None) -> None:
        from torch.utils.tensorboard import SummaryWriter

        assert self.folder is not None
        self.folder.mkdir(parents=True, exist_ok=True)
        register(self.folder, folder=True)
        _after_last_event_file(self.folder)
        self.writer = SummaryWriter(log_dir=str(self.folder), purge_step=purge_step)
        self._register()

    def _register(self) -> None:
        assert self.folder is not None
        for path in sorted(self.folder.rglob("*")):  # event files, the hparams run's folder
            register(path, folder=path.is_dir())


#: Keys of a row that are not curves: where it belongs, and the clock's stamps (TensorBoard
#: keeps each event's wall time itself).
_NOT_SCALARS = frozenset({"step", "phase", "event", "metric", *TIME_KEYS})


_EVENT_FILE = re.compile(r"events\.out\.tfevents\.(\d+)\.")


def _after_last_event_file(folder: Path) -> None:
    """Wait (at most a second) until the clock is past the second of the newest event file.

    TensorBoard reads a folder's event files in name order, and a name is ``<whole seconds>.
    <host>.<pid>.<counter>``: two files of one process made in the same second sort by their
    counter as text, so the 10th writer's file ("...10") comes before the 9th's ("...9"). A
    writer reopened after a rollback or a resume would then be read before the attempt it
    replaces, and its purge would drop the wrong steps."""
    import time

    seconds = [int(m.group(1)) for p in folder.glob("events.out.tfevents.*")
               if (m := _EVENT_FILE.match(p.name))]
    if not seconds:
        return
    deadline = time.monotonic() + 1.5
    while int(time.time()) <= max(seconds) and time.monotonic() < deadline:
        time.sleep(0.02)


def _is_number(value: Any) -> bool:
    return isinstance(value, int | float) and not isinstance(value, bool)


def _decode(rows: list[list[int]], info: dict[str, Any]) -> list[str]:
    """Token ids to text with the data info's ``vocab``, honouring its optional ``end``
    (stop), ``pad`` and ``start`` (dropped) token ids; no vocabulary, no text."""
    vocab = info.get("vocab")
    if not isinstance(vocab, list | tuple) or not vocab:
        return []
    end, skip = info.get("end"), {info.get("pad"), info.get("start")}
    out = []
    for row in rows[:16]:
        chars = []
        for tok in row:
            if tok == end:
                break
            if tok not in skip and 0 <= tok < len(vocab):
                chars.append(str(vocab[tok]))
        out.append("".join(chars))
    return out


def _flat(table: dict[str, Any], prefix: str = "") -> dict[str, Any]:
    """A nested recipe as the flat ``{dotted.key: scalar}`` table add_hparams takes."""
    out: dict[str, Any] = {}
    for key, value in table.items():
        name = f"{prefix}{key}"
        if isinstance(value, dict):
            out.update(_flat(value, f"{name}."))
        elif isinstance(value, bool | int | float | str):
            out[name] = value
        elif value is not None:
            out[name] = json.dumps(value)
    return out
