"""Entry point of the poet plugin: registers its components as lazy references.

Imports only the stdlib, pydantic (through :mod:`ganframe_poet.configs`) and ``ganframe``'s
hook marker, so listing plugins never imports torch.
"""

from __future__ import annotations

from importlib.resources import files

from ganframe import hookimpl
from ganframe.cards import register_cards
from ganframe_poet import configs

GANFRAME_PLUGIN_API = 3  # 3: register_pretrained

_PKG = "ganframe_poet"


@hookimpl
def register_datasets(register):  # type: ignore[no-untyped-def]
    register(
        "poems",
        f"{_PKG}.data:build_poems",
        config=configs.PoemsConfig,
        summary="Classical Chinese poems (title:content or one per line) as character ids",
    )


@hookimpl
def register_generators(register):  # type: ignore[no-untyped-def]
    register(
        "lstm",
        f"{_PKG}.generator:build_lstm_generator",
        config=configs.LSTMGeneratorConfig,
        summary="Character LSTM poet; temperature, top-k and form-constrained sampling",
    )


@hookimpl
def register_critics(register):  # type: ignore[no-untyped-def]
    register(
        "cnn",
        f"{_PKG}.critics:build_cnn_critic",
        config=configs.CNNCriticConfig,
        summary="SeqGAN text CNN: several widths, max-over-time pooling, highway, dropout",
    )
    register(
        "lstm",
        f"{_PKG}.critics:build_lstm_critic",
        config=configs.LSTMCriticConfig,
        summary="LSTM text critic scoring the final state",
    )


@hookimpl
def register_losses(register):  # type: ignore[no-untyped-def]
    register(
        "mle",
        f"{_PKG}.objectives:MLE",
        config=configs.MLEConfig,
        summary="Teacher-forced cross-entropy (generator only); logs train and test NLL",
    )
    register(
        "seqgan",
        f"{_PKG}.objectives:SeqGAN",
        config=configs.SeqGANConfig,
        summary="SeqGAN policy gradient with batched Monte-Carlo rollouts; trains the critic",
    )
    register(
        "seqgan-critic",
        f"{_PKG}.objectives:SeqGANCritic",
        config=configs.SeqGANCriticConfig,
        summary="Critic pre-training on generated vs real sequences (critic only)",
    )
    register(
        "gumbel",
        f"{_PKG}.objectives:Gumbel",
        config=configs.GumbelConfig,
        summary="Gumbel-softmax relaxed GAN with annealed inverse temperature (RSGAN or GAN)",
    )


@hookimpl
def register_metrics(register):  # type: ignore[no-untyped-def]
    register(
        "bleu",
        f"{_PKG}.metrics:build_bleu",
        config=configs.BleuConfig,
        summary="BLEU-2..5 vs the test split, self-BLEU, valid form, copied and unique fractions",
    )
    register(
        "nll",
        f"{_PKG}.metrics:build_nll",
        config=configs.NLLConfig,
        summary="Per-character negative log-likelihood of a data split under the generator",
    )


@hookimpl
def register_sample_writers(register):  # type: ignore[no-untyped-def]
    register(
        "text",
        ".txt",
        f"{_PKG}.writers:write_text",
        summary="One decoded poem per line (UTF-8)",
    )


@hookimpl
def register_recipes(register):  # type: ignore[no-untyped-def]
    recipes = files(_PKG) / "recipes"
    register(
        "lstm-poet",
        recipes / "lstm-poet.toml",
        summary="LSTM poet: MLE pre-training, critic pre-training, SeqGAN (quatrains5)",
    )
    register(
        "lstm-poet-gumbel",
        recipes / "lstm-poet-gumbel.toml",
        summary="LSTM poet: MLE pre-training then Gumbel-softmax RSGAN (quatrains5)",
    )


@hookimpl
def register_commands(register):  # type: ignore[no-untyped-def]
    register(
        "poet-sweep",
        "ganframe_poet.sweep:sweep_command",
        summary="Quality-diversity curve of poet checkpoints: BLEU vs self-BLEU over "
        "sampling temperatures (table and plot).",
    )


@hookimpl
def register_pretrained(register):  # type: ignore[no-untyped-def]
    """The trained generators in ``pretrained/`` (see ``pretrained/cards.json`` and the
    model cards in the README): ``ganframe sample NAME`` right after installing."""
    register_cards(register, files(_PKG) / "pretrained")
