"""The plugin host: builds the pluggy manager and fills the :class:`Registry`.

Order of events, as in llm/datasette: the core's own default plugins (``ganframe.builtin.*``)
are registered first through the same hooks as everybody else, then third-party plugins from
the ``ganframe`` entry-point group, one by one. Unlike those projects, a plugin that fails to
import, to register, or to satisfy the plugin API version is recorded with its reason and
skipped; it never takes the host down.
"""

from __future__ import annotations

import importlib
import importlib.metadata as md
import inspect
import os
import re
import sys
import traceback
import warnings
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

import pluggy

from ganframe import hookspecs
from ganframe.errors import one_line, plugin_location, short_path
from ganframe.registry import (
    COMPONENT_KINDS,
    CommandSpec,
    Owner,
    PretrainedSpec,
    RecipeSpec,
    Registry,
    WriterSpec,
    bind_arguments,
    caller_origin,
    closest,
    make_register,
    plain_signature,
)
from ganframe.version import PLUGIN_API_VERSION, SUPPORTED_PLUGIN_APIS, __version__

ENTRY_POINT_GROUP = "ganframe"
DISABLE_AUTOLOAD_ENV = "GANFRAME_DISABLE_PLUGIN_AUTOLOAD"
DISABLE_PLUGINS_ENV = "GANFRAME_DISABLE_PLUGINS"

#: The core's own parts, registered exactly like third-party plugins.
DEFAULT_PLUGINS: tuple[str, ...] = (
    "ganframe.builtin.losses_plugin",
    "ganframe.builtin.toy_plugin",
    "ganframe.builtin.writers_plugin",
    "ganframe.builtin.authoring_plugin",
    "ganframe.builtin.optim_plugin",
    "ganframe.builtin.loggers_plugin",
    "ganframe.builtin.callbacks_plugin",
    "ganframe.builtin.models_plugin",
    "ganframe.builtin.report_plugin",
    "ganframe.builtin.metrics_plugin",
)

_HOOK_KIND = {kind.hook: kind.name for kind in COMPONENT_KINDS}


class PluginWarning(UserWarning):
    """A plugin could not be loaded; the others keep working.

    ``plugin`` names it and ``details`` holds the traceback of what failed, which
    ``ganframe --debug`` prints under the warning line."""

    def __init__(self, message: str, plugin: str = "", details: str = "") -> None:
        super().__init__(message)
        self.plugin = plugin
        self.details = details


@dataclass
class PluginInfo:
    name: str
    version: str
    status: str = "ok"
    hooks: list[str] = field(default_factory=list)
    builtin: bool = False
    dist: str = ""
    #: The plugin's top-level packages (from its entry point), where tracebacks are
    #: searched for the plugin's own line.
    packages: tuple[str, ...] = ()
    #: The traceback of a failed load (``ganframe --debug`` prints it).
    traceback: str = ""

    def fail(self, status: str, exc: BaseException | None = None) -> None:
        """Record a failed load: the one-line status and, for an exception, its traceback."""
        self.status = status
        if exc is not None:
            self.traceback = "".join(traceback.format_exception(exc))

    def where(self, exc: BaseException, fallback: str = "") -> str:
        """`` (file.py:LINE)`` of the plugin's line in ``exc``'s traceback, or ``""``."""
        found = plugin_location(exc, self.packages, fallback)
        return f" ({found})" if found else ""

    def as_json(self, registry: Registry) -> dict[str, Any]:
        return {
            "name": self.name,
            "version": self.version,
            "status": self.status,
            "hooks": sorted(self.hooks),
            # Primary kinds always (a stable shape); the others where the plugin has some.
            "components": {
                kind.name: names
                for kind in COMPONENT_KINDS
                if (names := sorted(
                    s.name for s in registry.components[kind.name] if s.plugin == self.name
                )) or kind.primary
            },
            "commands": sorted(c.name for c in registry.commands if c.plugin == self.name),
        }


@dataclass
class PluginHost:
    manager: pluggy.PluginManager
    registry: Registry
    plugins: list[PluginInfo]

    @property
    def failures(self) -> list[PluginInfo]:
        """Plugins that wanted to load and could not (not those the user disabled)."""
        return [p for p in self.plugins if p.status.startswith(("failed", "incompatible"))]


def _disabled_names(extra: list[str] | None) -> set[str]:
    names = {n.strip() for n in os.environ.get(DISABLE_PLUGINS_ENV, "").split(",") if n.strip()}
    return names | set(extra or [])


