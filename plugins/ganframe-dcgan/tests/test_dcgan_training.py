"""End to end through ganframe.api: the shipped recipe, shrunk, learns self-made digits, and
its checkpoint samples to a PNG grid and an .npy array (also through ``ganframe sample``)."""

from __future__ import annotations

import json
from pathlib import Path
from types import SimpleNamespace

import numpy as np
import pytest
import torch
from ganframe_dcgan import metric
from ganframe_dcgan.models import build_generator
from ganframe_dcgan.plugin import DcganGeneratorConfig, MnistFidConfig

from ganframe.testing import assert_resumes_exactly, check_plugin, fake_data_info, make_context

REPO = Path(__file__).resolve().parents[3]

SMALL = [
    'device="cpu"',
    "generator.base_width=16",
    "generator.latent_dim=16",
    "critic.base_width=16",
    "train.batch_size=32",
    "train.steps=200",
    "train.ema=0.0",
    "train.sample_every=0",
    "train.checkpoint_every=0",
    "train.log_every=50",
    "optim.generator.lr=2e-3",
    "optim.critic.lr=1e-3",
    "metrics.0.every=0",
    "metrics.0.n_samples=200",
    "metrics.0.batch_size=100",
    "metrics.0.kid_subset_size=100",
    "metrics.0.kid_subsets=4",
]


@pytest.fixture
def digits(isolated_env, idxtools, monkeypatch):
    data = isolated_env / "data"
    idxtools.write_split(data / "mnist", "train", 512, seed=1)
    idxtools.write_split(data / "mnist", "test", 200, seed=2)
    monkeypatch.setenv("GANFRAME_DATA", str(data))
    monkeypatch.setattr(metric, "_REFERENCE", {})
    return isolated_env


def test_short_dcgan_run_learns_and_samples(digits):
    from ganframe import api

    torch.manual_seed(0)
    recipe = api.load_recipe(REPO / "recipes" / "dcgan-mnist.toml", overrides=SMALL)
    result = api.train(recipe, out=digits / "run")
    assert result.step == 200 and result.checkpoint is not None
    rows = [r for r in result.metrics if r.get("event") == "metric"]
    assert rows and rows[-1]["metric"] == "mnist-fid"
    trained_fid = rows[-1]["fid"]
    logged = [json.loads(line) for line in (digits / "run" / "metrics.jsonl").read_text()
              .splitlines()]
    assert any(r.get("fid") == trained_fid for r in logged)

    # The same generator before training, scored the same way.
    torch.manual_seed(0)
    untrained = build_generator(
        DcganGeneratorConfig(base_width=16, latent_dim=16),
        make_context(fake_data_info("image", shape=[1, 28, 28])),
    )
    config = MnistFidConfig(n_samples=200, batch_size=100, kid_subset_size=100, kid_subsets=4)
    m = metric.build_metric(config, SimpleNamespace())
    from ganframe.components import EvalContext

    before = m.evaluate(untrained, None, EvalContext(torch.device("cpu"), seed=0))
    assert trained_fid < 0.6 * before["fid"], (trained_fid, before["fid"])

    ckpt = api.load_checkpoint(result.checkpoint)
    x = api.sample(ckpt, 16, seed=1)
    assert x.shape == (16, 1, 28, 28) and x.min() >= -1 and x.max() <= 1
    assert torch.equal(x, api.sample(ckpt, 16, seed=1))
    npy = api.write_samples(x, digits / "digits.npy", ckpt)
    arr = np.load(npy)
    assert arr.shape == (16, 1, 28, 28) and arr.dtype == np.float32

    # The CLI, in-process (a subprocess would import torch a second time).
    from PIL import Image
    from typer.testing import CliRunner

    from ganframe.cli import app

    png = digits / "grid.png"
    run = CliRunner().invoke(app, ["sample", str(result.checkpoint), "-n", "16", "-o", str(png)])
    assert run.exit_code == 0, run.output

    with Image.open(png) as im:
        assert im.width >= 4 * 28 and im.height >= 4 * 28


def test_the_shipped_recipe_resumes_exactly(digits):
    # data order, labels, both networks, Adam and the RNGs: stopped half way and resumed,
    # the run ends exactly where a straight one does
    small = [s for s in SMALL if not s.startswith(("train.steps", "metrics."))]
    assert_resumes_exactly("dcgan-mnist", out=digits / "resume", steps=4,
                           overrides=[*small, "metrics=[]", "train.log_every=1"])


def test_ganframe_check_plugin_passes_on_tiny_digits(digits):
    result = check_plugin("dcgan")  # $GANFRAME_DATA holds the self-made digits
    assert result.ok, result.output
    rows = {(r["kind"], r["name"]): r for r in result.rows}
    assert rows[("dataset", "mnist")]["detail"].startswith("image data, 512 items")
    assert {r["status"] for r in result.rows} == {"ok"}, result.output
    assert {("recipe", "dcgan-mnist"), ("recipe", "wgan-gp-mnist"),
            ("metric", "mnist-fid")} <= set(rows)
