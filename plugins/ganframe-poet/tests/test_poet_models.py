"""The LSTM generator (sampling, constraints, relaxed samples) and the two text critics."""

from __future__ import annotations

import pytest
import torch
import torch.nn.functional as F
from ganframe_poet.configs import (
    CNNCriticConfig,
    LSTMCriticConfig,
    LSTMGeneratorConfig,
    PoemsConfig,
)
from ganframe_poet.critics import build_cnn_critic, build_lstm_critic
from ganframe_poet.data import build_poems
from ganframe_poet.generator import build_lstm_generator
from ganframe_poet.text import decode_ids, valid_form

from ganframe.errors import UserError

SMALL = LSTMGeneratorConfig(embedding_dim=16, hidden_dim=32, num_layers=2, dropout=0.1)


@pytest.fixture
def info(corpus, build_ctx):
    return build_poems(PoemsConfig(path=str(corpus)), build_ctx()).info()


@pytest.fixture
def gen(info, build_ctx):
    torch.manual_seed(0)
    return build_lstm_generator(SMALL, build_ctx(data_info=info)).eval()


def test_generate_layout_and_padding_after_end(gen, info):
    x = gen.generate(64, device="cpu", rng=torch.Generator().manual_seed(1))
    assert x.shape == (64, 25) and x.dtype == torch.long
    assert not torch.isin(x, torch.tensor([info["start"], info["unk"]])).any()
    for row in x.tolist():
        if info["end"] in row:
            e = row.index(info["end"])
            assert all(t == info["pad"] for t in row[e + 1 :])
        assert info["pad"] not in row[: row.index(info["end"])] if info["end"] in row else True


def test_same_seed_same_poems_and_temperature_top_k(gen):
    a = gen.generate(8, device="cpu", rng=torch.Generator().manual_seed(3))
    b = gen.generate(8, device="cpu", rng=torch.Generator().manual_seed(3))
    assert torch.equal(a, b)
    # top_k = 1 is greedy: every row is the same poem.
    g = gen.generate(5, device="cpu", top_k=1)
    assert (g == g[0]).all()
    # A very low temperature also approaches greedy decoding.
    cold = gen.generate(5, device="cpu", temperature=1e-4)
    assert torch.equal(cold, g)


def test_constrained_decoding_places_the_punctuation(gen, info):
    x = gen.generate(50, device="cpu", constrained=True, rng=torch.Generator().manual_seed(0))
    poems = decode_ids(x.tolist(), info)
    assert all(valid_form(p, "quatrain5", info["punctuation"]) for p in poems)
    assert all(p[5] == "，" and p[11] == "。" for p in poems)
    # Unconstrained, an untrained model almost never writes a valid quatrain.
    free = decode_ids(gen.generate(50, device="cpu").tolist(), info)
    assert sum(valid_form(p, "quatrain5", info["punctuation"]) for p in free) < 5


def test_bad_sampling_options_are_user_errors(gen):
    with pytest.raises(UserError, match="unknown sampling option"):
        gen.generate(2, device="cpu", beam=4)
    with pytest.raises(UserError, match="temperature"):
        gen.generate(2, device="cpu", temperature=0)


def test_sampling_options_are_declared_and_checked_by_the_core(gen):
    from ganframe_poet.configs import SamplingOptions

    from ganframe.components import check_sampling_options

    assert type(gen).sampling_options is SamplingOptions
    assert check_sampling_options(gen, {"temperature": 0.7, "top_k": 5}) == {
        "temperature": 0.7, "top_k": 5, "top_p": 1.0, "constrained": False}
    with pytest.raises(UserError) as err:
        check_sampling_options(gen, {"beam": 4})
    text = str(err.value)
    assert "unknown sampling option(s) for LSTMPoet: beam" in text
    for name in ("temperature (", "top_k (", "top_p (", "constrained ("):
        assert name in text
    assert "Nucleus sampling" in text and "default 1.0" in text
    for bad, says in (({"temperature": 0}, "temperature must be positive, not 0"),
                      ({"top_k": -1}, "top_k must be 0 (off) or positive, not -1"),
                      ({"top_p": 1.5}, "top_p must be in (0, 1] (1 = off), not 1.5"),
                      ({"top_k": "many"}, "top_k: input should be a valid integer")):
        with pytest.raises(UserError) as err:
            check_sampling_options(gen, bad)
        assert says in str(err.value), str(err.value)
        with pytest.raises(UserError):
            gen.generate(2, device="cpu", **bad)
    with pytest.raises(UserError, match="LSTMPoet is not conditional"):
        gen.generate(2, device="cpu", labels=1)


