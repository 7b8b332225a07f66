"""The adversarial training loop: phases of steps, each step n_critic critic updates and one
generator update, with EMA, bf16 autocast, logging, samples, metrics and checkpoints.

The loop knows the component contracts (:mod:`ganframe.components`) and the checkpoint
file; it knows nothing about pluggy. Objectives decide *what* is computed; the loop owns
*when*: zero_grad, backward, clipping, optimiser steps, and the data stream, so that resume
is exact and every objective gets the same bookkeeping for free.
"""

from __future__ import annotations

import contextlib
import copy
import math
import signal
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import torch
from torch import Tensor, nn

from ganframe import distributed
from ganframe.checkpoint import (
    Checkpoint,
    CheckpointDir,
    module_tensors,
    restore_module,
    restore_optimizer,
    restore_rng,
)
from ganframe.components import BuildContext, EvalContext, StepContext
from ganframe.distributed import DistInfo
from ganframe.errors import UserError
from ganframe.recipe import PhaseConfig, ResolvedRecipe
from ganframe.runfolder import MetricsLog

SAMPLE_SEED_OFFSET = 7919  # fixed noise for sample grids, distinct from the training stream


class Interrupted(Exception):
    """SIGINT/SIGTERM arrived; the current step finished and a checkpoint was written."""

    def __init__(self, signum: int, step: int, checkpoint: Path) -> None:
        super().__init__(f"interrupted by signal {signum} at step {step}")
        self.signum, self.step, self.checkpoint = signum, step, checkpoint

    @property
    def exit_code(self) -> int:
        return 128 + self.signum


class _Diverged(Exception):
    def __init__(self, step: int, what: str) -> None:
        super().__init__(what)
        self.step, self.what = step, what


# -- the data stream ---------------------------------------------------------------------


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

    def next(self) -> Tensor:
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


# -- optimisers and EMA -----------------------------------------------------------------


def build_optimizer(config: Any, params: Iterator[nn.Parameter]) -> torch.optim.Optimizer:
    params = [p for p in params if p.requires_grad]
    kind = config.type
    if kind in ("adam", "adamw"):
        cls = torch.optim.Adam if kind == "adam" else torch.optim.AdamW
        return cls(
            params,
            lr=config.lr,
            betas=tuple(config.betas),
            eps=config.eps,
            weight_decay=config.weight_decay,
        )
    if kind == "rmsprop":
        return torch.optim.RMSprop(
            params,
            lr=config.lr,
            alpha=config.alpha,
            eps=config.eps,
            momentum=config.momentum,
            weight_decay=config.weight_decay,
        )
    return torch.optim.SGD(
        params,
        lr=config.lr,
        momentum=config.momentum,
        nesterov=config.nesterov,
        weight_decay=config.weight_decay,
    )


@torch.no_grad()
def ema_update(ema: nn.Module, model: nn.Module, decay: float) -> None:
    """ema = decay * ema + (1 - decay) * model for parameters; buffers are copied."""
    for e, p in zip(ema.parameters(), model.parameters(), strict=True):
        e.lerp_(p.detach(), 1.0 - decay)
    for e, b in zip(ema.buffers(), model.buffers(), strict=True):
        e.copy_(b)


# -- the trainer ------------------------------------------------------------------------


def _naming(source: str, fn: Callable[..., Any], *args: Any) -> Any:
    """Call ``fn``; a UserError it raises is prefixed with the recipe file it concerns."""
    try:
        return fn(*args)
    except UserError as exc:
        text = str(exc)
        if text.startswith(source):
            raise
        raise UserError(f"{source}: {text}") from None


@dataclass
class Progress:
    """Callbacks the loop reports to; the CLI shows them with rich, tests ignore them."""

    on_phase: Callable[[str, int, int, int], None] = lambda name, idx, steps, done: None
    on_step: Callable[[int, int], None] = lambda phase_step, step: None
    on_log: Callable[[dict[str, Any]], None] = lambda row: None
    on_message: Callable[[str], None] = lambda text: None


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


