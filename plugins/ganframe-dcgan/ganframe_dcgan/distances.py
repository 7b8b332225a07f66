"""Sample-set distances on feature vectors: Frechet distance, KID, Inception Score.

All sums run in float64: FID subtracts large traces from each other, and float32 makes the
result of two identical sets visibly non-zero. The matrix square root uses ``eigh`` on
symmetric matrices only (no scipy), which is exact for covariance matrices:
``tr sqrt(S1 S2) = tr sqrt(sqrt(S1) S2 sqrt(S1))`` and the right-hand side is symmetric PSD.
"""

from __future__ import annotations

import math

import torch
from torch import Tensor


def gaussian_stats(features: Tensor) -> tuple[Tensor, Tensor]:
    """Mean and (unbiased) covariance of ``features`` (N x D), in float64."""
    f = features.detach().to(torch.float64)
    if f.shape[0] < 2:
        raise ValueError("need at least two feature vectors for a covariance")
    mu = f.mean(0)
    centred = f - mu
    return mu, centred.T @ centred / (f.shape[0] - 1)


def sqrtm_psd(matrix: Tensor) -> Tensor:
    """Square root of a symmetric positive semi-definite matrix (negative round-off
    eigenvalues are clipped to zero)."""
    sym = (matrix + matrix.T) / 2
    values, vectors = torch.linalg.eigh(sym)
    return (vectors * values.clamp_min(0).sqrt()) @ vectors.T


def frechet_distance(mu1: Tensor, sigma1: Tensor, mu2: Tensor, sigma2: Tensor) -> float:
    """Frechet (2-Wasserstein) distance between N(mu1, sigma1) and N(mu2, sigma2)."""
    mu1, mu2 = mu1.to(torch.float64), mu2.to(torch.float64)
    sigma1, sigma2 = sigma1.to(torch.float64), sigma2.to(torch.float64)
    root1 = sqrtm_psd(sigma1)
    middle = root1 @ sigma2 @ root1
    cross = torch.linalg.eigvalsh((middle + middle.T) / 2).clamp_min(0).sqrt().sum()
    value = (mu1 - mu2).square().sum() + sigma1.trace() + sigma2.trace() - 2 * cross
    return max(0.0, float(value))


def polynomial_kernel(x: Tensor, y: Tensor) -> Tensor:
    """KID's kernel (x.y / d + 1)^3, as in Binkowski et al. (2018)."""
    return (x @ y.T / x.shape[1] + 1) ** 3


def mmd2_unbiased(x: Tensor, y: Tensor) -> float:
    """Unbiased squared MMD between two equally sized sets under the polynomial kernel."""
    m = x.shape[0]
    kxx, kyy, kxy = polynomial_kernel(x, x), polynomial_kernel(y, y), polynomial_kernel(x, y)
    off = (kxx.sum() - kxx.diagonal().sum() + kyy.sum() - kyy.diagonal().sum()) / (m * (m - 1))
    return float(off - 2 * kxy.sum() / (m * m))


def kernel_inception_distance(
    x: Tensor, y: Tensor, subsets: int, subset_size: int, seed: int = 0
) -> tuple[float, float]:
    """KID: mean and standard deviation of the unbiased MMD^2 over random subsets (each
    drawn without replacement from both sets, of size ``min(subset_size, len(x), len(y))``)."""
    x, y = x.detach().to(torch.float64), y.detach().to(torch.float64)
    m = min(subset_size, x.shape[0], y.shape[0])
    if m < 2:
        raise ValueError("KID needs at least two samples in each set")
    gen = torch.Generator().manual_seed(seed)
    values = []
    for _ in range(subsets):
        ix = torch.randperm(x.shape[0], generator=gen)[:m]
        iy = torch.randperm(y.shape[0], generator=gen)[:m]
        values.append(mmd2_unbiased(x[ix], y[iy]))
    t = torch.tensor(values, dtype=torch.float64)
    std = float(t.std()) if len(values) > 1 else 0.0
    return float(t.mean()), std


def inception_score(probs: Tensor) -> float:
    """exp(E_x KL(p(y|x) || p(y))): 1 for constant or uniform predictions, up to the number
    of classes for confident predictions spread evenly over the classes."""
    p = probs.detach().to(torch.float64).clamp_min(1e-12)
    marginal = p.mean(0, keepdim=True)
    kl = (p * (p.log() - marginal.log())).sum(1)
    return math.exp(float(kl.mean()))
