"""Recipes: TOML files validated by pydantic, with ``--set`` overrides.

Validation has two stages. The recipe's own shape (run settings, optimisers, phases) is a
pydantic model; each component table (``[data]``, ``[generator]``, ``[critic]``, losses,
``[[metrics]]``) carries a ``type`` naming a registered component, and the rest of that table
is validated against that component's config model from the plugin registry. Every error is
reported with the file and the dotted key, as one :class:`UserError`.
"""

from __future__ import annotations

import re
import tomllib
from dataclasses import dataclass, field
from pathlib import Path
from typing import Annotated, Any, Literal

from pydantic import (
    BaseModel,
    ConfigDict,
    Field,
    ValidationError,
    field_validator,
    model_validator,
)

from ganframe.errors import PluginError, UserError
from ganframe.registry import ComponentSpec, Registry, closest

# allow_inf_nan=False: `lr = inf` or `epochs = nan` is a mistake, never a setting.
_STRICT = ConfigDict(extra="forbid", allow_inf_nan=False)

#: Bounds that keep every value of a valid recipe usable by the run: seeds that torch's
#: generators take after the data stream multiplies them by 1_000_003 and adds the epoch,
#: step counts a run can reach, sample grids that fit in memory, and a resolved recipe that
#: fits in the checkpoint header (16 MiB, with the optimiser and data descriptions).
MAX_SEED = 2**40 - 1
MAX_STEPS = 10**12
MAX_EPOCHS = 10**9
MAX_SAMPLE_COUNT = 1_000_000
MAX_N_CRITIC = 10_000
MAX_DESCRIPTION = 64 * 1024
MAX_NAME = 256
MAX_RECIPE_BYTES = 1024 * 1024
#: Tables and arrays nested deeper than this are refused before anything walks them (a
#: recursive walk of 500 levels would end in RecursionError); recipes use 3 or 4.
MAX_DEPTH = 32


class ComponentTable(BaseModel):
    """A component choice: ``type`` plus that component's own options."""

    model_config = ConfigDict(extra="allow", allow_inf_nan=False)
    type: str = Field(max_length=MAX_NAME,
                      description="Name of a registered component, or 'plugin:name'.")

    def options(self) -> dict[str, Any]:
        return dict(self.model_extra or {})


class MetricTable(ComponentTable):
    every: int = Field(
        0, ge=0, description="Evaluate every N steps during training (0: only at the end)."
    )


class ScheduleTable(ComponentTable):
    """A learning-rate schedule: ``type`` names a registered schedule, the rest are its
    options. Its factor applies to the step within each phase, so every phase starts it
    again."""

    type: str = Field(
        "constant", description="Name of a registered schedule, or 'plugin:name'."
    )


class OptimizerTable(ComponentTable):
    """An optimiser: ``type`` names a registered optimiser (Adam when left out, so recipes
    written before optimisers were components mean the same), the rest are its options,
    validated by its config model; ``schedule`` is a sub-table."""

    type: str = Field("adam", description="Name of a registered optimiser, or 'plugin:name'.")
    schedule: ScheduleTable = Field(
        default_factory=ScheduleTable,
        description="The learning-rate schedule over each phase (default constant).",
    )

    def options(self) -> dict[str, Any]:
        return {k: v for k, v in super().options().items() if k != "schedule"}


class OptimSection(BaseModel):
    """One optimiser per network, so TTUR is just two learning rates."""

    model_config = _STRICT
    generator: OptimizerTable = Field(
        default_factory=OptimizerTable, description="The generator's optimiser."
    )
    critic: OptimizerTable = Field(
        default_factory=OptimizerTable, description="The critic's optimiser."
    )


