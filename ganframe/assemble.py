"""Assembly: a validated recipe plus the plugin registry -> the parts of a run.

The one module that reads both the recipe and the registry to build things: the dataset, the
networks (with sync batch norm, channels-last and compile applied), the EMA copy, optimisers
and their schedules, the phases with their objectives, metrics, the core's callbacks and the
recipe's loggers and callbacks. The loop (:mod:`ganframe.loop`) gets finished parts and
knows neither the recipe nor the registry.
"""

from __future__ import annotations

import copy
import warnings
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any

import torch
from torch import nn

from ganframe import distributed
from ganframe.components import BuildContext
from ganframe.device import PerformanceWarning, bf16_warning
from ganframe.errors import PluginError, UserError
from ganframe.loop.callbacks import (
    Checkpointing,
    LogScalars,
    MetricRunner,
    SampleGrids,
    ScheduledMetric,
)
from ganframe.loop.data import DataStream
from ganframe.loop.events import Callback
from ganframe.loop.guards import DivergenceGuard, SignalStop
from ganframe.loop.optim import LearningRates, hyperparameters, phase_rates
from ganframe.loop.startup import StartupReport
from ganframe.loop.trainer import Parts, Phase, Trainer

if TYPE_CHECKING:
    from ganframe.distributed import DistInfo
    from ganframe.recipe import ResolvedRecipe
    from ganframe.registry import Registry

__all__ = ["assemble", "naming"]

NETWORKS = ("generator", "critic")


def naming(source: str, fn: Callable[..., Any], *args: Any) -> Any:
    """Call ``fn``; a UserError it raises is prefixed with the recipe file it concerns (a
    PluginError names its plugin and component instead, and keeps its traceback)."""
    try:
        return fn(*args)
    except PluginError:
        raise
    except UserError as exc:
        text = str(exc)
        if text.startswith(source):
            raise
        raise UserError(f"{source}: {text}") from None


def sized(resolved: ResolvedRecipe, place: str, fn: Callable[..., Any], *args: Any) -> Any:
    """Call ``fn`` (which builds the component at ``place``); a failure to get the memory
    or sizes its options ask for (widths of 2**62, counts beyond memory) is a UserError
    naming the recipe, the component and its options, not an internal error or a plugin
    bug."""
    try:
        return fn(*args)
    except PluginError as exc:  # the registry's wrapper around a factory's own exception
        if exc.original is not None and _too_big(exc.original):
            raise _size_error(resolved, place, exc.original) from None
        raise
    except UserError:
        raise
    except (MemoryError, OverflowError, RuntimeError, ValueError) as exc:
        if _too_big(exc):
            raise _size_error(resolved, place, exc) from None
        raise


_SIZE_WORDS = ("alloc", "out of memory", "overflow", "too large", "too big", "numel",
               "invalid size", "size calculation", "maximum size")


def _too_big(exc: BaseException) -> bool:
    if isinstance(exc, MemoryError | OverflowError):
        return True
    text = str(exc).lower()
    return isinstance(exc, RuntimeError | ValueError) and any(w in text for w in _SIZE_WORDS)


def _size_error(resolved: ResolvedRecipe, place: str, exc: BaseException) -> UserError:
    entry = resolved.components.get(place)
    if entry is not None:
        spec, config = entry
        options = ", ".join(f"{k}={v!r}" for k, v in config.model_dump().items())
        what = f"{spec.kind} {spec.qualified_name} ({options[:300]})"
    else:
        what = place
    detail = " ".join(str(exc).split())[:200]
    return UserError(
        f"{resolved.source}: {place}: {what} cannot be built with these sizes: "
        f"{type(exc).__name__}: {detail}. Lower the sizes or counts in its table."
    )


#: A network whose weights, gradients and two optimiser moments would need more than the
#: device's memory is refused before it is built (on the meta device, no memory used).
_NETWORK_COPIES = 4


def _network(resolved: ResolvedRecipe, name: str, ctx: BuildContext) -> nn.Module:
    spec, config = resolved.component(name)
    _check_network_size(resolved, name, spec, config, ctx)
    return spec.build(config, ctx).to(ctx.device)


def _check_network_size(resolved: ResolvedRecipe, name: str, spec: Any, config: Any,
                        ctx: BuildContext) -> None:
    """Build the network on the meta device first (shapes only) and refuse one that cannot
    fit: a width of 60,000 allocates without failing and then exhausts the machine. The
    random generators are put back, so the real build draws exactly what it always drew."""
    import random

    import numpy as np

    limit = _device_memory(ctx.device)
    py_state, np_state = random.getstate(), np.random.get_state()
    try:
        cuda = [ctx.device] if ctx.device.type == "cuda" else []
        with torch.random.fork_rng(devices=cuda), torch.device("meta"):
            probe = spec.build(config, ctx)
        tensors = [*probe.parameters(), *probe.buffers()]
        need = sum(t.numel() * t.element_size() for t in tensors) * _NETWORK_COPIES
    except Exception:  # a factory that cannot be built on meta is built for real, unchecked
        return
    finally:
        random.setstate(py_state)
        np.random.set_state(np_state)
    if limit and need > limit:
        raise _size_error(resolved, name, MemoryError(
            f"its weights, gradients and optimiser state need about {need / 2**30:,.1f} GiB, "
            f"more than the {limit / 2**30:,.1f} GiB of {ctx.device}"))


