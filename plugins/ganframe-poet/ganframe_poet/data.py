"""The ``poems`` dataset: every poem of a split encoded once into one token tensor.

Each row is the poem's character ids, then the end token, then padding, ``max_len + 1`` long;
the start token is not stored (the generator feeds it itself). A batch is one indexing
operation on that tensor.
"""

from __future__ import annotations

import logging
import os
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch import Tensor

from ganframe.components import data_path
from ganframe.errors import UserError
from ganframe_poet.configs import PoemsConfig
from ganframe_poet.text import (
    DEFAULT_FILES,
    DEFAULT_MAX_LEN,
    ParsedFile,
    Vocab,
    describe_skips,
    in_holdout,
    read_poems,
    template,
)

log = logging.getLogger("ganframe_poet")

_CACHE: dict[tuple[Any, ...], ParsedFile] = {}


def _parse_cached(path: Path, *, mode: str, max_len: int, min_len: int, punct: str) -> ParsedFile:
    """Parse once per process: the trainer, the MLE objective and the metrics all read the
    same files (and the skip summary is then logged once)."""
    try:
        stat = path.stat()
    except OSError:
        stat = None
    key = (str(path.resolve()), getattr(stat, "st_mtime_ns", 0), getattr(stat, "st_size", 0),
           mode, max_len, min_len, punct)
    if key not in _CACHE:
        parsed = read_poems(path, mode=mode, max_len=max_len, min_len=min_len, punctuation=punct)
        level = logging.WARNING if parsed.n_skipped else logging.INFO
        log.log(level, "poems: %s: %d poems from %d lines; %s", path, len(parsed.poems),
                parsed.lines, describe_skips(parsed))
        _CACHE[key] = parsed
    return _CACHE[key]


def data_files(config: PoemsConfig, ctx: Any) -> tuple[Path, Path | None]:
    """(training file, test file or None when the test split is a holdout of the first).
    ``path`` and ``test_path`` follow ganframe's data-path convention (a relative file is
    looked up in $GANFRAME_DATA, the recipe's folder, then the working directory)."""
    given = data_path(config, "path", ctx)
    if given is not None:
        train = given
    else:
        root = getattr(ctx, "data_root", None)
        if root is None and os.environ.get("GANFRAME_DATA", "").strip():
            root = Path(os.environ["GANFRAME_DATA"].strip()).expanduser()
        if root is None:
            raise UserError(
                "data.path: no poem file given and $GANFRAME_DATA is not set. Set `path` in "
                "the recipe's [data] table, or set GANFRAME_DATA to a folder holding "
                f"poems/{DEFAULT_FILES[config.mode]}."
            )
        train = Path(root) / "poems" / DEFAULT_FILES[config.mode]
    test = data_path(config, "test_path", ctx)
    if test is not None:
        return train, test
    if ".train." in train.name:
        sibling = train.with_name(train.name.replace(".train.", ".test."))
        if sibling.exists():
            return train, sibling
    return train, None


def effective_max_len(config: PoemsConfig) -> int:
    max_len = config.max_len or DEFAULT_MAX_LEN[config.mode]
    form = template(config.mode)
    if form is not None and max_len < len(form):
        raise UserError(
            f"data.max_len = {max_len} is shorter than a {config.mode} poem "
            f"({len(form)} characters with punctuation); raise it or leave it unset."
        )
    return max_len


class PoemDataset:
    """One split of a poem corpus, with the training split's vocabulary."""

    kind = "text"

    def __init__(
        self,
        poems: list[str],
        vocab: Vocab,
        *,
        max_len: int,
        mode: str,
        punctuation: str,
        split: str = "train",
        source: str = "",
        skipped: dict[str, int] | None = None,
    ) -> None:
        self.poems = poems
        self.vocab = vocab
        self.max_len = max_len
        self.mode = mode
        self.punctuation = punctuation
        self.split = split
        self.source = source
        self.skipped = dict(skipped or {})
        self.tokens = encode_poems(poems, vocab, max_len)

    def __len__(self) -> int:
        return self.tokens.shape[0]

    def get(self, index: Tensor) -> Tensor:
        return self.tokens[index]

    def info(self) -> dict[str, Any]:
        v = self.vocab
        return {
            "vocab": list(v.tokens),
            "max_len": self.max_len,
            "seq_len": self.max_len + 1,
            "pad": v.pad,
            "unk": v.unk,
            "start": v.start,
            "end": v.end,
            "mode": self.mode,
            "template": template(self.mode),
            "punctuation": self.punctuation,
            "split": self.split,
            "n_poems": len(self.poems),
            "skipped": dict(self.skipped),
            "source": self.source,
        }


def encode_poems(poems: list[str], vocab: Vocab, max_len: int) -> Tensor:
    """All poems as one (N, max_len + 1) int64 tensor: ids, end token, padding."""
    n, width = len(poems), max_len + 1
    out = np.full((n, width), vocab.pad, dtype=np.int64)
    if n == 0:
        return torch.from_numpy(out)
    lengths = np.fromiter((len(p) for p in poems), dtype=np.int64, count=n)
    if lengths.max() > max_len:
        raise ValueError(f"a poem is longer than max_len={max_len}")
    ids = np.asarray(vocab.encode("".join(poems)), dtype=np.int64)
    rows = np.repeat(np.arange(n), lengths)
    starts = np.cumsum(lengths) - lengths
    cols = np.arange(ids.shape[0]) - np.repeat(starts, lengths)
    out[rows, cols] = ids
    out[np.arange(n), lengths] = vocab.end
    return torch.from_numpy(out)


def build_poems(config: PoemsConfig, ctx: Any) -> PoemDataset:
    max_len = effective_max_len(config)
    train_file, test_file = data_files(config, ctx)
    opts = {"mode": config.mode, "max_len": max_len, "min_len": config.min_len,
            "punct": config.punctuation}
    parsed_train = _parse_cached(train_file, **opts)
    if test_file is None:
        train_poems = [p for p in parsed_train.poems if not in_holdout(p, config.holdout)]
        test_poems = [p for p in parsed_train.poems if in_holdout(p, config.holdout)]
        parsed_split = parsed_train
        split_file = train_file
        if config.split == "train" and not train_poems:
            raise UserError(f"{train_file}: data.holdout = {config.holdout} leaves no "
                            "training poems; lower it.")
        if config.split == "test" and not test_poems:
            raise UserError(
                f"{train_file}: there is no test file and data.holdout = {config.holdout} "
                "holds out no poem; set data.test_path or raise data.holdout."
            )
    else:
        train_poems = parsed_train.poems
        parsed_split = parsed_train
        split_file = train_file
        test_poems = []
        if config.split == "test":
            parsed_split = _parse_cached(test_file, **opts)
            test_poems = parsed_split.poems
            split_file = test_file
    vocab = Vocab.build(train_poems, config.min_count)
    poems = train_poems if config.split == "train" else test_poems
    if config.limit is not None:
        poems = poems[: config.limit]
    return PoemDataset(
        poems,
        vocab,
        max_len=max_len,
        mode=config.mode,
        punctuation=config.punctuation,
        split=config.split,
        source=split_file.name,
        skipped=parsed_split.skipped,
    )
