"""DCGAN generator and critic: shapes for every supported image size, and their factories."""

from __future__ import annotations

from types import SimpleNamespace

import pytest
import torch
from ganframe_dcgan.models import DcganCritic, DcganGenerator, build_critic, build_generator
from ganframe_dcgan.plugin import DcganCriticConfig, DcganGeneratorConfig

from ganframe.components import LatentGenerator
from ganframe.errors import UserError


@pytest.mark.parametrize("size", [28, 32, 64])
@pytest.mark.parametrize("channels", [1, 3])
def test_generator_and_critic_shapes(size, channels):
    torch.manual_seed(0)
    g = DcganGenerator(latent_dim=16, base_width=8, image_size=size, channels=channels)
    x = g(torch.randn(5, 16))
    assert x.shape == (5, channels, size, size)
    assert x.min() >= -1 and x.max() <= 1
    for norm in ("none", "batch", "spectral"):
        d = DcganCritic(base_width=8, norm=norm, image_size=size, channels=channels)
        assert d(x).shape == (5,)


def test_generator_defaults_follow_the_classic_mnist_dcgan():
    g = build_generator(DcganGeneratorConfig(), SimpleNamespace(data_info={"shape": [1, 28, 28]}))
    assert isinstance(g, LatentGenerator) and g.latent_dim == 100
    assert g.project[0].in_features == 100 and g.project[0].out_features == 128 * 7 * 7
    assert isinstance(g.upsample[-1], torch.nn.Tanh)
    assert g.generate(3, device="cpu").shape == (3, 1, 28, 28)


def test_generate_is_reproducible_with_an_rng():
    g = DcganGenerator(latent_dim=10, base_width=4).eval()
    a = g.generate(4, device="cpu", rng=torch.Generator().manual_seed(3))
    b = g.generate(4, device="cpu", rng=torch.Generator().manual_seed(3))
    c = g.generate(4, device="cpu", rng=torch.Generator().manual_seed(4))
    assert torch.equal(a, b) and not torch.equal(a, c)


def test_shape_comes_from_the_data():
    ctx = SimpleNamespace(data_info={"shape": [3, 64, 64]})
    g = build_generator(DcganGeneratorConfig(base_width=4, latent_dim=8), ctx)
    d = build_critic(DcganCriticConfig(base_width=4), ctx)
    x = g.generate(2, device="cpu")
    assert x.shape == (2, 3, 64, 64) and d(x).shape == (2,)


def test_explicit_shape_without_data_info():
    g = build_generator(DcganGeneratorConfig(base_width=4, image_size=32, channels=3),
                        SimpleNamespace(data_info={}))
    assert g.generate(2, device="cpu").shape == (2, 3, 32, 32)


def test_conflicting_or_unsupported_shapes_are_user_errors():
    with pytest.raises(UserError, match="image_size=32"):
        build_generator(DcganGeneratorConfig(image_size=32),
                        SimpleNamespace(data_info={"shape": [1, 28, 28]}))
    with pytest.raises(UserError, match=r"\[1, 48, 48\]"):
        build_critic(DcganCriticConfig(), SimpleNamespace(data_info={"shape": [1, 48, 48]}))
    with pytest.raises(UserError, match="1 or 3 channels"):
        build_critic(DcganCriticConfig(), SimpleNamespace(data_info={"shape": [2, 28, 28]}))


def test_critic_norms_are_what_they_say():
    batch = DcganCritic(base_width=4, norm="batch")
    assert any(isinstance(m, torch.nn.BatchNorm2d) for m in batch.modules())
    plain = DcganCritic(base_width=4, norm="none")
    assert not any(isinstance(m, torch.nn.BatchNorm2d) for m in plain.modules())
    spectral = DcganCritic(base_width=4, norm="spectral")
    names = [n for n, _ in spectral.named_parameters()]
    assert names and all("parametrizations" in n for n in names if n.endswith("original"))
    assert sum("parametrizations" in n for n in names) == 3  # 2 convs + the linear
    # A critic trained with a per-sample penalty must score samples independently.
    x = torch.randn(4, 1, 28, 28)
    assert torch.allclose(plain(x)[:2], plain(x[:2]), atol=1e-6)

