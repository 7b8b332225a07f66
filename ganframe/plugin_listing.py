"""``ganframe list-plugins`` as text: one block per plugin, readable at any terminal width.

A table with a column per component kind needed some 200 columns; at 80 every cell was cut
("ganfr…") and the built-in plugins showed as identical rows. Each plugin is now a heading
(its full name, the one ``--disable-plugin`` takes, its version and status) and one line per
kind of thing it registers, wrapped under its label: components, sample writers, recipes
and commands. Imports rich only; no torch.
"""

from __future__ import annotations

from typing import Any

from ganframe.textsafe import printable

__all__ = ["plugin_rows", "render"]


def plugin_rows(host: Any) -> list[dict[str, Any]]:
    """Each plugin as JSON: :meth:`PluginInfo.as_json` plus its sample writers and recipes."""
    reg = host.registry
    rows = []
    for p in host.plugins:
        row = p.as_json(reg)
        row["writers"] = sorted(f"{w.data_kind} {w.suffix}" for w in reg.writers
                                if w.plugin == p.name)
        row["recipes"] = [r.name for r in reg.recipes if r.plugin == p.name]
        rows.append(row)
    return rows


def _lines(row: dict[str, Any]) -> list[tuple[str, str]]:
    from ganframe.registry import COMPONENT_KINDS

    lines = [(kind.plural, ", ".join(row["components"].get(kind.name) or []))
             for kind in COMPONENT_KINDS]
    lines += [("sample writers", ", ".join(row["writers"])), ("recipes", ", ".join(
        row["recipes"])), ("commands", ", ".join(row["commands"]))]
    return [(label, names) for label, names in lines if names]


def render(rows: list[dict[str, Any]], console: Any) -> None:
    """Print the plugins' blocks; names are text, never markup, control characters escaped."""
    from rich.table import Table
    from rich.text import Text

    console.print(Text(f"ganframe plugins ({len(rows)})", style="bold"))
    for row in rows:
        status = str(row["status"])
        style = "green" if status == "ok" else ("red" if status.startswith("failed")
                                               else "yellow")
        head = Text()
        head.append(printable(row["name"]), style="bold")
        head.append(f" {printable(row['version'])}  ")
        head.append(printable(status), style=style)
        console.print(head)
        lines = _lines(row)
        if not lines:
            console.print(Text("  (registers nothing)", style="dim"))
            continue
        grid = Table.grid(padding=(0, 2))
        grid.add_column(no_wrap=True, style="dim")
        grid.add_column(overflow="fold")
        for label, names in lines:
            grid.add_row(Text("  " + label), Text(printable(names)))
        console.print(grid)
