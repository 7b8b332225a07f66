"""A run's state as a checkpoint and back: networks, optimisers, grad scalers, the objective's
state, the data cursor, the run position and every process's RNG.

Saving and restoring are one module so that what is written and what is read cannot drift;
the rules about *whether* a checkpoint may be resumed live in :mod:`.resume`.
"""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING, Any

import torch
from torch import Tensor, nn

from ganframe import distributed
from ganframe.checkpoint import (
    Checkpoint,
    module_tensors,
    restore_module,
    restore_optimizer,
    restore_rng,
    torch_rng_state,
)
from ganframe.errors import UserError

if TYPE_CHECKING:
    from ganframe.loop.trainer import Trainer

__all__ = ["networks", "restore", "restore_from", "save", "weights_finite"]


def networks(trainer: Trainer) -> dict[str, nn.Module]:
    nets = {"generator": trainer.generator, "critic": trainer.critic, "ema": trainer.ema}
    return {k: v for k, v in nets.items() if v is not None}


def weights_finite(trainer: Trainer) -> bool:
    flags = [p.detach().isfinite().all() for n in networks(trainer).values()
             for p in n.parameters()]
    return bool(torch.stack(flags).all()) if flags else True


def _position(trainer: Trainer, digests: list[str]) -> dict[str, Any]:
    st = trainer.state
    return {
        "step": st.step,
        "phase": st.phase,
        "phase_step": st.phase_step,
        "rollbacks": st.rollbacks,
        "stream": trainer.stream.state(),
        "world": trainer.dist.world,
        "rank_digests": digests,
        # On a phase boundary the objective is still the finished phase's.
        "objective_phase": trainer.objective_phase,
        "phase_lengths": list(trainer.phase_lengths),
    }


def save(trainer: Trainer, folder: Any) -> Path:
    """Write a checkpoint of the run into ``folder`` (a CheckpointDir); every process takes
    part (digests and RNG states are gathered), only rank 0 writes."""
    nets = networks(trainer)
    digests = distributed.gather_digests(list(nets.values()), trainer.dist.world)
    rank_states = distributed.gather_rng_states(trainer.dist.world)
    if len(set(digests)) > 1:
        raise RuntimeError(f"ranks hold different networks at step {trainer.state.step}: "
                           f"{digests}")
    step = trainer.state.step
    if not trainer.dist.is_main:
        return folder.folder / f"step-{step:08d}.safetensors"
    meta = trainer.record.to_meta(run=_position(trainer, digests), callbacks=_callback_states(
        trainer))
    if trainer.scalers:
        meta["scalers"] = {name: s.state_dict() for name, s in trainer.scalers.items()}
    modules: dict[str, nn.Module] = {"generator": trainer.generator}
    optimizers = {"generator": trainer.optimizers["generator"]}
    if trainer.critic is not None and "critic" in trainer.optimizers:
        modules["critic"] = trainer.critic
        optimizers["critic"] = trainer.optimizers["critic"]
    if trainer.ema is not None:
        modules["ema"] = trainer.ema
    extra: dict[str, Tensor] = {}
    if trainer.objective is not None and hasattr(trainer.objective, "state_dict"):
        extra = {f"objective.{k}": v for k, v in trainer.objective.state_dict().items()}
    for rank, state in enumerate(rank_states):
        extra[f"ranks.{rank}.rng_torch"] = state
    return folder.save(step, modules=modules, optimizers=optimizers, meta=meta,
                       extra_tensors=extra)


def _callback_states(trainer: Trainer) -> dict[str, Any]:
    states = {}
    for cb in trainer.callbacks.callbacks:
        if cb.name:
            state = cb.state_dict()
            if state:
                states[cb.name] = state
    return states


def restore(trainer: Trainer, ckpt: Checkpoint, record: Any) -> list[str]:
    """Put the run back as the checkpoint holds it (``record`` is its typed run record).

    Optimiser hyper-parameters are the recipe's, not the checkpoint's: a recipe changed on
    resume takes effect (learning rates are set before every step anyway). Returns what
    differed, e.g. ``"optim.generator.betas (0.5, 0.999) -> (0.0, 0.9)"``.
    """
    from ganframe.loop.optim import set_hyperparameters

    for name, net in networks(trainer).items():
        restore_module(ckpt, name, net)
    changed = []
    wanted = trainer.extras.get("hyperparameters", {})
    for name, opt in trainer.optimizers.items():
        restore_optimizer(ckpt, name, opt)
        if name in wanted:
            changed += [f"optim.{name}.{key} {old!r} -> {new!r}"
                        for key, old, new in set_hyperparameters(opt, wanted[name])]
    run = record.run
    st = trainer.state
    st.step, st.phase, st.phase_step = run.step, run.phase, run.phase_step
    st.rollbacks = run.rollbacks
    if run.stream.position >= trainer.stream.batches_per_epoch:
        raise UserError(
            f"{ckpt.path}: run.stream.position is {run.stream.position}, but an epoch of this "
            f"run's data has {trainer.stream.batches_per_epoch} batches; the checkpoint is "
            "damaged. Use another checkpoint (step-*.safetensors in the same folder)."
        )
    trainer.stream.load_state(run.stream.model_dump())
    for name, state in (record.scalers or {}).items():
        if name in trainer.scalers:
            try:
                trainer.scalers[name].load_state_dict(state)
            except (KeyError, TypeError, ValueError, RuntimeError) as exc:
                raise UserError(f"{ckpt.path}: scalers.{name} is damaged ({exc}); use another "
                                "checkpoint (step-*.safetensors in the same folder).") from None
    trainer.pending_objective_state = (module_tensors(ckpt, "objective"), run.objective_phase)
    trainer.ran_lengths = run.phase_lengths  # as planned when the run stopped
    restore_rng(ckpt)
    own = f"ranks.{trainer.dist.rank}.rng_torch"
    if trainer.dist.enabled and own in ckpt.tensors:
        torch.set_rng_state(torch_rng_state(ckpt, own))
    for cb in trainer.callbacks.callbacks:
        if cb.name and cb.name in (record.callbacks or {}):
            try:
                cb.load_state_dict(record.callbacks[cb.name])
            except (ValueError, TypeError, KeyError) as exc:
                raise UserError(
                    f"{ckpt.path}: the checkpoint's state of callback {cb.name!r} "
                    f"(callbacks.{cb.name}) is damaged: {exc}. Use another checkpoint "
                    "(step-*.safetensors in the same folder)."
                ) from None
    trainer.resumed = True
    trainer.emit("on_restore", ckpt.path)
    return changed


def restore_from(trainer: Trainer, path: Path) -> None:
    """Read a checkpoint of this run and put the run back as it holds it (rollbacks)."""
    from ganframe.checkpoint import read_checkpoint
    from ganframe.run_record import RunRecord

    ckpt = read_checkpoint(path)
    restore(trainer, ckpt, RunRecord.from_meta(ckpt.meta, path))