def _api_status(module: Any) -> str | None:
    """A plugin may declare ``GANFRAME_PLUGIN_API = N``; refuse versions we do not speak.

    Older versions stay in :data:`SUPPORTED_PLUGIN_APIS` as long as their plugins still work
    unchanged, so raising the API version does not break every installed plugin at once.
    """
    declared = getattr(module, "GANFRAME_PLUGIN_API", None)
    if declared is None or declared in SUPPORTED_PLUGIN_APIS:
        return None
    spoken = ", ".join(str(v) for v in sorted(SUPPORTED_PLUGIN_APIS))
    return (
        f"incompatible: written for plugin API {declared!r}, this ganframe speaks "
        f"{PLUGIN_API_VERSION} (and loads plugins written for {spoken})"
    )


def load_plugins(
    disabled: list[str] | None = None,
    *,
    autoload: bool | None = None,
    extra: Mapping[str, Any] | None = None,
) -> PluginHost:
    """Build the host. ``disabled`` blocks plugins by name (like ``pytest -p no:NAME``).

    ``extra`` maps plugin names to plugin modules (or their import names) loaded like entry
    points, after the default plugins: a plugin's tests use it through
    :func:`ganframe.testing.host_with` to load a module that is not installed."""
    pm = pluggy.PluginManager(hookspecs.PROJECT)
    pm.add_hookspecs(hookspecs)
    blocked = _disabled_names(disabled)
    if autoload is None:
        autoload = os.environ.get(DISABLE_AUTOLOAD_ENV, "").strip().lower() not in {
            "1", "true", "yes", "on",
        }
    infos: list[PluginInfo] = []

    for modname in DEFAULT_PLUGINS:
        info = PluginInfo(modname, __version__, builtin=True, dist="ganframe",
                          packages=("ganframe",))
        infos.append(info)
        if modname in blocked:
            info.status = "disabled"
            continue
        pm.register(importlib.import_module(modname), name=modname)
    for name, module in (extra or {}).items():
        _load_extra(pm, name, module, infos)
    if autoload:
        _load_entry_points(pm, blocked, infos)
    registry = Registry()
    for info in infos:
        if info.status == "ok":
            _collect_or_fail(pm, info, registry)
    _note_clashes(registry, {i.name: i for i in infos})

    host = PluginHost(pm, registry, infos)
    for info in host.failures:
        registry.failed[info.name] = info.status.removeprefix("failed: ")
        warnings.warn(PluginWarning(f"ganframe plugin {info.name!r} {info.status}", info.name,
                                    info.traceback), stacklevel=2)
    return host


def _collect_or_fail(pm: pluggy.PluginManager, info: PluginInfo, registry: Registry) -> None:
    """Call one plugin's hooks; a hook that fails drops everything the plugin registered."""
    plugin = pm.get_plugin(info.name)
    try:
        _collect(pm, plugin, info, registry)
    except HookFailed as failure:
        registry.drop_plugin(info.name)
        exc = failure.exc
        info.fail(f"failed: hook {failure.hook}: {one_line(exc)}{info.where(exc)}", exc)
        info.hooks = []
        pm.unregister(plugin)


def _note_clashes(registry: Registry, by_name: dict[str, PluginInfo]) -> None:
    for kind, name, owners in registry.clashes():
        for owner in owners:
            others = ", ".join(o for o in owners if o != owner)
            note = f"{kind} {name!r} also registered by {others}; select it as '{owner}:{name}'"
            info = by_name[owner]
            info.status = f"ok ({note})" if info.status == "ok" else f"{info.status}; {note}"


def _load_extra(pm: pluggy.PluginManager, name: str, module: Any,
                infos: list[PluginInfo]) -> None:
    """One plugin module given by the caller, not found through an entry point."""
    modname = module if isinstance(module, str) else getattr(module, "__name__", "")
    top = modname.split(".")[0]
    version = "?"
    info = PluginInfo(name, version, dist="(not installed)", packages=(top,) if top else ())
    infos.append(info)
    try:
        if isinstance(module, str):
            module = importlib.import_module(module)
    except Exception as exc:
        info.fail(f"failed: import error: {one_line(exc)}{info.where(exc)}", exc)
        return
    info.version = str(getattr(module, "__version__", None)
                       or getattr(sys.modules.get(top), "__version__", None) or "0")
    _register(pm, info, module)


def _register(pm: pluggy.PluginManager, info: PluginInfo, module: Any) -> None:
    """Register an imported plugin module, unless it speaks another plugin API or pluggy
    refuses it (a misspelled hook would otherwise be ignored, hence ``check_pending``)."""
    incompatible = _api_status(module)
    if incompatible:
        info.status = incompatible
        return
    try:
        pm.register(module, name=info.name)
        pm.check_pending()
    except Exception as exc:
        if pm.is_registered(module):
            pm.unregister(module)
        info.fail(f"failed: {_registration_problem(module, exc)}", exc)


