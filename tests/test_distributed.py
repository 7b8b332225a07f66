"""Two gloo processes on the CPU: identical networks on every rank, one set of files, resume."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest
import torch
from safetensors.torch import load_file

from ganframe.checkpoint import read_checkpoint

RECIPE = """
name = "ddp"
seed = 4
device = "cpu"
deterministic = true
[data]
type = "gaussian-ring"
size = 1024
[generator]
type = "mlp"
hidden = 16
layers = 2
[critic]
type = "mlp"
hidden = 16
layers = 2
[loss]
type = "wgan-gp"
[train]
batch_size = 32
steps = 12
n_critic = 2
log_every = 2
checkpoint_every = 4
keep_last = 0
"""


def ganframe(*args: str) -> subprocess.CompletedProcess:
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    return subprocess.run(
        [sys.executable, "-m", "ganframe", *args], capture_output=True, text=True, env=env,
        timeout=300,
    )


@pytest.fixture(scope="module")
def recipe(tmp_path_factory) -> Path:
    path = tmp_path_factory.mktemp("ddp") / "ddp.toml"
    path.write_text(RECIPE, encoding="utf-8")
    return path


@pytest.fixture(scope="module")
def straight(recipe: Path) -> Path:
    out = recipe.parent / "straight"
    proc = ganframe("run", str(recipe), "--nproc", "2", "--out", str(out), "--quiet")
    assert proc.returncode == 0, proc.stderr
    assert "2 processes x batch 32 per process = global batch 64" in proc.stderr
    assert proc.stdout.count("run finished at step 12") == 1  # rank 0 alone reports
    return out


def test_ranks_hold_identical_networks_and_rank0_writes_one_set(straight: Path) -> None:
    names = sorted(p.name for p in (straight / "checkpoints").iterdir())
    assert names == [
        "last.safetensors", "step-00000004.safetensors", "step-00000008.safetensors",
        "step-00000012.safetensors",
    ]
    for name in names:
        run = read_checkpoint(straight / "checkpoints" / name).meta["run"]
        assert run["world"] == 2
        digests = run["rank_digests"]
        assert len(digests) == 2 and digests[0] == digests[1]
    rows = (straight / "metrics.jsonl").read_text().splitlines()
    assert len(rows) == 6  # one writer: steps 2..12, no duplicates from rank 1


def test_distributed_resume_continues_bit_identically(recipe: Path, straight: Path) -> None:
    out = recipe.parent / "resumed"
    first = ganframe("run", str(recipe), "--nproc", "2", "--out", str(out), "--max-steps", "6",
                     "--quiet")
    assert first.returncode == 0, first.stderr
    second = ganframe("run", str(recipe), "--nproc", "2", "--out", str(out), "--resume",
                      "--quiet")
    assert second.returncode == 0, second.stderr
    a = load_file(str(straight / "checkpoints" / "last.safetensors"))
    b = load_file(str(out / "checkpoints" / "last.safetensors"))
    keys = [k for k in a if not k.startswith("rng.")]
    assert keys and all(torch.equal(a[k], b[k]) for k in keys)


def test_one_process_differs_from_two(recipe: Path, straight: Path, tmp_path: Path) -> None:
    """Two ranks really average two different shards: a single process ends elsewhere."""
    proc = ganframe("run", str(recipe), "--out", str(tmp_path / "one"), "--quiet")
    assert proc.returncode == 0, proc.stderr
    a = load_file(str(straight / "checkpoints" / "last.safetensors"))
    b = load_file(str(tmp_path / "one" / "checkpoints" / "last.safetensors"))
    assert not torch.equal(a["generator.net.0.weight"], b["generator.net.0.weight"])
