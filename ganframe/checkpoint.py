"""Checkpoints as safetensors files: weights, optimizer state and RNG state, plus JSON metadata.

A checkpoint must be safe to open even when it came from somebody else, so tensors live in
safetensors and everything else is JSON stored in the safetensors metadata under the key
``"ganframe"``; no deserialiser that can run code is ever used. Reading checks the header
before any tensor is touched, so a truncated, corrupt or foreign file becomes a
:class:`~ganframe.errors.UserError` that names the file, instead of a crash deep inside a
deserializer.

Writes are atomic (temporary file, fsync, ``os.replace``, fsync of the folder): a run killed
while saving leaves the previous checkpoint intact, which is what makes ``--resume`` reliable.

Tensor layout inside a file:

* ``<module>.<state_dict key>`` for every module (``generator.``, ``critic.``, ``ema.``...);
* ``optim.<name>.state.<param index>.<key>`` for optimizer state tensors (the rest of the
  optimizer state, and its hyper-parameters, are JSON in ``meta["optimizers"][name]``);
* ``rng.torch``, ``rng.cuda.<i>``, ``rng.numpy.keys`` for random number generator states;
* any extra tensors under the names the caller chose.
"""

from __future__ import annotations

import json
import os
import random
import re
import shutil
import struct
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import safetensors
import torch
from torch import nn

from ganframe import safetensors_write
from ganframe.errors import UserError
from ganframe.fileio import TEMP_GLOB, atomic_write

__all__ = [
    "FORMAT_VERSION",
    "MAX_METADATA_BYTES",
    "Checkpoint",
    "CheckpointDir",
    "module_tensors",
    "read_checkpoint",
    "restore_module",
    "restore_optimizer",
    "restore_rng",
    "save_checkpoint",
]

#: Bumped when the layout changes in a way an older ganframe could misread.
FORMAT_VERSION = 1
#: Headers larger than this are refused before parsing: a garbage length field must not make
#: us allocate gigabytes, and no real checkpoint header comes close.
MAX_METADATA_BYTES = 16 * 1024 * 1024

_META_KEY = "ganframe"
_OPTIM_PREFIX = "optim."
_RNG_PREFIX = "rng."
_RESERVED_MODULE_NAMES = frozenset({"optim", "rng"})
_STEP_FILE = re.compile(r"^step-(\d+)\.safetensors$")
_LAST_NAME = "last.safetensors"
_MAX_LISTED = 5


@dataclass
class Checkpoint:
    """A checkpoint read into memory: every tensor by its flat name, plus the JSON metadata.

    Kept flat and dumb on purpose; the ``restore_*`` functions know how to put the pieces back
    into live modules, optimizers and generators.
    """

    path: Path
    tensors: dict[str, torch.Tensor]
    #: The JSON document stored under the safetensors metadata key ``"ganframe"``.
    meta: dict[str, Any]


# --------------------------------------------------------------------------- saving


