"""The poems dataset: both layouts, skip counting, clear errors, vocabulary and encoding."""

from __future__ import annotations

import logging
import random

import pytest
import torch
from ganframe_poet.configs import PoemsConfig
from ganframe_poet.data import build_poems
from ganframe_poet.text import SPECIALS, Vocab, decode_ids, read_poems

from ganframe.errors import UserError

Q1 = "白日依山尽，黄河入海流。欲穷千里目，更上一层楼。"
Q2 = "床前明月光，疑是地上霜。举头望明月，低头思故乡。"
Q3 = "千山鸟飞绝，万径人踪灭。孤舟蓑笠翁，独钓寒江雪。"


def read(path, mode="quatrain5", max_len=24):
    return read_poems(path, mode=mode, max_len=max_len, min_len=5, punctuation="，。？！；：、")


def test_reads_title_content_and_plain_lines_and_counts_skips(tmp_path):
    f = tmp_path / "mixed.txt"
    lines = [
        f"登鹳雀楼:{Q1}",                      # 1 title:content
        Q2,                                   # 2 plain
        "",                                   # 3 blank: ignored, not a skip
        "题:目:" + Q3,                         # 4 two colons: malformed
        "空诗:",                               # 5 no content: malformed
        "白日依山尽，黄河入海流。欲穷千里目，更上一层abc",  # 6 unwanted characters
        Q1 + "又一句诗，",                        # 7 too long for quatrain5
        "短诗，",                               # 8 too short
        "白日依山尽。黄河入海流，欲穷千里目，更上一层楼，",  # 9 is in form (any punctuation)
        "白日依山尽黄，河入海流。欲穷千里目，更上一层楼。",  # 10 punctuation misplaced
        f"  江雪 : {Q3}  ",                      # 11 spaces around are tolerated
    ]
    f.write_text("\n".join(lines) + "\n", encoding="utf-8")
    parsed = read(f)
    assert parsed.poems == [Q1, Q2, "白日依山尽。黄河入海流，欲穷千里目，更上一层楼，", Q3]
    assert parsed.skipped == {
        "malformed": 2, "unwanted_chars": 1, "too_long": 1, "too_short": 1, "wrong_form": 1,
    }
    assert parsed.first_skipped["malformed"] == 4
    assert parsed.first_skipped["wrong_form"] == 10


def test_free_mode_keeps_any_length_up_to_max_len(tmp_path):
    f = tmp_path / "free.txt"
    long_poem = Q1 + Q2
    f.write_text(f"a:{Q1}\nb:{long_poem}\nc:{long_poem + Q3}\n", encoding="utf-8")
    parsed = read(f, mode="free", max_len=60)
    assert parsed.poems == [Q1, long_poem]
    assert parsed.skipped["too_long"] == 1


def test_non_utf8_names_file_and_line(tmp_path):
    f = tmp_path / "gbk.txt"
    f.write_bytes((Q1 + "\n" + Q2 + "\n").encode("utf-8") + Q3.encode("gb18030") + b"\n")
    with pytest.raises(UserError) as err:
        read(f)
    msg = str(err.value)
    assert "gbk.txt" in msg and "line 3" in msg and "UTF-8" in msg


def test_empty_and_unusable_files_are_errors(tmp_path):
    empty = tmp_path / "empty.txt"
    empty.write_text("\n  \n", encoding="utf-8")
    with pytest.raises(UserError, match=r"empty\.txt, line 1: the poem file is empty"):
        read(empty)
    bad = tmp_path / "bad.txt"
    bad.write_text("hello world\n短诗，\n", encoding="utf-8")
    with pytest.raises(UserError, match=r"bad\.txt.*unwanted chars 1 \(first at line 1\)"):
        read(bad)


def test_missing_file_and_missing_data_root(tmp_path, build_ctx, monkeypatch):
    with pytest.raises(UserError, match="nope.txt: poem file not found"):
        build_poems(PoemsConfig(path=str(tmp_path / "nope.txt")), build_ctx())
    monkeypatch.delenv("GANFRAME_DATA", raising=False)
    with pytest.raises(UserError, match="GANFRAME_DATA"):
        build_poems(PoemsConfig(), build_ctx())


