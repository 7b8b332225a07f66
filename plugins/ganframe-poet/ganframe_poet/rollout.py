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

import torch
from torch import Tensor

from ganframe_poet.generator import LSTMPoet, sample_logits


@torch.no_grad()
def complete_prefixes(
    net: LSTMPoet, x: Tensor, rollouts: int, *, rng: torch.Generator | None = None
) -> Tensor:
    """Completions (T-1, R, N, T): ``out[t-1, r, b, :t] == x[b, :t]``, the rest sampled."""
    n, length = x.shape
    per_block = rollouts * n
    logits_tf, states = net.prefix_states(x)
    ban = net.sampling_mask(0, False)
    seen_end = (x == net.end).long().cumsum(dim=1) > 0  # inclusive of position t
    out = x.repeat((length - 1) * rollouts, 1)
    state: tuple[Tensor, Tensor] | None = None
    alive = torch.empty(0, dtype=torch.bool, device=x.device)
    prev = torch.empty(0, dtype=torch.long, device=x.device)
    for p in range(1, length):
        # Prefixes of length p join: their next-token logits and state are already known.
        new_logits = logits_tf[:, p].repeat(rollouts, 1)
        h, c = states[p]
        new_state = (h.repeat(1, rollouts, 1), c.repeat(1, rollouts, 1))
        new_alive = ~seen_end[:, p - 1].repeat(rollouts)
        if state is None:
            logits, state, alive = new_logits, new_state, new_alive
        else:
            # Every completion already under way takes one step, all in one batch.
            old_logits, old_state = net.step(prev, state)
            logits = torch.cat([old_logits, new_logits])
            state = (torch.cat([old_state[0], new_state[0]], dim=1),
                     torch.cat([old_state[1], new_state[1]], dim=1))
            alive = torch.cat([alive, new_alive])
        tok = sample_logits(logits.float() + ban, rng)
        tok = torch.where(alive, tok, torch.full_like(tok, net.pad))
        alive = alive & (tok != net.end)
        out[: p * per_block, p] = tok
        prev = tok
    return out.view(length - 1, rollouts, n, length)


def rollout_rewards(
    net: LSTMPoet,
    score: Callable[[Tensor], Tensor],
    x: Tensor,
    rollouts: int,
    *,
    chunk: int = 8192,
    rng: torch.Generator | None = None,
) -> Tensor:
    """Per-token rewards (N, T) in the range of ``score`` (sequences (M, T) -> (M,))."""
    n, length = x.shape
    with torch.no_grad():
        done = complete_prefixes(net, x, rollouts, rng=rng).reshape(-1, length)
        scores = torch.cat([score(part).reshape(-1).float() for part in done.split(chunk)])
        by_prefix = scores.view(length - 1, rollouts, n).mean(dim=1)  # (T-1, N)
        last = score(x).reshape(-1).float()
        return torch.cat([by_prefix.t(), last.unsqueeze(1)], dim=1)
