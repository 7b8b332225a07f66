"""Checking a recipe's ``[ganframe] requires`` list against installed distributions."""

from __future__ import annotations

import importlib.metadata as md
import re

from ganframe.errors import UserError

_REQ = re.compile(
    r"^\s*([A-Za-z0-9][A-Za-z0-9._-]*)\s*(?:(==|>=|<=|>|<|!=)\s*([0-9][0-9A-Za-z.]*))?\s*$"
)


def _version_tuple(v: str) -> tuple[int, ...]:
    parts = [int(x) for x in re.findall(r"\d+", v.split("+")[0])[:4]]
    return tuple(parts + [0] * (4 - len(parts)))


def check(requires: list[str], source: str) -> None:
    problems = []
    for req in requires:
        m = _REQ.match(req)
        if not m:
            problems.append(f"{req!r} is not a requirement like 'package>=1.0'")
            continue
        name, op, want = m.groups()
        try:
            have = md.version(name)
        except md.PackageNotFoundError:
            problems.append(f"{name} is not installed (pip install '{req}')")
            continue
        if op is None:
            continue
        a, b = _version_tuple(have), _version_tuple(want)
        ok = {
            "==": a == b,
            ">=": a >= b,
            "<=": a <= b,
            ">": a > b,
            "<": a < b,
            "!=": a != b,
        }[op]
        if not ok:
            problems.append(f"{name} {have} is installed but the recipe needs {req}")
    if problems:
        raise UserError(f"{source}: ganframe.requires: " + "; ".join(problems) + ".")
