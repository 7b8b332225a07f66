"""Registers the commands of shareable generators (``ganframe models``, ``ganframe
export``) and the core's own pretrained generator, the toy ``gaussian-ring``, through the
same hooks as any plugin (``register_commands``, ``register_pretrained``)."""

from __future__ import annotations

from collections.abc import Callable
from importlib.resources import files
from typing import Any

from ganframe.hookspecs import hookimpl

#: sha256 of ``pretrained/gaussian-ring.safetensors`` (checked whenever it is loaded).
GAUSSIAN_RING_SHA256 = "b69f89386f299e5529ad2ec1054b7f3088a0c1ed3adaad5b48f58f19806394f9"


@hookimpl
def register_commands(register: Callable[..., Any]) -> None:
    register("models", "ganframe.builtin.models_cli:models",
             summary="List the pretrained generators installed plugins ship (sample them "
             "by name).")
    register("export", "ganframe.builtin.models_cli:export",
             summary="Write a checkpoint's generator to a small file to share or ship "
             "(ganframe sample reads it).")


@hookimpl
def register_pretrained(register: Callable[..., Any]) -> None:
    register(
        "gaussian-ring",
        files("ganframe.builtin") / "pretrained" / "gaussian-ring.safetensors",
        GAUSSIAN_RING_SHA256,
        summary="The toy: 8 Gaussians on a ring (recipe gaussian-ring, 1000 steps)",
        card={"modes_covered": 8, "high_quality": 0.72, "sliced_w1": 0.084},
    )
