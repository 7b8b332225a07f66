"""BLEU-2..4 of real poems against the whole quatrains5 test split: the plugin's scorer vs
nltk's ``sentence_bleu`` called once per poem (the loop SeqGAN-era evaluation code runs).

nltk needs about a fifth of a second per poem here, so its single pass over the poems is cut
into ``repeats`` chunks, each timed right after one full run of the plugin's scorer; the
ratio of each pair (nltk's chunk scaled to all poems) gives the median and the range. Every
poem's three values are checked against nltk to 1e-9, outside the timed regions.
"""

from __future__ import annotations

import os
import random
import time
from pathlib import Path
from typing import Any

from measure import median

ORDERS = (2, 3, 4)
PUNCTUATION = "，。？！；：、"


def read_split(name: str) -> list[str]:
    from ganframe_poet.text import read_poems

    path = Path(os.environ["GANFRAME_DATA"]).expanduser() / "poems" / name
    return read_poems(path, mode="quatrain5", max_len=24, min_len=5,
                      punctuation=PUNCTUATION).poems


def compare(n_poems: int, repeats: int) -> dict[str, Any]:
    from ganframe_poet.bleu import BleuScorer
    from nltk.translate.bleu_score import SmoothingFunction, sentence_bleu

    train, test = read_split("quatrains5.train.txt"), read_split("quatrains5.test.txt")
    poems = random.Random(0).sample(train, n_poems)
    refs = [list(r) for r in test]
    weights = [tuple([1.0 / n] * n) for n in ORDERS]
    smooth = SmoothingFunction().method1
    size = -(-n_poems // repeats)
    chunks = [poems[i : i + size] for i in range(0, n_poems, size)]

    ours_s, theirs_s, ratios = [], [], []
    theirs_vals: list[list[float]] = []
    means: dict[int, float] = {}
    for chunk in chunks:
        t0 = time.perf_counter()
        scorer = BleuScorer(test, max_order=max(ORDERS))
        means = scorer.corpus_mean(poems, ORDERS)
        t1 = time.perf_counter()
        values = [sentence_bleu(refs, list(p), weights=weights, smoothing_function=smooth)
                  for p in chunk]
        t2 = time.perf_counter()
        theirs_vals += values
        ours_s.append(t1 - t0)
        theirs_s.append(t2 - t1)
        ratios.append((t2 - t1) * n_poems / len(chunk) / (t1 - t0))

    worst = max(
        abs(v[i] - scorer.sentence(p, order))
        for p, v in zip(poems, theirs_vals, strict=True)
        for i, order in enumerate(ORDERS)
    )
    nltk_means = {o: sum(v[i] for v in theirs_vals) / n_poems for i, o in enumerate(ORDERS)}
    worst_mean = max(abs(nltk_means[o] - means[o]) for o in ORDERS)
    if worst > 1e-9 or worst_mean > 1e-9:
        raise AssertionError(f"BLEU differs from nltk: per poem {worst:.3g}, mean {worst_mean:.3g}")
    return {
        "poems": n_poems,
        "references": len(test),
        "ganframe_s": median(ours_s),
        "nltk_s": sum(theirs_s),
        "ratios": ratios,
        "max_abs_diff": worst,
        "bleu": {f"bleu{o}": means[o] for o in ORDERS},
    }