def save_checkpoint(
    path: Path,
    *,
    modules: Mapping[str, nn.Module],
    optimizers: Mapping[str, torch.optim.Optimizer],
    meta: Mapping[str, Any],
    extra_tensors: Mapping[str, torch.Tensor] | None = None,
    rng: bool = True,
) -> Path:
    """Write a checkpoint atomically and return its path.

    ``meta`` must be JSON-able; the keys ``format``, ``torch``, ``optimizers`` and ``rng`` are
    owned by this module and replaced. A module may be any object with ``state_dict()``
    returning tensors (objectives with internal state qualify). Names of modules and
    optimizers must not contain dots, so that no two prefixes can overlap.
    """
    path = Path(path)
    tensors: dict[str, torch.Tensor] = {}

    for name, module in modules.items():
        _check_part_name(name, "module")
        if name in _RESERVED_MODULE_NAMES:
            raise ValueError(f"module name {name!r} is reserved by the checkpoint layout")
        for key, value in module.state_dict().items():
            if not isinstance(value, torch.Tensor):
                raise TypeError(
                    f"state_dict of module {name!r} holds a non-tensor under {key!r} "
                    f"({type(value).__name__}); checkpoints store tensors only"
                )
            tensors[f"{name}.{key}"] = value

    optim_meta: dict[str, Any] = {}
    for name, optimizer in optimizers.items():
        _check_part_name(name, "optimizer")
        optim_meta[name] = _flatten_optimizer(name, optimizer, tensors)

    if extra_tensors:
        prefixes = [f"{n}." for n in modules] + [_OPTIM_PREFIX, _RNG_PREFIX]
        for key, value in extra_tensors.items():
            if key in tensors or any(key.startswith(p) for p in prefixes):
                raise ValueError(
                    f"extra tensor name {key!r} collides with a module, optimizer or RNG entry"
                )
            if not isinstance(value, torch.Tensor):
                raise TypeError(f"extra tensor {key!r} is a {type(value).__name__}")
            tensors[key] = value

    doc = dict(meta)
    doc["format"] = FORMAT_VERSION
    doc["torch"] = torch.__version__
    doc["optimizers"] = optim_meta
    doc.pop("rng", None)
    if rng:
        doc["rng"] = _capture_rng(tensors)

    # Streamed from the tensors' own memory (no copy of what is already on the CPU); the
    # training loop is paused while we write, so nothing changes under us.
    plan = safetensors_write.layout(tensors, {_META_KEY: json.dumps(doc)})
    if plan.header_length > MAX_METADATA_BYTES:
        raise ValueError(
            f"checkpoint header would be {plan.header_length} bytes, over MAX_METADATA_BYTES; "
            "keep large data in tensors, not in meta"
        )
    # fileio's temporary names start with '.' and end with '.tmp', so folder scans
    # (CheckpointDir.steps) never take a half-written file for a checkpoint.
    atomic_write(path, plan.write_to)
    return path


def _check_part_name(name: str, what: str) -> None:
    if not isinstance(name, str) or not name or "." in name:
        raise ValueError(f"{what} name {name!r} must be a non-empty string without dots")


def _flatten_optimizer(
    name: str, optimizer: torch.optim.Optimizer, tensors: dict[str, torch.Tensor]
) -> dict[str, Any]:
    """Split an optimizer state_dict into tensors (added to ``tensors``) and a JSON document.

    Parameters are identified by position, as in ``Optimizer.state_dict()``; the shapes are
    kept so a restore into a differently shaped model is refused with a readable message.
    """
    sd = optimizer.state_dict()
    state_doc: dict[str, Any] = {}
    for index, entry in sd["state"].items():
        values: dict[str, Any] = {}
        tensor_keys: list[str] = []
        for key, value in entry.items():
            if not isinstance(key, str) or "." in key:
                raise TypeError(f"optimizer {name!r} has an unsupported state key {key!r}")
            if isinstance(value, torch.Tensor):
                tensors[f"{_OPTIM_PREFIX}{name}.state.{index}.{key}"] = value
                tensor_keys.append(key)
            else:
                values[key] = _json_value(value, f"optimizer {name!r} state {index}.{key}")
        state_doc[str(index)] = {"tensors": tensor_keys, "values": values}

    groups_doc: list[dict[str, Any]] = []
    for gi, (group, live) in enumerate(
        zip(sd["param_groups"], optimizer.param_groups, strict=True)
    ):
        hyper: dict[str, Any] = {}
        tensor_hyper: list[str] = []
        for key, value in group.items():
            if key == "params":
                continue
            if isinstance(value, torch.Tensor):  # e.g. a tensor learning rate
                tensors[f"{_OPTIM_PREFIX}{name}.group.{gi}.{key}"] = value
                tensor_hyper.append(key)
            else:
                hyper[key] = _json_value(value, f"optimizer {name!r} param group {gi} {key!r}")
        groups_doc.append(
            {
                "hyper": hyper,
                "tensors": tensor_hyper,
                "shapes": [list(p.shape) for p in live["params"]],
            }
        )
    return {"class": type(optimizer).__name__, "state": state_doc, "param_groups": groups_doc}


def _json_value(value: Any, where: str) -> Any:
    """Check a value survives JSON (tuples become lists and are turned back on restore)."""
    if value is None or isinstance(value, bool | int | float | str):
        return value
    if isinstance(value, list | tuple):
        return [_json_value(v, where) for v in value]
    raise TypeError(f"{where}: cannot store a {type(value).__name__} in a checkpoint")


