"""Tiny self-made data and shrunk first-party recipes, shared by tests that run them.

MNIST-format IDX files and a small quatrain file are written on the fly; no real data is
needed.
"""

from __future__ import annotations

import json
import random
import struct
from pathlib import Path

import numpy as np

CHARS = "春风花月夜山水云天地日星江河湖海松竹梅兰雪雨霜露朝暮秋冬夏晴寒烟柳桥舟客酒歌"


# -- tiny data --------------------------------------------------------------------------------


def write_idx(folder: Path, n: int = 48, seed: int = 0) -> Path:
    """MNIST-format train split (raw IDX: big-endian magic, counts, dims, uint8 data)."""
    rng = np.random.default_rng(seed)
    images = np.zeros((n, 28, 28), dtype=np.uint8)
    labels = rng.integers(0, 10, n).astype(np.uint8)
    for i in range(n):  # a bar whose position depends on the label, plus noise
        images[i, :, 2 * labels[i] + 4 : 2 * labels[i] + 8] = 200
        images[i] += rng.integers(0, 40, (28, 28), dtype=np.uint8)
    folder.mkdir(parents=True, exist_ok=True)
    (folder / "train-images-idx3-ubyte").write_bytes(
        struct.pack(">iiii", 2051, n, 28, 28) + images.tobytes()
    )
    (folder / "train-labels-idx1-ubyte").write_bytes(struct.pack(">ii", 2049, n) + labels.tobytes())
    return folder


def write_poems(path: Path, n: int = 80, seed: int = 0) -> Path:
    rng = random.Random(seed)
    lines = [
        "".join("".join(rng.choice(CHARS) for _ in range(5)) + p for p in "，。，。")
        for _ in range(n)
    ]
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text("\n".join(lines) + "\n", encoding="utf-8")
    return path


# -- the two recipes, shrunk --------------------------------------------------------------------


COMMON = [
    'device="cpu"',
    "deterministic=true",
    "metrics=[]",
    "train.checkpoint_every=1",  # a checkpoint write every step: kills often land in one
    "train.keep_last=2",
    "train.log_every=1",
    "train.sample_every=0",
    "train.sample_count=4",
]


def dcgan_overrides(data: Path) -> list[str]:
    return [
        *COMMON,
        f"data.root={json.dumps(str(write_idx(data / 'mnist')))}",
        "data.download=false",
        "generator.base_width=4",
        "generator.latent_dim=4",
        "critic.base_width=4",
        "train.batch_size=8",
        "train.steps=60",
        "train.ema=0.9",  # the EMA copy is part of the state that must come back
    ]


def poet_overrides(data: Path) -> list[str]:
    return [
        *COMMON,
        f"data.path={json.dumps(str(write_poems(data / 'poems.txt')))}",
        "generator.embedding_dim=8",
        "generator.hidden_dim=16",
        "generator.num_layers=1",  # dropout 0.5 stays: its draws must resume exactly too
        "critic.embedding_dim=8",
        "critic.filters=4",
        "critic.widths=[2, 3]",
        "train.batch_size=16",
        # three phases as shipped: MLE by epochs (test NLL logged every 2 steps), critic
        # pre-training, SeqGAN (whose rollout network is objective state in checkpoints)
        "phases.0.epochs=3",
        "phases.0.loss.eval_every=2",
        "phases.1.steps=6",
        "phases.2.steps=8",
        "phases.2.n_critic=1",
        "phases.2.loss.rollouts=2",
        "phases.2.loss.samples=8",
    ]


