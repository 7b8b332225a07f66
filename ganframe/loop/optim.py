"""Learning rates, optimiser hyper-parameters on resume, and the generator EMA.

The loop builds no optimiser (the registered factories do, see :mod:`ganframe.assemble`) and
knows no optimiser type. What it owns is *when* each learning rate applies: the recipe's rate
(or the one a phase's ``lr`` table set, from that phase on), times the optimiser's schedule
factor at the step within the phase, times the rollback factor. :class:`LearningRates`
recomputes that before every step and writes it into the param groups, so the recipe is the
one truth: a checkpoint's stored learning rate never outlives a resume, and a schedule, being a
pure function of (phase step, phase length), needs no state of its own to resume exactly.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any, Protocol, runtime_checkable

import torch
from torch import Tensor, nn

__all__ = [
    "LearningRates",
    "Schedule",
    "ema_update",
    "hyperparameters",
    "phase_rates",
    "set_hyperparameters",
]


@runtime_checkable
class Schedule(Protocol):
    """A learning-rate schedule: what a ``register_schedules`` factory returns.

    ``factor(step, total)`` multiplies the learning rate at ``step`` (0-based, counted from
    the start of the current phase) of a phase ``total`` steps long. It must be a pure
    function of its arguments: it is called again after a resume, and each phase starts the
    schedule from step 0.
    """

    def factor(self, step: int, total: int) -> float: ...


class LearningRates:
    """Every optimiser's learning rate, recomputed from the recipe before each step.

    ``base`` holds each optimiser's learning rate from the recipe, ``schedules`` its schedule
    (None: constant). Param groups keep the ratio to the optimiser's rate that its factory
    gave them (1 for the built-in optimisers, which have one group), so a plugin's optimiser
    with, say, a slower group for embeddings keeps it. With no schedule and a scale of 1 the
    rate written is exactly the base float, so a resumed run matches an uninterrupted one bit
    for bit.
    """

    def __init__(
        self,
        optimizers: Mapping[str, torch.optim.Optimizer],
        base: Mapping[str, float],
        schedules: Mapping[str, Schedule | None] | None = None,
    ) -> None:
        missing = sorted(set(optimizers) - set(base))
        if missing:
            raise ValueError(f"no base learning rate for optimiser(s) {', '.join(missing)}")
        self.optimizers = dict(optimizers)
        self.base = {name: float(base[name]) for name in self.optimizers}
        self.schedules = {name: (schedules or {}).get(name) for name in self.optimizers}
        self._phase = dict(self.base)
        # Taken now, from the optimisers as their factories built them (before any restore).
        self._ratios = {
            name: [_group_lr(g) / self.base[name] if self.base[name] else 1.0
                   for g in opt.param_groups]
            for name, opt in self.optimizers.items()
        }

    def start_phase(self, lr_overrides: Mapping[str, float]) -> None:
        """The rates in force in the phase that starts (or resumes) now replace the recipe's
        rates of those optimisers; the others (all of them, for an empty table) use the
        recipe's rate. A recipe phase's ``lr`` table holds until a later phase sets another
        one, so pass that phase's entry of :func:`phase_rates`. Names of optimisers the run
        does not have (a critic rate in a run without critic) are ignored."""
        self._phase = {
            name: float(lr_overrides.get(name, rate)) for name, rate in self.base.items()
        }

    def planned(self, phase_step: int, phase_steps: int, scale: float = 1.0) -> dict[str, float]:
        """The rate of each optimiser at ``phase_step`` of a phase ``phase_steps`` long."""
        out = {}
        for name, rate in self._phase.items():
            schedule = self.schedules[name]
            if schedule is not None:
                rate = rate * float(schedule.factor(phase_step, phase_steps))
            if scale != 1.0:
                rate = rate * scale
            out[name] = rate
        return out

    def apply(self, phase_step: int, phase_steps: int, scale: float = 1.0) -> None:
        """Write the rates for ``phase_step`` into every param group; the loop calls this
        before each step, with ``scale = rollback_lr_factor ** rollbacks``."""
        for name, rate in self.planned(phase_step, phase_steps, scale).items():
            groups = self.optimizers[name].param_groups
            for group, ratio in zip(groups, self._ratios[name], strict=True):
                _set_group_lr(group, rate if ratio == 1.0 else rate * ratio)

    def current(self) -> dict[str, float]:
        """The rate each optimiser's first param group holds now."""
        return {name: _group_lr(opt.param_groups[0]) for name, opt in self.optimizers.items()}