def test_constrained_needs_a_fixed_form(tmp_path, build_ctx):
    f = tmp_path / "free.txt"
    f.write_text("白日依山尽，黄河入海流。\n床前明月光，疑是地上霜。\n", encoding="utf-8")
    info = build_poems(PoemsConfig(path=str(f), mode="free", holdout=0.0), build_ctx()).info()
    g = build_lstm_generator(SMALL, build_ctx(data_info=info))
    assert g.generate(3, device="cpu").shape == (3, 65)
    with pytest.raises(UserError, match="fixed form"):
        g.generate(3, device="cpu", constrained=True)


def test_generator_max_len_must_match_data(info, build_ctx):
    with pytest.raises(UserError, match="generator.max_len = 32"):
        build_lstm_generator(SMALL.model_copy(update={"max_len": 32}),
                             build_ctx(data_info=info))
    with pytest.raises(UserError, match="vocabulary"):
        build_lstm_generator(SMALL, build_ctx(data_info={"shape": [1, 28, 28]}))


def test_relaxed_samples_are_distributions_and_differentiable(gen, info):
    gen.train()
    y = gen.relaxed(6, inverse_temperature=2.0, device="cpu")
    assert y.shape == (6, 25, len(info["vocab"]))
    assert torch.allclose(y.sum(-1), torch.ones(6, 25), atol=1e-5)
    # Banned tokens get no mass.
    assert y[..., info["start"]].max() == 0 and y[..., info["unk"]].max() == 0
    y.pow(2).sum().backward()
    assert gen.head.weight.grad is not None and gen.head.weight.grad.abs().sum() > 0
    # A hot (large beta) relaxation is nearly one-hot.
    with torch.no_grad():
        hot = gen.relaxed(6, inverse_temperature=1e4, device="cpu")
    assert hot.max(-1).values.min() > 0.99


@pytest.mark.parametrize("kind", ["cnn", "lstm"])
def test_critics_read_ids_and_one_hot_rows_alike(kind, gen, info, build_ctx):
    torch.manual_seed(0)
    ctx = build_ctx(data_info=info)
    critic = (
        build_cnn_critic(CNNCriticConfig(embedding_dim=8, filters=4), ctx)
        if kind == "cnn"
        else build_lstm_critic(LSTMCriticConfig(embedding_dim=8, hidden_dim=8), ctx)
    ).eval()
    x = gen.generate(5, device="cpu")
    by_ids = critic(x)
    by_rows = critic(F.one_hot(x, len(info["vocab"])).float())
    assert by_ids.shape == (5,)
    assert torch.allclose(by_ids, by_rows, atol=1e-5)
    soft = torch.softmax(torch.randn(5, 25, len(info["vocab"]), requires_grad=True), -1)
    critic(soft).sum().backward()  # gradients reach relaxed inputs


def test_cnn_widths_longer_than_the_sequence_are_rejected(info, build_ctx):
    with pytest.raises(UserError, match="critic.widths"):
        build_cnn_critic(CNNCriticConfig(widths=[2, 30]), build_ctx(data_info=info))


def test_embedding_dropout_acts_in_training_only_and_costs_no_draws_when_off(info, build_ctx):
    rng = torch.Generator().manual_seed(3)
    tokens = torch.randint(4, len(info["vocab"]), (8, 25), generator=rng)
    ctx = build_ctx(data_info=info)
    torch.manual_seed(0)
    plain = build_lstm_generator(SMALL.model_copy(update={"dropout": 0.0}), ctx).train()
    before = torch.get_rng_state()
    first = plain(tokens)
    # Off means no dropout layer at all: the global RNG is untouched, so recipes that do not
    # set it draw exactly the random numbers they drew before the option existed.
    assert torch.equal(torch.get_rng_state(), before)
    assert torch.equal(first, plain(tokens))

    torch.manual_seed(0)
    cfg = SMALL.model_copy(update={"dropout": 0.0, "embedding_dropout": 0.5})
    dropped = build_lstm_generator(cfg, ctx).train()
    assert not torch.allclose(dropped(tokens), dropped(tokens))
    dropped.eval()
    assert torch.equal(dropped(tokens), dropped(tokens))
    assert torch.allclose(dropped(tokens), plain.eval()(tokens))  # same weights, same seed
