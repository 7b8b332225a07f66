"""Generator files: a checkpoint's generator alone, small enough to share and ship.

``ganframe export CHECKPOINT -o model.safetensors`` writes a file in the checkpoint format
(:mod:`ganframe.checkpoint`: safetensors, JSON metadata, CRC-32 of every tensor, atomic
write), so reading it goes through the same bounded, checked reader as any checkpoint and
``ganframe sample`` takes it as it takes a checkpoint. What it holds:

* the generator's weights only (the EMA weights when the run kept an EMA), under
  ``generator.``, optionally in fp16 (``--half``: half the size; :func:`load_checkpoint`
  builds the network in fp32 and copies them in);
* the run record the generator needs to be rebuilt and used: its type and config, the data
  description (the vocabulary of a text model, the class names of a conditional one), the
  plugins and their versions; the recipe is cut down to its name, description, generator,
  data and metrics tables, without any option that names a file;
* an ``export`` section (:data:`EXPORT_KEY`): the format marker, how it was trained (recipe
  name and hash, step), the metric values the run logged at that step, and the recommended
  sampling options that ``ganframe sample`` uses unless told otherwise.

No optimiser state and no random-generator state: an exported file cannot be resumed.
"""

from __future__ import annotations

import hashlib
import json
import os
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

from ganframe.errors import UserError

if TYPE_CHECKING:
    from ganframe.api import LoadedCheckpoint

__all__ = [
    "EXPORT_FORMAT",
    "EXPORT_KEY",
    "EXPORT_KIND",
    "ExportResult",
    "export_generator",
    "export_info",
    "recipe_hash",
    "recommended_sampling",
]

#: The metadata key of the export section, and the marker it carries.
EXPORT_KEY = "export"
EXPORT_KIND = "ganframe-generator"
#: Bumped when the export section changes in a way an older ganframe could misread.
EXPORT_FORMAT = 1
#: The recipe tables an exported file keeps (the rest is about training).
KEPT_RECIPE_KEYS = ("name", "description", "generator", "data", "metrics")


@dataclass
class ExportResult:
    """What :func:`export_generator` wrote."""

    path: Path
    source: Path
    bytes: int
    dtype: str
    weights: str  #: "ema" or "generator": which weights of the checkpoint
    step: int
    sampling: dict[str, Any]
    data_kind: str = ""


class _StateDict:
    """A ready state dict, for :func:`ganframe.checkpoint.save_checkpoint`'s modules."""

    def __init__(self, tensors: dict[str, Any]) -> None:
        self.tensors = tensors

    def state_dict(self) -> dict[str, Any]:
        return self.tensors


def export_info(meta: dict[str, Any]) -> dict[str, Any] | None:
    """The export section of a file's metadata; None for a training checkpoint. A damaged
    section is refused by :func:`ganframe.api.load_checkpoint` (see :func:`check_export`)."""
    value = meta.get(EXPORT_KEY)
    return value if isinstance(value, dict) else None


def check_export(meta: dict[str, Any], path: Path) -> None:
    """Refuse an export section that is not ours or too new, naming the file."""
    if EXPORT_KEY not in meta:
        return
    section = meta[EXPORT_KEY]
    fmt = section.get("format") if isinstance(section, dict) else None
    if not isinstance(section, dict) or section.get("kind") != EXPORT_KIND or not isinstance(
            fmt, int) or isinstance(fmt, bool) or fmt < 1:
        raise UserError(
            f"{path}: its '{EXPORT_KEY}' metadata is damaged (no {EXPORT_KIND!r} marker with a "
            "format number), so it is not a generator file written by 'ganframe export'. "
            "Export it again from its checkpoint."
        )
    if fmt > EXPORT_FORMAT:
        raise UserError(
            f"{path}: it is a generator file of export format {fmt}, but this ganframe reads "
            f"format {EXPORT_FORMAT} at most. Upgrade ganframe (pip install -U ganframe)."
        )


