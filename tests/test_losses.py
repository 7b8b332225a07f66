"""The standard adversarial objectives, checked against values worked out by hand.

The networks are chosen so every critic score is a known number: a one-weight critic
(``D(x) = w * sum(x)`` or ``w * sum(x**2)``) and a generator that always returns the same
tensor (plus a zero offset parameter, so we can see whether gradient reaches it).
"""

from __future__ import annotations

import importlib.util
import math
import subprocess
import sys

import pytest
import torch
from pydantic import ValidationError
from torch import nn

from ganframe.builtin.losses_plugin import register_losses
from ganframe.components import BuildContext, LatentGenerator, StepContext
from ganframe.registry import Registry, make_register

NAMES = ["non-saturating", "minimax", "wgan", "wgan-gp", "hinge", "lsgan"]


def sp(x: float) -> float:
    """softplus by hand"""
    return math.log(1 + math.exp(x))


class LinearCritic(nn.Module):
    """D(x) = w * sum(x) per sample, answered as (N, 1)."""

    def __init__(self, w: float) -> None:
        super().__init__()
        self.w = nn.Parameter(torch.tensor(w))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return (self.w * x.flatten(1).sum(1)).unsqueeze(1)


class SquareCritic(nn.Module):
    """D(x) = w * sum(x**2) per sample, answered as (N,); grad_x D = 2 w x."""

    def __init__(self, w: float) -> None:
        super().__init__()
        self.w = nn.Parameter(torch.tensor(w))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.w * x.flatten(1).pow(2).sum(1)


class FixedGenerator(LatentGenerator):
    """Always returns ``data`` (+ an offset parameter that starts at zero)."""

    def __init__(self, data: torch.Tensor) -> None:
        super().__init__()
        self.latent_dim = 3
        self.register_buffer("data", data.clone())
        self.offset = nn.Parameter(torch.zeros(data.shape[1:]))

    def forward(self, z: torch.Tensor) -> torch.Tensor:
        assert z.shape[0] == self.data.shape[0]
        return self.data + self.offset


def registry() -> Registry:
    reg = Registry()
    register_losses(register=make_register(reg, "loss", "ganframe.builtin.losses_plugin", "0"))
    return reg


def objective(name: str, **config: float):
    spec = registry().get("loss", name)
    return spec.build(spec.config_model()(**config), BuildContext())


def ctx_for(critic: nn.Module, fake: list) -> StepContext:
    gen = FixedGenerator(torch.tensor(fake))
    return StepContext(generator=gen, critic=critic, device=torch.device("cpu"))


# D outputs in the worked examples below: w = 0.5, real = [1, 2], fake = [-1, 3]
REAL = torch.tensor([[1.0], [2.0]])
FAKE = [[-1.0], [3.0]]
# d_real = [0.5, 1.0], d_fake = [-0.5, 1.5]
EXPECTED = {
    "non-saturating": (
        (sp(-0.5) + sp(-1.0)) / 2 + (sp(-0.5) + sp(1.5)) / 2,
        (sp(0.5) + sp(-1.5)) / 2,
    ),
    "minimax": (
        (sp(-0.5) + sp(-1.0)) / 2 + (sp(-0.5) + sp(1.5)) / 2,
        # log(1 - sigmoid(d)) = log(1 - 1/(1+e^-d))
        (math.log(1 - 1 / (1 + math.exp(0.5))) + math.log(1 - 1 / (1 + math.exp(-1.5)))) / 2,
    ),
    "wgan": ((-0.5 + 1.5) / 2 - (0.5 + 1.0) / 2, -(-0.5 + 1.5) / 2),
    "hinge": (
        (max(0, 1 - 0.5) + max(0, 1 - 1.0)) / 2 + (max(0, 1 - 0.5) + max(0, 1 + 1.5)) / 2,
        -(-0.5 + 1.5) / 2,
    ),
    "lsgan": (
        0.5 * ((0.5 - 1) ** 2 + (1.0 - 1) ** 2) / 2 + 0.5 * ((-0.5) ** 2 + 1.5**2) / 2,
        0.5 * ((-0.5 - 1) ** 2 + (1.5 - 1) ** 2) / 2,
    ),
}


@pytest.mark.parametrize("name", sorted(EXPECTED))
def test_losses_match_hand_computed_values(name: str) -> None:
    obj = objective(name)
    ctx = ctx_for(LinearCritic(0.5), FAKE)
    d_out = obj.critic_loss(ctx, REAL)
    g_out = obj.generator_loss(ctx, REAL)
    expected_d, expected_g = EXPECTED[name]
    assert d_out.loss.item() == pytest.approx(expected_d, abs=1e-6)
    assert g_out.loss.item() == pytest.approx(expected_g, abs=1e-6)
    assert float(d_out.logs["d_loss"]) == pytest.approx(expected_d, abs=1e-6)
    assert float(g_out.logs["g_loss"]) == pytest.approx(expected_g, abs=1e-6)
    assert float(d_out.logs["d_real"]) == pytest.approx(0.75)
    assert float(d_out.logs["d_fake"]) == pytest.approx(0.5)
    assert obj.trains_critic and obj.trains_generator