def _device_memory(device: torch.device) -> int:
    """Total memory of the device in bytes (0: unknown, no check)."""
    import os

    try:
        if device.type == "cuda":
            return int(torch.cuda.get_device_properties(device).total_memory)
        if device.type == "cpu":
            return int(os.sysconf("SC_PHYS_PAGES") * os.sysconf("SC_PAGE_SIZE"))
    except (ValueError, OSError, RuntimeError, AttributeError):
        return 0
    return 0


def _data(resolved: ResolvedRecipe, device: torch.device,
          data_root: Path | None) -> tuple[Any, BuildContext]:
    """The dataset, and the context every other factory gets (its ``info()`` included)."""
    data_spec, data_config = resolved.component("data")
    rec = resolved.recipe

    def build_data(config: Any) -> Any:
        return data_spec.build(config, BuildContext(
            device=device, seed=rec.seed, recipe_dir=resolved.recipe_dir, data_root=data_root))

    dataset = sized(resolved, "data", naming, resolved.source, build_data, data_config)
    ctx = BuildContext(data_info=dict(dataset.info()), device=device, seed=rec.seed,
                       recipe_dir=resolved.recipe_dir, data_root=data_root,
                       data_config=data_config, build_data=build_data)
    return dataset, ctx


def _networks(resolved: ResolvedRecipe, ctx: BuildContext, dist: DistInfo
              ) -> tuple[nn.Module, nn.Module | None, int]:
    train = resolved.recipe.train
    nets: dict[str, nn.Module | None] = {}
    for name in NETWORKS:
        if name in resolved.components:
            nets[name] = sized(resolved, name, _network, resolved, name, ctx)
        else:
            nets[name] = None
    present = [n for n in nets.values() if n is not None]
    sync_layers = 0
    if dist.enabled and train.sync_batchnorm:
        from ganframe import syncbn

        sync_layers = sum(syncbn.convert(net)[1] for net in present)
    if dist.enabled:  # identical start on every rank, whatever each one drew
        for net in present:
            distributed.broadcast_state(net)
        # ...then each rank draws its own noise (latents, penalties, dropout)
        torch.manual_seed(resolved.recipe.seed + 1_000_003 * dist.rank)
    generator = nets["generator"]
    assert generator is not None
    return generator, nets["critic"], sync_layers


def _optimizers(resolved: ResolvedRecipe, nets: dict[str, nn.Module | None]
                ) -> tuple[dict[str, torch.optim.Optimizer], LearningRates]:
    optimizers, base, schedules = {}, {}, {}
    for name, net in nets.items():
        if net is None:
            continue
        spec, config = resolved.component(f"optim.{name}")
        params = [p for p in net.parameters() if p.requires_grad]
        optimizers[name] = naming(resolved.source, spec.build, config, params)
        base[name] = float(config.lr)
        sched = resolved.components.get(f"optim.{name}.schedule")
        schedules[name] = naming(resolved.source, sched[0].build, sched[1]) if sched else None
    return optimizers, LearningRates(optimizers, base, schedules)


def _speed(resolved: ResolvedRecipe, device: torch.device, nets: list[nn.Module],
           optimizers: dict[str, Any]) -> dict[str, Any]:
    """fp16 grad scalers, channels-last and torch.compile, as the recipe asks."""
    train = resolved.recipe.train
    scalers: dict[str, Any] = {}
    if train.precision == "fp16":
        if device.type != "cuda":
            raise UserError(
                f"{resolved.source}: train.precision: fp16 needs a CUDA device (this run is "
                f'on {device}); use "bf16" on CPUs.'
            )
        scalers = {name: torch.amp.GradScaler("cuda") for name in optimizers}
    if train.precision == "bf16" and (slow := bf16_warning(device)):
        warnings.warn(slow, PerformanceWarning, stacklevel=2)
    if train.channels_last:
        for net in nets:
            net.to(memory_format=torch.channels_last)
    if train.compile:
        _compile(nets[:2])
    return scalers


def _compile(nets: list[nn.Module]) -> None:
    """Compile forward passes in place (state_dict names stay the same, so checkpoints do
    not care); anything the compiler cannot handle runs eagerly, with a warning."""
    import torch._dynamo

    torch._dynamo.config.suppress_errors = True
    for net in nets:
        try:
            net.compile()
        except Exception as exc:  # e.g. no compiler toolchain on this machine
            warnings.warn(f"torch.compile unavailable ({type(exc).__name__}: {exc}); running "
                          "eagerly", RuntimeWarning, stacklevel=3)
            return


