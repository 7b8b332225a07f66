"""Training objectives for the poet, each run as a recipe phase.

* ``mle``: teacher-forced cross-entropy; the usual pre-training and a strong baseline.
* ``seqgan-critic``: the critic learns generated vs real poems; the generator rests.
* ``seqgan``: policy gradient (REINFORCE) with per-token rewards from batched Monte-Carlo
  rollouts of a delayed copy of the generator, scored by the critic; the critic keeps
  training on fresh fakes (Yu et al., 2017).
* ``gumbel``: the critic scores Gumbel-softmax relaxed poems, so its gradient reaches the
  generator directly; the inverse temperature grows exponentially over the phase (RelGAN,
  Nie et al., 2019).

The core does every backward pass and optimiser step; these classes only build losses.
"""

from __future__ import annotations

import contextlib
import copy
import math
from collections.abc import Iterator
from typing import Any

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from ganframe.components import StepContext, StepOutput
from ganframe_poet.configs import GumbelConfig, MLEConfig, SeqGANConfig, SeqGANCriticConfig
from ganframe_poet.rollout import rollout_rewards


@contextlib.contextmanager
def evaluating(module: nn.Module | None) -> Iterator[None]:
    """Dropout off for sampling or scoring, then back to whatever mode the core chose."""
    if module is None:
        yield
        return
    was = module.training
    module.eval()
    try:
        yield
    finally:
        module.train(was)


def _bce(logits: Tensor, target: float) -> Tensor:
    logits = logits.reshape(-1).float()
    return F.binary_cross_entropy_with_logits(logits, torch.full_like(logits, target))


def _critic(ctx: StepContext) -> nn.Module:
    if ctx.critic is None:
        raise RuntimeError("this objective needs a critic")
    return ctx.critic


def _generated(ctx: StepContext, n: int, temperature: float = 1.0) -> Tensor:
    """Token ids from the generator as it samples (eval mode), without gradients."""
    with torch.no_grad(), evaluating(ctx.generator):
        return ctx.generator.generate(n, device=ctx.device, temperature=temperature)


class MLE:
    """Maximum likelihood with teacher forcing. Logs the batch NLL and, every
    ``eval_every`` phase steps (and at the phase's last step), the NLL of the first
    ``eval_poems`` test poems, repeated in between so every logged row has the same keys."""

    trains_critic = False
    trains_generator = True

    def __init__(self, config: MLEConfig | None = None, ctx: Any = None) -> None:
        self.config = config or MLEConfig()
        self._build = ctx
        self._test: Tensor | None = None
        self._test_ready = False
        self._test_nll: float | None = None
        self._evaluated_at: int | None = None

    def _test_tokens(self, device: torch.device) -> Tensor | None:
        if not self._test_ready:
            self._test_ready = True
            ctx = self._build
            data_config = getattr(ctx, "data_config", None)
            build_data = getattr(ctx, "build_data", None)
            if build_data is not None and data_config is not None and hasattr(
                data_config, "split"
            ):
                test = build_data(data_config.model_copy(
                    update={"split": "test", "limit": self.config.eval_poems}))
                self._test = test.get(torch.arange(len(test)))
        return None if self._test is None else self._test.to(device)

    def _maybe_eval(self, ctx: StepContext) -> None:
        every = self.config.eval_every
        if not every:
            return
        due = (
            self._evaluated_at is None
            or ctx.phase_step - self._evaluated_at >= every
            or ctx.phase_step >= ctx.phase_steps - 1
        )
        if not due:
            return
        tokens = self._test_tokens(ctx.device)
        if tokens is None:
            return
        with torch.no_grad(), evaluating(ctx.generator):
            total = torch.zeros(2, device=ctx.device)
            for part in tokens.split(256):
                total += ctx.generator.token_nll(part).float()
        self._test_nll = float(total[0] / total[1].clamp_min(1))
        self._evaluated_at = ctx.phase_step

    def state_dict(self) -> dict[str, Tensor]:
        """The test-NLL schedule, so a resumed run logs exactly what an unbroken one does."""
        at = -1 if self._evaluated_at is None else self._evaluated_at
        nll = float("nan") if self._test_nll is None else self._test_nll
        return {
            "evaluated_at": torch.tensor([at], dtype=torch.int64),
            "test_nll": torch.tensor([nll], dtype=torch.float64),
        }

    def load_state_dict(self, state: dict[str, Tensor]) -> None:
        if "evaluated_at" not in state:  # e.g. a checkpoint from another phase's objective
            return
        at = int(state["evaluated_at"][0])
        nll = float(state["test_nll"][0])
        self._evaluated_at = None if at < 0 else at
        self._test_nll = None if nll != nll else nll

    def critic_loss(self, ctx: StepContext, real: Tensor) -> StepOutput:
        raise RuntimeError("mle does not train a critic")

    def generator_loss(self, ctx: StepContext, real: Tensor) -> StepOutput:
        self._maybe_eval(ctx)
        nll = ctx.generator.nll(real)
        logs: dict[str, Tensor | float] = {"nll": nll.detach()}
        if self._test_nll is not None:
            logs["test_nll"] = self._test_nll
        return StepOutput(nll, logs)


