"""The ``mnist-fid`` metric: shipped weights, and its values on known inputs.

The reference "test split" here is a tiny self-made one; the classifier is the shipped one.
One test checks the classifier's accuracy on real MNIST when ``GANFRAME_DATA`` has it.
"""

from __future__ import annotations

import os
from pathlib import Path
from types import SimpleNamespace

import pytest
import torch
from ganframe_dcgan import classifier, metric
from ganframe_dcgan.plugin import MnistFidConfig

from ganframe.components import EvalContext, LatentGenerator
from ganframe.errors import UserError


@pytest.fixture
def reference(isolated_env, idxtools, monkeypatch):
    """A 300-image self-made test split under $GANFRAME_DATA/mnist; its images in [-1, 1]."""
    data = isolated_env / "data"
    images, labels = idxtools.write_split(data / "mnist", "test", 300, seed=5)
    monkeypatch.setenv("GANFRAME_DATA", str(data))
    monkeypatch.setattr(metric, "_REFERENCE", {})
    x = torch.from_numpy(images).float().unsqueeze(1) / 127.5 - 1
    return SimpleNamespace(images=x, labels=labels)


def fid_metric(**overrides) -> metric.MnistFid:
    config = MnistFidConfig(**{"n_samples": 300, "batch_size": 100, "kid_subsets": 4,
                               "kid_subset_size": 150, **overrides})
    return metric.build_metric(config, SimpleNamespace())


def test_shipped_weights_are_small_and_pinned():
    path = classifier.weights_path()
    assert path.stat().st_size < 2 * 1024 * 1024
    assert classifier.sha256_of(path) == classifier.WEIGHTS_SHA256


def test_tampered_weights_are_refused(tmp_path):
    data = bytearray(classifier.weights_path().read_bytes())
    data[-1] ^= 0xFF
    bad = tmp_path / "weights.safetensors"
    bad.write_bytes(bytes(data))
    with pytest.raises(UserError, match="sha256") as err:
        classifier.load_classifier("cpu", path=bad)
    assert str(bad) in str(err.value)


def test_the_reference_against_itself_scores_as_perfect(reference):
    values = fid_metric().score(reference.images)
    assert values["fid"] == pytest.approx(0.0, abs=1e-3)
    assert sum(values["class_histogram"]) == 300 and len(values["class_histogram"]) == 10
    assert values["n_samples"] == 300


def test_kid_of_a_fresh_sample_of_the_same_distribution_is_near_zero(reference, idxtools):
    images, _ = idxtools.shapes(300, seed=11)
    fresh = torch.from_numpy(images).float().unsqueeze(1) / 127.5 - 1
    same = fid_metric().score(fresh)
    noise = fid_metric().score(torch.rand(300, 1, 28, 28) * 2 - 1)
    assert abs(same["kid"]) < 3 * same["kid_std"] + 0.02
    assert noise["kid"] > 0.2 and noise["kid"] > 20 * abs(same["kid"])


def test_noise_and_collapse_score_badly(reference):
    m = fid_metric()
    other_half = m.score(reference.images[150:])  # same distribution, fewer samples
    noise = m.score(torch.rand(300, 1, 28, 28) * 2 - 1)
    collapsed = m.score(reference.images[:1].repeat(300, 1, 1, 1)
                        + 0.01 * torch.randn(300, 1, 28, 28))
    assert other_half["fid"] < 0.2 * noise["fid"]
    assert noise["fid"] > 10 * max(other_half["fid"], 1.0)
    assert collapsed["classes_covered"] == 1
    assert collapsed["is"] < 1.1
    assert collapsed["fid"] > 5 * max(other_half["fid"], 1.0)


def test_coverage_counts_classes_with_a_fair_share(reference):
    m = fid_metric(coverage_share=0.5)
    values = m.score(reference.images)
    counts = torch.tensor(values["class_histogram"])
    assert values["classes_covered"] == int((counts >= 0.5 * 300 / 10).sum())


def test_reference_features_are_computed_once(reference, monkeypatch):
    calls = []
    real_embed = metric.embed

    def counting(images, *args, **kwargs):
        calls.append(images.shape[0])
        return real_embed(images, *args, **kwargs)

    monkeypatch.setattr(metric, "embed", counting)
    m = fid_metric()
    m.score(reference.images[:50])
    fid_metric().score(reference.images[:60])  # a second metric object, same process
    assert calls == [300, 50, 60]


class Replay(LatentGenerator):
    """A 'generator' that draws real images by latent index, to test evaluate()."""

    def __init__(self, images: torch.Tensor) -> None:
        super().__init__()
        self.latent_dim = 1
        self.images = images
        self.scale = torch.nn.Parameter(torch.ones(()))

    def forward(self, z: torch.Tensor) -> torch.Tensor:
        idx = (z[:, 0].abs() * 1000).long() % len(self.images)
        return self.images[idx] * self.scale


def test_evaluate_is_seeded_and_restores_train_mode(reference):
    gen = Replay(reference.images).train()
    m = fid_metric(n_samples=200)
    ctx = EvalContext(torch.device("cpu"), seed=3)
    a = m.evaluate(gen, None, ctx)
    b = m.evaluate(gen, None, ctx)
    assert gen.training
    assert a == b and a["n_samples"] == 200
    assert a["fid"] < 0.3 * m.score(torch.rand(200, 1, 28, 28) * 2 - 1)["fid"]
    assert m.evaluate(gen, None, EvalContext(torch.device("cpu"), seed=3, n_samples=50))[
        "n_samples"] == 50


def test_wrong_image_shape_is_a_user_error(reference):
    with pytest.raises(UserError, match="1x28x28"):
        fid_metric().score(torch.zeros(10, 3, 32, 32))


def test_metric_finds_the_test_split_next_to_the_recipe_data(isolated_env, idxtools):
    from ganframe_dcgan.plugin import MnistConfig

    idxtools.write_split(isolated_env / "recipe" / "digits", "test", 40)
    ctx = SimpleNamespace(data_config=MnistConfig(root="digits"),
                          recipe_dir=isolated_env / "recipe")
    m = metric.build_metric(MnistFidConfig(download=False), ctx)
    assert m.root == isolated_env / "recipe" / "digits"
    assert m.reference()["features"].shape == (40, classifier.FEATURE_DIM)


REAL = os.environ.get("GANFRAME_DATA")


@pytest.mark.skipif(
    not (REAL and (Path(REAL) / "mnist" / "t10k-images-idx3-ubyte.gz").exists()),
    reason="real MNIST not available through GANFRAME_DATA",
)
def test_shipped_classifier_is_accurate_on_real_mnist():
    from ganframe_dcgan.mnist import load_split
    from ganframe_dcgan.train_classifier import accuracy

    images, labels, _ = load_split("test", download_missing=False)
    assert accuracy(classifier.load_classifier("cpu"), images, labels) >= 0.985
