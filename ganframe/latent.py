"""Latent-space tools for noise-driven generators: interpolation, walks, truncation.

* **Interpolation** between two noise vectors, along a straight line or a great circle
  (``slerp``, White 2016). High-dimensional Gaussian vectors all have a norm near
  ``sqrt(latent_dim)``; the midpoint of a straight line is shorter than any vector the
  generator saw in training, so its images fade towards an "average" sample; slerp keeps the
  norm and is the default.
* **Class interpolation** for a conditional generator: the noise stays fixed and the class
  goes from ``a`` to ``b``. Conditional generators in ganframe look their labels up in
  ``nn.Embedding`` tables (a class embedding, conditional batch-norm scales and shifts), so
  every table's output is replaced by ``(1 - t) * row[a] + t * row[b]`` while the generator
  runs; a generator that conditions some other way cannot be blended and is refused.
* **Walks**: a closed loop through a few random points, for an animated GIF.
* **Truncation** (Brock et al. 2019, BigGAN): every latent value beyond ``threshold`` in
  absolute value is drawn again until none is left. Values within it are kept, so the same
  seed shows the same samples, pulled towards the typical ones: less variety, fewer odd ones.
  Only for standard-normal latents (the default ``sample_latent``).

Everything here works on the network (``LoadedCheckpoint.generator``) and returns tensors in
the data's format; :mod:`ganframe.latent_io` writes strips and GIFs.
"""

from __future__ import annotations

import math
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from typing import Any

import torch
from torch import Tensor, nn

from ganframe.components import LatentGenerator, resolve_labels
from ganframe.errors import UserError

__all__ = [
    "PATHS",
    "blend_classes",
    "draw_latents",
    "interpolate_latents",
    "interpolation",
    "lerp",
    "slerp",
    "truncated_normal",
    "walk",
]

#: Interpolation paths: a great circle (default) or a straight line.
PATHS = ("slerp", "line")
#: Rounds of redrawing in :func:`truncated_normal`; what is left after them (only for tiny
#: thresholds) is drawn from the truncated distribution directly.
MAX_REDRAWS = 100


def lerp(a: Tensor, b: Tensor, t: Tensor) -> Tensor:
    """``a + t (b - a)``, broadcasting ``t`` over the last axis."""
    return a + t[..., None] * (b - a)


def slerp(a: Tensor, b: Tensor, t: Tensor) -> Tensor:
    """Spherical interpolation: along the great circle from ``a`` to ``b`` with the norm
    interpolated linearly; a straight line where the two are (anti)parallel."""
    na, nb = a.norm(dim=-1, keepdim=True), b.norm(dim=-1, keepdim=True)
    ua, ub = a / na.clamp_min(1e-12), b / nb.clamp_min(1e-12)
    cos = (ua * ub).sum(-1).clamp(-1.0, 1.0)
    omega = torch.acos(cos)[..., None]
    sin = torch.sin(omega)
    tt = t[..., None]
    safe = sin.abs() > 1e-6
    wa = torch.where(safe, torch.sin((1 - tt) * omega) / sin.where(safe, 1.0), 1 - tt)
    wb = torch.where(safe, torch.sin(tt * omega) / sin.where(safe, 1.0), tt)
    direction = wa * ua + wb * ub
    direction = direction / direction.norm(dim=-1, keepdim=True).clamp_min(1e-12)
    return direction * ((1 - tt) * na + tt * nb)


def interpolate_latents(a: Tensor, b: Tensor, steps: int, path: str = "slerp") -> Tensor:
    """(rows, steps, dim): ``steps`` points from each row of ``a`` to the same row of ``b``,
    both ends included."""
    if path not in PATHS:
        raise UserError(f"--path {path!r}: choose {' or '.join(PATHS)}.")
    if steps < 2:
        raise UserError(f"--steps {steps}: an interpolation needs at least 2 steps.")
    t = torch.linspace(0.0, 1.0, steps, device=a.device, dtype=a.dtype)
    fn = slerp if path == "slerp" else lerp
    return fn(a[:, None, :], b[:, None, :], t[None, :].expand(a.shape[0], steps))


