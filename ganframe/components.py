"""The contracts between the core and plugins: what a Generator, Critic, Objective (loss),
Dataset and Metric must offer.

This module imports nothing from the layers above it (recipes, the plugin host, training),
so a plugin depends on :mod:`ganframe.components` and nothing else of ganframe. It does import
torch; plugins import it inside their factories, never at module top level, so that listing
plugins stays fast.

Factories registered through the hooks are all called the same way::

    factory(config: <the component's pydantic model>, ctx: BuildContext) -> component

Class labels travel with the data: a dataset may answer a :class:`Batch` (data plus int64
labels) and say ``num_classes`` in its info; a generator or critic whose ``conditional``
attribute is true takes the labels as a second argument. Unconditional models never see
labels, so they need no change.
"""

from __future__ import annotations

import operator
import os
import stat
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any, Protocol, runtime_checkable

import torch
from torch import Tensor, nn

from ganframe.errors import UserError

if TYPE_CHECKING:
    from pydantic import BaseModel

__all__ = [
    "Batch",
    "BuildContext",
    "Dataset",
    "EvalContext",
    "LatentGenerator",
    "Metric",
    "Objective",
    "StepContext",
    "StepOutput",
    "as_batch",
    "check_sampling_options",
    "data_path",
    "generate",
    "open_data_file",
    "resolve_data_path",
    "resolve_labels",
]


@dataclass
class Batch:
    """Real samples and, for labelled data, their class labels.

    A dataset returns one from :meth:`Dataset.get` when its items have classes; unlabelled
    datasets may keep returning a plain tensor (:func:`as_batch` wraps it). Labels are int64
    class indices in ``range(info()["num_classes"])``, one per sample.
    """

    data: Tensor  #: the real samples
    labels: Tensor | None = None  #: int64 (N,) class labels, or None for unlabelled data

    def __post_init__(self) -> None:
        # Shape and dtype only (no device sync): a wrong label tensor from a dataset would
        # otherwise surface as an obscure indexing error deep inside an embedding.
        y = self.labels
        if y is not None and (
            y.dtype != torch.int64 or y.dim() != 1 or y.shape[0] != self.data.shape[0]
        ):
            raise ValueError(
                f"Batch labels must be an int64 tensor of shape ({self.data.shape[0]},), one "
                f"class per sample, not {y.dtype} {tuple(y.shape)}"
            )

    def to(self, device: torch.device | str, non_blocking: bool = False) -> Batch:
        labels = self.labels
        return Batch(
            self.data.to(device, non_blocking=non_blocking),
            None if labels is None else labels.to(device, non_blocking=non_blocking),
        )

    def __len__(self) -> int:
        return int(self.data.shape[0])


def as_batch(x: Tensor | Batch) -> Batch:
    """What :meth:`Dataset.get` returned, as a :class:`Batch` (unlabelled if a tensor)."""
    if isinstance(x, Batch):
        return x
    if isinstance(x, Tensor):
        return Batch(x)
    raise TypeError(f"a dataset's get() must return a Tensor or a Batch, not {type(x).__name__}")


@dataclass
class BuildContext:
    """What a factory may need besides its own config.

    ``data_info`` comes from :meth:`Dataset.info` and is stored in every checkpoint, so a
    generator can be rebuilt for sampling without the data (image shape, vocabulary, ...).
    ``recipe_dir`` resolves relative paths in a recipe; ``data_root`` is ``$GANFRAME_DATA``.
    """

    data_info: dict[str, Any] = field(default_factory=dict)
    device: torch.device = field(default_factory=lambda: torch.device("cpu"))
    seed: int = 0
    recipe_dir: Path | None = None
    data_root: Path | None = None
    #: The recipe's validated ``[data]`` config, so a metric or objective can open another
    #: split of the same data (e.g. ``config.model_copy(update={"split": "test"})``).
    data_config: Any = None
    #: The dataset factory for ``data_config`` (call ``build_data(config)`` for another split).
    build_data: Any = None

    def resolve_data_path(self, value: str | os.PathLike[str], what: str = "data.path", *,
                          must_exist: bool = False) -> Path:
        """The absolute path a recipe's data path means: see :func:`resolve_data_path`."""
        return resolve_data_path(value, self, what, must_exist=must_exist)

    def data_path(self, config: Any, key: str = "path", *,
                  must_exist: bool = False) -> Path | None:
        """``config.<key>`` resolved, and recorded for a shipped recipe: see
        :func:`data_path`."""
        return data_path(config, key, self, must_exist=must_exist)


