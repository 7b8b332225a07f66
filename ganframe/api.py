"""The Python API: what the CLI does, callable from a notebook.

    >>> from ganframe.api import load_recipe, train, load_checkpoint, sample
    >>> result = train(load_recipe("gaussian-ring", overrides=["train.steps=200"]), out="runs/x")
    >>> points = sample(result.checkpoint, 1000)

This is the layer that joins the plugin host (registry), recipes, the training loop and the
checkpoint file; none of those know about each other.
"""

from __future__ import annotations

import os
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

from ganframe.errors import UserError
from ganframe.recipe import ResolvedRecipe
from ganframe.registry import Registry

if TYPE_CHECKING:  # torch stays out of import time
    import torch
    from torch import nn

    from ganframe.distributed import DistInfo
    from ganframe.training import Progress, TrainResult

DATA_ENV = "GANFRAME_DATA"


def get_registry(disabled: Sequence[str] | None = None) -> Registry:
    from ganframe.plugins import get_host

    return get_host(list(disabled) if disabled else None).registry


def data_root() -> Path | None:
    """The one data setting: ``$GANFRAME_DATA``, a folder holding ``mnist/``, ``poems/``..."""
    value = os.environ.get(DATA_ENV, "").strip()
    return Path(value).expanduser() if value else None


def load_recipe(
    ref: str | Path,
    overrides: Sequence[str] | None = None,
    *,
    registry: Registry | None = None,
) -> ResolvedRecipe:
    """Load and validate a recipe file or registered recipe name; raise UserError if bad."""
    from ganframe.recipe import load_recipe as _load

    return _load(ref, registry or get_registry(), list(overrides or []))


def _ensure_resolved(recipe: ResolvedRecipe | str | Path, overrides: Sequence[str] | None):
    if isinstance(recipe, ResolvedRecipe):
        if overrides:
            raise ValueError("pass overrides to load_recipe() when giving a loaded recipe")
        return recipe
    return load_recipe(recipe, overrides)


def check_requirements(resolved: ResolvedRecipe) -> None:
    """``[ganframe] requires = ["pkg>=1.0"]``: fail before training if a need is not met."""
    from ganframe.requirements import check

    check(resolved.recipe.ganframe.requires, resolved.source)


def train(
    recipe: ResolvedRecipe | str | Path,
    *,
    out: str | Path | None = None,
    overrides: Sequence[str] | None = None,
    resume: bool = False,
    force: bool = False,
    device: str | None = None,
    max_steps: int | None = None,
    progress: Progress | None = None,
) -> TrainResult:
    """Run a recipe into a run folder (default ``runs/<name>``) and return where it ended."""

    from ganframe import distributed, runfolder
    from ganframe.checkpoint import CheckpointDir
    from ganframe.device import cpu_threads, select_device

    resolved = _ensure_resolved(recipe, overrides)
    check_requirements(resolved)
    if device is not None:
        resolved.recipe.device = device
    if max_steps is not None and max_steps <= 0:
        raise UserError(f"--max-steps must be a positive number of steps, not {max_steps}.")
    rec = resolved.recipe
    dev = select_device(rec.device)
    out_dir = Path(out) if out is not None else Path("runs") / rec.name
    info = distributed.from_env()
    fresh = not runfolder.has_run(out_dir)
    if info.is_main:  # only rank 0 writes; the others wait for the folder
        runfolder.prepare(out_dir, resume=resume, force=force)
    dev = distributed.init(info, dev)
    try:
        distributed.barrier(info)
        with cpu_threads(rec.threads):
            return _train_in(
                resolved,
                out_dir,
                dev,
                resume=resume,
                max_steps=max_steps,
                progress=progress if info.is_main else None,
                dist_info=info,
            )
    except UserError:
        if info.is_main and fresh and not CheckpointDir(out_dir / "checkpoints").steps():
            runfolder.discard(out_dir)
        raise
    finally:
        distributed.shutdown(info)