def _phases(resolved: ResolvedRecipe, ctx: BuildContext, has_critic: bool) -> list[Phase]:
    rec = resolved.recipe
    phases = []
    listed = rec.phase_list()
    # A rate a phase sets stays in force until a later phase sets another.
    rates = phase_rates([p.lr for p in listed])
    for index, p in enumerate(listed):
        place = f"phases.{index}.loss" if rec.phases else "loss"

        def make(place: str = place) -> Any:
            spec, config = resolved.component(place)
            objective = sized(resolved, place, spec.build, config, ctx)
            if objective.trains_critic and not has_critic:
                raise UserError(f"{resolved.source}: critic: missing [critic] table; {place} "
                                f"({spec.name}) trains a critic.")
            return objective

        every = rec.train.checkpoint_every if p.checkpoint_every is None else p.checkpoint_every
        phases.append(Phase(name=p.name, make_objective=make, steps=p.steps, epochs=p.epochs,
                            n_critic=p.n_critic or rec.train.n_critic, lr=rates[index],
                            checkpoint_every=every))
    return phases


def _built(resolved: ResolvedRecipe, prefix: str, ctx: BuildContext) -> list[tuple[Any, Any]]:
    """(table, built component) for each ``prefix.N`` place of the recipe, in order."""
    out = []
    index = 0
    while f"{prefix}.{index}" in resolved.components:
        spec, config = resolved.component(f"{prefix}.{index}")
        out.append((spec, sized(resolved, f"{prefix}.{index}", naming, resolved.source,
                                spec.build, config, ctx)))
        index += 1
    return out


def _core_callbacks(resolved: ResolvedRecipe, registry: Registry, ctx: BuildContext,
                    kind: str, folder: Any) -> list[Callback]:
    """The core's own listeners, in their documented order."""
    from ganframe.loop import snapshot

    rec, train = resolved.recipe, resolved.recipe.train
    writer = registry.default_writer(kind)
    info = ctx.data_info

    def write(samples: Any, stem: Path, labels: list[int] | None = None) -> Path:
        assert writer is not None
        path = stem.with_suffix(writer.suffix)
        writer.write(samples, path, info if labels is None else {**info, "sample_labels": labels})
        return path

    metrics = [ScheduledMetric(rec.metrics[i].type, metric, rec.metrics[i].every)
               for i, (_spec, metric) in enumerate(_built(resolved, "metrics", ctx))]
    return [
        StartupReport(),  # device, threads, precision, data, run folder: when training starts
        LogScalars(train.log_every),
        SampleGrids(train.sample_every, train.sample_count, write if writer else None),
        MetricRunner(metrics),
        Checkpointing(folder),
        SignalStop(train.log_every),
        DivergenceGuard(train, folder, snapshot.restore_from),
    ]


def _recipe_callbacks(resolved: ResolvedRecipe, ctx: BuildContext) -> list[Callback]:
    """The recipe's ``[[loggers]]`` then its ``[[callbacks]]``."""
    out: list[Callback] = []
    for prefix in ("loggers", "callbacks"):
        for spec, cb in _built(resolved, prefix, ctx):
            if not isinstance(cb, Callback):
                raise UserError(f"{resolved.source}: {prefix}: {spec.qualified_name} of plugin "
                                f"{spec.plugin} did not build a ganframe Callback (got "
                                f"{type(cb).__name__}).")
            cb.name = cb.name or spec.name
            out.append(cb)
    return out


def assemble(
    resolved: ResolvedRecipe,
    registry: Registry,
    *,
    device: torch.device,
    out: Path,
    dist: DistInfo,
    record: Any,
    data_root: Path | None = None,
    callbacks: Sequence[Callback] = (),
) -> Trainer:
    """Build every part of the run and the trainer that runs it.

    Callback order: the core's (scalar logging, sample grids, metrics, checkpoints, signals,
    divergence), then the recipe's ``[[loggers]]``, its ``[[callbacks]]``, then ``callbacks``.
    """
    from ganframe.checkpoint import CheckpointDir

    rec = resolved.recipe
    train = rec.train
    dataset, ctx = _data(resolved, device, data_root)
    stream = naming(resolved.source, DataStream, dataset, train.batch_size, rec.seed, dist.rank,
                    dist.world)
    generator, critic, sync_layers = _networks(resolved, ctx, dist)
    ema = copy.deepcopy(generator).requires_grad_(False).eval() if train.ema > 0 else None
    optimizers, rates = _optimizers(resolved, {"generator": generator, "critic": critic})
    nets = [n for n in (generator, critic, ema) if n is not None]
    scalers = _speed(resolved, device, nets, optimizers)
    folder = CheckpointDir(out / "checkpoints", keep_last=train.keep_last)
    listeners = [*_core_callbacks(resolved, registry, ctx, dataset.kind, folder),
                 *_recipe_callbacks(resolved, ctx), *callbacks]
    parts = Parts(
        settings=train, seed=rec.seed, device=device, out=out, dist=dist, dataset=dataset,
        stream=stream, generator=generator, critic=critic, ema=ema, optimizers=optimizers,
        learning_rates=rates, scalers=scalers, phases=_phases(resolved, ctx, critic is not None),
        data_info=ctx.data_info, record=record,
        extras={
            "checkpoints": folder,
            "hyperparameters": {k: hyperparameters(o) for k, o in optimizers.items()},
            "sync_bn_layers": sync_layers,
            "build_context": ctx,
            "source": resolved.source,
        },
    )
    return Trainer(parts, listeners)
