"""The class-conditional DCGAN: unconditional networks unchanged, conditional batch norm and
projection critic wired to the labels, the shipped dcgan-mnist-cond recipe learning the
requested classes on self-made digits, per-class sample grids (training and ``ganframe
sample --labels all``), exact resume (also with DiffAugment) and the AC-GAN class head."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import torch
from ganframe_dcgan import metric
from ganframe_dcgan.models import DcganCritic, DcganGenerator, build_critic, build_generator
from ganframe_dcgan.plugin import DcganCriticConfig, DcganGeneratorConfig
from PIL import Image

from ganframe.errors import UserError
from ganframe.testing import assert_resumes_exactly, fake_data_info, make_context

PAD, SIDE = 2, 28  # the PNG grid's padding and tile side

SMALL = [
    'device="cpu"',
    "generator.base_width=16",
    "generator.latent_dim=16",
    "critic.base_width=16",
    "train.batch_size=32",
    "train.ema=0.0",
    "train.checkpoint_every=0",
    "train.log_every=50",
    "optim.generator.lr=2e-3",
    "optim.critic.lr=1e-3",
    "metrics=[]",
]


@pytest.fixture
def digits(isolated_env, idxtools, monkeypatch):
    data = isolated_env / "data"
    idxtools.write_split(data / "mnist", "train", 512, seed=1)
    idxtools.write_split(data / "mnist", "test", 200, seed=2)
    monkeypatch.setenv("GANFRAME_DATA", str(data))
    monkeypatch.setattr(metric, "_REFERENCE", {})
    return isolated_env


# -- the networks -----------------------------------------------------------------------------


def test_unconditional_networks_are_unchanged():
    """Keys, initial weights and outputs as before conditioning existed (the sums were
    measured with the previous models.py), so old checkpoints and runs stay valid."""
    torch.manual_seed(0)
    gen, critic = DcganGenerator(), DcganCritic()
    assert list(gen.state_dict()) == [
        "project.0.weight", "project.1.weight", "project.1.bias", "project.1.running_mean",
        "project.1.running_var", "project.1.num_batches_tracked", "upsample.0.weight",
        "upsample.1.weight", "upsample.1.bias", "upsample.1.running_mean",
        "upsample.1.running_var", "upsample.1.num_batches_tracked", "upsample.3.weight",
        "upsample.3.bias",
    ]
    assert not any("project" in k and "embed" in k for k in critic.state_dict())
    assert not gen.conditional and not critic.conditional
    torch.manual_seed(1)
    z = torch.randn(3, 100)
    with torch.no_grad():
        x = gen(z)
        assert float(x.double().sum()) == pytest.approx(15.776272622431861, abs=1e-4)
        assert float(critic(x).double().sum()) == pytest.approx(-1.952408672310412, abs=1e-4)


def test_conditional_generator_draws_from_its_class_rows():
    torch.manual_seed(0)
    gen = DcganGenerator(latent_dim=8, base_width=8, num_classes=4).eval()
    assert gen.conditional and gen.num_classes == 4
    z = torch.randn(4, 8)
    labels = torch.tensor([0, 1, 3, 3])
    with torch.no_grad():
        before = gen(z, labels)
        gen.norms[0].beta.weight[3] += 1.0  # class 3's shift only
        after = gen(z, labels)
    changed = (before - after).flatten(1).abs().amax(1) > 0
    assert changed.tolist() == [False, False, True, True]
    x = gen.generate(6, device="cpu", rng=torch.Generator().manual_seed(0), labels=2)
    assert x.shape == (6, 1, 28, 28)
    with pytest.raises(UserError, match="out of range"):
        gen.generate(2, device="cpu", labels=4)


def test_projection_critic_adds_the_class_term():
    torch.manual_seed(0)
    critic = DcganCritic(base_width=8, num_classes=3, aux_classes=3).eval()
    x = torch.randn(2, 1, 28, 28)
    y = torch.tensor([0, 2])
    with torch.no_grad():
        h = critic.features(x)
        plain = critic.net[-1](h).view(-1)
        expect = plain + (critic.project.embed.weight[y] * h).sum(1)
        torch.testing.assert_close(critic(x, y), expect)
        assert not torch.allclose(critic(x, y), critic(x, torch.tensor([1, 1])))
        score, logits = critic.score_and_classes(x, y)
    torch.testing.assert_close(score, expect)
    assert logits.shape == (2, 3)
    with pytest.raises(UserError, match="no auxiliary class head"):
        DcganCritic(base_width=8).score_and_classes(x)


def test_conditional_needs_labelled_data():
    info = fake_data_info("image", shape=[1, 28, 28])
    info.pop("num_classes", None)
    with pytest.raises(UserError, match="needs labelled data"):
        build_generator(DcganGeneratorConfig(conditional=True), make_context(info))
    with pytest.raises(UserError, match="needs labelled data"):
        build_critic(DcganCriticConfig(aux_classifier=True), make_context(info))
    info["num_classes"] = 5
    critic = build_critic(DcganCriticConfig(conditional=True, norm="spectral", base_width=8),
                          make_context(info))
    assert critic.conditional and critic.num_classes == 5 and critic.project.spectral


# -- the recipe, end to end -------------------------------------------------------------------


def _tiles(png: Path) -> tuple[int, int, list[float]]:
    """(rows, columns, pixel spread of each tile) of a sample grid."""
    with Image.open(png) as im:
        a = np.asarray(im.convert("L"), dtype=np.float32)
    rows, cols = (a.shape[0] - PAD) // (SIDE + PAD), (a.shape[1] - PAD) // (SIDE + PAD)
    assert a.shape == (rows * (SIDE + PAD) + PAD, cols * (SIDE + PAD) + PAD)
    spread = [
        float(a[PAD + r * (SIDE + PAD):][:SIDE, PAD + c * (SIDE + PAD):][:, :SIDE].std())
        for r in range(rows) for c in range(cols)
    ]
    return rows, cols, spread


def _class_means(x: torch.Tensor, labels: torch.Tensor, k: int) -> torch.Tensor:
    return torch.stack([x[labels == c].mean(0).flatten() for c in range(k)])


def test_conditional_recipe_learns_the_requested_classes(digits, idxtools):
    from typer.testing import CliRunner

    from ganframe import api
    from ganframe.cli import app

    torch.manual_seed(0)
    recipe = api.load_recipe("dcgan-mnist-cond", overrides=[
        *SMALL, "train.steps=200", "train.sample_every=0", "train.sample_count=20"])
    result = api.train(recipe, out=digits / "run")
    ckpt = api.load_checkpoint(result.checkpoint)
    assert ckpt.generator.conditional and ckpt.generator.num_classes == 10

    # the training grid: 20 samples = 2 per digit, one row per digit
    rows, cols, spread = _tiles(digits / "run" / "samples" / "step-00000200.png")
    assert (rows, cols) == (10, 2) and min(spread) > 0

    # each generated image is nearest to the mean real image of the class it was drawn for
    # (the self-made data has 4 stroke shapes: ring, vertical bar, horizontal bar, cross);
    # measured 0.92 after 200 steps, 0.28 after 50 (chance: 0.25)
    images, labels = idxtools.shapes(512, seed=1)
    real = _class_means(torch.from_numpy(images).float() / 127.5 - 1, torch.from_numpy(
        labels).long(), 4)
    want = torch.arange(4).repeat_interleave(25)
    fake = api.sample(ckpt, 100, seed=3, labels=want)[:, 0].flatten(1)
    accuracy = (torch.cdist(fake, real).argmin(1) == want).float().mean()
    assert accuracy > 0.75, accuracy

    # ganframe sample --labels all: one row per class, -n rounded up to 3 per class
    png = digits / "all.png"
    run = CliRunner().invoke(app, ["sample", str(result.checkpoint), "--labels", "all",
                                   "-n", "25", "-o", str(png)])
    assert run.exit_code == 0, run.output
    assert "wrote 30 samples" in run.output
    rows, cols, spread = _tiles(png)
    assert (rows, cols) == (10, 3) and len(spread) == 30 and min(spread) > 0
    # a list of classes: one row per listed class
    run = CliRunner().invoke(app, ["sample", str(result.checkpoint), "--labels", "1,2",
                                   "-n", "6", "-o", str(png)])
    assert run.exit_code == 0, run.output
    assert _tiles(png)[:2] == (2, 3)


def test_conditional_recipe_resumes_exactly_with_and_without_diffaugment(digits):
    from ganframe.testing import checkpoint_tensors

    base = [*SMALL, "train.log_every=1", "train.sample_every=0"]
    augmented = [*base, 'train.augment="color,translation,cutout"']
    assert_resumes_exactly("dcgan-mnist-cond", out=digits / "plain", steps=4, overrides=base)
    assert_resumes_exactly("dcgan-mnist-cond", out=digits / "aug", steps=4, overrides=augmented)
    # the augmentation really reached the critic: the same seed trains other weights
    plain, aug = (checkpoint_tensors(digits / run / "straight" / "checkpoints" /
                                     "last.safetensors") for run in ("plain", "aug"))
    key = "critic.project.embed.weight"
    assert key in plain and not torch.equal(plain[key], aug[key])


def test_acgan_option_trains_the_class_head(digits):
    from ganframe import api

    torch.manual_seed(0)
    recipe = api.load_recipe("dcgan-mnist-cond", overrides=[
        *SMALL, "train.steps=60", "train.log_every=20", "train.sample_every=0",
        "critic.aux_classifier=true", "loss.aux_classifier=1.0"])
    result = api.train(recipe, out=digits / "acgan")
    rows = [r for r in result.metrics if r.get("event") == "train"]
    assert rows[-1]["aux_loss"] < rows[0]["aux_loss"]
    assert rows[-1]["aux_acc_real"] > 0.9, rows[-1]
