"""The Python API: what the CLI does, callable from a notebook.

    >>> from ganframe.api import load_recipe, train, load_checkpoint, sample
    >>> result = train(load_recipe("gaussian-ring", overrides=["train.steps=200"]), out="runs/x")
    >>> points = sample(result.checkpoint, 1000)

This is the layer that joins the plugin host (registry), recipes, the training loop and the
checkpoint file; none of those know about each other.
"""

from __future__ import annotations

import os
from collections.abc import Callable, Sequence
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
    from ganframe.loop.events import Callback
    from ganframe.loop.trainer import TrainResult
    from ganframe.run_record import RunRecord

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
    callbacks: Sequence[Callback] = (),
    progress: Callback | None = None,
) -> TrainResult:
    """Run a recipe into a run folder (default ``runs/<name>``) and return where it ended.

    ``callbacks`` listen to the run's events after the core's own and the recipe's loggers
    and callbacks (``progress`` is one more, kept for callers written before 0.2)."""

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
    listeners = [*callbacks, *([progress] if progress is not None else [])]
    try:
        distributed.barrier(info)
        with cpu_threads(rec.threads):
            return _train_in(resolved, out_dir, dev, resume=resume, max_steps=max_steps,
                             callbacks=listeners if info.is_main else [], dist_info=info)
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
    callbacks: list[Callback],
    dist_info: DistInfo,
) -> TrainResult:
    from ganframe import runfolder, tomlwrite
    from ganframe.assemble import assemble
    from ganframe.checkpoint import CheckpointDir
    from ganframe.device import seed_everything, set_deterministic
    from ganframe.loop import resume as resume_rules
    from ganframe.loop import snapshot
    from ganframe.run_record import make_record

    rec = resolved.recipe
    found = None
    changes: list[resume_rules.Change] = []
    if resume:
        found = resume_rules.find_checkpoint(CheckpointDir(out_dir / runfolder.CHECKPOINTS),
                                             clean=dist_info.is_main)
    if found is not None:
        # Every resume rule that needs no built network runs before anything is built or
        # written: a refused resume leaves the run folder as it was.
        latest, ckpt, old = found
        resume_rules.check_world(old, dist_info.world, latest)
        new_recipe, defaults = resolved.to_dict(), _current_defaults(resolved)
        resume_rules.check_same_run(old, new_recipe, latest, defaults)
        changes = resume_rules.check_recipe_changes(old, new_recipe, latest, defaults)
    seed_everything(rec.seed)
    set_deterministic(rec.deterministic)
    trainer = assemble(resolved, get_registry(), device=dev, out=out_dir, dist=dist_info,
                       record=None, data_root=data_root(), callbacks=callbacks)
    trainer.record = make_record(resolved, trainer.dataset.kind, trainer.data_info)
    if dist_info.enabled:
        b = rec.train.batch_size
        layers = trainer.extras["sync_bn_layers"]
        trainer.message(
            f"{dist_info.world} processes x batch {b} per process = global batch "
            f"{dist_info.world * b}"
            + (f"; {layers} batch-norm layer(s) use the global batch"
               if rec.train.sync_batchnorm else ""))
    if found is not None:
        latest, ckpt, old = found
        check_plugin_versions(old, latest)
        snapshot.restore(trainer, ckpt, old)
        trainer.plan()  # phase lengths are checked before anything is written
        # The history of recipe changes goes on in every later checkpoint.
        if old.resumes:
            trainer.record = trainer.record.model_copy(update={"resumes": list(old.resumes)})
        if changes:
            trainer.record = trainer.record.with_resume(old.step, [c.record() for c in changes])
        trainer.message(f"resuming from {latest} at step {trainer.state.step}")
        if changes:
            trainer.message(resume_rules.applied_message(changes, old.step))
    elif resume:
        trainer.message(f"no checkpoint in {out_dir}; starting from step 0")
    if dist_info.is_main:
        runfolder.write_atomic(out_dir / runfolder.RECIPE_FILE,
                               tomlwrite.dumps(resolved.to_dict()).encode())
    return trainer.fit(max_steps)