def _capture_rng(tensors: dict[str, torch.Tensor]) -> dict[str, Any]:
    tensors["rng.torch"] = torch.get_rng_state()
    if torch.cuda.is_available() and torch.cuda.is_initialized():
        for i, state in enumerate(torch.cuda.get_rng_state_all()):
            tensors[f"rng.cuda.{i}"] = state
    version, internal, gauss_next = random.getstate()
    np_name, np_keys, np_pos, np_has_gauss, np_cached = np.random.get_state(legacy=True)
    tensors["rng.numpy.keys"] = torch.from_numpy(np.asarray(np_keys, dtype=np.int64).copy())
    return {
        "python": [version, list(internal), gauss_next],
        "numpy": {
            "name": str(np_name),
            "pos": int(np_pos),
            "has_gauss": int(np_has_gauss),
            "cached_gaussian": float(np_cached),
        },
    }


# --------------------------------------------------------------------------- reading


def read_checkpoint(path: Path, *, device: str | torch.device = "cpu") -> Checkpoint:
    """Verify a checkpoint file and load all its tensors onto ``device``.

    Every way a file can be wrong (missing, truncated, corrupt, not ours, too new) is a
    :class:`UserError` naming the file, because users do pass the wrong file.
    """
    path = Path(path)
    _read_header(path)
    try:
        with safetensors.safe_open(str(path), framework="pt", device=str(device)) as f:
            # Metadata is taken again from the same open file as the tensors, so a concurrent
            # os.replace (a run saving last.safetensors) cannot pair one file's meta with
            # another's tensors.
            meta = _parse_meta(path, (f.metadata() or {}).get(_META_KEY))
            tensors = {key: f.get_tensor(key) for key in f.keys()}
    except UserError:
        raise
    except (safetensors.SafetensorError, OSError, RuntimeError, ValueError) as exc:
        raise UserError(
            f"Cannot read checkpoint {path}: its tensors could not be loaded ({exc}). The file "
            "is probably corrupt; use another checkpoint (step-*.safetensors in the same "
            "folder) or copy it again."
        ) from exc
    return Checkpoint(path=path, tensors=tensors, meta=meta)


def _read_header(path: Path) -> dict[str, Any]:
    """Check everything the header promises without loading tensors; return the meta."""
    if not path.exists():
        raise UserError(
            f"Cannot read checkpoint {path}: the file does not exist. Check the path; a run "
            "folder keeps its checkpoints in checkpoints/ (last.safetensors is the newest)."
        )
    if not path.is_file():
        raise UserError(
            f"Cannot read checkpoint {path}: it is a folder, not a file. Pass a .safetensors "
            "file, for example checkpoints/last.safetensors inside the run folder."
        )
    try:
        with path.open("rb") as f:
            size = os.fstat(f.fileno()).st_size
            head = f.read(8)
            if len(head) < 8:
                raise UserError(
                    f"Cannot read checkpoint {path}: the file is only {size} bytes long, too "
                    "short to be a checkpoint. It is truncated or not a ganframe checkpoint; "
                    "use another checkpoint or copy it again."
                )
            (header_len,) = struct.unpack("<Q", head)
            if header_len > MAX_METADATA_BYTES:
                raise UserError(
                    f"Cannot read checkpoint {path}: it does not start with a valid "
                    f"safetensors header (declared header length {header_len} bytes)."
                    f"{_foreign_hint(head)} Pass a .safetensors checkpoint written by "
                    "ganframe."
                )
            if header_len > size - 8:
                raise UserError(
                    f"Cannot read checkpoint {path}: the file is truncated (its header needs "
                    f"{header_len + 8} bytes but the file has {size}). It was probably copied "
                    "or written incompletely; use another checkpoint (step-*.safetensors in "
                    "the same folder) or copy it again."
                )
            raw = f.read(header_len)
    except OSError as exc:
        raise UserError(f"Cannot read checkpoint {path}: {exc}.") from exc

    try:
        header = json.loads(raw.decode("utf-8"))
    except (UnicodeDecodeError, json.JSONDecodeError, RecursionError):
        header = None
    if not isinstance(header, dict):
        raise UserError(
            f"Cannot read checkpoint {path}: its header is not valid safetensors JSON, so the "
            f"file is corrupt or not a safetensors file.{_foreign_hint(head)} Use another "
            "checkpoint or copy it again."
        )

    data_len = size - 8 - header_len
    needed = 0
    for key, entry in header.items():
        if key == "__metadata__":
            continue
        offsets = entry.get("data_offsets") if isinstance(entry, dict) else None
        if (
            not isinstance(offsets, list)
            or len(offsets) != 2
            or not all(isinstance(o, int) for o in offsets)
        ):
            raise UserError(
                f"Cannot read checkpoint {path}: the header entry for tensor {key!r} is "
                "malformed, so the file is corrupt. Use another checkpoint or copy it again."
            )
        needed = max(needed, offsets[1])
    if needed > data_len:
        raise UserError(
            f"Cannot read checkpoint {path}: the file is truncated (its tensors need "
            f"{needed} bytes of data but only {data_len} are present). Use another checkpoint "
            "(step-*.safetensors in the same folder) or copy it again."
        )

    metadata = header.get("__metadata__")
    text = metadata.get(_META_KEY) if isinstance(metadata, dict) else None
    return _parse_meta(path, text)


