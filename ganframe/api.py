"""The Python API: what the CLI does, callable from a notebook.

    >>> from ganframe.api import load_recipe, train, load_checkpoint, sample
    >>> result = train(load_recipe("gaussian-ring", overrides=["train.steps=200"]), out="runs/x")
    >>> points = sample(result.checkpoint, 1000)

This is the layer that joins the plugin host (registry), recipes, the training loop and the
checkpoint file; none of those know about each other.
"""

from __future__ import annotations

import contextlib
import os
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

from ganframe.errors import PluginError, UserError
from ganframe.recipe import ResolvedRecipe
from ganframe.registry import Registry

if TYPE_CHECKING:  # torch stays out of import time
    import torch
    from torch import nn

    from ganframe.distributed import DistInfo
    from ganframe.loop.events import Callback
    from ganframe.loop.trainer import TrainResult
    from ganframe.pretrained import Generator
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
    progress: Callback | bool | None = None,
) -> TrainResult:
    """Run a recipe into a run folder (default ``runs/<name>``) and return where it ended.

    ``callbacks`` listen to the run's events after the core's own and the recipe's loggers
    and callbacks. ``progress`` is how the run shows itself while it trains: by default
    (``None`` or ``True``) plain lines on stdout, one per log interval (step, phase, losses,
    throughput, ETA) after the start-up lines (device, threads, precision, data, run
    folder), which suits notebooks and scripts; ``False`` shows nothing; a callback (such as
    :class:`ganframe.progress.RichProgress` or :class:`ganframe.loop.callbacks.Progress`)
    shows it its own way."""

    from ganframe import distributed, runfolder
    from ganframe.device import cpu_threads, select_device

    resolved = _ensure_resolved(recipe, overrides)
    check_requirements(resolved)
    if device is not None:
        resolved.recipe.device = device
    if max_steps is not None and max_steps <= 0:
        raise UserError(f"--max-steps must be a positive number of steps, not {max_steps}.")
    rec = resolved.recipe
    dev = select_device(rec.device)
    # an explicit --out is the user's choice; the default is runs/<name>, a checked name
    out_dir = Path(out) if out is not None else runfolder.default_folder(rec.name,
                                                                         resolved.source)
    info = distributed.from_env()
    listeners = [*callbacks, *_progress_display(progress)]
    restore_signals = _terminate_during_startup()
    session = None
    try:
        if info.is_main:  # only rank 0 writes (and locks); the others wait for the folder
            session = runfolder.open_run(out_dir, resume=resume, force=force)
        dev = distributed.init(info, dev)
        try:
            distributed.barrier(info)
            with cpu_threads(rec.threads):
                return _train_in(resolved, out_dir, dev, resume=resume, max_steps=max_steps,
                                 callbacks=listeners if info.is_main else [], dist_info=info,
                                 notes=session.notes if session is not None else [])
        finally:
            distributed.shutdown(info)
    except BaseException:
        # Any way out before the first checkpoint (an error, a bug, Ctrl-C, SIGTERM) takes
        # what this run created with it, so the same command works again.
        if session is not None and session.fresh and not session.has_checkpoint():
            session.discard()
        raise
    finally:
        if session is not None:
            session.close()
        restore_signals()


def _progress_display(progress: Callback | bool | None) -> list[Callback]:
    """``train(progress=...)`` as the listeners to add: see :func:`train`."""
    if progress is False:
        return []
    if progress is None or progress is True:
        from rich.console import Console

        from ganframe.progress import RichProgress

        return [RichProgress(Console(highlight=False), plain=True)]
    return [progress]


class Terminated(SystemExit):
    """SIGTERM or SIGHUP before the training loop took over signals (during start-up):
    the run folder is cleaned up, and the process exits with 128 + the signal's number."""

    def __init__(self, signum: int) -> None:
        super().__init__(128 + signum)
        self.signum = signum


def _terminate_during_startup() -> Callable[[], None]:
    """Until the loop's own signal guard takes over (``on_run_start``), SIGTERM and SIGHUP
    raise :class:`Terminated` instead of killing the process where it stands, so the start
    of a run is cleaned up like any other failure. Returns what puts the old handlers back."""
    import signal
    import threading

    if threading.current_thread() is not threading.main_thread():
        return lambda: None
    fired: list[int] = []

    def handler(signum: int, frame: Any) -> None:
        if not fired:  # one exception; a second signal must not cut the clean-up short
            fired.append(signum)
            raise Terminated(signum)

    wanted = [s for s in (getattr(signal, "SIGTERM", None), getattr(signal, "SIGHUP", None))
              if s is not None and signal.getsignal(s) is not signal.SIG_IGN]  # nohup stays
    previous = {s: signal.signal(s, handler) for s in wanted}

    def restore() -> None:
        for s, h in previous.items():
            signal.signal(s, h)

    return restore


