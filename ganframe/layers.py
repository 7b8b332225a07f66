"""Network layers for class-conditional image GANs, shared by every model plugin.

Two ways of telling a network which class it is drawing or judging:

* :class:`ConditionalBatchNorm2d` (generators): batch norm without its own affine transform,
  followed by a per-class scale and shift looked up from the label. Scales start at 1 and
  shifts at 0, so a freshly built conditional generator behaves like a plain batch-norm one
  and learns the class differences from there.
* :class:`ProjectionHead` (critics): the projection term of Miyato & Koyama (2018),
  ``<embed(y), h>``, added by the caller to its unconditional output ``psi(h)``. It is
  the inner product of a class embedding with the critic's last features, which is what makes
  the critic's score the log-ratio of the class-conditional densities.

This module imports torch: model plugins import it when they build a network, never at
command-line start-up.
"""

from __future__ import annotations

from torch import Tensor, nn

__all__ = ["ConditionalBatchNorm2d", "ProjectionHead"]


class ConditionalBatchNorm2d(nn.Module):
    """``BatchNorm2d(affine=False)`` followed by ``gamma[y] * x + beta[y]``.

    ``bn`` is an ordinary ``nn.BatchNorm2d`` (so ``train.sync_batchnorm`` converts it like any
    other), ``gamma`` and ``beta`` are ``nn.Embedding(num_classes, num_features)`` tables.
    """

    def __init__(
        self, num_features: int, num_classes: int, eps: float = 1e-5, momentum: float = 0.1
    ) -> None:
        super().__init__()
        if num_features < 1 or num_classes < 1:
            raise ValueError(
                f"ConditionalBatchNorm2d needs num_features >= 1 and num_classes >= 1, "
                f"got {num_features} and {num_classes}"
            )
        self.num_features = num_features
        self.num_classes = num_classes
        self.bn = nn.BatchNorm2d(num_features, eps=eps, momentum=momentum, affine=False)
        self.gamma = nn.Embedding(num_classes, num_features)
        self.beta = nn.Embedding(num_classes, num_features)
        self.reset_parameters()

    def reset_parameters(self) -> None:
        """Identity start: every class scales by 1 and shifts by 0."""
        self.bn.reset_running_stats()
        nn.init.ones_(self.gamma.weight)
        nn.init.zeros_(self.beta.weight)

    def forward(self, x: Tensor, labels: Tensor) -> Tensor:
        if labels.shape != (x.shape[0],):
            raise ValueError(
                f"ConditionalBatchNorm2d: labels must have shape ({x.shape[0]},), "
                f"got {tuple(labels.shape)}"
            )
        out = self.bn(x)
        gamma = self.gamma(labels).view(-1, self.num_features, 1, 1)
        beta = self.beta(labels).view(-1, self.num_features, 1, 1)
        return gamma * out + beta

    def extra_repr(self) -> str:
        return f"{self.num_features}, num_classes={self.num_classes}"


class ProjectionHead(nn.Module):
    """The class-projection term of a projection critic: ``(embed(labels) * h).sum(1)``.

    ``h`` is the critic's feature vector (after its last non-linearity and pooling),
    shape ``[N, features]``; the result, shape ``[N]``, is added by the caller to its own
    linear output. With ``spectral=True`` the embedding matrix is spectrally normalised, as
    in the SNGAN critics of Miyato et al. (2018).
    """

    def __init__(self, num_classes: int, features: int, spectral: bool = False) -> None:
        super().__init__()
        if num_classes < 1 or features < 1:
            raise ValueError(
                f"ProjectionHead needs num_classes >= 1 and features >= 1, "
                f"got {num_classes} and {features}"
            )
        self.num_classes = num_classes
        self.features = features
        self.spectral = spectral
        embed = nn.Embedding(num_classes, features)
        nn.init.xavier_uniform_(embed.weight)
        self.embed = nn.utils.parametrizations.spectral_norm(embed) if spectral else embed

    def forward(self, h: Tensor, labels: Tensor) -> Tensor:
        if h.dim() != 2 or h.shape[1] != self.features:
            raise ValueError(
                f"ProjectionHead: h must have shape [N, {self.features}], got {tuple(h.shape)}"
            )
        if labels.shape != (h.shape[0],):
            raise ValueError(
                f"ProjectionHead: labels must have shape ({h.shape[0]},), "
                f"got {tuple(labels.shape)}"
            )
        return (self.embed(labels) * h).sum(1)

    def extra_repr(self) -> str:
        return (
            f"num_classes={self.num_classes}, features={self.features}, "
            f"spectral={self.spectral}"
        )
