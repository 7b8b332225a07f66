"""Gaussian-ring data, MLP networks and the mode-coverage metric of the toy problem."""

from __future__ import annotations

import math
from typing import Any

import torch
from torch import Tensor, nn

from ganframe.components import BuildContext, EvalContext, LatentGenerator


def ring_centres(modes: int, radius: float) -> Tensor:
    angles = torch.arange(modes, dtype=torch.float64) * (2 * math.pi / modes)
    return (torch.stack([angles.cos(), angles.sin()], dim=1) * radius).float()


class GaussianRing:
    """A fixed draw of points, so every epoch sees the same data like a real dataset."""

    kind = "points"

    def __init__(self, config: Any, ctx: BuildContext | None = None) -> None:
        self.config = config
        rng = torch.Generator().manual_seed(config.seed)
        centres = ring_centres(config.modes, config.radius)
        which = torch.randint(config.modes, (config.size,), generator=rng)
        noise = torch.randn(config.size, 2, generator=rng) * config.std
        self.points = centres[which] + noise

    def __len__(self) -> int:
        return self.points.shape[0]

    def get(self, index: Tensor) -> Tensor:
        return self.points[index]

    def info(self) -> dict[str, Any]:
        c = self.config
        lim = c.radius + 4 * c.std
        return {
            "dim": 2,
            "modes": c.modes,
            "radius": c.radius,
            "std": c.std,
            "plot_range": [-lim, lim],
        }


def _mlp(inp: int, out: int, hidden: int, layers: int, act: type[nn.Module]) -> nn.Sequential:
    mods: list[nn.Module] = []
    width = inp
    for _ in range(layers):
        mods += [nn.Linear(width, hidden), act()]
        width = hidden
    mods.append(nn.Linear(width, out))
    return nn.Sequential(*mods)


class MLPGenerator(LatentGenerator):
    def __init__(self, latent_dim: int, out_dim: int, hidden: int, layers: int) -> None:
        super().__init__()
        self.latent_dim = latent_dim
        self.net = _mlp(latent_dim, out_dim, hidden, layers, nn.ReLU)

    def forward(self, z: Tensor) -> Tensor:
        return self.net(z)


class MLPCritic(nn.Module):
    def __init__(self, in_dim: int, hidden: int, layers: int) -> None:
        super().__init__()
        self.net = _mlp(in_dim, 1, hidden, layers, lambda: nn.LeakyReLU(0.2))

    def forward(self, x: Tensor) -> Tensor:
        return self.net(x.flatten(1)).squeeze(1)


def _data_dim(ctx: BuildContext) -> int:
    info = ctx.data_info
    if "dim" in info:
        return int(info["dim"])
    return int(math.prod(info.get("shape", [2])))


def build_generator(config: Any, ctx: BuildContext) -> MLPGenerator:
    return MLPGenerator(config.latent_dim, _data_dim(ctx), config.hidden, config.layers)


def build_critic(config: Any, ctx: BuildContext) -> MLPCritic:
    return MLPCritic(_data_dim(ctx), config.hidden, config.layers)


def sliced_w1(a: Tensor, b: Tensor, projections: int = 64, seed: int = 0) -> float:
    """Sliced 1-Wasserstein distance between two equally sized point sets."""
    n = min(a.shape[0], b.shape[0])
    a, b = a[:n].double(), b[:n].double()
    rng = torch.Generator().manual_seed(seed)
    dirs = torch.randn(a.shape[1], projections, generator=rng, dtype=torch.float64)
    dirs /= dirs.norm(dim=0, keepdim=True)
    pa, _ = (a @ dirs).sort(dim=0)
    pb, _ = (b @ dirs).sort(dim=0)
    return float((pa - pb).abs().mean())


class RingModes:
    """How many modes a generator covers and how close it is to the real ring."""

    def __init__(self, config: Any, ctx: BuildContext | None = None) -> None:
        self.config = config

    def evaluate(self, generator: nn.Module, dataset: Any, ctx: EvalContext) -> dict[str, Any]:
        info = ctx.data_info
        modes, radius, std = int(info["modes"]), float(info["radius"]), float(info["std"])
        n = self.config.n_samples
        rng = torch.Generator(device=ctx.device).manual_seed(ctx.seed)
        with torch.no_grad():
            fake = generator.generate(n, device=ctx.device, rng=rng).float().cpu()
        centres = ring_centres(modes, radius)
        dist = torch.cdist(fake, centres)
        nearest_d, nearest = dist.min(dim=1)
        good = nearest_d <= self.config.sigmas * std
        counts = torch.bincount(nearest[good], minlength=modes)
        covered = int((counts >= self.config.min_share * n / modes).sum())
        real_rng = torch.Generator().manual_seed(ctx.seed + 1)
        which = torch.randint(modes, (n,), generator=real_rng)
        real = centres[which] + torch.randn(n, 2, generator=real_rng) * std
        return {
            "modes_covered": covered,
            "high_quality": float(good.float().mean()),
            "sliced_w1": sliced_w1(fake, real, seed=ctx.seed),
        }