class TrainConfig(BaseModel):
    model_config = _STRICT
    batch_size: int = Field(64, gt=0, description="Real samples per batch (per process).")
    steps: int | None = Field(None, gt=0, le=MAX_STEPS,
                              description="Generator steps of a single-phase recipe.")
    epochs: float | None = Field(
        None, gt=0, le=MAX_EPOCHS,
        description="Alternative to steps: passes over the data (single phase).",
    )
    n_critic: int = Field(1, gt=0, le=MAX_N_CRITIC,
                          description="Critic updates per generator update.")
    grad_clip: float = Field(0.0, ge=0, description="Clip gradient norm per network (0: off).")
    ema: float = Field(
        0.0, ge=0, lt=1, description="Decay of the generator EMA used for sampling (0: off)."
    )
    ema_start: int = Field(0, ge=0, description="Step from which the EMA starts averaging.")
    precision: Literal["fp32", "bf16", "fp16"] = Field(
        "fp32",
        description="bf16: losses run in bf16 autocast (CPU and CUDA). fp16: fp16 autocast "
        "with gradient scaling (CUDA only).",
    )
    compile: bool = Field(
        False,
        description="torch.compile the generator and critic forward passes (falls back to "
        "eager with a warning where unsupported).",
    )
    channels_last: bool = Field(
        False, description="Channels-last memory format for convolutional networks and images."
    )
    augment: str | None = Field(
        None,
        description="DiffAugment (Zhao et al. 2020) of every critic input, real and fake, "
        "in both updates: comma-separated policies from color, translation, cutout (e.g. "
        "\"color,translation,cutout\"), each sample drawn independently; images only. "
        "Unset or \"none\": off.",
    )

    @field_validator("augment")
    @classmethod
    def _augment_policy(cls, value: str | None) -> str | None:
        from ganframe.augment import check_policy

        if value is None:
            return None
        names = check_policy(value)
        return ",".join(names) if names else None
    sync_batchnorm: bool = Field(
        False,
        description="Multi-process runs: batch-norm layers of both networks normalise with "
        "the statistics of the global batch (all processes) instead of their own process's "
        "batch, on CPU (gloo) and GPU. One small collective per layer and pass.",
    )
    log_every: int = Field(50, gt=0, description="Log scalars every N steps.")
    sample_every: int = Field(0, ge=0, description="Write samples every N steps (0: at end).")
    sample_count: int = Field(64, gt=0, le=MAX_SAMPLE_COUNT,
                              description="Samples per sample file.")
    checkpoint_every: int = Field(
        0, ge=0, description="Checkpoint every N steps (0: only at the end)."
    )
    keep_last: int = Field(3, ge=0, description="Step checkpoints to keep (0: all).")
    on_nonfinite: Literal["stop", "rollback"] = Field(
        "stop",
        description="When a loss or the weights stop being finite: stop (keep the last good "
        "checkpoint), or roll back to it with lower learning rates and continue.",
    )
    rollback_lr_factor: float = Field(
        0.5, gt=0, lt=1, description="Learning rates are multiplied by this at each rollback."
    )
    max_rollbacks: int = Field(3, ge=1, description="Give up after this many rollbacks.")


class PhaseConfig(BaseModel):
    model_config = _STRICT
    name: str = Field(min_length=1, max_length=MAX_NAME,
                      description="Shown in progress and logs.")
    loss: ComponentTable = Field(description="The objective trained in this phase.")
    steps: int | None = Field(None, gt=0, le=MAX_STEPS,
                              description="Length of the phase in steps.")
    epochs: float | None = Field(
        None, gt=0, le=MAX_EPOCHS,
        description="Length in passes over the data (instead of steps).",
    )
    n_critic: int | None = Field(None, gt=0, le=MAX_N_CRITIC,
                                 description="Overrides train.n_critic.")
    checkpoint_every: int | None = Field(
        None, ge=0, description="Overrides train.checkpoint_every while this phase runs "
        "(0: none but the final one), e.g. often in a short adversarial phase, never during "
        "a long pre-training."
    )
    lr: dict[Literal["generator", "critic"], Annotated[float, Field(gt=0)]] = Field(
        default_factory=dict, description="Learning rates set when the phase starts."
    )

    @model_validator(mode="after")
    def _one_length(self) -> PhaseConfig:
        if (self.steps is None) == (self.epochs is None):
            raise ValueError("give exactly one of 'steps' or 'epochs'")
        return self


class RequiresSection(BaseModel):
    model_config = _STRICT
    requires: list[str] = Field(
        default_factory=list, description="Distributions this recipe needs, e.g. 'pkg>=0.1'."
    )


