"""The standard adversarial objectives for latent generators.

All six share one base class: the critic step scores a detached fake batch and the real
batch, the generator step scores a differentiable fake batch, and each objective only
says how those scores become a loss. With class labels (a conditional generator or critic)
the critic scores (fake, fake labels) and (real, real labels); unconditional models draw
exactly the random numbers they did before labels existed. The optional R1 penalty
(Mescheder et al., 2018) lives in the base class so it can be combined with any of them
through ``r1_gamma``, and so does the AC-GAN auxiliary classifier term (Odena et al., 2017)
through ``aux_classifier``: the critic's class head (:meth:`StepContext.score_and_classes`)
learns the class of real and fake samples, and the generator is trained to make its samples
classified as the class they were drawn for.

The core calls ``factory(config, ctx)``; here the factories are the classes themselves.
"""

from __future__ import annotations

from typing import Any

import torch
import torch.nn.functional as F
from torch import Tensor

from ganframe.components import StepContext, StepOutput
from ganframe.errors import UserError

__all__ = [
    "AdversarialObjective",
    "Hinge",
    "LeastSquares",
    "Minimax",
    "NonSaturating",
    "WassersteinClipped",
    "WassersteinGP",
]


def _scores(ctx: StepContext, x: Tensor, labels: Tensor | None = None) -> Tensor:
    """Critic outputs as a float vector: critics may answer (N,) or (N, 1), in bf16 or fp32.
    ``labels`` reach a conditional critic only (:meth:`StepContext.score`)."""
    assert ctx.critic is not None, "adversarial objectives need a critic"
    return ctx.score(x, labels).reshape(-1).float()


def _scores_and_classes(
    ctx: StepContext, x: Tensor, labels: Tensor | None
) -> tuple[Tensor, Tensor]:
    """Scores as :func:`_scores` and the critic's auxiliary class logits (float)."""
    scores, logits = ctx.score_and_classes(x, labels)
    return scores.reshape(-1).float(), logits.float()


def _input_grad_norms(scores: Tensor, x: Tensor) -> Tensor:
    """Per-sample squared L2 norm of d(sum scores)/dx, kept in the graph so the penalty trains
    the critic. Scores of different samples do not interact, so the summed gradient's row i
    is exactly the gradient of sample i's own score."""
    (grad,) = torch.autograd.grad(scores.sum(), x, create_graph=True)
    return grad.flatten(1).float().pow(2).sum(dim=1)


class AdversarialObjective:
    """Shared skeleton; subclasses implement :meth:`critic_terms` and :meth:`generator_term`.

    The fake batch for the critic step is generated under ``torch.no_grad`` so the critic
    update can never leak gradient into the generator.
    """

    trains_critic = True
    trains_generator = True

    def __init__(self, config: Any, ctx: Any = None) -> None:
        self.config = config
        self.r1_gamma = float(getattr(config, "r1_gamma", 0.0))
        self.aux_weight = float(getattr(config, "aux_classifier", 0.0))

    # -- what differs between objectives ----------------------------------------------------
    def critic_terms(self, d_real: Tensor, d_fake: Tensor) -> Tensor:
        raise NotImplementedError

    def generator_term(self, d_fake: Tensor) -> Tensor:
        raise NotImplementedError

    def extra_penalty(
        self, ctx: StepContext, real: Tensor, fake: Tensor
    ) -> tuple[Tensor | None, dict[str, Tensor]]:
        """A further critic regulariser (the WGAN-GP gradient penalty); none by default."""
        return None, {}

    # -- the auxiliary classifier (AC-GAN) ----------------------------------------------------
    def _aux_labels(self, ctx: StepContext, fake_labels: Tensor | None) -> None:
        if ctx.labels is None or fake_labels is None:
            raise UserError(
                "the loss's aux_classifier option (AC-GAN) trains a class head on real and "
                "generated samples, so it needs labelled data and a conditional generator "
                "(e.g. conditional = true in [generator]); set aux_classifier = 0 otherwise."
            )

    def _judge(
        self, ctx: StepContext, x: Tensor, labels: Tensor | None
    ) -> tuple[Tensor, Tensor | None]:
        """(scores, class logits or None when the aux classifier is off)."""
        if self.aux_weight > 0:
            return _scores_and_classes(ctx, x, labels)
        return _scores(ctx, x, labels), None

    # -- the two steps ------------------------------------------------------------------------
    def critic_loss(self, ctx: StepContext, real: Tensor) -> StepOutput:
        with torch.no_grad():
            fake_labels = ctx.fake_labels(real.shape[0])
            fake = ctx.fake(real.shape[0], fake_labels)
        fake = fake.detach()
        if self.aux_weight > 0:
            self._aux_labels(ctx, fake_labels)
        if self.r1_gamma > 0:
            real = real.detach().requires_grad_(True)
        d_real, c_real = self._judge(ctx, real, ctx.labels)
        d_fake, c_fake = self._judge(ctx, fake, fake_labels)
        loss = self.critic_terms(d_real, d_fake)
        logs: dict[str, Tensor | float] = {
            "d_real": d_real.detach().mean(),
            "d_fake": d_fake.detach().mean(),
        }
        if c_real is not None and c_fake is not None:
            assert ctx.labels is not None and fake_labels is not None
            aux = F.cross_entropy(c_real, ctx.labels) + F.cross_entropy(c_fake, fake_labels)
            loss = loss + self.aux_weight * aux
            logs["aux_loss"] = aux.detach()
            logs["aux_acc_real"] = (c_real.detach().argmax(1) == ctx.labels).float().mean()
        penalty, penalty_logs = self.extra_penalty(ctx, real.detach(), fake)
        if penalty is not None:
            loss = loss + penalty
        logs.update(penalty_logs)
        if self.r1_gamma > 0:
            r1 = _input_grad_norms(d_real, real).mean()
            loss = loss + 0.5 * self.r1_gamma * r1
            logs["r1"] = r1.detach()
        logs["d_loss"] = loss.detach()
        return StepOutput(loss, logs)

    def generator_loss(self, ctx: StepContext, real: Tensor) -> StepOutput:
        fake_labels = ctx.fake_labels(real.shape[0])
        if self.aux_weight > 0:
            self._aux_labels(ctx, fake_labels)
        d_fake, c_fake = self._judge(ctx, ctx.fake(real.shape[0], fake_labels), fake_labels)
        loss = self.generator_term(d_fake)
        logs: dict[str, Tensor | float] = {}
        if c_fake is not None:
            assert fake_labels is not None
            aux = F.cross_entropy(c_fake, fake_labels)
            loss = loss + self.aux_weight * aux
            logs["g_aux_loss"] = aux.detach()
            logs["aux_acc_fake"] = (c_fake.detach().argmax(1) == fake_labels).float().mean()
        logs["g_loss"] = loss.detach()
        return StepOutput(loss, logs)


