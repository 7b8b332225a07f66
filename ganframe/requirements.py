"""Checking a recipe's ``[ganframe] requires`` list against installed distributions.

Requirements are read by :mod:`packaging`, the library pip itself uses, so every specifier
pip accepts works here (``pkg~=0.1``, ``pkg>=0.1,<0.2``, ``pkg[extra]>=0.1``, environment
markers) and versions order as pip orders them (``0.1.0rc1`` comes before ``0.1.0``).
"""

from __future__ import annotations

import importlib.metadata as md

from packaging.requirements import InvalidRequirement, Requirement
from packaging.utils import canonicalize_name
from packaging.version import InvalidVersion, Version

from ganframe.errors import UserError

#: At most this many distinct requirements, each at most this long: a recipe names a few
#: distributions, and a list of thousands would only make the check slow.
MAX_REQUIREMENTS = 200
MAX_LENGTH = 200


def _shown(text: str, limit: int = 60) -> str:
    return repr(text if len(text) <= limit else text[: limit - 3] + "...")


def _distinct(requires: list[str], source: str) -> list[str]:
    """The requirements in order, each once (whitespace aside), within the bounds."""
    seen: dict[str, None] = {}
    for raw in requires:
        if not isinstance(raw, str):
            raise UserError(f"{source}: ganframe.requires: {raw!r} is not a string like "
                            "'package>=1.0'.")
        if len(raw) > MAX_LENGTH:
            raise UserError(
                f"{source}: ganframe.requires: the requirement {_shown(raw)} is "
                f"{len(raw)} characters long; at most {MAX_LENGTH} are allowed."
            )
        seen.setdefault(" ".join(raw.split()), None)
        if len(seen) > MAX_REQUIREMENTS:
            raise UserError(
                f"{source}: ganframe.requires lists more than {MAX_REQUIREMENTS} different "
                "requirements; name only the distributions the recipe needs."
            )
    return list(seen)


def _installed(name: str, cache: dict[str, str | None]) -> str | None:
    key = canonicalize_name(name)
    if key not in cache:
        try:
            cache[key] = md.version(name)
        except md.PackageNotFoundError:
            cache[key] = None
    return cache[key]


def problem(text: str, cache: dict[str, str | None] | None = None) -> str | None:
    """Why the requirement ``text`` is not met here, or None when it is."""
    try:
        req = Requirement(text)
    except InvalidRequirement as exc:
        return (f"{_shown(text)} is not a requirement like 'package>=1.0' "
                f"({str(exc).splitlines()[0]})")
    if req.url:
        return f"{_shown(text)}: a URL is not a version to check; give 'package>=1.0'"
    if req.marker is not None and not req.marker.evaluate():
        return None  # e.g. "pkg; sys_platform == 'win32'" on another platform
    have = _installed(req.name, {} if cache is None else cache)
    if have is None:
        return f"{req.name} is not installed (pip install '{text}')"
    if not req.specifier:
        return None
    try:
        version = Version(have)
    except InvalidVersion:
        return (f"{req.name} {have} is installed, a version that cannot be compared with "
                f"{req.specifier}")
    # An installed pre-release counts when it is in the range: it is what is there.
    if not req.specifier.contains(version, prereleases=True):
        return f"{req.name} {have} is installed but the recipe needs {text}"
    return None


def check(requires: list[str], source: str) -> None:
    """Raise one UserError listing every requirement of ``requires`` that is not met."""
    cache: dict[str, str | None] = {}
    problems = [p for req in _distinct(requires, source) if (p := problem(req, cache))]
    if problems:
        raise UserError(f"{source}: ganframe.requires: " + "; ".join(problems) + ".")