def recipe_hash(recipe: dict[str, Any]) -> str:
    """``sha256:<hex>`` of the resolved recipe as canonical JSON (sorted keys): two runs
    trained from the same settings have the same hash."""
    text = json.dumps(recipe, sort_keys=True, separators=(",", ":"), ensure_ascii=False)
    return "sha256:" + hashlib.sha256(text.encode("utf-8")).hexdigest()


def recommended_sampling(loaded: LoadedCheckpoint) -> tuple[dict[str, Any], str]:
    """(options, where they come from): the sampling options ``ganframe sample`` uses when
    the user gives none.

    An exported file carries them in its export section. For a training checkpoint they are
    the options the recipe's metrics sample with (the poet's ``bleu`` metric has
    ``temperature = 0.825``, the temperature its README documents): the first ``[[metrics]]``
    table that sets any of the generator's declared sampling options gives them all. A
    generator that declares none has none."""
    model = getattr(loaded.generator, "sampling_options", None)
    fields = set(getattr(model, "model_fields", {}) or {})
    if not fields:
        return {}, ""
    info = export_info(loaded.meta)
    if info is not None:  # only options the generator declares (it validates the values)
        sampling = info.get("sampling")
        found = {k: v for k, v in sampling.items() if k in fields} if isinstance(
            sampling, dict) else {}
        return found, "its export metadata"
    for table in loaded.recipe.get("metrics") or []:
        if not isinstance(table, dict):
            continue
        found = {k: table[k] for k in sorted(fields) if k in table}
        if found:
            return found, f"its recipe's {table.get('type')!r} metric"
    return {}, ""


def _run_metrics(path: Path, step: int) -> dict[str, dict[str, Any]]:
    """The metric values the run logged at or before ``step`` (the latest of each metric),
    from ``metrics.jsonl`` of the run folder the checkpoint lies in; {} outside a run."""
    if path.parent.name != "checkpoints":
        return {}
    log = path.parent.parent / "metrics.jsonl"
    found: dict[str, dict[str, Any]] = {}
    try:
        lines = log.read_text(encoding="utf-8").splitlines()
    except (OSError, UnicodeDecodeError):
        return {}
    for line in lines:
        try:
            row = json.loads(line)
        except json.JSONDecodeError:
            continue
        if not isinstance(row, dict) or row.get("event") != "metric":
            continue
        at = row.get("step")
        if not isinstance(at, int) or at > step or not isinstance(row.get("metric"), str):
            continue
        values = {k: v for k, v in row.items()
                  if k not in ("step", "phase", "event", "metric") and _small_json(v)}
        found[row["metric"]] = {"step": at, **values}
    return found


def _small_json(value: Any) -> bool:
    if value is None or isinstance(value, bool | int | float | str):
        return not isinstance(value, str) or len(value) <= 200
    if isinstance(value, list):
        return len(value) <= 100 and all(isinstance(v, int | float) for v in value)
    return False


def _public_info(info: dict[str, Any]) -> dict[str, Any]:
    """The data description without the absolute paths of the machine it was made on (a
    file's name stays)."""
    return {k: (os.path.basename(v) if isinstance(v, str) and os.path.isabs(v) else v)
            for k, v in info.items()}


def _public_recipe(loaded: LoadedCheckpoint) -> dict[str, Any]:
    """The recipe tables worth sharing, without options that take free text (paths, file
    names) unless they hold the option's default: the same rule ``ganframe eval`` applies
    to a received checkpoint."""
    from ganframe.api import get_registry, shareable_table

    registry = get_registry()
    recipe = {k: loaded.recipe[k] for k in KEPT_RECIPE_KEYS if k in loaded.recipe}
    data = recipe.get("data")
    if isinstance(data, dict) and isinstance(data.get("type"), str):
        try:
            recipe["data"] = shareable_table(data, registry.get("dataset", data["type"]))
        except UserError:
            recipe["data"] = {"type": data["type"]}
    metrics = []
    for table in recipe.get("metrics") or []:
        try:
            kept = shareable_table(table, registry.get("metric", table["type"]))
        except UserError:
            kept = {"type": table["type"]}
        metrics.append(kept)
    if "metrics" in recipe:
        recipe["metrics"] = metrics
    return recipe