class Recipe(BaseModel):
    """A whole run: data, networks, objective(s), optimisers and run settings."""

    model_config = _STRICT
    name: str = Field("", description="Run name; defaults to the file name.")
    description: str = Field("", max_length=MAX_DESCRIPTION,
                             description="Free text shown nowhere but kept with the run.")
    seed: int = Field(0, ge=0, le=MAX_SEED, description="Seeds every RNG in use.")
    device: str = Field("auto", description="auto, cpu, cuda, cuda:N or mps.")
    threads: int = Field(
        0,
        ge=0,
        le=1024,
        description="CPU threads torch uses inside each process (0: torch's choice, "
        "$OMP_NUM_THREADS if set). Small models on a busy machine often run faster with 1.",
    )
    deterministic: bool = Field(
        False, description="Use deterministic algorithms (needed for bit-exact resume)."
    )
    ganframe: RequiresSection = Field(
        default_factory=RequiresSection, description="What the recipe needs installed."
    )
    data: ComponentTable = Field(description="The dataset: a registered dataset type.")
    generator: ComponentTable = Field(description="The generator network.")
    critic: ComponentTable | None = Field(
        None, description="The critic (discriminator); needed by objectives that train one."
    )
    loss: ComponentTable | None = Field(
        None, description="The objective of a single-phase recipe (default non-saturating)."
    )
    phases: list[PhaseConfig] = Field(
        default_factory=list, description="Phases run in order, each with its own objective."
    )
    optim: OptimSection = Field(
        default_factory=OptimSection, description="One optimiser per network."
    )
    train: TrainConfig = Field(default_factory=TrainConfig, description="Run settings.")
    metrics: list[MetricTable] = Field(
        default_factory=list, description="Metrics evaluated during and after training."
    )
    loggers: list[ComponentTable] = Field(
        default_factory=lambda: [ComponentTable(type="jsonl")],
        description="Where logged rows go: registered loggers, in order (default: jsonl, "
        "the run folder's metrics.jsonl; list it too when you add another).",
    )
    callbacks: list[ComponentTable] = Field(
        default_factory=list,
        description="Registered callbacks called at the loop's events, after the core's own "
        "and the loggers.",
    )

    @field_validator("name")
    @classmethod
    def _name(cls, v: str) -> str:
        # the name chooses the run folder (runs/<name>): one plain folder name only
        from ganframe.runfolder import run_name_problem

        problem = run_name_problem(v) if v else None
        if problem:
            raise ValueError(f"cannot name a run folder: {problem}; use letters, digits, "
                             "'-' and '_', or leave `name` out and choose the folder with --out")
        return v

    @field_validator("device")
    @classmethod
    def _device(cls, v: str) -> str:
        if not re.fullmatch(r"auto|cpu|mps|cuda(:\d+)?", v):
            raise ValueError("expected auto, cpu, cuda, cuda:N or mps")
        return v

    @model_validator(mode="after")
    def _phases_or_loss(self) -> Recipe:
        if self.phases:
            if self.loss is not None:
                raise ValueError("give either [loss] or [[phases]], not both")
            if self.train.steps is not None or self.train.epochs is not None:
                raise ValueError("with [[phases]], set steps/epochs per phase, not in [train]")
        else:
            if self.loss is None:
                self.loss = ComponentTable(type="non-saturating")
            if self.train.steps is None and self.train.epochs is None:
                raise ValueError("set train.steps or train.epochs (or use [[phases]])")
            if self.train.steps is not None and self.train.epochs is not None:
                raise ValueError("set only one of train.steps and train.epochs")
        names = [p.name for p in self.phases]
        if len(set(names)) != len(names):
            raise ValueError("phase names must be unique")
        return self

    def phase_list(self) -> list[PhaseConfig]:
        """The phases to run; a single-phase recipe becomes one phase named 'train'."""
        if self.phases:
            return list(self.phases)
        return [
            PhaseConfig(
                name="train",
                loss=self.loss,
                steps=self.train.steps,
                epochs=self.train.epochs,
            )
        ]


@dataclass
class ResolvedRecipe:
    """A validated recipe plus each component's spec and validated config, keyed by the
    dotted place it came from (``generator``, ``phases.1.loss``, ``metrics.0``)."""

    recipe: Recipe
    source: str
    components: dict[str, tuple[ComponentSpec, BaseModel]] = field(default_factory=dict)
    recipe_dir: Path | None = None

    @property
    def name(self) -> str:
        return self.recipe.name

    def component(self, place: str) -> tuple[ComponentSpec, BaseModel]:
        return self.components[place]

    def to_dict(self) -> dict[str, Any]:
        """The fully resolved recipe (defaults filled in), as written to the run folder."""
        doc = self.recipe.model_dump(mode="json", exclude_none=True)
        for place, (_spec, config) in self.components.items():
            target: Any = doc
            parts = place.split(".")
            for p in parts:
                target = target[int(p)] if p.isdigit() else target[p]
            target.update(config.model_dump(mode="json", exclude_none=True))
        if not self.recipe.phases:
            doc.pop("phases", None)
        for key in ("metrics", "callbacks"):
            if not doc.get(key):
                doc.pop(key, None)
        if not doc["ganframe"]["requires"]:
            doc.pop("ganframe")
        return doc


