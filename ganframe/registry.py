"""What the plugins registered: component specs, shipped recipes and sample writers.

The registry is plain data. It knows nothing about pluggy (see :mod:`ganframe.plugins`) and
nothing about training; the listing command and recipe validation both read it.
"""

from __future__ import annotations

import difflib
import importlib
import inspect
import sys
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from pydantic import BaseModel, ConfigDict

from ganframe.errors import PluginError, UserError, plugin_error, short_path


def closest(word: str, choices: Iterable[str], cutoff: float = 0.6) -> str | None:
    """The choice ``word`` most likely meant: the same but for case, else the closest
    spelling (compared in lower case, so ``raGAN`` finds ``ragan``) at least ``cutoff``
    similar (difflib's ratio)."""
    options = list(choices)
    lower = {c.lower(): c for c in options}
    if word.lower() in lower and lower[word.lower()] != word:
        return lower[word.lower()]
    hint = difflib.get_close_matches(word.lower(), list(lower), n=1, cutoff=cutoff)
    return lower[hint[0]] if hint and lower[hint[0]] != word else None


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
    """Turn a lazy ``"package.module:attr"`` reference into the object; pass others through.

    Errors are the plain exceptions of the import; the specs below turn them into a
    :class:`~ganframe.errors.PluginError` naming the plugin and the component."""
    if not isinstance(ref, str):
        return ref
    module_name, sep, attr = ref.partition(":")
    if not sep or not module_name or not attr:
        raise ValueError(f"{what}: lazy reference {ref!r} must look like 'package.module:attr'")
    obj: Any = importlib.import_module(module_name)
    for part in attr.split("."):
        try:
            obj = getattr(obj, part)
        except AttributeError as exc:
            # strict: a wrong name in a module is more often another name than a typo
            hint = closest(part, [n for n in dir(obj) if not n.startswith("__")], cutoff=0.8)
            if hint is None:
                raise
            raise AttributeError(f"{exc}; did you mean {hint!r}?") from exc
    return obj


def ref_packages(*refs: Any) -> tuple[str, ...]:
    """The top-level packages a plugin's code lives in, from its lazy references and
    callables: where a traceback is searched for the plugin's own line."""
    out: list[str] = []
    for ref in refs:
        if isinstance(ref, str):
            name = ref.partition(":")[0]
        else:
            name = getattr(ref, "__module__", None) or ""
        top = name.split(".")[0]
        if top and top not in out:
            out.append(top)
    return tuple(out)


@dataclass
class Owner:
    """Who registered something, for error messages: the plugin, its distribution and
    version, the ``file.py:LINE`` of the ``register`` call and the plugin's packages."""

    plugin: str
    dist: str = ""
    version: str = ""
    origin: str = ""
    packages: tuple[str, ...] = ()

    def error(self, exc: BaseException, what: str, component: tuple[str, str] | None,
              *refs: Any) -> PluginError:
        packages = tuple(dict.fromkeys((*self.packages, *ref_packages(*refs))))
        return plugin_error(exc, what, plugin=self.plugin, dist=self.dist,
                            version=self.version, component=component, packages=packages,
                            origin=self.origin)

    def load(self, ref: Any, role: str, component: tuple[str, str] | None, what: str) -> Any:
        """``resolve_ref`` whose failure is a PluginError: ``cannot import its factory
        'pkg.mod:Attr'``."""
        try:
            return resolve_ref(ref, what)
        except Exception as exc:
            raise self.error(exc, f"cannot import its {role} {ref!r}", component, ref) from exc


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
    dist: str = ""  #: the distribution that installed the plugin
    origin: str = ""  #: ``file.py:LINE`` of the ``register`` call
    packages: tuple[str, ...] = ()  #: the plugin's top-level packages

    @property
    def qualified_name(self) -> str:
        return f"{self.plugin}:{self.name}"

    @property
    def owner(self) -> Owner:
        return Owner(self.plugin, self.dist, self.version, self.origin, self.packages)

    def config_model(self) -> type[BaseModel]:
        """The component's pydantic model; a lazy one that cannot be imported, or is no
        pydantic model, is a :class:`~ganframe.errors.PluginError`."""
        where = (self.kind, self.name)
        model = self.owner.load(self.config, "config model", where,
                                f"{self.kind} {self.qualified_name}")
        if model is None:
            return EmptyConfig
        if not (isinstance(model, type) and issubclass(model, BaseModel)):
            problem = TypeError(f"config must be a pydantic model class, got {model!r}")
            raise self.owner.error(problem, "bad config model", where, self.config)
        return model

    def build(self, config: BaseModel, *args: Any) -> Any:
        """Call the factory: ``factory(config, *args)``; what ``args`` are depends on the kind
        (``ctx`` for most, the parameters for an optimiser, nothing for a schedule).

        A factory that cannot be imported, or raises anything but a UserError, is a
        :class:`~ganframe.errors.PluginError` naming this component and the plugin's line."""
        where = (self.kind, self.name)
        factory = self.owner.load(self.factory, "factory", where,
                                  f"{self.kind} {self.qualified_name}")
        try:
            return factory(config, *args)
        except UserError:
            raise
        except Exception as exc:
            shown = self.factory if isinstance(self.factory, str) else getattr(
                self.factory, "__qualname__", repr(self.factory))
            raise self.owner.error(exc, f"building it with {shown!r} failed", where,
                                   self.factory) from exc


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
    owner: Owner | None = None  #: who registered it, for error messages

    def write(self, samples: Any, path: Path, info: dict[str, Any]) -> None:
        """Write with the writer; only importing a lazy one is wrapped as a PluginError
        (what the writer raises while writing is its own, like any training-time error)."""
        owner = self.owner or Owner(self.plugin)
        what = f"writer {self.data_kind}{self.suffix}"
        writer = owner.load(self.writer, "writer", ("sample writer", f"{self.data_kind} "
                                                    f"{self.suffix}"), what)
        writer(samples, path, info)


