"""The ``ganframe`` command: a thin typer shell over :mod:`ganframe.api`.

Heavy imports (torch, models) happen inside the commands that need them, so ``--help``,
``list-plugins``, ``recipes`` and ``validate`` start fast. User errors print one paragraph
and exit 2; anything else is a bug: exit 1, with the traceback behind ``--debug``.
"""

from __future__ import annotations

import errno
import functools
import json
import os
import shlex
import sys
import warnings
from collections.abc import Callable
from pathlib import Path
from typing import Annotated, Any

import typer
from rich.console import Console

from ganframe import __version__
from ganframe.errors import UserError

app = typer.Typer(
    name="ganframe",
    help="Train GANs from TOML recipes, extended by plugins.",
    no_args_is_help=True,
    add_completion=False,
    pretty_exceptions_enable=False,
    rich_markup_mode=None,
)

_state: dict[str, Any] = {"debug": False, "disabled": []}
out = Console(soft_wrap=True)
err = Console(stderr=True, soft_wrap=True)


def _host() -> Any:
    """Load plugins once; a broken plugin becomes one warning line, never a crash."""
    from ganframe.plugins import PluginWarning, get_host

    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always", PluginWarning)
        host = get_host(_state["disabled"] or None)
    for w in caught:
        if issubclass(w.category, PluginWarning):
            err.print(f"warning: {w.message}", style="yellow", highlight=False)
    return host


_USER_FS_ERRORS = {errno.ENOSPC, errno.EDQUOT, errno.EROFS, errno.EACCES, errno.EPERM}


def _internal(exc: BaseException) -> BaseException:
    """Anything but a user error is a bug: one line, traceback only with --debug."""
    if _state["debug"]:
        return exc
    err.print(
        f"internal error: {type(exc).__name__}: {exc}\nThis is a bug in ganframe or "
        "a plugin; run again with --debug for the traceback and report it.",
        style="red",
        highlight=False,
        markup=False,
    )
    return typer.Exit(1)


def guarded(fn: Callable[..., Any]) -> Callable[..., Any]:
    """Map exceptions to exit codes: UserError 2, KeyboardInterrupt 130, other 1; show
    ganframe's own warnings as one line each."""

    @functools.wraps(fn)
    def wrapper(*args: Any, **kwargs: Any) -> Any:
        def one_line(message, category, filename, lineno, file=None, line=None):
            if category.__name__ in ("PluginVersionWarning", "PluginWarning"):
                err.print(f"warning: {message}", style="yellow", highlight=False, markup=False)
            else:
                original(message, category, filename, lineno, file, line)

        original = warnings.showwarning
        warnings.showwarning = one_line
        try:
            return fn(*args, **kwargs)
        except UserError as exc:
            err.print(f"error: {exc}", style="red", highlight=False, markup=False)
            raise typer.Exit(2) from None
        except OSError as exc:
            if exc.errno not in _USER_FS_ERRORS:
                raise _internal(exc) from None
            err.print(
                f"error: cannot write {exc.filename or 'a file'}: {exc.strerror}. Free some "
                "space or choose another --out; files written before are intact, and a run "
                "can continue with --resume.",
                style="red",
                highlight=False,
                markup=False,
            )
            raise typer.Exit(2) from None
        except KeyboardInterrupt:
            err.print("interrupted", style="yellow")
            raise typer.Exit(130) from None
        except (typer.Exit, typer.Abort, SystemExit):
            raise
        except Exception as exc:
            raise _internal(exc) from None
        finally:
            warnings.showwarning = original

    return wrapper


def _version_cb(value: bool) -> None:
    if value:
        out.print(f"ganframe {__version__}")
        raise typer.Exit()


@app.callback()
def _main(
    debug: Annotated[
        bool, typer.Option("--debug", help="Show tracebacks of internal errors.")
    ] = False,
    disable_plugin: Annotated[
        list[str] | None,
        typer.Option(
            "--disable-plugin",
            "-p",
            metavar="NAME",
            help="Do not load this plugin (repeatable; also GANFRAME_DISABLE_PLUGINS=a,b).",
        ),
    ] = None,
    version: Annotated[
        bool, typer.Option("--version", callback=_version_cb, is_eager=True, help="Print version.")
    ] = False,
) -> None:
    _state["debug"] = debug
    _state["disabled"] = list(disable_plugin or [])


SetOpt = Annotated[
    list[str] | None,
    typer.Option("--set", "-s", metavar="KEY=VALUE", help="Override a recipe key (TOML value)."),
]


