"""What protects a run: stopping cleanly on SIGINT/SIGTERM, and divergence handling.

Both are callbacks. The signal guard turns the first signal into "finish this step, write a
checkpoint, stop" (a second one stops at once; checkpoint writes are atomic, so nothing on
disk is ever half-written). The divergence guard stops with the last good checkpoint named,
or rolls back to it with lower learning rates, as ``train.on_nonfinite`` says.
"""

from __future__ import annotations

import signal
import threading
from typing import TYPE_CHECKING, Any

from ganframe import distributed
from ganframe.errors import UserError
from ganframe.loop.events import Callback

if TYPE_CHECKING:
    from ganframe.loop.trainer import Trainer, TrainResult

__all__ = ["DivergenceGuard", "SignalStop"]


class SignalStop(Callback):
    """First SIGINT/SIGTERM: stop after this step with a checkpoint. Second: stop at once.

    In a multi-process run the ranks agree at logging steps, so that no step pays for an
    extra synchronisation and every rank stops at the same step."""

    def __init__(self, log_every: int) -> None:
        self.log_every = log_every
        self.signum: int | None = None
        self._previous: dict[int, Any] = {}

    def on_run_start(self, trainer: Trainer) -> None:
        self.signum = None
        if threading.current_thread() is not threading.main_thread():
            return

        def handler(signum: int, frame: Any) -> None:
            if self.signum is not None:
                signal.signal(signal.SIGINT, signal.default_int_handler)
                raise KeyboardInterrupt
            self.signum = signum
            trainer.message("stopping after this step and writing a checkpoint (press Ctrl-C "
                            "again to stop at once)")

        self._previous = {s: signal.signal(s, handler) for s in (signal.SIGINT, signal.SIGTERM)}

    def on_step_end(self, trainer: Trainer) -> None:
        if not trainer.dist.enabled:
            trainer.stop_signal = self.signum
        elif trainer.state.step % self.log_every == 0 and distributed.any_rank(
            self.signum is not None, trainer.dist.world
        ):
            trainer.stop_signal = self.signum or signal.SIGTERM

    def on_run_end(self, trainer: Trainer, result: TrainResult | None) -> None:
        for s, h in self._previous.items():
            signal.signal(s, h)
        self._previous = {}


class DivergenceGuard(Callback):
    """``on_nonfinite = "stop"``: a clear error naming the last good checkpoint.
    ``"rollback"``: restore it, multiply the learning rates by ``rollback_lr_factor`` (the
    trainer applies factor ** rollbacks), drop what was logged after it, and continue."""

    def __init__(self, settings: Any, folder: Any, restore: Any) -> None:
        self.settings = settings
        self.folder = folder  # checkpoint.CheckpointDir
        self.restore = restore  # restore(trainer, path): put the run back from a checkpoint

    def on_divergence(self, trainer: Trainer, step: int, what: str) -> None:
        s = self.settings
        last = self.folder.latest()
        where = f"the last good checkpoint is {last}" if last else "no checkpoint was written yet"
        if s.on_nonfinite == "stop" or last is None:
            raise UserError(
                f"training diverged at step {step} ({what}); {where}. Lower the learning "
                'rates, add grad_clip, or set train.on_nonfinite = "rollback"'
                + (" with train.checkpoint_every > 0" if last is None else "") + "."
            )
        rollbacks = trainer.state.rollbacks
        if rollbacks >= s.max_rollbacks:
            raise UserError(
                f"training diverged at step {step} ({what}) again after {rollbacks} rollbacks "
                f"(train.max_rollbacks); {where}."
            )
        self.restore(trainer, last)
        trainer.state.rollbacks = rollbacks + 1
        trainer.message(
            f"diverged at step {step} ({what}); rolled back to {last} (step "
            f"{trainer.state.step}) with learning rates x{s.rollback_lr_factor} (rollback "
            f"{rollbacks + 1} of {s.max_rollbacks})"
        )
