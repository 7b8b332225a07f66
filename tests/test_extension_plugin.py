"""A third-party plugin extends the loop through hooks alone: a logger, a callback with state
and a learning-rate schedule, pip-installed like anybody's plugin and chosen from a recipe.

The plugin lives in tests/fixtures/ganframe-watch; it is installed with pip into a folder of
its own (``--target``) that only the child processes of these tests see.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest
import torch

from ganframe.checkpoint import read_checkpoint
from ganframe.loop.clock import strip_time

FIXTURE = Path(__file__).parent / "fixtures" / "ganframe-watch"

RECIPE = """
name = "watched"
seed = 3
device = "cpu"
deterministic = true

[data]
type = "gaussian-ring"
size = 512

[generator]
type = "mlp"
hidden = 16
layers = 2

[critic]
type = "mlp"
hidden = 16
layers = 2

[optim.generator]
lr = 0.002

[optim.generator.schedule]
type = "step-decay"
every = 10
gamma = 0.5

[train]
batch_size = 32
steps = 30
log_every = 5
checkpoint_every = 10

[[loggers]]
type = "jsonl"

[[loggers]]
type = "tsv"

[[callbacks]]
type = "weight-norm"
every = 5
"""


@pytest.fixture(scope="module")
def site(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Path]:
    root = tmp_path_factory.mktemp("watch")
    source = root / "src"
    shutil.copytree(FIXTURE, source)
    target = root / "site"
    proc = subprocess.run(
        [sys.executable, "-m", "pip", "install", "--no-deps", "--no-build-isolation",
         "--no-index", "--no-cache-dir", "-q", "--target", str(target), str(source)],
        capture_output=True, text=True, timeout=240,
        env={**os.environ, "PIP_DISABLE_PIP_VERSION_CHECK": "1"},
    )
    if proc.returncode != 0 and "setuptools" in proc.stderr:
        pytest.skip(f"cannot build the fixture plugin here: {proc.stderr[-300:]}")
    assert proc.returncode == 0, proc.stdout + proc.stderr
    yield target


def ganframe(site: Path, *args: str, cwd: Path) -> subprocess.CompletedProcess[str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("GANFRAME_DISABLE")}
    env["PYTHONPATH"] = os.pathsep.join([str(site), env.get("PYTHONPATH", "")])
    env["OMP_NUM_THREADS"] = "1"
    return subprocess.run([sys.executable, "-m", "ganframe", *args], capture_output=True,
                          text=True, env=env, cwd=cwd, timeout=300)


def rows(run: Path) -> list[dict]:
    """The log less its wall-clock stamps, which differ between any two runs."""
    return [strip_time(json.loads(x)) for x in (run / "metrics.jsonl").read_text().splitlines()]


def tsv_rows(run: Path) -> list[dict]:
    """The plugin logger's file less the wall-clock columns every row carries."""
    lines = (run / "scalars.tsv").read_text().splitlines()
    header = lines[0].split("\t")
    return [strip_time(dict(zip(header, line.split("\t"), strict=True))) for line in lines[1:]]


def test_listed_with_its_logger_callback_and_schedule(site: Path, tmp_path: Path) -> None:
    proc = ganframe(site, "list-plugins", "--json", cwd=tmp_path)
    assert proc.returncode == 0, proc.stderr
    watch = {r["name"]: r for r in json.loads(proc.stdout)}["watch"]
    assert watch["status"] == "ok" and watch["version"] == "0.3.1"
    assert watch["components"]["logger"] == ["tsv"]
    assert watch["components"]["callback"] == ["weight-norm"]
    assert watch["components"]["schedule"] == ["step-decay"]


def test_recipe_uses_them_and_resume_continues_them_exactly(site: Path, tmp_path: Path) -> None:
    (tmp_path / "r.toml").write_text(RECIPE, encoding="utf-8")
    whole = ganframe(site, "run", "r.toml", "--out", "whole", "-q", cwd=tmp_path)
    assert whole.returncode == 0, whole.stderr
    run = tmp_path / "whole"

    # the logger saw every training row the core logged, with the same values
    train = [r for r in rows(run) if r["event"] == "train"]
    assert [r["step"] for r in train] == [5, 10, 15, 20, 25, 30]
    lines = (run / "scalars.tsv").read_text().splitlines()
    header = lines[0].split("\t")
    tsv = [dict(zip(header, line.split("\t"), strict=True)) for line in lines[1:]]
    assert [int(r["step"]) for r in tsv] == [5, 10, 15, 20, 25, 30]
    for mine, core in zip(tsv, train, strict=True):
        assert float(mine["d_loss"]) == core["d_loss"]

    # the callback reported through trainer.log, so its rows reached the jsonl logger too
    norms = [r for r in rows(run) if r["event"] == "weight-norm"]
    assert [r["step"] for r in norms] == [5, 10, 15, 20, 25, 30]
    assert len({round(r["generator"], 6) for r in norms}) > 1  # the weights moved

    # the schedule set the learning rate: 0.002 * 0.5 ** (29 // 10) at the last step
    last = read_checkpoint(run / "checkpoints/last.safetensors")
    assert last.meta["optimizers"]["generator"]["param_groups"][0]["hyper"]["lr"] == 0.0005
    assert last.meta["optimizers"]["critic"]["param_groups"][0]["hyper"]["lr"] == 0.0002
    assert last.meta["callbacks"]["weight-norm"] == {"seen": 30}

    # stopped at 20 and resumed: the same weights, logs and callback state
    part = ganframe(site, "run", "r.toml", "--out", "split", "-q", "--max-steps", "20",
                    cwd=tmp_path)
    assert part.returncode == 0, part.stderr
    rest = ganframe(site, "run", "r.toml", "--out", "split", "-q", "--resume", cwd=tmp_path)
    assert rest.returncode == 0, rest.stderr
    split = tmp_path / "split"
    again = read_checkpoint(split / "checkpoints/last.safetensors")
    for key, value in last.tensors.items():
        if key.startswith(("generator.", "critic.", "optim.")):
            assert torch.equal(value, again.tensors[key]), key
    assert again.meta["callbacks"]["weight-norm"] == {"seen": 30}
    assert tsv_rows(split) == tsv_rows(run)
    assert rows(split) == rows(run)


def test_unknown_logger_is_a_recipe_error_naming_the_key(site: Path, tmp_path: Path) -> None:
    (tmp_path / "r.toml").write_text(RECIPE.replace('type = "tsv"', 'type = "tvs"'),
                                     encoding="utf-8")
    proc = ganframe(site, "validate", "r.toml", cwd=tmp_path)
    assert proc.returncode == 2
    assert "loggers.1.type" in proc.stderr and "tsv" in proc.stderr
    assert "Traceback" not in proc.stderr