def data_path(config: Any, key: str = "path", ctx: Any = None, *,
              must_exist: bool = False) -> Path | None:
    """The data path option ``config.<key>`` as :func:`resolve_data_path` reads it (None
    when it is unset), stored back resolved when the recipe is a shipped one.

    What a dataset calls for each of its path options. A shipped recipe run with ``--set
    data.path=mine.npz`` then records the absolute path in the run's ``recipe.toml`` and
    checkpoints, so ``ganframe run runs/x/recipe.toml --out runs/x --resume`` and
    ``ganframe eval`` find the data again from any folder. A recipe file keeps the path as
    written: resuming with the same file resolves it the same way."""
    value = getattr(config, key, None)
    if value is None:
        return None
    path = resolve_data_path(value, ctx, f"data.{key}", must_exist=must_exist)
    if getattr(ctx, "recipe_dir", None) is None and path != Path(value):
        setattr(config, key, path if isinstance(value, Path) else str(path))
    return path


def resolve_data_path(
    value: str | os.PathLike[str],
    ctx: Any = None,
    what: str = "data.path",
    *,
    must_exist: bool = False,
) -> Path:
    """The absolute path a recipe's data path (``data.path``, ``data.root``...) means.

    The convention every dataset follows, so shipped recipes work with the user's data: an
    absolute path (``~`` expanded) is itself; a relative one is looked up in
    ``$GANFRAME_DATA`` (``ctx.data_root``, else the environment), then the recipe's folder
    (``ctx.recipe_dir``), then the working directory, and the first place where it exists
    wins. Where it exists nowhere, it is the recipe's folder's (the working directory's for
    a shipped recipe), or with ``must_exist`` a :class:`UserError` naming every place tried.

    A dataset calls :func:`data_path` (``ctx.data_path(config, "path")``), which also records
    the answer for a shipped recipe. ``ctx`` may be any object with ``data_root`` and
    ``recipe_dir`` attributes (or None).
    """
    path = Path(value).expanduser()
    if path.is_absolute():
        return path
    root = getattr(ctx, "data_root", None)
    if root is None and os.environ.get("GANFRAME_DATA", "").strip():
        root = Path(os.environ["GANFRAME_DATA"].strip()).expanduser()
    recipe_dir = getattr(ctx, "recipe_dir", None)
    places = [(Path(base), label) for base, label in (
        (root, "$GANFRAME_DATA"), (recipe_dir, "the recipe's folder"),
        (Path.cwd(), "the working directory")) if base is not None]
    for base, _label in places:
        if (base / path).exists():
            return Path(os.path.abspath(base / path))
    if must_exist:
        tried = ", ".join(f"{label} ({base})" for base, label in places)
        raise UserError(f"{what}: {str(value)!r} was found in none of {tried}; give an "
                        "absolute path, or put it in one of those folders.")
    return Path(os.path.abspath((Path(recipe_dir) if recipe_dir is not None else Path.cwd())
                                / path))


@runtime_checkable
class Dataset(Protocol):
    """Real data, held so that a batch is one vectorised indexing operation.

    The core owns shuffling, epochs, sharding and exact resume: it draws a permutation of
    ``range(len(dataset))`` per epoch and asks for batches by index.
    """

    #: Family of the data, chooses sample writers: ``"image"``, ``"points"``, ``"text"``...
    kind: str

    def __len__(self) -> int: ...

    def get(self, index: Tensor) -> Tensor | Batch:
        """Items at ``index`` (int64, CPU) as one batch on the CPU: a tensor, or a
        :class:`Batch` carrying the items' int64 class labels too (labelled data)."""
        ...

    def info(self) -> dict[str, Any]:
        """JSON-able facts needed to build networks and write samples without the data.

        Labelled data says how many classes it has (``"num_classes": int``, labels are
        ``0 .. num_classes - 1``) and may name them (``"class_names": list[str]``), so a
        conditional network can be sized from the info alone, also when sampling."""
        ...


