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
import traceback
import warnings
from collections.abc import Callable
from pathlib import Path
from typing import Annotated, Any

import typer
from rich.console import Console
from typer.core import TyperGroup

from ganframe.errors import PluginError, UserError
from ganframe.textsafe import printable
from ganframe.version import __version__

#: Click's Context and Command, as typer provides them (recent typer vendors its own click,
#: so ``import click`` may fail): annotations only.
Context = Command = Any


class _WithPluginCommands(TyperGroup):
    """The command group, plus the subcommands plugins register (``register_commands``).

    Plugin commands are looked up only when a name is not a core command, or when the help
    lists every command, so ``ganframe run ...`` never imports a plugin's command module.
    Click resolves the subcommand (and prints ``--help``) before the group's own callback
    runs, so ``-p NAME`` is picked out of the raw arguments here.
    """

    def parse_args(self, ctx: Context, args: list[str]) -> list[str]:
        disabled, i, debug = [], 0, False
        while i < len(args):
            arg = args[i]
            if arg in ("-p", "--disable-plugin"):
                disabled += args[i + 1 : i + 2]
                i += 2
                continue
            debug = debug or arg == "--debug"  # plugin commands load before _main runs
            if arg.startswith("--disable-plugin="):
                disabled.append(arg.split("=", 1)[1])
            elif arg.startswith("-p") and len(arg) > 2:
                disabled.append(arg[2:])
            elif not arg.startswith("-"):
                break  # the command's name; what follows are its own arguments
            i += 1
        _state["disabled"], _state["debug"] = disabled, debug
        return super().parse_args(ctx, args)

    def list_commands(self, ctx: Context) -> list[str]:
        core = super().list_commands(ctx)
        return core + sorted(n for n in _plugin_specs(ctx) if n not in core)

    def get_command(self, ctx: Context, cmd_name: str) -> Command | None:
        from ganframe.helpstyle import house_style

        found = super().get_command(ctx, cmd_name)
        # help as RECIPE and --out PATH, not {recipe} and <path>, for plugin commands too
        return house_style(found if found is not None else _plugin_command(ctx, cmd_name))


app = typer.Typer(
    name="ganframe",
    help="Train GANs from TOML recipes, extended by plugins.",
    cls=_WithPluginCommands,
    no_args_is_help=True,
    add_completion=False,
    pretty_exceptions_enable=False,
    rich_markup_mode=None,
)

_state: dict[str, Any] = {"debug": False, "disabled": []}
out = Console(soft_wrap=True)
err = Console(stderr=True, soft_wrap=True)
#: Plugin commands: (disabled plugins, the host they came from, specs by name), and the
#: click commands built from them.
_plugin_specs_cache: tuple[tuple[str, ...], Any, dict[str, Any]] | None = None
_plugin_built: dict[str, Command | None] = {}


def _host() -> Any:
    """Load plugins once; a broken plugin becomes one warning line, never a crash."""
    from ganframe.plugins import PluginWarning, get_host

    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always", PluginWarning)
        host = get_host(_state["disabled"] or None)
    for w in caught:
        if issubclass(w.category, PluginWarning):
            err.print(f"warning: {printable(w.message)}", style="yellow", highlight=False,
                      markup=False)
            _debug_details(getattr(w.message, "details", ""))
    return host


def _debug_details(text: str) -> None:
    """Under ``--debug``, the traceback behind a warning or a plugin's error."""
    if _state["debug"] and text:
        err.print(text.rstrip(), highlight=False, markup=False)


def _plugin_specs(ctx: Context) -> dict[str, Any]:
    """Plugin command specs by name, for the plugins this invocation has not disabled.

    A name the core uses, or that an earlier plugin (in listing order) took, is refused with
    one warning line."""
    global _plugin_specs_cache
    from ganframe import plugins

    key = tuple(_state["disabled"])
    cached = _plugin_specs_cache
    if cached is not None and cached[0] == key and cached[1] is plugins.current_host():
        return cached[2]
    host = _host()
    _plugin_built.clear()
    group = ctx.command
    core = set(TyperGroup.list_commands(group, ctx)) if isinstance(group, TyperGroup) else set()
    specs: dict[str, Any] = {}
    for spec in host.registry.commands:
        taken = "a ganframe command" if spec.name in core else (
            f"plugin {specs[spec.name].plugin!r}" if spec.name in specs else None)
        if taken:
            err.print(printable(f"warning: plugin {spec.plugin!r} registers command "
                                f"{spec.name!r}, which {taken} already provides; it is not "
                                "available."),
                      style="yellow", highlight=False, markup=False)
            continue
        specs[spec.name] = spec
    _plugin_specs_cache = (key, host, specs)
    return specs


