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
import os
import re
import warnings
from dataclasses import dataclass, field
from typing import Any

import pluggy

from ganframe import hookspecs
from ganframe.registry import (
    COMPONENT_KINDS,
    CommandSpec,
    RecipeSpec,
    Registry,
    WriterSpec,
    make_register,
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
)

_HOOK_KIND = {kind.hook: kind.name for kind in COMPONENT_KINDS}


class PluginWarning(UserWarning):
    """A plugin could not be loaded; the others keep working."""


@dataclass
class PluginInfo:
    name: str
    version: str
    status: str = "ok"
    hooks: list[str] = field(default_factory=list)
    builtin: bool = False
    dist: str = ""

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


def load_plugins(disabled: list[str] | None = None, *, autoload: bool | None = None) -> PluginHost:
    """Build the host. ``disabled`` blocks plugins by name (like ``pytest -p no:NAME``)."""
    pm = pluggy.PluginManager(hookspecs.PROJECT)
    pm.add_hookspecs(hookspecs)
    blocked = _disabled_names(disabled)
    if autoload is None:
        autoload = os.environ.get(DISABLE_AUTOLOAD_ENV, "").strip().lower() not in {
            "1", "true", "yes", "on",
        }
    infos: list[PluginInfo] = []

    for modname in DEFAULT_PLUGINS:
        info = PluginInfo(modname, __version__, builtin=True, dist="ganframe")
        infos.append(info)
        if modname in blocked:
            info.status = "disabled"
            continue
        pm.register(importlib.import_module(modname), name=modname)

    if autoload:
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
            info = PluginInfo(ep.name, version, dist=dist_name)
            infos.append(info)
            if ep.name in blocked:
                info.status = "disabled"
                continue
            try:
                module = ep.load()
            except Exception as exc:  # a broken plugin must not break the host
                info.status = f"failed: import error: {type(exc).__name__}: {exc}"
                continue
            incompatible = _api_status(module)
            if incompatible:
                info.status = incompatible
                continue
            try:
                pm.register(module, name=ep.name)
                pm.check_pending()  # a misspelled hook name would otherwise be ignored
            except Exception as exc:
                if pm.is_registered(module):
                    pm.unregister(module)
                info.status = f"failed: {type(exc).__name__}: {exc}"

    registry = Registry()
    by_name = {i.name: i for i in infos}
    for info in infos:
        if info.status != "ok":
            continue
        plugin = pm.get_plugin(info.name)
        try:
            _collect(pm, plugin, info, registry)
        except Exception as exc:
            registry.drop_plugin(info.name)
            info.status = f"failed: {type(exc).__name__}: {exc}"
            info.hooks = []
            pm.unregister(plugin)
    for kind, name, owners in registry.clashes():
        for owner in owners:
            others = ", ".join(o for o in owners if o != owner)
            note = f"{kind} {name!r} also registered by {others}; select it as '{owner}:{name}'"
            info = by_name[owner]
            info.status = f"ok ({note})" if info.status == "ok" else f"{info.status}; {note}"

    host = PluginHost(pm, registry, infos)
    for info in host.failures:
        warnings.warn(f"ganframe plugin {info.name!r} {info.status}", PluginWarning, stacklevel=2)
    return host


def _collect(pm: pluggy.PluginManager, plugin: Any, info: PluginInfo, registry: Registry) -> None:
    """Call each hook of one plugin on its own, so failures are attributed to that plugin."""
    for hook_name in HOOK_NAMES:
        impls = [i for i in getattr(pm.hook, hook_name).get_hookimpls() if i.plugin is plugin]
        for impl in impls:
            info.hooks.append(hook_name)
            if hook_name in _HOOK_KIND:
                register = make_register(registry, _HOOK_KIND[hook_name], info.name, info.version)
            elif hook_name == "register_recipes":
                register = _recipe_register(registry, info.name)
            elif hook_name == "register_commands":
                register = _command_register(registry, info.name)
            else:
                register = _writer_register(registry, info.name)
            impl.function(register=register)


HOOK_NAMES: tuple[str, ...] = (
    *_HOOK_KIND, "register_recipes", "register_sample_writers", "register_commands",
)


def _recipe_register(registry: Registry, plugin: str) -> Any:
    def register(name: str, path: Any, summary: str = "") -> None:
        if not isinstance(name, str) or not name or ":" in name:
            raise ValueError(f"invalid recipe name {name!r}")
        registry.recipes.append(RecipeSpec(name, path, plugin, summary))

    return register


def _writer_register(registry: Registry, plugin: str) -> Any:
    def register(data_kind: str, suffix: str, writer: Any, summary: str = "") -> None:
        if not suffix.startswith("."):
            raise ValueError(f"writer suffix {suffix!r} must start with '.'")
        registry.writers.append(WriterSpec(data_kind, suffix.lower(), writer, plugin, summary))

    return register


_COMMAND_NAME = re.compile(r"^[a-z][a-z0-9-]*$")


def _command_register(registry: Registry, plugin: str) -> Any:
    def register(name: str, command: Any, summary: str = "") -> None:
        if not isinstance(name, str) or not _COMMAND_NAME.match(name):
            raise ValueError(
                f"invalid command name {name!r} (lower-case letters, digits and '-', "
                "starting with a letter)"
            )
        if not (callable(command) or isinstance(command, str)):
            raise ValueError(f"command {name!r}: must be a function or 'module:attr'")
        if any(c.name == name and c.plugin == plugin for c in registry.commands):
            raise ValueError(f"registers command {name!r} twice")
        registry.commands.append(CommandSpec(name, command, plugin, summary))

    return register


_HOST: PluginHost | None = None


def get_host(disabled: list[str] | None = None, *, refresh: bool = False) -> PluginHost:
    """The process-wide host, built on first use."""
    global _HOST
    if _HOST is None or refresh or disabled:
        _HOST = load_plugins(disabled)
    return _HOST


def current_host() -> PluginHost | None:
    """The process-wide host if one was built, without building it.

    Callers that cache something derived from the host (the CLI's plugin commands) compare
    it with this to notice that the host was rebuilt, e.g. by ``get_host(refresh=True)``.
    """
    return _HOST


def get_registry() -> Registry:
    return get_host().registry