def test_default_path_comes_from_ganframe_data(tmp_path, build_ctx, monkeypatch):
    poems = tmp_path / "data" / "poems"
    poems.mkdir(parents=True)
    (poems / "quatrains5.train.txt").write_text(f"{Q1}\n{Q2}\n", encoding="utf-8")
    (poems / "quatrains5.test.txt").write_text(f"{Q3}\n", encoding="utf-8")
    monkeypatch.setenv("GANFRAME_DATA", str(tmp_path / "data"))
    assert len(build_poems(PoemsConfig(), build_ctx())) == 2
    assert build_poems(PoemsConfig(split="test"), build_ctx()).poems == [Q3]
    # BuildContext.data_root wins over the environment.
    monkeypatch.setenv("GANFRAME_DATA", str(tmp_path / "elsewhere"))
    assert len(build_poems(PoemsConfig(), build_ctx(data_root=tmp_path / "data"))) == 2


def test_relative_path_resolves_against_recipe_dir(tmp_path, corpus, build_ctx):
    data = build_poems(PoemsConfig(path="poems/tiny.train.txt"), build_ctx(recipe_dir=tmp_path))
    assert len(data) == 200


def test_vocab_specials_and_encoding_layout(corpus, build_ctx):
    data = build_poems(PoemsConfig(path=str(corpus)), build_ctx())
    info = data.info()
    assert info["vocab"][:4] == list(SPECIALS)
    assert (info["pad"], info["unk"], info["start"], info["end"]) == (0, 1, 2, 3)
    assert info["max_len"] == 24 and info["seq_len"] == 25
    assert info["template"] == "xxxxx，xxxxx。xxxxx，xxxxx。"
    batch = data.get(torch.tensor([0, 5, 7]))
    assert batch.dtype == torch.long and batch.shape == (3, 25)
    assert (batch[:, 24] == info["end"]).all()
    assert decode_ids(batch.tolist(), info) == [data.poems[i] for i in (0, 5, 7)]


def test_test_split_uses_the_training_vocabulary(tmp_path, build_ctx):
    train = tmp_path / "p.train.txt"
    test = tmp_path / "p.test.txt"
    train.write_text(f"{Q1}\n{Q2}\n", encoding="utf-8")
    test.write_text(f"{Q3}\n", encoding="utf-8")  # mostly characters unseen in training
    a = build_poems(PoemsConfig(path=str(train)), build_ctx())
    b = build_poems(PoemsConfig(path=str(train), split="test"), build_ctx())
    assert a.info()["vocab"] == b.info()["vocab"] == Vocab.build([Q1, Q2]).tokens
    row = b.get(torch.tensor([0]))[0].tolist()
    assert row.count(a.vocab.unk) == sum(ch not in Q1 + Q2 for ch in Q3)
    assert decode_ids([row], b.info())[0] == "".join(ch if ch in Q1 + Q2 else "□" for ch in Q3)


def test_holdout_split_without_a_test_file(tmp_path, build_ctx):
    r = random.Random(1)
    chars = "春风花月夜山水云天地日星江河湖海"

    def line() -> str:
        return "".join(r.choice(chars) for _ in range(5))

    poems = sorted({f"{line()}，{line()}。{line()}，{line()}。" for _ in range(400)})
    f = tmp_path / "all.txt"
    f.write_text("\n".join(poems), encoding="utf-8")
    cfg = PoemsConfig(path=str(f), holdout=0.2)
    train = build_poems(cfg, build_ctx())
    test = build_poems(cfg.model_copy(update={"split": "test"}), build_ctx())
    assert len(train) + len(test) == len(poems)
    assert not set(train.poems) & set(test.poems)
    assert 0.1 < len(test) / len(poems) < 0.3
    assert train.info()["vocab"] == test.info()["vocab"]


def test_skips_are_reported_in_info_and_logged(tmp_path, build_ctx, caplog):
    f = tmp_path / "some.txt"
    f.write_text(f"{Q1}\nabc:def\n{Q2}\n", encoding="utf-8")
    with caplog.at_level(logging.WARNING, logger="ganframe_poet"):
        data = build_poems(PoemsConfig(path=str(f), holdout=0.0), build_ctx())
    assert data.info()["skipped"]["unwanted_chars"] == 1
    assert any("some.txt" in r.getMessage() and "unwanted chars 1" in r.getMessage()
               for r in caplog.records)


def test_max_len_shorter_than_the_form_is_an_error(corpus, build_ctx):
    with pytest.raises(UserError, match="data.max_len = 20"):
        build_poems(PoemsConfig(path=str(corpus), max_len=20), build_ctx())


def test_limit_keeps_the_first_poems(corpus, build_ctx):
    full = build_poems(PoemsConfig(path=str(corpus)), build_ctx())
    few = build_poems(PoemsConfig(path=str(corpus), limit=7), build_ctx())
    assert few.poems == full.poems[:7]
    assert few.info()["vocab"] == full.info()["vocab"]
