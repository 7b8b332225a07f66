"""Multi-process training on torch.distributed: process group, gradient averaging, launch.

Why not ``DistributedDataParallel``: its reducer only sees ``forward()``. GAN objectives call
other methods too (``sample_latent``, text rollouts, relaxed sampling), score several batches
per step, take gradient penalties with ``autograd.grad``, and freeze the critic during the
generator update, which trips DDP's "finish the reduction before the next iteration" check.
Averaging the gradients explicitly after each backward, in one coalesced all-reduce per
network, is what DDP computes as well, and it is correct for every objective. Buffers
(batch-norm statistics) are broadcast from rank 0 after each update, as DDP does before each
forward, so every rank holds bit-identical networks; a checksum at every checkpoint proves it.
"""

from __future__ import annotations

import hashlib
import os
from dataclasses import dataclass

import torch
import torch.distributed as dist
from torch import nn

from ganframe.errors import UserError


@dataclass(frozen=True)
class DistInfo:
    rank: int = 0
    world: int = 1
    local_rank: int = 0

    @property
    def enabled(self) -> bool:
        return self.world > 1

    @property
    def is_main(self) -> bool:
        return self.rank == 0


def from_env() -> DistInfo:
    """The rank layout torchrun (or ``ganframe run --nproc``) put in the environment."""
    world = int(os.environ.get("WORLD_SIZE", "1"))
    return DistInfo(int(os.environ.get("RANK", "0")), world, int(os.environ.get("LOCAL_RANK", "0")))


def init(info: DistInfo, device: torch.device) -> torch.device:
    """Join the process group (gloo on CPU, nccl on CUDA); return this rank's device."""
    if not info.enabled:
        return device
    if device.type == "cuda":
        device = torch.device("cuda", info.local_rank)
        torch.cuda.set_device(device)
        backend = "nccl"
    elif device.type == "cpu":
        backend = "gloo"
    else:
        raise UserError(f"multi-process training supports cpu and cuda, not {device.type}.")
    if not dist.is_initialized():
        dist.init_process_group(backend=backend)
    return device


def shutdown(info: DistInfo) -> None:
    """Leave the group together: a rank that tears gloo down while another is still in its
    last collective can abort at exit ("terminate called without an active exception")."""
    if info.enabled and dist.is_initialized():
        try:
            dist.barrier()
        finally:
            dist.destroy_process_group()


def barrier(info: DistInfo) -> None:
    if info.enabled:
        dist.barrier()


def average_gradients(module: nn.Module, world: int) -> None:
    """Average ``.grad`` over ranks in one all-reduce (a missing grad counts as zero)."""
    params = [p for p in module.parameters() if p.requires_grad]
    if not params:
        return
    grads = [p.grad if p.grad is not None else torch.zeros_like(p) for p in params]
    flat = torch.cat([g.reshape(-1) for g in grads])
    dist.all_reduce(flat)
    flat /= world
    offset = 0
    for p, g in zip(params, grads, strict=True):
        n = g.numel()
        view = flat[offset : offset + n].view_as(g)
        if p.grad is None:
            p.grad = view.clone()
        else:
            p.grad.copy_(view)
        offset += n


def broadcast_state(module: nn.Module, *, buffers_only: bool = False) -> None:
    """Copy rank 0's parameters and/or buffers to every rank."""
    tensors = list(module.buffers()) if buffers_only else list(module.state_dict().values())
    for t in tensors:
        if t.is_floating_point() or t.dtype in (torch.int64, torch.int32, torch.uint8):
            dist.broadcast(t.data, src=0)


def mean_scalars(values: dict[str, float], world: int) -> dict[str, float]:
    """Average logged scalars over ranks (same keys on every rank)."""
    if world <= 1 or not values:
        return values
    keys = sorted(values)
    t = torch.tensor([values[k] for k in keys], dtype=torch.float64)
    dist.all_reduce(t)
    return {k: float(v) / world for k, v in zip(keys, t.tolist(), strict=True)}


def any_rank(flag: bool, world: int) -> bool:
    """True on every rank if it is true on any (e.g. a signal arrived on one of them)."""
    if world <= 1:
        return flag
    t = torch.tensor([1 if flag else 0], dtype=torch.int64)
    dist.all_reduce(t)
    return bool(t.item())


def digest(modules: list[nn.Module]) -> bytes:
    h = hashlib.sha256()
    for m in modules:
        for k, v in m.state_dict().items():
            h.update(k.encode())
            h.update(v.detach().cpu().contiguous().reshape(-1).view(torch.uint8).numpy().tobytes())
    return h.digest()[:8]


def gather_digests(modules: list[nn.Module], world: int) -> list[str]:
    """Every rank's checksum of its networks (hex); they must all be equal. Sent as plain
    integer tensors: no object serialisation between processes."""
    if world <= 1:
        return []  # nothing to compare with
    mine = torch.tensor(list(digest(modules)), dtype=torch.int64)
    out = [torch.zeros_like(mine) for _ in range(world)]
    dist.all_gather(out, mine)
    return [bytes(t.tolist()).hex() for t in out]


def gather_rng_states(world: int) -> list[torch.Tensor]:
    """Every rank's torch CPU generator state, so that each rank resumes its own noise."""
    if world <= 1:
        return []
    mine = torch.get_rng_state()
    out = [torch.empty_like(mine) for _ in range(world)]
    dist.all_gather(out, mine)
    return out


def launch(nproc: int, args: list[str]) -> int:
    """Run ``python -m ganframe ARGS`` in ``nproc`` processes through torch's elastic
    launcher (what ``torchrun --standalone --nproc-per-node N`` does)."""
    from torch.distributed.run import parse_args, run

    config = parse_args(
        ["--standalone", f"--nproc-per-node={nproc}", "--module", "ganframe", *args]
    )
    try:
        run(config)
    except Exception as exc:  # ChildFailedError: a worker failed and already said why
        failures = getattr(exc, "failures", {})
        codes = [getattr(f, "exitcode", 1) for f in failures.values()] or [1]
        return next((c for c in codes if c in (2, 130, 143)), codes[0])
    return 0
