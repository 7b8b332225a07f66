"""The command line's help in the usual Unix style, for the core's and plugins' commands.

Typer's plain help writes a required argument as ``{recipe}`` and every value as a Python
type (``<str>``, ``<list[Path]>``, ``RUN... <list[Path]>``), which reads like a bug. Each
command's parameters are given the conventional look instead: ``RECIPE`` and ``[SEED]`` for
arguments, ``--out PATH`` or ``--max-steps INTEGER`` for options (a parameter's own
``metavar`` wins), ``...`` where one may be repeated. Only how help is written changes;
parsing is click's, untouched. The command list shows each command's whole first paragraph,
wrapped to the terminal, where click cut it short with "...".
"""

from __future__ import annotations

from typing import Any

__all__ = ["house_style"]


_TYPE_NAMES = {"str": "TEXT", "int": "INTEGER", "float": "FLOAT", "bool": "BOOLEAN",
               "path": "PATH", "file": "FILE", "directory": "DIR"}


def _value_name(param: Any, ctx: Any) -> str:
    """An option's value as help shows it: its metavar, else its type in click's words
    (PATH, TEXT, INTEGER, FLOAT) or its choices (``[a|b]``)."""
    if param.metavar:
        return str(param.metavar)
    label = str(param.display_type(ctx) or "").strip("<>")
    if label.startswith("list[") and label.endswith("]"):
        label = label[5:-1]  # a repeatable option takes one value each time
    if "|" in label:
        return f"[{label}]"
    label = label.removesuffix(" range")  # "int range": the range is in the help's [x>=2]
    return _TYPE_NAMES.get(label.lower(), label.upper() or "VALUE")


def _classes() -> tuple[type, type]:
    from typer.core import TyperArgument, TyperOption

    class Argument(TyperArgument):
        def _usage_display_name(self) -> str:
            name = str(self.metavar or self.name or "").upper()
            if self.nargs != 1 and not name.endswith("..."):
                name += "..."
            return name if self.required else f"[{name}]"

        def _rich_display_name(self) -> str:
            return self._usage_display_name().strip("[]")

        def display_type_rich(self, ctx: Any) -> str | None:
            return None  # the name says what it is; its help says the rest

    class Option(TyperOption):
        def display_type_rich(self, ctx: Any) -> str | None:
            name = _value_name(self, ctx)
            return name + ("..." if self.nargs != 1 and not name.endswith("...") else "")

    return Argument, Option


def house_style(command: Any) -> Any:
    """Give ``command`` (and a group's subcommands) the conventional help look, in place."""
    if command is None or getattr(command, "_ganframe_styled", False):
        return command
    from typer.core import TyperArgument, TyperOption

    argument, option = _classes()
    for param in getattr(command, "params", []):
        # same fields, other help methods: the parameter parses exactly as before
        if type(param) is TyperArgument:
            param.__class__ = argument
        elif type(param) is TyperOption:
            param.__class__ = option
    if not getattr(command, "short_help", None) and getattr(command, "help", None):
        # the command list shows the whole first paragraph, wrapped, not cut at "..."
        first = command.help.strip().split("\n\n")[0]
        command.short_help = " ".join(first.split())
    command._ganframe_styled = True
    for sub in (getattr(command, "commands", None) or {}).values():
        house_style(sub)
    return command