def test_wasserstein_estimate_is_logged() -> None:
    out = objective("wgan").critic_loss(ctx_for(LinearCritic(0.5), FAKE), REAL)
    assert float(out.logs["wasserstein"]) == pytest.approx(0.75 - 0.5)


def test_gradient_penalty_uses_per_sample_norms() -> None:
    # D(x) = 0.5 * sum(x^2) so grad_x D = x. With fake == real every interpolate equals the
    # real batch whatever alpha is drawn, so the gradients are exactly the rows below.
    rows = [[1.0, 0.0], [0.0, 3.0]]
    obj = objective("wgan-gp")
    out = obj.critic_loss(ctx_for(SquareCritic(0.5), rows), torch.tensor(rows))
    per_sample = ((1.0 - 1) ** 2 + (3.0 - 1) ** 2) / 2  # norms 1 and 3 -> 2.0
    whole_batch = (math.sqrt(1.0**2 + 3.0**2) - 1) ** 2  # one norm over the batch -> 4.675
    mean_norm = ((1.0 + 3.0) / 2 - 1) ** 2  # norm averaged first -> 1.0
    gp = float(out.logs["gp"])
    assert gp == pytest.approx(per_sample, abs=1e-5)
    assert gp != pytest.approx(whole_batch, abs=1e-2)
    assert gp != pytest.approx(mean_norm, abs=1e-2)
    # the Wasserstein part is 0 (same batch on both sides), so the loss is lambda * gp
    assert out.loss.item() == pytest.approx(10 * per_sample, abs=1e-4)


def test_gradient_penalty_with_linear_critic_and_distinct_fakes() -> None:
    # D(x) = 2 * sum(x): every sample's gradient is 2 whatever the interpolate, so the
    # per-sample penalty is (2 - 1)^2 = 1; a norm over the batch of 4 would give (4 - 1)^2.
    real = torch.tensor([[1.0], [2.0], [-1.0], [0.5]])
    obj = objective("wgan-gp", gp_lambda=3.0)
    out = obj.critic_loss(ctx_for(LinearCritic(2.0), [[0.0], [1.0], [4.0], [-2.0]]), real)
    assert float(out.logs["gp"]) == pytest.approx(1.0, abs=1e-5)
    wasserstein = 2 * (0.0 + 1.0 + 4.0 - 2.0) / 4 - 2 * (1.0 + 2.0 - 1.0 + 0.5) / 4
    assert out.loss.item() == pytest.approx(wasserstein + 3.0 * 1.0, abs=1e-5)


def test_gradient_penalty_interpolates_each_sample_between_real_and_fake() -> None:
    seen: list[torch.Tensor] = []

    class Recording(LinearCritic):
        def forward(self, x: torch.Tensor) -> torch.Tensor:
            seen.append(x.detach().clone())
            return super().forward(x)

    torch.manual_seed(0)
    real = torch.zeros(64, 2)
    objective("wgan-gp").critic_loss(ctx_for(Recording(1.0), [[1.0, 2.0]] * 64), real)
    mixed = seen[-1]  # real, fake, then the interpolates
    t = mixed[:, 0]  # = 1 - alpha per sample
    assert torch.allclose(mixed[:, 1], 2 * t)  # each point lies on its real->fake segment
    assert (t >= 0).all() and (t <= 1).all()
    assert t.std() > 0.1  # one alpha per sample, not one for the batch


def test_r1_penalty_by_hand() -> None:
    # D(x) = 0.5 * sum(x^2): grad_x D = x, squared norms of the real rows are 1 and 4.
    real = torch.tensor([[1.0, 0.0], [0.0, 2.0]])
    fake = [[1.0, 1.0], [0.0, 0.0]]  # d_fake = [1, 0]
    base = objective("hinge").critic_loss(ctx_for(SquareCritic(0.5), fake), real)
    critic = SquareCritic(0.5)
    out = objective("hinge", r1_gamma=2.0).critic_loss(ctx_for(critic, fake), real)
    r1 = (1.0 + 4.0) / 2
    assert float(out.logs["r1"]) == pytest.approx(r1)
    assert out.loss.item() == pytest.approx(base.loss.item() + 2.0 / 2 * r1, abs=1e-6)
    # the penalty trains the critic: d/dw [gamma/2 * 4 w^2 mean|x|^2] = gamma/2 * 8 w * mean|x|^2
    base_critic = SquareCritic(0.5)
    objective("hinge").critic_loss(ctx_for(base_critic, fake), real).loss.backward()
    out.loss.backward()
    mean_sq = (1.0 + 4.0) / 2
    extra = critic.w.grad.item() - base_critic.w.grad.item()
    assert extra == pytest.approx(1.0 * 8 * 0.5 * mean_sq)
    assert "r1" not in base.logs


