"""Scalars of the steps since the last log row, kept on the device until they are logged.

Objectives return their logs as tensors; reading each one back to the CPU every update would
synchronise a GPU every step, so the meter sums on the device and reads once per log row.

A run that stops between two log rows (a signal, ``--max-steps``) keeps what the meter holds in
its checkpoint (:meth:`Meter.state`), and the resumed run puts it back (:meth:`Meter.load`), so
the next row averages exactly the steps an uninterrupted run's row averages, bit for bit: the
sums are float32 on the device, and their float64 copies in the JSON document hold the same
values.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from typing import Any

import torch
from torch import Tensor

from ganframe import distributed

__all__ = ["Meter"]


class Meter:
    def __init__(self, device: torch.device) -> None:
        self.device = device
        self.reset()

    def reset(self) -> None:
        self.sums: dict[str, Tensor] = {}
        self.counts: dict[str, int] = {}
        self.steps = 0

    def add(self, logs: Mapping[str, Tensor | float]) -> None:
        for key, value in logs.items():
            v = value.detach().float() if isinstance(value, Tensor) else torch.tensor(float(value))
            v = v.to(self.device)
            self.sums[key] = self.sums[key] + v if key in self.sums else v.clone()
            self.counts[key] = self.counts.get(key, 0) + 1

    def means(self, world: int = 1) -> tuple[dict[str, float], list[str]]:
        """Mean per update (critic scalars are summed over n_critic updates per step),
        averaged over processes, and the names of those that are not finite. Resets."""
        values = {k: v.item() / self.counts[k] for k, v in self.sums.items()}
        values = distributed.mean_scalars(values, world)
        self.reset()
        return values, sorted(k for k, v in values.items() if not math.isfinite(v))

    def state(self) -> dict[str, Any]:
        """What the meter holds, as JSON: ``{}`` when it is empty.

        Each sum is a float32 tensor; ``float()`` of it is the same value in float64, which JSON
        writes and reads back exactly, so :meth:`load` restores the identical float32 sum."""
        if not self.steps and not self.sums:
            return {}
        return {
            "steps": self.steps,
            "sums": {k: float(v.item()) for k, v in self.sums.items()},
            "counts": dict(self.counts),
        }

    def load(self, state: Mapping[str, Any]) -> None:
        """Put back what :meth:`state` returned (already checked by :func:`check_state`)."""
        self.reset()
        if not state:
            return
        self.steps = int(state["steps"])
        self.sums = {k: torch.tensor(float(v), dtype=torch.float32, device=self.device)
                     for k, v in state["sums"].items()}
        self.counts = {k: int(v) for k, v in state["counts"].items()}

    def gather_states(self, world: int) -> list[dict[str, Any]]:
        """Every process's :meth:`state`, in rank order (all processes call this together).

        The scalars' names are the same on every process (one objective), so each sends its
        step count, sums and counts as one float64 row in sorted-name order; float64 holds
        every float32 sum and every count exactly."""
        if world <= 1:
            return [self.state()]
        import torch.distributed as dist

        keys = sorted(self.sums)
        row = [float(self.steps), *(float(self.sums[k].item()) for k in keys),
               *(float(self.counts[k]) for k in keys)]
        mine = torch.tensor(row, dtype=torch.float64)
        out = [torch.empty_like(mine) for _ in range(world)]
        dist.all_gather(out, mine)
        states = []
        for t in out:
            values = t.tolist()
            sums, counts = values[1 : 1 + len(keys)], values[1 + len(keys) :]
            steps = int(values[0])
            states.append({} if not steps and not keys else {
                "steps": steps,
                "sums": dict(zip(keys, sums, strict=True)),
                "counts": {k: int(c) for k, c in zip(keys, counts, strict=True)},
            })
        return states


def check_state(state: Any) -> str | None:
    """Why ``state`` (read from a checkpoint) is not a meter state, or None if it is one."""
    if not isinstance(state, Mapping):
        return "not a JSON object"
    if not state:
        return None
    steps, sums, counts = state.get("steps"), state.get("sums"), state.get("counts")
    if not _count(steps):
        return f"'steps' must be a whole number >= 0 (found {_short(steps)})"
    if not isinstance(sums, Mapping) or not isinstance(counts, Mapping):
        return "'sums' and 'counts' must be JSON objects"
    if set(sums) != set(counts):
        return "'sums' and 'counts' must name the same scalars"
    for key, value in sums.items():
        if isinstance(value, bool) or not isinstance(value, int | float):
            return f"sums.{key} must be a number (found {_short(value)})"
        if math.isfinite(value) and abs(value) > torch.finfo(torch.float32).max:
            return f"sums.{key} is not a float32 value (found {_short(value)})"
        if not _count(counts[key]) or counts[key] < 1:
            return f"counts.{key} must be a whole number >= 1 (found {_short(counts[key])})"
    return None


def _count(value: Any) -> bool:
    return isinstance(value, int) and not isinstance(value, bool) and 0 <= value < 2**62


def _short(value: Any) -> str:
    text = repr(value)
    return text if len(text) <= 40 else text[:37] + "..."
