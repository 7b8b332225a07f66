"""``ganframe models`` and ``ganframe export``: the commands of shareable generators.

Registered through ``register_commands`` (:mod:`ganframe.builtin.models_plugin`) like any
plugin's commands, so they print with ``typer.echo`` and rich, never through
:mod:`ganframe.cli`; torch is imported inside the commands only.
"""

from __future__ import annotations

import json
import shlex
import sys
from pathlib import Path
from typing import Annotated, Any

import typer

from ganframe.textsafe import printable


def _size(n: int | None) -> str:
    if n is None:
        return "missing"
    return f"{n / 1e6:.1f} MB" if n >= 100_000 else f"{n / 1e3:.0f} kB"


#: Card figures kept for the card tests and the fp16 comparison: in --json, not the table.
_DETAIL = ("check_", "fp16_", "fp32_")


def _figures(card: dict[str, Any]) -> str:
    return ", ".join(f"{k} {v:.4g}" if isinstance(v, float) else f"{k} {v}"
                     for k, v in card.items() if not k.startswith(_DETAIL))


def models(
    as_json: Annotated[bool, typer.Option("--json", help="Print JSON.")] = False,
) -> None:
    """List the pretrained generators that installed plugins ship: sample one with
    'ganframe sample NAME -n 64 -o samples.png' (no data, no training, no network)."""
    from ganframe.plugins import get_registry
    from ganframe.pretrained import model_rows

    rows = model_rows(get_registry())
    if as_json:
        sys.stdout.write(json.dumps(rows, indent=2) + "\n")
        return
    from rich.console import Console
    from rich.table import Table
    from rich.text import Text

    # Names and sizes never wrap (they are what a user types and compares); the rest folds,
    # so at 80 columns nothing is cut to "dcgan-mnist-c…".
    table = Table(title="pretrained generators")
    table.add_column("name", no_wrap=True)
    table.add_column("plugin", overflow="fold")
    table.add_column("size", no_wrap=True)
    table.add_column("summary, figures", overflow="fold", ratio=1)
    for row in rows:
        about = f"{row['summary']}\n{_figures(row['card'])}"
        table.add_row(*(Text(printable(v)) for v in (
            row["name"], _plugin(row["plugin"]), _size(row["bytes"]), about)))
    Console(soft_wrap=True).print(table)
    if not rows:
        typer.echo("no pretrained generators installed (ganframe-dcgan and ganframe-poet "
                   "ship some)")


def export(
    checkpoint: Annotated[
        Path, typer.Argument(help="Checkpoint file, run folder or generator file.")
    ],
    output: Annotated[
        Path, typer.Option("--out", "-o", help="The generator file to write (.safetensors).")
    ],
    half: Annotated[
        bool, typer.Option("--half", help="Store the weights in fp16 (half the size).")
    ] = False,
) -> None:
    """Write a checkpoint's generator (its EMA weights where the run kept an EMA) to a small
    file with everything needed to sample it: config, vocabulary or class names, how it
    was trained, its metrics and recommended sampling options. 'ganframe sample FILE' reads
    it like a checkpoint; it cannot be resumed."""
    from ganframe.export import export_generator

    result = export_generator(checkpoint, output, half=half)
    options = ", ".join(f"{k}={v}" for k, v in result.sampling.items())
    typer.echo(printable(
        f"wrote {result.path} ({result.bytes:,} bytes, {result.dtype}, "
        f"{'EMA ' if result.weights == 'ema' else ''}generator weights of step {result.step}"
        + (f"; recommended sampling: {options}" if options else "") + ")"))
    from ganframe.plugins import get_registry

    writer = get_registry().default_writer(result.data_kind)
    suffix = writer.suffix if writer is not None else ".npy"
    typer.echo(printable(f"sample it with: ganframe sample {shlex.quote(str(result.path))} "
                         f"-n 64 -o samples{suffix}"))


def _plugin(name: str) -> str:
    """The core's own plugin modules read as "ganframe", not their module path."""
    return "ganframe" if name.startswith("ganframe.builtin.") else name
