"""ganframe: train GANs from one readable TOML recipe, extended by plugins.

This module stays import-light on purpose: ``ganframe --help`` and plugin listing must not
pay for importing torch. The Python API lives in :mod:`ganframe.api` and is imported lazily
through the attributes below.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from ganframe.errors import UserError
from ganframe.hookspecs import hookimpl
from ganframe.version import PLUGIN_API_VERSION, SUPPORTED_PLUGIN_APIS, __version__

__all__ = [
    "PLUGIN_API_VERSION",
    "SUPPORTED_PLUGIN_APIS",
    "UserError",
    "__version__",
    "hookimpl",
    "load_checkpoint",
    "load_recipe",
    "sample",
    "train",
]

_API = {"load_recipe", "train", "load_checkpoint", "sample"}

if TYPE_CHECKING:  # pragma: no cover
    from ganframe.api import load_checkpoint, load_recipe, sample, train


def __getattr__(name: str) -> Any:
    if name in _API:
        from ganframe import api

        return getattr(api, name)
    raise AttributeError(f"module 'ganframe' has no attribute {name!r}")
