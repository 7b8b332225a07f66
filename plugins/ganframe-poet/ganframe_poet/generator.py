"""The LSTM poet: a character language model that writes a poem after the start token.

Besides sampling, it offers what the objectives need: teacher-forced logits (MLE and policy
gradient), a single step with explicit state (batched Monte-Carlo rollouts) and relaxed
Gumbel-softmax sequences (differentiable GAN training).

Sequences are ``seq_len = max_len + 1`` tokens: characters, the end token, then padding.
Once a row has emitted the end token it only emits padding, so generated rows have exactly
the layout of the dataset's rows.
"""

from __future__ import annotations

from typing import Any

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from ganframe.components import check_sampling_options, resolve_labels
from ganframe.errors import UserError
from ganframe_poet.configs import LSTMGeneratorConfig, SamplingOptions
from ganframe_poet.recurrent import run_recurrent

State = tuple[Tensor, Tensor]


def text_info(info: dict[str, Any], what: str) -> dict[str, Any]:
    """The vocabulary facts a text network needs, with a clear error for non-text data."""
    missing = [k for k in ("vocab", "start", "end", "pad", "unk") if k not in info]
    if missing:
        raise UserError(
            f"{what} needs text data with a vocabulary (the 'poems' dataset); the data info "
            f"lacks {', '.join(missing)}."
        )
    return info


