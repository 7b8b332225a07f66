"""BLEU equals nltk's sentence_bleu (method 1 smoothing); checked by hand and against nltk."""

from __future__ import annotations

import math
import random

import pytest
from ganframe_poet.bleu import BleuScorer, self_bleu
from ganframe_poet.metrics import score_poems


def test_hand_computed_values():
    s = BleuScorer(["abcd", "abxy"], max_order=4)
    # Identical to a reference: every precision is 1, no brevity penalty.
    assert s.sentence("abcd", 2) == pytest.approx(1.0)
    assert s.sentence("abcd", 4) == pytest.approx(1.0)
    # "abca": unigrams a,b,c,a -> a clipped to 1 (max count of 'a' in a reference) so 3/4;
    # bigrams ab, bc, ca -> 2/3. BLEU-2 = sqrt(3/4 * 2/3).
    assert s.sentence("abca", 2) == pytest.approx(math.sqrt(0.75 * 2 / 3))
    # No trigram matches (abc matches! bca, not): 1/2 -> BLEU-3 = (3/4 * 2/3 * 1/2)^(1/3).
    assert s.sentence("abca", 3) == pytest.approx((0.75 * 2 / 3 * 0.5) ** (1 / 3))
    # Smoothing method 1: a zero count becomes 0.1 -> the 4-gram precision is 0.1 / 1.
    assert s.sentence("abca", 4) == pytest.approx((0.75 * 2 / 3 * 0.5 * 0.1) ** 0.25)
    # Brevity penalty: "ab" against closest length 4 -> exp(1 - 4/2); 3-gram count is 0
    # with denominator max(1, 0) = 1 -> 0.1.
    assert s.sentence("ab", 2) == pytest.approx(math.exp(-1.0))
    assert s.sentence("ab", 3) == pytest.approx(math.exp(-1.0) * 0.1 ** (1 / 3))
    # Nothing in common: 0, as nltk returns when no unigram matches.
    assert s.sentence("zzzz", 2) == 0.0
    assert s.sentence("", 2) == 0.0


def test_closest_reference_length_prefers_the_shorter_on_ties():
    s = BleuScorer(["aaaa", "aaaaaa"], max_order=2)
    # Length 5 is 1 away from both 4 and 6: the shorter (4) is used, so no penalty.
    assert s.sentence("aaaaa", 2) == pytest.approx(1.0)
    s = BleuScorer(["aaaaaa", "aaaaaaaaa"], max_order=2)
    assert s.sentence("aaaaa", 2) == pytest.approx(math.exp(1 - 6 / 5))


def test_self_bleu_equals_scoring_each_poem_against_the_others():
    rng = random.Random(0)
    poems = ["".join(rng.choice("abcdef，。") for _ in range(rng.randint(3, 9)))
             for _ in range(25)]
    poems += [poems[0], poems[3]]  # duplicates: ties for the largest count
    mine = self_bleu(poems, range(2, 6))
    for order in range(2, 6):
        brute = sum(
            BleuScorer(poems[:i] + poems[i + 1 :], 5).sentence(p, order)
            for i, p in enumerate(poems)
        ) / len(poems)
        assert mine[order] == pytest.approx(brute, abs=1e-12)


def test_equals_nltk_sentence_bleu():
    bleu = pytest.importorskip("nltk.translate.bleu_score")
    rng = random.Random(1)
    alphabet = "春风花月夜山水云天地日星江河，。"
    refs = ["".join(rng.choice(alphabet) for _ in range(rng.randint(10, 26)))
            for _ in range(60)]
    hyps = ["".join(rng.choice(alphabet) for _ in range(rng.randint(0, 28)))
            for _ in range(40)] + [refs[0], refs[1][:5]]
    scorer = BleuScorer(refs, 5)
    smooth = bleu.SmoothingFunction().method1
    for hyp in hyps:
        for n in range(2, 6):
            want = bleu.sentence_bleu([list(r) for r in refs], list(hyp),
                                      weights=(1 / n,) * n, smoothing_function=smooth)
            assert scorer.sentence(hyp, n) == pytest.approx(want, abs=1e-9)
    sample = hyps[:15]
    mine = self_bleu(sample, [3])[3]
    want = sum(
        bleu.sentence_bleu([list(o) for j, o in enumerate(sample) if j != i], list(h),
                           weights=(1 / 3,) * 3, smoothing_function=smooth)
        for i, h in enumerate(sample)
    ) / len(sample)
    assert mine == pytest.approx(want, abs=1e-9)


def test_score_poems_fractions():
    q = "白日依山尽，黄河入海流。欲穷千里目，更上一层楼。"
    other = "床前明月光，疑是地上霜。举头望明月，低头思故乡。"
    poems = [q, q, other, "白日依山尽"]
    out = score_poems(poems, BleuScorer([q]), mode="quatrain5", punctuation="，。",
                      train_poems={other}, max_order=4)
    assert out["valid_form"] == pytest.approx(3 / 4)
    assert out["copied"] == pytest.approx(1 / 4)
    assert out["unique"] == pytest.approx(3 / 4)
    assert out["bleu4"] == pytest.approx(
        sum(BleuScorer([q]).sentence(p, 4) for p in poems) / 4)
    assert set(out) >= {"bleu2", "bleu3", "bleu4", "self_bleu2", "self_bleu4"}


def test_bleu_metric_with_a_reference_file_and_constrained_sampling(corpus, build_ctx):
    import torch
    from ganframe_poet.configs import BleuConfig, LSTMGeneratorConfig, PoemsConfig
    from ganframe_poet.data import build_poems
    from ganframe_poet.generator import build_lstm_generator
    from ganframe_poet.metrics import build_bleu

    from ganframe.components import EvalContext

    info = build_poems(PoemsConfig(path=str(corpus)), build_ctx()).info()
    torch.manual_seed(0)
    gen = build_lstm_generator(
        LSTMGeneratorConfig(embedding_dim=8, hidden_dim=16, num_layers=1), build_ctx(data_info=info)
    ).eval()
    refs = corpus.with_name("tiny.test.txt")
    metric = build_bleu(BleuConfig(references=str(refs), constrained=True, max_order=3),
                        build_ctx(data_info=info))
    out = metric.evaluate(gen, None, EvalContext(torch.device("cpu"), 0, info, n_samples=25))
    assert set(out) == {"bleu2", "bleu3", "self_bleu2", "self_bleu3", "valid_form", "unique"}
    assert out["valid_form"] == 1.0  # constrained decoding always writes the form
    again = metric.evaluate(gen, None, EvalContext(torch.device("cpu"), 0, info, n_samples=25))
    assert again == out  # seeded: the same poems every time
