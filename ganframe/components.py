"""The contracts between the core and plugins: what a Generator, Critic, Objective (loss),
Dataset and Metric must offer.

This module imports nothing from the layers above it (recipes, the plugin host, training),
so a plugin depends on :mod:`ganframe.components` and nothing else of ganframe. It does import
torch; plugins import it inside their factories, never at module top level, so that listing
plugins stays fast.

Factories registered through the hooks are all called the same way::

    factory(config: <the component's pydantic model>, ctx: BuildContext) -> component
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Protocol, runtime_checkable

import torch
from torch import Tensor, nn

from ganframe.errors import UserError

__all__ = [
    "BuildContext",
    "Dataset",
    "EvalContext",
    "LatentGenerator",
    "Metric",
    "Objective",
    "StepContext",
    "StepOutput",
    "generate",
]


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


@runtime_checkable
class Dataset(Protocol):
    """Real data, held so that a batch is one vectorised indexing operation.

    The core owns shuffling, epochs, sharding and exact resume: it draws a permutation of
    ``range(len(dataset))`` per epoch and asks for batches by index.
    """

    #: Family of the data, chooses sample writers: ``"image"``, ``"points"``, ``"text"``...
    kind: str

    def __len__(self) -> int: ...

    def get(self, index: Tensor) -> Tensor:
        """Items at ``index`` (int64, CPU) as one batch tensor on the CPU."""
        ...

    def info(self) -> dict[str, Any]:
        """JSON-able facts needed to build networks and write samples without the data."""
        ...


class LatentGenerator(nn.Module):
    """Base class for generators that map a noise vector to a sample.

    Subclasses set ``latent_dim`` and implement ``forward(z)``. Generators that are not
    latent-driven (e.g. autoregressive text models) subclass ``nn.Module`` directly and
    implement ``generate`` themselves.
    """

    latent_dim: int

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
        **options: Any,
    ) -> Tensor:
        # A latent generator has no sampling knobs; refusing them beats letting a user
        # believe ``--temperature`` changed their images.
        if options:
            raise UserError(
                f"{type(self).__name__} maps latent noise to samples and takes no sampling "
                f"options, but got {', '.join(sorted(options))}; these apply to text "
                "generators. Leave them out (--seed draws other samples)."
            )
        return self(self.sample_latent(n, device, rng))


def generate(
    generator: nn.Module,
    n: int,
    *,
    device: torch.device | str,
    rng: torch.Generator | None = None,
    **options: Any,
) -> Tensor:
    """Draw ``n`` samples in the data's own format (images in [-1, 1], token ids, points)."""
    return generator.generate(n, device=device, rng=rng, **options)


@dataclass
class StepContext:
    """What an objective sees at each update: the networks and where training stands."""

    generator: nn.Module
    critic: nn.Module | None
    device: torch.device
    step: int = 0  #: global generator-step counter over all phases
    phase_step: int = 0  #: step counter within the current phase
    phase_steps: int = 1  #: length of the current phase in steps

    @property
    def progress(self) -> float:
        """Fraction of the current phase done, for annealing schedules."""
        return min(1.0, self.phase_step / max(1, self.phase_steps))

    def fake(self, n: int) -> Tensor:
        """A differentiable batch of generated samples from a latent generator."""
        g = self.generator
        return g(g.sample_latent(n, self.device))


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

    def critic_loss(self, ctx: StepContext, real: Tensor) -> StepOutput: ...

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