def _train_in(
    resolved: ResolvedRecipe,
    out_dir: Path,
    dev: torch.device,
    *,
    resume: bool,
    max_steps: int | None,
    progress: Progress | None,
    dist_info: DistInfo,
) -> TrainResult:

    from ganframe import runfolder, tomlwrite
    from ganframe.checkpoint import CheckpointDir, read_checkpoint
    from ganframe.device import seed_everything, set_deterministic
    from ganframe.training import Trainer

    rec = resolved.recipe

    registry = get_registry()
    ckpt_dir = CheckpointDir(out_dir / runfolder.CHECKPOINTS)
    latest = None
    if resume:
        if dist_info.is_main:
            ckpt_dir.remove_stale_temps()
        latest = ckpt_dir.latest()
        leftovers = [p for p in (ckpt_dir.last_path, *ckpt_dir.steps()) if p.exists()]
        if latest is None and leftovers:
            read_checkpoint(leftovers[-1])  # raises, naming the file and what is wrong
    ckpt = read_checkpoint(latest) if latest is not None else None
    if ckpt is not None:
        world = int(ckpt.meta.get("run", {}).get("world", 1))
        if world != dist_info.world:
            raise UserError(
                f"{latest}: this run was trained in {world} process(es); resume it with "
                f"--nproc {world} (now {dist_info.world}), or its data shards and global "
                "batch would change."
            )
    seed_everything(rec.seed)
    set_deterministic(rec.deterministic)
    log = runfolder.MetricsLog(out_dir / runfolder.METRICS_FILE, enabled=dist_info.is_main)
    trainer = Trainer(
        resolved,
        device=dev,
        out=out_dir,
        meta={},
        writer=None,
        log=log,
        progress=progress,
        data_root=data_root(),
        dist_info=dist_info,
    )
    if dist_info.enabled:
        b = rec.train.batch_size
        trainer.progress.on_message(
            f"{dist_info.world} processes x batch {b} per process = global batch "
            f"{dist_info.world * b}"
            + (
                f"; {trainer.sync_bn_layers} batch-norm layer(s) use the global batch"
                if rec.train.sync_batchnorm
                else ""
            )
        )
    info = trainer.ctx.data_info
    writer_spec = registry.default_writer(trainer.dataset.kind)
    if writer_spec is not None:

        def write(samples: torch.Tensor, stem: Path) -> Path:
            path = stem.with_suffix(writer_spec.suffix)
            writer_spec.write(samples, path, info)
            return path

        trainer.writer = write
    trainer.meta = checkpoint_meta(resolved, trainer.dataset.kind, info)

    if resume:
        if ckpt is not None and latest is not None:
            _check_same_run(ckpt.meta, trainer.meta, latest, resolved)
            check_plugin_versions(ckpt.meta, latest)
            trainer.restore(ckpt)
            if dist_info.is_main:
                log.truncate_after(trainer.state.step)
            trainer.progress.on_message(f"resuming from {latest} at step {trainer.state.step}")
        elif dist_info.is_main:
            log.truncate_after(0)
            trainer.progress.on_message(f"no checkpoint in {out_dir}; starting from step 0")
    if dist_info.is_main:
        runfolder.write_atomic(
            out_dir / runfolder.RECIPE_FILE, tomlwrite.dumps(resolved.to_dict()).encode()
        )
    return trainer.run(max_steps=max_steps)


def checkpoint_meta(resolved: ResolvedRecipe, data_kind: str, info: dict[str, Any]) -> dict:
    """What a checkpoint must carry to be used without the recipe or the data."""
    from ganframe import __version__

    components = {
        place: {"type": spec.name, "plugin": spec.plugin, "version": spec.version}
        for place, (spec, _cfg) in resolved.components.items()
    }
    gen_spec, gen_config = resolved.component("generator")
    return {
        "ganframe": __version__,
        "recipe": resolved.to_dict(),
        "data_kind": data_kind,
        "data_info": info,
        "recipe_dir": str(resolved.recipe_dir) if resolved.recipe_dir else None,
        "components": components,
        "plugins": {c["plugin"]: c["version"] for c in components.values()},
        "generator": {
            "type": gen_spec.qualified_name,
            "config": gen_config.model_dump(mode="json"),
        },
    }


def _check_same_run(
    old: dict[str, Any], new: dict[str, Any], path: Path, resolved: ResolvedRecipe
) -> None:
    """Resuming with other networks or data would silently train something else.

    The run's tables are read through today's config models first, so an option that a
    newer plugin version added, at its default, does not count as a change.
    """
    for key in ("data", "generator", "critic"):
        a = old.get("recipe", {}).get(key)
        b = new["recipe"].get(key)
        if a != b and isinstance(a, dict) and key in resolved.components:
            a = _with_current_defaults(a, resolved.components[key][0])
        if a != b:
            a, b = a or {}, b or {}

            def shown(table: dict[str, Any], k: str) -> str:
                return repr(table[k]) if k in table else "(unset)"

            changed = ", ".join(
                f"{k}: {shown(a, k)} -> {shown(b, k)}"
                for k in sorted(set(a) | set(b), key=str)
                if shown(a, k) != shown(b, k)
            )
            raise UserError(
                f"{path}: cannot resume: the recipe's [{key}] differs from the run's "
                f"({changed}). Resume with the run's own recipe (its recipe.toml), or start "
                "a new run with --out."
            )


def _with_current_defaults(table: dict[str, Any], spec: Any) -> dict[str, Any]:
    """``table`` validated by the component's config model now; unchanged if it does not
    validate (or names another component), so the difference is reported as it is."""
    if table.get("type") not in (spec.name, spec.qualified_name):
        return table
    try:
        params = {k: v for k, v in table.items() if k != "type"}
        config = spec.config_model().model_validate(params)
    except Exception:  # a removed or renamed option: a real difference
        return table
    return {**table, **config.model_dump(mode="json", exclude_none=True)}