def _train_in(
    resolved: ResolvedRecipe,
    out_dir: Path,
    dev: torch.device,
    *,
    resume: bool,
    max_steps: int | None,
    callbacks: list[Callback],
    dist_info: DistInfo,
    notes: Sequence[str] = (),
) -> TrainResult:
    from ganframe import runfolder, tomlwrite
    from ganframe.assemble import assemble
    from ganframe.checkpoint import CheckpointDir
    from ganframe.device import seed_everything, set_deterministic
    from ganframe.loop import resume as resume_rules
    from ganframe.run_record import make_record

    rec = resolved.recipe
    found = None
    if resume:
        found = resume_rules.find_checkpoint(CheckpointDir(out_dir / runfolder.CHECKPOINTS),
                                             clean=dist_info.is_main)
    if found is not None:
        resume_rules.check_world(found[2], dist_info.world, found[0])
    seed_everything(rec.seed)
    set_deterministic(rec.deterministic)
    trainer = assemble(resolved, get_registry(), device=dev, out=out_dir, dist=dist_info,
                       record=None, data_root=data_root(), callbacks=callbacks)
    trainer.record = make_record(resolved, trainer.dataset.kind, trainer.data_info)
    for note in notes:  # what opening the run folder did (a stale lock taken over...)
        trainer.message(note)
    if dist_info.enabled:
        b = rec.train.batch_size
        layers = trainer.extras["sync_bn_layers"]
        trainer.message(
            f"{dist_info.world} processes x batch {b} per process = global batch "
            f"{dist_info.world * b}"
            + (f"; {layers} batch-norm layer(s) use the global batch"
               if rec.train.sync_batchnorm else ""))
    if found is not None:
        _resume(trainer, resolved, *found)
    elif resume:
        trainer.message(f"no checkpoint in {out_dir}; starting from step 0")
    if dist_info.is_main:
        runfolder.write_atomic(out_dir / runfolder.RECIPE_FILE,
                               tomlwrite.dumps(resolved.to_dict()).encode())
    return trainer.fit(max_steps)


def _resume(trainer: Any, resolved: ResolvedRecipe, latest: Path, ckpt: Any,
            old: RunRecord) -> None:
    """Check the resume against the run's record, then put the run back as it stood.

    The recipe is compared after assembly because datasets resolve their data paths while
    they are built (a shipped recipe records the absolute path); nothing has been written to
    the run folder yet, so a refused resume leaves it as it was."""
    from ganframe.loop import resume as resume_rules
    from ganframe.loop import snapshot

    new_recipe, defaults = resolved.to_dict(), _current_defaults(resolved)
    resume_rules.check_same_run(old, new_recipe, latest, defaults)
    changes = resume_rules.check_recipe_changes(old, new_recipe, latest, defaults)
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


def load_checkpoint(path: str | Path, *, device: str = "cpu",
                    known_good: bool = False) -> LoadedCheckpoint:
    """Rebuild the generator (EMA weights when the run kept an EMA) in eval mode.

    ``known_good`` skips the build on the meta device (below), whose first use costs about
    as much as importing torch; only for a file whose bytes were checked against a digest a
    plugin registered (:func:`ganframe.pretrained.load`), which describes the plugin's own
    network. The guarded real build still applies."""
    from ganframe.checkpoint import read_checkpoint, restore_module
    from ganframe.components import BuildContext
    from ganframe.device import select_device
    from ganframe.export import check_export
    from ganframe.run_record import RunRecord

    path = Path(path)
    if not path.exists() and len(path.parts) == 1 and path.suffix != ".safetensors" and (
            get_registry().pretrained_model(str(path)) is not None):
        raise UserError(
            f"{path}: no such file or folder; {str(path)!r} is the name of a pretrained "
            f"generator, which 'ganframe sample {path}' and ganframe.api.pretrained() take by "
            "name ('ganframe models' lists them). Here give a checkpoint or generator file."
        )
    if path.is_dir():
        from ganframe.checkpoint import CheckpointDir

        found = CheckpointDir(path / "checkpoints" if (path / "checkpoints").is_dir() else path)
        latest = found.latest()
        if latest is None:
            raise UserError(f"{path}: no checkpoint found in this folder.")
        path = latest
    ckpt = read_checkpoint(path)
    check_export(ckpt.meta, path)  # a generator file (ganframe export): its section is ours
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
    prefix = "ema" if any(k.startswith("ema.") for k in ckpt.tensors) else "generator"
    # The metadata describes the network; the tensors are what the file really holds. The
    # description is checked against them on the meta device (no memory) before anything
    # is built for real, so a small file cannot make us allocate a huge network.
    budget = _SizeBudget(ckpt, prefix, gen.type, path)
    if not known_good:
        budget.check_on_meta(spec, config, record.data_info)
    with budget.guard():
        model = spec.build(config, BuildContext(data_info=record.data_info, device=dev)).to(dev)
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