def _file_kind(mode: int) -> str:
    kinds = [(stat.S_ISDIR, "a folder"), (stat.S_ISFIFO, "a FIFO (named pipe)"),
             (stat.S_ISCHR, "a device"), (stat.S_ISBLK, "a device"), (stat.S_ISSOCK, "a socket")]
    return next((name for test, name in kinds if test(mode)), "not a file")


def open_data_file(path: str | os.PathLike[str], what: str = "data file") -> Any:
    """Open a data file for binary reading, refusing anything but a regular file.

    A recipe (or a checkpoint's recipe) names data paths, and a path is not always a file:
    a FIFO blocks the reader forever, ``/dev/zero`` never ends, a folder cannot be read. The
    file is opened without blocking and checked on the open descriptor (so it cannot be
    swapped between the check and the read); anything but a regular file is a
    :class:`UserError` naming the path. A missing file raises :class:`FileNotFoundError`, for
    the caller to say where the file should be. Returns the open binary file (``with`` it)."""
    flags = os.O_RDONLY | getattr(os, "O_NONBLOCK", 0) | getattr(os, "O_BINARY", 0)
    try:
        fd = os.open(path, flags | getattr(os, "O_CLOEXEC", 0))
    except FileNotFoundError:
        raise  # the caller knows where the file should be and says so
    except IsADirectoryError:
        fd = -1
    except OSError as exc:
        raise UserError(f"{path}: cannot read the {what} ({exc.strerror or exc}).") from None
    mode = os.fstat(fd).st_mode if fd >= 0 else stat.S_IFDIR
    if not stat.S_ISREG(mode):
        if fd >= 0:
            os.close(fd)
        raise UserError(
            f"{path}: cannot read the {what}: it is {_file_kind(mode)}, not a regular file; "
            "ganframe reads data only from regular files. Point the recipe's data path at the "
            "file itself."
        )
    if hasattr(os, "set_blocking"):
        os.set_blocking(fd, True)
    return os.fdopen(fd, "rb")


class LatentGenerator(nn.Module):
    """Base class for generators that map a noise vector (and, if conditional, a class
    label) to a sample.

    Subclasses set ``latent_dim`` and implement ``forward(z)``; a conditional one also sets
    ``conditional = True`` and ``num_classes`` (usually ``ctx.data_info["num_classes"]``)
    and implements ``forward(z, labels)`` with int64 labels (N,). Generators that are not
    latent-driven (e.g. autoregressive text models) subclass ``nn.Module`` directly and
    implement ``generate`` themselves.

    A generator with sampling knobs (temperature, truncation...) declares them as a pydantic
    model in the class attribute ``sampling_options`` and overrides :meth:`generate` to apply
    them; see :func:`check_sampling_options`.
    """

    latent_dim: int
    #: Whether ``forward`` takes class labels; the training loop and samplers read this.
    conditional: bool = False
    #: Number of classes of a conditional generator (labels are ``0 .. num_classes - 1``).
    num_classes: int = 0

    def sample_latent(
        self, n: int, device: torch.device | str, rng: torch.Generator | None = None
    ) -> Tensor:
        return torch.randn(n, self.latent_dim, device=device, generator=rng)

    def generate(
        self,
        n: int,
        *,
        device: torch.device | str,
        rng: torch.Generator | None = None,
        labels: int | Sequence[int] | Tensor | None = None,
        **options: Any,
    ) -> Tensor:
        """``n`` samples; a conditional generator draws them for ``labels`` (see
        :func:`resolve_labels`; random classes from ``rng`` when None). The latents are drawn
        before any random labels, so one seed gives the same noise whatever the labels."""
        # Refusing unknown knobs beats letting a user believe an option changed the samples.
        check_sampling_options(self, options)
        if labels is not None and not self.conditional:
            resolve_labels(self, n, labels, device=device)  # raises: not conditional
        z = self.sample_latent(n, device, rng)
        if not self.conditional:
            return self(z)
        return self(z, resolve_labels(self, n, labels, device=device, rng=rng))