@dataclass
class CommandSpec:
    """A plugin's ``ganframe`` subcommand; ``command`` may still be a lazy string."""

    name: str
    command: Any
    plugin: str
    summary: str = ""
    owner: Owner | None = None  #: who registered it, for error messages

    def resolve(self) -> Any:
        owner = self.owner or Owner(self.plugin)
        return owner.load(self.command, "function", ("command", self.name),
                          f"command {self.name!r} of plugin {self.plugin}")


@dataclass
class PretrainedSpec:
    """A pretrained generator a plugin ships (``register_pretrained``): a file written by
    ``ganframe export`` inside the plugin's package, its sha256 and its model card's figures.
    Nothing is read until the model is used (:mod:`ganframe.pretrained`)."""

    name: str
    path: Any  #: a ``pathlib.Path`` or an ``importlib.resources`` traversable
    sha256: str
    plugin: str
    version: str = ""
    summary: str = ""
    card: dict[str, Any] = field(default_factory=dict)
    owner: Owner | None = None  #: who registered it, for error messages

    @property
    def qualified_name(self) -> str:
        return f"{self.plugin}:{self.name}"


@dataclass
class Registry:
    components: dict[str, list[ComponentSpec]] = field(
        default_factory=lambda: {kind: [] for kind in ALL_KINDS}
    )
    recipes: list[RecipeSpec] = field(default_factory=list)
    writers: list[WriterSpec] = field(default_factory=list)
    commands: list[CommandSpec] = field(default_factory=list)
    pretrained: list[PretrainedSpec] = field(default_factory=list)
    #: Plugins that wanted to load and could not: name -> the reason (``import error:
    #: ModuleNotFoundError: ...``), so a recipe naming a missing component can say why.
    failed: dict[str, str] = field(default_factory=dict)
    #: (kind, name) of the components a failed plugin registered before it failed.
    dropped: dict[str, list[tuple[str, str]]] = field(default_factory=dict)

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
        self.dropped[plugin] = [(s.kind, s.name) for specs in self.components.values()
                                for s in specs if s.plugin == plugin]
        for kind in self.components:
            self.components[kind] = [s for s in self.components[kind] if s.plugin != plugin]
        self.recipes = [r for r in self.recipes if r.plugin != plugin]
        self.writers = [w for w in self.writers if w.plugin != plugin]
        self.commands = [c for c in self.commands if c.plugin != plugin]
        self.pretrained = [m for m in self.pretrained if m.plugin != plugin]

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
        raise UserError(self.unknown_message(kind, name))

    def unknown_message(self, kind: str, name: str) -> str:
        """Why ``name`` is not a known ``kind``: the plugin that registers it (or may) failed
        to load, the closest name (whatever the case), and what there is."""
        available = self.names(kind)
        plugin, _, short = name.rpartition(":")
        owners = [p for p, items in self.dropped.items() if (kind, short) in items]
        if plugin in self.failed and plugin not in owners:
            owners.append(plugin)
        if owners:
            blame = "; ".join(f"plugin {p}, which provides it, failed to load "
                              f"({self.failed.get(p, '?')})" for p in owners)
        else:
            blame = "; ".join(f"plugin {p} failed to load ({why}), which may provide it"
                              for p, why in sorted(self.failed.items()))
        hint = closest(name, available)
        if blame and not (hint and hint.lower() == name.lower()):
            hint = None  # the failed plugin is the likelier answer than a near spelling
        did_you_mean = f" Did you mean {hint!r}?" if hint else ""
        listing = f" Available: {', '.join(available) or '(none)'}."
        if blame:
            return (f"unknown {kind} type {name!r}; {blame} — see 'ganframe list-plugins'."
                    f"{did_you_mean}{listing}")
        return (f"unknown {kind} type {name!r}.{did_you_mean}{listing} Run 'ganframe "
                "list-plugins' to see where each comes from.")

    def recipe(self, name: str) -> RecipeSpec | None:
        found = [r for r in self.recipes if r.name == name or f"{r.plugin}:{r.name}" == name]
        if len(found) > 1:
            options = " or ".join(f"'{r.plugin}:{r.name}'" for r in found)
            raise UserError(f"recipe {name!r} is shipped by more than one plugin; use {options}.")
        return found[0] if found else None

    def pretrained_model(self, name: str) -> PretrainedSpec | None:
        """The pretrained generator called ``name`` or ``plugin:name``; None if there is none
        (a name two plugins ship must be written ``plugin:name``)."""
        found = [m for m in self.pretrained if name in (m.name, m.qualified_name)]
        if len(found) > 1:
            options = " or ".join(f"'{m.qualified_name}'" for m in found)
            raise UserError(f"pretrained generator {name!r} is shipped by more than one "
                            f"plugin; use {options}.")
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


