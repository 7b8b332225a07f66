"""Registers the core's plugin-authoring commands (``new-plugin``, ``check-plugin``,
``schema``) lazily."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from ganframe import hookimpl


@hookimpl
def register_commands(register: Callable[..., Any]) -> None:
    register("new-plugin", "ganframe.builtin.authoring:new_plugin",
             summary="Write a ready-to-publish plugin project with working components and "
             "passing tests.")
    register("check-plugin", "ganframe.builtin.authoring:check_plugin",
             summary="Import, build and try every component of a plugin and run its shipped "
             "recipes; exit 1 on any failure.")
    register("schema", "ganframe.builtin.authoring:schema",
             summary="Print the JSON Schema of recipes (core plus installed plugins), for "
             "editors.")
