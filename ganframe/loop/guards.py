"""What protects a run: stopping cleanly on SIGINT/SIGTERM/SIGHUP, and divergence handling.

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

__all__ = ["STOP_SIGNALS", "DivergenceGuard", "SignalStop", "StopNow"]

#: What stops a run cleanly: Ctrl-C, ``kill``, and a closed terminal (not on Windows).
STOP_SIGNALS: tuple[int, ...] = tuple(
    s for s in (signal.SIGINT, signal.SIGTERM, getattr(signal, "SIGHUP", None)) if s is not None
)


class StopNow(KeyboardInterrupt):
    """A second SIGTERM or SIGHUP: unwind at once (temporary files are removed on the way,
    finished checkpoints stay) and exit with 128 + the signal's number. A KeyboardInterrupt,
    so that nothing that catches ``Exception`` can swallow it."""

    def __init__(self, signum: int) -> None:
        super().__init__(f"stopped at once by a second signal {signum}")
        self.signum = signum

    @property
    def exit_code(self) -> int:
        return 128 + self.signum


class SignalStop(Callback):
    """First SIGINT/SIGTERM/SIGHUP: stop after this step with a checkpoint (exit 128 + the
    signal's number: 130, 143, 129). Second: stop at once (130 for SIGINT, else 128 + its
    number). A signal during the final samples, metrics or checkpoint lets them finish and
    still reports the interruption (see :class:`~ganframe.loop.trainer.Interrupted`).

    SIGHUP is what a closing terminal sends: without a handler it would kill the run without
    a checkpoint. In a multi-process run the ranks agree at logging steps, so that no step
    pays for an extra synchronisation and every rank stops at the same step."""

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
                self._second(signum)
            self.signum = trainer.signal_received = signum
            trainer.message("stopping after this step and writing a checkpoint (press Ctrl-C "
                            "again to stop at once)")

        # A signal someone chose to ignore stays ignored: `nohup` ignores SIGHUP precisely so
        # that closing the terminal does not stop the run.
        self._previous = {s: signal.signal(s, handler) for s in STOP_SIGNALS
                          if signal.getsignal(s) is not signal.SIG_IGN}

    def _second(self, signum: int) -> None:
        """Stop at once: a third signal gets the default action (kill, or KeyboardInterrupt)."""
        for s in STOP_SIGNALS:
            signal.signal(s, signal.default_int_handler if s == signal.SIGINT else signal.SIG_DFL)
        if signum == signal.SIGINT:
            raise KeyboardInterrupt
        raise StopNow(signum)

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