@app.command()
@guarded
def run(
    recipe: Annotated[str, typer.Argument(help="Recipe file, or name of a registered recipe.")],
    set_: SetOpt = None,
    out_dir: Annotated[
        Path | None, typer.Option("--out", "-o", help="Run folder (default runs/<name>).")
    ] = None,
    resume: Annotated[bool, typer.Option(help="Continue the run in the folder.")] = False,
    force: Annotated[
        bool, typer.Option(help="Start over in a folder that holds a run (deletes it).")
    ] = False,
    device: Annotated[str | None, typer.Option(help="auto, cpu, cuda, cuda:N or mps.")] = None,
    max_steps: Annotated[
        int | None, typer.Option(help="Stop after this many steps in total (smoke runs).")
    ] = None,
    quiet: Annotated[bool, typer.Option("--quiet", "-q", help="Log lines, no live bar.")] = False,
    nproc: Annotated[
        int,
        typer.Option(help="Train in N processes (torch.distributed; gloo on CPU, nccl on GPU)."),
    ] = 1,
) -> None:
    """Train a recipe; writes recipe.toml, metrics.jsonl, checkpoints/ and samples/."""
    if nproc < 1:
        raise UserError(f"--nproc must be at least 1, not {nproc}.")
    if nproc > 1 and "WORLD_SIZE" not in os.environ:
        from ganframe.distributed import launch

        _host()  # validate the recipe once, here, before starting any worker
        from ganframe import api

        api.load_recipe(recipe, set_)
        raise typer.Exit(launch(nproc, _without_nproc(sys.argv[1:])))
    _host()
    from ganframe import api
    from ganframe.progress import RichProgress

    resolved = api.load_recipe(recipe, set_)
    from ganframe.training import Interrupted

    display = RichProgress(err, quiet=quiet)
    try:
        result = api.train(
            resolved,
            out=out_dir,
            resume=resume,
            force=force,
            device=device,
            max_steps=max_steps,
            progress=display.as_progress(),
        )
    except Interrupted as stop:
        display.close()
        folder = stop.checkpoint.parent.parent
        sets = "".join(f" --set {shlex.quote(x)}" for x in set_ or [])
        err.print(
            f"interrupted at step {stop.step}; checkpoint written to {stop.checkpoint}\n"
            f"resume with: ganframe run {shlex.quote(recipe)}{sets} --out "
            f"{shlex.quote(str(folder))} --resume",
            highlight=False,
            markup=False,
        )
        raise typer.Exit(stop.exit_code) from None
    finally:
        display.close()
    if int(os.environ.get("RANK", "0")) != 0:
        return
    how = "stopped at --max-steps" if result.stopped_early else "finished"
    out.print(f"run {how} at step {result.step}; run folder: {result.out}", highlight=False)
    if result.checkpoint is not None:
        out.print(f"checkpoint: {result.checkpoint}", highlight=False)
        out.print(
            f"sample with: ganframe sample {result.checkpoint} -n 64 -o samples.png",
            highlight=False,
        )


def _without_nproc(argv: list[str]) -> list[str]:
    out_args, skip = [], False
    for arg in argv:
        if skip:
            skip = False
        elif arg == "--nproc":
            skip = True
        elif not arg.startswith("--nproc="):
            out_args.append(arg)
    return out_args


@app.command()
@guarded
def validate(
    recipe: Annotated[str, typer.Argument(help="Recipe file or registered recipe name.")],
    set_: SetOpt = None,
) -> None:
    """Check a recipe (keys, types, component names and their options) without running it."""
    _host()
    from ganframe import api

    resolved = api.load_recipe(recipe, set_)
    api.check_requirements(resolved)
    phases = resolved.recipe.phase_list()
    out.print(
        f"{resolved.source}: ok ({resolved.name}: {len(phases)} phase(s): "
        + ", ".join(p.name for p in phases)
        + ")",
        highlight=False,
    )


