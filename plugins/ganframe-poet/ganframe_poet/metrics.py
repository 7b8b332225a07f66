"""Quality and diversity of generated poems.

``bleu`` samples poems and reports BLEU-2..n against the whole test split (every poem has the
same reference set), self-BLEU among the samples, and three sanity fractions: poems in the
data's form, poems copied verbatim from the training split, and distinct poems. ``nll``
reports the per-character negative log-likelihood of a split under the generator.

BLEU-2 saturates on classical poems (any fluent character pairs match somewhere in 1,655
references), so judge by BLEU-3/4 together with form, copying and diversity.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import torch
from torch import nn

from ganframe.errors import UserError
from ganframe_poet.bleu import BleuScorer, self_bleu
from ganframe_poet.configs import BleuConfig, NLLConfig
from ganframe_poet.text import decode_ids, read_poems, valid_form


def _split(ctx: Any, split: str, what: str) -> Any:
    build_data = getattr(ctx, "build_data", None)
    data_config = getattr(ctx, "data_config", None)
    if build_data is None or data_config is None or not hasattr(data_config, "split"):
        raise UserError(
            f"metric {what} needs the run's poem data ({split} split), but no [data] table "
            "of type 'poems' is available here; give the metric a `references` file or run it "
            "from a recipe with poem data."
        )
    return build_data(data_config.model_copy(update={"split": split, "limit": None}))


def sample_poems(
    generator: nn.Module, n: int, info: dict[str, Any], *, device: torch.device, seed: int,
    temperature: float = 1.0, top_k: int = 0, top_p: float = 1.0, constrained: bool = False,
    batch: int = 1000,
) -> list[str]:
    """``n`` decoded poems, reproducible for a seed."""
    rng = torch.Generator(device=device).manual_seed(seed)
    poems: list[str] = []
    with torch.no_grad():
        while len(poems) < n:
            k = min(batch, n - len(poems))
            ids = generator.generate(
                k, device=device, rng=rng, temperature=temperature, top_k=top_k, top_p=top_p,
                constrained=constrained,
            )
            poems += decode_ids(ids.cpu().tolist(), info)
    return poems


def score_poems(
    poems: list[str],
    scorer: BleuScorer,
    *,
    mode: str,
    punctuation: str,
    train_poems: set[str] | None = None,
    max_order: int = 5,
    with_self_bleu: bool = True,
) -> dict[str, float]:
    """Every figure of the ``bleu`` metric for a list of poems (real or generated)."""
    orders = range(2, max_order + 1)
    out: dict[str, float] = {}
    for order, value in scorer.corpus_mean(poems, orders).items():
        out[f"bleu{order}"] = value
    if with_self_bleu and len(poems) >= 2:
        for order, value in self_bleu(poems, orders, max_order).items():
            out[f"self_bleu{order}"] = value
    n = max(1, len(poems))
    out["valid_form"] = sum(valid_form(p, mode, punctuation) for p in poems) / n
    if train_poems is not None:
        out["copied"] = sum(p in train_poems for p in poems) / n
    out["unique"] = len(set(poems)) / n
    return out


class BleuMetric:
    def __init__(self, config: BleuConfig, ctx: Any) -> None:
        self.config = config
        self.ctx = ctx
        self._scorer: BleuScorer | None = None
        self._train: set[str] | None = None

    def _references(self, info: dict[str, Any]) -> list[str]:
        if self.config.references is not None:
            path = Path(self.config.references).expanduser()
            recipe_dir = getattr(self.ctx, "recipe_dir", None)
            if not path.is_absolute() and recipe_dir is not None:
                path = Path(recipe_dir) / path
            return read_poems(
                path, mode=info.get("mode", "free"), max_len=int(info.get("max_len", 10**6)),
                min_len=1, punctuation=info.get("punctuation", "，。？！；：、"),
            ).poems
        return list(_split(self.ctx, "test", "bleu").poems)

    def _train_poems(self, dataset: Any) -> set[str] | None:
        if self._train is None:
            if getattr(dataset, "split", None) == "train" and hasattr(dataset, "poems"):
                self._train = set(dataset.poems)
            else:
                try:
                    self._train = set(_split(self.ctx, "train", "bleu").poems)
                except UserError:
                    return None
        return self._train

    def evaluate(self, generator: nn.Module, dataset: Any, ctx: Any) -> dict[str, Any]:
        info = ctx.data_info or getattr(self.ctx, "data_info", {})
        if self._scorer is None:
            self._scorer = BleuScorer(self._references(info), self.config.max_order)
        n = ctx.n_samples or self.config.n_samples
        poems = sample_poems(
            generator, n, info, device=ctx.device, seed=ctx.seed,
            temperature=self.config.temperature, top_k=self.config.top_k,
            top_p=self.config.top_p, constrained=self.config.constrained,
        )
        return score_poems(
            poems, self._scorer, mode=info.get("mode", "free"),
            punctuation=info.get("punctuation", "，。？！；：、"),
            train_poems=self._train_poems(dataset), max_order=self.config.max_order,
            with_self_bleu=self.config.self_bleu,
        )


class NLLMetric:
    def __init__(self, config: NLLConfig, ctx: Any) -> None:
        self.config = config
        self.ctx = ctx
        self._tokens: torch.Tensor | None = None

    def evaluate(self, generator: nn.Module, dataset: Any, ctx: Any) -> dict[str, Any]:
        if self._tokens is None:
            data = _split(self.ctx, self.config.split, "nll")
            self._tokens = data.get(torch.arange(len(data)))
            if self.config.max_poems is not None:
                self._tokens = self._tokens[: self.config.max_poems]
        total = torch.zeros(2, dtype=torch.float64)
        with torch.no_grad():
            for part in self._tokens.split(self.config.batch_size):
                total += generator.token_nll(part.to(ctx.device)).double().cpu()
        return {f"{self.config.split}_nll": float(total[0] / total[1].clamp_min(1))}


def build_bleu(config: BleuConfig, ctx: Any) -> BleuMetric:
    return BleuMetric(config, ctx)


def build_nll(config: NLLConfig, ctx: Any) -> NLLMetric:
    return NLLMetric(config, ctx)
