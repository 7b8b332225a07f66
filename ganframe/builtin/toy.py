"""Gaussian-ring data, MLP networks and the metrics of the toy problem.

With ``labels = true`` the ring is labelled (a point's class is its mode), and the MLPs with
``conditional = true`` learn to draw a chosen mode: the smallest class-conditional GAN that
exercises labels end to end.
"""

from __future__ import annotations

import math
from typing import Any

import torch
from torch import Tensor, nn

from ganframe.components import Batch, BuildContext, EvalContext, LatentGenerator
from ganframe.errors import UserError


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
        #: the mode each point was drawn from: its class when the ring is labelled
        self.modes = which
        self.labelled = bool(getattr(config, "labels", False))

    def __len__(self) -> int:
        return self.points.shape[0]

    def get(self, index: Tensor) -> Tensor | Batch:
        if self.labelled:
            return Batch(self.points[index], self.modes[index])
        return self.points[index]

    def info(self) -> dict[str, Any]:
        c = self.config
        lim = c.radius + 4 * c.std
        info: dict[str, Any] = {
            "dim": 2,
            "modes": c.modes,
            "radius": c.radius,
            "std": c.std,
            "plot_range": [-lim, lim],
        }
        if self.labelled:  # unlabelled info stays as it was: it is stored in checkpoints
            info["num_classes"] = c.modes
            info["class_names"] = [f"mode {k}" for k in range(c.modes)]
        return info


def _mlp(inp: int, out: int, hidden: int, layers: int, act: type[nn.Module]) -> nn.Sequential:
    mods: list[nn.Module] = []
    width = inp
    for _ in range(layers):
        mods += [nn.Linear(width, hidden), act()]
        width = hidden
    mods.append(nn.Linear(width, out))
    return nn.Sequential(*mods)


#: Width of the critic's class embedding (the generator's is its latent_dim).
CRITIC_EMBEDDING = 16


class MLPGenerator(LatentGenerator):
    """With ``num_classes > 0`` it is conditional: a learned class embedding, as wide as the
    noise, is concatenated to z (Mirza & Osindero, 2014)."""

    def __init__(
        self, latent_dim: int, out_dim: int, hidden: int, layers: int, num_classes: int = 0
    ) -> None:
        super().__init__()
        self.latent_dim = latent_dim
        width = latent_dim * 2 if num_classes else latent_dim
        self.net = _mlp(width, out_dim, hidden, layers, nn.ReLU)
        if num_classes:  # built after net, so an unconditional model draws the same weights
            self.conditional, self.num_classes = True, num_classes
            self.embed = nn.Embedding(num_classes, latent_dim)

    def forward(self, z: Tensor, labels: Tensor | None = None) -> Tensor:
        if self.conditional:
            z = torch.cat([z, self.embed(labels).to(z.dtype)], dim=1)
        return self.net(z)


class MLPCritic(nn.Module):
    """With ``num_classes > 0`` it is conditional: a class embedding is concatenated to x."""

    conditional = False

    def __init__(self, in_dim: int, hidden: int, layers: int, num_classes: int = 0) -> None:
        super().__init__()
        width = in_dim + CRITIC_EMBEDDING if num_classes else in_dim
        self.net = _mlp(width, 1, hidden, layers, lambda: nn.LeakyReLU(0.2))
        if num_classes:
            self.conditional, self.num_classes = True, num_classes
            self.embed = nn.Embedding(num_classes, CRITIC_EMBEDDING)

    def forward(self, x: Tensor, labels: Tensor | None = None) -> Tensor:
        x = x.flatten(1)
        if self.conditional:
            x = torch.cat([x, self.embed(labels).to(x.dtype)], dim=1)
        return self.net(x).squeeze(1)


def _data_dim(ctx: BuildContext) -> int:
    info = ctx.data_info
    if "dim" in info:
        return int(info["dim"])
    return int(math.prod(info.get("shape", [2])))


