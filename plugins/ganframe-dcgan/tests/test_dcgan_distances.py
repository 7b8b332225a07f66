"""Frechet distance, KID and Inception Score on inputs whose answers are known by hand."""

from __future__ import annotations

import math

import pytest
import torch
from ganframe_dcgan import distances as dist


def random_cov(d: int, seed: int) -> torch.Tensor:
    g = torch.Generator().manual_seed(seed)
    a = torch.randn(d, d, generator=g, dtype=torch.float64)
    return a @ a.T / d + 0.1 * torch.eye(d, dtype=torch.float64)


def test_identical_distributions_have_zero_distance():
    s = random_cov(6, 0)
    mu = torch.arange(6.0)
    assert dist.frechet_distance(mu, s, mu, s) == pytest.approx(0.0, abs=1e-9)


def test_shifted_means_give_squared_mean_distance():
    s = random_cov(5, 1)
    mu1 = torch.zeros(5)
    mu2 = torch.tensor([1.0, -2.0, 0.0, 0.5, 0.0])
    assert dist.frechet_distance(mu1, s, mu2, s) == pytest.approx(1 + 4 + 0.25, rel=1e-9)


def test_diagonal_covariances_by_hand():
    # For commuting (diagonal) covariances: sum_i (sqrt(a_i) - sqrt(b_i))^2.
    a = torch.tensor([1.0, 4.0, 9.0])
    b = torch.tensor([4.0, 4.0, 1.0])
    mu = torch.zeros(3)
    expected = (1 - 2) ** 2 + 0 + (3 - 1) ** 2
    assert dist.frechet_distance(mu, torch.diag(a), mu, torch.diag(b)) == pytest.approx(expected)


def test_general_covariances_match_the_textbook_formula():
    s1, s2 = random_cov(7, 2), random_cov(7, 3)
    mu1, mu2 = torch.randn(7, dtype=torch.float64), torch.randn(7, dtype=torch.float64)
    # tr sqrt(S1 S2) = sum of square roots of the (real, positive) eigenvalues of S1 S2.
    cross = torch.linalg.eigvals(s1 @ s2).real.clamp_min(0).sqrt().sum()
    expected = (mu1 - mu2).square().sum() + s1.trace() + s2.trace() - 2 * cross
    assert dist.frechet_distance(mu1, s1, mu2, s2) == pytest.approx(float(expected), rel=1e-9)
    # symmetric in its arguments
    assert dist.frechet_distance(mu2, s2, mu1, s1) == pytest.approx(float(expected), rel=1e-9)


def test_singular_covariances_are_fine():
    # Post-ReLU features often have dead units: rank-deficient covariances.
    x = torch.randn(50, 4, dtype=torch.float64)
    x[:, 3] = 0
    mu, s = dist.gaussian_stats(x)
    assert dist.frechet_distance(mu, s, mu, s) == pytest.approx(0.0, abs=1e-9)


def test_gaussian_stats_are_mean_and_unbiased_covariance():
    x = torch.tensor([[1.0, 2.0], [3.0, 6.0], [5.0, 10.0]])
    mu, s = dist.gaussian_stats(x)
    assert torch.allclose(mu, torch.tensor([3.0, 6.0], dtype=torch.float64))
    assert torch.allclose(s, torch.tensor([[4.0, 8.0], [8.0, 16.0]], dtype=torch.float64))


def test_sample_fid_of_two_gaussians_approaches_the_closed_form():
    g = torch.Generator().manual_seed(0)
    a = torch.randn(20000, 3, generator=g)
    b = torch.randn(20000, 3, generator=g) * 2 + torch.tensor([1.0, 0.0, 0.0])
    fid = dist.frechet_distance(*dist.gaussian_stats(a), *dist.gaussian_stats(b))
    assert fid == pytest.approx(1 + 3 * (1 - 2) ** 2, rel=0.05)


def naive_mmd2(x: torch.Tensor, y: torch.Tensor) -> float:
    d = x.shape[1]
    k = lambda a, b: (float(a @ b) / d + 1) ** 3  # noqa: E731
    m = len(x)
    xx = sum(k(x[i], x[j]) for i in range(m) for j in range(m) if i != j) / (m * (m - 1))
    yy = sum(k(y[i], y[j]) for i in range(m) for j in range(m) if i != j) / (m * (m - 1))
    xy = sum(k(x[i], y[j]) for i in range(m) for j in range(m)) / (m * m)
    return xx + yy - 2 * xy


def test_mmd_matches_a_loop_implementation():
    g = torch.Generator().manual_seed(1)
    x = torch.randn(6, 3, generator=g, dtype=torch.float64)
    y = torch.randn(6, 3, generator=g, dtype=torch.float64) + 0.5
    assert dist.mmd2_unbiased(x, y) == pytest.approx(naive_mmd2(x, y), rel=1e-9)


def test_kid_is_near_zero_for_one_distribution_and_positive_for_two():
    g = torch.Generator().manual_seed(2)
    a = torch.randn(600, 8, generator=g)
    b = torch.randn(600, 8, generator=g)
    far = torch.randn(600, 8, generator=g) + 1.0
    same, same_std = dist.kernel_inception_distance(a, b, subsets=5, subset_size=300)
    diff, _ = dist.kernel_inception_distance(a, far, subsets=5, subset_size=300)
    assert abs(same) < 3 * same_std + 0.01
    assert diff > 0.5 and diff > 20 * abs(same)


def test_kid_subsets_are_capped_and_seeded():
    a, b = torch.randn(30, 4), torch.randn(50, 4)
    assert dist.kernel_inception_distance(a, b, 3, 1000, seed=1) == (
        dist.kernel_inception_distance(a, b, 3, 1000, seed=1)
    )


def test_inception_score_extremes():
    uniform = torch.full((100, 10), 0.1)
    assert dist.inception_score(uniform) == pytest.approx(1.0)
    one_class = torch.zeros(100, 10)
    one_class[:, 3] = 1
    assert dist.inception_score(one_class) == pytest.approx(1.0)
    balanced = torch.eye(10).repeat(10, 1)
    assert dist.inception_score(balanced) == pytest.approx(10.0, rel=1e-6)
    two = torch.eye(10)[[0, 1] * 50]
    assert dist.inception_score(two) == pytest.approx(2.0, rel=1e-6)
    assert math.isfinite(dist.inception_score(torch.softmax(torch.randn(50, 10), 1)))