class LSTMPoet(nn.Module):
    """Embedding, stacked LSTM, dropout, linear layer over the vocabulary."""

    #: temperature, top_k, top_p and constrained, validated by the core and by generate()
    sampling_options = SamplingOptions

    def __init__(
        self,
        vocab_size: int,
        *,
        start: int,
        end: int,
        pad: int,
        unk: int,
        max_len: int = 24,
        embedding_dim: int = 128,
        hidden_dim: int = 256,
        num_layers: int = 2,
        dropout: float = 0.5,
        embedding_dropout: float = 0.0,
        punctuation_ids: list[int] | None = None,
        template: str | None = None,
        punctuation: str = "",
        vocab: list[str] | None = None,
    ) -> None:
        super().__init__()
        self.vocab_size = vocab_size
        self.start, self.end, self.pad, self.unk = start, end, pad, unk
        self.max_len = max_len
        self.seq_len = max_len + 1
        self.num_layers = num_layers
        self.hidden_dim = hidden_dim
        self.embed = nn.Embedding(vocab_size, embedding_dim)
        # Identity at 0 so that recipes without it draw the same random numbers as before.
        self.drop_in = nn.Dropout(embedding_dropout) if embedding_dropout else nn.Identity()
        self.lstm = nn.LSTM(
            embedding_dim,
            hidden_dim,
            num_layers=num_layers,
            dropout=dropout if num_layers > 1 else 0.0,
            batch_first=True,
        )
        self.drop = nn.Dropout(dropout)
        self.head = nn.Linear(hidden_dim, vocab_size)
        # Never sampled: padding, the start token and the unknown token.
        banned = torch.zeros(vocab_size, dtype=torch.bool)
        banned[[pad, start, unk]] = True
        self.register_buffer("banned", banned, persistent=False)
        punct = torch.zeros(vocab_size, dtype=torch.bool)
        if punctuation_ids:
            punct[punctuation_ids] = True
        self.register_buffer("punct_mask", punct, persistent=False)
        self.template = template
        # Forced token per position for constrained decoding (-1: any character).
        forced = torch.full((self.seq_len,), -1, dtype=torch.long)
        if template is not None and vocab is not None:
            index = {tok: i for i, tok in enumerate(vocab)}
            for t, slot in enumerate(template):
                if slot != "x":
                    forced[t] = index.get(slot, unk)
            if len(template) < self.seq_len:
                forced[len(template)] = end
            forced[len(template) + 1 :] = pad
        self.register_buffer("forced", forced, persistent=False)

    # -- building blocks --------------------------------------------------------------------
    def forward(self, tokens: Tensor) -> Tensor:
        """Teacher-forced logits (N, T, V): position t predicts ``tokens[:, t]``."""
        start = torch.full_like(tokens[:, :1], self.start)
        inputs = torch.cat([start, tokens[:, :-1]], dim=1)
        out, _ = run_recurrent(self.lstm, self.drop_in(self.embed(inputs)))
        return self.head(self.drop(out))

    def token_nll(self, tokens: Tensor) -> Tensor:
        """Summed NLL and the number of scored tokens (characters and the end token)."""
        logits = self(tokens)
        nll = F.cross_entropy(
            logits.reshape(-1, logits.shape[-1]).float(),
            tokens.reshape(-1),
            ignore_index=self.pad,
            reduction="sum",
        )
        return torch.stack([nll, (tokens != self.pad).sum().to(nll.dtype)])

    def nll(self, tokens: Tensor) -> Tensor:
        """Mean NLL per scored token, in nats."""
        total, count = self.token_nll(tokens)
        return total / count.clamp_min(1)

    def step(self, tokens: Tensor, state: State | None) -> tuple[Tensor, State]:
        """One position for a batch: the previous tokens (N,) in, next-token logits (N, V) out."""
        out, state = run_recurrent(self.lstm, self.drop_in(self.embed(tokens)).unsqueeze(1), state)
        return self.head(self.drop(out[:, 0])), state

    def prefix_states(self, tokens: Tensor) -> tuple[Tensor, list[State]]:
        """Teacher-forced logits (N, T, V) and the LSTM state before every position.

        ``states[t]`` has consumed the start token and ``tokens[:, :t]``; it is what a
        rollout from a prefix of length t continues from. One step per position.
        """
        n, length = tokens.shape
        prev = torch.full((n,), self.start, dtype=torch.long, device=tokens.device)
        state: State | None = None
        logits, states = [], []
        for t in range(length):
            step_logits, state = self.step(prev, state)
            logits.append(step_logits)
            states.append(state)
            prev = tokens[:, t]
        return torch.stack(logits, dim=1), states

    def sampling_mask(self, position: int, constrained: bool) -> Tensor:
        """Additive logit mask (V,) for one position."""
        mask = torch.zeros(self.vocab_size, device=self.banned.device)
        mask[self.banned] = float("-inf")
        if constrained:
            forced = int(self.forced[position])
            if forced >= 0:
                mask.fill_(float("-inf"))
                mask[forced] = 0.0
            else:
                mask[self.punct_mask] = float("-inf")
                mask[self.end] = float("-inf")
        return mask

    # -- sampling -----------------------------------------------------------------------------
    def generate(
        self,
        n: int,
        *,
        device: torch.device | str,
        rng: torch.Generator | None = None,
        labels: Any = None,
        **options: Any,
    ) -> Tensor:
        """``n`` poems as token ids (n, seq_len), sampled as :class:`SamplingOptions` say:
        ``constrained`` forces the form's punctuation and the end token where the form puts
        them. ``top_p < 1`` samples from the smallest set of likeliest characters whose
        probability (after temperature) reaches ``top_p`` (nucleus sampling, Holtzman et al.
        2020): it cuts the long tail of rare characters, which temperature alone only thins.
        The poet is not conditional: ``labels`` must be None."""
        resolve_labels(self, n, labels, device=device)  # refuses labels
        chosen = check_sampling_options(self, options)
        temperature, top_k = chosen["temperature"], chosen["top_k"]
        top_p, constrained = chosen["top_p"], chosen["constrained"]
        if constrained and self.template is None:
            raise UserError(
                "constrained sampling needs a fixed form (data mode quatrain5 or quatrain7); "
                "this model was trained on free poems."
            )
        device = torch.device(device)
        with torch.no_grad():
            prev = torch.full((n,), self.start, dtype=torch.long, device=device)
            alive = torch.ones(n, dtype=torch.bool, device=device)
            state: State | None = None
            out = []
            for t in range(self.seq_len):
                logits, state = self.step(prev, state)
                logits = logits.float() / temperature + self.sampling_mask(t, constrained)
                if top_k and top_k < self.vocab_size:
                    kth = torch.topk(logits, top_k, dim=-1).values[:, -1:]
                    logits = logits.masked_fill(logits < kth, float("-inf"))
                if top_p < 1.0:
                    logits = nucleus(logits, top_p)
                tok = sample_logits(logits, rng)
                tok = torch.where(alive, tok, torch.full_like(tok, self.pad))
                alive = alive & (tok != self.end)
                out.append(tok)
                prev = tok
            return torch.stack(out, dim=1)

    def relaxed(
        self, n: int, *, inverse_temperature: float, device: torch.device | str,
        hard: bool = False,
    ) -> Tensor:
        """Differentiable poems (n, seq_len, V): softmax(beta * (logits + Gumbel noise)).

        As in RelGAN, the next input is the sampled (argmax) token; the relaxed one-hot
        vectors go to the critic. After a row's end token its outputs are one-hot padding.
        With ``hard`` the critic sees one-hot vectors carrying the relaxed gradients.
        """
        device = torch.device(device)
        prev = torch.full((n,), self.start, dtype=torch.long, device=device)
        alive = torch.ones(n, 1, dtype=torch.bool, device=device)
        pad_row = F.one_hot(torch.tensor(self.pad, device=device), self.vocab_size).float()
        state: State | None = None
        ban = self.sampling_mask(0, False)
        outs = []
        for _ in range(self.seq_len):
            logits, state = self.step(prev, state)
            u = torch.rand(logits.shape, device=device).clamp_(1e-10, 1.0 - 1e-7)
            noisy = logits.float() + ban - torch.log(-torch.log(u))
            soft = torch.softmax(inverse_temperature * noisy, dim=-1)
            tok = noisy.argmax(dim=-1)
            if hard:
                soft = F.one_hot(tok, self.vocab_size).float() + soft - soft.detach()
            outs.append(torch.where(alive, soft, pad_row))
            tok = torch.where(alive[:, 0], tok, torch.full_like(tok, self.pad))
            alive = alive & (tok != self.end).unsqueeze(1)
            prev = tok
        return torch.stack(outs, dim=1)