def truncated_normal(n: int, dim: int, threshold: float, *, device: torch.device | str,
                     rng: torch.Generator | None = None) -> Tensor:
    """Standard-normal (n, dim) values, every one beyond ``threshold`` in absolute value
    drawn again (values within it are the plain draw's, so a seed keeps its samples)."""
    if not (threshold > 0 and math.isfinite(threshold)):
        raise UserError(f"--truncation {threshold}: give a positive threshold, e.g. 0.7 "
                        "(smaller: more typical samples, less variety).")
    z = torch.randn(n, dim, device=device, generator=rng)
    for _ in range(MAX_REDRAWS):
        bad = z.abs() > threshold
        count = int(bad.sum())
        if not count:
            return z
        z[bad] = torch.randn(count, device=device, generator=rng)
    # Left over only for tiny thresholds: inverse-CDF draws from N(0, 1) within +-threshold.
    bad = z.abs() > threshold
    edge = 0.5 * (1 + math.erf(threshold / math.sqrt(2)))
    u = torch.rand(int(bad.sum()), device=device, generator=rng) * (2 * edge - 1) + (1 - edge)
    z[bad] = torch.special.ndtri(u).clamp(-threshold, threshold)
    return z


def latent_generator(gen: nn.Module, what: str) -> LatentGenerator:
    """``gen`` if it maps noise vectors to samples; a clear refusal otherwise."""
    if isinstance(gen, LatentGenerator) and isinstance(getattr(gen, "latent_dim", None), int):
        return gen
    raise UserError(
        f"{what} needs a generator driven by a noise vector (an image or point GAN), but "
        f"{type(gen).__name__} generates its samples itself (e.g. a text model writing "
        "character by character) and has no latent space to move in."
    )


def draw_latents(gen: nn.Module, n: int, *, device: torch.device | str,
                 rng: torch.Generator | None = None, truncation: float | None = None
                 ) -> Tensor:
    """``n`` latent vectors as the generator draws them, or truncated (see the module)."""
    latent = latent_generator(gen, "--truncation" if truncation is not None else "this")
    if truncation is None:
        return latent.sample_latent(n, device, rng)
    if type(latent).sample_latent is not LatentGenerator.sample_latent:
        raise UserError(
            f"--truncation needs standard-normal latents, but {type(latent).__name__} draws "
            "its own kind (it overrides sample_latent); leave --truncation out."
        )
    return truncated_normal(n, latent.latent_dim, truncation, device=device, rng=rng)


def decode(gen: nn.Module, z: Tensor, labels: Tensor | None = None) -> Tensor:
    """Samples for latents ``z`` (and labels, for a conditional generator)."""
    with torch.no_grad():
        if getattr(gen, "conditional", False):
            return gen(z, labels)
        return gen(z)


@contextmanager
def blend_classes(gen: nn.Module, a: int, b: int, t: Tensor) -> Iterator[None]:
    """While active, every ``nn.Embedding`` of ``gen`` returns ``(1 - t) * row[a] +
    t * row[b]`` for sample ``i`` (``t`` has one weight per sample), whatever label it is
    asked for: class interpolation for embedding-conditioned generators."""
    tables = [m for m in gen.modules() if isinstance(m, nn.Embedding)]
    if not tables:
        raise UserError(
            f"{type(gen).__name__} is conditional but looks its labels up in no nn.Embedding "
            "table, so its classes cannot be blended; interpolate the noise instead (give "
            "one class with --labels)."
        )

    def hook(module: nn.Module, inputs: Any, output: Tensor) -> Tensor:
        w = module.weight
        tt = t.to(device=w.device, dtype=w.dtype).reshape(-1, *([1] * (output.dim() - 1)))
        mixed = (1 - tt) * w[a] + tt * w[b]
        return mixed.expand_as(output).to(output.dtype)

    handles = [m.register_forward_hook(hook) for m in tables]
    try:
        yield
    finally:
        for handle in handles:
            handle.remove()


