"""The statistics behind ``fid``, ``kid``, ``inception-score`` and ``precision-recall``,
computed from Inception features that are already at hand.

KID and IS are torchmetrics' own code (``KernelInceptionDistance``, ``InceptionScore``), fed
through a pass-through ``feature`` module so that one Inception pass over the generated images
serves every statistic. FID is torchmetrics' formula (covariances with n - 1, the same
matrix square-root trace) evaluated through symmetric eigenvalue problems, which is 3-4x
faster than torchmetrics' non-symmetric ``eigvals`` and lets a cached reference (mean,
covariance and its square root) stand in for its images; tests check it equal to
``FrechetInceptionDistance`` to 1e-4. torchmetrics was chosen
over torch-fidelity and pytorch-fid because both of those import torchvision for their
feature extractors, and torchvision cannot be installed beside every torch build (it cannot
beside the CPU torch wheels ganframe's CI uses); torchmetrics' statistics need only torch.

Precision and recall (Kynkäänniemi et al. 2019, "Improved Precision and Recall Metric for
Assessing Generative Models") and density / coverage (Naeem et al. 2020) exist in neither
torchmetrics nor torch-fidelity's torchvision-free part, so they are computed here: k-nearest
-neighbour balls around each real and each generated feature vector, distances by
``torch.cdist`` in row chunks so memory stays at ``chunk x N``.
"""

from __future__ import annotations

import contextlib
import importlib.util
import warnings
from collections.abc import Iterator

import torch
from torch import Tensor, nn

from ganframe.errors import UserError

METRICS_INSTALL = "pip install 'ganframe[metrics]'"


def require_torchmetrics() -> None:
    """A clear error (with the install command) where torchmetrics is missing or broken."""
    if importlib.util.find_spec("torchmetrics") is None:
        raise UserError(f"the Inception metrics need the torchmetrics package, which is not "
                        f"installed: {METRICS_INSTALL}")
    try:
        import torchmetrics.image.fid  # noqa: F401
    except ImportError as exc:
        # torchmetrics imports torch-fidelity when it is installed, and torch-fidelity
        # imports torchvision: a broken torchvision breaks all of torchmetrics' image metrics
        raise UserError(f"torchmetrics cannot be imported ({type(exc).__name__}: {exc}). "
                        "If torch-fidelity is installed without a working torchvision, "
                        "uninstall it (`pip uninstall torch-fidelity`): ganframe does not "
                        "need it.") from None


@contextlib.contextmanager
def _quiet() -> Iterator[None]:
    """torchmetrics warns that KID and IS keep their features in memory: here they are the
    features already held, so the warning says nothing new at every evaluation."""
    with warnings.catch_warnings():
        warnings.filterwarnings("ignore", message=".*will save all extracted features")
        yield


class Given(nn.Module):
    """A torchmetrics ``feature`` module for features computed beforehand: returns its
    input. ``num_features`` tells torchmetrics the width without a probing forward."""

    def __init__(self, num_features: int) -> None:
        super().__init__()
        self.num_features = num_features

    def forward(self, features: Tensor) -> Tensor:
        return features


def gaussian(features: Tensor) -> tuple[Tensor, Tensor]:
    """(mean, covariance with n - 1) in float64, as torchmetrics' FID forms them."""
    x = features.double()
    mu = x.mean(0)
    d = x - mu
    return mu, d.T @ d / (x.shape[0] - 1)


def sqrt_psd(sigma: Tensor) -> Tensor:
    """The symmetric square root of a covariance (negative rounding noise clipped)."""
    w, v = torch.linalg.eigh(sigma.double())
    return (v * w.clamp_min(0).sqrt()) @ v.T


def trace_sqrt_product(ref_sigma: Tensor, fake: Tensor, ref_sqrt: Tensor | None = None) -> Tensor:
    """``tr sqrt(ref_sigma @ fake_sigma)`` through symmetric eigenvalue problems.

    torchmetrics takes the eigenvalues of the non-symmetric product (about 16 s for 2048
    features on one CPU thread). The same eigenvalues are those of ``A fake_sigma A`` with
    ``A = sqrt(ref_sigma)`` (kept with the cached reference), or, with fewer generated images
    than features, of the small ``D ref_sigma D^T / (n - 1)`` where ``D`` are the centred
    generated features; both are symmetric, so ``eigvalsh`` applies (3-4x faster, or almost
    free for small n). Equal to torchmetrics' value (tests check 1e-4) and to scipy's sqrtm.
    """
    x = fake.double()
    d = x - x.mean(0)
    n = x.shape[0]
    if n - 1 < x.shape[1]:
        m = d @ ref_sigma.double() @ d.T / (n - 1)
    else:
        a = ref_sqrt if ref_sqrt is not None else sqrt_psd(ref_sigma)
        m = a @ (d.T @ d / (n - 1)) @ a
    return torch.linalg.eigvalsh((m + m.T) / 2).clamp_min(0).sqrt().sum()