def nucleus(logits: Tensor, top_p: float) -> Tensor:
    """``logits`` with everything outside each row's top-p nucleus set to -inf; the likeliest
    token is always kept, so a row never loses all its mass."""
    ordered, order = logits.sort(dim=-1, descending=True)
    probs = ordered.softmax(dim=-1)
    outside = probs.cumsum(dim=-1) - probs >= top_p  # the mass before a token already suffices
    return logits.scatter(1, order, ordered.masked_fill(outside, float("-inf")))


def sample_logits(logits: Tensor, rng: torch.Generator | None, draws: int = 0) -> Tensor:
    """Draws from softmax(logits) per row, by inverse-CDF sampling (rng-reproducible).

    ``logits`` (M, V) float is overwritten (it becomes the unnormalised CDF): the callers
    pass fresh tensors, and over a 5,000-character vocabulary the rollouts' memory traffic
    is the cost. One uniform per draw instead of one per vocabulary entry (Gumbel-max) makes
    this about twice as fast. ``draws = 0`` returns (M,) tokens; ``draws = R`` returns (M, R)
    independent draws from the same rows, for R rollouts of one prefix.
    """
    cdf = logits.sub_(logits.amax(dim=1, keepdim=True)).exp_().cumsum_(dim=1)
    total = cdf[:, -1:].contiguous()
    u = torch.rand((cdf.shape[0], max(draws, 1)), device=cdf.device, generator=rng)
    # right=True: the first entry whose CDF exceeds the target, so a zero-probability entry
    # (a flat step of the CDF) is never chosen, not even for u = 0. A target that rounding
    # pushed up to the total itself maps to the last entry of positive probability.
    tok = torch.searchsorted(cdf, u.mul_(total), right=True)
    tok = torch.minimum(tok, torch.searchsorted(cdf, total, right=False))
    return tok if draws else tok[:, 0]


def build_lstm_generator(config: LSTMGeneratorConfig, ctx: Any) -> LSTMPoet:
    info = text_info(ctx.data_info, "generator lstm")
    data_len = info.get("max_len")
    if config.max_len is not None and data_len is not None and config.max_len != data_len:
        raise UserError(
            f"generator.max_len = {config.max_len} differs from the data's max_len "
            f"({data_len}); set them equal or leave generator.max_len unset."
        )
    max_len = config.max_len or data_len or 24
    vocab = list(info["vocab"])
    punctuation = info.get("punctuation", "")
    index = {tok: i for i, tok in enumerate(vocab)}
    return LSTMPoet(
        len(vocab),
        start=info["start"],
        end=info["end"],
        pad=info["pad"],
        unk=info["unk"],
        max_len=max_len,
        embedding_dim=config.embedding_dim,
        hidden_dim=config.hidden_dim,
        num_layers=config.num_layers,
        dropout=config.dropout,
        embedding_dropout=config.embedding_dropout,
        punctuation_ids=[index[c] for c in punctuation if c in index],
        template=info.get("template"),
        punctuation=punctuation,
        vocab=vocab,
    )