# -- loading -----------------------------------------------------------------------------


def _loc(loc: tuple[Any, ...]) -> str:
    return ".".join(str(p) for p in loc)


def _ignored_keys(model: type[BaseModel], options: dict[str, Any]) -> list[str]:
    """Keys a plugin's config model would silently drop.

    pydantic ignores unknown keys unless a model says ``extra="forbid"``, so a misspelled
    option of a plugin that forgot to say so would change nothing, without a word. Unknown
    keys are errors everywhere in a recipe, whatever the plugin's model says, except for
    models that ask for extra keys (``extra="allow"``).
    """
    if model.model_config.get("extra") in ("forbid", "allow"):
        return []
    known = _known_keys(model)
    return sorted(k for k in options if k not in known)


def _known_keys(model: type[BaseModel]) -> set[str]:
    """The keys a model accepts: field names and their aliases."""
    known: set[str] = set()
    for name, info in model.model_fields.items():
        known.add(name)
        for alias in (info.alias, info.validation_alias):
            if isinstance(alias, str):
                known.add(alias)
            elif alias is not None and hasattr(alias, "choices"):  # AliasChoices
                known.update(c for c in alias.choices if isinstance(c, str))
    return known


def _model_at(model: Any, loc: tuple[Any, ...]) -> type[BaseModel] | None:
    """The model validating the table at ``loc`` inside ``model`` (through optional fields,
    lists and tables of models), or None where that is not a model."""
    for part in loc:
        if isinstance(part, int) or not (isinstance(model, type)
                                         and issubclass(model, BaseModel)):
            continue
        info = model.model_fields.get(str(part))
        if info is None:
            return None
        model = _inner_model(info.annotation)
    return model if isinstance(model, type) and issubclass(model, BaseModel) else None


def _inner_model(annotation: Any) -> Any:
    """The pydantic model inside ``X | None``, ``list[X]``, ``Annotated[X, ...]``..."""
    if isinstance(annotation, type) and issubclass(annotation, BaseModel):
        return annotation
    for arg in getattr(annotation, "__args__", ()) or ():
        found = _inner_model(arg)
        if found is not None:
            return found
    return None


def _unknown_key(key: Any, model: type[BaseModel] | None) -> str:
    """The message for a key no setting has, with the key it most likely meant."""
    msg = "unknown key (not a setting here; check the spelling)"
    hint = closest(str(key), _known_keys(model)) if model is not None else None
    return f"{msg}; did you mean {hint!r}?" if hint else msg


def _format_errors(source: str, problems: list[tuple[str, str]]) -> str:
    if len(problems) == 1:
        key, msg = problems[0]
        return f"{source}: {key}: {msg}" if key else f"{source}: {msg}"
    lines = [f"{source}: {len(problems)} problems:"]
    lines += [f"  {key}: {msg}" if key else f"  {msg}" for key, msg in problems]
    return "\n".join(lines)


def _pydantic_problems(err: ValidationError, prefix: str = "",
                       model: type[BaseModel] | None = None) -> list[tuple[str, str]]:
    out = []
    for e in err.errors():
        key = _loc(e["loc"])
        if e["type"] == "extra_forbidden":
            msg = _unknown_key(e["loc"][-1], _model_at(model, tuple(e["loc"][:-1])))
        else:
            msg = e["msg"]
            if msg.startswith("Value error, "):
                msg = msg[len("Value error, ") :]
        out.append((".".join(p for p in (prefix, key) if p), msg))
    return out


def parse_toml(text: str, source: str) -> dict[str, Any]:
    try:
        doc = tomllib.loads(text)
    except tomllib.TOMLDecodeError as exc:
        raise UserError(f"{source}: not valid TOML: {exc}") from None
    except RecursionError:  # tomllib parses nested arrays and tables recursively
        raise UserError(f"{source}: {_TOO_DEEP}") from None
    _check_depth(doc, source)
    return doc