class NonSaturating(AdversarialObjective):
    """Goodfellow et al.'s practical variant: the generator maximises log D(G(z))."""

    def critic_terms(self, d_real: Tensor, d_fake: Tensor) -> Tensor:
        return F.softplus(-d_real).mean() + F.softplus(d_fake).mean()

    def generator_term(self, d_fake: Tensor) -> Tensor:
        return F.softplus(-d_fake).mean()


class Minimax(NonSaturating):
    """The original saturating game: the generator minimises log(1 - sigmoid(D(G(z)))),
    which equals -softplus(D(G(z)))."""

    def generator_term(self, d_fake: Tensor) -> Tensor:
        return -F.softplus(d_fake).mean()


class _Wasserstein(AdversarialObjective):
    """The critic estimates E[D(real)] - E[D(fake)]; logged as ``wasserstein``."""

    def critic_terms(self, d_real: Tensor, d_fake: Tensor) -> Tensor:
        return d_fake.mean() - d_real.mean()

    def generator_term(self, d_fake: Tensor) -> Tensor:
        return -d_fake.mean()

    def critic_loss(self, ctx: StepContext, real: Tensor) -> StepOutput:
        out = super().critic_loss(ctx, real)
        logs = dict(out.logs)
        logs["wasserstein"] = logs["d_real"] - logs["d_fake"]
        return StepOutput(out.loss, logs)


class WassersteinClipped(_Wasserstein):
    """WGAN with weight clipping (Arjovsky et al., 2017).

    Clipping must happen after the critic's optimizer step, which the core performs, so this
    objective offers ``after_critic_step(ctx)``: the core calls it (when an objective has it)
    right after every critic optimizer step.
    """

    def __init__(self, config: Any, ctx: Any = None) -> None:
        super().__init__(config, ctx)
        self.clip = float(getattr(config, "clip", 0.01))

    @torch.no_grad()
    def after_critic_step(self, ctx: StepContext) -> None:
        assert ctx.critic is not None
        for p in ctx.critic.parameters():
            p.clamp_(-self.clip, self.clip)


class WassersteinGP(_Wasserstein):
    """WGAN-GP (Gulrajani et al., 2017): penalise each interpolate's gradient norm away from 1.

    The norm is taken per sample, as the 1-Lipschitz constraint is about each point; a norm of
    the whole batch's gradient would grow with the batch size. A conditional critic scores
    the interpolates with the real labels.
    """

    def __init__(self, config: Any, ctx: Any = None) -> None:
        super().__init__(config, ctx)
        self.gp_lambda = float(getattr(config, "gp_lambda", 10.0))

    def extra_penalty(
        self, ctx: StepContext, real: Tensor, fake: Tensor
    ) -> tuple[Tensor | None, dict[str, Tensor]]:
        shape = (real.shape[0],) + (1,) * (real.dim() - 1)
        alpha = torch.rand(shape, device=real.device, dtype=real.dtype)
        mixed = (alpha * real + (1 - alpha) * fake.to(real.dtype)).requires_grad_(True)
        # a tiny epsilon keeps the sqrt differentiable when a gradient is exactly zero
        norms = (_input_grad_norms(_scores(ctx, mixed, ctx.labels), mixed) + 1e-12).sqrt()
        gp = (norms - 1).pow(2).mean()
        return self.gp_lambda * gp, {"gp": gp.detach(), "grad_norm": norms.detach().mean()}


class Hinge(AdversarialObjective):
    """Hinge loss (Lim & Ye 2017; used by SAGAN/BigGAN): the critic only cares about margins."""

    def critic_terms(self, d_real: Tensor, d_fake: Tensor) -> Tensor:
        return F.relu(1 - d_real).mean() + F.relu(1 + d_fake).mean()

    def generator_term(self, d_fake: Tensor) -> Tensor:
        return -d_fake.mean()


class LeastSquares(AdversarialObjective):
    """LSGAN (Mao et al., 2017) with targets real=1, fake=0 and generator target 1."""

    def critic_terms(self, d_real: Tensor, d_fake: Tensor) -> Tensor:
        return 0.5 * (d_real - 1).pow(2).mean() + 0.5 * d_fake.pow(2).mean()

    def generator_term(self, d_fake: Tensor) -> Tensor:
        return 0.5 * (d_fake - 1).pow(2).mean()
