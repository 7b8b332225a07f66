"""The core's optional callbacks, chosen in ``[[callbacks]]`` like any plugin's.

``throughput`` reports how fast a run trains, as rows of its own (``event = "throughput"``)
so that the training rows stay bit-identical between a straight and a resumed run: wall-clock
numbers differ between any two runs.
"""

from __future__ import annotations

import time
from typing import Any

from pydantic import BaseModel, ConfigDict, Field

from ganframe.loop.events import Callback


class ThroughputConfig(BaseModel):
    model_config = ConfigDict(extra="forbid")
    every: int = Field(0, ge=0, description="Report every N steps (0: at train.log_every).")


class Throughput(Callback):
    """Steps and real samples per second since the last report (all processes together)."""

    def __init__(self, config: Any, ctx: Any = None) -> None:
        self.every = config.every
        self._t0 = 0.0
        self._step0 = 0
        self._seen0 = 0

    def _seen(self, trainer: Any) -> int:
        stream = trainer.stream
        batches = stream.epoch * stream.batches_per_epoch + stream.position
        return batches * stream.batch_size * trainer.dist.world

    def _mark(self, trainer: Any) -> None:
        self._t0 = time.perf_counter()
        self._step0, self._seen0 = trainer.state.step, self._seen(trainer)

    def on_run_start(self, trainer: Any) -> None:
        self._mark(trainer)

    def on_restore(self, trainer: Any, path: Any) -> None:
        self._mark(trainer)

    def on_step_end(self, trainer: Any) -> None:
        every = self.every or trainer.settings.log_every
        if trainer.state.step % every:
            return
        seconds = time.perf_counter() - self._t0
        if seconds <= 0:
            return
        steps = trainer.state.step - self._step0
        trainer.log({"step": trainer.state.step, "phase": trainer.phase_name,
                     "event": "throughput", "steps_per_s": steps / seconds,
                     "real_per_s": (self._seen(trainer) - self._seen0) / seconds})
        self._mark(trainer)
