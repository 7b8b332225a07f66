"""The baseline for SeqGAN's Monte-Carlo rewards: a nested Python loop per rollout and per
prefix, as popular SeqGAN implementations write it (the original TensorFlow code's
``get_reward`` and its PyTorch ports).

For every rollout r and prefix length t, a whole batch of sequences is produced by stepping
the generator from the start token: the first t positions are fed the given tokens (their
logits are computed and thrown away, as in those implementations), the rest are sampled;
then the critic scores the batch. That is (T-1)·R generator passes of T steps each, plus
(T-1)·R + R critic calls, all at batch size N.

It uses the same generator's single-step function, the same banned-token mask and the same
end-of-poem handling as the plugin's batched :func:`ganframe_poet.rollout.rollout_rewards`,
so both compute the same estimator; it samples the way those implementations do,
``multinomial(softmax(logits))`` (an exact draw, like the plugin's Gumbel-max).
"""

from __future__ import annotations

from collections.abc import Callable
from typing import TYPE_CHECKING

import torch
from torch import Tensor

if TYPE_CHECKING:
    from ganframe_poet.generator import LSTMPoet


@torch.no_grad()
def complete(net: LSTMPoet, prefix: Tensor, length: int, ban: Tensor) -> Tensor:
    """One batch of completions of ``prefix`` (N, t) to ``length`` tokens."""
    n, given = prefix.shape
    prev = torch.full((n,), net.start, dtype=torch.long, device=prefix.device)
    alive = torch.ones(n, dtype=torch.bool, device=prefix.device)
    state = None
    out = []
    for i in range(length):
        logits, state = net.step(prev, state)
        if i < given:
            tok = prefix[:, i]
        else:
            probs = torch.softmax(logits.float() + ban, dim=-1)
            tok = torch.multinomial(probs, 1).squeeze(1)
            tok = torch.where(alive, tok, torch.full_like(tok, net.pad))
        alive = alive & (tok != net.end)
        out.append(tok)
        prev = tok
    return torch.stack(out, dim=1)


@torch.no_grad()
def naive_rollout_rewards(
    net: LSTMPoet, score: Callable[[Tensor], Tensor], x: Tensor, rollouts: int
) -> Tensor:
    """Per-token rewards (N, T): mean score of ``rollouts`` completions of each prefix; the
    last token's reward is the score of the whole sequence."""
    n, length = x.shape
    ban = net.sampling_mask(0, False)
    rewards = torch.zeros(n, length, device=x.device)
    for _ in range(rollouts):
        for t in range(1, length):
            rewards[:, t - 1] += score(complete(net, x[:, :t], length, ban)).float()
        rewards[:, length - 1] += score(x).float()
    return rewards / rollouts
