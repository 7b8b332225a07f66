"""BLEU speed and the reference figures every model is judged against (not a test).

    GANFRAME_DATA=/path/to/datasets python plugins/ganframe-poet/bench/bench_poet_bleu.py

Scores, against the whole quatrains5 test split, 1,000 poems from each of: real training
poems, a character bigram model with the punctuation forced into place, and random
characters in valid form; with the times of scoring and of self-BLEU. With ``--nltk`` it
also times nltk's sentence_bleu on 20 of the poems and checks the values agree.
"""

from __future__ import annotations

import argparse
import itertools
import os
import random
import time
from collections import Counter, defaultdict
from pathlib import Path

from ganframe_poet.bleu import BleuScorer
from ganframe_poet.metrics import score_poems
from ganframe_poet.text import template


def bigram_poems(train: list[str], n: int, rng: random.Random) -> list[str]:
    form = template("quatrain5")
    assert form is not None
    follow: dict[str, Counter[str]] = defaultdict(Counter)
    starts: Counter[str] = Counter()
    for poem in train:
        chars = [c for c in poem if c not in "，。？！；：、"]
        starts[chars[0]] += 1
        for a, b in itertools.pairwise(chars):
            follow[a][b] += 1
    out = []
    for _ in range(n):
        prev = None
        poem = []
        for slot in form:
            if slot != "x":
                poem.append(slot)
                continue
            table = follow[prev] if prev in follow else starts
            prev = rng.choices(list(table), weights=list(table.values()))[0]
            poem.append(prev)
        out.append("".join(poem))
    return out


def random_poems(
    train: list[str], n: int, rng: random.Random, *, by_frequency: bool = True
) -> list[str]:
    form = template("quatrain5")
    assert form is not None
    counts = Counter(c for p in train for c in p if c not in "，。？！；：、")
    chars = list(counts)
    weights = list(counts.values()) if by_frequency else [1] * len(chars)
    return ["".join(rng.choices(chars, weights)[0] if s == "x" else s for s in form)
            for _ in range(n)]


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("-n", type=int, default=1000)
    parser.add_argument("--nltk", action="store_true")
    args = parser.parse_args()
    root = Path(os.environ["GANFRAME_DATA"]) / "poems"
    train = (root / "quatrains5.train.txt").read_text(encoding="utf-8").split()
    test = (root / "quatrains5.test.txt").read_text(encoding="utf-8").split()
    rng = random.Random(0)

    t0 = time.perf_counter()
    scorer = BleuScorer(test, 5)
    t1 = time.perf_counter()
    print(f"reference tables for {len(test)} poems: {t1 - t0:.3f}s")
    sets = {
        "real training poems": rng.sample(train, args.n),
        "bigram, forced punctuation": bigram_poems(train, args.n, rng),
        "unigram chars, valid form": random_poems(train, args.n, rng),
        "uniform chars, valid form": random_poems(train, args.n, rng, by_frequency=False),
    }
    train_set = set(train)
    for name, poems in sets.items():
        t0 = time.perf_counter()
        scorer.corpus_mean(poems, range(2, 6))
        t1 = time.perf_counter()
        s = score_poems(poems, scorer, mode="quatrain5", punctuation="，。？！；：、",
                        train_poems=train_set)
        t2 = time.perf_counter()
        print(f"{name:28s} BLEU-2..5 {s['bleu2']:.3f} {s['bleu3']:.3f} {s['bleu4']:.3f} "
              f"{s['bleu5']:.3f}  self-BLEU-2..5 {s['self_bleu2']:.3f} {s['self_bleu3']:.3f} "
              f"{s['self_bleu4']:.3f} {s['self_bleu5']:.3f}  form {s['valid_form']:.3f} "
              f"copied {s['copied']:.3f} unique {s['unique']:.3f}   "
              f"[BLEU {t1 - t0:.3f}s, all figures {t2 - t0:.3f}s]")
    if args.nltk:
        from nltk.translate.bleu_score import SmoothingFunction, sentence_bleu

        poems = sets["real training poems"][:20]
        refs = [list(r) for r in test]
        t0 = time.perf_counter()
        theirs = [sentence_bleu(refs, list(p), weights=(1 / 3,) * 3,
                                smoothing_function=SmoothingFunction().method1) for p in poems]
        t1 = time.perf_counter()
        worst = max(abs(a - scorer.sentence(p, 3)) for a, p in zip(theirs, poems, strict=True))
        print(f"nltk: {t1 - t0:.2f}s for {len(poems)} poems (BLEU-3); max difference {worst:.2e}")


if __name__ == "__main__":
    main()