def pretrained(name: str, *, device: str = "cpu") -> Generator:
    """A pretrained generator that an installed plugin ships, by name (``ganframe models``
    lists them), ready to call: ``pretrained("dcgan-mnist")(64)`` draws 64 digits with its
    recommended sampling options. The file is checked against the sha256 the plugin
    registered before it is read. A path is refused: use :func:`load_generator` for files."""
    from ganframe import pretrained as shipped

    if isinstance(name, os.PathLike) or shipped.looks_like_path(str(name)) or (
            Path(name).exists() and get_registry().pretrained_model(name) is None):
        raise UserError(
            f"pretrained() takes the name of a pretrained generator (see 'ganframe models'), "
            f"but {str(name)!r} is a path; load a checkpoint or a generator file with "
            "ganframe.api.load_generator(path)."
        )
    spec = shipped.find(name)
    return shipped.Generator.from_loaded(shipped.load(spec, device=device), spec.name,
                                         spec.card)


def load_generator(path: str | Path, *, device: str = "cpu") -> Generator:
    """The generator of a checkpoint, a run folder or a generator file (``ganframe export``),
    ready to call like :func:`pretrained`'s, with the sampling options the file recommends."""
    from ganframe import pretrained as shipped

    if isinstance(path, str) and not Path(path).exists() and not shipped.looks_like_path(
            path) and get_registry().pretrained_model(path) is not None:
        raise UserError(
            f"{path!r} is no file or folder but the name of a pretrained generator; load it "
            f"with ganframe.api.pretrained({path!r})."
        )
    loaded = load_checkpoint(path, device=device)
    return shipped.Generator.from_loaded(loaded, str(loaded.path))


class _OverBudget(BaseException):
    """Raised inside a guarded build (a BaseException, so that no factory's error handling
    takes it for the factory's own failure); the guard turns it into a UserError."""