def _parse_meta(path: Path, text: Any) -> dict[str, Any]:
    if not isinstance(text, str):
        raise UserError(
            f"Cannot read checkpoint {path}: it is a safetensors file but not a ganframe "
            f"checkpoint (its metadata has no {_META_KEY!r} entry). Pass a checkpoint written "
            "by ganframe (a run's checkpoints/last.safetensors); plain weight files cannot "
            "be resumed or sampled from."
        )
    try:
        meta = json.loads(text)
    except (json.JSONDecodeError, RecursionError):
        meta = None
    if not isinstance(meta, dict):
        raise UserError(
            f"Cannot read checkpoint {path}: its {_META_KEY!r} metadata is not a JSON object, "
            "so the file is corrupt. Use another checkpoint or copy it again."
        )
    fmt = meta.get("format")
    if not isinstance(fmt, int) or isinstance(fmt, bool) or fmt < 1:
        raise UserError(
            f"Cannot read checkpoint {path}: its metadata has no valid 'format' number "
            f"(found {fmt!r}), so the file is corrupt. Use another checkpoint."
        )
    if fmt > FORMAT_VERSION:
        raise UserError(
            f"Cannot read checkpoint {path}: it uses checkpoint format {fmt}, but this "
            f"ganframe reads format {FORMAT_VERSION} at most. Upgrade ganframe "
            "(pip install -U ganframe) to read it."
        )
    return meta


def _foreign_hint(head: bytes) -> str:
    if head.startswith(b"PK\x03\x04"):
        return (
            " It looks like a PyTorch torch.save() archive; ganframe reads only its own "
            ".safetensors checkpoints and never opens formats that can run code."
        )
    if head[:1] == b"\x80":
        return (
            " It looks like a Python object-serialisation file; ganframe reads only its own "
            ".safetensors checkpoints and never opens formats that can run code."
        )
    return ""


# --------------------------------------------------------------------------- restoring


def module_tensors(ckpt: Checkpoint, prefix: str) -> dict[str, torch.Tensor]:
    """The state_dict stored under ``prefix`` (e.g. ``"ema"``), with the prefix removed."""
    start = prefix.rstrip(".") + "."
    return {k[len(start) :]: v for k, v in ckpt.tensors.items() if k.startswith(start)}


def restore_module(ckpt: Checkpoint, prefix: str, module: nn.Module) -> None:
    """Load the weights under ``prefix`` into ``module``, refusing any mismatch.

    Strict because a silently partial load (a renamed layer left at its random init) looks
    like a training bug much later; the message lists the differences so the user can see
    which recipe setting changed.
    """
    prefix = prefix.rstrip(".")
    stored = module_tensors(ckpt, prefix)
    current = module.state_dict()
    problems: list[str] = []
    for key, value in current.items():
        if key not in stored:
            problems.append(f"{prefix}.{key} is missing from the checkpoint")
        elif tuple(stored[key].shape) != tuple(value.shape):
            problems.append(
                f"{prefix}.{key} has shape {_shape(stored[key])} in the checkpoint but "
                f"{_shape(value)} in the model built from the recipe"
            )
    problems.extend(
        f"{prefix}.{key} is in the checkpoint but not in the model built from the recipe"
        for key in stored
        if key not in current
    )
    if problems:
        if not stored:
            detail = f"the checkpoint holds no {prefix!r} tensors at all"
        else:
            detail = _listing(problems)
        raise UserError(
            f"Checkpoint {ckpt.path} does not match the {prefix}: {detail}. The checkpoint "
            "was probably written with a different recipe; use the recipe it was trained "
            "with (saved as recipe.toml in its run folder) or start a new run."
        )
    if isinstance(module, nn.Module):
        module.load_state_dict(stored, strict=True)
    else:
        module.load_state_dict(stored)


