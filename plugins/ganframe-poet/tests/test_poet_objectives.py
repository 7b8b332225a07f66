"""MLE learns, the Gumbel schedule anneals as documented, the critic objectives train critics."""

from __future__ import annotations

import itertools
import math

import pytest
import torch
from ganframe_poet.configs import (
    CNNCriticConfig,
    GumbelConfig,
    LSTMGeneratorConfig,
    MLEConfig,
    PoemsConfig,
)
from ganframe_poet.critics import build_cnn_critic
from ganframe_poet.data import build_poems
from ganframe_poet.generator import build_lstm_generator
from ganframe_poet.objectives import MLE, Gumbel, SeqGAN, SeqGANCritic

from ganframe.components import StepContext


@pytest.fixture
def setup(corpus, build_ctx):
    cfg = PoemsConfig(path=str(corpus))

    def build_data(c):
        return build_poems(c, build_ctx())

    data = build_data(cfg)
    ctx = build_ctx(data_info=data.info(), data_config=cfg, build_data=build_data)
    torch.manual_seed(0)
    gen = build_lstm_generator(
        LSTMGeneratorConfig(embedding_dim=16, hidden_dim=48, num_layers=1, dropout=0.0), ctx
    )
    critic = build_cnn_critic(CNNCriticConfig(embedding_dim=8, filters=8, widths=[2, 3]), ctx)
    return data, ctx, gen, critic


def test_mle_lowers_train_and_test_nll(setup):
    data, ctx, gen, _ = setup
    obj = MLE(MLEConfig(eval_every=1000), ctx)
    assert obj.trains_generator and not obj.trains_critic
    opt = torch.optim.Adam(gen.parameters(), lr=1e-2)
    g = torch.Generator().manual_seed(0)
    logs = []
    steps = 40
    for step in range(steps):
        real = data.get(torch.randint(0, len(data), (32,), generator=g))
        out = obj.generator_loss(StepContext(gen, None, torch.device("cpu"), step, step, steps),
                                 real)
        opt.zero_grad()
        out.loss.backward()
        opt.step()
        logs.append({k: float(v) for k, v in out.logs.items()})
    assert set(logs[0]) == set(logs[-1]) == {"nll", "test_nll"}
    # Uniform over ~45 tokens is log(45) = 3.8 nats; the walk-through-the-list corpus
    # is far more predictable than that once learned.
    assert logs[0]["nll"] > 3.5
    assert logs[-1]["nll"] < 0.6 * logs[0]["nll"]
    # The test NLL was measured at step 0 and again at the phase's last step.
    assert logs[-1]["test_nll"] < 0.6 * logs[0]["test_nll"]


def test_gumbel_inverse_temperature_grows_exponentially_to_the_maximum(setup):
    _, _, gen, critic = setup
    obj = Gumbel(GumbelConfig(max_inverse_temperature=64.0))
    assert obj.inverse_temperature(0.0) == pytest.approx(1.0)
    assert obj.inverse_temperature(0.5) == pytest.approx(8.0)
    assert obj.inverse_temperature(1.0) == pytest.approx(64.0)
    betas = [obj.inverse_temperature(p / 10) for p in range(11)]
    ratios = [b / a for a, b in itertools.pairwise(betas)]
    assert all(r == pytest.approx(64 ** 0.1) for r in ratios)
    # The logged value follows ctx.progress, i.e. phase_step / phase_steps.
    real = torch.zeros(4, 25, dtype=torch.long)
    ctx = StepContext(gen, critic, torch.device("cpu"), 30, 25, 100)
    out = obj.generator_loss(ctx, real)
    assert out.logs["inverse_temperature"] == pytest.approx(math.sqrt(8.0))


@pytest.mark.parametrize("loss", ["rsgan", "standard"])
def test_gumbel_losses_reach_both_networks(setup, loss):
    data, _, gen, critic = setup
    obj = Gumbel(GumbelConfig(loss=loss))
    real = data.get(torch.arange(8))
    ctx = StepContext(gen, critic, torch.device("cpu"), 0, 0, 10)
    c_out = obj.critic_loss(ctx, real)
    c_out.loss.backward()
    assert critic.out.weight.grad.abs().sum() > 0
    assert all(p.grad is None for p in gen.parameters())  # fakes were detached
    critic.zero_grad()
    g_out = obj.generator_loss(ctx, real)
    g_out.loss.backward()
    assert gen.head.weight.grad.abs().sum() > 0


def test_critic_pretraining_learns_to_tell_real_from_generated(setup):
    data, _, gen, critic = setup
    obj = SeqGANCritic()
    assert obj.trains_critic and not obj.trains_generator
    assert SeqGAN().trains_critic and SeqGAN().trains_generator
    opt = torch.optim.Adam(critic.parameters(), lr=1e-2)
    g = torch.Generator().manual_seed(0)
    accs = []
    for step in range(30):
        real = data.get(torch.randint(0, len(data), (32,), generator=g))
        out = obj.critic_loss(StepContext(gen, critic, torch.device("cpu"), step, step, 30),
                              real)
        opt.zero_grad()
        out.loss.backward()
        opt.step()
        accs.append(float(out.logs["critic_acc"]))
    assert sum(accs[-5:]) / 5 > 0.75 > 0.6 > accs[0]