class _SizeBudget:
    """What a checkpoint's network may hold: the bytes and the number of tensors the file
    stores under ``prefix``, plus room for buffers that are never saved."""

    #: Parameters and buffers a network may hold beyond what its checkpoint stores (unsaved
    #: buffers: masks, caches); more than that is metadata that does not fit the file.
    SLACK_BYTES = 64 * 1024 * 1024
    SLACK_TENSORS = 1024

    def __init__(self, ckpt: Any, prefix: str, what: str, path: Path) -> None:
        from ganframe.checkpoint import module_tensors

        self.ckpt, self.prefix, self.what, self.path = ckpt, prefix, what, path
        stored = module_tensors(ckpt, prefix)
        self.stored_bytes = sum(t.numel() * t.element_size() for t in stored.values())
        self.max_bytes = self.stored_bytes + self.SLACK_BYTES
        self.max_tensors = len(stored) + self.SLACK_TENSORS
        self.max_modules = 4 * len(stored) + self.SLACK_TENSORS

    def refuse(self, declared: str) -> UserError:
        return UserError(
            f"{self.path}: the generator this checkpoint's metadata describes ({self.what!r}, "
            f"{declared}) does not fit the {self.stored_bytes} bytes of {self.prefix!r} "
            "weights the file stores: its metadata is damaged or was made to mislead, so "
            "nothing was built. Use another checkpoint, or ask for the file again."
        )

    @contextlib.contextmanager
    def guard(self) -> Iterator[None]:
        """Stop a build as soon as it registers more tensors, bytes or modules than the
        budget allows (counted as they are registered, so the build stops early)."""
        from torch.nn.modules import module as torch_module

        seen = {"bytes": 0, "tensors": 0, "modules": 0}

        def tensor(module: Any, name: str, value: Any) -> None:
            if value is None:
                return
            seen["tensors"] += 1
            seen["bytes"] += value.numel() * value.element_size()
            if seen["bytes"] > self.max_bytes or seen["tensors"] > self.max_tensors:
                raise _OverBudget(f"at least {seen['bytes']} bytes in {seen['tensors']} "
                                  "tensors")

        def submodule(module: Any, name: str, value: Any) -> None:
            seen["modules"] += 1
            if seen["modules"] > self.max_modules:
                raise _OverBudget(f"more than {self.max_modules} modules")

        handles = [torch_module.register_module_parameter_registration_hook(tensor),
                   torch_module.register_module_buffer_registration_hook(tensor),
                   torch_module.register_module_module_registration_hook(submodule)]
        try:
            yield
        except _OverBudget as exc:
            raise self.refuse(str(exc)) from None
        finally:
            for handle in handles:
                handle.remove()

    def check_on_meta(self, spec: Any, config: Any, data_info: dict[str, Any]) -> None:
        """Build on the meta device and compare with the stored tensors: names, shapes and
        bytes. A network that cannot be built on the meta device is left to the guarded
        real build (which stops at the first tensor over the budget)."""
        import warnings

        import torch

        from ganframe.checkpoint import restore_module
        from ganframe.components import BuildContext

        meta = torch.device("meta")
        try:
            with self.guard(), meta:
                model = spec.build(config, BuildContext(data_info=data_info, device=meta))
        except PluginError:  # the plugin's code cannot run on the meta device
            return
        except UserError:
            raise
        except Exception:
            return
        if not isinstance(model, torch.nn.Module):
            return
        with warnings.catch_warnings():  # "copying into a meta parameter is a no-op"
            warnings.simplefilter("ignore")
            restore_module(self.ckpt, self.prefix, model)  # names the first differences
        total = sum(t.numel() * t.element_size()
                    for t in [*model.parameters(), *model.buffers()])
        if total > self.max_bytes:
            raise self.refuse(f"{total} bytes")


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


def sample_labels(
    checkpoint: LoadedCheckpoint, labels: Any, n: int
) -> list[int] | None:
    """The class of each of the samples :func:`sample` draws for ``labels`` (None: random
    classes, or an unconditional generator), for :func:`write_samples`."""
    import torch

    if labels is None or not getattr(checkpoint.generator, "conditional", False):
        return None
    values, n = _sample_labels(checkpoint, labels, n)
    if not isinstance(values, torch.Tensor):
        values = torch.as_tensor(values)
    return values.reshape(-1).expand(n).tolist() if values.numel() == 1 else values.tolist()