def _load_entry_points(pm: pluggy.PluginManager, blocked: set[str],
                       infos: list[PluginInfo]) -> None:
    """Import and register each entry point on its own; a failure is the plugin's status."""
    seen: dict[str, str] = {}
    for ep in sorted(md.entry_points(group=ENTRY_POINT_GROUP), key=lambda e: e.name):
        dist = getattr(ep, "dist", None)
        version = dist.version if dist is not None else "?"
        dist_name = dist.name if dist is not None else "?"
        if ep.name in seen:
            if seen[ep.name] != dist_name:
                infos.append(PluginInfo(
                    ep.name, version, dist=dist_name,
                    status=f"failed: plugin name {ep.name!r} is already taken by "
                    f"distribution {seen[ep.name]}; not loaded from {dist_name}",
                ))
            continue
        seen[ep.name] = dist_name
        top = ep.value.partition(":")[0].split(".")[0].strip()
        info = PluginInfo(ep.name, version, dist=dist_name, packages=(top,) if top else ())
        infos.append(info)
        if ep.name in blocked:
            info.status = "disabled"
            continue
        try:
            module = ep.load()
        except Exception as exc:  # a broken plugin must not break the host
            info.fail(f"failed: import error: {one_line(exc)}{info.where(exc)}", exc)
            continue
        _register(pm, info, module)


def _registration_problem(module: Any, exc: BaseException) -> str:
    """What pluggy refused, with the hook's file:line and, for a misspelled hook, the hook
    that was probably meant."""
    known = set(hookspecs_names())
    for name, obj in sorted(vars(module).items()):
        if not callable(obj) or getattr(obj, f"{hookspecs.PROJECT}_impl", None) is None:
            continue
        where = _definition(obj)
        if name not in known:
            hint = closest(name, known)
            meant = f"; did you mean {hint}?" if hint else ""
            return f"unknown hook {name!r}{where}{meant}"
        if name in str(exc):
            return f"{one_line(exc)}{where}"
    return one_line(exc)


def hookspecs_names() -> list[str]:
    """The names of every hook a plugin may implement."""
    return [name for name, fn in vars(hookspecs).items()
            if callable(fn) and getattr(fn, f"{hookspecs.PROJECT}_spec", None) is not None]


def _definition(fn: Any) -> str:
    """`` (file.py:LINE)`` where ``fn`` is defined."""
    try:
        filename = inspect.getsourcefile(fn) or fn.__code__.co_filename
        line = fn.__code__.co_firstlineno  # the first decorator's line
        source, start = inspect.getsourcelines(fn)
        line = start + next((i for i, text in enumerate(source)
                             if text.lstrip().startswith(("def ", "async def "))), 0)
    except (TypeError, AttributeError, OSError):
        return ""
    top = str(getattr(fn, "__module__", "") or "").split(".")[0]
    return f" ({short_path(filename, (top,) if top else ())}:{line})"


class HookFailed(Exception):
    """One hook of a plugin raised (or called ``register`` wrongly)."""

    def __init__(self, hook: str, exc: BaseException) -> None:
        super().__init__(hook, exc)
        self.hook = hook
        self.exc = exc


def _collect(pm: pluggy.PluginManager, plugin: Any, info: PluginInfo, registry: Registry) -> None:
    """Call each hook of one plugin on its own, so failures are attributed to that plugin
    (and to the hook: :class:`HookFailed`)."""
    for hook_name in HOOK_NAMES:
        impls = [i for i in getattr(pm.hook, hook_name).get_hookimpls() if i.plugin is plugin]
        for impl in impls:
            info.hooks.append(hook_name)
            owner = Owner(info.name, info.dist, info.version, packages=info.packages)
            if hook_name in _HOOK_KIND:
                register = make_register(registry, _HOOK_KIND[hook_name], info.name,
                                         info.version, dist=info.dist, hook=hook_name)
            elif hook_name == "register_recipes":
                register = _recipe_register(registry, info.name)
            elif hook_name == "register_commands":
                register = _command_register(registry, owner)
            elif hook_name == "register_pretrained":
                register = _pretrained_register(registry, owner)
            else:
                register = _writer_register(registry, owner)
            try:
                impl.function(register=register)
            except Exception as exc:
                raise HookFailed(hook_name, exc) from exc


HOOK_NAMES: tuple[str, ...] = (
    *_HOOK_KIND, "register_recipes", "register_sample_writers", "register_commands",
    "register_pretrained",
)


def _recipe_signature(name: str, path: Any, summary: str = "") -> None:
    """``register`` of ``register_recipes``."""


def _writer_signature(data_kind: str, suffix: str, writer: Any, summary: str = "") -> None:
    """``register`` of ``register_sample_writers``."""


def _command_signature(name: str, command: Any, summary: str = "") -> None:
    """``register`` of ``register_commands``."""


