"""Registers the core's standard adversarial objectives.

This is a hookimpl module: it imports only pydantic and ganframe's hook marker, so listing
and validating recipes never imports torch. The objectives live in
:mod:`ganframe.builtin.losses`.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from pydantic import BaseModel, ConfigDict, Field

from ganframe import hookimpl

_MODULE = "ganframe.builtin.losses"


class AdversarialLossConfig(BaseModel):
    """Options every standard adversarial objective accepts."""

    model_config = ConfigDict(extra="forbid")

    r1_gamma: float = Field(
        0.0,
        ge=0,
        description="Weight of the R1 penalty gamma/2 * E||grad_x D(x_real)||^2 added to the "
        "critic loss; 0 turns it off.",
    )
    aux_classifier: float = Field(
        0.0,
        ge=0,
        description="AC-GAN (Odena et al. 2017): weight of the auxiliary classifier's "
        "cross-entropy on real and fake samples (critic) and on fake samples (generator); "
        "needs labelled data, a conditional generator and a critic with a class head "
        "(dcgan: aux_classifier = true); 0 turns it off.",
    )


class WGANConfig(AdversarialLossConfig):
    clip: float = Field(
        0.01,
        gt=0,
        description="Critic weights are clamped to [-clip, clip] after every critic update.",
    )


class WGANGPConfig(AdversarialLossConfig):
    gp_lambda: float = Field(
        10.0,
        gt=0,
        description="Weight of the gradient penalty E[(||grad D(x_hat)||_2 - 1)^2] on random "
        "interpolates x_hat between real and fake samples (norm per sample).",
    )


_LOSSES: tuple[tuple[str, str, type[BaseModel], str], ...] = (
    (
        "non-saturating",
        "NonSaturating",
        AdversarialLossConfig,
        "Standard GAN loss; the generator maximises log D(G(z)) (the usual default).",
    ),
    (
        "minimax",
        "Minimax",
        AdversarialLossConfig,
        "The original saturating GAN game; the generator minimises log(1 - D(G(z))).",
    ),
    (
        "wgan",
        "WassersteinClipped",
        WGANConfig,
        "Wasserstein GAN with critic weight clipping.",
    ),
    (
        "wgan-gp",
        "WassersteinGP",
        WGANGPConfig,
        "Wasserstein GAN with a per-sample gradient penalty on interpolates.",
    ),
    (
        "hinge",
        "Hinge",
        AdversarialLossConfig,
        "Hinge loss: margin-based critic, generator maximises D(G(z)).",
    ),
    (
        "lsgan",
        "LeastSquares",
        AdversarialLossConfig,
        "Least-squares GAN: critic regresses real to 1 and fake to 0.",
    ),
)


@hookimpl
def register_losses(register: Callable[..., Any]) -> None:
    for name, attr, config, summary in _LOSSES:
        register(name, f"{_MODULE}:{attr}", config=config, summary=summary)
