"""The ``mnist-fid`` metric: how close generated digits are to the MNIST test set, seen
through the shipped classifier.

Reported values (lower is better for the first two):

- ``fid``: Frechet distance between Gaussians fitted to the classifier's 128-d penultimate
  features of generated images and of the 10,000 test images;
- ``kid``/``kid_std``: kernel distance (unbiased MMD^2, cubic polynomial kernel) in the same
  features, averaged over random subsets; unlike FID it is unbiased in the sample count. The
  features are divided by the test set's RMS feature value first, so that the kernel's
  ``x.y / d`` is of order one as with Inception features (raw values are about 3x larger);
- ``is``: classifier Inception Score, up to 10 (confident and class-balanced);
- ``class_histogram``: how many samples the classifier assigns to each digit, and
  ``classes_covered``: digits that get at least ``coverage_share`` of a fair share;
- for a class-conditional generator, which then draws every digit in turn (the same number of
  each): ``label_accuracy``, the share of samples the classifier assigns the digit they were
  drawn for, and ``worst_label_accuracy``, the lowest of the ten per-digit shares.

The test set's features are computed once per process and reused by every evaluation.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import torch
from torch import Tensor, nn

from ganframe.components import EvalContext, generate
from ganframe.errors import UserError
from ganframe_dcgan import classifier as clf
from ganframe_dcgan import distances
from ganframe_dcgan.mnist import load_split, resolve_root
from ganframe_dcgan.plugin import MnistConfig

_REFERENCE: dict[tuple[Any, ...], dict[str, Tensor]] = {}


@torch.no_grad()
def embed(
    images: Tensor, device: torch.device | str, batch_size: int = 500
) -> tuple[Tensor, Tensor]:
    """(features N x 128, class probabilities N x 10) on the CPU, for images in [-1, 1]."""
    model = clf.load_classifier(device)
    feats, probs = [], []
    for i in range(0, images.shape[0], batch_size):
        x = images[i : i + batch_size].to(device=device, dtype=torch.float32).clamp(-1, 1)
        f, logits = model.embed(x)
        feats.append(f.float().cpu())
        probs.append(logits.float().softmax(1).cpu())
    return torch.cat(feats), torch.cat(probs)


def uint8_to_float(images: Tensor) -> Tensor:
    return images.to(torch.float32).div_(127.5).sub_(1.0)


class MnistFid:
    """Scores image batches against the MNIST test split (see the module docstring)."""

    def __init__(
        self, config: Any, root: Path | None = None, data_root: Path | None = None
    ) -> None:
        self.config = config
        self.root = root
        self.data_root = data_root

    # -- reference -----------------------------------------------------------------------
    def reference(self, device: torch.device | str = "cpu") -> dict[str, Tensor]:
        """Test-set features and their Gaussian statistics, cached per process."""
        images, _, source = load_split(
            "test", self.root, download_missing=self.config.download, data_root=self.data_root
        )
        key = (str(source.resolve()), source.stat().st_mtime_ns, clf.WEIGHTS_SHA256)
        if key not in _REFERENCE:
            feats, probs = embed(uint8_to_float(images), device, self.config.batch_size)
            mu, sigma = distances.gaussian_stats(feats)
            scale = feats.square().mean().sqrt().clamp_min(1e-6)
            _REFERENCE[key] = {
                "features": feats, "probs": probs, "mu": mu, "sigma": sigma, "scale": scale,
            }
        return _REFERENCE[key]

    # -- scoring -------------------------------------------------------------------------
    def score(
        self, images: Tensor, device: torch.device | str = "cpu", seed: int = 0,
        labels: Tensor | None = None,
    ) -> dict[str, Any]:
        """All metric values for a batch of images (N x 1 x 28 x 28 in [-1, 1]); with
        ``labels`` (the digit each image was drawn for) also the label accuracies."""
        if images.dim() != 4 or tuple(images.shape[1:]) != (1, 28, 28):
            raise UserError(
                f"mnist-fid scores 1x28x28 digit images, but got a batch of shape "
                f"{list(images.shape)}; use it only with MNIST-shaped generators."
            )
        if images.shape[0] < 2:
            raise UserError("mnist-fid needs at least 2 samples; raise n_samples.")
        ref = self.reference(device)
        feats, probs = embed(images, device, self.config.batch_size)
        mu, sigma = distances.gaussian_stats(feats)
        kid, kid_std = distances.kernel_inception_distance(
            feats / ref["scale"],
            ref["features"] / ref["scale"],
            self.config.kid_subsets,
            self.config.kid_subset_size,
            seed,
        )
        counts = torch.bincount(probs.argmax(1), minlength=10)
        needed = self.config.coverage_share * images.shape[0] / 10
        extra: dict[str, Any] = {}
        if labels is not None:
            extra = label_accuracy(probs.argmax(1), labels.cpu())
        return {
            "fid": distances.frechet_distance(mu, sigma, ref["mu"], ref["sigma"]),
            "kid": kid,
            "kid_std": kid_std,
            "is": distances.inception_score(probs),
            "class_histogram": [int(c) for c in counts.tolist()],
            "classes_covered": int((counts >= needed).sum()),
            "n_samples": int(images.shape[0]),
            **extra,
        }

    @torch.no_grad()
    def evaluate(self, generator: nn.Module, dataset: Any, ctx: EvalContext) -> dict[str, Any]:
        """Draw ``n_samples`` images with a seeded generator (eval mode) and score them.

        ``dataset`` (the training data) is not used: the reference is always the test split.
        """
        n = ctx.n_samples or self.config.n_samples
        device = ctx.device
        rng = torch.Generator(device=device).manual_seed(ctx.seed)
        was_training = generator.training
        generator.eval()
        labels = None
        if getattr(generator, "conditional", False):
            labels = torch.arange(n) % int(generator.num_classes)
        try:
            chunks = []
            for i in range(0, n, self.config.batch_size):
                b = min(self.config.batch_size, n - i)
                chosen = None if labels is None else labels[i : i + b].to(device)
                chunks.append(
                    generate(generator, b, device=device, rng=rng, labels=chosen).float().cpu()
                )
        finally:
            generator.train(was_training)
        return self.score(torch.cat(chunks), device, seed=ctx.seed, labels=labels)


def label_accuracy(predicted: Tensor, labels: Tensor) -> dict[str, float]:
    """The share of images classified as the digit they were drawn for, overall and for the
    worst digit among those drawn."""
    hits = (predicted == labels).float()
    per_class = [float(hits[labels == k].mean()) for k in torch.unique(labels).tolist()]
    return {"label_accuracy": float(hits.mean()), "worst_label_accuracy": min(per_class)}


def build_metric(config: Any, ctx: Any) -> MnistFid:
    """Factory for ``mnist-fid``: the test files are looked for where the recipe's mnist data
    comes from (its ``root``), unless the metric has its own ``root``."""
    root = config.root
    data_config = getattr(ctx, "data_config", None)
    if root is None and isinstance(data_config, MnistConfig):
        root = data_config.root
    root = resolve_root(root, ctx)
    return MnistFid(config, root=root, data_root=getattr(ctx, "data_root", None))