def write_samples(
    samples: torch.Tensor,
    path: str | Path,
    checkpoint: LoadedCheckpoint,
    labels: Sequence[int] | None = None,
) -> Path:
    """Write samples in the format the file suffix names (``.png``, ``.npy``, ``.txt``...).
    ``labels`` (each sample's class, see :func:`sample_labels`) reach the writer as
    ``info["sample_labels"]``: the PNG grid then shows one row per class."""
    path = Path(path)
    spec = get_registry().writer(checkpoint.data_kind, path.suffix)
    info = checkpoint.info if labels is None else {**checkpoint.info,
                                                    "sample_labels": list(labels)}
    try:
        spec.write(samples, path, info)
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
    items, e.g. ``mnist-fid.n_samples=10000`` for a FID on more samples than training used,
    and ``data.KEY=VALUE`` items for the data the metrics compare with (``data.path=...``).

    Which files ganframe reads is the user's choice, never a checkpoint's: unless the
    checkpoint lies in a run folder ganframe made here (:func:`ganframe.runfolder.is_own_run`),
    the options of its recorded recipe that take free text (paths, file names) are not used:
    they are the defaults or what ``overrides`` set."""
    import torch

    from ganframe import runfolder
    from ganframe.components import EvalContext
    from ganframe.run_record import RunRecord

    ckpt = checkpoint if isinstance(checkpoint, LoadedCheckpoint) else load_checkpoint(checkpoint)
    record = ckpt.record if ckpt.record is not None else RunRecord.from_meta(ckpt.meta, ckpt.path)
    registry = get_registry()
    trusted = runfolder.is_own_run(ckpt.path)
    data_items = [o for o in overrides if o.strip().startswith("data.")]
    tables, dropped = _metric_tables(ckpt, metrics, registry, trusted)
    changed = _override_metric_options(tables, [o for o in overrides if o not in data_items])
    data_table, data_dropped = _data_table(ckpt, data_items, registry, trusted)
    _warn_untrusted(ckpt.path, data_dropped + dropped)
    device = next(iter(ckpt.generator.parameters()), torch.empty(0)).device
    results = {}
    for table in tables:
        spec = registry.get("metric", table["type"])
        config = _metric_config(spec, table, table["type"] in changed, ckpt.path, record)
        ctx = _eval_context(ckpt, record, registry, data_table, trusted, data_items, device,
                            seed)
        metric = spec.build(config, ctx)
        with torch.no_grad():
            results[table["type"]] = metric.evaluate(
                ckpt.generator, None, EvalContext(device, seed, ckpt.info)
            )
    return results


class UntrustedOptionsWarning(UserWarning):
    """Options a checkpoint's recipe records were not used: the checkpoint is not in a run
    folder ganframe made here, and they could name files."""


def _warn_untrusted(path: Path, dropped: list[str]) -> None:
    import warnings

    if dropped:
        warnings.warn(
            f"{path}: not in a run folder made here, so these options of its recipe are not "
            f"used (a received checkpoint does not choose which files are read): "
            f"{', '.join(dropped)}; give them with --set, e.g. --set data.path=FILE",
            UntrustedOptionsWarning, stacklevel=3)


def _is_free_text(annotation: Any) -> bool:
    """Whether a config field can hold free text, which could name a file or a folder: a
    string or path anywhere in its type (numbers, switches and listed choices cannot)."""
    import enum
    import os
    import typing

    origin = typing.get_origin(annotation)
    if origin is typing.Literal or annotation in (bool, int, float, type(None)):
        return False
    if isinstance(annotation, type):
        if issubclass(annotation, enum.Enum | int | float):
            return False
        if issubclass(annotation, str | bytes | os.PathLike):
            return True
        fields = getattr(annotation, "model_fields", None)  # a nested pydantic model
        if fields is not None:
            return any(_is_free_text(f.annotation) for f in fields.values())
    args = typing.get_args(annotation)
    if origin is typing.Annotated:
        return _is_free_text(args[0])
    return not args or any(_is_free_text(a) for a in args)


def _recorded(table: dict[str, Any], spec: Any, trusted: bool, where: str
              ) -> tuple[dict[str, Any], list[str]]:
    """A component table recorded in a checkpoint, as ganframe may use it: whole for the
    user's own run, else without the options that take free text (paths, file names); and
    the keys left out."""
    if trusted:
        return dict(table), []
    try:
        fields = spec.config_model().model_fields
    except Exception:  # a broken config model: the build reports it
        fields = {}

    def usable(key: str, value: Any) -> bool:
        if key in ("type", "every"):
            return True
        field = fields.get(key)
        # free text is left out, unless it is the option's default anyway
        return field is not None and (not _is_free_text(field.annotation)
                                      or value == field.get_default(call_default_factory=True))

    kept = {k: v for k, v in table.items() if usable(k, v)}
    dropped = [f"{where}.{k}" for k in table if k not in kept and k != "every"]
    return kept, dropped


def shareable_table(table: dict[str, Any], spec: Any) -> dict[str, Any]:
    """A component table of a run's recipe as a received checkpoint's is used (see
    :func:`evaluate`): without the options that take free text (paths, file names) unless
    they hold the default. ``ganframe export`` writes recipes this way."""
    return _recorded(table, spec, False, "")[0]


def _metric_tables(ckpt: LoadedCheckpoint, metrics: Sequence[str] | None, registry: Registry,
                   trusted: bool) -> tuple[list[dict[str, Any]], list[str]]:
    recorded = [t for t in ckpt.recipe.get("metrics", []) if isinstance(t, dict) and "type" in t]
    if metrics:
        # A metric the recipe configures keeps the recipe's options (its temperature, its
        # sample count), so `--metric bleu` measures what training logged; others get defaults.
        configured = {t["type"]: t for t in reversed(recorded)}
        recorded = [configured.get(m, {"type": m}) for m in metrics]
    if not recorded:
        raise UserError(
            f"{ckpt.path}: the run's recipe has no [[metrics]]; name one with --metric "
            f"(available: {', '.join(registry.names('metric')) or 'none'})."
        )
    tables, dropped = [], []
    for table in recorded:
        spec = registry.get("metric", table["type"])
        kept, left_out = _recorded(table, spec, trusted, f"metrics.{table['type']}")
        tables.append(kept)
        dropped += left_out
    return tables, dropped


def _data_table(ckpt: LoadedCheckpoint, items: Sequence[str], registry: Registry,
                trusted: bool) -> tuple[dict[str, Any] | None, list[str]]:
    """The [data] table the metrics may build data from (see :func:`evaluate`), with the
    user's ``data.KEY=VALUE`` items applied; None when the recipe has none."""
    from ganframe.recipe import parse_override

    table = ckpt.recipe.get("data")
    if not isinstance(table, dict) or not isinstance(table.get("type"), str):
        if items:
            raise UserError(f"--set {items[0]!r}: {ckpt.path} records no [data] table to set "
                            "options of.")
        return None, []
    try:
        spec = registry.get("dataset", table["type"])
    except UserError:
        if items:
            raise
        return None, []
    kept, dropped = _recorded(table, spec, trusted, "data")
    for item in items:
        parts, value = parse_override(item)
        if len(parts) != 2 or parts[1] == "type":
            raise UserError(f"--set {item!r}: expected data.KEY=VALUE for an option of the "
                            f"{table['type']!r} dataset, e.g. --set data.path=poems.txt.")
        kept[parts[1]] = value
        dropped = [d for d in dropped if d != f"data.{parts[1]}"]
    return kept, dropped


