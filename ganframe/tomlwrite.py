"""A small TOML writer for resolved recipes.

The standard library reads TOML but cannot write it; the resolved recipe only holds plain
values (strings, numbers, booleans, lists, tables, arrays of tables), so a few dozen lines
avoid a dependency.
"""

from __future__ import annotations

import json
import math
from typing import Any

_BARE = set("ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789_-")


def _key(k: str) -> str:
    return k if k and set(k) <= _BARE else json.dumps(k, ensure_ascii=False)


def _value(v: Any) -> str:
    if isinstance(v, bool):
        return "true" if v else "false"
    if isinstance(v, int):
        return str(v)
    if isinstance(v, float):
        if math.isnan(v):
            return "nan"
        if math.isinf(v):
            return "inf" if v > 0 else "-inf"
        return repr(v)
    if isinstance(v, str):
        return json.dumps(v, ensure_ascii=False)
    if isinstance(v, list | tuple):
        return "[" + ", ".join(_value(x) for x in v) + "]"
    if isinstance(v, dict):
        return "{ " + ", ".join(f"{_key(k)} = {_value(x)}" for k, x in v.items()) + " }"
    raise TypeError(f"cannot write {type(v).__name__} to TOML")


def _is_table_array(v: Any) -> bool:
    return isinstance(v, list) and bool(v) and all(isinstance(x, dict) for x in v)


def dumps(doc: dict[str, Any]) -> str:
    """Serialise ``doc``; ``None`` values are left out (TOML has no null)."""
    lines: list[str] = []
    _table(doc, [], lines)
    return "\n".join(lines).strip() + "\n"


def _table(doc: dict[str, Any], path: list[str], lines: list[str]) -> None:
    scalars = {
        k: v
        for k, v in doc.items()
        if v is not None and not isinstance(v, dict) and not _is_table_array(v)
    }
    for k, v in scalars.items():
        lines.append(f"{_key(k)} = {_value(v)}")
    for k, v in doc.items():
        if isinstance(v, dict):
            name = ".".join(_key(p) for p in [*path, k])
            lines.extend(["", f"[{name}]"])
            _table(v, [*path, k], lines)
        elif _is_table_array(v):
            name = ".".join(_key(p) for p in [*path, k])
            for item in v:
                lines.extend(["", f"[[{name}]]"])
                _table(item, [*path, k], lines)
