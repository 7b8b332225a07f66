"""The data stream: endless shuffled batches with a cursor that makes resume exact."""

from __future__ import annotations

from typing import Any

import torch
from torch import Tensor

from ganframe.errors import UserError

__all__ = ["DataStream"]


class DataStream:
    """Endless shuffled batches with an explicit (epoch, position) cursor.

    Each epoch's order is a permutation drawn from ``(seed, epoch)`` alone, so resuming at a
    cursor reproduces the same batches without replaying the run. ``rank``/``world`` take a
    disjoint shard of each epoch for multi-process training.
    """

    def __init__(
        self, dataset: Any, batch_size: int, seed: int, rank: int = 0, world: int = 1
    ) -> None:
        self.dataset = dataset
        self.batch_size = batch_size
        self.seed = seed
        self.rank, self.world = rank, world
        self.epoch = 0
        self.position = 0
        self._order: Tensor | None = None
        n = len(dataset)
        per_rank = n // world
        if per_rank < batch_size:
            raise UserError(
                f"train.batch_size: {batch_size} is larger than the dataset ({n} items"
                + (f", {per_rank} per process" if world > 1 else "")
                + "); lower the batch size or use more data."
            )
        self.batches_per_epoch = per_rank // batch_size

    def _epoch_order(self) -> Tensor:
        if self._order is None:
            rng = torch.Generator().manual_seed(self.seed * 1_000_003 + self.epoch)
            perm = torch.randperm(len(self.dataset), generator=rng)
            per_rank = len(self.dataset) // self.world
            self._order = perm[self.rank * per_rank : (self.rank + 1) * per_rank]
        return self._order

    def next(self) -> Any:
        """The next batch as the dataset gives it (a Tensor, or a Batch with labels)."""
        order = self._epoch_order()
        start = self.position * self.batch_size
        batch = self.dataset.get(order[start : start + self.batch_size])
        self.position += 1
        if self.position >= self.batches_per_epoch:
            self.epoch, self.position, self._order = self.epoch + 1, 0, None
        return batch

    def state(self) -> dict[str, int]:
        return {"epoch": self.epoch, "position": self.position}

    def load_state(self, state: dict[str, int]) -> None:
        self.epoch, self.position, self._order = int(state["epoch"]), int(state["position"]), None
