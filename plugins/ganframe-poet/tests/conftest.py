"""Tiny self-made poem corpora: no real data is needed by these tests."""

from __future__ import annotations

import random
from pathlib import Path
from types import SimpleNamespace

import pytest

#: 40 common ideographs; synthetic poems walk through them mostly in order, so a small
#: model can learn the pattern in a few dozen steps.
CHARS = "春风花月夜山水云天地日星江河湖海松竹梅兰雪雨霜露朝暮秋冬夏晴寒烟柳桥舟客酒歌"


def make_quatrain(rng: random.Random, width: int = 5) -> str:
    lines = []
    for i in range(4):
        k = rng.randrange(len(CHARS))
        line = []
        for _ in range(width):
            line.append(CHARS[k])
            k = (k + 1) % len(CHARS) if rng.random() < 0.85 else rng.randrange(len(CHARS))
        lines.append("".join(line) + ("，" if i % 2 == 0 else "。"))
    return "".join(lines)


def write_corpus(folder: Path, n_train: int = 200, n_test: int = 40, seed: int = 0) -> Path:
    rng = random.Random(seed)
    folder.mkdir(parents=True, exist_ok=True)
    train = [make_quatrain(rng) for _ in range(n_train)]
    test = [make_quatrain(rng) for _ in range(n_test)]
    (folder / "tiny.train.txt").write_text("\n".join(train) + "\n", encoding="utf-8")
    (folder / "tiny.test.txt").write_text("\n".join(test) + "\n", encoding="utf-8")
    return folder / "tiny.train.txt"


@pytest.fixture
def corpus(tmp_path: Path) -> Path:
    """Path of a tiny quatrain5 training file with a matching .test. file beside it."""
    return write_corpus(tmp_path / "poems")


@pytest.fixture
def chars() -> str:
    return CHARS


@pytest.fixture
def build_ctx():
    def make(**kw):
        base = {"data_root": None, "recipe_dir": None, "data_info": {}, "data_config": None,
                "build_data": None}
        base.update(kw)
        return SimpleNamespace(**base)

    return make


@pytest.fixture(autouse=True)
def _one_thread():
    """Tiny models run faster on one thread, and two OpenMP threads fighting other processes
    for two shared cores can slow them down a hundredfold."""
    import torch

    before = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(before)