class Trainer:
    """Builds the networks of a resolved recipe and runs its phases."""

    def __init__(
        self,
        resolved: ResolvedRecipe,
        *,
        device: torch.device,
        out: Path,
        meta: dict[str, Any],
        writer: Callable[[Tensor, Path], None] | None,
        log: MetricsLog,
        progress: Progress | None = None,
        data_root: Path | None = None,
        dist_info: DistInfo | None = None,
    ) -> None:
        self.dist = dist_info or DistInfo()
        self.resolved = resolved
        self.recipe = resolved.recipe
        self.device = device
        self.out = out
        self.meta = meta
        self.writer = writer
        self.log = log
        self.progress = progress or Progress()
        self.state = RunState()
        train = self.recipe.train

        data_spec, data_config = resolved.component("data")

        def build_data(config: Any) -> Any:
            return data_spec.build(
                config,
                BuildContext(
                    device=device,
                    seed=self.recipe.seed,
                    recipe_dir=resolved.recipe_dir,
                    data_root=data_root,
                ),
            )

        self.dataset = _naming(resolved.source, build_data, data_config)
        self.ctx = BuildContext(
            data_info=dict(self.dataset.info()),
            device=device,
            seed=self.recipe.seed,
            recipe_dir=resolved.recipe_dir,
            data_root=data_root,
            data_config=data_config,
            build_data=build_data,
        )
        self.stream = _naming(
            resolved.source,
            DataStream,
            self.dataset,
            train.batch_size,
            self.recipe.seed,
            self.dist.rank,
            self.dist.world,
        )
        spec, config = resolved.component("generator")
        self.generator: nn.Module = spec.build(config, self.ctx).to(device)
        self.critic: nn.Module | None = None
        if "critic" in resolved.components:
            spec, config = resolved.component("critic")
            self.critic = spec.build(config, self.ctx).to(device)
        #: batch-norm layers that normalise over the global batch (train.sync_batchnorm)
        self.sync_bn_layers = 0
        if self.dist.enabled and train.sync_batchnorm:
            from ganframe import syncbn

            for net in (self.generator, self.critic):
                if net is not None:
                    self.sync_bn_layers += syncbn.convert(net)[1]
        if self.dist.enabled:  # identical start on every rank, whatever each one drew
            for net in (self.generator, self.critic):
                if net is not None:
                    distributed.broadcast_state(net)
            # ...then each rank draws its own noise (latents, penalties, dropout)
            torch.manual_seed(self.recipe.seed + 1_000_003 * self.dist.rank)
        self.ema: nn.Module | None = None
        if train.ema > 0:
            self.ema = copy.deepcopy(self.generator).requires_grad_(False).eval()
        self.opt_g = build_optimizer(self.recipe.optim.generator, self.generator.parameters())
        self.opt_c = (
            build_optimizer(self.recipe.optim.critic, self.critic.parameters())
            if self.critic is not None
            else None
        )
        self.scalers: dict[int, Any] = {}
        if train.precision == "fp16":
            if device.type != "cuda":
                raise UserError(
                    f"{resolved.source}: train.precision: fp16 needs a CUDA device (this run "
                    f'is on {device}); use "bf16" on CPUs.'
                )
            for opt in (self.opt_g, self.opt_c):
                if opt is not None:
                    self.scalers[id(opt)] = torch.amp.GradScaler("cuda")
        if train.channels_last:
            for net in (self.generator, self.critic, self.ema):
                if net is not None:
                    net.to(memory_format=torch.channels_last)
        if train.compile:
            self._compile()
        self.phases = self.recipe.phase_list()
        self.metrics = [
            (place, spec.build(config, self.ctx), self.recipe.metrics[int(place.split(".")[1])])
            for place, (spec, config) in resolved.components.items()
            if place.startswith("metrics.")
        ]
        self.objective: Any = None
        self.phase_lengths: list[int] = []
        self._sums: dict[str, Tensor] = {}
        self._counts: dict[str, int] = {}
        self._count = 0
        self._objective_state: dict[str, Tensor] | None = None
        self._objective_state_phase: int | None = None  # the phase it belongs to
        self._objective_phase: int | None = None
        self._ran_lengths: list[int] | None = None
        self.resumed = False
        self._has_buffers: dict[int, bool] = {}
        self._phase_name = self.phases[0].name
        self.ckpts = CheckpointDir(out / "checkpoints", keep_last=train.keep_last)

    def _compile(self) -> None:
        """Compile forward passes in place (state_dict names stay the same, so checkpoints
        do not care); anything the compiler cannot handle runs eagerly, with a warning."""
        import warnings

        import torch._dynamo

        torch._dynamo.config.suppress_errors = True
        for net in (self.generator, self.critic):
            if net is None:
                continue
            try:
                net.compile()
            except Exception as exc:  # e.g. no compiler toolchain on this machine
                warnings.warn(
                    f"torch.compile unavailable ({type(exc).__name__}: {exc}); running eagerly",
                    RuntimeWarning,
                    stacklevel=2,
                )
                return

    # -- phases -------------------------------------------------------------------------
    def _loss_place(self, index: int) -> str:
        return f"phases.{index}.loss" if self.recipe.phases else "loss"

    def _build_objective(self, index: int) -> Any:
        spec, config = self.resolved.component(self._loss_place(index))
        objective = spec.build(config, self.ctx)
        if objective.trains_critic and self.critic is None:
            raise UserError(
                f"{self.resolved.source}: critic: missing [critic] table; "
                f"{self._loss_place(index)} ({spec.name}) trains a critic."
            )
        return objective

    def _phase_length(self, phase: PhaseConfig, objective: Any) -> int:
        if phase.steps is not None:
            return phase.steps
        n_critic = phase.n_critic or self.recipe.train.n_critic
        per_step = n_critic if objective.trains_critic else 1
        return max(1, math.ceil(phase.epochs * self.stream.batches_per_epoch / per_step))

    def total_steps(self) -> int:
        return sum(self.phase_lengths)

    # -- resume -------------------------------------------------------------------------
    def restore(self, ckpt: Checkpoint) -> None:
        restore_module(ckpt, "generator", self.generator)
        if self.critic is not None:
            restore_module(ckpt, "critic", self.critic)
        if self.ema is not None:
            restore_module(ckpt, "ema", self.ema)
        restore_optimizer(ckpt, "generator", self.opt_g)
        if self.opt_c is not None:
            restore_optimizer(ckpt, "critic", self.opt_c)
        run = ckpt.meta.get("run", {})
        self.state = RunState(
            int(run["step"]),
            int(run["phase"]),
            int(run["phase_step"]),
            int(run.get("rollbacks", 0)),
        )
        self.stream.load_state(run["stream"])
        for name, state in ckpt.meta.get("scalers", {}).items():
            opt = self.opt_g if name == "generator" else self.opt_c
            if opt is not None and id(opt) in self.scalers:
                self.scalers[id(opt)].load_state_dict(state)
        self._objective_state = module_tensors(ckpt, "objective")
        self._objective_state_phase = run.get("objective_phase")
        self._ran_lengths = run.get("phase_lengths")  # as planned when the run stopped
        restore_rng(ckpt)
        own = ckpt.tensors.get(f"ranks.{self.dist.rank}.rng_torch")
        if self.dist.enabled and own is not None:
            torch.set_rng_state(own)
        self.resumed = True

    # -- one step -----------------------------------------------------------------------
    def _autocast(self) -> contextlib.AbstractContextManager[Any]:
        precision = self.recipe.train.precision
        if precision == "bf16":
            return torch.autocast(self.device.type, dtype=torch.bfloat16)
        if precision == "fp16":
            return torch.autocast(self.device.type, dtype=torch.float16)
        return contextlib.nullcontext()

    def _update(self, opt: torch.optim.Optimizer, net: nn.Module, loss: Tensor) -> None:
        scaler = self.scalers.get(id(opt))
        opt.zero_grad(set_to_none=True)
        (scaler.scale(loss) if scaler is not None else loss).backward()
        if self.dist.enabled:
            distributed.average_gradients(net, self.dist.world)
        if scaler is not None:
            scaler.unscale_(opt)
        if self.recipe.train.grad_clip > 0:
            torch.nn.utils.clip_grad_norm_(net.parameters(), self.recipe.train.grad_clip)
        if scaler is not None:
            scaler.step(opt)  # skips the step when the scaled gradients overflowed
            scaler.update()
        else:
            opt.step()

    def _accumulate(self, logs: Any) -> None:
        for key, value in logs.items():
            v = value.detach().float() if isinstance(value, Tensor) else torch.tensor(float(value))
            v = v.to(self.device)
            self._sums[key] = self._sums[key] + v if key in self._sums else v.clone()
            self._counts[key] = self._counts.get(key, 0) + 1

    def _next_real(self) -> Tensor:
        real = self.stream.next().to(self.device, non_blocking=True)
        if self.recipe.train.channels_last and real.dim() == 4:
            real = real.contiguous(memory_format=torch.channels_last)
        return real

    def train_step(self, sctx: StepContext, n_critic: int) -> None:
        obj = self.objective
        real = None
        if obj.trains_critic:
            assert self.critic is not None and self.opt_c is not None
            for _ in range(n_critic):
                real = self._next_real()
                with self._autocast():
                    out = obj.critic_loss(sctx, real)
                self._update(self.opt_c, self.critic, out.loss)
                if hasattr(obj, "after_critic_step"):
                    obj.after_critic_step(sctx)
                self._accumulate(out.logs)
        if obj.trains_generator:
            if real is None:
                real = self._next_real()
            if self.critic is not None:
                self.critic.requires_grad_(False)
            try:
                with self._autocast():
                    out = obj.generator_loss(sctx, real)
                self._update(self.opt_g, self.generator, out.loss)
            finally:
                if self.critic is not None:
                    self.critic.requires_grad_(True)
            self._accumulate(out.logs)
        if self.dist.enabled:
            self._sync_buffers()
        if obj.trains_generator and self.ema is not None:
            decay = self.recipe.train.ema if self.state.step >= self.recipe.train.ema_start else 0.0
            ema_update(self.ema, self.generator, decay)
        self._count += 1

    def _sync_buffers(self) -> None:
        """Batch-norm statistics change in every forward pass in training mode, including
        the no-grad and frozen ones, so they are made rank 0's once per step, for both
        networks (DDP does this before each forward)."""
        for net in (self.generator, self.critic):
            if net is None:
                continue
            if self._has_buffers.setdefault(id(net), next(net.buffers(), None) is not None):
                distributed.broadcast_state(net, buffers_only=True)

    # -- periodic work ------------------------------------------------------------------
    def sampling_generator(self) -> nn.Module:
        return self.ema if self.ema is not None else self.generator

    @contextlib.contextmanager
    def _evaluating(self) -> Iterator[nn.Module]:
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

    def _reset_logs(self) -> None:
        self._sums, self._counts, self._count = {}, {}, 0

    def flush_logs(self) -> dict[str, Any] | None:
        if not self._count:
            return None
        # mean per update: critic scalars are summed over n_critic updates per step
        values = {k: v.item() / self._counts[k] for k, v in self._sums.items()}
        values = distributed.mean_scalars(values, self.dist.world)
        bad = [k for k, v in values.items() if not math.isfinite(v)]
        if bad:
            self._reset_logs()
            raise _Diverged(self.state.step, f"non-finite {', '.join(sorted(bad))}")
        row = {"step": self.state.step, "phase": self._phase_name, "event": "train", **values}
        self._reset_logs()
        self.log.write(row)
        self.progress.on_log(row)
        return row

    def write_samples(self) -> Path | None:
        if self.writer is None or not self.dist.is_main:
            return None
        with self._evaluating() as gen:
            rng = torch.Generator(device=self.device).manual_seed(
                self.recipe.seed + SAMPLE_SEED_OFFSET
            )
            x = gen.generate(self.recipe.train.sample_count, device=self.device, rng=rng)
        path = self.out / "samples" / f"step-{self.state.step:08d}"
        return self.writer(x.detach().float().cpu() if x.is_floating_point() else x.cpu(), path)

    def run_metrics(self, final: bool = False) -> None:
        if not self.dist.is_main:  # every rank holds the same networks
            return
        for _place, metric, table in self.metrics:
            if not final and not (table.every and self.state.step % table.every == 0):
                continue
            with self._evaluating() as gen:
                values = metric.evaluate(
                    gen,
                    self.dataset,
                    EvalContext(self.device, self.recipe.seed, self.ctx.data_info),
                )
            row = {
                "step": self.state.step,
                "phase": self._phase_name,
                "event": "metric",
                "metric": table.type,
                **values,
            }
            self.log.write(row)
            self.progress.on_log(row)

    def weights_finite(self) -> bool:
        nets = [n for n in (self.generator, self.critic, self.ema) if n is not None]
        flags = [p.detach().isfinite().all() for n in nets for p in n.parameters()]
        return bool(torch.stack(flags).all()) if flags else True

    def save(self) -> Path:
        if not self.weights_finite():
            raise _Diverged(self.state.step, "non-finite weights")
        nets = [n for n in (self.generator, self.critic, self.ema) if n is not None]
        digests = distributed.gather_digests(nets, self.dist.world)
        rank_states = distributed.gather_rng_states(self.dist.world)
        if len(set(digests)) > 1:
            raise RuntimeError(
                f"ranks hold different networks at step {self.state.step}: {digests}"
            )
        if not self.dist.is_main:
            return self.ckpts.folder / f"step-{self.state.step:08d}.safetensors"
        meta = dict(self.meta)
        meta["run"] = {
            "step": self.state.step,
            "phase": self.state.phase,
            "phase_step": self.state.phase_step,
            "rollbacks": self.state.rollbacks,
            "stream": self.stream.state(),
            "world": self.dist.world,
            "rank_digests": digests,
            # On a phase boundary the objective is still the finished phase's.
            "objective_phase": self._objective_phase,
            "phase_lengths": list(getattr(self, "phase_lengths", [])),
        }
        if self.scalers:
            meta["scalers"] = {
                name: self.scalers[id(opt)].state_dict()
                for name, opt in (("generator", self.opt_g), ("critic", self.opt_c))
                if opt is not None and id(opt) in self.scalers
            }
        modules: dict[str, nn.Module] = {"generator": self.generator}
        optimizers = {"generator": self.opt_g}
        if self.critic is not None and self.opt_c is not None:
            modules["critic"] = self.critic
            optimizers["critic"] = self.opt_c
        if self.ema is not None:
            modules["ema"] = self.ema
        extra: dict[str, Tensor] = {}
        if self.objective is not None and hasattr(self.objective, "state_dict"):
            extra = {f"objective.{k}": v for k, v in self.objective.state_dict().items()}
        for rank, state in enumerate(rank_states):
            extra[f"ranks.{rank}.rng_torch"] = state
        return self.ckpts.save(
            self.state.step,
            modules=modules,
            optimizers=optimizers,
            meta=meta,
            extra_tensors=extra,
        )

    # -- the run ------------------------------------------------------------------------
    def run(self, max_steps: int | None = None) -> TrainResult:
        """Run the phases; handles SIGINT/SIGTERM and divergence around :meth:`_run`."""
        with self._signals():
            while True:
                try:
                    return self._run(max_steps)
                except _Diverged as exc:
                    self._recover(exc)

    def _recover(self, exc: _Diverged) -> None:
        train = self.recipe.train
        last = self.ckpts.latest()
        where = f"the last good checkpoint is {last}" if last else "no checkpoint was written yet"
        if train.on_nonfinite == "stop" or last is None:
            raise UserError(
                f"training diverged at step {exc.step} ({exc.what}); {where}. Lower the "
                'learning rates, add grad_clip, or set train.on_nonfinite = "rollback"'
                + (" with train.checkpoint_every > 0" if last is None else "")
                + "."
            ) from None
        if self.state.rollbacks >= train.max_rollbacks:
            raise UserError(
                f"training diverged at step {exc.step} ({exc.what}) again after "
                f"{self.state.rollbacks} rollbacks (train.max_rollbacks); {where}."
            ) from None
        from ganframe.checkpoint import read_checkpoint

        rollbacks = self.state.rollbacks + 1
        self.restore(read_checkpoint(last))
        self.state.rollbacks = rollbacks
        for opt in (self.opt_g, self.opt_c):
            for group in opt.param_groups if opt is not None else []:
                group["lr"] *= train.rollback_lr_factor
        self._reset_logs()
        self.log.truncate_after(self.state.step)
        self.progress.on_message(
            f"diverged at step {exc.step} ({exc.what}); rolled back to {last} "
            f"(step {self.state.step}) with learning rates x{train.rollback_lr_factor} "
            f"(rollback {rollbacks} of {train.max_rollbacks})"
        )

    def _stop_requested(self, step: int) -> bool:
        """Whether to stop now; in a multi-process run all ranks agree, checked at logging
        steps so that no step pays for an extra synchronisation."""
        if not self.dist.enabled:
            return self._signal is not None
        if step % self.recipe.train.log_every:
            return False
        return distributed.any_rank(self._signal is not None, self.dist.world)

    @contextlib.contextmanager
    def _signals(self) -> Iterator[None]:
        """First SIGINT/SIGTERM: finish the step, checkpoint, stop. Second: stop at once
        (checkpoint writes are atomic, so nothing on disk is ever half-written)."""
        import threading

        self._signal: int | None = None
        if threading.current_thread() is not threading.main_thread():
            yield
            return

        def handler(signum: int, frame: Any) -> None:
            if self._signal is not None:
                signal.signal(signal.SIGINT, signal.default_int_handler)
                raise KeyboardInterrupt
            self._signal = signum
            self.progress.on_message(
                "stopping after this step and writing a checkpoint (press Ctrl-C again to "
                "stop at once)"
            )

        previous = {s: signal.signal(s, handler) for s in (signal.SIGINT, signal.SIGTERM)}
        try:
            yield
        finally:
            for s, h in previous.items():
                signal.signal(s, h)

    def _place_in_phases(self) -> None:
        """Check a resumed run's position against the recipe's phase lengths now.

        The phase the run is in may be lengthened or shortened (to no less than it has run).
        A run that stopped on a phase boundary, e.g. ``--max-steps`` at the end of the MLE
        phase, or at the end of the recipe, may lengthen the phase it just finished: it
        continues that phase (``--set phases.0.epochs=...``). Any other change to a phase
        that has run would shift every later step, so it is an error, not a silent skip.
        """
        st, lengths = self.state, self.phase_lengths
        starts = [sum(lengths[:i]) for i in range(len(lengths) + 1)]
        finished = st.phase - (1 if st.phase_step == 0 else 0)  # phases that may not change
        ran = self._ran_lengths
        if st.phase > len(lengths) or (ran is not None and any(
            a != b for a, b in zip(ran[: max(finished, 0)], lengths, strict=False)
        )):
            self._refuse_new_lengths(starts)
        if st.phase < len(lengths) and st.step == starts[st.phase] + st.phase_step:
            if st.phase_step < lengths[st.phase]:
                return
            if st.phase_step == lengths[st.phase]:  # shortened to what it has run: done
                st.phase, st.phase_step = st.phase + 1, 0
                return
        elif st.phase == len(lengths) and st.step == starts[-1]:
            return
        if st.phase_step == 0 and st.phase > 0 and starts[st.phase - 1] <= st.step:
            if st.step < starts[st.phase]:
                st.phase, st.phase_step = st.phase - 1, st.step - starts[st.phase - 1]
                return
        self._refuse_new_lengths(starts)

    def _refuse_new_lengths(self, starts: list[int]) -> None:
        st, ran = self.state, self._ran_lengths
        if st.phase < len(self.phases):
            where = f"in phase '{self.phases[st.phase].name}'"
        elif ran is not None and st.phase < len(ran):
            where = f"in phase {st.phase + 1} of {len(ran)}, which the recipe no longer has"
        else:
            where = "at its end"
        raise UserError(
            f"{self.resolved.source}: the run stopped at step {st.step}, {where}, but the "
            "recipe now gives a phase that has already run a different length (phases end "
            f"at steps {', '.join(str(x) for x in starts[1:])}). On resume, only the phase "
            "the run is in may change its length (to no less than it has run), or, when the "
            "run stopped on a phase boundary, the phase it had just finished may grow. Restore "
            "the earlier lengths (and the data, if an epoch-sized phase changed with it), or "
            "start a new run with --out."
        )

    def _run(self, max_steps: int | None = None) -> TrainResult:
        train = self.recipe.train
        # Objectives are built when their phase starts (one may copy the generator as it
        # stands then); an epoch-sized phase is built once early just to learn its length.
        self.phase_lengths = [
            self._phase_length(p, self._build_objective(i) if p.epochs is not None else None)
            for i, p in enumerate(self.phases)
        ]
        self._place_in_phases()
        limit = self.total_steps() if max_steps is None else min(max_steps, self.total_steps())
        ran_from = self.state.step
        while self.state.phase < len(self.phases) and self.state.step < limit:
            idx = self.state.phase
            phase = self.phases[idx]
            self.objective = self._build_objective(idx)
            self._objective_phase = idx
            self._phase_name = phase.name
            pending = self._objective_state
            # Only into the objective of the phase that saved it: a run stopped on a boundary
            # saved the finished phase's state, which the next phase's objective cannot use.
            owner = self._objective_state_phase
            if pending and (owner is None or owner == idx) and hasattr(
                self.objective, "load_state_dict"
            ):
                self.objective.load_state_dict(pending)
            self._objective_state = None
            if self.state.phase_step == 0:
                self._enter_phase(phase)
            steps = self.phase_lengths[idx]
            n_critic = phase.n_critic or train.n_critic
            every = train.checkpoint_every
            if phase.checkpoint_every is not None:
                every = phase.checkpoint_every
            self.progress.on_phase(phase.name, idx, steps, self.state.phase_step)
            self.generator.train()
            if self.critic is not None:
                self.critic.train()
            while self.state.phase == idx and self.state.step < limit:
                sctx = StepContext(
                    self.generator,
                    self.critic,
                    self.device,
                    self.state.step,
                    self.state.phase_step,
                    steps,
                )
                self.train_step(sctx, n_critic)
                self.state.step += 1
                self.state.phase_step += 1
                s = self.state.step
                if s % train.log_every == 0:
                    self.flush_logs()
                self.progress.on_step(self.state.phase_step, s)
                if self.state.phase_step >= steps:
                    self.state.phase += 1
                    self.state.phase_step = 0
                if train.sample_every and s % train.sample_every == 0 and s < limit:
                    self.write_samples()
                if s < limit:
                    self.run_metrics()
                if every and s % every == 0 and s < limit:
                    self.save()
                if self._stop_requested(s):
                    self.flush_logs()
                    raise Interrupted(self._signal or signal.SIGTERM, s, self.save())
        stopped_early = self.state.phase < len(self.phases)
        if ran_from == self.state.step and self.resumed:
            self.progress.on_message(f"nothing to do: the run already reached step {ran_from}")
            return TrainResult(
                self.out, self.state.step, self.ckpts.latest(), self.log.rows, stopped_early
            )
        self.flush_logs()
        self.write_samples()
        self.run_metrics(final=True)
        last_ckpt = self.save()
        return TrainResult(self.out, self.state.step, last_ckpt, self.log.rows, stopped_early)

    def _enter_phase(self, phase: PhaseConfig) -> None:
        for net, lr in phase.lr.items():
            opt = self.opt_g if net == "generator" else self.opt_c
            if opt is not None:
                for group in opt.param_groups:
                    group["lr"] = lr