def restore_optimizer(ckpt: Checkpoint, name: str, optimizer: torch.optim.Optimizer) -> None:
    """Rebuild the optimizer's state_dict from the checkpoint and load it.

    Hyper-parameters come from the checkpoint (a resumed run continues exactly, including a
    learning rate set by a phase); callers change them after restoring if they must.
    """
    doc = ckpt.meta.get("optimizers", {}).get(name)
    if doc is None:
        raise UserError(
            f"Checkpoint {ckpt.path} has no state for the {name} optimizer, so training cannot "
            "be resumed from it. Resume from a checkpoint written during training, or start a "
            "new run."
        )
    where = f"Checkpoint {ckpt.path} does not match the {name} optimizer"
    what_to_do = (
        "The checkpoint was probably written with a different recipe; use the recipe it was "
        "trained with (saved as recipe.toml in its run folder) or start a new run."
    )
    if doc.get("class") != type(optimizer).__name__:
        raise UserError(
            f"{where}: it holds {doc.get('class')} state but the recipe builds "
            f"{type(optimizer).__name__}. {what_to_do}"
        )
    saved_groups = doc["param_groups"]
    live_sd = optimizer.state_dict()
    if len(saved_groups) != len(live_sd["param_groups"]):
        raise UserError(
            f"{where}: it has {len(saved_groups)} parameter groups in the checkpoint but "
            f"{len(live_sd['param_groups'])} in the optimizer. {what_to_do}"
        )
    problems: list[str] = []
    groups: list[dict[str, Any]] = []
    for gi, (saved, live_group, live_params) in enumerate(
        zip(saved_groups, live_sd["param_groups"], optimizer.param_groups, strict=True)
    ):
        shapes = [tuple(s) for s in saved["shapes"]]
        params = live_params["params"]
        if len(shapes) != len(params):
            problems.append(
                f"group {gi} has {len(shapes)} parameters in the checkpoint but "
                f"{len(params)} in the optimizer"
            )
        else:
            problems.extend(
                f"parameter {j} of group {gi} has shape {shape} in the checkpoint but "
                f"{tuple(p.shape)} in the model built from the recipe"
                for j, (shape, p) in enumerate(zip(shapes, params, strict=True))
                if shape != tuple(p.shape)
            )
        group: dict[str, Any] = {}
        for key, value in saved["hyper"].items():
            # JSON turned tuples (Adam's betas) into lists; give them back their type.
            if isinstance(value, list) and isinstance(live_group.get(key), tuple):
                value = tuple(value)
            group[key] = value
        for key in saved["tensors"]:
            group[key] = _need(ckpt, f"{_OPTIM_PREFIX}{name}.group.{gi}.{key}").clone()
        group["params"] = live_group["params"]
        groups.append(group)
    if problems:
        raise UserError(f"{where}: {_listing(problems)}. {what_to_do}")

    state: dict[int, dict[str, Any]] = {}
    for index, entry in doc["state"].items():
        values = dict(entry["values"])
        for key in entry["tensors"]:
            # On the CPU: load_state_dict moves state to each parameter's device and dtype,
            # but leaves a non-capturable Adam `step` where it is, which must be the CPU.
            values[key] = _need(ckpt, f"{_OPTIM_PREFIX}{name}.state.{index}.{key}").to("cpu")
        state[int(index)] = values
    optimizer.load_state_dict({"state": state, "param_groups": groups})


