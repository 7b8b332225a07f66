"""The core's own callbacks: scalar logging, sample grids, metrics and checkpoints.

Each is an ordinary :class:`~ganframe.loop.events.Callback`; a plugin's callback sees the same
events with the same arguments. Their order in a run (see :mod:`ganframe.assemble`) is this
module's order: scalars are logged before samples, metrics and the checkpoint of the same
step, so a checkpoint never precedes the log row of its own step.
"""

from __future__ import annotations

import warnings
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

import torch

from ganframe import runfolder
from ganframe.components import EvalContext
from ganframe.errors import MetricUnavailable
from ganframe.loop import snapshot
from ganframe.loop.events import Callback

if TYPE_CHECKING:
    from ganframe.loop.trainer import Phase, Trainer

__all__ = ["Checkpointing", "LogScalars", "MetricRunner", "Progress", "SampleGrids"]

SAMPLE_SEED_OFFSET = 7919  # fixed noise for sample grids, distinct from the training stream


class LogScalars(Callback):
    """Every ``log_every`` steps: the mean of each logged scalar since the last row, as one
    ``"train"`` row for the loggers. A non-finite mean is divergence.

    A run that stops between two rows (a signal, ``--max-steps``) before finishing its phases
    writes no partial row: the meter's pending sums go into the checkpoint (this callback's
    state) and come back on resume, so the resumed log equals an uninterrupted run's. Only a
    run that finished all its phases flushes its last, partial row."""

    #: A colon cannot occur in a registered component's name, so no recipe callback clashes.
    name = "ganframe:log_scalars"

    def __init__(self, every: int) -> None:
        self.every = every
        self._trainer: Trainer | None = None
        self._gathered: tuple[int, list[dict[str, Any]]] | None = None  # (step, every rank's)
        self._loaded: list[dict[str, Any]] | None = None  # read from a checkpoint

    def flush(self, trainer: Trainer) -> None:
        from ganframe.loop.trainer import Diverged

        if not trainer.meter.steps:
            return
        values, bad = trainer.meter.means(trainer.dist.world)
        if bad:
            raise Diverged(trainer.state.step, f"non-finite {', '.join(bad)}")
        trainer.log({"step": trainer.state.step, "phase": trainer.phase_name, "event": "train",
                     **values})

    def on_run_start(self, trainer: Trainer) -> None:
        self._trainer = trainer

    def on_step_end(self, trainer: Trainer) -> None:
        if trainer.state.step % self.every == 0:
            self.flush(trainer)
        elif trainer.dist.enabled and _checkpoint_due(trainer):
            self._gather(trainer)

    def on_interrupt(self, trainer: Trainer, signum: int) -> None:
        self._stop(trainer)

    def on_train_end(self, trainer: Trainer) -> None:
        self._stop(trainer)

    def _stop(self, trainer: Trainer) -> None:
        if trainer.state.phase >= len(trainer.phases):  # the run is complete
            self.flush(trainer)
        elif trainer.dist.enabled:
            self._gather(trainer)

    def _gather(self, trainer: Trainer) -> None:
        """Every process's pending sums, before a checkpoint (all processes take part)."""
        self._gathered = (trainer.state.step, trainer.meter.gather_states(trainer.dist.world))

    def state_dict(self) -> dict[str, Any]:
        t = self._trainer
        if t is None:
            return {}
        if not t.dist.enabled:
            ranks = [t.meter.state()]
        elif self._gathered is not None and self._gathered[0] == t.state.step:
            ranks = self._gathered[1]
        else:
            ranks = []
        return {"ranks": ranks} if any(ranks) else {}

    def load_state_dict(self, state: dict[str, Any]) -> None:
        from ganframe.loop.meter import check_state

        ranks = state.get("ranks") if isinstance(state, dict) else None
        if not isinstance(ranks, list) or not ranks:
            raise ValueError("expected {'ranks': [the pending sums of each process]}")
        for i, one in enumerate(ranks):
            problem = check_state(one)
            if problem:
                raise ValueError(f"ranks.{i}: {problem}")
        self._loaded = ranks

    def on_restore(self, trainer: Trainer, path: Path) -> None:
        """Resume or rollback: the meter holds what it held when the checkpoint was made."""
        from ganframe.errors import UserError

        loaded, self._loaded = self._loaded, None
        trainer.meter.reset()
        if not loaded:
            return
        if len(loaded) != trainer.dist.world:
            raise UserError(
                f"{path}: callbacks.{self.name} holds the pending log sums of {len(loaded)} "
                f"process(es) but this run has {trainer.dist.world}; the checkpoint is damaged. "
                "Use another checkpoint (step-*.safetensors in the same folder)."
            )
        trainer.meter.load(loaded[trainer.dist.rank])


def _checkpoint_due(trainer: Trainer) -> bool:
    """Whether :class:`Checkpointing` saves at the end of this step."""
    cp = trainer.callbacks.find(Checkpointing)
    s = trainer.state.step
    return cp is not None and bool(cp.every) and s % cp.every == 0 and s < trainer.limit


