"""Hook specifications: the whole contract between ganframe and its plugins.

Every hook follows the callback style of simonw/llm: the plugin receives a ``register``
function and calls it once per component. ``register(name, factory, config=Model, summary=...)``
where ``factory`` is a callable or a lazy ``"package.module:attr"`` string, so the host can list
and validate components without importing any torch code.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import pluggy

PROJECT = "ganframe"

hookspec = pluggy.HookspecMarker(PROJECT)
hookimpl = pluggy.HookimplMarker(PROJECT)

Register = Callable[..., Any]


@hookspec
def register_generators(register: Register) -> None:
    """Register generator networks: ``factory(config, ctx) -> torch.nn.Module``."""


@hookspec
def register_critics(register: Register) -> None:
    """Register critic (discriminator) networks: ``factory(config, ctx) -> torch.nn.Module``."""


@hookspec
def register_losses(register: Register) -> None:
    """Register training objectives: ``factory(config, ctx) -> Objective``."""


@hookspec
def register_datasets(register: Register) -> None:
    """Register datasets: ``factory(config, ctx) -> Dataset``."""


@hookspec
def register_metrics(register: Register) -> None:
    """Register metrics: ``factory(config, ctx) -> Metric``."""


@hookspec
def register_optimizers(register: Register) -> None:
    """Register optimisers: ``factory(config, params) -> torch.optim.Optimizer`` where
    ``params`` is the list of the network's parameters that require gradients. The config
    model must have an ``lr`` field: the loop sets each step's learning rate from it (phases,
    schedules and rollbacks scale it). Recipes choose one in ``[optim.generator]`` /
    ``[optim.critic]``."""


@hookspec
def register_schedules(register: Register) -> None:
    """Register learning-rate schedules: ``factory(config) -> schedule`` where the schedule
    has ``factor(step, total) -> float``, the learning rate's multiplier at ``step`` of the
    current phase of ``total`` steps. It must be a pure function of its arguments (resume
    recomputes it; each phase starts it again). Recipes choose one in
    ``[optim.generator.schedule]`` / ``[optim.critic.schedule]``."""


@hookspec
def register_loggers(register: Register) -> None:
    """Register loggers: ``factory(config, ctx) -> Callback`` (``ganframe.loop.events``), a
    callback that writes the rows it receives in ``on_log`` somewhere (a file, TensorBoard, a
    tracker). Recipes choose them in ``[[loggers]]`` tables; ``jsonl`` when they name none."""


@hookspec
def register_callbacks(register: Register) -> None:
    """Register callbacks: ``factory(config, ctx) -> Callback`` (``ganframe.loop.events``),
    called at the loop's events (run, phase and step ends, checkpoints, interrupts...).
    Recipes choose them in ``[[callbacks]]`` tables, after the core's own and the loggers."""


@hookspec
def register_recipes(register: Register) -> None:
    """Register shipped recipes: ``register(name, path, summary=...)`` with a path to a TOML
    file (a ``pathlib.Path`` or an ``importlib.resources`` traversable)."""


@hookspec
def register_sample_writers(register: Register) -> None:
    """Register sample file formats: ``register(data_kind, suffix, writer, summary=...)`` where
    ``writer(samples, path, info)`` writes a batch of generated samples for a data kind
    (``"image"``, ``"points"``, ``"text"``, ...) to a file with that suffix."""


@hookspec
def register_commands(register: Register) -> None:
    """Register ``ganframe`` subcommands: ``register(name, command, summary=...)`` where
    ``command`` is a function whose parameters are typer-annotated (or a ``typer.Typer`` app
    for a group of subcommands), or a lazy ``"package.module:attr"`` reference to one. The
    module is imported when ``ganframe --help`` lists commands or the command runs, so it
    must import torch inside the function, not at the top. A name the core already uses,
    or that another plugin took first, is refused with a warning."""


@hookspec
def register_pretrained(register: Register) -> None:
    """Register pretrained generators shipped inside the plugin's package, usable by name
    (``ganframe sample NAME``, ``ganframe.api.pretrained(NAME)``, listed by ``ganframe
    models``): ``register(name, path, sha256, summary=..., card={...})`` where ``path`` is a
    generator file written by ``ganframe export`` (a ``pathlib.Path`` or an
    ``importlib.resources`` traversable), ``sha256`` its hex digest (checked on every load,
    so a damaged or replaced file is refused) and ``card`` the figures of its model card
    (``{"fid": 9.1, ...}``: JSON numbers or strings). Added in plugin API 3."""
