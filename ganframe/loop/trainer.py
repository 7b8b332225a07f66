"""The adversarial training loop: phases of steps, each step n_critic critic updates and one
generator update, then the EMA. Everything else happens in callbacks (:mod:`.events`).

The loop owns *when*: zero_grad, backward, gradient averaging, clipping, optimiser steps and
the data stream, so that every objective gets the same bookkeeping and resume is exact.
Objectives decide *what* is computed. The loop imports neither the recipe nor the plugin
registry: :mod:`ganframe.assemble` builds its parts.
"""

from __future__ import annotations

import contextlib
import math
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import torch
from torch import Tensor, nn

from ganframe import distributed
from ganframe.augment import build_augment
from ganframe.components import StepContext, as_batch
from ganframe.distributed import DistInfo
from ganframe.errors import UserError
from ganframe.loop.clock import RunClock
from ganframe.loop.data import DataStream
from ganframe.loop.events import Callback, CallbackList
from ganframe.loop.meter import Meter
from ganframe.loop.optim import LearningRates, ema_update

__all__ = ["Diverged", "Interrupted", "Parts", "Phase", "RunState", "TrainResult", "Trainer"]


class Interrupted(Exception):
    """SIGINT/SIGTERM/SIGHUP arrived; the current step finished and a checkpoint was written."""

    def __init__(self, signum: int, step: int, checkpoint: Path, finished: bool = False) -> None:
        super().__init__(f"interrupted by signal {signum} at step {step}")
        self.signum, self.step, self.checkpoint = signum, step, checkpoint
        #: the signal came after the last step: the run is complete, its final files written
        self.finished = finished

    @property
    def exit_code(self) -> int:
        return 128 + self.signum


class Diverged(Exception):
    """A logged loss or the weights stopped being finite; the divergence guard decides."""

    def __init__(self, step: int, what: str) -> None:
        super().__init__(what)
        self.step, self.what = step, what


@dataclass
class Phase:
    """One phase as the loop needs it; ``make_objective`` builds its objective (a phase's
    objective is built when the phase starts, as one may copy the generator as it stands)."""

    name: str
    make_objective: Callable[[], Any]
    steps: int | None = None
    epochs: float | None = None
    n_critic: int = 1
    lr: dict[str, float] = field(default_factory=dict)
    checkpoint_every: int = 0

    def length(self, batches_per_epoch: int) -> int:
        if self.steps is not None:
            return self.steps
        per_step = self.n_critic if self.make_objective().trains_critic else 1
        return max(1, math.ceil((self.epochs or 0) * batches_per_epoch / per_step))


@dataclass
class RunState:
    step: int = 0
    phase: int = 0
    phase_step: int = 0
    rollbacks: int = 0


@dataclass
class TrainResult:
    out: Path
    step: int
    checkpoint: Path | None
    metrics: list[dict[str, Any]] = field(default_factory=list)
    stopped_early: bool = False


@dataclass
class Parts:
    """Everything a run is made of, built by :mod:`ganframe.assemble`."""

    settings: Any  #: the recipe's [train] table (read-only here)
    seed: int
    device: torch.device
    out: Path
    dist: DistInfo
    dataset: Any
    stream: DataStream
    generator: nn.Module
    critic: nn.Module | None
    ema: nn.Module | None
    optimizers: dict[str, torch.optim.Optimizer]
    learning_rates: LearningRates
    scalers: dict[str, Any]
    phases: list[Phase]
    data_info: dict[str, Any]
    record: Any  #: what every checkpoint says about the run (run_record)
    extras: dict[str, Any] = field(default_factory=dict)