def eval_data_table(checkpoint: LoadedCheckpoint, overrides: Sequence[str] = ()
                    ) -> dict[str, Any] | None:
    """The [data] table a command may build a checkpoint's data from (the data its metrics
    compare with): the recorded one for the user's own run, else without its free-text
    options (paths, file names), with ``data.KEY=VALUE`` items from the user on top. See
    :func:`evaluate`."""
    from ganframe import runfolder

    table, _ = _data_table(checkpoint, list(overrides), get_registry(),
                           runfolder.is_own_run(checkpoint.path))
    return table


def _metric_config(spec: Any, table: dict[str, Any], changed: bool, path: Path,
                   record: RunRecord) -> Any:
    from pydantic import ValidationError

    options = {k: v for k, v in table.items() if k not in ("type", "every")}
    if not changed:
        return _validate_config(spec, options, path, record)
    try:
        return spec.config_model().model_validate(options)
    except ValidationError as exc:
        err = exc.errors()[0]
        where = ".".join(str(p) for p in err["loc"])
        raise UserError(
            f"--set {table['type']}.{where}: {err['msg']} (metric {spec.name!r} of "
            f"plugin {spec.plugin})."
        ) from None


def _eval_context(ckpt: LoadedCheckpoint, record: RunRecord, registry: Registry,
                  data_table: dict[str, Any] | None, trusted: bool, items: Sequence[str],
                  device: torch.device, seed: int) -> Any:
    """The metrics' build context: the data factory and config when there is data to build
    (a relative path resolves against the recipe's folder only for the user's own run)."""
    from pydantic import ValidationError

    from ganframe.components import BuildContext

    recipe_dir = record.recipe_dir if trusted else None
    ctx = BuildContext(data_info=ckpt.info, device=device, seed=seed, data_root=data_root(),
                       recipe_dir=Path(recipe_dir) if recipe_dir else None)
    if data_table is None:
        return ctx
    dspec = registry.get("dataset", data_table["type"])
    try:
        ctx.data_config = dspec.config_model().model_validate(
            {k: v for k, v in data_table.items() if k != "type"})
    except ValidationError as exc:
        if not items:
            return ctx  # the metrics that need data say so
        err = exc.errors()[0]
        raise UserError(f"--set data.{'.'.join(str(p) for p in err['loc'])}: {err['msg']} "
                        f"(dataset {dspec.name!r} of plugin {dspec.plugin}).") from None
    ctx.build_data = lambda c, s=dspec, x=ctx: s.build(c, x)
    return ctx