def _generator_name(generator: nn.Module) -> str:
    return type(generator).__name__


def resolve_labels(
    generator: nn.Module,
    n: int,
    labels: int | Sequence[int] | Tensor | None,
    *,
    device: torch.device | str,
    rng: torch.Generator | None = None,
) -> Tensor | None:
    """The int64 labels (n,) on ``device`` that ``generator`` should produce samples for.

    For a conditional generator ``labels`` may be None (uniformly random classes drawn from
    ``rng``), one int (every sample that class), or n ints (a sequence or tensor). For an
    unconditional generator it must be None, and None is returned. Mistakes (a label out of
    range, the wrong count, labels for an unconditional generator) are a :class:`UserError`.
    This checks values, so it synchronises with the device: use it for sampling, not in a
    training step.
    """
    name = _generator_name(generator)
    if not getattr(generator, "conditional", False):
        if labels is None:
            return None
        raise UserError(
            f"{name} is not conditional (it was not trained with class labels), so it cannot "
            "generate samples of a chosen class; leave the labels out."
        )
    k = int(getattr(generator, "num_classes", 0))
    if labels is None:
        return torch.randint(k, (n,), device=device, generator=rng)
    if not isinstance(labels, Tensor | Sequence) or isinstance(labels, str | bytes):
        try:
            if isinstance(labels, bool):
                raise TypeError
            labels = operator.index(labels)  # an int, numpy's included
        except TypeError:
            raise UserError(
                f"labels for {name} must be a class number or one class number per sample, "
                f"not {labels!r}."
            ) from None
    if isinstance(labels, int):
        values = torch.full((n,), labels, dtype=torch.int64)
    else:
        try:
            values = torch.as_tensor(labels)
        except (TypeError, ValueError, RuntimeError):
            values = torch.empty(0, dtype=torch.float32)  # reported below as not integers
        if values.is_floating_point() or values.is_complex() or values.dtype == torch.bool:
            raise UserError(
                f"labels for {name} must be whole class numbers 0 to {k - 1}, not {labels!r}."
            )
        if values.dim() == 0:  # one class as a 0-d tensor
            values = values.expand(n)
        if values.dim() != 1 or values.shape[0] != n:
            raise UserError(
                f"got {values.numel()} labels for {n} samples from {name}; give one class "
                "number per sample, or a single class for all of them."
            )
    values = values.to(torch.int64)
    if n and (int(values.min()) < 0 or int(values.max()) >= k):
        bad = int(values.min()) if int(values.min()) < 0 else int(values.max())
        raise UserError(
            f"label {bad} is out of range: {name} has {k} classes (labels 0 to {k - 1})."
        )
    return values.to(device)


def _describe_options(model: type[BaseModel]) -> str:
    parts = []
    for key, info in model.model_fields.items():
        default = "required" if info.is_required() else f"default {info.default!r}"
        details = [d for d in (info.description, default) if d]
        parts.append(f"{key} ({'; '.join(details)})")
    return ", ".join(parts)