@app.command()
@guarded
def sample(
    checkpoint: Annotated[Path, typer.Argument(help="Checkpoint file or run folder.")],
    n: Annotated[int, typer.Option("-n", help="Number of samples.")] = 64,
    output: Annotated[
        Path, typer.Option("--out", "-o", help="Output file; its suffix picks the format.")
    ] = Path("samples.png"),
    seed: Annotated[int, typer.Option(help="Seed of the latent draws.")] = 0,
    temperature: Annotated[
        float | None, typer.Option(help="Sampling temperature (text generators).")
    ] = None,
    top_k: Annotated[int | None, typer.Option(help="Top-k sampling (text generators).")] = None,
    constrained: Annotated[
        bool | None,
        typer.Option(
            "--constrained/--no-constrained",
            help="Force the form's punctuation (text generators that support it).",
        ),
    ] = None,
    device: Annotated[str, typer.Option(help="Device to generate on.")] = "cpu",
) -> None:
    """Generate samples from a checkpoint alone (no recipe or data needed)."""
    _host()
    from ganframe import api

    ckpt = api.load_checkpoint(checkpoint, device=device)
    x = api.sample(
        ckpt, n, seed=seed, temperature=temperature, top_k=top_k, constrained=constrained
    )
    path = api.write_samples(x, output, ckpt)
    out.print(f"wrote {n} samples to {path}", highlight=False)


@app.command("eval")
@guarded
def eval_(
    checkpoint: Annotated[Path, typer.Argument(help="Checkpoint file or run folder.")],
    metric: Annotated[
        list[str] | None, typer.Option("--metric", "-m", help="Metric type (repeatable).")
    ] = None,
    seed: Annotated[int, typer.Option(help="Seed of the generated samples.")] = 0,
    as_json: Annotated[bool, typer.Option("--json", help="Print JSON.")] = False,
) -> None:
    """Evaluate metrics on a checkpoint (the recipe's [[metrics]] unless --metric is given)."""
    _host()
    from ganframe import api

    results = api.evaluate(checkpoint, metric, seed=seed)
    if as_json:
        out.print_json(json.dumps(results))
        return
    for name, values in results.items():
        out.print(f"[bold]{name}[/]")
        for k, v in values.items():
            out.print(f"  {k}: {v:.6g}" if isinstance(v, float) else f"  {k}: {v}")


@app.command("list-plugins")
@guarded
def list_plugins(
    as_json: Annotated[bool, typer.Option("--json", help="Print JSON.")] = False,
) -> None:
    """List plugins, their status and the components they register."""
    from ganframe.registry import KINDS

    host = _host()
    rows = [p.as_json(host.registry) for p in host.plugins]
    if as_json:
        sys.stdout.write(json.dumps(rows, indent=2) + "\n")
        return
    from rich.table import Table

    table = Table(title="ganframe plugins")
    table.add_column("plugin")
    table.add_column("version")
    table.add_column("status")
    for kind in KINDS:
        table.add_column(kind + "s")
    for row in rows:
        status = row["status"]
        style = "green" if status == "ok" else ("red" if status.startswith("failed") else "yellow")
        table.add_row(
            row["name"],
            row["version"],
            f"[{style}]{status}[/]",
            *(", ".join(row["components"][k]) for k in KINDS),
        )
    out.print(table)


@app.command()
@guarded
def recipes(as_json: Annotated[bool, typer.Option("--json", help="Print JSON.")] = False) -> None:
    """List the recipes that installed plugins ship (run them by name)."""
    host = _host()
    items = [
        {"name": r.name, "plugin": r.plugin, "summary": r.summary} for r in host.registry.recipes
    ]
    if as_json:
        sys.stdout.write(json.dumps(items, indent=2) + "\n")
        return
    from rich.table import Table

    table = Table(title="registered recipes")
    for col in ("name", "plugin", "summary"):
        table.add_column(col)
    for item in items:
        table.add_row(item["name"], item["plugin"], item["summary"])
    out.print(table)


@app.command("new-plugin")
@guarded
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
    from ganframe.scaffold import new_plugin as scaffold

    path = scaffold(name, directory, [k.strip() for k in kinds.split(",") if k.strip()])
    out.print(f"created plugin project {path}", highlight=False)
    out.print(f"next: pip install -e {path} && pytest {path}", highlight=False)


@app.command()
@guarded
def schema() -> None:
    """Print the JSON Schema of recipes (core plus installed plugins), for editors."""
    from ganframe.schema import recipe_schema

    host = _host()
    sys.stdout.write(json.dumps(recipe_schema(host.registry), indent=2) + "\n")


def main() -> None:
    if int(os.environ.get("WORLD_SIZE", "1")) <= 1:
        app()
        return
    # A worker of a multi-process run: leave without C++ static destructors, which can
    # abort in gloo's teardown ("terminate called without an active exception") after the
    # work is done and written, turning a finished run into a failed one.
    code = 0
    try:
        app()
    except SystemExit as exc:
        code = exc.code if isinstance(exc.code, int) else (0 if exc.code is None else 1)
    sys.stdout.flush()
    sys.stderr.flush()
    os._exit(code)


if __name__ == "__main__":
    main()