def _plugin_command(ctx: Context, name: str) -> Command | None:
    """The click command of a plugin's registered function or typer app, built once."""
    if name not in _plugin_built:
        spec = _plugin_specs(ctx).get(name)
        _plugin_built[name] = None if spec is None else _build_plugin_command(name, spec)
    return _plugin_built[name]


def _build_plugin_command(name: str, spec: Any) -> Command | None:
    try:
        target = spec.resolve()
        if isinstance(target, typer.Typer):  # a group, even with a single subcommand
            command: Command = typer.main.get_group(target)
        else:
            single = typer.Typer(add_completion=False, rich_markup_mode=None,
                                 pretty_exceptions_enable=False)
            single.command(name, short_help=spec.summary or None)(target)
            command = typer.main.get_command(single)
    except Exception as exc:  # a broken plugin command is a warning, never a crash
        err.print(printable(
            f"warning: command {name!r} of plugin {spec.plugin!r} could not be loaded: "
            + (str(exc) if isinstance(exc, PluginError) else f"{type(exc).__name__}: {exc}")),
            style="yellow", highlight=False, markup=False,
        )
        _debug_details("".join(traceback.format_exception(exc)))
        return None
    command.name = name
    if spec.summary and not command.short_help:
        command.short_help = spec.summary
    # Errors of the command (or of any subcommand of a group) exit as the core's do.
    command.invoke = guarded(command.invoke)  # type: ignore[method-assign]
    return command


_USER_FS_ERRORS = {errno.ENOSPC, errno.EDQUOT, errno.EROFS, errno.EACCES, errno.EPERM}
_FULL_OR_READ_ONLY = {errno.ENOSPC, errno.EDQUOT, errno.EROFS}


def _fs_error_text(exc: OSError) -> str:
    """A file-system error as what could not be done: a full or read-only disk is always a
    write; a permission error is a read when the file (or a folder on its way) cannot be
    read, else a write, so an unreadable data folder is not reported as "cannot write"."""
    name = exc.filename or "a file"
    if exc.errno in _FULL_OR_READ_ONLY or _denied(exc.filename) == "write":
        return (f"cannot write {name}: {exc.strerror}. Free some space, fix the permissions or "
                "choose another --out; files written before are intact, and a run can "
                "continue with --resume.")
    if _denied(exc.filename) == "read":
        return (f"cannot read {name}: {exc.strerror}. Check that you may read it and open "
                "every folder on its path (data, recipes and checkpoints are read; only the "
                "run folder and output files are written).")
    return (f"cannot read or write {name}: {exc.strerror}. Check the permissions of the file "
            "and of the folders on its path.")


def _exists(path: Path) -> bool:
    try:
        return path.exists()
    except OSError:  # a folder on the way cannot be searched
        return False


def _denied(filename: Any) -> str:
    """Which access the permissions refuse for ``filename``: "read", "write" or "" (unknown)."""
    if not filename:
        return ""
    path = Path(os.fsdecode(filename))
    if _exists(path):
        mode = os.R_OK | (os.X_OK if path.is_dir() else 0)
        return "read" if not os.access(path, mode) else (
            "write" if not os.access(path, os.W_OK) else "")
    folder = path.parent
    while not _exists(folder) and folder != folder.parent:
        folder = folder.parent
    if not os.access(folder, os.X_OK):
        return "read"
    return "write" if not os.access(folder, os.W_OK) else ""


