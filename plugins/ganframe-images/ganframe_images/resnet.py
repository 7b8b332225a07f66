"""ResNet generator and critic (SNGAN, Miyato et al. 2018; BigGAN's layouts, Brock et al. 2019)
for 32, 64 and 128 pixel images, unconditional or class-conditional, optional self-attention.

Generator: latent -> linear to a 4x4 grid -> up-sampling residual blocks (batch norm, ReLU,
nearest x2, 3x3 conv, twice; 1x1 conv shortcut) -> batch norm, ReLU, 3x3 conv, tanh. A
conditional generator replaces every batch norm with :class:`ganframe.layers.
ConditionalBatchNorm2d`. Critic: residual blocks with average-pool down-sampling (the first
one "optimised": conv before activation), ReLU, sum over the grid, a linear score; spectral
norm on every weight; a conditional critic adds the projection term
(:class:`ganframe.layers.ProjectionHead`, Miyato & Koyama 2018). A SAGAN self-attention block
(Zhang et al. 2019) can be placed at one resolution in each network.

Widths are ``base_width`` times a multiplier per block (:data:`G_LAYOUT`, :data:`D_LAYOUT`):
at 32 px the SNGAN CIFAR networks (generator 256 channels with base 64, critic 128 with base
32); at 64 and 128 px BigGAN's progressions.
"""

from __future__ import annotations

import math
from itertools import pairwise
from typing import Any

import torch
from torch import Tensor, nn
from torch.nn import functional as F
from torch.nn.utils import parametrize
from torch.nn.utils.parametrizations import spectral_norm

from ganframe.components import LatentGenerator
from ganframe.errors import UserError
from ganframe.layers import ConditionalBatchNorm2d, ProjectionHead

#: size -> width multipliers of the generator's blocks (input of the first, then each output)
G_LAYOUT: dict[int, tuple[int, ...]] = {
    8: (4, 4), 16: (4, 4, 4),  # toy sizes, for tests and quick checks
    32: (4, 4, 4, 4), 64: (16, 16, 8, 4, 2), 128: (16, 16, 8, 4, 2, 1)}
#: size -> (width multipliers of the critic's block outputs, which blocks down-sample)
D_LAYOUT: dict[int, tuple[tuple[int, ...], tuple[bool, ...]]] = {
    8: ((4, 4), (True, False)),
    16: ((4, 4, 4), (True, False, False)),
    32: ((4, 4, 4, 4), (True, True, False, False)),
    64: ((1, 2, 4, 8, 16), (True, True, True, True, False)),
    128: ((1, 2, 4, 8, 16, 16), (True, True, True, True, True, False)),
}


def _sn(module: nn.Module, on: bool) -> nn.Module:
    return spectral_norm(module) if on else module


def _init(module: nn.Module) -> None:
    """Xavier-uniform weights (gain sqrt(2) for 3x3 convs, 1 for the rest), as SNGAN's code;
    under spectral norm the original (pre-normalisation) weight is the one initialised."""
    for m in module.modules():
        if not isinstance(m, nn.Conv2d | nn.Linear):
            continue
        wide = isinstance(m, nn.Conv2d) and m.kernel_size == (3, 3)
        weight = (m.parametrizations.weight.original if parametrize.is_parametrized(m, "weight")
                  else m.weight)
        with torch.no_grad():
            nn.init.xavier_uniform_(weight, math.sqrt(2) if wide else 1.0)
        if m.bias is not None:
            nn.init.zeros_(m.bias)


class _Norm(nn.Module):
    """Batch norm, per class when ``num_classes``: one call shape for both."""

    def __init__(self, channels: int, num_classes: int) -> None:
        super().__init__()
        self.norm = (ConditionalBatchNorm2d(channels, num_classes) if num_classes
                     else nn.BatchNorm2d(channels))

    def forward(self, x: Tensor, labels: Tensor | None) -> Tensor:
        return self.norm(x, labels) if isinstance(self.norm, ConditionalBatchNorm2d) \
            else self.norm(x)


