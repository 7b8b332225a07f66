"""The command-line faces of reports: ``ganframe report`` and ``ganframe runs``.

Registered through the ``register_commands`` hook by :mod:`ganframe.builtin.report_plugin`,
like any plugin's commands: they print with ``typer.echo`` and rich, raise
:class:`~ganframe.errors.UserError` for what the user can fix (the host turns that into one
line and exit 2), and import matplotlib (and, for text runs, torch) only when they run.
"""

from __future__ import annotations

import json
import sys
import time
from pathlib import Path
from typing import Annotated

import typer

from ganframe.errors import UserError

__all__ = ["report", "runs"]


def report(
    runs: Annotated[list[Path], typer.Argument(
        metavar="RUN...", help="Run folders (runs/NAME); two or more are compared.",
        show_default=False)],
    out: Annotated[Path, typer.Option(
        "-o", "--out", metavar="FILE", help="The HTML file to write.")] = Path("report.html"),
    poems: Annotated[int, typer.Option(
        metavar="N", help="Poems to draw from a text run's newest checkpoint at its metrics' "
        "temperature (0: none).")] = 8,
) -> None:
    """Write one self-contained HTML report of one or more runs (curves, samples, recipe).

    The page needs no network to be viewed: plots are inline SVG, images data URIs. Works
    on a run that is still training or was interrupted, and says so."""
    from ganframe.fileio import atomic_write
    from ganframe.report.collect import read_run
    from ganframe.report.html import render
    from ganframe.report.poems import sample_poems
    from ganframe.textsafe import printable

    t0 = time.perf_counter()
    if out.is_dir():
        raise UserError(f"{out}: is a folder; -o names the HTML file to write, e.g. "
                        f"{out / 'report.html'}.")
    if len({p.resolve() for p in runs}) < len(runs):
        raise UserError("the same run folder is given twice; name each run once.")
    collected = [read_run(p) for p in runs]
    names = [r.name for r in collected]
    for run in collected:  # runs/a/ring and runs/b/ring: tell them apart in the legend
        if names.count(run.name) > 1:
            run.name = f"{run.path.resolve().parent.name}/{run.name}"
    drawn = {i: p for i, run in enumerate(collected) if (p := sample_poems(run, poems))}
    page = render(collected, drawn).encode("utf-8")
    if not out.parent.is_dir():
        raise UserError(f"{out}: its folder {out.parent} does not exist; create it first or "
                        "choose another -o.")
    atomic_write(out, page)
    for run in collected:
        typer.echo(printable(f"{run.name}: {run.status.text}"))
    typer.echo(printable(f"wrote {out} ({len(page) / 1024:,.0f} KiB) in "
                         f"{time.perf_counter() - t0:.1f} s; open it in a browser"))


def runs(
    folder: Annotated[Path, typer.Argument(
        metavar="DIR", help="A folder of run folders, or one run folder.")] = Path("runs"),
    as_json: Annotated[bool, typer.Option("--json", help="Print JSON (a list, one object a "
                                          "run) for scripts.")] = False,
) -> None:
    """List the runs under a folder: status, steps, last values, checkpoint, wall time."""
    from ganframe.report.listing import read_all, table

    rows = read_all(folder)
    if as_json:
        sys.stdout.write(json.dumps(rows, indent=2) + "\n")
        return
    from rich.console import Console

    if not rows:
        typer.echo(f"no run folders in {folder}", err=True)
        return
    Console().print(table(rows))
