"""Device choice, seeding and determinism: the few global switches a run flips."""

from __future__ import annotations

import os
import random
from collections.abc import Iterator
from contextlib import contextmanager

import numpy as np
import torch

from ganframe.errors import UserError


def select_device(spec: str) -> torch.device:
    """Resolve ``auto|cpu|cuda|cuda:N|mps``; asking for hardware that is absent is a user error."""
    if spec == "auto":
        if torch.cuda.is_available():
            return torch.device("cuda")
        if getattr(torch.backends, "mps", None) and torch.backends.mps.is_available():
            return torch.device("mps")
        return torch.device("cpu")
    if spec.startswith("cuda"):
        if not torch.cuda.is_available():
            raise UserError(
                f"device {spec!r} was asked for but this torch build sees no CUDA device; "
                'use --device cpu or device = "auto".'
            )
        index = int(spec.split(":")[1]) if ":" in spec else 0
        if index >= torch.cuda.device_count():
            raise UserError(
                f"device {spec!r}: only {torch.cuda.device_count()} CUDA device(s) present."
            )
        return torch.device(spec)
    if spec == "mps" and not (
        getattr(torch.backends, "mps", None) and torch.backends.mps.is_available()
    ):
        raise UserError("device 'mps' was asked for but is not available; use --device cpu.")
    return torch.device(spec)


class PerformanceWarning(UserWarning):
    """A recipe setting that works but is known to be slow on this machine."""


def cpu_has_native_bf16() -> bool:
    """Whether this CPU computes bf16 in hardware (AVX512-BF16 or AMX). Without it torch
    emulates bf16 matmuls: measured 8.5x slower than fp32 on an AVX2 EPYC (2048x512 @
    512x6000), so a "bf16" recipe there is a trap, not a speed-up."""
    mkldnn = getattr(torch.ops, "mkldnn", None)
    probe = getattr(mkldnn, "_is_mkldnn_bf16_supported", None) if mkldnn else None
    try:
        return bool(probe()) if probe is not None else False
    except Exception:  # an op missing from this build: treat as emulated
        return False


def bf16_warning(device: torch.device) -> str | None:
    """The warning a bf16 run on a CPU without native bf16 gets, or None."""
    if device.type != "cpu" or cpu_has_native_bf16():
        return None
    return (
        'train.precision = "bf16" on a CPU without native bf16 (no AVX512-BF16/AMX): torch '
        "emulates it and matrix products run several times slower than in fp32 (8.5x "
        'measured on an AVX2 CPU); set train.precision = "fp32" (--set '
        "train.precision='\"fp32\"') unless you need bf16 numerics."
    )


@contextmanager
def cpu_threads(n: int) -> Iterator[None]:
    """Use ``n`` intra-op CPU threads for a run (0 leaves torch's choice), then put back the
    previous count, so a run started from Python does not change the caller's process."""
    if n <= 0:
        yield
        return
    before = torch.get_num_threads()
    torch.set_num_threads(n)
    try:
        yield
    finally:
        torch.set_num_threads(before)


def seed_everything(seed: int) -> None:
    """Seed every RNG a run may touch: Python, NumPy, torch (CPU and all CUDA devices)."""
    random.seed(seed)
    np.random.seed(seed % 2**32)
    torch.manual_seed(seed)


def set_deterministic(enabled: bool) -> None:
    """Ask torch for deterministic kernels; needed for bit-exact resume on GPUs."""
    if enabled:
        os.environ.setdefault("CUBLAS_WORKSPACE_CONFIG", ":4096:8")
    if enabled != torch.are_deterministic_algorithms_enabled():
        torch.use_deterministic_algorithms(enabled)  # costs ~2 s of imports: only if needed
    torch.backends.cudnn.deterministic = enabled
    torch.backends.cudnn.benchmark = False