def checkpoint_meta(resolved: ResolvedRecipe, data_kind: str, info: dict[str, Any]) -> dict:
    """What a checkpoint must carry to be used without the recipe or the data (the metadata
    document of :func:`ganframe.run_record.make_record`)."""
    from ganframe.run_record import make_record

    return make_record(resolved, data_kind, info).to_meta()


def _current_defaults(resolved: ResolvedRecipe) -> Callable[[str, dict[str, Any]], dict[str, Any]]:
    """``current_defaults(place, table)`` for :mod:`ganframe.loop.resume`: a component table
    of a run's recipe read through the config model of the component at that place now."""

    def fill(place: str, table: dict[str, Any]) -> dict[str, Any]:
        entry = resolved.components.get(place)
        if entry is None:
            return table
        # a metric's "every" belongs to the recipe's table, not to the metric's options
        kept = {k: table[k] for k in ("every",) if place.startswith("metrics.") and k in table}
        inner = {k: v for k, v in table.items() if k not in kept}
        return {**_with_current_defaults(inner, entry[0]), **kept}

    return fill


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


def check_plugin_versions(record: RunRecord, path: Path) -> list[str]:
    """Warn, naming each plugin, when the installed versions differ from the checkpoint's."""
    import warnings

    from ganframe.loop.resume import check_plugin_versions as notes_for
    from ganframe.plugins import get_host

    installed = {p.name: p.version for p in get_host().plugins if p.status.startswith("ok")}
    notes = notes_for(record, installed, path)
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
    meta: dict[str, Any]  #: the metadata document as read; ``record`` is it typed
    record: RunRecord | None = None


def load_checkpoint(path: str | Path, *, device: str = "cpu") -> LoadedCheckpoint:
    """Rebuild the generator (EMA weights when the run kept an EMA) in eval mode."""
    from ganframe.checkpoint import read_checkpoint, restore_module
    from ganframe.components import BuildContext
    from ganframe.device import select_device
    from ganframe.run_record import RunRecord

    path = Path(path)
    if path.is_dir():
        from ganframe.checkpoint import CheckpointDir

        found = CheckpointDir(path / "checkpoints" if (path / "checkpoints").is_dir() else path)
        latest = found.latest()
        if latest is None:
            raise UserError(f"{path}: no checkpoint found in this folder.")
        path = latest
    ckpt = read_checkpoint(path)
    record = RunRecord.from_meta(ckpt.meta, path)  # names the file and the damaged field
    gen = record.generator
    registry = get_registry()
    check_plugin_versions(record, path)
    try:
        spec = registry.get("generator", gen.type)
    except UserError:
        plugin = gen.type.partition(":")[0]
        version = record.plugins.get(plugin, "?")
        raise UserError(
            f"{path}: this checkpoint's generator {gen.type!r} comes from plugin {plugin} "
            f"(version {version}), which is not installed or failed to load; install it "
            "(see 'ganframe list-plugins')."
        ) from None
    config = _validate_config(spec, gen.config, path, record)
    dev = select_device(device)
    model = spec.build(config, BuildContext(data_info=record.data_info, device=dev)).to(dev)
    prefix = "ema" if any(k.startswith("ema.") for k in ckpt.tensors) else "generator"
    restore_module(ckpt, prefix, model)
    model.eval()
    return LoadedCheckpoint(
        path,
        model,
        record.step,
        record.data_kind,
        record.data_info,
        record.recipe,
        ckpt.meta,
        record,
    )


def _validate_config(spec: Any, options: dict[str, Any], path: Path, record: RunRecord) -> Any:
    """A component's options from a checkpoint, checked against the installed plugin."""
    from pydantic import ValidationError

    try:
        return spec.config_model().model_validate(options)
    except ValidationError as exc:
        made_with = record.plugins.get(spec.plugin, "?")
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