def check_sampling_options(generator: nn.Module, options: Mapping[str, Any]) -> dict[str, Any]:
    """``options`` validated against the generator's ``sampling_options`` pydantic model,
    with every option's default filled in; ``{}`` for a generator that declares none.

    The core passes sampling options through without knowing them (``ganframe sample
    --option KEY=VALUE``); this is where a misspelt or out-of-range one becomes a
    :class:`UserError` naming the option and listing the ones the generator accepts. A
    generator without ``sampling_options`` accepts no options at all.
    """
    from pydantic import ValidationError

    name = _generator_name(generator)
    model: type[BaseModel] | None = getattr(generator, "sampling_options", None)
    if model is None:
        if options:
            raise UserError(
                f"{name} takes no sampling options (it declares none), but got "
                f"{', '.join(sorted(options))}. Leave them out (a different seed draws other "
                "samples)."
            )
        return {}
    unknown = sorted(k for k in options if k not in model.model_fields)
    if unknown:
        raise UserError(
            f"unknown sampling option(s) for {name}: {', '.join(unknown)}; it accepts "
            f"{_describe_options(model)}."
        )
    try:
        validated = model.model_validate(dict(options))
    except ValidationError as exc:
        err = exc.errors()[0]
        key = str(err["loc"][0]) if err["loc"] else "?"
        if err["type"] == "value_error":
            reason = f"{key} {err['ctx']['error']}" if err.get("ctx") else f"{key}: {err['msg']}"
        else:
            reason = f"{key}: {err['msg'][:1].lower()}{err['msg'][1:]}"
            if key in options:
                reason += f" (got {options[key]!r})"
        raise UserError(
            f"bad sampling option for {name}: {reason}. It accepts {_describe_options(model)}."
        ) from None
    return validated.model_dump()


def generate(
    generator: nn.Module,
    n: int,
    *,
    device: torch.device | str,
    rng: torch.Generator | None = None,
    labels: int | Sequence[int] | Tensor | None = None,
    **options: Any,
) -> Tensor:
    """Draw ``n`` samples in the data's own format (images in [-1, 1], token ids, points);
    ``labels`` choose the classes of a conditional generator (see :func:`resolve_labels`)."""
    if labels is not None:  # generators that predate labels need not accept the keyword
        options["labels"] = labels
    return generator.generate(n, device=device, rng=rng, **options)