def phase_rates(tables: Sequence[Mapping[str, float]]) -> list[dict[str, float]]:
    """The learning rates in force in each phase, from the phases' own ``lr`` tables.

    A phase's table sets those rates from its start on, for the later phases too, until one
    of them sets another (``lr = { critic = 1e-4 }`` in a pre-training phase stays for the
    adversarial phase after it). Computed from the tables alone, so a run resumed in any
    phase gets the same rates as a run that got there without stopping.
    """
    out: list[dict[str, float]] = []
    current: dict[str, float] = {}
    for table in tables:
        current = {**current, **{k: float(v) for k, v in table.items()}}
        out.append(dict(current))
    return out


def _group_lr(group: dict[str, Any]) -> float:
    lr = group["lr"]
    return float(lr.item() if isinstance(lr, Tensor) else lr)


def _set_group_lr(group: dict[str, Any], lr: float) -> None:
    if isinstance(group["lr"], Tensor):  # e.g. capturable or fused optimisers
        group["lr"].fill_(lr)
    else:
        group["lr"] = lr


# -- hyper-parameters on resume -------------------------------------------------------------

#: Param-group keys that are not hyper-parameters a recipe sets.
_NOT_HYPER = frozenset({"params", "lr", "initial_lr", "param_names"})


def hyperparameters(optimizer: torch.optim.Optimizer) -> list[dict[str, Any]]:
    """Each param group's settings except its parameters and learning rate.

    Taken right after the optimiser is built from the recipe, this is what
    :func:`set_hyperparameters` writes back over a restored checkpoint's values, for any
    optimiser type, a plugin's included, whatever its config calls its options.
    """
    return [
        {k: v.clone() if isinstance(v, Tensor) else v for k, v in g.items() if k not in _NOT_HYPER}
        for g in optimizer.param_groups
    ]


def set_hyperparameters(
    optimizer: torch.optim.Optimizer,
    config: Any,
) -> list[tuple[str, Any, Any]]:
    """Write the recipe's current hyper-parameters into the param groups; return what changed.

    A checkpoint restores every param-group value it saved (betas, eps, weight_decay,
    momentum, ...), so without this a recipe changed on resume would be recorded but silently
    replaced by the checkpoint's values. ``config`` is either the optimiser's config (a
    pydantic model or a mapping, applied to every group: each field that is also a param-group
    key), or the list :func:`hyperparameters` returned for this optimiser when it was built
    (one mapping per group). ``lr`` is left alone: :class:`LearningRates` owns it. Returns one
    ``(key, old, new)`` per distinct change, for the caller to report.
    """
    if isinstance(config, Sequence) and not isinstance(config, str | bytes):
        per_group = list(config)
        if len(per_group) != len(optimizer.param_groups):
            raise ValueError(
                f"{len(per_group)} sets of hyper-parameters for "
                f"{len(optimizer.param_groups)} param groups"
            )
    else:
        values = config.model_dump() if hasattr(config, "model_dump") else dict(config)
        per_group = [values] * len(optimizer.param_groups)
    changes: list[tuple[str, Any, Any]] = []
    for group, values in zip(optimizer.param_groups, per_group, strict=True):
        for key, new in values.items():
            if key in _NOT_HYPER or key not in group:
                continue
            old = group[key]
            if isinstance(old, tuple) and isinstance(new, list):
                new = tuple(new)
            if _same(old, new):
                continue
            if isinstance(old, Tensor) and not isinstance(new, Tensor):
                old_value = old.tolist()
                old.fill_(new)
            else:
                old_value = old
                group[key] = new.clone() if isinstance(new, Tensor) else new
            change = (key, old_value, new.tolist() if isinstance(new, Tensor) else new)
            if change not in changes:
                changes.append(change)
    return changes


def _same(a: Any, b: Any) -> bool:
    if isinstance(a, Tensor) or isinstance(b, Tensor):
        ta, tb = torch.as_tensor(a).cpu(), torch.as_tensor(b).cpu()
        return ta.shape == tb.shape and bool(torch.equal(ta.to(tb.dtype), tb))
    if isinstance(a, bool) or isinstance(b, bool):  # True == 1, but a flag is no number
        return a is b
    return bool(a == b)


# -- EMA ------------------------------------------------------------------------------------


@torch.no_grad()
def ema_update(ema: nn.Module, model: nn.Module, decay: float) -> None:
    """ema = decay * ema + (1 - decay) * model for parameters; buffers are copied."""
    for e, p in zip(ema.parameters(), model.parameters(), strict=True):
        e.lerp_(p.detach(), 1.0 - decay)
    for e, b in zip(ema.buffers(), model.buffers(), strict=True):
        e.copy_(b)