#: ``labels="all"`` in :func:`sample`: every class in turn.
ALL_LABELS = "all"


def sample(
    checkpoint: LoadedCheckpoint | str | Path,
    n: int,
    *,
    seed: int = 0,
    labels: int | str | Sequence[int] | torch.Tensor | None = None,
    **options: Any,
) -> torch.Tensor:
    """Draw ``n`` samples in the data's format; the same seed gives the same samples.

    ``labels`` choose the classes of a conditional generator: one class for all samples, a
    sequence of classes cycled over the ``n`` samples, a tensor of ``n`` classes, or
    ``"all"``: every class in turn (0, 1, ..., K-1, 0, 1, ...), with ``n`` rounded up to a
    multiple of the K classes so each class gets as many samples. None draws random classes.
    The latent noise does not depend on the labels, so one seed shows the same "style" in
    every class. ``options`` are the generator's own sampling options (``temperature=0.8``
    for a text generator), validated by :func:`ganframe.components.check_sampling_options`;
    options given as None are left out, so callers can pass optional flags as they are.
    """
    import torch

    from ganframe.components import check_sampling_options

    ckpt = checkpoint if isinstance(checkpoint, LoadedCheckpoint) else load_checkpoint(checkpoint)
    if n <= 0:
        raise UserError(f"-n must be a positive number of samples, not {n}.")
    gen = ckpt.generator
    chosen = check_sampling_options(gen, {k: v for k, v in options.items() if v is not None})
    label_values, n = _sample_labels(ckpt, labels, n)
    device = next(iter(gen.parameters()), torch.empty(0)).device
    rng = torch.Generator(device=device).manual_seed(seed)
    if label_values is not None:  # generators that predate labels need not take the keyword
        chosen["labels"] = label_values
    with torch.no_grad():
        x = gen.generate(n, device=device, rng=rng, **chosen)
    return x.cpu()


def _sample_labels(
    ckpt: LoadedCheckpoint, labels: Any, n: int
) -> tuple[int | torch.Tensor | None, int]:
    """(labels for ``generate``, the sample count) for :func:`sample`'s ``labels``; the
    values themselves are checked by the generator (range, count)."""
    import torch

    if labels is None:
        return None, n
    gen = ckpt.generator
    if not getattr(gen, "conditional", False):
        raise UserError(
            f"{ckpt.path}: this checkpoint's generator is not conditional (it was trained "
            "without class labels), so it cannot draw samples of a chosen class; leave out "
            "--labels."
        )
    k = int(getattr(gen, "num_classes", 0))
    if isinstance(labels, str):
        if labels.strip().lower() != ALL_LABELS:
            raise UserError(
                f"--labels {labels!r}: expected a class number (3), a comma-separated list "
                f"(0,1,2) or {ALL_LABELS!r} (every one of the {k} classes in turn)."
            )
        n = -(-n // k) * k
        return torch.arange(n) % k, n
    if isinstance(labels, torch.Tensor) or not isinstance(labels, Sequence):
        return labels, n
    if not labels:
        raise UserError("--labels: give at least one class number.")
    try:
        values = torch.as_tensor(list(labels))
    except (TypeError, ValueError, RuntimeError):
        raise UserError(f"--labels {labels!r}: expected class numbers, e.g. 0,1,2.") from None
    return values[torch.arange(n) % len(labels)], n


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
    from ganframe.run_record import RunRecord

    ckpt = checkpoint if isinstance(checkpoint, LoadedCheckpoint) else load_checkpoint(checkpoint)
    record = ckpt.record if ckpt.record is not None else RunRecord.from_meta(ckpt.meta, ckpt.path)
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
            config = _validate_config(spec, options, ckpt.path, record)
        recipe_dir = record.recipe_dir
        ctx = BuildContext(
            data_info=ckpt.info, device=device, seed=seed, data_root=data_root(),
            recipe_dir=Path(recipe_dir) if recipe_dir else None,
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
