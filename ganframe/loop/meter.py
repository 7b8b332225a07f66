"""Scalars of the steps since the last log row, kept on the device until they are logged.

Objectives return their logs as tensors; reading each one back to the CPU every update would
synchronise a GPU every step, so the meter sums on the device and reads once per log row.
"""

from __future__ import annotations

import math
from collections.abc import Mapping

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
