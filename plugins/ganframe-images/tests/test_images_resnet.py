"""The ResNet generator and critic: shapes at 32/64/128 px, conditioning, attention, spectral
norm, errors; the plugin's registrations and recipes."""

from __future__ import annotations

import pytest
import torch
from ganframe_images.resnet import ResnetCritic, ResnetGenerator, SelfAttention
from torch.nn.utils import parametrize

from ganframe.errors import UserError
from ganframe.layers import ConditionalBatchNorm2d, ProjectionHead
from ganframe.testing import build_component, fake_data_info


def info(size: int = 32, channels: int = 3, labelled: bool = False):
    return fake_data_info("image", labelled=labelled, shape=[channels, size, size])


@pytest.mark.parametrize("size", [8, 16, 32, 64, 128])
def test_shapes_at_every_size(size):
    g = build_component("generator", "resnet", options={"base_width": 2, "latent_dim": 8},
                        data_info=info(size))
    d = build_component("critic", "resnet", options={"base_width": 2}, data_info=info(size))
    x = g.generate(3, device="cpu")
    assert x.shape == (3, 3, size, size) and float(x.detach().abs().max()) <= 1.0
    assert d(x).shape == (3,)
    assert not g.conditional and not getattr(d, "conditional", False)


def test_sngan_widths_and_parameter_counts():
    """The 32 px defaults are the SNGAN CIFAR networks: 256 and 128 channels, about 4.3 M and
    1.0 M parameters (Miyato et al. 2018, appendix)."""
    g, d = ResnetGenerator(), ResnetCritic()
    assert g.blocks[0].c1.out_channels == 256
    assert d.blocks[0].c1.out_channels == 128
    n_g = sum(p.numel() for p in g.parameters())
    n_d = sum(p.numel() for p in d.parameters())
    assert 4.0e6 < n_g < 4.5e6 and 0.9e6 < n_d < 1.2e6


def test_critic_weights_are_all_spectrally_normalised():
    d = ResnetCritic(base_width=2, attention=16)
    convs = [m for m in d.modules() if isinstance(m, torch.nn.Conv2d | torch.nn.Linear)]
    assert convs and all(parametrize.is_parametrized(m, "weight") for m in convs)
    g = ResnetGenerator(base_width=2)
    assert not any(parametrize.is_parametrized(m) for m in g.modules())


def test_conditional_models_use_the_shared_layers_and_the_labels():
    torch.manual_seed(0)
    g = build_component("generator", "resnet",
                        options={"base_width": 2, "latent_dim": 8, "conditional": True},
                        data_info=info(labelled=True))
    d = build_component("critic", "resnet", options={"base_width": 2, "conditional": True},
                        data_info=info(labelled=True))
    assert g.conditional and g.num_classes == 3 and d.conditional
    assert any(isinstance(m, ConditionalBatchNorm2d) for m in g.modules())
    assert isinstance(d.projection, ProjectionHead)
    # make the class tables differ, then the same noise gives class-dependent images
    for m in g.modules():
        if isinstance(m, ConditionalBatchNorm2d):
            torch.nn.init.normal_(m.beta.weight)
    g.eval()
    z = torch.randn(4, 8)
    a, b = g(z, torch.zeros(4, dtype=torch.long)), g(z, torch.ones(4, dtype=torch.long))
    assert not torch.allclose(a, b)
    x = torch.randn(4, 3, 32, 32)
    assert not torch.allclose(d(x, torch.zeros(4, dtype=torch.long)),
                              d(x, torch.full((4,), 2, dtype=torch.long)))
    assert g.generate(6, device="cpu", labels=1).shape == (6, 3, 32, 32)


def test_conditional_needs_labelled_data():
    with pytest.raises(UserError, match="needs labelled data"):
        build_component("generator", "resnet", options={"conditional": True},
                        data_info=info())
    with pytest.raises(UserError, match="needs labelled data"):
        build_component("critic", "resnet", options={"conditional": True}, data_info=info())


def test_unsupported_sizes_and_mismatches_are_clear():
    with pytest.raises(UserError, match="32, 64 or 128"):
        build_component("generator", "resnet", data_info=info(28, 1))
    with pytest.raises(UserError, match="not image data"):
        build_component("generator", "resnet", data_info=fake_data_info("points"))
    with pytest.raises(UserError, match="channels=1"):
        build_component("critic", "resnet", options={"channels": 1}, data_info=info())
    with pytest.raises(UserError, match="attention = 32"):
        build_component("critic", "resnet", options={"attention": 32}, data_info=info())


def test_attention_starts_as_identity_and_is_placed():
    att = SelfAttention(16, spectral=False)
    x = torch.randn(2, 16, 8, 8)
    assert torch.equal(att(x), x)  # gate 0
    torch.nn.init.ones_(att.gate)
    assert not torch.allclose(att(x), x)
    g = ResnetGenerator(8, 2, 32, 3, attention=16)
    d = ResnetCritic(2, 32, 3, attention=8)
    assert g.attn_after == 1 and d.attn_after == 1
    assert ResnetGenerator(8, 2, 32, 3).attn_after == -1


def test_gradients_reach_every_parameter():
    g = ResnetGenerator(8, 2, 32, 3, num_classes=2, attention=16)
    d = ResnetCritic(2, 32, 3, num_classes=2, attention=16)
    y = torch.tensor([0, 1, 1])
    d(g(torch.randn(3, 8), y), y).sum().backward()
    torch.nn.init.ones_(g.attention.gate)  # the gate has a gradient; what it gates has not yet
    missing = [n for n, p in [*g.named_parameters(), *d.named_parameters()]
               if p.grad is None and "attention" not in n]
    assert missing == []


def test_plugin_registers_everything_lazily():
    import subprocess
    import sys

    code = ("from ganframe.plugins import load_plugins; import sys; r = load_plugins().registry;"
            "assert r.get('dataset', 'image-folder') and r.get('dataset', 'cifar10');"
            "assert r.get('dataset', 'cifar100') and r.get('generator', 'resnet');"
            "assert r.get('critic', 'resnet');"
            "heavy = [m for m in ('torch', 'numpy', 'PIL') if m in sys.modules];"
            "assert not heavy, heavy")
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                          timeout=120)
    assert done.returncode == 0, done.stderr[-2000:]


@pytest.mark.parametrize("name", ["sngan-cifar10", "sngan-cifar10-cond"])
def test_shipped_recipes_validate_as_the_paper_says(name):
    from ganframe import api

    recipe = api.load_recipe(name)
    doc = recipe.recipe if hasattr(recipe, "recipe") else recipe
    text = repr(doc)
    assert "hinge" in text and "n_critic=5" in text and "cifar10" in text
    assert "0.0002" in text and "0.9" in text
    assert ("conditional=True" in text) == name.endswith("-cond")
