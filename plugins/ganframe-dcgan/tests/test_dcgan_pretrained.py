"""Image generators as shareable files: ``ganframe export`` -> ``ganframe sample`` for the
unconditional and the class-conditional DCGAN (tiny runs on self-made digits), and the latent
tools on images (interpolation strips, class interpolation, GIF walks, truncation).

The shipped ``dcgan-mnist`` file is checked against its model card in
``test_dcgan_card.py``.
"""

from __future__ import annotations

from pathlib import Path

import pytest
import torch
from ganframe_dcgan import metric
from PIL import Image
from typer.testing import CliRunner

from ganframe import api, latent
from ganframe.cli import app
from ganframe.export import export_generator

TINY = [
    'device="cpu"',
    "generator.base_width=8",
    "generator.latent_dim=8",
    "critic.base_width=8",
    "train.batch_size=16",
    "train.ema=0.9",
    "train.sample_every=0",
    "train.checkpoint_every=0",
    "metrics.0.every=0",
    "metrics.0.n_samples=50",
    "metrics.0.batch_size=50",
    "metrics.0.kid_subset_size=20",
    "metrics.0.kid_subsets=2",
]


@pytest.fixture
def digits(isolated_env, idxtools, monkeypatch):
    data = isolated_env / "data"
    idxtools.write_split(data / "mnist", "train", 64, seed=1)
    idxtools.write_split(data / "mnist", "test", 50, seed=2)
    monkeypatch.setenv("GANFRAME_DATA", str(data))
    monkeypatch.setattr(metric, "_REFERENCE", {})
    return isolated_env


def _run(recipe: str, out: Path) -> Path:
    from ganframe.testing import run_recipe

    return run_recipe(recipe, steps=2, out=out, overrides=TINY).checkpoint


def test_image_generator_round_trip_and_latent_tools(digits: Path, monkeypatch) -> None:
    ckpt = _run("dcgan-mnist", digits / "run")
    result = export_generator(ckpt, digits / "g.safetensors", half=True)
    assert result.weights == "ema" and result.dtype == "float16"
    a, b = api.sample(ckpt, 16, seed=3), api.sample(result.path, 16, seed=3)
    assert a.shape == (16, 1, 28, 28)
    torch.testing.assert_close(a, b, atol=0.05, rtol=0.05)
    assert "mnist-fid" in api.load_generator(result.path).loaded.meta["export"]["metrics"]

    monkeypatch.chdir(digits)
    runner = CliRunner()
    r = runner.invoke(app, ["sample", "g.safetensors", "-n", "9", "-o", "grid.png"])
    assert r.exit_code == 0, r.stderr
    r = runner.invoke(app, ["sample", "g.safetensors", "--interpolate", "-n", "2", "--steps",
                            "5", "-o", "strip.png"])
    assert r.exit_code == 0, r.stderr
    with Image.open(digits / "strip.png") as im:  # 2 rows of 5 tiles, 28 px + 2 px padding
        assert im.size == (2 + 5 * 30, 2 + 2 * 30)
    r = runner.invoke(app, ["sample", "g.safetensors", "--walk", "-n", "4", "--steps", "6",
                            "-o", "walk.gif"])
    assert r.exit_code == 0, r.stderr
    with Image.open(digits / "walk.gif") as im:
        assert im.n_frames == 6 and im.size == (2 + 2 * 30, 2 + 2 * 30)
    r = runner.invoke(app, ["sample", "g.safetensors", "--walk", "-n", "3", "--steps", "4",
                            "-o", "walk.png"])
    assert r.exit_code == 0, r.stderr
    with Image.open(digits / "walk.png") as im:  # one row per sample, one column per frame
        assert im.size == (2 + 4 * 30, 2 + 3 * 30)
    r = runner.invoke(app, ["sample", "g.safetensors", "--truncation", "0.5", "-n", "4",
                            "-o", "t.npy"])
    assert r.exit_code == 0, r.stderr
    r = runner.invoke(app, ["sample", "g.safetensors", "--temperature", "0.8", "-o", "x.png"])
    assert r.exit_code == 2 and "takes no sampling options" in r.stderr


def test_truncation_pulls_samples_towards_the_typical_one(digits: Path) -> None:
    gen = api.load_checkpoint(_run("dcgan-mnist", digits / "run")).generator
    rng = torch.Generator().manual_seed(0)
    z = latent.draw_latents(gen, 200, device="cpu", rng=rng)
    zt = latent.draw_latents(gen, 200, device="cpu", rng=torch.Generator().manual_seed(0),
                             truncation=0.3)
    spread = latent.decode(gen, z).std(0).mean()
    spread_t = latent.decode(gen, zt).std(0).mean()
    assert float(spread_t) < 0.8 * float(spread)


def test_conditional_image_generator_round_trip_and_class_interpolation(digits: Path) -> None:
    ckpt = _run("dcgan-mnist-cond", digits / "run")
    path = export_generator(ckpt, digits / "c.safetensors").path
    section = api.load_generator(path).loaded.meta["export"]
    assert section["num_classes"] == 10 and section["class_names"][3] == "3"
    assert torch.equal(api.sample(ckpt, 8, seed=1, labels=2),
                       api.sample(path, 8, seed=1, labels=2))
    gen = api.load_generator(path)
    assert gen.conditional and len(gen.class_names) == 10
    x = latent.interpolation(gen.module, 2, 4, device="cpu",
                             rng=torch.Generator().manual_seed(0), labels=[0, 3])
    x = x.view(2, 4, 1, 28, 28)
    z = gen.module.sample_latent(2, "cpu", torch.Generator().manual_seed(0))
    ends = latent.decode(gen.module, z, torch.tensor([0, 0])), latent.decode(
        gen.module, z, torch.tensor([3, 3]))
    torch.testing.assert_close(x[:, 0], ends[0])
    torch.testing.assert_close(x[:, -1], ends[1])
