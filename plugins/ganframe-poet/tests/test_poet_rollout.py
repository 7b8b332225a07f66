"""Batched Monte-Carlo rollouts: every token gets the reward of its own prefix."""

from __future__ import annotations

import torch
from ganframe_poet.configs import SeqGANConfig, SeqGANCriticConfig
from ganframe_poet.generator import LSTMPoet
from ganframe_poet.objectives import SeqGAN
from ganframe_poet.rollout import complete_prefixes, rollout_rewards

from ganframe.components import StepContext

V, PAD, UNK, START, END = 30, 0, 1, 2, 3
FILLER = 4


def tiny_net(seed: int = 0, max_len: int = 7) -> LSTMPoet:
    torch.manual_seed(seed)
    return LSTMPoet(V, start=START, end=END, pad=PAD, unk=UNK, max_len=max_len,
                    embedding_dim=8, hidden_dim=12, num_layers=2, dropout=0.0).eval()


def filler_net() -> LSTMPoet:
    """A rollout policy that always writes FILLER, so a completion reveals its prefix."""
    net = tiny_net()
    with torch.no_grad():
        net.head.weight.zero_()
        net.head.bias.fill_(-50.0)
        net.head.bias[FILLER] = 50.0
    return net


def sequences(n: int, length: int, seed: int = 1) -> torch.Tensor:
    g = torch.Generator().manual_seed(seed)
    return torch.randint(5, V, (n, length), generator=g)  # no specials, no FILLER


def test_each_token_is_credited_with_its_own_prefix():
    n, length, rollouts = 5, 8, 3
    x = sequences(n, length)
    weights = torch.arange(1, length + 1, dtype=torch.float) * 0.01

    def score(seqs):
        # Depends on the row's content and on how long the kept prefix is: sum over the
        # non-filler positions of weight[pos] * token. Any mix-up of rows or positions shows.
        keep = (seqs != FILLER).float()
        return (keep * seqs.float() * weights).sum(dim=1)

    r = rollout_rewards(filler_net(), score, x, rollouts)
    assert r.shape == (n, length)
    expected = torch.cumsum(x.float() * weights, dim=1)  # prefix of length t+1 for token t
    assert torch.allclose(r, expected, atol=1e-4)
    # The classic bug (viewing the (T-1, N) prefix-major rewards as (N, T-1)) disagrees.
    prefix_major = expected[:, :-1].t().contiguous()
    scrambled = torch.cat([prefix_major.view(n, length - 1), expected[:, -1:]], dim=1)
    assert not torch.allclose(scrambled, expected, atol=1e-4)


def greedy_mismatches(net: LSTMPoet, x: torch.Tensor, done: torch.Tensor) -> int:
    """Completions (of ``complete_prefixes``) that differ from greedy decoding."""
    rollouts, n = done.shape[1], x.shape[0]
    ban = net.sampling_mask(0, False)
    wrong = 0
    for t in range(1, 8):
        for b in range(n):
            state = None
            prev = torch.tensor([START])
            for s in range(t):
                _, state = net.step(prev, state)
                prev = x[b, s : s + 1]
            seq = x[b, :t].tolist()
            alive = END not in seq
            for _ in range(t, 8):
                logits, state = net.step(prev, state)
                tok = int((logits[0] + ban).argmax()) if alive else PAD
                alive = alive and tok != END
                seq.append(tok)
                prev = torch.tensor([tok])
            wrong += sum(done[t - 1, r, b].tolist() != seq for r in range(rollouts))
    return wrong


def test_rollouts_follow_the_policy_temperature():
    """A tempered policy (seqgan's ``temperature``) samples its rollouts from
    softmax(logits / T), both the step that joins a prefix and the steps under way: near
    T = 0 every completion is the greedy one, at T = 1 most are not."""
    net = tiny_net(3)
    x = sequences(4, 8, seed=5)
    cold = complete_prefixes(net, x, 2, rng=torch.Generator().manual_seed(0), temperature=1e-6)
    assert greedy_mismatches(net, x, cold) == 0
    warm = complete_prefixes(net, x, 2, rng=torch.Generator().manual_seed(0))
    assert greedy_mismatches(net, x, warm) > 20  # of 56


