"""Text critics. Both read token ids (N, T) or relaxed one-hot rows (N, T, V): the embedding
of a relaxed row is its probability-weighted mix of embeddings, which for one-hot rows is
exactly the lookup, so Gumbel-softmax fakes and real token ids share one code path."""

from __future__ import annotations

from typing import Any

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from ganframe.errors import UserError
from ganframe_poet.configs import CNNCriticConfig, LSTMCriticConfig
from ganframe_poet.generator import text_info
from ganframe_poet.recurrent import run_recurrent


def embed_tokens(embedding: nn.Embedding, x: Tensor) -> Tensor:
    if x.is_floating_point():
        return x.to(embedding.weight.dtype) @ embedding.weight
    return embedding(x)


class Highway(nn.Module):
    """y = g * relu(W x) + (1 - g) * x with a learned gate g (Srivastava et al., 2015)."""

    def __init__(self, width: int) -> None:
        super().__init__()
        self.transform = nn.Linear(width, width)
        self.gate = nn.Linear(width, width)
        nn.init.constant_(self.gate.bias, -2.0)  # start close to the identity

    def forward(self, x: Tensor) -> Tensor:
        g = torch.sigmoid(self.gate(x))
        return g * F.relu(self.transform(x)) + (1 - g) * x


class CNNCritic(nn.Module):
    """SeqGAN's discriminator: n-gram detectors of several widths, max over time, highway."""

    def __init__(
        self,
        vocab_size: int,
        seq_len: int,
        *,
        embedding_dim: int = 64,
        widths: list[int] | tuple[int, ...] = (2, 3, 4, 5),
        filters: int = 100,
        dropout: float = 0.25,
    ) -> None:
        super().__init__()
        self.embed = nn.Embedding(vocab_size, embedding_dim)
        self.convs = nn.ModuleList(nn.Conv1d(embedding_dim, filters, w) for w in widths)
        width = filters * len(widths)
        self.highway = Highway(width)
        self.drop = nn.Dropout(dropout)
        self.out = nn.Linear(width, 1)

    def forward(self, x: Tensor) -> Tensor:
        e = embed_tokens(self.embed, x).transpose(1, 2)  # (N, E, T)
        pooled = [F.relu(conv(e)).amax(dim=2) for conv in self.convs]
        h = self.highway(torch.cat(pooled, dim=1))
        return self.out(self.drop(h)).squeeze(1)


class LSTMCritic(nn.Module):
    """Reads the whole sequence and scores the final state of the top layer."""

    def __init__(
        self,
        vocab_size: int,
        *,
        embedding_dim: int = 64,
        hidden_dim: int = 128,
        num_layers: int = 1,
        dropout: float = 0.25,
    ) -> None:
        super().__init__()
        self.embed = nn.Embedding(vocab_size, embedding_dim)
        self.lstm = nn.LSTM(
            embedding_dim, hidden_dim, num_layers=num_layers,
            dropout=dropout if num_layers > 1 else 0.0, batch_first=True,
        )
        self.drop = nn.Dropout(dropout)
        self.out = nn.Linear(hidden_dim, 1)

    def forward(self, x: Tensor) -> Tensor:
        _, (h, _) = run_recurrent(self.lstm, embed_tokens(self.embed, x))
        return self.out(self.drop(h[-1])).squeeze(1)


def build_cnn_critic(config: CNNCriticConfig, ctx: Any) -> CNNCritic:
    info = text_info(ctx.data_info, "critic cnn")
    seq_len = int(info.get("seq_len", info.get("max_len", 24) + 1))
    too_wide = [w for w in config.widths if w < 1 or w > seq_len]
    if too_wide:
        raise UserError(
            f"critic.widths: {too_wide} must be between 1 and the sequence length "
            f"({seq_len}); remove or shrink them."
        )
    return CNNCritic(
        len(info["vocab"]), seq_len, embedding_dim=config.embedding_dim,
        widths=config.widths, filters=config.filters, dropout=config.dropout,
    )


def build_lstm_critic(config: LSTMCriticConfig, ctx: Any) -> LSTMCritic:
    info = text_info(ctx.data_info, "critic lstm")
    return LSTMCritic(
        len(info["vocab"]), embedding_dim=config.embedding_dim, hidden_dim=config.hidden_dim,
        num_layers=config.num_layers, dropout=config.dropout,
    )
