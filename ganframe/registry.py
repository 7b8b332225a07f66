"""What the plugins registered: component specs, shipped recipes and sample writers.

The registry is plain data. It knows nothing about pluggy (see :mod:`ganframe.plugins`) and
nothing about training; the listing command and recipe validation both read it.
"""

from __future__ import annotations

import difflib
import importlib
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from pydantic import BaseModel, ConfigDict

from ganframe.errors import UserError


@dataclass(frozen=True)
class ComponentKind:
    """One kind of registered component, with everything the host, ``list-plugins``, the JSON
    schema and the generated docs need to know about it. Adding a kind is one entry in
    :data:`COMPONENT_KINDS` (plus its hook spec and where recipes choose it)."""

    name: str  #: singular, as in ``Registry.get(kind, name)`` and in error messages
    hook: str  #: the hook plugins implement to register components of this kind
    plural: str  #: column heading in ``ganframe list-plugins``
    heading: str  #: section heading in the generated recipe reference
    place: str  #: where a recipe chooses one (markdown, for the docs)
    contract: str  #: what the factory is called with and returns
    #: The building blocks of a model and its data, chosen by a recipe's top-level tables:
    #: each has a column of its own in ``list-plugins``, is always a key of its ``--json``
    #: rows and has a ``ganframe new-plugin`` template. The others (optimisers, schedules)
    #: are listed where a plugin registers some.
    primary: bool = True


COMPONENT_KINDS: tuple[ComponentKind, ...] = (
    ComponentKind("generator", "register_generators", "generators", "Generators",
                  "[generator]", "factory(config, ctx) -> torch.nn.Module"),
    ComponentKind("critic", "register_critics", "critics", "Critics",
                  "[critic]", "factory(config, ctx) -> torch.nn.Module"),
    ComponentKind("loss", "register_losses", "losses", "Losses (objectives)",
                  "[loss]` or a phase's `loss = { type = ... }",
                  "factory(config, ctx) -> Objective"),
    ComponentKind("dataset", "register_datasets", "datasets", "Datasets",
                  "[data]", "factory(config, ctx) -> Dataset"),
    ComponentKind("metric", "register_metrics", "metrics", "Metrics",
                  "[[metrics]]", "factory(config, ctx) -> Metric"),
    ComponentKind("optimizer", "register_optimizers", "optimizers", "Optimisers",
                  "[optim.generator]` and `[optim.critic]",
                  "factory(config, params) -> torch.optim.Optimizer", primary=False),
    ComponentKind("schedule", "register_schedules", "schedules", "Learning-rate schedules",
                  "[optim.generator.schedule]` and `[optim.critic.schedule]",
                  "factory(config) -> schedule with factor(step, total) -> float",
                  primary=False),
    ComponentKind("logger", "register_loggers", "loggers", "Loggers",
                  "[[loggers]]", "factory(config, ctx) -> ganframe.loop.events.Callback",
                  primary=False),
    ComponentKind("callback", "register_callbacks", "callbacks", "Callbacks",
                  "[[callbacks]]", "factory(config, ctx) -> ganframe.loop.events.Callback",
                  primary=False),
)

#: Every kind by name.
KIND_INFO: dict[str, ComponentKind] = {k.name: k for k in COMPONENT_KINDS}
#: Every kind of component a plugin can register.
ALL_KINDS: tuple[str, ...] = tuple(KIND_INFO)
#: The primary kinds (see :attr:`ComponentKind.primary`): the building blocks of a model
#: and its data. Iterate :data:`ALL_KINDS` to cover optimisers and schedules too.
KINDS: tuple[str, ...] = tuple(k.name for k in COMPONENT_KINDS if k.primary)


class EmptyConfig(BaseModel):
    """Config model for components that take no options (unknown keys are still errors)."""

    model_config = ConfigDict(extra="forbid")


def resolve_ref(ref: Any, what: str) -> Any:
    """Turn a lazy ``"package.module:attr"`` reference into the object; pass others through."""
    if not isinstance(ref, str):
        return ref
    module_name, sep, attr = ref.partition(":")
    if not sep or not module_name or not attr:
        raise ValueError(f"{what}: lazy reference {ref!r} must look like 'package.module:attr'")
    obj: Any = importlib.import_module(module_name)
    for part in attr.split("."):
        obj = getattr(obj, part)
    return obj


@dataclass
class ComponentSpec:
    """One registered component; ``factory`` and ``config`` may still be lazy strings."""

    kind: str
    name: str
    factory: Any
    config: Any
    plugin: str
    version: str
    summary: str = ""

    @property
    def qualified_name(self) -> str:
        return f"{self.plugin}:{self.name}"

    def config_model(self) -> type[BaseModel]:
        model = resolve_ref(self.config, f"{self.kind} {self.qualified_name}")
        if model is None:
            return EmptyConfig
        if not (isinstance(model, type) and issubclass(model, BaseModel)):
            raise TypeError(
                f"{self.kind} {self.qualified_name}: config must be a pydantic model class, "
                f"got {model!r}"
            )
        return model

    def build(self, config: BaseModel, *args: Any) -> Any:
        """Call the factory: ``factory(config, *args)``; what ``args`` are depends on the kind
        (``ctx`` for most, the parameters for an optimiser, nothing for a schedule)."""
        factory = resolve_ref(self.factory, f"{self.kind} {self.qualified_name}")
        return factory(config, *args)


@dataclass
class RecipeSpec:
    name: str
    path: Any
    plugin: str
    summary: str = ""

    def read_text(self) -> str:
        path = Path(self.path) if isinstance(self.path, str) else self.path
        return path.read_text(encoding="utf-8")


