"""The built-in optimisers (adam, adamw, rmsprop, sgd) and learning-rate schedules (constant,
linear, cosine, warmup), registered by :mod:`ganframe.builtin.optim_plugin`.

The optimiser configs hold exactly the options, defaults and bounds that the recipe's
``[optim.generator]`` / ``[optim.critic]`` tables had before optimisers became components, so
every existing recipe means what it meant. Validating a recipe reads these models, so this
module imports torch only inside the factories.

A schedule is a pure function ``factor(step, total) -> float`` of the step within the current
phase and that phase's length: the loop multiplies the optimiser's learning rate by it before
every step. Being pure, it needs no state in checkpoints (resume is exact), and each phase
starts its schedule again.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import TYPE_CHECKING, Annotated, Any

from pydantic import BaseModel, ConfigDict, Field

if TYPE_CHECKING:
    import torch

__all__ = [
    "AdamConfig",
    "Constant",
    "ConstantConfig",
    "Cosine",
    "CosineConfig",
    "Linear",
    "LinearConfig",
    "OptimizerConfig",
    "RMSpropConfig",
    "SGDConfig",
    "Warmup",
    "WarmupConfig",
    "adam",
    "adamw",
    "constant",
    "cosine",
    "linear",
    "rmsprop",
    "sgd",
    "warmup",
]

_STRICT = ConfigDict(extra="forbid")

# -- optimisers ----------------------------------------------------------------------------


class OptimizerConfig(BaseModel):
    """What every built-in optimiser takes. A plugin's optimiser config needs ``lr`` too: the
    loop's learning-rate bookkeeping (phases, schedules, rollbacks) starts from it."""

    model_config = _STRICT
    lr: float = Field(2e-4, gt=0, description="Learning rate.")
    weight_decay: float = Field(0.0, ge=0, description="L2 penalty / decoupled decay (AdamW).")


_Beta = Annotated[float, Field(ge=0, lt=1)]


class AdamConfig(OptimizerConfig):
    betas: tuple[_Beta, _Beta] = Field(
        (0.5, 0.999), description="Adam's moment decays; GANs often use 0.5 or 0."
    )
    eps: float = Field(1e-8, gt=0, description="Added to the denominator for stability.")


class RMSpropConfig(OptimizerConfig):
    alpha: float = Field(0.99, gt=0, lt=1, description="Decay of the squared-gradient average.")
    eps: float = Field(1e-8, gt=0, description="Added to the denominator for stability.")
    momentum: float = Field(0.0, ge=0, description="Momentum factor.")


class SGDConfig(OptimizerConfig):
    momentum: float = Field(0.0, ge=0, description="Momentum factor.")
    nesterov: bool = Field(False, description="Nesterov momentum.")


def adam(config: AdamConfig, params: list[torch.nn.Parameter]) -> torch.optim.Optimizer:
    import torch

    return torch.optim.Adam(
        params,
        lr=config.lr,
        betas=tuple(config.betas),
        eps=config.eps,
        weight_decay=config.weight_decay,
    )


def adamw(config: AdamConfig, params: list[torch.nn.Parameter]) -> torch.optim.Optimizer:
    import torch

    return torch.optim.AdamW(
        params,
        lr=config.lr,
        betas=tuple(config.betas),
        eps=config.eps,
        weight_decay=config.weight_decay,
    )


def rmsprop(config: RMSpropConfig, params: list[torch.nn.Parameter]) -> torch.optim.Optimizer:
    import torch

    return torch.optim.RMSprop(
        params,
        lr=config.lr,
        alpha=config.alpha,
        eps=config.eps,
        momentum=config.momentum,
        weight_decay=config.weight_decay,
    )


def sgd(config: SGDConfig, params: list[torch.nn.Parameter]) -> torch.optim.Optimizer:
    import torch

    return torch.optim.SGD(
        params,
        lr=config.lr,
        momentum=config.momentum,
        nesterov=config.nesterov,
        weight_decay=config.weight_decay,
    )


# -- schedules -----------------------------------------------------------------------------


class ConstantConfig(BaseModel):
    model_config = _STRICT


def _warmup_steps() -> Any:  # a pydantic Field, shared by two models
    return Field(
        0,
        ge=0,
        description="First rise linearly over this many steps of the phase (factor "
        "(step+1)/(warmup_steps+1)), then decay over the rest of the phase.",
    )


class LinearConfig(BaseModel):
    model_config = _STRICT
    end_factor: float = Field(
        0.0,
        ge=0,
        le=1,
        description="Factor the learning rate decays to, linearly, by the end of the phase.",
    )
    warmup_steps: int = _warmup_steps()


class CosineConfig(BaseModel):
    model_config = _STRICT
    min_factor: float = Field(
        0.0,
        ge=0,
        le=1,
        description="Factor the learning rate decays to, along half a cosine, by the end of "
        "the phase.",
    )
    warmup_steps: int = _warmup_steps()


class WarmupConfig(BaseModel):
    model_config = _STRICT
    steps: int = Field(
        gt=0,
        description="Length of the warm-up: factor (step+1)/(steps+1) for the first `steps` "
        "steps of the phase, then 1.",
    )


def _warm(step: int, warmup: int) -> float | None:
    """The warm-up factor while ``step`` is inside it (never 0: no step is wasted)."""
    return (step + 1) / (warmup + 1) if step < warmup else None


def _progress(step: int, total: int, warmup: int) -> float:
    """How far through the decay after the warm-up ``step`` is, in [0, 1)."""
    span = total - warmup
    return (step - warmup) / span if span > 0 else 0.0


@dataclass(frozen=True)
class Constant:
    """Factor 1 at every step: the optimiser's (or the phase's) learning rate as it is."""

    def factor(self, step: int, total: int) -> float:
        return 1.0


@dataclass(frozen=True)
class Linear:
    end_factor: float = 0.0
    warmup_steps: int = 0

    def factor(self, step: int, total: int) -> float:
        warm = _warm(step, self.warmup_steps)
        if warm is not None:
            return warm
        return 1.0 - (1.0 - self.end_factor) * _progress(step, total, self.warmup_steps)


@dataclass(frozen=True)
class Cosine:
    min_factor: float = 0.0
    warmup_steps: int = 0

    def factor(self, step: int, total: int) -> float:
        warm = _warm(step, self.warmup_steps)
        if warm is not None:
            return warm
        p = _progress(step, total, self.warmup_steps)
        return self.min_factor + (1.0 - self.min_factor) * 0.5 * (1.0 + math.cos(math.pi * p))


@dataclass(frozen=True)
class Warmup:
    steps: int

    def factor(self, step: int, total: int) -> float:
        warm = _warm(step, self.steps)
        return 1.0 if warm is None else warm


def constant(config: ConstantConfig) -> Constant:
    return Constant()


def linear(config: LinearConfig) -> Linear:
    return Linear(config.end_factor, config.warmup_steps)


def cosine(config: CosineConfig) -> Cosine:
    return Cosine(config.min_factor, config.warmup_steps)


def warmup(config: WarmupConfig) -> Warmup:
    return Warmup(config.steps)
