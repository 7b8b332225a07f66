"""ConditionalBatchNorm2d and ProjectionHead (ganframe.layers): the shapes, the identity start,
that labels really select per-class parameters, and that gradients reach every table."""

from __future__ import annotations

import pytest
import torch
from torch import nn

from ganframe.layers import ConditionalBatchNorm2d, ProjectionHead


def test_conditional_bn_starts_as_plain_batch_norm() -> None:
    torch.manual_seed(0)
    x = torch.randn(6, 4, 3, 3)
    labels = torch.tensor([0, 1, 2, 0, 1, 2])
    cbn = ConditionalBatchNorm2d(4, 3)
    plain = nn.BatchNorm2d(4)
    torch.testing.assert_close(cbn(x, labels), plain(x))
    torch.testing.assert_close(cbn.bn.running_mean, plain.running_mean)


def test_conditional_bn_uses_each_class_row() -> None:
    torch.manual_seed(0)
    cbn = ConditionalBatchNorm2d(2, 3).eval()  # eval: running stats (0, 1), so out = g*x + b
    with torch.no_grad():
        cbn.gamma.weight.copy_(torch.tensor([[1.0, 1.0], [2.0, 3.0], [-1.0, 0.5]]))
        cbn.beta.weight.copy_(torch.tensor([[0.0, 0.0], [1.0, -1.0], [5.0, 5.0]]))
    x = torch.ones(3, 2, 1, 1)
    out = cbn(x, torch.tensor([0, 1, 2])).view(3, 2)
    normed = 1 / (1 + 1e-5) ** 0.5  # running mean 0, running var 1
    torch.testing.assert_close(out, cbn.gamma.weight.detach() * normed + cbn.beta.weight.detach())
    swapped = cbn(x, torch.tensor([2, 1, 0])).view(3, 2)
    torch.testing.assert_close(swapped, out.flip(0))


def test_conditional_bn_gradients_and_bad_labels() -> None:
    cbn = ConditionalBatchNorm2d(4, 5)
    x = torch.randn(8, 4, 2, 2, requires_grad=True)
    labels = torch.tensor([0, 1, 1, 3, 3, 3, 0, 1])
    (cbn(x, labels) ** 2).sum().backward()
    assert x.grad is not None and x.grad.abs().sum() > 0
    used = cbn.gamma.weight.grad.abs().sum(1) > 0
    assert used.tolist() == [True, True, False, True, False]  # only the classes in the batch
    with pytest.raises(ValueError, match="labels must have shape"):
        cbn(x, labels[:3])


@pytest.mark.parametrize("spectral", [False, True])
def test_projection_head(spectral: bool) -> None:
    torch.manual_seed(0)
    head = ProjectionHead(num_classes=10, features=6, spectral=spectral)
    h = torch.randn(5, 6, requires_grad=True)
    labels = torch.tensor([0, 9, 3, 3, 1])
    out = head(h, labels)
    assert out.shape == (5,)
    embed = head.embed.weight  # with spectral norm: the normalised matrix
    torch.testing.assert_close(out, (embed[labels] * h).sum(1))
    out.sum().backward()
    torch.testing.assert_close(h.grad, embed[labels].detach())
    if spectral:
        assert torch.linalg.matrix_norm(embed.detach(), ord=2) == pytest.approx(1.0, rel=0.05)
    with pytest.raises(ValueError, match="h must have shape"):
        head(torch.randn(5, 7), labels)
