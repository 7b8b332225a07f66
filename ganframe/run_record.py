"""The run record: what a checkpoint says about its run, as typed models.

Every checkpoint carries one JSON document (see docs/checkpoints.md). The checkpoint module owns
its keys ``format``, ``torch``, ``optimizers``, ``rng`` and ``checksums``; everything else (the
resolved recipe, the data description, the plugins, where the run stood, what changed on each
resume) is a
:class:`RunRecord`, written by :meth:`RunRecord.to_meta` and read by :meth:`RunRecord.from_meta`
and nowhere else, so that the writer and the readers cannot drift apart.

Reading is strict about types and lenient about presence: keys that older checkpoints lack get
the value those versions meant, and keys this version does not know are kept as they are, so
``RunRecord.from_meta(meta, path).to_meta()`` gives back exactly what was read (less the
checkpoint module's keys). A damaged document is a :class:`~ganframe.errors.UserError` that
names the file and the field.

This module imports pydantic and the layers below it only: the training loop reads it.
"""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path
from typing import Annotated, Any, Protocol

from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator

from ganframe.errors import UserError

__all__ = [
    "CHECKPOINT_KEYS",
    "ChangeRecord",
    "ComponentRecord",
    "GeneratorRecord",
    "ResumeRecord",
    "RunPosition",
    "RunRecord",
    "StreamPosition",
    "make_record",
]

#: Keys of the metadata document that :mod:`ganframe.checkpoint` writes itself.
CHECKPOINT_KEYS = frozenset({"format", "torch", "optimizers", "rng", "checksums"})

# strict: JSON gives exact types, and "20" for a step is damage, not something to coerce.
# extra="allow": keys written by a newer ganframe (same format) survive a resume unchanged.
_RECORD = ConfigDict(strict=True, extra="allow")


#: Counters in a record stay below this: a damaged or hostile file must not hand the loop a
#: step or an epoch that overflows the seeds and counters computed from it.
MAX_COUNT = 2**53


class StreamPosition(BaseModel):
    """The data stream's cursor: the epoch and the batch within it."""

    model_config = _RECORD
    epoch: int = Field(ge=0, le=MAX_COUNT)
    position: int = Field(ge=0, le=MAX_COUNT)


class RunPosition(BaseModel):
    """Where the run stood when the checkpoint was written."""

    model_config = _RECORD
    step: int = Field(ge=0, le=MAX_COUNT, description="Global step (over all phases).")
    phase: int = Field(ge=0, le=MAX_COUNT, description="Index of the phase the run is in.")
    phase_step: int = Field(ge=0, le=MAX_COUNT, description="Steps taken in that phase.")
    rollbacks: int = Field(0, ge=0, le=MAX_COUNT, description="Divergence rollbacks so far.")
    stream: StreamPosition
    world: int = Field(1, ge=1, le=65_536, description="Number of processes that trained.")
    rank_digests: list[str] = Field(
        default_factory=list, description="Each process's checksum of its networks."
    )
    objective_phase: int | None = Field(
        None, ge=0, le=MAX_COUNT,
        description="The phase whose objective saved the objective.* tensors.",
    )
    phase_lengths: list[Annotated[int, Field(ge=0, le=MAX_COUNT)]] | None = Field(
        None, description="Each phase's length in steps as planned then."
    )


class ComponentRecord(BaseModel):
    """Which plugin, in which version, provided a component of the recipe."""

    model_config = _RECORD
    type: str
    plugin: str
    version: str


class GeneratorRecord(BaseModel):
    """How to rebuild the generator without the recipe: its qualified type and config."""

    model_config = _RECORD
    type: str = Field(description="'plugin:name' of the generator.")
    config: dict[str, Any]


class ChangeRecord(BaseModel):
    """One recipe value changed on resume (``old`` or ``new`` left out: the key was unset)."""

    model_config = _RECORD
    key: str = Field(description="Dotted recipe key, e.g. 'optim.generator.lr'.")
    old: Any = None
    new: Any = None


class ResumeRecord(BaseModel):
    """The recipe changes a resume applied, from ``step`` on."""

    model_config = _RECORD
    step: int = Field(ge=0, le=MAX_COUNT)
    changes: list[ChangeRecord]