def _class_pair(gen: nn.Module, labels: Any) -> tuple[int, int] | None:
    if not getattr(gen, "conditional", False) or not isinstance(labels, Sequence) or isinstance(
            labels, str) or len(labels) != 2:
        return None
    resolve_labels(gen, 2, list(labels), device="cpu")  # range check, with its message
    return int(labels[0]), int(labels[1])


def _row_labels(gen: nn.Module, rows: int, labels: Any, *, device: torch.device | str,
                rng: torch.Generator | None) -> Tensor | None:
    """One class per row (drawn after the latents, as :meth:`generate` does)."""
    if not getattr(gen, "conditional", False):
        resolve_labels(gen, rows, labels, device=device)  # refuses labels, with its message
        return None
    if isinstance(labels, Sequence) and not isinstance(labels, str) and len(labels) != rows:
        labels = [labels[i % len(labels)] for i in range(rows)]
    return resolve_labels(gen, rows, labels, device=device, rng=rng)


def interpolation(gen: nn.Module, rows: int, steps: int, *, device: torch.device | str,
                  rng: torch.Generator | None = None, path: str = "slerp",
                  labels: Any = None, truncation: float | None = None) -> Tensor:
    """``rows`` interpolations of ``steps`` samples each, row after row.

    For an unconditional generator (or a conditional one given one class or none), each row
    goes from one noise vector to another. For a conditional generator given two classes
    ``(a, b)``, each row keeps its noise and goes from class ``a`` to class ``b``."""
    latent_generator(gen, "--interpolate")
    pair = _class_pair(gen, labels)
    if pair is not None:
        z = draw_latents(gen, rows, device=device, rng=rng, truncation=truncation)
        if steps < 2:
            raise UserError(f"--steps {steps}: an interpolation needs at least 2 steps.")
        zz = z[:, None, :].expand(rows, steps, z.shape[1]).reshape(rows * steps, -1)
        t = torch.linspace(0.0, 1.0, steps, device=z.device).repeat(rows)
        with blend_classes(gen, *pair, t):
            return decode(gen, zz, torch.full((rows * steps,), pair[0], device=z.device))
    a = draw_latents(gen, rows, device=device, rng=rng, truncation=truncation)
    b = draw_latents(gen, rows, device=device, rng=rng, truncation=truncation)
    zz = interpolate_latents(a, b, steps, path).reshape(rows * steps, -1)
    row_labels = _row_labels(gen, rows, labels, device=device, rng=rng)
    y = None if row_labels is None else row_labels.repeat_interleave(steps)
    return decode(gen, zz, y)


def walk(gen: nn.Module, n: int, frames: int, *, device: torch.device | str,
         rng: torch.Generator | None = None, points: int = 4, labels: Any = None,
         truncation: float | None = None) -> Tensor:
    """(frames, n, ...): ``n`` samples moving along closed great-circle loops through
    ``points`` random latent vectors each, for an animated GIF (the last frame leads back
    to the first)."""
    latent_generator(gen, "--walk")
    if frames < 2:
        raise UserError(f"--steps {frames}: a walk needs at least 2 frames.")
    keys = [draw_latents(gen, n, device=device, rng=rng, truncation=truncation)
            for _ in range(points)]
    y = _row_labels(gen, n, labels, device=device, rng=rng)
    out = []
    for f in range(frames):
        pos = f * points / frames
        i, t = int(pos), pos - int(pos)
        a, b = keys[i % points], keys[(i + 1) % points]
        z = slerp(a, b, torch.full((n,), t, device=a.device, dtype=a.dtype))
        out.append(decode(gen, z, y))
    return torch.stack(out)
