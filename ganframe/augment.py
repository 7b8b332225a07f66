"""DiffAugment (Zhao et al. 2020, "Differentiable Augmentation for Data-Efficient GAN
Training"): random colour, translation and cutout applied to every image the critic sees.

A critic trained on few images memorises them; augmenting only the real images would teach
the generator to draw augmented images. DiffAugment augments real *and* fake critic inputs
with the same policy, in both the critic and the generator update, with operations that are
differentiable in the images, so the generator's gradient passes through them. Each sample
draws its own random parameters (as in the paper's reference code, which this follows
operation for operation: brightness, saturation, contrast; translation by up to 1/8 of the
side with zero padding; one cutout square of half the side, zero filled).

The random numbers come from torch's global generator on the images' device, the one the
training loop draws its latents from and stores in every checkpoint, so a run with
augmentation is as deterministic and resumes as exactly as one without.

The recipe key is ``train.augment = "color,translation,cutout"``: :func:`check_policy`
validates the names (without importing torch, for ``ganframe validate``) and
:func:`build_augment` returns the callable the step context applies in
:meth:`ganframe.components.StepContext.score`.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import TYPE_CHECKING

if TYPE_CHECKING:  # pragma: no cover
    from torch import Tensor

__all__ = ["POLICIES", "DiffAugment", "build_augment", "check_policy"]

#: Policy name -> the operations it applies, in this order.
POLICIES: dict[str, tuple[str, ...]] = {
    "color": ("brightness", "saturation", "contrast"),
    "translation": ("translation",),
    "cutout": ("cutout",),
}

TRANSLATION_RATIO = 0.125
CUTOUT_RATIO = 0.5


def check_policy(policy: str) -> tuple[str, ...]:
    """The policy names of a comma-separated ``policy`` ("" or "none": no augmentation), in
    the given order; an unknown or repeated name raises ``ValueError`` naming the valid ones."""
    text = policy.strip()
    if text.lower() in ("", "none"):
        return ()
    names = tuple(p.strip().lower() for p in text.split(","))
    known = ", ".join(POLICIES)
    for name in names:
        if name not in POLICIES:
            raise ValueError(
                f"unknown DiffAugment policy {name!r} in {policy!r}; choose from {known} "
                "(comma-separated, e.g. 'color,translation,cutout'), or 'none'"
            )
    if len(set(names)) != len(names):
        raise ValueError(f"DiffAugment policy {policy!r} names a policy twice")
    return names


def _brightness(x: Tensor) -> Tensor:
    import torch

    return x + (torch.rand(x.shape[0], 1, 1, 1, dtype=x.dtype, device=x.device) - 0.5)


def _saturation(x: Tensor) -> Tensor:
    import torch

    mean = x.mean(dim=1, keepdim=True)
    scale = torch.rand(x.shape[0], 1, 1, 1, dtype=x.dtype, device=x.device) * 2
    return (x - mean) * scale + mean


def _contrast(x: Tensor) -> Tensor:
    import torch

    mean = x.mean(dim=[1, 2, 3], keepdim=True)
    scale = torch.rand(x.shape[0], 1, 1, 1, dtype=x.dtype, device=x.device) + 0.5
    return (x - mean) * scale + mean


def _grid(n: int, h: int, w: int, device: object) -> tuple[Tensor, Tensor, Tensor]:
    import torch

    return torch.meshgrid(
        torch.arange(n, device=device),
        torch.arange(h, device=device),
        torch.arange(w, device=device),
        indexing="ij",
    )


def _translation(x: Tensor, ratio: float = TRANSLATION_RATIO) -> Tensor:
    """Shift each image by up to ``ratio`` of its side in each direction; zeros come in."""
    import torch
    import torch.nn.functional as F

    n, _, h, w = x.shape
    sx, sy = int(h * ratio + 0.5), int(w * ratio + 0.5)
    tx = torch.randint(-sx, sx + 1, (n, 1, 1), device=x.device)
    ty = torch.randint(-sy, sy + 1, (n, 1, 1), device=x.device)
    gb, gx, gy = _grid(n, h, w, x.device)
    gx = torch.clamp(gx + tx + 1, 0, h + 1)
    gy = torch.clamp(gy + ty + 1, 0, w + 1)
    padded = F.pad(x, [1, 1, 1, 1])
    return padded.permute(0, 2, 3, 1)[gb, gx, gy].permute(0, 3, 1, 2).contiguous()


def _cutout(x: Tensor, ratio: float = CUTOUT_RATIO) -> Tensor:
    """Zero one square of ``ratio`` of the side per image, centred anywhere in it."""
    import torch

    n, _, h, w = x.shape
    ch, cw = int(h * ratio + 0.5), int(w * ratio + 0.5)
    ox = torch.randint(0, h + (1 - ch % 2), (n, 1, 1), device=x.device)
    oy = torch.randint(0, w + (1 - cw % 2), (n, 1, 1), device=x.device)
    gb, gx, gy = _grid(n, ch, cw, x.device)
    gx = torch.clamp(gx + ox - ch // 2, 0, h - 1)
    gy = torch.clamp(gy + oy - cw // 2, 0, w - 1)
    mask = torch.ones(n, h, w, dtype=x.dtype, device=x.device)
    mask[gb, gx, gy] = 0
    return x * mask.unsqueeze(1)


_OPS: dict[str, Callable[[Tensor], Tensor]] = {
    "brightness": _brightness,
    "saturation": _saturation,
    "contrast": _contrast,
    "translation": _translation,
    "cutout": _cutout,
}


class DiffAugment:
    """The augmentation of a policy: ``aug(x)`` for images N×C×H×W (any value range); other
    shapes (points, token ids) are refused, since the operations are defined on images."""

    def __init__(self, policy: str) -> None:
        self.policy = check_policy(policy)
        self.ops = [_OPS[op] for name in self.policy for op in POLICIES[name]]

    def __call__(self, x: Tensor) -> Tensor:
        if not self.ops:
            return x
        if x.dim() != 4 or not x.is_floating_point():
            from ganframe.errors import UserError

            raise UserError(
                f"train.augment = {','.join(self.policy)!r} augments images (N x C x H x W "
                f"floats), but the critic is given a batch of shape {list(x.shape)} "
                f"({x.dtype}); remove train.augment for this data."
            )
        for op in self.ops:
            x = op(x)
        return x

    def __repr__(self) -> str:
        return f"DiffAugment({','.join(self.policy)!r})"


def build_augment(policy: str | None) -> DiffAugment | None:
    """The augmentation for a recipe's ``train.augment`` (None when off)."""
    if policy is None or not check_policy(policy):
        return None
    return DiffAugment(policy)
