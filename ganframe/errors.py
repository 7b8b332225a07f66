"""The one exception type for mistakes a user can fix, and its plugin flavour.

Everything raised as :class:`UserError` is printed by the CLI as a single paragraph and exits
with status 2; any other exception is a bug in ganframe or a plugin (exit 1).
:class:`PluginError` is the UserError of a plugin's own code failing where the user cannot
see it (importing a lazy factory, building a component, a hook): it names the plugin, the
component and the line to look at, and keeps the original exception for ``--debug``.
"""

from __future__ import annotations

import traceback
from pathlib import Path
from types import TracebackType


class UserError(Exception):
    """A problem with the user's input: recipe, data, checkpoint, output folder, plugin choice.

    The message must say what is wrong, where (file and key or line) and, when it helps,
    what to do about it.
    """


class MetricUnavailable(UserError):
    """A metric cannot run here (e.g. its network's weights are missing offline) and was
    configured as optional: the training loop warns once and goes on without it; elsewhere
    (``ganframe eval``) it is an ordinary :class:`UserError`."""


class PluginError(UserError):
    """A plugin's code failed while ganframe imported, built or registered something of it.

    Without it such a failure reads as "internal error: AttributeError ..." and blames
    ganframe. The message is one paragraph: ``plugin NAME (DIST VERSION): KIND 'NAME':
    WHAT: ERROR (file.py:LINE)``; ``original`` is the exception raised inside the plugin
    (its traceback is what ``ganframe --debug`` prints).
    """

    def __init__(
        self,
        message: str,
        *,
        plugin: str,
        component: tuple[str, str] | None = None,
        original: BaseException | None = None,
        where: str = "",
    ) -> None:
        super().__init__(message)
        self.plugin = plugin
        self.component = component  #: (kind, name), or None for a hook or a command
        self.original = original
        self.where = where  #: ``file.py:LINE`` in the plugin (or the innermost frame)

    def traceback_text(self) -> str:
        """The original exception's traceback, as Python prints it."""
        if self.original is None:
            return ""
        return "".join(traceback.format_exception(self.original))


def plugin_label(plugin: str, dist: str = "", version: str = "") -> str:
    """``plugin rgan (ganframe-rgan 0.1.0)``: how a message names a plugin."""
    owner = " ".join(p for p in (dist, version) if p)
    return f"plugin {plugin} ({owner})" if owner else f"plugin {plugin}"


def short_path(filename: str, packages: tuple[str, ...] | list[str] = ()) -> str:
    """A source file as a reader finds it: from the plugin's top package down
    (``ganframe_rgan/plugin.py``), the file name for a single-module plugin, the full path
    otherwise."""
    parts = Path(filename).parts
    for package in packages:
        if package in parts[:-1]:
            index = len(parts) - 1 - parts[::-1].index(package)
            return "/".join(parts[index:])
        if Path(filename).stem == package:
            return Path(filename).name
    return filename


def _frames(tb: TracebackType | None) -> list[tuple[str, str, int]]:
    """(module name, file, line) of each frame of a traceback, outermost first."""
    out = []
    while tb is not None:
        frame = tb.tb_frame
        out.append((str(frame.f_globals.get("__name__", "")), frame.f_code.co_filename,
                    tb.tb_lineno))
        tb = tb.tb_next
    return out


def in_packages(module: str, packages: tuple[str, ...] | list[str]) -> bool:
    return any(module == p or module.startswith(p + ".") for p in packages)


def plugin_location(
    exc: BaseException, packages: tuple[str, ...] | list[str], fallback: str = ""
) -> str:
    """``file.py:LINE`` of the innermost frame of ``exc`` inside one of ``packages`` (the
    plugin's own modules); else ``fallback`` (e.g. where the plugin registered the thing
    that failed); else the innermost frame. Chained causes are searched too, so an error
    re-raised by a helper still points into the plugin."""
    seen: set[int] = set()
    current: BaseException | None = exc
    innermost = ""
    while current is not None and id(current) not in seen:
        seen.add(id(current))
        frames = _frames(current.__traceback__)
        for module, filename, line in reversed(frames):
            if in_packages(module, packages):
                return f"{short_path(filename, packages)}:{line}"
        if frames and not innermost:
            _module, filename, line = frames[-1]
            innermost = f"{short_path(filename, packages)}:{line}"
        current = current.__cause__ or current.__context__
    return fallback or innermost


def one_line(exc: BaseException, limit: int = 300) -> str:
    """``Type: message`` on one line, cut at ``limit`` characters."""
    text = " ".join(str(exc).split())
    text = f"{type(exc).__name__}: {text}" if text else type(exc).__name__
    return text if len(text) <= limit else text[: limit - 3] + "..."


def plugin_error(
    exc: BaseException,
    what: str,
    *,
    plugin: str,
    dist: str = "",
    version: str = "",
    component: tuple[str, str] | None = None,
    packages: tuple[str, ...] | list[str] = (),
    origin: str = "",
) -> PluginError:
    """The :class:`PluginError` for ``exc``, raised by a plugin's code while ganframe was
    doing ``what`` (``cannot import its factory 'pkg.mod:attr'``, ``building it failed``)."""
    where = plugin_location(exc, packages, origin)
    subject = f"{component[0]} {component[1]!r}: " if component else ""
    message = (f"{plugin_label(plugin, dist, version)}: {subject}{what}: {one_line(exc)}"
               + (f" ({where})" if where else ""))
    return PluginError(message, plugin=plugin, component=component, original=exc, where=where)
