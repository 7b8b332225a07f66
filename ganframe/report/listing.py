"""``ganframe runs``: one summary line per run folder under a folder."""

from __future__ import annotations

import math
from pathlib import Path
from typing import Any

from ganframe.errors import UserError
from ganframe.report.collect import Run, is_run_folder, read_run

__all__ = ["find_runs", "summarise"]

#: How many values the table shows per run (the JSON has them all).
SHOWN_VALUES = 3


def find_runs(root: Path) -> list[Path]:
    """``root`` itself when it is a run folder, else the run folders directly inside it."""
    if not root.exists():
        raise UserError(f"{root}: no such folder. Runs are written to runs/NAME by default; "
                        "pass the folder that holds them, e.g. 'ganframe runs runs'.")
    if not root.is_dir():
        raise UserError(f"{root}: not a folder. Pass the folder that holds run folders "
                        "(runs/ by default) or one run folder.")
    if is_run_folder(root):
        return [root]
    try:
        children = sorted(p for p in root.iterdir() if p.is_dir() and not p.name.startswith("."))
    except OSError as exc:
        raise UserError(f"{root}: cannot list it ({exc.strerror}).") from None
    return [p for p in children if is_run_folder(p)]


def summarise(run: Run) -> dict[str, Any]:
    """What ``ganframe runs --json`` prints for one run."""
    last = run.last_checkpoint()
    values = run.final_metrics() or run.last_train_values()
    # strict JSON for every reader (jq, JavaScript): a non-finite value becomes null
    values = {k: v if math.isfinite(v) else None for k, v in values.items()}
    return {
        "name": run.path.name,
        "path": str(run.path),
        "recipe": run.recipe.get("name") if isinstance(run.recipe.get("name"), str) else None,
        "status": run.status.state,
        "status_text": run.status.text,
        "step": run.status.step,
        "planned_steps": run.status.planned,
        "last_values": values,
        "last_checkpoint": str(last.path) if last is not None else None,
        "last_checkpoint_step": last.step if last is not None else None,
        "wall_time_s": round(run.wall_s, 1) if run.wall_s is not None else None,
        "notes": run.notes,
    }


def read_all(root: Path) -> list[dict[str, Any]]:
    return [summarise(read_run(p)) for p in find_runs(root)]


def table(rows: list[dict[str, Any]]) -> Any:
    """The rich table ``ganframe runs`` prints."""
    from rich.table import Table
    from rich.text import Text

    from ganframe.textsafe import printable

    out = Table(box=None, pad_edge=False, collapse_padding=True, header_style="bold")
    for name, kw in (("run (recipe)", {"overflow": "fold"}),
                     ("status", {"no_wrap": True}),
                     ("steps", {"justify": "right", "no_wrap": True}),
                     ("last values", {"overflow": "fold", "min_width": 15}),
                     ("checkpoint", {"no_wrap": True}),
                     ("time", {"justify": "right", "no_wrap": True})):
        out.add_column(name, **kw)
    for row in rows:
        planned = row["planned_steps"]
        steps = f"{row['step']:,}/{planned:,}" if planned else f"{row['step']:,}"
        values = _short_keys(list(row["last_values"].items()))
        shown = "\n".join(f"{k} {v:.4g}" if v is not None else f"{k} nan/inf"
                          for k, v in values[:SHOWN_VALUES])
        if len(values) > SHOWN_VALUES:
            shown += f"\n(+{len(values) - SHOWN_VALUES} more)"
        ckpt_step = row["last_checkpoint_step"]
        ckpt = "-" if row["last_checkpoint"] is None else (
            f"step {ckpt_step:,}" if ckpt_step is not None else Path(row["last_checkpoint"]).name)
        name = row["name"]  # the recipe under it when it differs (narrow terminals)
        if row["recipe"] != name:
            name += f"\n({row['recipe'] or '?'})"
        cells = (name, row["status"], steps, shown or "-", ckpt,
                 _short(row["wall_time_s"]) if row["wall_time_s"] is not None else "?")
        out.add_row(*(Text(printable(c)) for c in cells))  # names are data, not markup
    return out


def _short(seconds: float) -> str:
    """``1h02m``, ``7m58s``, ``49s``: a duration in a narrow column."""
    seconds = max(0, round(seconds))
    hours, rest = divmod(seconds, 3600)
    minutes, secs = divmod(rest, 60)
    return f"{hours}h{minutes:02d}m" if hours else f"{minutes}m{secs:02d}s" if minutes else (
        f"{secs}s")


def _short_keys(values: list[tuple[str, Any]]) -> list[tuple[str, Any]]:
    """``mnist-fid/fid`` as ``fid`` where no two shown keys would then read the same: the
    table is narrow, the JSON keeps the full names."""
    short = [k.rpartition("/")[2] for k, _ in values]
    if len(set(short)) < len(short):
        return values
    return [(name, v) for name, (_, v) in zip(short, values, strict=True)]