class PluginVersionWarning(UserWarning):
    """A checkpoint was made with another version of a plugin than the one installed."""


def check_plugin_versions(meta: dict[str, Any], path: Path) -> list[str]:
    """Warn, naming each plugin, when the installed versions differ from the checkpoint's."""
    import warnings

    from ganframe.plugins import get_host

    installed = {p.name: p.version for p in get_host().plugins if p.status.startswith("ok")}
    notes = []
    for plugin, version in sorted(meta.get("plugins", {}).items()):
        have = installed.get(plugin)
        if have is None:
            notes.append(f"{path}: made with plugin {plugin} {version}, which is not loaded")
        elif have != version:
            notes.append(f"{path}: made with plugin {plugin} {version}; {have} is installed")
    for note in notes:
        warnings.warn(note, PluginVersionWarning, stacklevel=3)
    return notes


@dataclass
class LoadedCheckpoint:
    """A generator rebuilt from a checkpoint alone, with what is needed to use it."""

    path: Path
    generator: nn.Module
    step: int
    data_kind: str
    info: dict[str, Any]
    recipe: dict[str, Any]
    meta: dict[str, Any]


def load_checkpoint(path: str | Path, *, device: str = "cpu") -> LoadedCheckpoint:
    """Rebuild the generator (EMA weights when the run kept an EMA) in eval mode."""
    from ganframe.checkpoint import read_checkpoint, restore_module
    from ganframe.components import BuildContext
    from ganframe.device import select_device

    path = Path(path)
    if path.is_dir():
        from ganframe.checkpoint import CheckpointDir

        found = CheckpointDir(path / "checkpoints" if (path / "checkpoints").is_dir() else path)
        latest = found.latest()
        if latest is None:
            raise UserError(f"{path}: no checkpoint found in this folder.")
        path = latest
    ckpt = read_checkpoint(path)
    meta = ckpt.meta
    gen, info, kind = meta.get("generator"), meta.get("data_info"), meta.get("data_kind")
    if not (
        isinstance(gen, dict)
        and isinstance(gen.get("type"), str)
        and isinstance(gen.get("config"), dict)
        and isinstance(info, dict)
        and isinstance(kind, str)
    ):
        raise UserError(
            f"{path}: the checkpoint metadata does not describe a ganframe generator "
            "(generator.type, generator.config, data_info, data_kind); it was not written by "
            "'ganframe run' or is damaged."
        )
    registry = get_registry()
    check_plugin_versions(meta, path)
    try:
        spec = registry.get("generator", gen["type"])
    except UserError:
        plugin = gen["type"].partition(":")[0]
        version = meta.get("plugins", {}).get(plugin, "?")
        raise UserError(
            f"{path}: this checkpoint's generator {gen['type']!r} comes from plugin {plugin} "
            f"(version {version}), which is not installed or failed to load; install it "
            "(see 'ganframe list-plugins')."
        ) from None
    config = _validate_config(spec, gen["config"], path, meta)
    dev = select_device(device)
    model = spec.build(config, BuildContext(data_info=info, device=dev)).to(dev)
    prefix = "ema" if any(k.startswith("ema.") for k in ckpt.tensors) else "generator"
    restore_module(ckpt, prefix, model)
    model.eval()
    return LoadedCheckpoint(
        path,
        model,
        int(meta.get("run", {}).get("step", 0)),
        kind,
        info,
        meta.get("recipe", {}),
        meta,
    )


def _validate_config(spec: Any, options: dict[str, Any], path: Path, meta: dict) -> Any:
    """A component's options from a checkpoint, checked against the installed plugin."""
    from pydantic import ValidationError

    try:
        return spec.config_model().model_validate(options)
    except ValidationError as exc:
        made_with = meta.get("plugins", {}).get(spec.plugin, "?")
        raise UserError(
            f"{path}: the {spec.kind} {spec.name!r} options stored in this checkpoint do not "
            f"fit plugin {spec.plugin} {spec.version} (the checkpoint was made with "
            f"{made_with}): {exc.errors()[0]['loc']}: {exc.errors()[0]['msg']}. Install the "
            "plugin version the checkpoint was made with."
        ) from None