def test_completions_keep_the_prefix_and_match_a_naive_loop():
    net = tiny_net(3)
    with torch.no_grad():  # nearly deterministic: sampling becomes argmax
        net.head.weight.mul_(1e5)
        net.head.bias.mul_(1e5)
    n, rollouts = 4, 2
    x = sequences(n, 8, seed=5)
    done = complete_prefixes(net, x, rollouts, rng=torch.Generator().manual_seed(0))
    assert done.shape == (7, rollouts, n, 8)
    for t in range(1, 8):
        assert torch.equal(done[t - 1, :, :, :t], x[:, :t].expand(rollouts, n, t))
    # The naive way, one row at a time: feed start + the prefix, then decode greedily.
    assert greedy_mismatches(net, x, done) == 0


def test_rollouts_after_the_end_token_are_padding():
    net = tiny_net(2)
    x = sequences(3, 8)
    x[0, 2] = END
    x[0, 3:] = PAD
    done = complete_prefixes(net, x, 4)
    # Every prefix of row 0 that already contains END completes as pure padding.
    for t in range(3, 8):
        assert torch.equal(done[t - 1, :, 0], x[0].expand(4, 8))


class _Critic(torch.nn.Module):
    def __init__(self):
        super().__init__()
        self.w = torch.nn.Parameter(torch.zeros(1))

    def forward(self, seqs):
        return (seqs == 7).float().sum(1) + self.w


def test_seqgan_loss_gradient_and_rollout_state_round_trip():
    gen = tiny_net(4).train()
    critic = _Critic()
    obj = SeqGAN(SeqGANConfig(rollouts=2, rollout_update=0.5))
    ctx = StepContext(gen, critic, torch.device("cpu"), 0, 0, 10)
    real = sequences(6, 8)
    out = obj.generator_loss(ctx, real)
    out.loss.backward()
    assert gen.head.weight.grad.abs().sum() > 0
    assert set(out.logs) == {"pg_loss", "reward", "nll"}
    # The rollout copy starts equal to the generator...
    state = obj.state_dict()
    assert torch.equal(state["rollout.head.weight"], gen.head.weight)
    # ...and then moves halfway toward it per generator step (a delayed copy).
    old = gen.head.weight.detach().clone()
    with torch.no_grad():
        gen.head.weight.add_(1.0)
    obj.rollout_net(gen)
    assert torch.allclose(obj.rollout.head.weight, old + 0.5)
    # Restored into a fresh objective, the state is applied when the copy is first made.
    fresh = SeqGAN(SeqGANConfig(rollouts=2, rollout_update=0.5))
    fresh.load_state_dict(obj.state_dict())
    assert torch.allclose(fresh.state_dict()["rollout.head.weight"], old + 0.5)
    fresh.rollout_net(gen)
    assert torch.allclose(fresh.rollout.head.weight, old + 0.75)


def test_tempered_policy_gradient_uses_the_tempered_log_probabilities(monkeypatch):
    """With ``temperature = T`` the loss is -mean(log softmax(logits / T)[x] * advantage):
    the gradient of the distribution that was sampled, not of the untempered model."""
    import ganframe_poet.objectives as objectives

    gen = tiny_net(4).train()
    x = sequences(6, 8, seed=9)
    adv = torch.linspace(-1.0, 1.0, 48).view(6, 8)
    seen = {}

    def fake_generated(ctx, n, temperature=1.0):
        seen["temperature"] = temperature
        return x

    monkeypatch.setattr(objectives, "_generated", fake_generated)
    for t in (1.0, 0.5):
        obj = SeqGAN(SeqGANConfig(rollouts=2, baseline="none", temperature=t))
        monkeypatch.setattr(obj, "rewards", lambda ctx, seqs: adv)
        ctx = StepContext(gen, _Critic(), torch.device("cpu"), 0, 0, 10)
        loss = obj.generator_loss(ctx, sequences(6, 8)).loss
        logp = torch.log_softmax(gen(x).float() / t, -1).gather(2, x.unsqueeze(2)).squeeze(2)
        assert seen["temperature"] == t
        assert torch.allclose(loss, -(logp * adv).mean(), atol=1e-6)
        seen.clear()
        objectives.SeqGANCritic(SeqGANCriticConfig(temperature=t)).critic_loss(ctx, x)
        assert seen["temperature"] == t  # critic pre-training sees the same distribution
