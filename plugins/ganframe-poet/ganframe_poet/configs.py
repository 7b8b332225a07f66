"""Recipe options of every poet component, as pydantic models.

Kept free of torch so ``ganframe list-plugins`` and ``ganframe validate`` can check a recipe
without importing any network code.
"""

from __future__ import annotations

from typing import Literal

from pydantic import BaseModel, ConfigDict, Field, field_validator

#: Punctuation a classical poem may contain; every other character must be a CJK ideograph.
DEFAULT_PUNCTUATION = "，。？！；：、"


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid")


class PoemsConfig(_Strict):
    path: str | None = Field(
        None,
        description="Poem file of the training split (title:content or one poem per line). "
        "A relative path is looked up in $GANFRAME_DATA, the recipe's folder, then the "
        "working directory (a shipped recipe's run records it resolved). Default: "
        "$GANFRAME_DATA/poems/"
        "quatrains5.train.txt, quatrains7.train.txt or tang_poems.txt by mode.",
    )
    test_path: str | None = Field(
        None,
        description="Poem file of the test split. Default: the training file's name with "
        "'.train.' replaced by '.test.'; when no such file exists, a fixed hash-chosen "
        "`holdout` fraction of the training file is kept apart as the test split.",
    )
    split: Literal["train", "test"] = Field("train", description="Which split to serve.")
    mode: Literal["quatrain5", "quatrain7", "free"] = Field(
        "quatrain5",
        description="quatrain5: 4 lines of 5 characters (24 tokens with punctuation); "
        "quatrain7: 4 lines of 7 (32 tokens); free: any poem of up to max_len characters.",
    )
    max_len: int | None = Field(
        None,
        gt=0,
        description="Longest poem in characters, punctuation included (the end token comes "
        "after it). Default 24 / 32 / 64 by mode; quatrain modes need at least their form's "
        "length.",
    )
    min_len: int = Field(5, gt=0, description="Shorter poems are skipped (and counted).")
    holdout: float = Field(
        0.05,
        ge=0.0,
        lt=1.0,
        description="Test fraction carved out of the training file when there is no test file.",
    )
    min_count: int = Field(
        1, ge=1, description="Characters seen fewer times in training become the unknown token."
    )
    limit: int | None = Field(
        None, gt=0, description="Keep only the first N poems of the split (quick experiments)."
    )
    punctuation: str = Field(
        DEFAULT_PUNCTUATION, min_length=1, description="Characters accepted as punctuation."
    )


class LSTMGeneratorConfig(_Strict):
    embedding_dim: int = Field(128, gt=0, description="Character embedding width.")
    hidden_dim: int = Field(256, gt=0, description="LSTM state width.")
    num_layers: int = Field(2, gt=0, description="Stacked LSTM layers.")
    dropout: float = Field(0.5, ge=0.0, lt=1.0, description="Dropout between layers and "
                           "before the output layer (training only).")
    embedding_dropout: float = Field(
        0.0, ge=0.0, lt=1.0, description="Dropout on the character embeddings fed to the LSTM "
        "(training only)."
    )
    max_len: int | None = Field(
        None,
        gt=0,
        description="Poem length in characters; must match the data's max_len (default: the "
        "data's, 24 for quatrain5).",
    )


class SamplingOptions(_Strict):
    """How the lstm generator samples (``ganframe sample --option KEY=VALUE``, the shorthands
    ``--temperature/--top-k/--top-p/--constrained``, or keyword arguments of ``generate``).
    The defaults sample from the model's own distribution."""

    temperature: float = Field(
        1.0, description="Divide the logits by this before sampling; below 1 is more "
        "conservative, above 1 more adventurous (> 0)."
    )
    top_k: int = Field(0, description="Sample among the k likeliest characters (0 = all).")
    top_p: float = Field(
        1.0, description="Nucleus sampling: the likeliest characters holding this much "
        "probability, in (0, 1] (1 = all)."
    )
    constrained: bool = Field(
        False, description="Force the form's punctuation and end (quatrain5/quatrain7 data)."
    )

    # Validators rather than Field bounds, so the messages say what is allowed in words.
    @field_validator("temperature")
    @classmethod
    def _positive_temperature(cls, value: float) -> float:
        if not value > 0:
            raise ValueError(f"must be positive, not {value}")
        return value

    @field_validator("top_k")
    @classmethod
    def _top_k(cls, value: int) -> int:
        if value < 0:
            raise ValueError(f"must be 0 (off) or positive, not {value}")
        return value

    @field_validator("top_p")
    @classmethod
    def _top_p(cls, value: float) -> float:
        if not 0.0 < value <= 1.0:
            raise ValueError(f"must be in (0, 1] (1 = off), not {value}")
        return value