def _classes(loaded: LoadedCheckpoint) -> dict[str, Any]:
    gen = loaded.generator
    if not getattr(gen, "conditional", False):
        return {}
    k = int(getattr(gen, "num_classes", 0))
    names = loaded.info.get("class_names")
    if not (isinstance(names, list) and len(names) == k and all(isinstance(n, str)
                                                                  for n in names)):
        names = [str(i) for i in range(k)]
    return {"num_classes": k, "class_names": names}


def _weights(loaded: LoadedCheckpoint, half: bool) -> tuple[dict[str, Any], str]:
    import torch

    tensors = {}
    for key, value in loaded.generator.state_dict().items():
        value = value.detach().to("cpu").contiguous()
        if half and value.is_floating_point():
            value = value.to(torch.float16)
            if not bool(torch.isfinite(value).all()):
                raise UserError(
                    f"{loaded.path}: the generator's {key!r} holds values beyond fp16's range "
                    "(65,504), so --half would damage it; export without --half."
                )
        tensors[key] = value
    return tensors, ("float16" if half else "float32")


def export_generator(source: str | Path, out: str | Path, *, half: bool = False
                     ) -> ExportResult:
    """Write the generator of ``source`` (a checkpoint, a run folder or a generator file) to
    ``out`` as a generator file (see the module docstring); return what was written."""
    from safetensors import safe_open

    from ganframe.api import load_checkpoint
    from ganframe.checkpoint import save_checkpoint
    from ganframe.run_record import RunRecord
    from ganframe.version import __version__

    out = Path(out)
    if out.suffix != ".safetensors":
        raise UserError(f"-o {out}: a generator file must end in .safetensors.")
    loaded = load_checkpoint(source)
    if out.resolve() == loaded.path.resolve():
        raise UserError(f"-o {out}: that is the file being exported; choose another name.")
    with safe_open(str(loaded.path), framework="pt") as f:
        weights = "ema" if any(k.startswith("ema.") for k in f.keys()) else "generator"
    previous = export_info(loaded.meta) or {}
    record = loaded.record or RunRecord.from_meta(loaded.meta, loaded.path)
    sampling, _ = recommended_sampling(loaded)
    tensors, dtype = _weights(loaded, half)
    recipe = dict(previous.get("recipe") or {
        "name": loaded.recipe.get("name"), "hash": recipe_hash(loaded.recipe)})
    section = {
        "kind": EXPORT_KIND, "format": EXPORT_FORMAT, "dtype": dtype,
        "weights": previous.get("weights", weights), "step": loaded.step, "recipe": recipe,
        "metrics": previous.get("metrics") or _run_metrics(loaded.path, loaded.step),
        "sampling": sampling, "ganframe": __version__, "plugins": dict(record.plugins),
        **_classes(loaded),
    }
    kept = {place: c for place, c in record.components.items()
            if place in ("generator", "data") or place.startswith("metrics.")}
    meta = record.to_meta(recipe=_public_recipe(loaded), data_info=_public_info(loaded.info),
                          components=kept,
                          plugins={c.plugin: c.version for c in kept.values()} or record.plugins)
    for key in ("recipe_dir", "scalers", "callbacks", "resumes"):
        meta.pop(key, None)
    meta[EXPORT_KEY] = section
    out.parent.mkdir(parents=True, exist_ok=True)
    save_checkpoint(out, modules={"generator": _StateDict(tensors)}, optimizers={}, meta=meta,
                    rng=False)
    return ExportResult(out, loaded.path, out.stat().st_size, dtype, section["weights"],
                        loaded.step, sampling, loaded.data_kind)