@dataclass
class WriterSpec:
    data_kind: str
    suffix: str
    writer: Any
    plugin: str
    summary: str = ""

    def write(self, samples: Any, path: Path, info: dict[str, Any]) -> None:
        resolve_ref(self.writer, f"writer {self.data_kind}{self.suffix}")(samples, path, info)


@dataclass
class CommandSpec:
    """A plugin's ``ganframe`` subcommand; ``command`` may still be a lazy string."""

    name: str
    command: Any
    plugin: str
    summary: str = ""

    def resolve(self) -> Any:
        return resolve_ref(self.command, f"command {self.name!r} of plugin {self.plugin}")


@dataclass
class Registry:
    components: dict[str, list[ComponentSpec]] = field(
        default_factory=lambda: {kind: [] for kind in ALL_KINDS}
    )
    recipes: list[RecipeSpec] = field(default_factory=list)
    writers: list[WriterSpec] = field(default_factory=list)
    commands: list[CommandSpec] = field(default_factory=list)

    # -- registration ---------------------------------------------------------------------
    def add(self, spec: ComponentSpec) -> None:
        same = [s for s in self.components[spec.kind] if s.plugin == spec.plugin]
        if any(s.name == spec.name for s in same):
            raise ValueError(f"registers {spec.kind} {spec.name!r} twice")
        self.components[spec.kind].append(spec)

    def clashes(self) -> list[tuple[str, str, list[str]]]:
        """(kind, name, plugins) for every name registered by more than one plugin."""
        out = []
        for kind, specs in self.components.items():
            by_name: dict[str, list[str]] = {}
            for s in specs:
                by_name.setdefault(s.name, []).append(s.plugin)
            out += [(kind, n, p) for n, p in by_name.items() if len(p) > 1]
        return out

    def drop_plugin(self, plugin: str) -> None:
        for kind in self.components:
            self.components[kind] = [s for s in self.components[kind] if s.plugin != plugin]
        self.recipes = [r for r in self.recipes if r.plugin != plugin]
        self.writers = [w for w in self.writers if w.plugin != plugin]
        self.commands = [c for c in self.commands if c.plugin != plugin]

    # -- lookup ---------------------------------------------------------------------------
    def names(self, kind: str) -> list[str]:
        specs = self.components[kind]
        counts: dict[str, int] = {}
        for s in specs:
            counts[s.name] = counts.get(s.name, 0) + 1
        return sorted(s.name if counts[s.name] == 1 else s.qualified_name for s in specs)

    def get(self, kind: str, name: str) -> ComponentSpec:
        """Find a component by ``name`` or ``plugin:name``; raise :class:`UserError` otherwise."""
        specs = self.components[kind]
        if ":" in name:
            plugin, _, short = name.partition(":")
            found = [s for s in specs if s.plugin == plugin and s.name == short]
        else:
            found = [s for s in specs if s.name == name]
        if len(found) == 1:
            return found[0]
        if len(found) > 1:
            options = " or ".join(f"'{s.qualified_name}'" for s in found)
            plugins = " and ".join(s.plugin for s in found)
            raise UserError(
                f"{kind} type {name!r} is registered by more than one plugin ({plugins}); "
                f"write {options} to choose one."
            )
        available = self.names(kind)
        hint = difflib.get_close_matches(name, available, n=1)
        did_you_mean = f" Did you mean {hint[0]!r}?" if hint else ""
        raise UserError(
            f"unknown {kind} type {name!r}.{did_you_mean} Available: "
            f"{', '.join(available) or '(none)'}. Run 'ganframe list-plugins' to see where "
            "each comes from."
        )

    def recipe(self, name: str) -> RecipeSpec | None:
        found = [r for r in self.recipes if r.name == name or f"{r.plugin}:{r.name}" == name]
        if len(found) > 1:
            options = " or ".join(f"'{r.plugin}:{r.name}'" for r in found)
            raise UserError(f"recipe {name!r} is shipped by more than one plugin; use {options}.")
        return found[0] if found else None

    def writer(self, data_kind: str, suffix: str) -> WriterSpec:
        suffix = suffix.lower()
        for w in self.writers:
            if w.data_kind == data_kind and w.suffix == suffix:
                return w
        known = sorted(w.suffix for w in self.writers if w.data_kind == data_kind)
        raise UserError(
            f"cannot write {data_kind} samples to a {suffix or 'suffix-less'!s} file; "
            f"supported suffixes for {data_kind}: {', '.join(known) or '(none)'}."
        )

    def default_writer(self, data_kind: str) -> WriterSpec | None:
        for w in self.writers:
            if w.data_kind == data_kind:
                return w
        return None


def make_register(registry: Registry, kind: str, plugin: str, version: str) -> Callable[..., None]:
    """The ``register`` callback handed to one plugin's ``register_<kind>s`` hook."""

    def register(name: str, factory: Any, config: Any = None, summary: str = "") -> None:
        if not isinstance(name, str) or not name or ":" in name or any(c.isspace() for c in name):
            raise ValueError(f"invalid {kind} name {name!r} (non-empty, no ':' or spaces)")
        if not (callable(factory) or isinstance(factory, str)):
            raise ValueError(f"{kind} {name!r}: factory must be callable or 'module:attr'")
        if config is not None and not isinstance(config, str):
            if not (isinstance(config, type) and issubclass(config, BaseModel)):
                raise ValueError(f"{kind} {name!r}: config must be a pydantic model class")
        registry.add(ComponentSpec(kind, name, factory, config, plugin, version, summary))

    return register