class CNNCriticConfig(_Strict):
    embedding_dim: int = Field(64, gt=0, description="Character embedding width.")
    widths: list[int] = Field(
        [2, 3, 4, 5], min_length=1, description="Convolution widths (characters), one "
        "bank of filters per width; none may exceed the sequence length."
    )
    filters: int = Field(100, gt=0, description="Filters per width.")
    dropout: float = Field(0.25, ge=0.0, lt=1.0, description="Dropout before the score.")


class LSTMCriticConfig(_Strict):
    embedding_dim: int = Field(64, gt=0, description="Character embedding width.")
    hidden_dim: int = Field(128, gt=0, description="LSTM state width.")
    num_layers: int = Field(1, gt=0, description="Stacked LSTM layers.")
    dropout: float = Field(0.25, ge=0.0, lt=1.0, description="Dropout before the score.")


class MLEConfig(_Strict):
    eval_every: int = Field(
        100, ge=0, description="Phase steps between test-split NLL evaluations (0 = never)."
    )
    eval_poems: int = Field(
        512, gt=0, description="Test poems used for the logged test NLL (the first N)."
    )


_POLICY_TEMPERATURE = (
    "Temperature of the policy: poems, rollouts and log-probabilities come from "
    "softmax(logits / T). Below 1 the critic and the policy gradient work on the distribution "
    "that is sampled at evaluation, not on the untempered model."
)


class SeqGANConfig(_Strict):
    temperature: float = Field(1.0, gt=0.0, description=_POLICY_TEMPERATURE)
    rollouts: int = Field(16, gt=0, description="Monte-Carlo completions per prefix.")
    rollout_update: float = Field(
        0.8,
        ge=0.0,
        le=1.0,
        description="How much of its old weights the rollout network keeps at each generator "
        "step (SeqGAN's delayed copy); 0 = always the current generator.",
    )
    samples: int | None = Field(
        None, gt=0, description="Sequences per policy-gradient step (default: the batch size)."
    )
    baseline: Literal["none", "mean"] = Field(
        "mean",
        description="Subtract the batch-mean reward at each position (variance reduction); "
        "'none' is SeqGAN as published.",
    )
    chunk: int = Field(
        8192, gt=0, description="Completed sequences scored by the critic at once (memory)."
    )


class SeqGANCriticConfig(_Strict):
    """Critic pre-training on generated against real poems."""

    temperature: float = Field(
        1.0, gt=0.0, description="Sampling temperature of the generated poems (set it to "
        "the adversarial phase's)."
    )


class GumbelConfig(_Strict):
    max_inverse_temperature: float = Field(
        100.0,
        ge=1.0,
        description="Inverse temperature reached at the end of the phase; it grows "
        "exponentially from 1 as max ** progress.",
    )
    loss: Literal["rsgan", "standard"] = Field(
        "rsgan", description="rsgan: relativistic standard GAN; standard: non-saturating GAN."
    )
    hard: bool = Field(
        False, description="Straight-through: the critic sees one-hot samples, gradients of "
        "the relaxed ones."
    )


class BleuConfig(_Strict):
    n_samples: int = Field(1000, gt=0, description="Poems generated for the scores.")
    max_order: int = Field(5, ge=2, le=8, description="BLEU-2 up to BLEU-max_order.")
    temperature: float = Field(1.0, gt=0.0, description="Sampling temperature.")
    top_k: int = Field(0, ge=0, description="Sample among the k likeliest (0 = all).")
    top_p: float = Field(
        1.0, gt=0.0, le=1.0, description="Nucleus sampling: the likeliest characters holding "
        "this much probability (1 = all)."
    )
    constrained: bool = Field(False, description="Force the form's punctuation when sampling.")
    references: str | None = Field(
        None, description="Reference poem file; default: the data's test split."
    )
    self_bleu: bool = Field(True, description="Also score each poem against the others.")


class NLLConfig(_Strict):
    split: Literal["train", "test"] = Field("test", description="Split to score.")
    max_poems: int | None = Field(None, gt=0, description="Score only the first N poems.")
    batch_size: int = Field(256, gt=0, description="Poems per forward pass.")