class SampleGrids(Callback):
    """Samples from fixed noise every ``every`` steps and at the end, written by the data
    kind's default sample writer; the samples also go to :meth:`Callback.on_samples`.

    A conditional generator draws every class in turn (``count`` rounded up to a multiple of
    its classes), and the writer gets the labels: an image grid shows one row per class."""

    def __init__(
        self, every: int, count: int, write: Callable[..., Path] | None
    ) -> None:
        self.every, self.count, self.write = every, count, write

    def draw(self, trainer: Trainer) -> None:
        if not trainer.is_main:
            return
        labels = None
        with trainer.evaluating() as gen:
            rng = torch.Generator(device=trainer.device).manual_seed(
                trainer.seed + SAMPLE_SEED_OFFSET)
            n, k = self.count, int(getattr(gen, "num_classes", 0) or 0)
            if getattr(gen, "conditional", False) and k > 0:
                n = -(-n // k) * k
                labels = torch.arange(n, device=trainer.device) % k
                x = gen.generate(n, device=trainer.device, rng=rng, labels=labels)
            else:
                x = gen.generate(n, device=trainer.device, rng=rng)
        x = x.detach().float().cpu() if x.is_floating_point() else x.cpu()
        path = None
        if self.write is not None:
            stem = trainer.out / "samples" / f"step-{trainer.state.step:08d}"
            path = self.write(x, stem, None if labels is None else labels.tolist())
            runfolder.register(path)  # --force and a failed start's clean-up remove it
        trainer.emit("on_samples", x, path)

    def on_step_end(self, trainer: Trainer) -> None:
        s = trainer.state.step
        if self.every and s % self.every == 0 and s < trainer.limit:
            self.draw(trainer)

    def on_train_end(self, trainer: Trainer) -> None:
        self.draw(trainer)


@dataclass
class ScheduledMetric:
    name: str
    metric: Any
    every: int


class MetricRunner(Callback):
    """The recipe's ``[[metrics]]``: each every N steps (its ``every``) and at the end."""

    def __init__(self, metrics: list[ScheduledMetric]) -> None:
        self.metrics = metrics

    def run(self, trainer: Trainer, final: bool) -> None:
        if not trainer.is_main:  # every rank holds the same networks
            return
        s = trainer.state.step
        for m in list(self.metrics):
            if not final and not (m.every and s % m.every == 0):
                continue
            try:
                with trainer.evaluating() as gen:
                    values = m.metric.evaluate(
                        gen, trainer.dataset, EvalContext(trainer.device, trainer.seed,
                                                          trainer.data_info))
            except MetricUnavailable as exc:  # an optional metric that cannot run here
                warnings.warn(f"{exc} Training continues without it.", stacklevel=2)
                self.metrics.remove(m)
                continue
            trainer.emit("on_evaluate", m.name, values)
            trainer.log({"step": s, "phase": trainer.phase_name, "event": "metric",
                         "metric": m.name, **values})

    def on_step_end(self, trainer: Trainer) -> None:
        if trainer.state.step < trainer.limit:
            self.run(trainer, final=False)

    def on_train_end(self, trainer: Trainer) -> None:
        self.run(trainer, final=True)


class Checkpointing(Callback):
    """Checkpoints every ``checkpoint_every`` steps (a phase may set its own), on a stop
    request and at the end; refuses to write non-finite weights (that is divergence)."""

    def __init__(self, folder: Any) -> None:
        self.folder = folder  # a checkpoint.CheckpointDir
        self.every = 0

    def save(self, trainer: Trainer) -> Path:
        from ganframe.loop.trainer import Diverged

        if not snapshot.weights_finite(trainer):
            raise Diverged(trainer.state.step, "non-finite weights")
        path = snapshot.save(trainer, self.folder)
        runfolder.register(path)
        trainer.last_checkpoint = path
        if trainer.is_main:
            trainer.emit("on_checkpoint", path)
        return path

    def on_phase_start(self, trainer: Trainer, phase: Phase) -> None:
        self.every = phase.checkpoint_every

    def on_step_end(self, trainer: Trainer) -> None:
        s = trainer.state.step
        if self.every and s % self.every == 0 and s < trainer.limit:
            self.save(trainer)

    def on_interrupt(self, trainer: Trainer, signum: int) -> None:
        self.save(trainer)

    def on_train_end(self, trainer: Trainer) -> None:
        self.save(trainer)


class Progress(Callback):
    """Four plain functions as a callback, for notebooks and tests that want to watch a run
    without writing a class (the shape of the loop's callbacks before 0.2):
    ``on_phase(name, index, steps, done)``, ``on_step(phase_step, step)``, ``on_log(row)``
    and ``on_message(text)``."""

    def __init__(self, on_phase: Any = None, on_step: Any = None, on_log: Any = None,
                 on_message: Any = None) -> None:
        none = lambda *a: None  # noqa: E731
        self.on_phase, self.on_step = on_phase or none, on_step or none
        self.on_row, self.on_text = on_log or none, on_message or none

    def on_phase_start(self, trainer: Trainer, phase: Phase) -> None:
        idx = trainer.state.phase
        self.on_phase(phase.name, idx, trainer.phase_lengths[idx], trainer.state.phase_step)

    def on_step_end(self, trainer: Trainer) -> None:
        self.on_step(trainer.phase_step_done, trainer.state.step)

    def on_log(self, trainer: Trainer, row: dict[str, Any]) -> None:
        self.on_row(row)

    def on_message(self, trainer: Trainer, text: str) -> None:
        self.on_text(text)