def fid(ref_mu: Tensor, ref_sigma: Tensor, ref_n: int, fake: Tensor,
        ref_sqrt: Tensor | None = None) -> float:
    """Fréchet distance between the reference Gaussian (cached mean and covariance of
    ``ref_n`` images) and the Gaussian of the generated features:
    ``|mu_r - mu_g|^2 + tr(S_r) + tr(S_g) - 2 tr sqrt(S_r S_g)``, covariances with n - 1
    as torchmetrics forms them (see :func:`trace_sqrt_product` for the last term)."""
    if fake.shape[0] < 2 or ref_n < 2:
        raise UserError("FID needs at least 2 images on each side; raise n_samples.")
    mu_g, sigma_g = gaussian(fake)
    mu_r, sigma_r = ref_mu.double(), ref_sigma.double()
    value = ((mu_r - mu_g).square().sum() + sigma_r.trace() + sigma_g.trace()
             - 2 * trace_sqrt_product(sigma_r, fake, ref_sqrt))
    return float(value)


def kid(real: Tensor, fake: Tensor, subsets: int, subset_size: int,
        seed: int) -> tuple[float, float]:
    """(mean, std) of torchmetrics' KID over ``subsets`` random subsets (seeded); the
    subset size shrinks to the smaller set when either has fewer images."""
    require_torchmetrics()
    from torchmetrics.image.kid import KernelInceptionDistance

    size = min(subset_size, real.shape[0], fake.shape[0])
    if size < 2:
        raise UserError("KID needs at least 2 images on each side; raise n_samples.")
    with _quiet():
        m = KernelInceptionDistance(feature=Given(real.shape[1]), subsets=subsets,
                                    subset_size=size)
    m.update(real.double(), real=True)
    m.update(fake.double(), real=False)
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(seed)
        mean, std = m.compute()
    return float(mean), float(std)


def inception_score(logits: Tensor, splits: int, seed: int) -> tuple[float, float]:
    """(mean, std) of torchmetrics' Inception Score over ``splits`` parts (its shuffle
    seeded); the logits are the unbiased ones, as torchmetrics' default uses."""
    require_torchmetrics()
    from torchmetrics.image.inception import InceptionScore

    if logits.shape[0] < splits:
        raise UserError(f"the Inception Score splits the images into {splits} parts, "
                        f"so it needs at least {splits} images; raise n_samples.")
    with _quiet():
        m = InceptionScore(feature=Given(logits.shape[1]), splits=splits)
    m.update(logits.double())
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(seed)
        mean, std = m.compute()
    return float(mean), float(std)


# -- precision / recall (own code: no library has it without torchvision) -----------------


def _kth_distance(x: Tensor, k: int, chunk: int) -> Tensor:
    """Each row's distance to its k-th nearest other row of ``x`` (the radius of its
    k-NN ball); the row itself, at distance 0, is skipped."""
    out = []
    for i in range(0, x.shape[0], chunk):
        d = torch.cdist(x[i:i + chunk], x)
        out.append(d.topk(k + 1, dim=1, largest=False).values[:, k])
    return torch.cat(out)


def _inside(points: Tensor, centres: Tensor, radii: Tensor, chunk: int) -> Tensor:
    """For each point, in how many of the balls ``(centres, radii)`` it lies."""
    counts = []
    for i in range(0, points.shape[0], chunk):
        d = torch.cdist(points[i:i + chunk], centres)
        counts.append((d <= radii.unsqueeze(0)).sum(1))
    return torch.cat(counts)


def precision_recall(real: Tensor, fake: Tensor, k: int = 3,
                     chunk: int = 1024) -> dict[str, float]:
    """Improved precision and recall, and density and coverage, of ``fake`` against
    ``real`` features (rows). Precision: the share of generated points inside some real
    point's k-NN ball; recall: the share of real points inside some generated point's ball;
    density: the mean number of real balls a generated point is in, over k; coverage: the
    share of real balls holding at least one generated point."""
    if min(real.shape[0], fake.shape[0]) <= k:
        raise UserError(f"precision/recall with k = {k} needs more than {k} images on each "
                        "side; raise n_samples.")
    real, fake = real.float(), fake.float()
    r_real = _kth_distance(real, k, chunk)
    r_fake = _kth_distance(fake, k, chunk)
    in_real = _inside(fake, real, r_real, chunk)
    in_fake = _inside(real, fake, r_fake, chunk)
    # coverage: does a real point's own ball hold a generated point (its nearest one)?
    covered = _covered(real, fake, r_real, chunk)
    return {
        "precision": float((in_real > 0).double().mean()),
        "recall": float((in_fake > 0).double().mean()),
        "density": float(in_real.double().mean() / k),
        "coverage": float(covered.double().mean()),
    }


def _covered(real: Tensor, fake: Tensor, radii: Tensor, chunk: int) -> Tensor:
    """For each real point, whether its nearest generated point is within its own radius."""
    out = []
    for i in range(0, real.shape[0], chunk):
        d = torch.cdist(real[i:i + chunk], fake).min(1).values
        out.append(d <= radii[i:i + chunk])
    return torch.cat(out)