def _num_classes(config: Any, ctx: BuildContext, what: str) -> int:
    """0 for an unconditional network; the data's class count for a conditional one."""
    if not getattr(config, "conditional", False):
        return 0
    k = ctx.data_info.get("num_classes")
    if not isinstance(k, int) or k < 1:
        raise UserError(
            f"{what}: conditional = true needs labelled data, but the data gives no "
            "num_classes; use a dataset with labels (e.g. gaussian-ring with labels = true), "
            "or set conditional = false."
        )
    return k


def build_generator(config: Any, ctx: BuildContext) -> MLPGenerator:
    return MLPGenerator(
        config.latent_dim,
        _data_dim(ctx),
        config.hidden,
        config.layers,
        _num_classes(config, ctx, "generator mlp"),
    )


def build_critic(config: Any, ctx: BuildContext) -> MLPCritic:
    return MLPCritic(
        _data_dim(ctx), config.hidden, config.layers, _num_classes(config, ctx, "critic mlp")
    )


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


def ring_description(info: Any) -> tuple[int, float, float]:
    """``modes``, ``radius`` and ``std`` of a ring's data description, checked: it comes
    from a checkpoint when a metric is evaluated on one (``ganframe eval``)."""
    from ganframe.builtin.toy_plugin import MAX_MODES

    try:
        modes, radius, std = info["modes"], info["radius"], info["std"]
    except (KeyError, TypeError):
        modes = radius = std = None
    numbers = [v for v in (radius, std)
               if isinstance(v, int | float) and not isinstance(v, bool) and math.isfinite(v)
               and 0 < v <= 1e6]
    if not (isinstance(modes, int) and not isinstance(modes, bool) and 2 <= modes <= MAX_MODES
            and len(numbers) == 2):
        raise UserError(
            "the data description (data_info) is not a gaussian-ring's: its metrics need "
            f"modes (2 to {MAX_MODES}), radius and std (positive numbers); found modes="
            f"{modes!r:.40}, radius={radius!r:.40}, std={std!r:.40}. Evaluate a checkpoint of "
            "a gaussian-ring run."
        )
    return modes, float(radius), float(std)


class RingModes:
    """How many modes a generator covers and how close it is to the real ring."""

    def __init__(self, config: Any, ctx: BuildContext | None = None) -> None:
        self.config = config

    def evaluate(self, generator: nn.Module, dataset: Any, ctx: EvalContext) -> dict[str, Any]:
        modes, radius, std = ring_description(ctx.data_info)
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


class RingLabelAccuracy:
    """How well a conditional generator draws the mode it is asked for: the share of the
    points generated for label k whose nearest mode is k (chance: 1 / modes)."""

    def __init__(self, config: Any, ctx: BuildContext | None = None) -> None:
        self.config = config

    def evaluate(self, generator: nn.Module, dataset: Any, ctx: EvalContext) -> dict[str, Any]:
        if not getattr(generator, "conditional", False):
            raise UserError(
                "metric ring-label-accuracy needs a conditional generator (generator "
                "conditional = true on gaussian-ring data with labels = true)."
            )
        modes, radius, _ = ring_description(ctx.data_info)
        per_class = max(1, self.config.n_samples // modes)
        labels = torch.arange(modes).repeat_interleave(per_class)
        rng = torch.Generator(device=ctx.device).manual_seed(ctx.seed)
        with torch.no_grad():
            fake = generator.generate(
                len(labels), device=ctx.device, rng=rng, labels=labels.to(ctx.device)
            )
        fake = fake.float().cpu()
        centres = ring_centres(modes, radius)
        nearest = torch.cdist(fake, centres).argmin(dim=1)
        own = (fake - centres[labels]).norm(dim=1)
        per_mode = (nearest == labels).float().reshape(modes, per_class).mean(dim=1)
        return {
            "label_accuracy": float((nearest == labels).float().mean()),
            "worst_label_accuracy": float(per_mode.min()),
            "label_mode_distance": float(own.mean()),
        }
