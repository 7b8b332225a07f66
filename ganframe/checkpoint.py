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
import zlib
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Annotated, Any, Literal, NoReturn

import numpy as np
import safetensors
import torch
from pydantic import BaseModel, ConfigDict, Field, ValidationError
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
    "torch_rng_state",
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
_CHECKSUMS = "checksums"
_CRC32 = "crc32"

# -- the types of the metadata keys this module owns (others: ganframe.run_record) ---------
_OWNED = ConfigDict(strict=True, extra="allow")
_JsonLeaf = None | bool | int | float | str


class _StateEntry(BaseModel):
    model_config = _OWNED
    tensors: list[str]
    values: dict[str, _JsonLeaf | list[_JsonLeaf]]


class _GroupEntry(BaseModel):
    model_config = _OWNED
    hyper: dict[str, Any]
    tensors: list[str]
    shapes: list[list[Annotated[int, Field(ge=0)]]]


class _OptimizerEntry(BaseModel):
    model_config = ConfigDict(strict=True, extra="allow", populate_by_name=True)
    class_: str = Field(alias="class")
    state: dict[str, _StateEntry]
    param_groups: list[_GroupEntry]


class _NumpyRng(BaseModel):
    model_config = _OWNED
    name: str
    pos: int
    has_gauss: int
    cached_gaussian: float


class _RngEntry(BaseModel):
    model_config = _OWNED
    python: list[Any] = Field(min_length=3, max_length=3)
    numpy: _NumpyRng


class _ChecksumEntry(BaseModel):
    model_config = _OWNED
    algorithm: Literal["crc32"]
    tensors: dict[str, Annotated[int, Field(ge=0, lt=2**32)]]


class _OwnedKeys(BaseModel):
    model_config = _OWNED
    optimizers: dict[str, _OptimizerEntry] = Field(default_factory=dict)
    rng: _RngEntry | None = None
    checksums: _ChecksumEntry | None = None
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
    checksums: bool = True,
) -> Path:
    """Write a checkpoint atomically and return its path.

    ``meta`` must be JSON-able; the keys ``format``, ``torch``, ``optimizers``, ``rng`` and
    ``checksums`` are owned by this module and replaced. ``checksums`` stores a CRC-32 of
    every tensor's bytes, which :func:`read_checkpoint` verifies (off only to measure what
    they cost). A module may be any object with ``state_dict()``
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
    doc.pop(_CHECKSUMS, None)
    if rng:
        doc["rng"] = _capture_rng(tensors)
    if checksums:
        # Off-CPU tensors are copied once here and streamed from that copy below.
        tensors = {k: _cpu_contiguous(v) for k, v in tensors.items()}
        doc[_CHECKSUMS] = {"algorithm": _CRC32,
                           "tensors": {k: _crc32(v) for k, v in tensors.items()}}

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


def _cpu_contiguous(t: torch.Tensor) -> torch.Tensor:
    t = t.detach()
    return t if t.device.type == "cpu" and t.is_contiguous() else t.to("cpu").contiguous()


def _crc32(t: torch.Tensor) -> int:
    """CRC-32 of a CPU tensor's bytes as the file stores them (little-endian, row-major)."""
    raw = _cpu_contiguous(t).reshape(-1).view(torch.uint8)
    return zlib.crc32(memoryview(raw.numpy())) if raw.numel() else 0


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


def read_checkpoint(
    path: Path, *, device: str | torch.device = "cpu", verify: bool = True
) -> Checkpoint:
    """Verify a checkpoint file and load all its tensors onto ``device``.

    Every way a file can be wrong (missing, truncated, corrupt, not ours, too new, a tensor
    whose bytes no longer match the checksum written with it) is a :class:`UserError` naming
    the file, because users do pass the wrong file. ``verify=False`` skips the checksums
    (only to measure what they cost).
    """
    path = Path(path)
    for attempt in range(3):
        # A run replaces last.safetensors while others read it (sample, eval: no lock):
        # a read that fails because the file was replaced under it reads the new file.
        before = _file_identity(path)
        try:
            meta, tensors = _read_tensors(path, device)
            if verify:
                _verify_checksums(path, meta, tensors)
            break
        except UserError:
            if attempt == 2 or _file_identity(path) == before:
                raise
    return Checkpoint(path=path, tensors=tensors, meta=meta)


def _file_identity(path: Path) -> tuple[int, int] | None:
    try:
        st = os.stat(path)
    except OSError:
        return None
    return st.st_dev, st.st_ino


def _read_tensors(path: Path, device: str | torch.device
                  ) -> tuple[dict[str, Any], dict[str, torch.Tensor]]:
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
    except MemoryError:
        raise UserError(
            f"Cannot read checkpoint {path}: its tensors do not fit in memory "
            f"({path.stat().st_size} bytes on disk)."
        ) from None
    except (safetensors.SafetensorError, OSError, RuntimeError, ValueError) as exc:
        raise UserError(
            f"Cannot read checkpoint {path}: its tensors could not be loaded ({exc}). The file "
            "is probably corrupt; use another checkpoint (step-*.safetensors in the same "
            "folder) or copy it again."
        ) from exc
    return meta, tensors


