"""Batch norm over the global batch of a multi-process run, on any device.

With several processes each one normalises its own batch; a network whose batch-norm layers
should see the statistics of the *global* batch needs them summed across processes in the
forward pass and the matching sums in the backward pass. ``torch.nn.SyncBatchNorm`` does
this on GPUs only. This one is built from differentiable collectives, so it runs on gloo
(CPU) as well as NCCL, and autograd derives the backward pass, including the second-order
one that gradient penalties (R1, WGAN-GP) take.

The layers keep the names, parameters and buffers of the ``BatchNorm`` layers they replace,
so checkpoints of a run with and without ``train.sync_batchnorm`` are interchangeable.
"""

from __future__ import annotations

import torch
import torch.distributed as dist
from torch import Tensor, nn

__all__ = ["GlobalBatchNorm", "convert"]


class _SumOverRanks(torch.autograd.Function):
    """``y = sum over processes of x``; the gradient of every process's loss with respect
    to ``x`` is the same sum of the incoming gradients."""

    @staticmethod
    def forward(ctx, x: Tensor) -> Tensor:  # type: ignore[override]
        y = x.clone()
        dist.all_reduce(y)
        return y

    @staticmethod
    def backward(ctx, grad: Tensor) -> Tensor:  # type: ignore[override]
        return _SumOverRanks.apply(grad)


class _GatherOverRanks(torch.autograd.Function):
    """``y[r] = x of process r``, stacked; the gradient with respect to a process's own ``x``
    is its row of the incoming gradients summed over processes."""

    @staticmethod
    def forward(ctx, x: Tensor) -> Tensor:  # type: ignore[override]
        parts = [torch.empty_like(x) for _ in range(dist.get_world_size())]
        dist.all_gather(parts, x.contiguous())
        ctx.rank = dist.get_rank()
        return torch.stack(parts)

    @staticmethod
    def backward(ctx, grad: Tensor) -> Tensor:  # type: ignore[override]
        return _SumOverRanks.apply(grad.contiguous())[ctx.rank]


def _distributed() -> bool:
    return dist.is_available() and dist.is_initialized() and dist.get_world_size() > 1


class GlobalBatchNorm(nn.modules.batchnorm._BatchNorm):
    """``BatchNorm1d/2d/3d`` whose training-mode statistics are those of the global batch.

    Every process must run the same forward and backward passes through the layer in the
    same order (the sums are collective operations), which the training loop guarantees:
    each process runs the same objective. In evaluation mode, or in one process, it is
    plain batch norm.
    """

    def _check_input_dim(self, input: Tensor) -> None:
        if input.dim() < 2:
            raise ValueError(f"expected at least 2D input (got {input.dim()}D input)")

    def forward(self, input: Tensor) -> Tensor:
        self._check_input_dim(input)
        if not (self.training and _distributed()):
            return super().forward(input)
        x = input.float()
        dims = [0, *range(2, x.dim())]
        shape = [1, -1] + [1] * (x.dim() - 2)
        # Each process's count, mean and sum of squared deviations, gathered in one
        # collective and combined as Chan et al. do: exact, and without the cancellation
        # of E[x^2] - E[x]^2 when activations sit far from zero.
        own_mean = x.mean(dims)
        own_m2 = (x - own_mean.view(shape)).square().sum(dims)
        own_n = x.new_full((1,), x.numel() / x.shape[1])
        stats = _GatherOverRanks.apply(torch.cat([own_n, own_mean, own_m2]))
        c = x.shape[1]
        counts, means, m2s = stats[:, :1], stats[:, 1 : 1 + c], stats[:, 1 + c :]
        n = counts.sum()
        mean = (counts * means).sum(0) / n
        var = (m2s.sum(0) + (counts * (means - mean).square()).sum(0)) / n
        centred = x - mean.view(shape)
        y = centred * torch.rsqrt(var + self.eps).view(shape)
        if self.affine:
            y = y * self.weight.view(shape) + self.bias.view(shape)
        if self.track_running_stats:
            self._update_running_stats(mean.detach(), var.detach(), n.detach())
        return y.to(input.dtype)

    @torch.no_grad()
    def _update_running_stats(self, mean: Tensor, var: Tensor, n: Tensor) -> None:
        assert self.num_batches_tracked is not None
        self.num_batches_tracked.add_(1)
        if self.momentum is None:  # cumulative average, as torch's batch norm does
            factor = 1.0 / float(self.num_batches_tracked)
        else:
            factor = self.momentum
        unbiased = var * n / (n - 1).clamp(min=1)
        self.running_mean.lerp_(mean.to(self.running_mean.dtype), factor)
        self.running_var.lerp_(unbiased.to(self.running_var.dtype), factor)


def convert(module: nn.Module) -> tuple[nn.Module, int]:
    """Replace every ``BatchNorm1d/2d/3d`` in ``module`` by a :class:`GlobalBatchNorm` that
    holds the same parameter and buffer tensors; returns the module and how many layers
    were replaced. Parameters keep their identity, so optimisers built before still work."""
    count = 0
    if isinstance(module, nn.modules.batchnorm._BatchNorm) and not isinstance(
        module, (GlobalBatchNorm, nn.SyncBatchNorm)
    ):
        new = GlobalBatchNorm(
            module.num_features, module.eps, module.momentum, module.affine,
            module.track_running_stats,
        )
        new._parameters = module._parameters
        new._buffers = module._buffers
        new.train(module.training)
        return new, 1
    for name, child in module.named_children():
        new_child, n = convert(child)
        if new_child is not child:
            setattr(module, name, new_child)
        count += n
    return module, count

