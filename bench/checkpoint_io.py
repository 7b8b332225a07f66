"""Saving and loading the DCGAN run state: generator, critic, generator EMA and both Adam
optimisers (after one update, so their moment buffers exist).

ganframe: :func:`ganframe.checkpoint.save_checkpoint` (safetensors, JSON metadata, RNG state,
atomic write with fsync) and :func:`read_checkpoint` plus the ``restore_*`` functions.
Baseline: ``torch.save`` of the five state dicts (no fsync; also timed followed by an
fsync and a rename, for reference) and ``torch.load`` with
``weights_only=True`` plus ``load_state_dict``. Both load onto the CPU and then into the live
modules and optimisers; the four operations alternate, repeated, median.
"""

from __future__ import annotations

import copy
import os
import shutil
import tempfile
import time
from pathlib import Path
from typing import Any

import torch
import torch.nn.functional as F
from dcgan_loops import BATCH, LATENT, build_models
from measure import median


def _run_state(device: torch.device) -> dict[str, Any]:
    gen, critic = build_models(device)
    ema = copy.deepcopy(gen).requires_grad_(False)
    opt_g = torch.optim.Adam(gen.parameters(), lr=2e-4, betas=(0.5, 0.999))
    opt_c = torch.optim.Adam(critic.parameters(), lr=2e-4, betas=(0.5, 0.999))
    real = torch.rand(BATCH, 1, 28, 28, device=device) * 2 - 1
    loss_c = F.softplus(-critic(real)).mean() + F.softplus(
        critic(gen(torch.randn(BATCH, LATENT, device=device)).detach())).mean()
    loss_c.backward()
    opt_c.step()
    F.softplus(-critic(gen(torch.randn(BATCH, LATENT, device=device)))).mean().backward()
    opt_g.step()
    return {"modules": {"generator": gen, "critic": critic, "ema": ema},
            "optimizers": {"generator": opt_g, "critic": opt_c}}


def _sync(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize()


def compare(repeats: int, device: str) -> dict[str, Any]:
    from ganframe.checkpoint import (
        read_checkpoint,
        restore_module,
        restore_optimizer,
        save_checkpoint,
    )

    dev = torch.device(device)
    state = _run_state(dev)
    modules, optimizers = state["modules"], state["optimizers"]
    folder = Path(tempfile.mkdtemp(prefix="ganframe-bench-ckpt-"))
    ours_path, theirs_path = folder / "state.safetensors", folder / "state.pt"

    def ours_save() -> None:
        save_checkpoint(ours_path, modules=modules, optimizers=optimizers,
                        meta={"bench": "checkpoint"})

    def ours_load() -> None:
        ckpt = read_checkpoint(ours_path)
        for name, module in modules.items():
            restore_module(ckpt, name, module)
        for name, opt in optimizers.items():
            restore_optimizer(ckpt, name, opt)

    def theirs_save() -> None:
        doc = {f"module.{k}": m.state_dict() for k, m in modules.items()}
        doc.update({f"optim.{k}": o.state_dict() for k, o in optimizers.items()})
        torch.save(doc, theirs_path)

    def theirs_save_fsync() -> None:  # torch.save made as durable as ganframe's write
        doc = {f"module.{k}": m.state_dict() for k, m in modules.items()}
        doc.update({f"optim.{k}": o.state_dict() for k, o in optimizers.items()})
        tmp = theirs_path.with_suffix(".tmp")
        with tmp.open("wb") as fh:
            torch.save(doc, fh)
            fh.flush()
            os.fsync(fh.fileno())
        os.replace(tmp, theirs_path)

    def theirs_load() -> None:
        doc = torch.load(theirs_path, map_location="cpu", weights_only=True)
        for name, module in modules.items():
            module.load_state_dict(doc[f"module.{name}"])
        for name, opt in optimizers.items():
            opt.load_state_dict(doc[f"optim.{name}"])

    ops = {"ours_save": ours_save, "theirs_save": theirs_save,
           "theirs_save_fsync": theirs_save_fsync,
           "ours_load": ours_load, "theirs_load": theirs_load}
    times: dict[str, list[float]] = {k: [] for k in ops}
    try:
        for fn in ops.values():  # warm-up: imports, first allocations, page cache
            fn()
        for _ in range(repeats):
            for name, fn in ops.items():
                _sync(dev)
                t0 = time.perf_counter()
                fn()
                _sync(dev)
                times[name].append(time.perf_counter() - t0)
        sizes = {"ours_bytes": ours_path.stat().st_size, "theirs_bytes": theirs_path.stat().st_size}
    finally:
        shutil.rmtree(folder, ignore_errors=True)
    return {
        **{f"{k}_s": median(v) for k, v in times.items()},
        "save_ratios": [t / o for o, t in zip(times["ours_save"], times["theirs_save"],
                                              strict=True)],
        "save_fsync_ratios": [t / o for o, t in zip(times["ours_save"],
                                                    times["theirs_save_fsync"], strict=True)],
        "load_ratios": [t / o for o, t in zip(times["ours_load"], times["theirs_load"],
                                              strict=True)],
        **sizes,
    }