class RunRecord(BaseModel):
    """A checkpoint's metadata, less the keys the checkpoint module owns."""

    model_config = _RECORD
    ganframe: str | None = Field(None, description="Version of ganframe that wrote it.")
    recipe: dict[str, Any] = Field(
        default_factory=dict, description="The fully resolved recipe (as recipe.toml)."
    )
    data_kind: str = Field(description="'image', 'points', 'text'...: picks sample writers.")
    data_info: dict[str, Any] = Field(description="The dataset's info().")
    recipe_dir: str | None = Field(None, description="Folder of the recipe file, if any.")
    components: dict[str, ComponentRecord] = Field(default_factory=dict)
    plugins: dict[str, str] = Field(default_factory=dict, description="Plugin -> version.")
    generator: GeneratorRecord
    run: RunPosition | None = Field(None, description="Absent until the loop saves.")
    scalers: dict[str, dict[str, Any]] | None = Field(
        None, description="fp16 gradient scalers' state per network."
    )
    callbacks: dict[str, dict[str, Any]] | None = Field(
        None, description="State of the callbacks that keep one, by callback name."
    )
    resumes: list[ResumeRecord] = Field(
        default_factory=list, description="Recipe changes applied on resume, oldest first."
    )

    @field_validator("recipe")
    @classmethod
    def _component_tables(cls, recipe: dict[str, Any]) -> dict[str, Any]:
        """The recipe's component tables are tables with a string ``type``: ``eval``,
        ``sample`` and resume look components up by it."""
        for key in ("data", "generator", "critic", "loss"):
            if key in recipe and recipe[key] is not None and not _is_table(recipe[key]):
                raise ValueError(f"recipe.{key} must be a table with a string 'type'")
        for key in ("metrics", "loggers", "callbacks", "phases"):
            items = recipe.get(key)
            if items is None:
                continue
            if not isinstance(items, list):
                raise ValueError(f"recipe.{key} must be a list of tables")
            for i, item in enumerate(items):
                ok = _is_table(item.get("loss")) if key == "phases" and isinstance(
                    item, dict) else _is_table(item)
                if not ok:
                    raise ValueError(f"recipe.{key}.{i} must be a table with a string 'type'"
                                     + (" in 'loss'" if key == "phases" else ""))
        return recipe

    @classmethod
    def from_meta(cls, meta: Mapping[str, Any], path: str | Path) -> RunRecord:
        """Read a checkpoint's metadata document; a damaged one names the file and field."""
        doc = {k: v for k, v in meta.items() if k not in CHECKPOINT_KEYS}
        try:
            return cls.model_validate(doc)
        except ValidationError as exc:
            raise UserError(_damaged(path, exc)) from None

    def to_meta(self, **update: Any) -> dict[str, Any]:
        """The metadata document (JSON-able), with the keyword fields replaced.

        Only fields that were read or set are written, so an old checkpoint's record is
        written back exactly as it was read. Replacements are validated like a read.
        """
        doc = self.model_dump(mode="json", exclude_unset=True)
        if update:
            doc.update(
                {
                    k: v.model_dump(mode="json", exclude_unset=True)
                    if isinstance(v, BaseModel)
                    else v
                    for k, v in update.items()
                }
            )
            doc = type(self).model_validate(doc).model_dump(mode="json", exclude_unset=True)
        return doc

    def with_resume(self, step: int, changes: list[ChangeRecord]) -> RunRecord:
        """This record with one more entry in its ``resumes`` history."""
        return self.model_copy(
            update={"resumes": [*self.resumes, ResumeRecord(step=step, changes=changes)]}
        )

    @property
    def step(self) -> int:
        """The checkpoint's global step (0 for a record the loop has not saved)."""
        return self.run.step if self.run is not None else 0


def _is_table(value: Any) -> bool:
    return isinstance(value, dict) and isinstance(value.get("type"), str)


def _damaged(path: str | Path, exc: ValidationError) -> str:
    errors = exc.errors()
    shown = []
    for err in errors[:3]:
        where = ".".join(str(p) for p in err["loc"]) or "(the document)"
        got = err.get("input")
        detail = "missing" if err["type"] == "missing" else f"{err['msg']} (found {_short(got)})"
        shown.append(f"{where}: {detail}")
    more = f" (and {len(errors) - 3} more)" if len(errors) > 3 else ""
    return (
        f"{path}: the checkpoint's metadata is damaged or was not written by 'ganframe run': "
        f"{'; '.join(shown)}{more}. A ganframe checkpoint describes its generator "
        "(generator.type, generator.config), its data (data_kind, data_info) and where the run "
        "stood (run.step, run.phase, run.stream...); use another checkpoint (step-*.safetensors "
        "in the same folder) or copy it again."
    )


def _short(value: Any, limit: int = 60) -> str:
    text = repr(value)
    return text if len(text) <= limit else text[: limit - 3] + "..."


class _Resolved(Protocol):
    """What :func:`make_record` reads of a resolved recipe (``ganframe.recipe``)."""

    components: Mapping[str, tuple[Any, Any]]
    recipe_dir: Path | None

    def to_dict(self) -> dict[str, Any]: ...


def make_record(resolved: _Resolved, data_kind: str, info: Mapping[str, Any]) -> RunRecord:
    """The record a new run's checkpoints start from: what they must carry to be used
    without the recipe or the data (``run`` is added by the loop when it saves)."""
    from ganframe.version import __version__

    components = {
        place: ComponentRecord(type=spec.name, plugin=spec.plugin, version=spec.version)
        for place, (spec, _config) in resolved.components.items()
    }
    gen_spec, gen_config = resolved.components["generator"]
    return RunRecord(
        ganframe=__version__,
        recipe=resolved.to_dict(),
        data_kind=data_kind,
        data_info=dict(info),
        recipe_dir=str(resolved.recipe_dir) if resolved.recipe_dir else None,
        components=components,
        plugins={c.plugin: c.version for c in components.values()},
        generator=GeneratorRecord(
            type=gen_spec.qualified_name, config=gen_config.model_dump(mode="json")
        ),
    )
