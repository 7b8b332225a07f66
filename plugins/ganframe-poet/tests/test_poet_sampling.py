"""The inverse-CDF sampler behind generation and rollouts draws from softmax(logits)."""

from __future__ import annotations

import math

import torch
from ganframe_poet.generator import sample_logits


def _logits() -> torch.Tensor:
    probs = torch.tensor([[0.0, 0.5, 0.0, 0.25, 0.125, 0.125, 0.0],
                          [0.0, 0.0, 0.0, 0.0, 0.0, 0.0, 1.0],
                          [0.7, 0.0, 0.1, 0.1, 0.0, 0.1, 0.0]])
    return probs.log()  # zero probability -> -inf


def test_frequencies_match_softmax_and_impossible_tokens_never_come() -> None:
    draws = 40_000
    logits = _logits()
    rng = torch.Generator().manual_seed(0)
    got = sample_logits(logits.clone().repeat_interleave(draws, 0), rng)
    probs = logits.softmax(1)
    for row in range(3):
        counts = torch.bincount(got[row * draws : (row + 1) * draws], minlength=7).float()
        assert counts[probs[row] == 0].sum() == 0
        # Within 5 standard deviations of the binomial count, for every token.
        sd = (draws * probs[row] * (1 - probs[row])).sqrt()
        assert ((counts - draws * probs[row]).abs() <= 5 * sd + 1e-6).all(), (row, counts)


def test_many_draws_per_row_are_independent_draws_of_that_row() -> None:
    rng = torch.Generator().manual_seed(1)
    got = sample_logits(_logits(), rng, draws=30_000)
    assert got.shape == (3, 30_000)
    assert (got[1] == 6).all()
    share = (got[0] == 1).float().mean().item()
    assert abs(share - 0.5) < 5 * math.sqrt(0.25 / 30_000)
    # Consecutive draws are not copies of each other.
    assert (got[0, 1:] != got[0, :-1]).float().mean() > 0.5


def test_same_generator_seed_same_draws_and_extreme_logits() -> None:
    a = sample_logits(_logits(), torch.Generator().manual_seed(7), draws=50)
    b = sample_logits(_logits(), torch.Generator().manual_seed(7), draws=50)
    assert torch.equal(a, b)
    # Huge logit gaps: one token has all the mass, whatever the uniform.
    big = torch.tensor([[0.0, 1e5, -1e5, 3.0]])
    assert (sample_logits(big.repeat(1000, 1), torch.Generator().manual_seed(0)) == 1).all()