class SeqGANCritic:
    """Binary cross-entropy of the critic on a real batch and as many generated poems."""

    trains_critic = True
    trains_generator = False

    def __init__(self, config: Any = None, ctx: Any = None) -> None:
        self.config = config or SeqGANCriticConfig()

    def critic_loss(self, ctx: StepContext, real: Tensor) -> StepOutput:
        critic = _critic(ctx)
        fake = _generated(ctx, real.shape[0], self.config.temperature)
        d_real, d_fake = critic(real).reshape(-1), critic(fake).reshape(-1)
        loss = (_bce(d_real, 1.0) + _bce(d_fake, 0.0)) / 2
        acc = ((d_real > 0).float().mean() + (d_fake < 0).float().mean()) / 2
        return StepOutput(loss, {"critic_loss": loss.detach(), "critic_acc": acc.detach()})

    def generator_loss(self, ctx: StepContext, real: Tensor) -> StepOutput:
        raise RuntimeError("seqgan-critic does not train the generator")


class SeqGAN(SeqGANCritic):
    """Policy gradient on generated poems, each token weighted by its own prefix's reward.

    The rollout network is a delayed copy of the generator (SeqGAN's ``update_rate``): at
    each generator step it moves ``1 - rollout_update`` of the way to the current weights.
    Its weights are this objective's state, saved in checkpoints.
    """

    trains_critic = True
    trains_generator = True

    def __init__(self, config: SeqGANConfig | None = None, ctx: Any = None) -> None:
        super().__init__(config or SeqGANConfig(), ctx)
        self.rollout: nn.Module | None = None
        self._pending: dict[str, Tensor] | None = None

    # -- state ------------------------------------------------------------------------------
    def state_dict(self) -> dict[str, Tensor]:
        if self.rollout is None:
            return {f"rollout.{k}": v for k, v in (self._pending or {}).items()}
        return {f"rollout.{k}": v.detach().clone() for k, v in self.rollout.state_dict().items()}

    def load_state_dict(self, state: dict[str, Tensor]) -> None:
        weights = {k[len("rollout."):]: v for k, v in state.items() if k.startswith("rollout.")}
        if not weights:
            return
        if self.rollout is None:
            self._pending = weights
        else:
            self.rollout.load_state_dict(weights)

    def rollout_net(self, generator: nn.Module) -> nn.Module:
        """The delayed copy, moved toward ``generator`` (a plain copy on first use)."""
        if self.rollout is None:
            self.rollout = copy.deepcopy(generator).requires_grad_(False).eval()
            if self._pending is None:
                return self.rollout
            self.rollout.load_state_dict(self._pending)
            self._pending = None
        keep = self.config.rollout_update
        with torch.no_grad():
            for mine, theirs in zip(
                self.rollout.parameters(), generator.parameters(), strict=True
            ):
                mine.lerp_(theirs.detach(), 1.0 - keep)
        return self.rollout

    # -- losses -----------------------------------------------------------------------------
    def rewards(self, ctx: StepContext, x: Tensor) -> Tensor:
        critic = _critic(ctx)
        net = self.rollout_net(ctx.generator)

        def score(seqs: Tensor) -> Tensor:
            return torch.sigmoid(critic(seqs).reshape(-1).float())

        with evaluating(critic):
            return rollout_rewards(
                net, score, x, self.config.rollouts, chunk=self.config.chunk,
                temperature=self.config.temperature,
            )

    def generator_loss(self, ctx: StepContext, real: Tensor) -> StepOutput:
        gen = ctx.generator
        n = self.config.samples or real.shape[0]
        x = _generated(ctx, n, self.config.temperature)
        rewards = self.rewards(ctx, x)
        mask = (x != gen.pad).float()
        if self.config.baseline == "mean":
            base = (rewards * mask).sum(0) / mask.sum(0).clamp_min(1)
            advantage = rewards - base
        else:
            advantage = rewards
        logits = gen(x).float() / self.config.temperature
        logp = torch.log_softmax(logits, dim=-1).gather(2, x.unsqueeze(2)).squeeze(2)
        count = mask.sum().clamp_min(1)
        loss = -(logp * advantage * mask).sum() / count
        with torch.no_grad():
            real_nll = gen.nll(real)
        logs = {
            "pg_loss": loss.detach(),
            "reward": (rewards * mask).sum() / count,
            "nll": real_nll,
        }
        return StepOutput(loss, logs)