def restore_rng(ckpt: Checkpoint) -> None:
    """Put torch (CPU and CUDA), Python and numpy global generators back where they were.

    CUDA states are restored only for devices that exist now, so a checkpoint from a GPU run
    can still be resumed on the CPU.
    """
    doc = ckpt.meta.get("rng")
    if doc is None or "rng.torch" not in ckpt.tensors:
        raise UserError(
            f"Checkpoint {ckpt.path} holds no random number generator state, so a resumed run "
            "cannot continue exactly. Resume from a checkpoint written during training."
        )
    torch.set_rng_state(ckpt.tensors["rng.torch"].to("cpu", torch.uint8))
    if torch.cuda.is_available():
        for i in range(torch.cuda.device_count()):
            state = ckpt.tensors.get(f"rng.cuda.{i}")
            if state is not None:
                torch.cuda.set_rng_state(state.to("cpu", torch.uint8), i)
    version, internal, gauss_next = doc["python"]
    random.setstate((version, tuple(internal), gauss_next))
    npd = doc["numpy"]
    keys = _need(ckpt, "rng.numpy.keys").to("cpu").numpy().astype(np.uint32)
    np.random.set_state((npd["name"], keys, npd["pos"], npd["has_gauss"], npd["cached_gaussian"]))


def _need(ckpt: Checkpoint, key: str) -> torch.Tensor:
    try:
        return ckpt.tensors[key]
    except KeyError:
        raise UserError(
            f"Checkpoint {ckpt.path} is incomplete: tensor {key!r} is listed in its metadata "
            "but missing. The file is corrupt; use another checkpoint."
        ) from None


def _shape(t: torch.Tensor) -> str:
    return str(tuple(t.shape))


def _listing(problems: list[str]) -> str:
    text = "; ".join(problems[:_MAX_LISTED])
    if len(problems) > _MAX_LISTED:
        text += f"; and {len(problems) - _MAX_LISTED} more differences"
    return text


# --------------------------------------------------------------------------- run folders


class CheckpointDir:
    """The checkpoints/ folder of a run: numbered step files, a ``last`` copy, rotation.

    ``last.safetensors`` is an independent copy (never a symlink or hard link) so it survives
    rotation, copying the folder elsewhere and in-place edits of either file; it is replaced
    atomically after the step file is complete, so it always holds a whole checkpoint.
    """

    def __init__(self, folder: Path, keep_last: int = 3) -> None:
        if keep_last < 0:
            raise ValueError("keep_last must be >= 0 (0 keeps every checkpoint)")
        self.folder = Path(folder)
        self.keep_last = keep_last

    @property
    def last_path(self) -> Path:
        return self.folder / _LAST_NAME

    def save(self, step: int, **kwargs: Any) -> Path:
        """Write ``step-XXXXXXXX.safetensors``, point ``last`` at it, drop old step files."""
        if step < 0:
            raise ValueError("step must be >= 0")
        self.folder.mkdir(parents=True, exist_ok=True)
        path = save_checkpoint(self.folder / f"step-{step:08d}.safetensors", **kwargs)
        self._update_last(path)
        if self.keep_last:
            for old in self.steps()[: -self.keep_last]:
                if old != path:  # never the file just written, even if older steps remain
                    old.unlink(missing_ok=True)
        return path

    def _update_last(self, source: Path) -> None:
        # A copy, not a hard link: with a link, anything that rewrites one name in place
        # (``cp other.safetensors last.safetensors``, a truncating copy tool) silently
        # corrupts the step file too, and the fallback in latest() would have nothing left.
        def copy(dst: Any) -> None:
            with source.open("rb") as src:
                shutil.copyfileobj(src, dst, 1024 * 1024)

        atomic_write(self.last_path, copy)

    def steps(self) -> list[Path]:
        """Step files, oldest first by step number (temporary files never match)."""
        if not self.folder.is_dir():
            return []
        found = []
        for entry in self.folder.iterdir():
            m = _STEP_FILE.match(entry.name)
            if m and entry.is_file():
                found.append((int(m.group(1)), entry))
        return [p for _, p in sorted(found)]

    def remove_stale_temps(self) -> int:
        """Delete temporary files of writes that a crash cut short; they are never read,
        but each is as large as a checkpoint."""
        if not self.folder.is_dir():
            return 0
        stale = [p for p in self.folder.glob(TEMP_GLOB) if p.is_file()]
        for p in stale:
            p.unlink(missing_ok=True)
        return len(stale)

    def latest(self) -> Path | None:
        """The checkpoint to resume from: ``last`` if sound, else the newest sound step file.

        Only headers are checked (cheap); a file that fails to load later still raises
        :class:`UserError` from :func:`read_checkpoint`.
        """
        for candidate in [self.last_path, *reversed(self.steps())]:
            if not candidate.is_file():
                continue
            try:
                _read_header(candidate)
            except UserError:
                continue
            return candidate
        return None
