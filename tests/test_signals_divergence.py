"""Stopping safely: SIGINT/SIGTERM checkpoint and exit 130/143; non-finite losses stop or
roll back."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path
from typing import ClassVar

import pytest
import torch

from ganframe import api
from ganframe.checkpoint import read_checkpoint
from ganframe.components import StepOutput
from ganframe.errors import UserError
from ganframe.plugins import load_plugins
from ganframe.recipe import load_recipe
from ganframe.registry import ComponentSpec

LONG = """
name = "long"
seed = 1
device = "cpu"
[data]
type = "gaussian-ring"
size = 512
[generator]
type = "mlp"
hidden = 8
layers = 1
[critic]
type = "mlp"
hidden = 8
layers = 1
[train]
batch_size = 32
steps = 1000000
log_every = 5
"""


def start(tmp_path: Path, out: Path) -> subprocess.Popen:
    recipe = tmp_path / "long.toml"
    recipe.write_text(LONG, encoding="utf-8")
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    return subprocess.Popen(
        [sys.executable, "-m", "ganframe", "run", str(recipe), "--out", str(out), "--quiet"],
        stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=env,
    )


def wait_for_steps(out: Path, proc: subprocess.Popen, timeout: float = 60) -> None:
    log = out / "metrics.jsonl"
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if log.exists() and log.read_text().count("\n") >= 2:
            return
        assert proc.poll() is None, proc.communicate()
        time.sleep(0.05)
    proc.kill()
    raise AssertionError("the run did not start logging in time")


@pytest.mark.parametrize(("sig", "code"), [(signal.SIGINT, 130), (signal.SIGTERM, 143)])
def test_signal_finishes_step_writes_checkpoint_and_says_how_to_resume(tmp_path, sig, code):
    out = tmp_path / "run"
    proc = start(tmp_path, out)
    wait_for_steps(out, proc)
    proc.send_signal(sig)
    _, stderr = proc.communicate(timeout=60)
    assert proc.returncode == code, stderr
    assert "Traceback" not in stderr
    assert "resume with: ganframe run" in stderr and "--resume" in stderr
    ckpt = read_checkpoint(out / "checkpoints" / "last.safetensors")
    step = ckpt.meta["run"]["step"]
    assert step >= 10 and f"interrupted at step {step}" in stderr
    # and the run can be continued from there
    res = api.train(load_recipe_file(tmp_path), out=out, resume=True, max_steps=step + 3)
    assert res.step == step + 3


def load_recipe_file(tmp_path: Path):
    return api.load_recipe(tmp_path / "long.toml")


def test_second_ctrl_c_stops_at_once_and_leaves_only_whole_files(tmp_path):
    out = tmp_path / "run"
    proc = start(tmp_path, out)
    wait_for_steps(out, proc)
    proc.send_signal(signal.SIGINT)
    proc.send_signal(signal.SIGINT)
    _, stderr = proc.communicate(timeout=60)
    assert proc.returncode == 130, stderr
    assert "Traceback" not in stderr
    assert not list((out / "checkpoints").glob(".*.tmp"))
    for path in (out / "checkpoints").glob("*.safetensors"):
        read_checkpoint(path)  # raises if anything is half-written


class _InjectNaN:
    """Generator-only objective that turns non-finite at chosen steps: NaN injection.

    ``NAN_AT`` holds the steps still to poison; a step is consumed when hit, so a rollback
    that replays it trains on (like a transient fault), unless ``ALWAYS`` is set."""

    NAN_AT: ClassVar[set[int]] = set()
    ALWAYS = False
    trains_critic = False
    trains_generator = True

    def __init__(self, config, ctx) -> None:
        pass

    def generator_loss(self, ctx, real):
        out = ctx.fake(real.shape[0])
        loss = (out - real).pow(2).mean()
        if ctx.step in self.NAN_AT or (self.ALWAYS and ctx.step >= min(self.NAN_AT)):
            if not self.ALWAYS:
                self.NAN_AT.discard(ctx.step)
            loss = loss * float("nan")
        return StepOutput(loss, {"g_loss": loss})


NAN_RECIPE = """
name = "boom"
seed = 0
device = "cpu"
[data]
type = "gaussian-ring"
size = 256
[generator]
type = "mlp"
hidden = 16
layers = 2
[loss]
type = "inject-nan"
[optim.generator]
type = "sgd"
lr = 0.01
[train]
batch_size = 32
steps = 40
log_every = 2
checkpoint_every = 2
"""


@pytest.fixture
def registry():
    reg = load_plugins(autoload=False).registry
    reg.add(ComponentSpec("loss", "inject-nan", _InjectNaN, None, "test", "0"))
    _InjectNaN.NAN_AT, _InjectNaN.ALWAYS = {7}, False
    return reg


def test_divergence_stops_and_keeps_the_last_good_checkpoint(tmp_path, registry):
    path = tmp_path / "boom.toml"
    path.write_text(NAN_RECIPE, encoding="utf-8")
    with pytest.raises(UserError) as info:
        api.train(load_recipe(path, registry), out=tmp_path / "run")
    msg = str(info.value)
    assert "training diverged at step" in msg and "non-finite" in msg
    assert "the last good checkpoint is" in msg and 'on_nonfinite = "rollback"' in msg
    last = read_checkpoint(tmp_path / "run/checkpoints/last.safetensors")
    assert last.meta["run"]["step"] == 6  # NaN at step index 7 is seen at the log of step 8
    assert all(torch.isfinite(v).all() for k, v in last.tensors.items() if k[:3] == "gen")


def test_divergence_rolls_back_with_lower_learning_rate_and_finishes(tmp_path, registry):
    path = tmp_path / "boom.toml"
    path.write_text(NAN_RECIPE, encoding="utf-8")
    messages: list[str] = []
    from ganframe.loop.callbacks import Progress

    recipe = load_recipe(
        path, registry,
        ["train.on_nonfinite=\"rollback\"", "train.rollback_lr_factor=0.5",
         "train.max_rollbacks=3"],
    )
    _InjectNaN.NAN_AT = {7, 21}
    res = api.train(recipe, out=tmp_path / "run", progress=Progress(on_message=messages.append))
    assert res.step == 40
    assert any("rolled back to" in m for m in messages), messages
    meta = read_checkpoint(res.checkpoint).meta
    assert meta["run"]["rollbacks"] == 2
    lr = meta["optimizers"]["generator"]["param_groups"][0]["hyper"]["lr"]
    assert lr == pytest.approx(0.01 * 0.5**2)
    assert all(torch.isfinite(v).all() for v in read_checkpoint(res.checkpoint).tensors.values())
    rows = [json.loads(x) for x in (tmp_path / "run/metrics.jsonl").read_text().splitlines()]
    steps = [r["step"] for r in rows]
    assert steps == sorted(set(steps))  # rolled-back rows were replaced, not duplicated


def test_rollback_gives_up_after_max_rollbacks(tmp_path, registry):
    path = tmp_path / "boom.toml"
    path.write_text(NAN_RECIPE, encoding="utf-8")
    _InjectNaN.ALWAYS = True
    recipe = load_recipe(
        path, registry,
        ["train.on_nonfinite=\"rollback\"", "train.rollback_lr_factor=0.9",
         "train.max_rollbacks=2"],
    )
    with pytest.raises(UserError, match="again after 2 rollbacks"):
        api.train(recipe, out=tmp_path / "run")