_TOO_DEEP = (f"tables or arrays are nested more than {MAX_DEPTH} levels deep; no recipe "
             "setting needs that, so the file is probably damaged or generated wrongly.")


def _check_depth(value: Any, source: str, prefix: str = "") -> None:
    """Refuse nesting deeper than :data:`MAX_DEPTH`, without recursion (a deep document
    must not crash the check meant to catch it)."""
    stack: list[tuple[Any, int, str]] = [(value, 0, prefix)]
    while stack:
        item, depth, where = stack.pop()
        if isinstance(item, dict | list):
            if depth >= MAX_DEPTH:
                raise UserError(f"{source}: {where or '(the document)'}: {_TOO_DEEP}")
            pairs = item.items() if isinstance(item, dict) else enumerate(item)
            stack += [(v, depth + 1, f"{where}.{k}" if where else str(k)) for k, v in pairs]


def parse_override(item: str) -> tuple[list[str], Any]:
    """``a.b.0.c=value`` -> (["a", "b", "0", "c"], value parsed as a TOML literal)."""
    key, sep, raw = item.partition("=")
    key = key.strip()
    if not sep or not key or any(not p for p in key.split(".")):
        raise UserError(f"--set {item!r}: expected dotted.key=value, e.g. --set train.steps=100")
    raw = raw.strip()
    try:
        value = tomllib.loads(f"v = {raw}")["v"]
    except tomllib.TOMLDecodeError:
        value = raw  # a bare word such as cpu or dcgan is taken as a string
    except RecursionError:
        raise UserError(f"--set {key}=...: the value's {_TOO_DEEP}") from None
    _check_depth(value, f"--set {key}=...", "value")
    return key.split("."), value


def apply_overrides(doc: dict[str, Any], overrides: list[str]) -> dict[str, Any]:
    for item in overrides:
        parts, value = parse_override(item)
        target: Any = doc
        for i, p in enumerate(parts[:-1]):
            where = ".".join(parts[: i + 1])
            if isinstance(target, list):
                if not p.isdigit() or int(p) >= len(target):
                    raise UserError(f"--set {item!r}: {where}: no such list item")
                target = target[int(p)]
            elif isinstance(target, dict):
                nxt = target.get(p)
                if nxt is None:
                    nxt = target[p] = {}
                elif not isinstance(nxt, dict | list):
                    raise UserError(f"--set {item!r}: {where} is a value, not a table")
                target = nxt
        last = parts[-1]
        if isinstance(target, list):
            if not last.isdigit() or int(last) >= len(target):
                raise UserError(f"--set {item!r}: no such list item")
            target[int(last)] = value
        else:
            target[last] = value
    return doc


def _component_places(recipe: Recipe) -> list[tuple[str, str, ComponentTable]]:
    places: list[tuple[str, str, ComponentTable]] = [
        ("data", "dataset", recipe.data),
        ("generator", "generator", recipe.generator),
    ]
    if recipe.critic is not None:
        places.append(("critic", "critic", recipe.critic))
    if recipe.phases:
        places += [(f"phases.{i}.loss", "loss", p.loss) for i, p in enumerate(recipe.phases)]
    else:
        places.append(("loss", "loss", recipe.loss))
    places += [(f"metrics.{i}", "metric", m) for i, m in enumerate(recipe.metrics)]
    places += [(f"loggers.{i}", "logger", t) for i, t in enumerate(recipe.loggers)]
    places += [(f"callbacks.{i}", "callback", t) for i, t in enumerate(recipe.callbacks)]
    for net in ("generator", "critic"):
        table: OptimizerTable = getattr(recipe.optim, net)
        places.append((f"optim.{net}", "optimizer", table))
        places.append((f"optim.{net}.schedule", "schedule", table.schedule))
    return places


