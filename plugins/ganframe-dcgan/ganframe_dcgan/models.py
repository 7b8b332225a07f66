"""DCGAN generator and critic (Radford et al., 2015) for 28, 32 and 64 pixel images.

The networks mirror each other: the generator projects the latent vector to a small grid
(7x7 for 28 px, 4x4 otherwise) and doubles the resolution per transposed conv while halving
the width; the critic halves the resolution per strided conv while doubling the width. Image
shape comes from the dataset's ``info()["shape"]``, so checkpoints rebuild without the data.

With ``conditional = true`` (labelled data) the generator's batch norms become conditional
batch norms (a per-class scale and shift, :class:`ganframe.layers.ConditionalBatchNorm2d`)
and the critic adds a projection term (Miyato & Koyama 2018, :class:`ganframe.layers.
ProjectionHead`) to its output. With ``aux_classifier = true`` the critic also has a linear
class head for the AC-GAN loss option (``[loss] aux_classifier``). Unconditional networks are
built exactly as before (same parameters, same random draws, same outputs).
"""

from __future__ import annotations

from itertools import pairwise
from typing import Any

import torch
import torch.nn.functional as F
from torch import Tensor, nn
from torch.nn.utils.parametrizations import spectral_norm

from ganframe.components import LatentGenerator
from ganframe.errors import UserError
from ganframe.layers import ConditionalBatchNorm2d, ProjectionHead

#: image size -> (side of the smallest grid, number of 2x resamplings)
LAYOUT: dict[int, tuple[int, int]] = {28: (7, 2), 32: (4, 3), 64: (4, 4)}


def _init_weights(module: nn.Module) -> None:
    """DCGAN's initialisation: N(0, 0.02) weights, BN scales around 1."""
    if isinstance(module, nn.Conv2d | nn.ConvTranspose2d | nn.Linear):
        nn.init.normal_(module.weight, 0.0, 0.02)
        if module.bias is not None:
            nn.init.zeros_(module.bias)
    elif isinstance(module, nn.BatchNorm1d | nn.BatchNorm2d) and module.affine:
        nn.init.normal_(module.weight, 1.0, 0.02)
        nn.init.zeros_(module.bias)


class DcganGenerator(LatentGenerator):
    """latent (N, latent_dim) -> images (N, channels, size, size) in [-1, 1]; with
    ``num_classes > 0``, ``forward(z, labels)`` and conditional batch norms."""

    def __init__(
        self, latent_dim: int = 100, base_width: int = 64, image_size: int = 28,
        channels: int = 1, num_classes: int = 0,
    ) -> None:
        super().__init__()
        start, n_up = LAYOUT[image_size]
        widths = [base_width * 2 ** (n_up - 1 - i) for i in range(n_up)]
        self.latent_dim = latent_dim
        self.image_size = image_size
        self.channels = channels
        self._grid = (widths[0], start, start)
        features = widths[0] * start * start
        if num_classes:
            self._build_conditional(latent_dim, widths, channels, num_classes)
            return
        self.project = nn.Sequential(
            nn.Linear(latent_dim, features, bias=False),
            nn.BatchNorm1d(features),
            nn.ReLU(inplace=True),
        )
        layers: list[nn.Module] = []
        for w_in, w_out in pairwise(widths):
            layers += [
                nn.ConvTranspose2d(w_in, w_out, 4, stride=2, padding=1, bias=False),
                nn.BatchNorm2d(w_out),
                nn.ReLU(inplace=True),
            ]
        layers += [nn.ConvTranspose2d(widths[-1], channels, 4, stride=2, padding=1), nn.Tanh()]
        self.upsample = nn.Sequential(*layers)
        self.apply(_init_weights)

    def _build_conditional(
        self, latent_dim: int, widths: list[int], channels: int, num_classes: int
    ) -> None:
        """The same layers with class-conditional batch norms. The projection is normalised
        per channel of the smallest grid (a conditional norm per feature of the flat
        projection would need thousands of parameters per class)."""
        self.conditional, self.num_classes = True, num_classes
        self.project = nn.Linear(latent_dim, widths[0] * self._grid[1] * self._grid[2],
                                 bias=False)
        self.norms = nn.ModuleList(ConditionalBatchNorm2d(w, num_classes) for w in widths)
        self.convs = nn.ModuleList(
            [nn.ConvTranspose2d(w_in, w_out, 4, stride=2, padding=1, bias=False)
             for w_in, w_out in pairwise(widths)]
            + [nn.ConvTranspose2d(widths[-1], channels, 4, stride=2, padding=1)]
        )
        self.apply(_init_weights)

    def forward(self, z: Tensor, labels: Tensor | None = None) -> Tensor:
        if not self.conditional:
            return self.upsample(self.project(z).view(z.shape[0], *self._grid))
        if labels is None:
            raise UserError("the conditional dcgan generator needs the class of every sample.")
        h = self.project(z).view(z.shape[0], *self._grid)
        for norm, conv in zip(self.norms, self.convs, strict=True):
            h = conv(F.relu(norm(h, labels)))
        return torch.tanh(h)


