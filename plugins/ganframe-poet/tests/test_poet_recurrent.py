"""The fp32 fallback for recurrent layers under CPU bf16 autocast (CPUs whose oneDNN has no
bf16 LSTM) and its once-per-process probe."""

from __future__ import annotations

import pytest
import torch
from ganframe_poet import recurrent
from ganframe_poet.critics import LSTMCritic
from ganframe_poet.generator import LSTMPoet
from ganframe_poet.recurrent import cpu_autocast_rnn_supported, run_recurrent

BF16 = torch.bfloat16


def small_poet() -> LSTMPoet:
    torch.manual_seed(0)
    # dropout 0: the bf16 and fp32 passes below must see the same network
    return LSTMPoet(30, start=2, end=3, pad=0, unk=1, max_len=6, embedding_dim=8,
                    hidden_dim=16, num_layers=2, dropout=0.0)


@pytest.fixture
def forced_fallback(monkeypatch):
    """As on a CPU whose oneDNN cannot run a bf16 LSTM, whatever this CPU can do."""
    monkeypatch.setattr(recurrent, "_SUPPORTED", {BF16: False})

    def no_probe(dtype):
        raise AssertionError("the probe result was set; it must not run again")

    monkeypatch.setattr(recurrent, "_probe", no_probe)


def test_fallback_generator_forward_backward_match_fp32(forced_fallback):
    net = small_poet()
    tokens = torch.randint(4, 30, (5, 7), generator=torch.Generator().manual_seed(1))
    start = torch.full_like(tokens[:, :1], net.start)
    emb = net.embed(torch.cat([start, tokens[:, :-1]], dim=1))

    ref_out, _ = net.lstm(emb)
    ref_logits = net(tokens)
    ref_logits.sum().backward()
    ref_grads = {k: p.grad.clone() for k, p in net.named_parameters()}
    net.zero_grad()

    with torch.autocast("cpu", dtype=BF16):
        out, (h, c) = run_recurrent(net.lstm, emb)
        logits = net(tokens)
    # The recurrent layer itself ran in fp32 on the same (fp32) embeddings ...
    assert out.dtype == h.dtype == c.dtype == torch.float32
    torch.testing.assert_close(out, ref_out)
    # ... and the output layer still in bf16.
    assert logits.dtype == BF16
    torch.testing.assert_close(logits.float(), ref_logits, atol=0.05, rtol=0.02)
    logits.float().sum().backward()
    for name, p in net.named_parameters():
        assert p.grad is not None and torch.isfinite(p.grad).all(), name
        if name.startswith("lstm."):
            torch.testing.assert_close(p.grad, ref_grads[name], atol=0.1, rtol=0.05)


def test_fallback_step_state_sampling_and_lstm_critic(forced_fallback):
    net = small_poet().eval()
    prev = torch.full((3,), net.start)
    ref, ref_state = net.step(prev, None)
    ref2, _ = net.step(prev, ref_state)
    with torch.autocast("cpu", dtype=BF16):
        logits, state = net.step(prev, None)
        # a bf16 state (as the native path returns) goes back in as float32
        logits2, _ = net.step(prev, (state[0].to(BF16), state[1].to(BF16)))
        poems = net.generate(4, device="cpu", rng=torch.Generator().manual_seed(0))
        relaxed = net.relaxed(2, inverse_temperature=2.0, device="cpu")
    assert state[0].dtype == torch.float32
    torch.testing.assert_close(logits.float(), ref, atol=0.05, rtol=0.02)
    torch.testing.assert_close(logits2.float(), ref2, atol=0.05, rtol=0.02)
    assert poems.shape == (4, 7) and relaxed.shape == (2, 7, 30)

    torch.manual_seed(0)
    critic = LSTMCritic(30, embedding_dim=8, hidden_dim=16, dropout=0.0)
    rows = torch.softmax(torch.randn(4, 7, 30), dim=-1)
    ref_score = critic(rows)
    with torch.autocast("cpu", dtype=BF16):
        score = critic(rows)
    score.float().sum().backward()
    torch.testing.assert_close(score.float(), ref_score, atol=0.05, rtol=0.02)
    assert all(p.grad is not None for p in critic.lstm.parameters())


class Spy(torch.nn.Module):
    """Records how it is called, instead of being an LSTM."""

    def __init__(self) -> None:
        super().__init__()
        self.calls: list[tuple] = []

    def forward(self, *args):
        self.calls.append((args, torch.is_autocast_enabled("cpu")))
        return args[0], None


def test_native_path_calls_the_layer_unchanged(monkeypatch):
    """Where the CPU can run it (and outside CPU autocast), the layer gets the very same
    arguments under the very same autocast as before the fallback existed."""
    monkeypatch.setattr(recurrent, "_SUPPORTED", {BF16: True})
    spy, x = Spy(), torch.randn(2, 3, 4).to(BF16)
    state = (torch.zeros(1, 2, 4), torch.zeros(1, 2, 4))
    with torch.autocast("cpu", dtype=BF16):
        run_recurrent(spy, x)
        run_recurrent(spy, x, state)
    run_recurrent(spy, x)
    assert spy.calls[0][0][0] is x and len(spy.calls[0][0]) == 1 and spy.calls[0][1]
    assert spy.calls[1][0][1] is state and spy.calls[1][1]
    assert spy.calls[2][0][0] is x and not spy.calls[2][1]


def test_probe_runs_once_and_only_under_cpu_autocast(monkeypatch):
    probed: list[torch.dtype] = []

    def probe(dtype):
        probed.append(dtype)
        return False

    monkeypatch.setattr(recurrent, "_SUPPORTED", {})
    monkeypatch.setattr(recurrent, "_probe", probe)
    layer = torch.nn.LSTM(4, 5, batch_first=True)
    x = torch.randn(2, 3, 4)
    layer(x)
    run_recurrent(layer, x)
    assert probed == []  # no autocast: nothing to probe
    for _ in range(3):
        with torch.autocast("cpu", dtype=BF16):
            out, _ = run_recurrent(layer, x)
        assert out.dtype == torch.float32
    assert probed == [BF16]
    assert recurrent._SUPPORTED == {BF16: False}


def test_real_probe_is_cached_and_draws_no_random_numbers(monkeypatch):
    monkeypatch.setattr(recurrent, "_SUPPORTED", {})
    calls = []
    real = recurrent._probe
    monkeypatch.setattr(recurrent, "_probe", lambda dtype: calls.append(dtype) or real(dtype))
    rng = torch.random.get_rng_state()
    with torch.no_grad():
        first = cpu_autocast_rnn_supported(BF16)
    assert isinstance(first, bool)
    assert cpu_autocast_rnn_supported(BF16) is first
    assert calls == [BF16]
    assert torch.equal(torch.random.get_rng_state(), rng)
    # Whatever this CPU can do, the poet trains under bf16 autocast.
    net = small_poet()
    with torch.autocast("cpu", dtype=BF16):
        loss = net.nll(torch.randint(4, 30, (3, 7)))
    loss.backward()
    assert torch.isfinite(loss) and calls == [BF16]
