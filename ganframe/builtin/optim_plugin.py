"""Registers the core's optimisers and learning-rate schedules.

A hookimpl module like every other plugin's: references are lazy ``"module:attr"`` strings,
so listing plugins imports nothing more, and only building an optimiser imports torch. A
third-party plugin adds its own optimiser or schedule the same way, with no change to the core.
"""

from __future__ import annotations

from ganframe.hookspecs import hookimpl

_MODULE = "ganframe.builtin.optim"

_OPTIMIZERS = (
    ("adam", "AdamConfig", "Adam (the default when type is left out)"),
    ("adamw", "AdamConfig", "AdamW: Adam with decoupled weight decay"),
    ("rmsprop", "RMSpropConfig", "RMSprop (as in the original WGAN)"),
    ("sgd", "SGDConfig", "Plain stochastic gradient descent, optionally with momentum"),
)

_SCHEDULES = (
    ("constant", "ConstantConfig", "The learning rate as set (the default)"),
    ("linear", "LinearConfig", "Linear decay to end_factor over the phase, after an optional "
     "warm-up"),
    ("cosine", "CosineConfig", "Half-cosine decay to min_factor over the phase, after an "
     "optional warm-up"),
    ("warmup", "WarmupConfig", "Linear warm-up over the first steps of the phase, then "
     "constant"),
)


@hookimpl
def register_optimizers(register):
    for name, config, summary in _OPTIMIZERS:
        register(name, f"{_MODULE}:{name}", config=f"{_MODULE}:{config}", summary=summary)


@hookimpl
def register_schedules(register):
    for name, config, summary in _SCHEDULES:
        register(name, f"{_MODULE}:{name}", config=f"{_MODULE}:{config}", summary=summary)
