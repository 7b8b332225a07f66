"""Batched Monte-Carlo rollouts for SeqGAN's per-token rewards.

For sequences ``x`` (N, T) the reward of token ``t`` is the critic's mean score over R
completions of the prefix ``x[:, :t+1]``; the last token's reward is the score of ``x``
itself. Completing every prefix of every row R times is (T-1)·R·N sequences. Instead of a
Python loop per prefix and per rollout, all of them advance together: one teacher-forced
pass gives the LSTM state after every prefix, and then each position is one batched LSTM
step over every completion still being written. A completion of prefix length t joins the
batch at position t, starting from the stored state of its prefix, so no prefix is ever
re-read.

Layout (the part a reshape can silently get wrong): completions are numbered
``((t - 1) * R + r) * N + b`` for prefix length t, rollout r and row b, so the scores view as
(T-1, R, N), are averaged over R, and are transposed to (N, T-1) before the last column is
appended. ``rewards[b, t]`` is then the reward of row b's prefix ending at token t.
"""

from __future__ import annotations

from collections.abc import Callable
from math import inf

import torch
from torch import Tensor

from ganframe_poet.generator import LSTMPoet, sample_logits


@torch.no_grad()
def complete_prefixes(
    net: LSTMPoet, x: Tensor, rollouts: int, *, rng: torch.Generator | None = None,
    temperature: float = 1.0,
) -> Tensor:
    """Completions (T-1, R, N, T): ``out[t-1, r, b, :t] == x[b, :t]``, the rest sampled.

    At position p the completions under way are exactly rows ``[0, p·R·N)`` of the layout
    (prefix lengths 1..p), so each step works on a leading block of rows: the block that
    joined earlier takes one LSTM step, the block joining now samples from logits the
    teacher-forced pass already computed. Sampling overwrites the logits in place and never
    concatenates them; the (much smaller) LSTM states are the only thing stacked per step.
    """
    n, length = x.shape
    per_block = rollouts * n
    logits_tf, states = net.prefix_states(x)
    banned = net.banned.nonzero().squeeze(1)
    seen_end = (x == net.end).long().cumsum(dim=1) > 0  # inclusive of position t
    out = x.repeat((length - 1) * rollouts, 1)
    state: tuple[Tensor, Tensor] | None = None
    alive = torch.ones(0, dtype=torch.bool, device=x.device)
    for p in range(1, length):
        under_way = (p - 1) * per_block
        tok = torch.empty(p * per_block, dtype=torch.long, device=x.device)
        if state is not None:
            # Every completion already under way takes one step, all in one batch.
            logits, state = net.step(out[:under_way, p - 1], state)
            logits = logits.float()
            if temperature != 1.0:
                logits.div_(temperature)
            tok[:under_way] = sample_logits(logits.index_fill_(1, banned, -inf), rng)
        # Prefixes of length p join: R draws from the logits after each row's prefix.
        joining = logits_tf[:, p].float().contiguous()
        if temperature != 1.0:
            joining.div_(temperature)
        joining.index_fill_(1, banned, -inf)
        tok[under_way:] = sample_logits(joining, rng, draws=rollouts).t().reshape(-1)
        h, c = states[p]
        joined = (h.repeat(1, rollouts, 1), c.repeat(1, rollouts, 1))
        state = joined if state is None else (torch.cat([state[0], joined[0]], dim=1),
                                              torch.cat([state[1], joined[1]], dim=1))
        alive = torch.cat([alive, ~seen_end[:, p - 1].repeat(rollouts)])
        tok = torch.where(alive, tok, net.pad)
        alive &= tok != net.end
        out[: p * per_block, p] = tok
    return out.view(length - 1, rollouts, n, length)


def rollout_rewards(
    net: LSTMPoet,
    score: Callable[[Tensor], Tensor],
    x: Tensor,
    rollouts: int,
    *,
    chunk: int = 8192,
    rng: torch.Generator | None = None,
    temperature: float = 1.0,
) -> Tensor:
    """Per-token rewards (N, T) in the range of ``score`` (sequences (M, T) -> (M,))."""
    n, length = x.shape
    with torch.no_grad():
        done = complete_prefixes(
            net, x, rollouts, rng=rng, temperature=temperature
        ).reshape(-1, length)
        scores = torch.cat([score(part).reshape(-1).float() for part in done.split(chunk)])
        by_prefix = scores.view(length - 1, rollouts, n).mean(dim=1)  # (T-1, N)
        last = score(x).reshape(-1).float()
        return torch.cat([by_prefix.t(), last.unsqueeze(1)], dim=1)