def _recipe_register(registry: Registry, plugin: str) -> Any:
    signature = plain_signature(_recipe_signature)

    def register(*args: Any, **kwargs: Any) -> None:
        a = bind_arguments("register_recipes", signature, args, kwargs)
        name = a["name"]
        if not isinstance(name, str) or not name or ":" in name:
            raise ValueError(f"invalid recipe name {name!r}")
        registry.recipes.append(RecipeSpec(name, a["path"], plugin, a["summary"]))

    return register


def _writer_register(registry: Registry, owner: Owner) -> Any:
    signature = plain_signature(_writer_signature)

    def register(*args: Any, **kwargs: Any) -> None:
        a = bind_arguments("register_sample_writers", signature, args, kwargs)
        suffix = a["suffix"]
        if not isinstance(suffix, str) or not suffix.startswith("."):
            raise ValueError(f"writer suffix {suffix!r} must start with '.'")
        origin, packages = caller_origin()
        registry.writers.append(WriterSpec(
            a["data_kind"], suffix.lower(), a["writer"], owner.plugin, a["summary"],
            owner=Owner(owner.plugin, owner.dist, owner.version, origin,
                        (*owner.packages, *packages))))

    return register


_COMMAND_NAME = re.compile(r"^[a-z][a-z0-9-]*$")


def _command_register(registry: Registry, owner: Owner) -> Any:
    signature = plain_signature(_command_signature)
    plugin = owner.plugin

    def register(*args: Any, **kwargs: Any) -> None:
        a = bind_arguments("register_commands", signature, args, kwargs)
        name, command = a["name"], a["command"]
        if not isinstance(name, str) or not _COMMAND_NAME.match(name):
            raise ValueError(
                f"invalid command name {name!r} (lower-case letters, digits and '-', "
                "starting with a letter)"
            )
        if not (callable(command) or isinstance(command, str)):
            raise ValueError(f"command {name!r}: must be a function or 'module:attr'")
        if any(c.name == name and c.plugin == plugin for c in registry.commands):
            raise ValueError(f"registers command {name!r} twice")
        origin, packages = caller_origin()
        registry.commands.append(CommandSpec(
            name, command, plugin, a["summary"],
            owner=Owner(plugin, owner.dist, owner.version, origin,
                        (*owner.packages, *packages))))

    return register


def _pretrained_signature(name: str, path: Any, sha256: str, summary: str = "",
                          card: Any = None) -> None:
    """``register`` of ``register_pretrained``."""


_SHA256 = re.compile(r"^[0-9a-f]{64}$")


def _pretrained_register(registry: Registry, owner: Owner) -> Any:
    signature = plain_signature(_pretrained_signature)

    def register(*args: Any, **kwargs: Any) -> None:
        a = bind_arguments("register_pretrained", signature, args, kwargs)
        name, sha, card = a["name"], a["sha256"], a["card"]
        if not isinstance(name, str) or not name or ":" in name or any(
                c.isspace() for c in name):
            raise ValueError(f"invalid pretrained generator name {name!r} (non-empty, no ':' "
                             "or spaces)")
        if not isinstance(sha, str) or not _SHA256.match(sha.lower()):
            raise ValueError(f"pretrained generator {name!r}: sha256 must be 64 hex digits, "
                             f"got {sha!r}")
        if card is not None and not (isinstance(card, Mapping) and all(
                isinstance(k, str) and (v is None or isinstance(v, str | int | float | bool))
                for k, v in card.items())):
            raise ValueError(f"pretrained generator {name!r}: card must map names to numbers "
                             "or strings")
        if any(m.name == name and m.plugin == owner.plugin for m in registry.pretrained):
            raise ValueError(f"registers pretrained generator {name!r} twice")
        origin, packages = caller_origin()
        registry.pretrained.append(PretrainedSpec(
            name, a["path"], sha.lower(), owner.plugin, owner.version, a["summary"],
            dict(card or {}), owner=Owner(owner.plugin, owner.dist, owner.version, origin,
                                          (*owner.packages, *packages))))

    return register


_HOST: PluginHost | None = None


def get_host(disabled: list[str] | None = None, *, refresh: bool = False) -> PluginHost:
    """The process-wide host, built on first use."""
    global _HOST
    if _HOST is None or refresh or disabled:
        _HOST = load_plugins(disabled)
    return _HOST


def set_host(host: PluginHost | None) -> PluginHost | None:
    """Make ``host`` the process-wide host (None: build it again on next use); returns the
    one it replaces. :func:`ganframe.testing.host_with` uses it so that ``api.train`` and
    the other API functions see a plugin that is not installed."""
    global _HOST
    previous, _HOST = _HOST, host
    return previous


def current_host() -> PluginHost | None:
    """The process-wide host if one was built, without building it.

    Callers that cache something derived from the host (the CLI's plugin commands) compare
    it with this to notice that the host was rebuilt, e.g. by ``get_host(refresh=True)``.
    """
    return _HOST


def get_registry() -> Registry:
    return get_host().registry