class Gumbel:
    """GAN through Gumbel-softmax relaxed poems with an exponentially annealed inverse
    temperature ``beta = max_inverse_temperature ** progress`` (1 at the phase start)."""

    trains_critic = True
    trains_generator = True

    def __init__(self, config: GumbelConfig | None = None, ctx: Any = None) -> None:
        self.config = config or GumbelConfig()

    def inverse_temperature(self, progress: float) -> float:
        return math.exp(math.log(self.config.max_inverse_temperature) * progress)

    def _fake(self, ctx: StepContext, n: int) -> Tensor:
        return ctx.generator.relaxed(
            n, inverse_temperature=self.inverse_temperature(ctx.progress), device=ctx.device,
            hard=self.config.hard,
        )

    def critic_loss(self, ctx: StepContext, real: Tensor) -> StepOutput:
        critic = _critic(ctx)
        with torch.no_grad():
            fake = self._fake(ctx, real.shape[0])
        d_real, d_fake = critic(real).reshape(-1).float(), critic(fake).reshape(-1).float()
        if self.config.loss == "rsgan":
            loss = _bce(d_real - d_fake, 1.0)
        else:
            loss = (_bce(d_real, 1.0) + _bce(d_fake, 0.0)) / 2
        return StepOutput(loss, {"critic_loss": loss.detach()})

    def generator_loss(self, ctx: StepContext, real: Tensor) -> StepOutput:
        critic = _critic(ctx)
        fake = self._fake(ctx, real.shape[0])
        d_fake = critic(fake).reshape(-1).float()
        if self.config.loss == "rsgan":
            with torch.no_grad():
                d_real = critic(real).reshape(-1).float()
            loss = _bce(d_fake - d_real, 1.0)
        else:
            loss = _bce(d_fake, 1.0)
        with torch.no_grad():
            real_nll = ctx.generator.nll(real)
        logs = {
            "g_loss": loss.detach(),
            "inverse_temperature": self.inverse_temperature(ctx.progress),
            "nll": real_nll,
        }
        return StepOutput(loss, logs)
