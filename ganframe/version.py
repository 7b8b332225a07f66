"""The version constants, in a module of their own that imports nothing.

Every layer may need them (the plugin host checks plugins against them, checkpoints record
them, the CLI prints them), and reading them from the package ``__init__`` would pull the
whole package in: ``plugins -> ganframe/__init__ -> api -> plugins`` was a hidden cycle.
``pyproject.toml`` reads :data:`__version__` from here, so there is one place to bump it.
"""

from __future__ import annotations

__all__ = ["PLUGIN_API_VERSION", "SUPPORTED_PLUGIN_APIS", "__version__"]

__version__ = "0.1.0"

#: Version of the plugin contract (hooks + component protocols) this ganframe speaks. A plugin
#: may declare the version it was written for as ``GANFRAME_PLUGIN_API = N`` in the module its
#: entry point names; see docs/plugins.md. Version 2 added class labels to the contracts
#: (``Batch``, ``generate(..., labels=None)``, ``StepContext.labels``), callbacks and loggers
#: (``register_callbacks``, ``register_loggers``) and registered optimisers and schedules.
#: Version 3 added pretrained generators (``register_pretrained``); a plugin that implements
#: it declares 3, so that an older ganframe reports it as incompatible.
PLUGIN_API_VERSION = 3

#: Plugin API versions the host loads. Version 1 plugins keep working unchanged: a dataset may
#: still return a plain tensor from ``get``, generators that take no ``labels`` are
#: unconditional, and the new hooks are optional. Any other declared version is refused with
#: its reason (the plugin is listed as ``incompatible``, every other plugin keeps working).
SUPPORTED_PLUGIN_APIS: frozenset[int] = frozenset({1, 2, 3})