class DcganCritic(nn.Module):
    """images (N, channels, size, size) -> one unbounded score per image, shape (N,).

    ``num_classes > 0``: a projection critic, ``forward(x, labels)`` adds
    ``<embed(labels), h>`` to the score, with ``h`` the flattened features the last linear
    layer reads. ``aux_classes > 0``: a linear class head on the same features, read by
    :meth:`classify` (AC-GAN); it does not change the score.
    """

    conditional: bool = False
    num_classes: int = 0

    def __init__(
        self, base_width: int = 64, norm: str = "batch", image_size: int = 28,
        channels: int = 1, num_classes: int = 0, aux_classes: int = 0,
    ) -> None:
        super().__init__()
        end, n_down = LAYOUT[image_size]
        widths = [base_width * 2**i for i in range(n_down)]
        wrap = spectral_norm if norm == "spectral" else (lambda m: m)
        # No normalisation on the first conv: batch norm there hurts DCGAN (paper, sec. 3).
        layers: list[nn.Module] = [
            wrap(nn.Conv2d(channels, widths[0], 4, stride=2, padding=1)),
            nn.LeakyReLU(0.2, inplace=True),
        ]
        for w_in, w_out in pairwise(widths):
            layers.append(wrap(nn.Conv2d(w_in, w_out, 4, stride=2, padding=1,
                                         bias=norm != "batch")))
            if norm == "batch":
                layers.append(nn.BatchNorm2d(w_out))
            layers.append(nn.LeakyReLU(0.2, inplace=True))
        layers += [nn.Flatten(), wrap(nn.Linear(widths[-1] * end * end, 1))]
        self.net = nn.Sequential(*layers)
        self.norm = norm
        features = widths[-1] * end * end
        self.aux_classes = aux_classes
        if num_classes:
            self.conditional, self.num_classes = True, num_classes
            self.project = ProjectionHead(num_classes, features, spectral=norm == "spectral")
        if aux_classes:
            self.aux_head = wrap(nn.Linear(features, aux_classes))
        # Spectral norm registers its parametrisation first; initialise the originals.
        for m in self.modules():
            if isinstance(m, nn.BatchNorm2d):
                _init_weights(m)
            elif isinstance(m, nn.Conv2d | nn.Linear) and norm != "spectral":
                _init_weights(m)

    def features(self, x: Tensor) -> Tensor:
        """(N, F): the flattened features the score's linear layer reads."""
        return self.net[:-1](x)

    def forward(self, x: Tensor, labels: Tensor | None = None) -> Tensor:
        if not self.conditional:
            return self.net(x).view(-1)
        if labels is None:
            raise UserError("the conditional dcgan critic needs the class of every sample.")
        h = self.features(x)
        return self.net[-1](h).view(-1) + self.project(h, labels)

    def score_and_classes(self, x: Tensor, labels: Tensor | None = None) -> tuple[Tensor, Tensor]:
        """The score (as :meth:`forward`) and the AC-GAN class logits (N, aux_classes) from
        one pass through the convolutions."""
        if not self.aux_classes:
            raise UserError(
                "the dcgan critic has no auxiliary class head; set aux_classifier = true in "
                "[critic] to train it with the AC-GAN loss option."
            )
        h = self.features(x)
        score = self.net[-1](h).view(-1)
        if self.conditional:
            if labels is None:
                raise UserError("the conditional dcgan critic needs the class of every sample.")
            score = score + self.project(h, labels)
        return score, self.aux_head(h)


def image_shape(config: Any, data_info: dict[str, Any], what: str) -> tuple[int, int]:
    """(channels, size): the dataset's shape, checked against explicit config values."""
    shape = data_info.get("shape") if data_info else None
    channels, size = config.channels, config.image_size
    if shape is not None:
        if len(shape) != 3 or shape[1] != shape[2] or shape[1] not in LAYOUT:
            raise UserError(
                f"the dcgan {what} needs square 28, 32 or 64 pixel images, but the dataset "
                f"provides shape {list(shape)}; choose another [{what}] type."
            )
        if channels not in (None, shape[0]) or size not in (None, shape[1]):
            raise UserError(
                f"[{what}] asks for channels={channels}, image_size={size} but the dataset "
                f"provides shape {list(shape)}; remove those keys from [{what}] or fix them."
            )
        return int(shape[0]), int(shape[1])
    return channels or 1, size or 28


def build_generator(config: Any, ctx: Any) -> DcganGenerator:
    """Factory for the ``dcgan`` generator (config: ``DcganGeneratorConfig``)."""
    channels, size = image_shape(config, getattr(ctx, "data_info", {}), "generator")
    if channels not in (1, 3):
        raise UserError(f"the dcgan generator supports 1 or 3 channels, the data has {channels}.")
    k = _num_classes(getattr(config, "conditional", False), ctx, "generator")
    return DcganGenerator(config.latent_dim, config.base_width, size, channels, k)


def build_critic(config: Any, ctx: Any) -> DcganCritic:
    """Factory for the ``dcgan`` critic (config: ``DcganCriticConfig``)."""
    channels, size = image_shape(config, getattr(ctx, "data_info", {}), "critic")
    if channels not in (1, 3):
        raise UserError(f"the dcgan critic supports 1 or 3 channels, the data has {channels}.")
    k = _num_classes(getattr(config, "conditional", False), ctx, "critic")
    aux = _num_classes(getattr(config, "aux_classifier", False), ctx, "critic")
    return DcganCritic(config.base_width, config.norm, size, channels, k, aux)


def _num_classes(wanted: bool, ctx: Any, what: str) -> int:
    """0 when the option is off; else the data's class count (an error without labels)."""
    if not wanted:
        return 0
    k = (getattr(ctx, "data_info", None) or {}).get("num_classes")
    if not isinstance(k, int) or k < 1:
        raise UserError(
            f"the dcgan {what}: conditional = true (or aux_classifier = true) needs labelled "
            "data, but the dataset gives no num_classes; use a labelled dataset (mnist, an "
            "image folder with class sub-folders) or turn the option off."
        )
    return k