@pytest.mark.parametrize("name", NAMES)
def test_r1_combines_with_every_loss(name: str) -> None:
    real = torch.tensor([[1.0, 0.0], [0.0, 2.0]])
    fake = [[1.0, 1.0], [0.0, 0.0]]
    torch.manual_seed(0)  # wgan-gp draws alphas; same draw for both runs
    base = objective(name).critic_loss(ctx_for(SquareCritic(0.5), fake), real)
    torch.manual_seed(0)
    out = objective(name, r1_gamma=0.5).critic_loss(ctx_for(SquareCritic(0.5), fake), real)
    assert out.loss.item() == pytest.approx(base.loss.item() + 0.25 * 2.5, abs=1e-5)


def test_wgan_clips_critic_weights_after_its_step() -> None:
    critic = nn.Linear(3, 1)
    with torch.no_grad():
        critic.weight.copy_(torch.tensor([[-1.0, 0.005, 0.5]]))
        critic.bias.fill_(-0.02)
    ctx = ctx_for(critic, [[0.0, 0.0, 0.0]])
    objective("wgan").after_critic_step(ctx)
    assert critic.weight[0].tolist() == pytest.approx([-0.01, 0.005, 0.01])
    assert critic.bias.tolist() == pytest.approx([-0.01])
    objective("wgan", clip=0.001).after_critic_step(ctx)
    assert critic.weight[0].tolist() == pytest.approx([-0.001, 0.001, 0.001])


def test_only_wgan_asks_for_clipping() -> None:
    assert [n for n in NAMES if hasattr(objective(n), "after_critic_step")] == ["wgan"]


@pytest.mark.parametrize("name", NAMES)
def test_critic_step_leaves_generator_without_gradient(name: str) -> None:
    critic = LinearCritic(0.5)
    ctx = ctx_for(critic, [[-1.0], [4.0]])
    obj = objective(name, r1_gamma=1.0)
    obj.critic_loss(ctx, REAL).loss.backward()
    assert ctx.generator.offset.grad is None
    assert critic.w.grad is not None and critic.w.grad.item() != 0
    critic.zero_grad()
    obj.generator_loss(ctx, REAL).loss.backward()
    assert ctx.generator.offset.grad is not None and ctx.generator.offset.grad.abs().sum() > 0


def test_configs_validate_their_keys() -> None:
    spec = registry().get("loss", "wgan-gp")
    model = spec.config_model()
    assert model().gp_lambda == 10.0 and model().r1_gamma == 0.0
    for bad in ({"gp_lambda": 0.0}, {"r1_gamma": -1.0}, {"lambda_gp": 5.0}):
        with pytest.raises(ValidationError):
            model(**bad)
    wgan = registry().get("loss", "wgan").config_model()
    assert wgan().clip == 0.01
    with pytest.raises(ValidationError):
        wgan(clip=0.0)
    with pytest.raises(ValidationError):
        registry().get("loss", "hinge").config_model()(clip=0.1)


def test_hookimpl_registers_all_six_with_lazy_factories_and_summaries() -> None:
    reg = registry()
    specs = reg.components["loss"]
    assert sorted(s.name for s in specs) == sorted(NAMES)
    for s in specs:
        assert isinstance(s.factory, str) and s.factory.startswith("ganframe.builtin.losses:")
        assert s.summary and "\n" not in s.summary
        for field in s.config_model().model_fields.values():
            assert field.description


def _default_plugins_importable() -> bool:
    from ganframe.plugins import DEFAULT_PLUGINS

    return all(importlib.util.find_spec(m) is not None for m in DEFAULT_PLUGINS)


@pytest.mark.skipif(
    not _default_plugins_importable(), reason="not every default plugin module exists yet"
)
def test_plugin_host_registers_the_losses() -> None:
    from ganframe.plugins import load_plugins

    host = load_plugins(autoload=False)
    losses = {
        s.name for s in host.registry.components["loss"]
        if s.plugin == "ganframe.builtin.losses_plugin"
    }
    assert losses == set(NAMES)
    spec = host.registry.get("loss", "wgan-gp")
    assert spec.config_model()(gp_lambda=5).gp_lambda == 5


def test_plugin_modules_do_not_import_torch() -> None:
    code = (
        "import sys; import ganframe.builtin.losses_plugin, ganframe.builtin.writers_plugin; "
        "print(sorted(m for m in ('torch', 'numpy', 'PIL') if m in sys.modules))"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "[]"