def _verify_checksums(path: Path, meta: dict[str, Any], tensors: dict[str, torch.Tensor]) -> None:
    """Each tensor's bytes against the CRC-32 written with it (checkpoints from before
    checksums have none: nothing to verify)."""
    doc = meta.get(_CHECKSUMS)
    if doc is None:
        return
    stored = doc["tensors"]  # shape checked by _parse_meta
    what = None
    if set(stored) != set(tensors):
        odd = sorted(set(stored) ^ set(tensors))
        what = f"its tensors and its list of checksums differ ({', '.join(odd[:3])}...)"
    else:
        bad = [k for k, t in tensors.items() if _crc32(t) != stored[k]]
        if bad:
            what = (f"the bytes of tensor {bad[0]!r}"
                    + (f" (and {len(bad) - 1} more)" if len(bad) > 1 else "")
                    + " do not match the checksum written with them")
    if what:
        raise UserError(
            f"Checkpoint {path} is damaged: {what}, so a bit changed on disk or in a copy. "
            "Use another checkpoint (the step-*.safetensors files in the same folder; "
            "--resume picks last.safetensors first) or copy it again."
        )


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

    _check_data_section(path, header, size - 8 - header_len)
    metadata = header.get("__metadata__")
    text = metadata.get(_META_KEY) if isinstance(metadata, dict) else None
    return _parse_meta(path, text)


def _check_data_section(path: Path, header: dict[str, Any], data_len: int) -> None:
    """The tensors' byte ranges must end exactly where the file does: a shorter file is
    truncated, a longer one had something appended (both fall back to a step file)."""
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
    if needed < data_len:
        raise UserError(
            f"Cannot read checkpoint {path}: the file has {data_len - needed} byte(s) after "
            "its last tensor, so something was appended to it or it was damaged. Use another "
            "checkpoint (step-*.safetensors in the same folder) or copy it again."
        )


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
    _check_owned(path, meta)
    return meta


def _check_owned(path: Path, meta: dict[str, Any]) -> None:
    """The types of the keys this module writes (``optimizers``, ``rng``, ``checksums``),
    so that restoring never meets a list where it expects a table."""
    try:
        _OwnedKeys.model_validate(meta)
    except ValidationError as exc:
        err = exc.errors()[0]
        where = ".".join(str(p) for p in err["loc"])
        raise UserError(
            f"Cannot read checkpoint {path}: its metadata entry {where} is damaged "
            f"({err['msg']}). Use another checkpoint (step-*.safetensors in the same folder) "
            "or copy it again."
        ) from None


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
        for key, value in live_group.items():  # a key the file lacks: the recipe's value
            group.setdefault(key, value)
        group["params"] = live_group["params"]
        groups.append(group)
    if problems:
        raise UserError(f"{where}: {_listing(problems)}. {what_to_do}")
    _check_optimizer_state(ckpt, name, doc, [p for g in optimizer.param_groups
                                             for p in g["params"]])

    state: dict[int, dict[str, Any]] = {}
    for index, entry in doc["state"].items():
        values = dict(entry["values"])
        for key in entry["tensors"]:
            # On the CPU: load_state_dict moves state to each parameter's device and dtype,
            # but leaves a non-capturable Adam `step` where it is, which must be the CPU.
            values[key] = _need(ckpt, f"{_OPTIM_PREFIX}{name}.state.{index}.{key}").to("cpu")
        state[int(index)] = values
    optimizer.load_state_dict({"state": state, "param_groups": groups})


def _check_optimizer_state(
    ckpt: Checkpoint, name: str, doc: dict[str, Any], params: list[torch.Tensor]
) -> None:
    """The optimiser's per-parameter state, as the metadata describes it, fits the live
    parameters: every index names a parameter, every entry has the keys the others have,
    every state tensor is a scalar or shaped like its parameter, and the file holds exactly
    the state tensors the metadata lists. Otherwise the first optimiser step would fail
    deep inside torch."""
    problems: list[str] = []
    listed: set[str] = set()
    keys: set[tuple[tuple[str, ...], tuple[str, ...]]] = set()
    for index, entry in doc["state"].items():
        if not index.isdigit() or int(index) >= len(params):
            problems.append(f"state {index!r} names no parameter (there are {len(params)})")
            continue
        param = params[int(index)]
        keys.add((tuple(sorted(entry["tensors"])), tuple(sorted(entry["values"]))))
        for key in entry["tensors"]:
            tname = f"{_OPTIM_PREFIX}{name}.state.{index}.{key}"
            listed.add(tname)
            t = _need(ckpt, tname)
            if t.numel() > 1 and tuple(t.shape) != tuple(param.shape):
                problems.append(f"{tname} has shape {_shape(t)} but its parameter "
                                f"{tuple(param.shape)}")
    if len(keys) > 1:
        problems.append("its parameters' states hold different entries")
    listed |= {f"{_OPTIM_PREFIX}{name}.group.{gi}.{key}"
               for gi, g in enumerate(doc["param_groups"]) for key in g["tensors"]}
    stray = sorted(k for k in ckpt.tensors
                   if k.startswith(f"{_OPTIM_PREFIX}{name}.") and k not in listed)
    if stray:
        problems.append(f"tensor {stray[0]!r} is not described by its metadata")
    if problems:
        raise UserError(
            f"Checkpoint {ckpt.path} is damaged: the state of the {name} optimizer does not fit "
            f"its networks: {_listing(problems)}. Use another checkpoint (step-*.safetensors in "
            "the same folder)."
        )