class Trainer:
    """Runs the phases of a run and announces what happens to its callbacks.

    The fields of :class:`Parts` are attributes of the trainer (``trainer.generator``,
    ``trainer.optimizers``, ``trainer.out``...): what callbacks read.
    """

    def __init__(self, parts: Parts, callbacks: list[Callback]) -> None:
        for name, value in vars(parts).items():
            setattr(self, name, value)
        self.parts = parts
        #: train.augment: DiffAugment of the critic's inputs, applied by StepContext.score
        self.augment = build_augment(getattr(parts.settings, "augment", None))
        kind = getattr(parts.dataset, "kind", None)
        if self.augment is not None and kind != "image":
            raise UserError(
                f"train.augment (DiffAugment) augments images, but the data is of kind "
                f"{kind!r}; remove train.augment from the recipe."
            )
        self.callbacks = CallbackList(callbacks)
        self.state = RunState()
        self.meter = Meter(parts.device)
        self.clock = RunClock()  #: wall-clock time, stamped on every logged row
        self.rows: list[dict[str, Any]] = []
        self.phase_lengths: list[int] = []
        self.objective: Any = None
        self.objective_phase: int | None = None  #: the phase the live objective belongs to
        self.pending_objective_state: tuple[dict[str, Tensor], int | None] | None = None
        self.ran_lengths: list[int] | None = None  #: phase lengths when the checkpoint was made
        self.resumed = False
        self.limit = 0
        self.planned = False
        self.phase_name = parts.phases[0].name
        self.phase_step_done = 0  #: steps done in the phase the last step ran in
        self.last_checkpoint: Path | None = None
        self.stop_signal: int | None = None  #: the stop the processes agreed on
        self.signal_received: int | None = None  #: a signal this process received
        self._buffers = [n for n in (self.generator, self.critic)
                         if n is not None and next(n.buffers(), None) is not None]

    # -- talking to callbacks -------------------------------------------------------------
    @property
    def is_main(self) -> bool:
        return self.dist.is_main

    def emit(self, event: str, *args: Any) -> None:
        self.callbacks.emit(event, self, *args)

    def log(self, row: dict[str, Any]) -> None:
        """Report a row of scalars to every logger (StyleGAN2-ADA's one collector), stamped
        with the wall-clock ``time`` and the run's ``elapsed_s`` (:mod:`.clock`)."""
        row = self.clock.stamp(row)
        self.rows.append(row)
        self.emit("on_log", row)

    def message(self, text: str) -> None:
        self.emit("on_message", text)

    def sampling_generator(self) -> nn.Module:
        return self.ema if self.ema is not None else self.generator

    @contextlib.contextmanager
    def evaluating(self) -> Any:
        """Eval mode and a forked RNG, so sampling never changes the training stream."""
        gen = self.sampling_generator()
        was_training = gen.training
        devices = [self.device] if self.device.type == "cuda" else []
        with torch.random.fork_rng(devices=devices), torch.no_grad():
            gen.eval()
            try:
                yield gen
            finally:
                gen.train(was_training)

    # -- the run --------------------------------------------------------------------------
    def fit(self, max_steps: int | None = None) -> TrainResult:
        """Run the phases up to ``max_steps`` steps in total (all of them by default)."""
        result = None
        self.clock.start()
        self.emit("on_run_start")
        try:
            while True:
                try:
                    result = self._fit(max_steps)
                    return result
                except Diverged as exc:
                    self.meter.reset()
                    self.emit("on_divergence", exc.step, exc.what)  # raises, or rolls back
        finally:
            self.emit("on_run_end", result)

    def plan(self) -> None:
        """Learn every phase's length (an epoch-sized phase builds its objective to know
        whether it trains the critic) and check the run's place in them."""
        from ganframe.loop import resume

        self.phase_lengths = [p.length(self.stream.batches_per_epoch) for p in self.phases]
        self.planned = True
        if self.resumed:
            resume.place_in_phases(self.state, self.phase_lengths, self.ran_lengths,
                                   [p.name for p in self.phases], self.extras["source"])

    def _fit(self, max_steps: int | None) -> TrainResult:
        if not self.planned:
            self.plan()
        total = sum(self.phase_lengths)
        self.limit = total if max_steps is None else min(max_steps, total)
        ran_from = self.state.step
        while self.state.phase < len(self.phases) and self.state.step < self.limit:
            self._run_phase(self.state.phase)
        stopped_early = self.state.phase < len(self.phases)
        if ran_from == self.state.step and self.resumed:
            self.message(f"nothing to do: the run already reached step {ran_from}")
            return TrainResult(self.out, self.state.step, self.latest_checkpoint(),
                               self.rows, stopped_early)
        self.emit("on_train_end")
        late = self.stop_signal or self.signal_received
        if late is not None:  # during the last step or the final samples, metrics, checkpoint
            raise Interrupted(late, self.state.step, self.last_checkpoint or self.out,
                              finished=not stopped_early)
        return TrainResult(self.out, self.state.step, self.last_checkpoint, self.rows,
                           stopped_early)

    def latest_checkpoint(self) -> Path | None:
        folder = self.extras.get("checkpoints")
        return folder.latest() if folder is not None else None

    def _start_objective(self, idx: int) -> None:
        self.objective = self.phases[idx].make_objective()
        self.objective_phase = idx
        pending, self.pending_objective_state = self.pending_objective_state, None
        # Only into the objective of the phase that saved it: a run stopped on a boundary
        # saved the finished phase's state, which the next phase's objective cannot use.
        if pending and pending[0] and pending[1] in (None, idx) and hasattr(
            self.objective, "load_state_dict"
        ):
            self.objective.load_state_dict(pending[0])

    def _run_phase(self, idx: int) -> None:
        phase = self.phases[idx]
        self._start_objective(idx)
        self.phase_name = phase.name
        self.learning_rates.start_phase(phase.lr)
        steps = self.phase_lengths[idx]
        self.emit("on_phase_start", phase)
        self.generator.train()
        if self.critic is not None:
            self.critic.train()
        while self.state.phase == idx and self.state.step < self.limit:
            st = self.state
            self.learning_rates.apply(
                st.phase_step, steps, self.settings.rollback_lr_factor ** st.rollbacks
            )
            sctx = StepContext(self.generator, self.critic, self.device, st.step,
                               st.phase_step, steps, augment=self.augment)
            self.train_step(sctx, phase.n_critic)
            st.step += 1
            st.phase_step += 1
            self.phase_step_done = st.phase_step
            if st.phase_step >= steps:
                st.phase, st.phase_step = st.phase + 1, 0
            self.emit("on_step_end")
            # A stop after the last step lets the run end as usual (final row, samples,
            # metrics, checkpoint); _fit then reports the signal.
            if self.stop_signal is not None and st.phase < len(self.phases):
                self.emit("on_interrupt", self.stop_signal)
                raise Interrupted(self.stop_signal, st.step, self.last_checkpoint or self.out)
        if self.state.phase > idx:
            self.emit("on_phase_end", phase)

    # -- one step -------------------------------------------------------------------------
    def _autocast(self) -> contextlib.AbstractContextManager[Any]:
        precision = self.settings.precision
        if precision == "bf16":
            return torch.autocast(self.device.type, dtype=torch.bfloat16)
        if precision == "fp16":
            return torch.autocast(self.device.type, dtype=torch.float16)
        return contextlib.nullcontext()

    def _update(self, name: str, net: nn.Module, loss: Tensor) -> None:
        opt = self.optimizers[name]
        scaler = self.scalers.get(name)
        opt.zero_grad(set_to_none=True)
        (scaler.scale(loss) if scaler is not None else loss).backward()
        if self.dist.enabled:
            distributed.average_gradients(net, self.dist.world)
        if scaler is not None:
            scaler.unscale_(opt)
        if self.settings.grad_clip > 0:
            torch.nn.utils.clip_grad_norm_(net.parameters(), self.settings.grad_clip)
        if scaler is not None:
            scaler.step(opt)  # skips the step when the scaled gradients overflowed
            scaler.update()
        else:
            opt.step()

    def _next_real(self, sctx: StepContext) -> Tensor:
        batch = as_batch(self.stream.next()).to(self.device, non_blocking=True)
        real = batch.data
        if self.settings.channels_last and real.dim() == 4:
            real = real.contiguous(memory_format=torch.channels_last)
        sctx.labels = batch.labels
        return real

    def train_step(self, sctx: StepContext, n_critic: int) -> None:
        obj = self.objective
        real = None
        if obj.trains_critic:
            assert self.critic is not None
            for _ in range(n_critic):
                real = self._next_real(sctx)
                with self._autocast():
                    out = obj.critic_loss(sctx, real)
                self._update("critic", self.critic, out.loss)
                if hasattr(obj, "after_critic_step"):
                    obj.after_critic_step(sctx)
                self.meter.add(out.logs)
        if obj.trains_generator:
            if real is None:
                real = self._next_real(sctx)
            if self.critic is not None:
                self.critic.requires_grad_(False)
            try:
                with self._autocast():
                    out = obj.generator_loss(sctx, real)
                self._update("generator", self.generator, out.loss)
            finally:
                if self.critic is not None:
                    self.critic.requires_grad_(True)
            self.meter.add(out.logs)
        if self.dist.enabled:
            # Batch-norm statistics change in every training-mode forward pass, so they are
            # made rank 0's once per step for both networks (DDP does it before each forward).
            for net in self._buffers:
                distributed.broadcast_state(net, buffers_only=True)
        if obj.trains_generator and self.ema is not None:
            s = self.settings
            ema_update(self.ema, self.generator, s.ema if self.state.step >= s.ema_start else 0.0)
        self.meter.steps += 1
