"""Both first-party recipes (shrunk) in two gloo processes: identical networks on both ranks
at every checkpoint, one set of files, and a distributed resume that ends where an
uninterrupted distributed run ends."""

from __future__ import annotations

import os
import re
import subprocess
import sys
from pathlib import Path

import pytest
import torch
from safetensors.torch import load_file
from tinydata import dcgan_overrides, poet_overrides

from ganframe.checkpoint import read_checkpoint

CASES = {
    "dcgan-mnist": ("ganframe_dcgan", dcgan_overrides, ["train.steps=6"]),
    "lstm-poet": ("ganframe_poet", poet_overrides, ["phases.0.epochs=2", "phases.1.steps=2",
                                                    "phases.2.steps=3"]),
}


def run(recipe: str, sets: list[str], out: Path, *extra: str) -> subprocess.CompletedProcess:
    args = [sys.executable, "-m", "ganframe", "run", recipe, "--nproc", "2", "--out", str(out),
            "--quiet", *extra]
    for s in sets:
        args += ["--set", s]
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    return subprocess.run(args, capture_output=True, text=True, env=env, timeout=300)


@pytest.mark.parametrize("recipe", sorted(CASES))
def test_two_processes_agree_and_resume(recipe: str, tmp_path: Path) -> None:
    module, overrides, shorter = CASES[recipe]
    pytest.importorskip(module)
    sets = [*overrides(tmp_path / "data"), *shorter, "train.checkpoint_every=2",
            "train.keep_last=0"]
    straight = run(recipe, sets, tmp_path / "a")
    assert straight.returncode == 0, straight.stderr
    ckpts = sorted((tmp_path / "a/checkpoints").glob("step-*.safetensors"))
    assert ckpts
    for path in ckpts:
        meta = read_checkpoint(path).meta["run"]
        assert meta["world"] == 2 and len(set(meta["rank_digests"])) == 1, meta
    total = read_checkpoint(tmp_path / "a/checkpoints/last.safetensors").meta["run"]["step"]

    first = run(recipe, sets, tmp_path / "b", "--max-steps", str(total // 2))
    assert first.returncode == 0, first.stderr
    second = run(recipe, sets, tmp_path / "b", "--resume")
    assert second.returncode == 0, second.stderr
    a = load_file(str(tmp_path / "a/checkpoints/last.safetensors"))
    b = load_file(str(tmp_path / "b/checkpoints/last.safetensors"))
    keys = [k for k in a if k.startswith(("generator.", "critic.", "ema.", "optim."))]
    assert keys and all(torch.equal(a[k], b[k]) for k in keys)


def test_dcgan_with_global_batch_norm_keeps_ranks_identical(tmp_path: Path) -> None:
    pytest.importorskip("ganframe_dcgan")
    sets = [*dcgan_overrides(tmp_path / "data"), "train.steps=4", "train.checkpoint_every=2",
            "train.keep_last=0"]
    synced = run("dcgan-mnist", [*sets, "train.sync_batchnorm=true"], tmp_path / "sync")
    assert synced.returncode == 0, synced.stderr
    said = synced.stdout + synced.stderr
    assert re.search(r"; ([1-9]\d*) batch-norm layer\(s\) use the global batch", said), said
    for path in sorted((tmp_path / "sync/checkpoints").glob("step-*.safetensors")):
        meta = read_checkpoint(path).meta["run"]
        assert len(set(meta["rank_digests"])) == 1, meta
    plain = run("dcgan-mnist", sets, tmp_path / "plain")
    assert plain.returncode == 0, plain.stderr
    a = load_file(str(tmp_path / "sync/checkpoints/last.safetensors"))
    b = load_file(str(tmp_path / "plain/checkpoints/last.safetensors"))
    assert a.keys() == b.keys()  # the same checkpoint layout
    stats = [k for k in a if k.startswith("generator.") and k.endswith("running_mean")]
    assert stats and any(not torch.equal(a[k], b[k]) for k in stats)  # other statistics