class SelfAttention(nn.Module):
    """SAGAN attention over the grid, with a learned gate that starts at 0 (identity)."""

    def __init__(self, channels: int, spectral: bool) -> None:
        super().__init__()
        c8, c2 = max(1, channels // 8), max(1, channels // 2)
        self.theta = _sn(nn.Conv2d(channels, c8, 1, bias=False), spectral)
        self.phi = _sn(nn.Conv2d(channels, c8, 1, bias=False), spectral)
        self.g = _sn(nn.Conv2d(channels, c2, 1, bias=False), spectral)
        self.o = _sn(nn.Conv2d(c2, channels, 1, bias=False), spectral)
        self.gate = nn.Parameter(torch.zeros(()))

    def forward(self, x: Tensor) -> Tensor:
        n, _c, h, w = x.shape
        theta = self.theta(x).flatten(2)  # n, c8, hw
        pool = h * w >= 4
        phi = self.phi(x)
        g = self.g(x)
        if pool:
            phi, g = F.max_pool2d(phi, 2), F.max_pool2d(g, 2)
        attn = torch.softmax(theta.transpose(1, 2) @ phi.flatten(2), dim=-1)  # n, hw, hw'
        out = (g.flatten(2) @ attn.transpose(1, 2)).view(n, -1, h, w)
        return x + self.gate * self.o(out)


class GBlock(nn.Module):
    def __init__(self, c_in: int, c_out: int, num_classes: int, spectral: bool) -> None:
        super().__init__()
        self.n1, self.n2 = _Norm(c_in, num_classes), _Norm(c_out, num_classes)
        self.c1 = _sn(nn.Conv2d(c_in, c_out, 3, padding=1), spectral)
        self.c2 = _sn(nn.Conv2d(c_out, c_out, 3, padding=1), spectral)
        self.skip = _sn(nn.Conv2d(c_in, c_out, 1), spectral)

    def forward(self, x: Tensor, labels: Tensor | None) -> Tensor:
        h = F.interpolate(F.relu(self.n1(x, labels)), scale_factor=2)
        h = self.c2(F.relu(self.n2(self.c1(h), labels)))
        return h + self.skip(F.interpolate(x, scale_factor=2))


class DBlock(nn.Module):
    def __init__(self, c_in: int, c_out: int, down: bool, first: bool) -> None:
        super().__init__()
        self.c1 = spectral_norm(nn.Conv2d(c_in, c_out, 3, padding=1))
        self.c2 = spectral_norm(nn.Conv2d(c_out, c_out, 3, padding=1))
        self.skip = (spectral_norm(nn.Conv2d(c_in, c_out, 1))
                     if c_in != c_out or down else None)
        self.down, self.first = down, first

    def forward(self, x: Tensor) -> Tensor:
        h = self.c2(F.relu(self.c1(x if self.first else F.relu(x))))
        if self.down:
            h = F.avg_pool2d(h, 2)
        s = x
        if self.first:  # pool, then project (SNGAN's optimised block)
            s = self.skip(F.avg_pool2d(s, 2) if self.down else s)  # type: ignore[misc]
        elif self.skip is not None:
            s = self.skip(s)
            s = F.avg_pool2d(s, 2) if self.down else s
        return h + s


class ResnetGenerator(LatentGenerator):
    """latent (N, latent_dim) [+ labels (N,)] -> images (N, channels, size, size) in [-1, 1]."""

    def __init__(self, latent_dim: int = 128, base_width: int = 64, image_size: int = 32,
                 channels: int = 3, num_classes: int = 0, attention: int = 0,
                 spectral: bool = False) -> None:
        super().__init__()
        widths = [base_width * m for m in G_LAYOUT[image_size]]
        self.latent_dim, self.image_size, self.channels = latent_dim, image_size, channels
        self.conditional, self.num_classes = bool(num_classes), num_classes
        self.linear = _sn(nn.Linear(latent_dim, widths[0] * 16), spectral)
        self.blocks = nn.ModuleList()
        self.attn_after = -1
        res = 4
        for i, (c_in, c_out) in enumerate(pairwise(widths)):
            self.blocks.append(GBlock(c_in, c_out, num_classes, spectral))
            res *= 2
            if attention == res:
                self.attention = SelfAttention(c_out, spectral)
                self.attn_after = i
        self.out_norm = nn.BatchNorm2d(widths[-1])
        self.out = _sn(nn.Conv2d(widths[-1], channels, 3, padding=1), spectral)
        _init(self)

    def forward(self, z: Tensor, labels: Tensor | None = None) -> Tensor:
        if self.conditional and labels is None:
            raise UserError("this ResNet generator is conditional: it needs class labels.")
        h = self.linear(z).view(z.shape[0], -1, 4, 4)
        for i, block in enumerate(self.blocks):
            h = block(h, labels if self.conditional else None)
            if i == self.attn_after:
                h = self.attention(h)
        return torch.tanh(self.out(F.relu(self.out_norm(h))))


class ResnetCritic(nn.Module):
    """images (N, channels, size, size) [+ labels (N,)] -> one unbounded score per image."""

    def __init__(self, base_width: int = 32, image_size: int = 32, channels: int = 3,
                 num_classes: int = 0, attention: int = 0) -> None:
        super().__init__()
        mults, downs = D_LAYOUT[image_size]
        widths = [base_width * m for m in mults]
        self.conditional, self.num_classes = bool(num_classes), num_classes
        self.blocks = nn.ModuleList()
        self.attn_after = -1
        res, c_in = image_size, channels
        for i, (c_out, down) in enumerate(zip(widths, downs, strict=True)):
            self.blocks.append(DBlock(c_in, c_out, down, first=i == 0))
            res = res // 2 if down else res
            c_in = c_out
            if attention == res and self.attn_after < 0 and down:
                self.attention = SelfAttention(c_out, True)
                self.attn_after = i
        self.linear = spectral_norm(nn.Linear(widths[-1], 1))
        self.projection = (ProjectionHead(num_classes, widths[-1], spectral=True)
                           if num_classes else None)
        _init(self)

    def forward(self, x: Tensor, labels: Tensor | None = None) -> Tensor:
        h = x
        for i, block in enumerate(self.blocks):
            h = block(h)
            if i == self.attn_after:
                h = self.attention(h)
        h = F.relu(h).sum(dim=(2, 3))
        out = self.linear(h).view(-1)
        if self.projection is not None:
            if labels is None:
                raise UserError("this ResNet critic is conditional: it needs class labels.")
            out = out + self.projection(h, labels)
        return out


def _shape(config: Any, info: dict[str, Any], what: str) -> tuple[int, int, int]:
    """(channels, size, num_classes) from the data, checked against the config."""
    shape = info.get("shape") if info else None
    if shape is None and info and ("dim" in info or "vocab" in info):
        raise UserError(f"the resnet {what} makes images, but the dataset is not image data "
                        "(its info has no 'shape'); use it with an image dataset.")
    if shape is None:
        size, channels = config.image_size or 32, config.channels or 3
    else:
        if len(shape) != 3 or shape[1] != shape[2] or shape[1] not in G_LAYOUT:
            raise UserError(f"the resnet {what} needs square 32, 64 or 128 pixel images (8 "
                            f"and 16 for toy data), but the dataset provides shape "
                            f"{list(shape)}; set data.size to one of those.")
        channels, size = int(shape[0]), int(shape[1])
        if config.channels not in (None, channels) or config.image_size not in (None, size):
            raise UserError(f"[{what}] asks for channels={config.channels}, image_size="
                            f"{config.image_size} but the dataset provides shape "
                            f"{list(shape)}; remove those keys from [{what}] or fix them.")
    classes = 0
    if config.conditional:
        classes = int(info.get("num_classes") or 0) if info else 0
        if classes < 1:
            raise UserError(f"[{what}] conditional = true needs labelled data (a dataset that "
                            "says num_classes, e.g. an image folder with class sub-folders), "
                            "but the dataset has no classes; set conditional = false.")
    if config.attention and not (8 <= config.attention < size):
        raise UserError(f"[{what}] attention = {config.attention}: the attention block sits "
                        f"at an inner resolution (8 to {size // 2} for {size} px images), or 0 "
                        "for none.")
    return channels, size, classes


def build_generator(config: Any, ctx: Any) -> ResnetGenerator:
    """Factory for the ``resnet`` generator (config: ``ResnetGeneratorConfig``)."""
    channels, size, classes = _shape(config, getattr(ctx, "data_info", {}), "generator")
    return ResnetGenerator(config.latent_dim, config.base_width, size, channels, classes,
                           config.attention, config.spectral_norm)


def build_critic(config: Any, ctx: Any) -> ResnetCritic:
    """Factory for the ``resnet`` critic (config: ``ResnetCriticConfig``)."""
    channels, size, classes = _shape(config, getattr(ctx, "data_info", {}), "critic")
    return ResnetCritic(config.base_width, size, channels, classes, config.attention)