def caller_origin(depth: int = 2) -> tuple[str, tuple[str, ...]]:
    """(``file.py:LINE``, (its top package,)) of the code ``depth`` frames up: the plugin's
    hook calling ``register``, so a lazy reference that fails later points at that line."""
    frame = sys._getframe(depth)
    top = str(frame.f_globals.get("__name__", "")).split(".")[0]
    packages = (top,) if top else ()
    return f"{short_path(frame.f_code.co_filename, packages)}:{frame.f_lineno}", packages


def bind_arguments(hook: str, signature: inspect.Signature, args: tuple[Any, ...],
                   kwargs: dict[str, Any]) -> dict[str, Any]:
    """``register``'s arguments by name; a wrong call says what ``register`` takes (and the
    keyword that was probably meant) instead of Python's ``make_register.<locals>...``."""
    try:
        bound = signature.bind(*args, **kwargs)
    except TypeError as exc:
        wrong = [k for k in kwargs if k not in signature.parameters]
        hints = [repr(h) for k in wrong if (h := closest(k, signature.parameters)) is not None]
        hint = f" (did you mean {' or '.join(hints)}?)" if hints else ""
        raise TypeError(f"register() {exc}{hint}; {hook} gets register{signature}") from None
    bound.apply_defaults()
    return dict(bound.arguments)


def _component_signature(name: str, factory: Any, config: Any = None,
                         summary: str = "") -> None:
    """The signature of every component hook's ``register``."""


def plain_signature(fn: Callable[..., Any]) -> inspect.Signature:
    """``fn``'s signature without annotations: ``(name, factory, config=None, summary='')``,
    as an error message shows what ``register`` takes."""
    sig = inspect.signature(fn)
    empty = inspect.Parameter.empty
    return sig.replace(parameters=[p.replace(annotation=empty) for p in sig.parameters.values()],
                       return_annotation=empty)


COMPONENT_REGISTER = plain_signature(_component_signature)


def make_register(registry: Registry, kind: str, plugin: str, version: str, *,
                  dist: str = "", hook: str = "") -> Callable[..., None]:
    """The ``register`` callback handed to one plugin's ``register_<kind>s`` hook."""
    hook = hook or KIND_INFO[kind].hook

    def register(*args: Any, **kwargs: Any) -> None:
        a = bind_arguments(hook, COMPONENT_REGISTER, args, kwargs)
        name, factory, config, summary = a["name"], a["factory"], a["config"], a["summary"]
        if not isinstance(name, str) or not name or ":" in name or any(c.isspace() for c in name):
            raise ValueError(f"invalid {kind} name {name!r} (non-empty, no ':' or spaces)")
        if not (callable(factory) or isinstance(factory, str)):
            raise ValueError(f"{kind} {name!r}: factory must be callable or 'module:attr'")
        if config is not None and not isinstance(config, str):
            if not (isinstance(config, type) and issubclass(config, BaseModel)):
                raise ValueError(f"{kind} {name!r}: config must be a pydantic model class")
        origin, packages = caller_origin()
        registry.add(ComponentSpec(kind, name, factory, config, plugin, version, summary,
                                   dist=dist, origin=origin, packages=packages))

    return register