def _override_metric_options(tables: list[dict[str, Any]], overrides: Sequence[str]) -> set[str]:
    """Apply ``METRIC.option=value`` items to the metric tables; returns the changed types."""
    from ganframe.recipe import parse_override

    changed = set()
    for item in overrides:
        parts, value = parse_override(item)
        if len(parts) != 2 or parts[1] in ("type", "every"):
            raise UserError(
                f"--set {item!r}: eval takes METRIC.option=value for a metric it evaluates, "
                "e.g. --set mnist-fid.n_samples=10000."
            )
        name, key = parts
        hits = [t for t in tables if t["type"] == name]
        if not hits:
            listed = ", ".join(sorted({t["type"] for t in tables}))
            raise UserError(
                f"--set {item!r}: metric {name!r} is not evaluated here (evaluating: "
                f"{listed}); add --metric {name} to evaluate it."
            )
        for table in hits:
            table[key] = value
        changed.add(name)
    return changed


def sample(
    checkpoint: LoadedCheckpoint | str | Path,
    n: int,
    *,
    seed: int = 0,
    **options: Any,
) -> torch.Tensor:
    """Draw ``n`` samples in the data's format; the same seed gives the same samples."""
    import torch

    ckpt = checkpoint if isinstance(checkpoint, LoadedCheckpoint) else load_checkpoint(checkpoint)
    if n <= 0:
        raise UserError(f"-n must be a positive number of samples, not {n}.")
    device = next(iter(ckpt.generator.parameters()), torch.empty(0)).device
    rng = torch.Generator(device=device).manual_seed(seed)
    options = {k: v for k, v in options.items() if v is not None}
    with torch.no_grad():
        x = ckpt.generator.generate(n, device=device, rng=rng, **options)
    return x.cpu()


def write_samples(samples: torch.Tensor, path: str | Path, checkpoint: LoadedCheckpoint) -> Path:
    """Write samples in the format the file suffix names (``.png``, ``.npy``, ``.txt``...)."""
    path = Path(path)
    spec = get_registry().writer(checkpoint.data_kind, path.suffix)
    try:
        spec.write(samples, path, checkpoint.info)
    except OSError as exc:
        raise UserError(f"{path}: cannot write samples ({exc.strerror}).") from None
    return path


def evaluate(
    checkpoint: LoadedCheckpoint | str | Path,
    metrics: Sequence[str] | None = None,
    *,
    seed: int = 0,
    overrides: Sequence[str] = (),
) -> dict[str, dict[str, Any]]:
    """Evaluate metrics on a checkpoint: the recipe's ``[[metrics]]`` or the types named
    (with the recipe's options where it lists them). ``overrides`` are ``METRIC.option=value``
    items, e.g. ``mnist-fid.n_samples=10000`` for a FID on more samples than training used."""
    import torch
    from pydantic import ValidationError

    from ganframe.components import BuildContext, EvalContext

    ckpt = checkpoint if isinstance(checkpoint, LoadedCheckpoint) else load_checkpoint(checkpoint)
    registry = get_registry()
    tables = [dict(t) for t in ckpt.recipe.get("metrics", [])]
    if metrics:
        # A metric the recipe configures keeps the recipe's options (its temperature, its
        # sample count), so `--metric bleu` measures what training logged; others get defaults.
        configured = {t["type"]: t for t in reversed(tables)}
        tables = [configured.get(m, {"type": m}) for m in metrics]
    if not tables:
        raise UserError(
            f"{ckpt.path}: the run's recipe has no [[metrics]]; name one with --metric "
            f"(available: {', '.join(registry.names('metric')) or 'none'})."
        )
    changed = _override_metric_options(tables, overrides)
    device = next(iter(ckpt.generator.parameters()), torch.empty(0)).device
    results = {}
    for table in tables:
        options = {k: v for k, v in table.items() if k not in ("type", "every")}
        spec = registry.get("metric", table["type"])
        if table["type"] in changed:
            try:
                config = spec.config_model().model_validate(options)
            except ValidationError as exc:
                err = exc.errors()[0]
                where = ".".join(str(p) for p in err["loc"])
                raise UserError(
                    f"--set {table['type']}.{where}: {err['msg']} (metric {spec.name!r} of "
                    f"plugin {spec.plugin})."
                ) from None
        else:
            config = _validate_config(spec, options, ckpt.path, ckpt.meta)
        recipe_dir = ckpt.meta.get("recipe_dir")
        ctx = BuildContext(
            data_info=ckpt.info, device=device, seed=seed, data_root=data_root(),
            recipe_dir=Path(recipe_dir) if isinstance(recipe_dir, str) else None,
        )
        data_table = ckpt.recipe.get("data")
        if data_table:
            try:
                dspec = registry.get("dataset", data_table["type"])
                ctx.build_data = lambda c, s=dspec, x=ctx: s.build(c, x)
                ctx.data_config = dspec.config_model().model_validate(
                    {k: v for k, v in data_table.items() if k != "type"}
                )
            except UserError:
                pass
        metric = spec.build(config, ctx)
        with torch.no_grad():
            results[table["type"]] = metric.evaluate(
                ckpt.generator, None, EvalContext(device, seed, ckpt.info)
            )
    return results