@dataclass
class StepContext:
    """What an objective sees at each update: the networks, where training stands, and the
    class labels of the current real batch."""

    generator: nn.Module
    critic: nn.Module | None
    device: torch.device
    step: int = 0  #: global generator-step counter over all phases
    phase_step: int = 0  #: step counter within the current phase
    phase_steps: int = 1  #: length of the current phase in steps
    #: int64 (N,) labels of the real batch being trained on, None for unlabelled data; the
    #: loop sets them before every critic and generator update.
    labels: Tensor | None = None
    #: DiffAugment of every critic input (``train.augment``), applied by :meth:`score` and
    #: :meth:`score_and_classes` to real and fake batches alike; None: off.
    augment: Callable[[Tensor], Tensor] | None = None

    @property
    def progress(self) -> float:
        """Fraction of the current phase done, for annealing schedules."""
        return min(1.0, self.phase_step / max(1, self.phase_steps))

    @property
    def conditional(self) -> bool:
        """Whether the generator takes class labels."""
        return bool(getattr(self.generator, "conditional", False))

    def fake_labels(self, n: int, labels: Tensor | None = None) -> Tensor | None:
        """The labels :meth:`fake` conditions ``n`` samples on: None for an unconditional
        generator; else ``labels`` if given, else the real batch's (``self.labels[:n]``,
        when it has at least n), else uniformly random classes. Objectives that score the
        fakes with a conditional critic call this first, then ``fake(n, labels)``.

        Random classes come from torch's global generator, and only for conditional
        generators, so unconditional runs draw exactly the random numbers they always did.
        """
        g = self.generator
        if not self.conditional:
            if labels is not None:
                raise UserError(
                    f"{_generator_name(g)} is not conditional, but an objective asked for "
                    "fakes of given labels; call ctx.fake(n) without labels for it."
                )
            return None
        if labels is None:
            if self.labels is not None and self.labels.shape[0] >= n:
                return self.labels[:n]
            k = int(getattr(g, "num_classes", 0))
            return torch.randint(k, (n,), device=self.device)
        if labels.dim() != 1 or labels.shape[0] != n:
            raise UserError(
                f"ctx.fake({n}, labels) got labels of shape {tuple(labels.shape)}; give one "
                "class per sample."
            )
        return labels.to(self.device)

    def fake(self, n: int, labels: Tensor | None = None) -> Tensor:
        """A differentiable batch of generated samples from a latent generator; a
        conditional one generates for :meth:`fake_labels` ``(n, labels)``."""
        g = self.generator
        labels = self.fake_labels(n, labels)
        if labels is None:
            return g(g.sample_latent(n, self.device))
        return g(g.sample_latent(n, self.device), labels)

    def score(self, x: Tensor, labels: Tensor | None = None) -> Tensor:
        """The critic's output for ``x``; a conditional critic (``conditional = True``) gets
        ``labels`` too, an unconditional one ignores them, so objectives can always pass
        them. With ``train.augment`` the critic sees ``augment(x)``: every critic call of
        an objective goes through here (or :meth:`score_and_classes`), so real and fake
        inputs are augmented alike."""
        critic = self._critic_for(labels)
        if self.augment is not None:
            x = self.augment(x)
        if not getattr(critic, "conditional", False):
            return critic(x)
        return critic(x, labels)

    def score_and_classes(self, x: Tensor, labels: Tensor | None = None) -> tuple[Tensor, Tensor]:
        """The critic's score and its auxiliary class logits (N, K) for ``x`` in one pass,
        for the AC-GAN loss option: the critic must offer ``score_and_classes(x, labels)``
        (the dcgan critic does with ``aux_classifier = true``). Augmented like :meth:`score`.
        """
        critic = self._critic_for(labels)
        if not callable(getattr(critic, "score_and_classes", None)):
            raise UserError(
                f"the loss's aux_classifier option needs a critic with an auxiliary class "
                f"head (a score_and_classes method), and critic {type(critic).__name__} has "
                "none; use one that offers it (dcgan: aux_classifier = true in [critic]) or "
                "set aux_classifier = 0."
            )
        if self.augment is not None:
            x = self.augment(x)
        conditional = getattr(critic, "conditional", False)
        return critic.score_and_classes(x, labels if conditional else None)

    def _critic_for(self, labels: Tensor | None) -> nn.Module:
        critic = self.critic
        if critic is None:
            raise UserError("this objective scores samples but the recipe has no [critic].")
        if getattr(critic, "conditional", False) and labels is None:
            raise UserError(
                f"critic {type(critic).__name__} is conditional and needs the class of every "
                "sample it scores, but got none: an unconditional generator's samples have "
                "no labels. Make the generator conditional too, or the critic unconditional."
            )
        return critic


@dataclass
class StepOutput:
    """A loss to minimise plus scalars to log (detached before logging by the core)."""

    loss: Tensor
    logs: Mapping[str, Tensor | float] = field(default_factory=dict)


@runtime_checkable
class Objective(Protocol):
    """A training objective ("loss" plugin). It decides which networks it trains.

    The loop runs ``n_critic`` critic updates (each on a fresh real batch) when
    ``trains_critic``, then one generator update when ``trains_generator`` (on the last real
    batch, or a fresh one if the critic was not trained). Everything about *how* the loss is
    computed, including sampling from the generator, belongs to the objective, so MLE,
    policy-gradient and Gumbel-softmax text GANs fit without changes to the core.
    """

    trains_critic: bool
    trains_generator: bool

    def critic_loss(self, ctx: StepContext, real: Tensor) -> StepOutput:
        """``real`` is the batch's data; its labels, if any, are ``ctx.labels``."""
        ...

    def generator_loss(self, ctx: StepContext, real: Tensor) -> StepOutput: ...


@dataclass
class EvalContext:
    device: torch.device
    seed: int = 0
    data_info: dict[str, Any] = field(default_factory=dict)
    n_samples: int | None = None


@runtime_checkable
class Metric(Protocol):
    """Evaluates a generator. Values must be JSON-able (numbers, or lists of numbers)."""

    def evaluate(
        self, generator: nn.Module, dataset: Dataset | None, ctx: EvalContext
    ) -> dict[str, Any]: ...
