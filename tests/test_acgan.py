"""The AC-GAN option of the standard losses (``[loss] aux_classifier``): a critic with a class
head (``score_and_classes``) learns the classes, and the generator learns to draw the class it
is asked for even when the critic's score itself ignores labels: with the option off, the
same networks leave the labels unused."""

from __future__ import annotations

import pytest
import torch
from torch import nn

from ganframe.builtin.losses import Hinge, NonSaturating, WassersteinGP
from ganframe.builtin.toy import MLPGenerator, ring_centres
from ganframe.components import StepContext
from ganframe.errors import UserError

MODES = 4


class _AuxCritic(nn.Module):
    """Unconditional score plus a linear class head on the same features (AC-GAN)."""

    def __init__(self, classes: int = MODES) -> None:
        super().__init__()
        self.body = nn.Sequential(nn.Linear(2, 64), nn.LeakyReLU(0.2), nn.Linear(64, 64),
                                  nn.LeakyReLU(0.2))
        self.score_head = nn.Linear(64, 1)
        self.aux_head = nn.Linear(64, classes)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.score_head(self.body(x)).view(-1)

    def score_and_classes(self, x, labels=None):
        h = self.body(x)
        return self.score_head(h).view(-1), self.aux_head(h)


class _Config:
    def __init__(self, aux: float) -> None:
        self.aux_classifier = aux
        self.r1_gamma = 0.0


def _label_accuracy(aux: float, steps: int = 120) -> tuple[float, dict]:
    torch.manual_seed(0)
    centres = ring_centres(MODES, 2.0)
    gen = MLPGenerator(8, 2, 64, 2, num_classes=MODES)
    critic = _AuxCritic()
    opt_g = torch.optim.Adam(gen.parameters(), 2e-3, betas=(0.5, 0.99))
    opt_d = torch.optim.Adam(critic.parameters(), 2e-3, betas=(0.5, 0.99))
    obj = NonSaturating(_Config(aux))
    logs = {}
    for step in range(steps):
        labels = torch.randint(MODES, (128,))
        real = centres[labels] + 0.05 * torch.randn(128, 2)
        ctx = StepContext(gen, critic, torch.device("cpu"), step, step, steps, labels=labels)
        out = obj.critic_loss(ctx, real)
        opt_d.zero_grad()
        out.loss.backward()
        opt_d.step()
        critic.requires_grad_(False)
        g_out = obj.generator_loss(ctx, real)
        opt_g.zero_grad()
        g_out.loss.backward()
        opt_g.step()
        critic.requires_grad_(True)
        logs = {**out.logs, **g_out.logs}
    want = torch.arange(MODES).repeat(100)
    with torch.no_grad():
        x = gen.generate(len(want), device="cpu", rng=torch.Generator().manual_seed(1),
                         labels=want)
    nearest = torch.cdist(x, centres).argmin(1)
    return float((nearest == want).float().mean()), logs


def test_the_aux_term_makes_the_generator_draw_the_requested_class():
    without, logs_off = _label_accuracy(0.0)
    with_aux, logs_on = _label_accuracy(1.0)
    assert "aux_loss" not in logs_off and "g_aux_loss" not in logs_off
    assert float(logs_on["aux_acc_real"]) > 0.9 and float(logs_on["aux_acc_fake"]) > 0.9
    # measured: 1.0 with the term, 0.49 without (chance: 0.25)
    assert with_aux > 0.9 and with_aux > without + 0.3, (with_aux, without)


@pytest.mark.parametrize("objective", [Hinge, WassersteinGP])
def test_every_standard_loss_takes_the_option(objective):
    torch.manual_seed(0)
    gen, critic = MLPGenerator(8, 2, 16, 1, num_classes=MODES), _AuxCritic()
    labels = torch.randint(MODES, (16,))
    ctx = StepContext(gen, critic, torch.device("cpu"), labels=labels)
    config = _Config(0.5)
    config.gp_lambda = 10.0
    out = objective(config).critic_loss(ctx, torch.randn(16, 2))
    assert "aux_loss" in out.logs
    out.loss.backward()
    assert critic.aux_head.weight.grad.abs().sum() > 0


def test_missing_pieces_are_clear_errors():
    labels = torch.randint(MODES, (8,))
    plain_gen = MLPGenerator(8, 2, 16, 1)
    ctx = StepContext(plain_gen, _AuxCritic(), torch.device("cpu"), labels=labels)
    with pytest.raises(UserError, match="conditional generator"):
        NonSaturating(_Config(1.0)).critic_loss(ctx, torch.randn(8, 2))
    headless = nn.Sequential(nn.Linear(2, 1))
    ctx = StepContext(MLPGenerator(8, 2, 16, 1, num_classes=MODES), headless,
                      torch.device("cpu"), labels=labels)
    with pytest.raises(UserError, match="auxiliary class head"):
        NonSaturating(_Config(1.0)).generator_loss(ctx, torch.randn(8, 2))