def restore_rng(ckpt: Checkpoint) -> None:
    """Put torch (CPU and CUDA), Python and numpy global generators back where they were.

    CUDA states are restored only for devices that exist now, so a checkpoint from a GPU run
    can still be resumed on the CPU. Every state is checked (size, range, on a scratch
    generator) before any generator is changed, so a damaged one changes nothing.
    """
    doc = ckpt.meta.get("rng")
    if doc is None or "rng.torch" not in ckpt.tensors:
        raise UserError(
            f"Checkpoint {ckpt.path} holds no random number generator state, so a resumed run "
            "cannot continue exactly. Resume from a checkpoint written during training."
        )
    cpu = torch_rng_state(ckpt, "rng.torch")
    cuda = {}
    if torch.cuda.is_available():
        for i in range(torch.cuda.device_count()):
            if f"rng.cuda.{i}" in ckpt.tensors:
                cuda[i] = _rng_tensor(ckpt, f"rng.cuda.{i}", torch.cuda.get_rng_state(i))
    version, internal, gauss_next = doc["python"]
    npd = doc["numpy"]
    keys = _need(ckpt, "rng.numpy.keys").to("cpu")
    if keys.dtype != torch.int64 or keys.numel() != 624 or keys.dim() != 1 or bool(
        ((keys < 0) | (keys >= 2**32)).any()
    ):
        _bad_rng(ckpt, "rng.numpy.keys", "it must be 624 integers in [0, 2**32)")
    if npd["name"] != "MT19937" or not 0 <= npd["pos"] <= 624 or npd["has_gauss"] not in (0, 1):
        _bad_rng(ckpt, "rng.numpy", "it must be an MT19937 state with pos in 0..624 and "
                 "has_gauss 0 or 1")
    np_state = (npd["name"], keys.numpy().astype(np.uint32), npd["pos"], npd["has_gauss"],
                npd["cached_gaussian"])
    if not (isinstance(internal, list) and len(internal) == 625 and all(
        isinstance(x, int) and not isinstance(x, bool) and 0 <= x < 2**32 for x in internal
    )):
        _bad_rng(ckpt, "rng.python", "its state must be 625 integers in [0, 2**32)")
    py_state = (version, tuple(internal), gauss_next)
    try:
        random.Random().setstate(py_state)
    except (TypeError, ValueError, OverflowError) as exc:
        _bad_rng(ckpt, "rng.python", str(exc))
    try:
        np.random.RandomState().set_state(np_state)
    except (TypeError, ValueError, OverflowError) as exc:
        _bad_rng(ckpt, "rng.numpy", str(exc))
    torch.set_rng_state(cpu)
    for i, state in cuda.items():
        torch.cuda.set_rng_state(state, i)
    random.setstate(py_state)
    np.random.set_state(np_state)


def torch_rng_state(ckpt: Checkpoint, key: str) -> torch.Tensor:
    """The torch CPU generator state stored under ``key``, checked: right size and dtype,
    and accepted by a scratch generator."""
    state = _rng_tensor(ckpt, key, torch.get_rng_state())
    try:
        torch.Generator().set_state(state)
    except (RuntimeError, ValueError) as exc:
        _bad_rng(ckpt, key, str(exc).splitlines()[0])
    return state


def _rng_tensor(ckpt: Checkpoint, key: str, like: torch.Tensor) -> torch.Tensor:
    state = _need(ckpt, key)
    if state.dtype != torch.uint8 or state.dim() != 1 or state.numel() != like.numel():
        _bad_rng(ckpt, key, f"it holds {state.numel()} {state.dtype} values, a generator "
                 f"state is {like.numel()} bytes")
    return state.to("cpu")


def _bad_rng(ckpt: Checkpoint, key: str, why: str) -> NoReturn:
    raise UserError(
        f"Checkpoint {ckpt.path} is damaged: its random generator state {key} is not valid "
        f"({why}). Use another checkpoint (step-*.safetensors in the same folder)."
    )


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
