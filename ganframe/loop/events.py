"""The loop's events and the :class:`Callback` base: the one extension point around training.

The trainer keeps the step (phases -> n_critic critic updates -> generator update -> EMA) and
announces what happens; logging, sample grids, metrics, checkpoints, the divergence guard,
signal handling and the progress display all listen. A plugin adds behaviour by subclassing
:class:`Callback` and registering it (``register_callbacks`` / ``register_loggers``), never by
editing the loop.

Order: callbacks are called in list order. The trainer's list is the core's own callbacks
first (scalar logging, sample grids, metrics, checkpoints, signals, divergence guard), then
the recipe's ``[[loggers]]``, then its ``[[callbacks]]``, then those the caller passed (the
command line's progress display). Every method receives the trainer first; read what you need
from it (``trainer.state.step``, ``trainer.generator``, ``trainer.out``, ``trainer.is_main``)
and do not change the networks or the RNG outside ``torch.random.fork_rng``, or resume stops
being exact.

This module imports nothing but the standard library, so callbacks can be written and listed
without torch.
"""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:  # annotations only
    from ganframe.loop.trainer import Phase, Trainer, TrainResult

__all__ = ["EVENTS", "Callback", "CallbackList"]


class Callback:
    """Base class of everything that listens to a run. Every method is a no-op.

    ``state_dict``/``load_state_dict`` let a callback keep JSON-able state in checkpoints
    (stored under its ``name`` in the run record), so a resumed run continues where the
    interrupted one stood.
    """

    #: Key of this callback's state in a checkpoint; recipe callbacks get their type name.
    name: str = ""

    def on_run_start(self, trainer: Trainer) -> None:
        """Before the first step; ``trainer.resumed`` says whether a checkpoint was restored."""

    def on_phase_start(self, trainer: Trainer, phase: Phase) -> None:
        """A phase begins (or resumes); ``trainer.objective`` is the phase's objective."""

    def on_step_end(self, trainer: Trainer) -> None:
        """After one generator step: ``trainer.state.step`` is the number of steps done."""

    def on_phase_end(self, trainer: Trainer, phase: Phase) -> None:
        """The phase ran its last step (after that step's ``on_step_end``)."""

    def on_log(self, trainer: Trainer, row: dict[str, Any]) -> None:
        """A row of scalars: ``event`` is ``"train"`` (means since the last row) or
        ``"metric"``; ``step`` and ``phase`` say where. Loggers write these."""

    def on_samples(self, trainer: Trainer, samples: Any, path: Path | None) -> None:
        """A batch of generated samples (CPU tensor, fixed noise) and the file written."""

    def on_evaluate(self, trainer: Trainer, name: str, values: dict[str, Any]) -> None:
        """A metric was evaluated (its row also reaches :meth:`on_log`)."""

    def on_checkpoint(self, trainer: Trainer, path: Path) -> None:
        """A checkpoint was written (rank 0 only)."""

    def on_interrupt(self, trainer: Trainer, signum: int) -> None:
        """SIGINT/SIGTERM: the step finished; the checkpoint callback saves here."""

    def on_divergence(self, trainer: Trainer, step: int, what: str) -> None:
        """A loss or the weights stopped being finite at ``step``. The divergence guard
        either raises (stop) or restores the last checkpoint (rollback)."""

    def on_restore(self, trainer: Trainer, path: Path) -> None:
        """The run's state was put back from a checkpoint (resume or rollback); anything
        logged after ``trainer.state.step`` belongs to a future that did not happen."""

    def on_message(self, trainer: Trainer, text: str) -> None:
        """A line for the person watching (resume notes, rollbacks, stop requests)."""

    def on_train_end(self, trainer: Trainer) -> None:
        """The last step is done: final logs, samples, metrics and checkpoint happen here."""

    def on_run_end(self, trainer: Trainer, result: TrainResult | None) -> None:
        """Always called last, also when the run fails (``result`` is None then)."""

    def state_dict(self) -> dict[str, Any]:
        return {}

    def load_state_dict(self, state: dict[str, Any]) -> None:
        return None


#: The event names, in the order of a run's life.
EVENTS: tuple[str, ...] = tuple(
    name for name in vars(Callback) if name.startswith("on_")
)


class CallbackList:
    """Calls an event on every callback that implements it, in order.

    Only callbacks that override an event are called for it, so a list of mostly no-op
    callbacks costs nothing per step.
    """

    def __init__(self, callbacks: list[Callback]) -> None:
        self.callbacks = list(callbacks)
        self._listeners: dict[str, list[Any]] = {}
        for event in EVENTS:
            base = getattr(Callback, event)
            self._listeners[event] = [
                getattr(cb, event)
                for cb in self.callbacks
                if getattr(type(cb), event, base) is not base
            ]

    def emit(self, event: str, *args: Any) -> None:
        for listener in self._listeners[event]:
            listener(*args)

    def find(self, kind: type) -> Any:
        """The first callback of a type (the core's own parts look each other up here)."""
        for cb in self.callbacks:
            if isinstance(cb, kind):
                return cb
        return None
