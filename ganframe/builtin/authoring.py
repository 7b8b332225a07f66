"""The plugin author's commands: ``ganframe new-plugin``, ``check-plugin`` and ``schema``.

They reach the command line through the ``register_commands`` hook, exactly like a plugin's
own commands, which keeps that hook exercised by the core itself. Like a plugin's commands
they never import :mod:`ganframe.cli` (they print with ``typer.echo``), and they are the
command-line face of :mod:`ganframe.devtools`: the one place in ``builtin/`` allowed to import
it, inside the command functions only (``tests/test_layers.py`` checks both).
"""

from __future__ import annotations

import json
import shlex
import sys
from pathlib import Path
from typing import Annotated

import typer


def new_plugin(
    name: Annotated[
        str, typer.Argument(help="Plugin name, e.g. 'mygan' (distribution ganframe-mygan).")
    ],
    directory: Annotated[
        Path | None,
        typer.Option("--dir", help="Where to create the project (default ./ganframe-NAME)."),
    ] = None,
    kinds: Annotated[
        str, typer.Option(help="Comma-separated kinds: generator,critic,loss,dataset,metric.")
    ] = "generator,critic",
) -> None:
    """Write a ready-to-publish plugin project with working components and passing tests."""
    from ganframe.devtools.scaffold import new_plugin as scaffold

    path = scaffold(name, directory, [k.strip() for k in kinds.split(",") if k.strip()])
    typer.echo(f"created plugin project {path}")
    # the [test] extra brings pytest, which the generated tests need
    typer.echo(f"next: pip install -e {shlex.quote(f'{path}[test]')} && pytest "
               f"{shlex.quote(str(path))}")


def check_plugin(
    name: Annotated[
        str, typer.Argument(help="The plugin's name, as 'ganframe list-plugins' shows it.")
    ],
    as_json: Annotated[bool, typer.Option("--json", help="Print JSON.")] = False,
    no_recipes: Annotated[
        bool, typer.Option("--no-recipes", help="Do not run the plugin's shipped recipes.")
    ] = False,
) -> None:
    """Try every component of a plugin and run its shipped recipes; exit 1 on a failure.

    Imports every factory and config model, builds each component on tiny data and checks
    its contract, runs each shipped recipe for 2 steps on the CPU, and reports per
    component (for a plugin's CI)."""
    from ganframe.devtools.checkplugin import check_plugin as check
    from ganframe.devtools.checkplugin import render

    report = check(name, recipes=not no_recipes)
    if as_json:
        sys.stdout.write(json.dumps(report.as_json(), indent=2) + "\n")
    else:
        from rich.console import Console

        Console(soft_wrap=True).print(render(report))
    if not report.ok:
        raise typer.Exit(1)


def schema() -> None:
    """Print the JSON Schema of recipes (core plus installed plugins), for editors."""
    from ganframe.plugins import get_registry
    from ganframe.schema import recipe_schema

    sys.stdout.write(json.dumps(recipe_schema(get_registry()), indent=2) + "\n")