def _internal(exc: BaseException) -> BaseException:
    """Anything but a user error is a bug: one line, traceback only with --debug."""
    if _state["debug"]:
        return exc
    err.print(
        f"internal error: {type(exc).__name__}: {printable(exc)}\nThis is a bug in ganframe "
        "or a plugin; run again with --debug for the traceback and report it.",
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
            if category.__name__ in ("PluginVersionWarning", "PluginWarning",
                                     "UntrustedOptionsWarning", "PerformanceWarning"):
                err.print(f"warning: {printable(message)}", style="yellow", highlight=False,
                          markup=False)
                _debug_details(getattr(message, "details", ""))
            else:
                original(message, category, filename, lineno, file, line)

        original = warnings.showwarning
        warnings.showwarning = one_line
        try:
            return fn(*args, **kwargs)
        except PluginError as exc:  # a plugin's code failed: its traceback under --debug
            _debug_details("".join(traceback.format_exception(exc)))
            err.print(f"error: {printable(exc)}", style="red", highlight=False, markup=False)
            raise typer.Exit(2) from None
        except UserError as exc:
            err.print(f"error: {printable(exc)}", style="red", highlight=False, markup=False)
            raise typer.Exit(2) from None
        except OSError as exc:
            if exc.errno not in _USER_FS_ERRORS:
                raise _internal(exc) from None
            err.print(
                f"error: {printable(_fs_error_text(exc))}",
                style="red",
                highlight=False,
                markup=False,
            )
            raise typer.Exit(2) from None
        except KeyboardInterrupt as exc:  # a second signal: 130 for SIGINT, 143 for SIGTERM
            err.print("interrupted", style="yellow")
            raise typer.Exit(getattr(exc, "exit_code", 130)) from None
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
    quiet: Annotated[
        bool,
        typer.Option("--quiet", "-q", help="Plain lines, one per log interval (what a pipe or "
                     "a log file gets), no live bar."),
    ] = False,
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
    from ganframe.loop.trainer import Interrupted

    display = RichProgress(err, quiet=quiet)
    try:
        result = api.train(
            resolved,
            out=out_dir,
            resume=resume,
            force=force,
            device=device,
            max_steps=max_steps,
            progress=display,
        )
    except Interrupted as stop:
        display.close()
        _interrupted(stop, recipe, set_ or [])
        raise typer.Exit(stop.exit_code) from None
    finally:
        display.close()
    if int(os.environ.get("RANK", "0")) != 0:
        return
    _finished(result, display.data_kind)


def _finished(result: Any, data_kind: str) -> None:
    """Where the run's files are and the commands that use them (sample, report, TensorBoard);
    the sample file's suffix is the data kind's default writer's (``.txt`` for text)."""
    from ganframe.builtin.loggers import TB_FOLDER

    how = "stopped at --max-steps" if result.stopped_early else "finished"
    # paths carry the recipe's name: printed as text, never as markup or terminal codes
    _say(f"run {how} at step {result.step}; run folder: {result.out}")
    if result.checkpoint is not None:
        writer = _host().registry.default_writer(data_kind) if data_kind else None
        suffix = writer.suffix if writer is not None else ".png"
        _say(f"checkpoint: {result.checkpoint}")
        _say(f"sample with: ganframe sample {shlex.quote(str(result.checkpoint))} -n 64 "
             f"-o samples{suffix}")
    if (result.out / TB_FOLDER).is_dir():
        _say(f"TensorBoard logs: {result.out / TB_FOLDER} (view with: tensorboard --logdir "
             f"{shlex.quote(str(result.out / TB_FOLDER))})")
    _say(f"report with: ganframe report {shlex.quote(str(result.out))} -o report.html")


def _interrupted(stop: Any, recipe: str, sets: list[str]) -> None:
    """Where a stopped run's checkpoint is, and the command that continues it."""
    folder = stop.checkpoint.parent.parent
    given = "".join(f" --set {shlex.quote(x)}" for x in sets)
    err.print(printable(
        f"interrupted at step {stop.step} after the run finished; its final checkpoint "
        f"is {stop.checkpoint}" if stop.finished else
        f"interrupted at step {stop.step}; checkpoint written to {stop.checkpoint}\n"
        f"resume with: ganframe run {shlex.quote(recipe)}{given} --out "
        f"{shlex.quote(str(folder))} --resume"),
        highlight=False,
        markup=False,
    )


def _say(text: str) -> None:
    """One line of user-derived text on stdout: control characters escaped, no markup."""
    out.print(printable(text), highlight=False, markup=False)


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
    _say(f"{resolved.source}: ok ({resolved.name}: {len(phases)} phase(s): "
         + ", ".join(p.name for p in phases) + ")")


# ``ganframe sample``'s name-or-path argument and latent-tool options (ganframe.latent).
SampleRef = Annotated[
    str,
    typer.Argument(
        metavar="CHECKPOINT",
        help="Checkpoint file, run folder, generator file (ganframe export) or the name of a "
        "pretrained generator (ganframe models). An existing file or folder wins over a "
        "name; plugin:name always means the pretrained generator.",
    ),
]
SampleCount = Annotated[
    int | None,
    typer.Option("-n", help="Number of samples (1 to 1,000,000; default 64), or of rows with "
                 "--interpolate (default 8) or of walking samples with --walk (default 16)."),
]
TruncationOpt = Annotated[
    float | None,
    typer.Option(help="Truncation trick: redraw every latent value beyond this magnitude "
                 "(e.g. 0.7; standard-normal latents only)."),
]
InterpolateOpt = Annotated[
    bool,
    typer.Option("--interpolate", help="Rows of --steps images between two noise vectors "
                 "(two classes with --labels A,B for a conditional generator)."),
]
WalkOpt = Annotated[
    bool,
    typer.Option("--walk", help="A latent walk of --steps frames: an animated .gif, or a .png "
                 "with one row per sample."),
]
StepsOpt = Annotated[
    int | None,
    typer.Option(help="Images per interpolation (default 10) or frames of a walk (default "
                 "24)."),
]
PathOpt = Annotated[
    str, typer.Option("--path", help="Interpolation path: slerp (great circle) or line.")
]


@app.command()
@guarded
def sample(
    checkpoint: SampleRef,
    n: SampleCount = None,
    output: Annotated[
        Path, typer.Option("--out", "-o", help="Output file; its suffix picks the format.")
    ] = Path("samples.png"),
    seed: Annotated[int, typer.Option(help="Seed of the latent draws.")] = 0,
    labels: Annotated[
        str | None,
        typer.Option(
            "--labels",
            metavar="LABELS",
            help="Classes to draw, for a conditional generator: one class (3), a "
            "comma-separated list cycled over the samples (0,1,2), or 'all' (every class in "
            "turn, -n rounded up to a multiple of the number of classes). A .png grid then "
            "shows one row per class. Default: random classes.",
        ),
    ] = None,
    option: Annotated[
        list[str] | None,
        typer.Option(
            "--option",
            metavar="KEY=VALUE",
            help="A sampling option the generator declares (TOML value; repeatable), e.g. "
            "--option temperature=0.8; an unknown one is refused with the list of accepted "
            "ones.",
        ),
    ] = None,
    temperature: Annotated[
        float | None, typer.Option(help="Shorthand for --option temperature=VALUE.")
    ] = None,
    top_k: Annotated[int | None, typer.Option(help="Shorthand for --option top_k=VALUE.")] = None,
    top_p: Annotated[
        float | None, typer.Option(help="Shorthand for --option top_p=VALUE.")
    ] = None,
    constrained: Annotated[
        bool | None,
        typer.Option(
            "--constrained/--no-constrained",
            help="Shorthand for --option constrained=true/false.",
        ),
    ] = None,
    device: Annotated[str, typer.Option(help="Device to generate on.")] = "cpu",
    truncation: TruncationOpt = None,
    interpolate: InterpolateOpt = False,
    walk: WalkOpt = False,
    steps: StepsOpt = None,
    path: PathOpt = "slerp",
) -> None:
    """Generate samples from a checkpoint, a generator file or a pretrained generator (no
    recipe or data needed); uses the sampling options the file recommends unless given."""
    if n is not None and not 0 < n <= MAX_SAMPLES:
        raise UserError(f"-n {n}: give a number of samples from 1 to {MAX_SAMPLES:,}; for "
                        "more, run 'ganframe sample' several times with different --seed.")
    if steps is not None and not 2 <= steps <= 1000:
        raise UserError(f"--steps {steps}: give a number from 2 to 1000.")
    _check_seed(seed)
    shorthands = {"temperature": temperature, "top_k": top_k, "top_p": top_p,
                  "constrained": constrained}
    options = _sampling_options(option or [], shorthands)
    _host()
    from ganframe.sample_command import SampleRequest, run

    request = SampleRequest(checkpoint, output, n, seed, _parse_labels(labels), options,
                            device, truncation, interpolate, walk, steps, path)
    count, written = run(request, lambda text: err.print(
        printable(f"note: {text}"), highlight=False, markup=False))
    _say(f"wrote {count} samples to {written}")


#: ``ganframe sample -n`` at most: the samples are drawn in one batch and held in memory.
MAX_SAMPLES = 1_000_000
#: Seeds torch's generators accept without overflow.
MAX_SEED = 2**63 - 1


def _check_seed(seed: int) -> None:
    if not 0 <= seed <= MAX_SEED:
        raise UserError(f"--seed {seed}: give a whole number from 0 to 2**63 - 1.")


def _sampling_options(items: list[str], shorthands: dict[str, Any]) -> dict[str, Any]:
    """``--option KEY=VALUE`` items (values parsed as TOML literals, like ``--set``) and the
    shorthand flags given; the generator validates them, the CLI only collects them."""
    from ganframe.recipe import parse_override

    options = {k: v for k, v in shorthands.items() if v is not None}
    for item in items:
        key, sep, raw = item.partition("=")
        key = key.strip()
        if not sep or not key or not raw.strip():
            raise UserError(
                f"--option {item!r}: expected KEY=VALUE, e.g. --option temperature=0.8."
            )
        _, value = parse_override(f"option={raw}")
        if key in options and options[key] != value:
            raise UserError(
                f"--option {item!r}: {key} is already given as {options[key]!r}; give it once."
            )
        options[key] = value
    return options


def _parse_labels(text: str | None) -> int | str | list[int] | None:
    """``--labels``: ``3``, ``0,1,2`` or ``all`` (checked against the generator later)."""
    if text is None:
        return None
    parts = [p.strip() for p in text.split(",")]
    if len(parts) == 1 and parts[0].lower() == "all":
        return "all"
    try:
        values = [int(p) for p in parts]
    except ValueError:
        raise UserError(
            f"--labels {text!r}: expected a class number (3), a comma-separated list (0,1,2) "
            "or all (every class in turn)."
        ) from None
    return values[0] if len(values) == 1 else values


@app.command("eval")
@guarded
def eval_(
    checkpoint: Annotated[Path, typer.Argument(help="Checkpoint file or run folder.")],
    metric: Annotated[
        list[str] | None,
        typer.Option(
            "--metric",
            "-m",
            help="Metric type (repeatable); one the recipe lists keeps the recipe's options.",
        ),
    ] = None,
    seed: Annotated[int, typer.Option(help="Seed of the generated samples.")] = 0,
    set_: Annotated[
        list[str] | None,
        typer.Option(
            "--set",
            "-s",
            help="METRIC.option=value for a metric evaluated here, e.g. "
            "mnist-fid.n_samples=10000, or data.KEY=VALUE for the data metrics compare with, "
            "e.g. data.path=poems.txt (repeatable). A checkpoint that is not in a run folder "
            "made here never chooses a data path: give it.",
        ),
    ] = None,
    as_json: Annotated[bool, typer.Option("--json", help="Print JSON.")] = False,
) -> None:
    """Evaluate metrics on a checkpoint (the recipe's [[metrics]] unless --metric is given)."""
    _check_seed(seed)
    _host()
    from ganframe import api

    results = api.evaluate(checkpoint, metric, seed=seed, overrides=set_ or [])
    if as_json:
        out.print_json(json.dumps(results))
        return
    for name, values in results.items():
        out.print(printable(name), style="bold", highlight=False, markup=False)
        for k, v in values.items():
            _say(f"  {k}: {v:.6g}" if isinstance(v, float) else f"  {k}: {v}")


@app.command("list-plugins")
@guarded
def list_plugins(
    as_json: Annotated[bool, typer.Option("--json", help="Print JSON.")] = False,
) -> None:
    """List plugins, their status and what they register (components, sample writers,
    recipes, commands)."""
    from ganframe.plugin_listing import plugin_rows, render

    rows = plugin_rows(_host())
    if as_json:
        sys.stdout.write(json.dumps(rows, indent=2) + "\n")
        return
    render(rows, out)


@app.command()
@guarded
def recipes(as_json: Annotated[bool, typer.Option("--json", help="Print JSON.")] = False) -> None:
    """List the recipes that installed plugins ship (run them by name)."""
    from ganframe.recipe_facts import recipe_summary

    host = _host()
    # the summary is made from the recipe file (its description, steps, phases): never stale
    items = [
        {"name": r.name, "plugin": r.plugin, "summary": recipe_summary(r)}
        for r in host.registry.recipes
    ]
    if as_json:
        sys.stdout.write(json.dumps(items, indent=2) + "\n")
        return
    from rich.table import Table

    # two columns, the plugin under the name: fits 80 columns without cutting a name
    table = Table(title="registered recipes")
    table.add_column("recipe (plugin)", overflow="fold")
    table.add_column("summary", overflow="fold")
    for item in items:
        name = _cell(item["name"], "bold")
        name.append("\n" + printable(item["plugin"]), style="dim")
        table.add_row(name, _cell(item["summary"]))
    out.print(table)


def _cell(text: Any, style: str = "") -> Any:
    """A table cell showing ``text`` as it is: no markup, control characters escaped."""
    from rich.text import Text

    return Text(printable(text), style=style)


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