def validate(
    doc: dict[str, Any], source: str, registry: Registry, recipe_dir: Path | None = None
) -> ResolvedRecipe:
    """Validate a parsed recipe document against the core schema and the registry."""
    _check_depth(doc, source)
    try:
        recipe = Recipe.model_validate(doc)
    except ValidationError as err:
        raise UserError(_format_errors(source, _pydantic_problems(err, "", Recipe))) from None
    if not recipe.name:
        recipe.name = Path(source).stem if source.endswith(".toml") else source
    problems: list[tuple[str, str]] = []
    resolved = ResolvedRecipe(recipe, source, recipe_dir=recipe_dir)
    for place, kind, table in _component_places(recipe):
        try:
            spec = registry.get(kind, table.type)
        except UserError as exc:
            problems.append((f"{place}.type", str(exc)))
            continue
        options = table.options()
        if isinstance(table, MetricTable):
            options.pop("every", None)
        try:
            model = spec.config_model()
        except PluginError:
            raise  # names the plugin, its line, and keeps the traceback for --debug
        except Exception as exc:  # a plugin's broken lazy config string
            problems.append((place, f"plugin {spec.plugin} has a broken config model: {exc}"))
            continue
        unknown = _ignored_keys(model, options)
        if unknown:
            problems += [(f"{place}.{k}", _unknown_key(k, model)) for k in unknown]
            continue
        try:
            config = model.model_validate(options)
        except ValidationError as err:
            problems += _pydantic_problems(err, place, model)
            continue
        problems += [(f"{place}.{key}", _NOT_FINITE) for key in _non_finite(config)]
        if kind == "optimizer" and not isinstance(getattr(config, "lr", None), int | float):
            problems.append((place, f"optimizer {spec.qualified_name}'s config has no 'lr' "
                             "(a number); the training loop sets learning rates from it"))
            continue
        resolved.components[place] = (spec, config)
    if problems:
        raise UserError(_format_errors(source, problems))
    _check_size(resolved)
    return resolved


_NOT_FINITE = "must be a finite number (not inf or nan)"


def _non_finite(config: BaseModel) -> list[str]:
    """Dotted keys of the floats in a validated plugin config that are inf or nan: the core
    models refuse them, and a plugin's model should not let them through either."""
    import math

    found: list[str] = []
    stack: list[tuple[Any, str]] = [(config.model_dump(), "")]
    while stack:
        value, where = stack.pop()
        if isinstance(value, float) and not math.isfinite(value):
            found.append(where)
        elif isinstance(value, dict):
            stack += [(v, f"{where}.{k}" if where else str(k)) for k, v in value.items()]
        elif isinstance(value, list | tuple | set | frozenset):
            stack += [(v, f"{where}.{i}" if where else str(i)) for i, v in enumerate(value)]
    return sorted(found)


def _check_size(resolved: ResolvedRecipe) -> None:
    """The resolved recipe goes into every checkpoint's header, which has a size limit: a
    recipe too large for it must fail here, not at the first checkpoint."""
    import json

    size = len(json.dumps(resolved.to_dict(), ensure_ascii=False).encode("utf-8"))
    if size > MAX_RECIPE_BYTES:
        raise UserError(
            f"{resolved.source}: the resolved recipe is {size:,} bytes as JSON, more than the "
            f"{MAX_RECIPE_BYTES:,} a run can store with its checkpoints; shorten long strings "
            "or lists (description, component options)."
        )


def load_recipe_text(
    text: str,
    source: str,
    registry: Registry,
    overrides: list[str] | None = None,
    recipe_dir: Path | None = None,
) -> ResolvedRecipe:
    doc = parse_toml(text, source)
    if overrides:
        doc = apply_overrides(doc, overrides)
    return validate(doc, source, registry, recipe_dir)


def load_recipe(
    ref: str | Path, registry: Registry, overrides: list[str] | None = None
) -> ResolvedRecipe:
    """Load a recipe from a path or from the name of a recipe a plugin registered."""
    path = Path(ref)
    if path.suffix == ".toml" or path.is_file():
        if not path.is_file():
            raise UserError(
                f"{path}: no such recipe file. Give a path to a .toml file or the name of a "
                "registered recipe (see 'ganframe recipes')."
            )
        try:
            text = path.read_text(encoding="utf-8")
        except UnicodeDecodeError as exc:
            raise UserError(f"{path}: not UTF-8 text ({exc.reason} at byte {exc.start})") from None
        except OSError as exc:
            raise UserError(f"{path}: cannot read: {exc.strerror}") from None
        return load_recipe_text(text, str(path), registry, overrides, path.parent.resolve())
    spec = registry.recipe(str(ref))
    if spec is None:
        names = ", ".join(sorted(r.name for r in registry.recipes)) or "(none)"
        raise UserError(
            f"{ref!r} is neither a recipe file nor a registered recipe. Registered recipes: "
            f"{names}."
        )
    return load_recipe_text(
        spec.read_text(), f"{spec.name} (from {spec.plugin})", registry, overrides
    )
