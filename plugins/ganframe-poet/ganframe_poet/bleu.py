"""Sentence BLEU against a large, fixed reference set, and self-BLEU (no torch).

The definition is exactly ``nltk.translate.bleu_score.sentence_bleu`` with uniform weights
``(1/n,) * n`` and ``SmoothingFunction().method1`` (epsilon = 0.1):

* modified precision p_k = sum over the hypothesis' k-grams g of min(count(g),
  max over references of count_ref(g)), divided by max(1, number of k-grams);
* method 1 smoothing: a zero numerator becomes 0.1, so p_k = 0.1 / denominator;
* a hypothesis without a single matching character scores 0;
* brevity penalty exp(1 - r / c) when c < r, where r is the reference length closest to the
  hypothesis length c (the shorter one on ties), 1 otherwise;
* BLEU-n = BP * exp(sum_k log(p_k) / n), averaged over the hypotheses.

Tokens are characters (punctuation kept), so a k-gram is a substring. The speed comes from
doing once what nltk redoes per hypothesis: for each order the maximum count of every k-gram
over all references is precomputed, and a hypothesis is then scored with dictionary lookups.
For self-BLEU (each poem against all the others) the largest and second-largest count of each
k-gram, and who holds the largest, give "max over the others" without rescanning.
"""

from __future__ import annotations

import bisect
import math
from collections import Counter
from collections.abc import Iterable, Sequence

EPSILON = 0.1  # nltk SmoothingFunction(epsilon=0.1).method1


def ngram_counts(text: str, n: int) -> Counter[str]:
    return Counter(text[i : i + n] for i in range(len(text) - n + 1))


def _combine(
    matches: Sequence[int], totals: Sequence[int], order: int, bp: float
) -> float:
    """BLEU-``order`` from clipped match counts and k-gram totals for k = 1..order."""
    if matches[0] == 0:
        return 0.0
    weight = 1.0 / order
    logs = []
    for k in range(order):
        denominator = max(1, totals[k])
        numerator = matches[k] if matches[k] > 0 else EPSILON
        logs.append(weight * math.log(numerator / denominator))
    return bp * math.exp(math.fsum(logs))


def _brevity(closest: int, length: int) -> float:
    if length > closest:
        return 1.0
    if length == 0:
        return 0.0
    return math.exp(1 - closest / length)


def _closest(lengths: Sequence[int], length: int) -> int:
    """Closest value in the sorted ``lengths``; the shorter one on ties."""
    i = bisect.bisect_left(lengths, length)
    candidates = lengths[max(0, i - 1) : i + 1]
    return min(candidates, key=lambda r: (abs(r - length), r))


class BleuScorer:
    """Scores hypotheses against one fixed reference set."""

    def __init__(self, references: Iterable[str], max_order: int = 5) -> None:
        refs = list(references)
        if not refs:
            raise ValueError("BLEU needs at least one reference")
        self.max_order = max_order
        self.max_counts: list[dict[str, int]] = []
        for n in range(1, max_order + 1):
            best: dict[str, int] = {}
            for ref in refs:
                for gram, count in ngram_counts(ref, n).items():
                    if count > best.get(gram, 0):
                        best[gram] = count
            self.max_counts.append(best)
        self.lengths = sorted({len(r) for r in refs})

    def counts(self, hyp: str) -> tuple[list[int], list[int]]:
        matches, totals = [], []
        for n in range(1, self.max_order + 1):
            best = self.max_counts[n - 1]
            grams = ngram_counts(hyp, n)
            matches.append(sum(min(c, best.get(g, 0)) for g, c in grams.items()))
            totals.append(len(hyp) - n + 1 if len(hyp) >= n else 0)
        return matches, totals

    def sentence(self, hyp: str, order: int) -> float:
        matches, totals = self.counts(hyp)
        return _combine(matches, totals, order, _brevity(_closest(self.lengths, len(hyp)),
                                                          len(hyp)))

    def corpus_mean(self, hyps: Sequence[str], orders: Iterable[int]) -> dict[int, float]:
        """Mean sentence BLEU over ``hyps`` for each order."""
        orders = list(orders)
        sums = dict.fromkeys(orders, 0.0)
        for hyp in hyps:
            matches, totals = self.counts(hyp)
            bp = _brevity(_closest(self.lengths, len(hyp)), len(hyp))
            for order in orders:
                sums[order] += _combine(matches, totals, order, bp)
        return {o: s / max(1, len(hyps)) for o, s in sums.items()}


def self_bleu(poems: Sequence[str], orders: Iterable[int], max_order: int = 5) -> dict[int, float]:
    """Mean BLEU of each poem against all the others as references (diversity: lower is
    more diverse). Needs at least two poems."""
    orders = list(orders)
    if len(poems) < 2:
        raise ValueError("self-BLEU needs at least two poems")
    per_poem = [[ngram_counts(p, n) for n in range(1, max_order + 1)] for p in poems]
    # For each order and k-gram: (largest count, index holding it, second-largest count).
    tops: list[dict[str, list[int]]] = [{} for _ in range(max_order)]
    for i, grams_by_order in enumerate(per_poem):
        for k, grams in enumerate(grams_by_order):
            top = tops[k]
            for g, c in grams.items():
                entry = top.get(g)
                if entry is None:
                    top[g] = [c, i, 0]
                elif c > entry[0]:
                    entry[2] = entry[0]
                    entry[0], entry[1] = c, i
                elif c > entry[2]:
                    entry[2] = c
    length_counts = Counter(len(p) for p in poems)
    sums = dict.fromkeys(orders, 0.0)
    for i, poem in enumerate(poems):
        matches, totals = [], []
        for k, grams in enumerate(per_poem[i]):
            top = tops[k]
            m = 0
            for g, c in grams.items():
                best, holder, second = top[g]
                m += min(c, second if holder == i else best)
            matches.append(m)
            n = k + 1
            totals.append(len(poem) - n + 1 if len(poem) >= n else 0)
        length_counts[len(poem)] -= 1
        others = sorted(length for length, c in length_counts.items() if c > 0)
        length_counts[len(poem)] += 1
        bp = _brevity(_closest(others, len(poem)), len(poem))
        for order in orders:
            sums[order] += _combine(matches, totals, order, bp)
    return {o: s / len(poems) for o, s in sums.items()}
