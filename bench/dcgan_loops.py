"""DCGAN-MNIST training three ways: ganframe, a hand-written loop on an in-memory tensor,
and the same hand-written loop fed by a per-item ``Dataset`` + ``DataLoader``.

The hand-written loop does the arithmetic the recipe ``dcgan-mnist`` asks ganframe to do, so
the ratio isolates what the framework costs: the plugin's own model classes, non-saturating
loss, a fresh no-grad fake batch for the critic update and a fresh differentiable one for the
generator update, the critic frozen during the generator update, Adam with the recipe's
settings (generator 2e-3, critic 2e-4, betas 0.5/0.99), a generator EMA (0.99) and a scalar
read-out every 50 steps. (The PyTorch DCGAN
example differs in two ways: it reuses one fake batch for both updates and does not freeze
the critic. Those are algorithm choices, not framework cost.)

:func:`paired` (the ratios) interleaves all three in one process in blocks of steps after
their warm-up; :func:`ganframe_loop` and :func:`hand_loop` run one of them alone (its peak
memory). Only steady-state steps are timed.
"""

from __future__ import annotations

import copy
import shutil
import tempfile
from pathlib import Path
from typing import Any

import torch
import torch.nn.functional as F
from measure import StepClock
from torch import Tensor, nn

BATCH = 64
LATENT = 100
EMA_DECAY = 0.99
LOG_EVERY = 50


def load_images() -> Tensor:
    """MNIST train images, uint8 N x 1 x 28 x 28, from ``$GANFRAME_DATA/mnist`` (no download)."""
    from ganframe_dcgan.mnist import load_split

    images, _labels, _path = load_split("train", None, download_missing=False, progress=False)
    return images


def build_models(device: torch.device) -> tuple[nn.Module, nn.Module]:
    from ganframe_dcgan.models import DcganCritic, DcganGenerator

    generator = DcganGenerator(latent_dim=LATENT, base_width=64, image_size=28, channels=1)
    critic = DcganCritic(base_width=64, norm="batch", image_size=28, channels=1)
    return generator.to(device), critic.to(device)


def _adam(net: nn.Module, lr: float) -> torch.optim.Optimizer:
    return torch.optim.Adam(net.parameters(), lr=lr, betas=(0.5, 0.99))


@torch.no_grad()
def _ema(ema: nn.Module, model: nn.Module) -> None:
    for e, p in zip(ema.parameters(), model.parameters(), strict=True):
        e.lerp_(p, 1.0 - EMA_DECAY)
    for e, b in zip(ema.buffers(), model.buffers(), strict=True):
        e.copy_(b)


class _TensorBatches:
    """The in-memory pipeline: one permutation per epoch, one indexing op per batch."""

    def __init__(self, images: Tensor, device: torch.device) -> None:
        self.images, self.device = images, device
        self.per_epoch = len(images) // BATCH
        self.rng = torch.Generator().manual_seed(0)
        self.order, self.pos = torch.randperm(len(images), generator=self.rng), 0

    def next(self) -> Tensor:
        if self.pos >= self.per_epoch:
            self.order, self.pos = torch.randperm(len(self.images), generator=self.rng), 0
        idx = self.order[self.pos * BATCH : (self.pos + 1) * BATCH]
        self.pos += 1
        batch = self.images[idx].to(torch.float32).div_(127.5).sub_(1.0)
        return batch.to(self.device, non_blocking=True)


class ItemDataset(torch.utils.data.Dataset):
    """The torchvision-style dataset: one image tensor in [-1, 1] per ``__getitem__``."""

    def __init__(self, images: Tensor) -> None:
        self.images = images

    def __len__(self) -> int:
        return len(self.images)

    def __getitem__(self, i: int) -> Tensor:
        return self.images[i].to(torch.float32).div(127.5).sub(1.0)


class _LoaderBatches:
    """``DataLoader(batch_size=64, shuffle=True, num_workers=0)``, restarted every epoch."""

    def __init__(self, images: Tensor, device: torch.device) -> None:
        self.loader = torch.utils.data.DataLoader(
            ItemDataset(images), batch_size=BATCH, shuffle=True, num_workers=0, drop_last=True
        )
        self.device = device
        self.it = iter(self.loader)

    def next(self) -> Tensor:
        try:
            batch = next(self.it)
        except StopIteration:
            self.it = iter(self.loader)
            batch = next(self.it)
        return batch.to(self.device, non_blocking=True)


class HandTrainer:
    """The loop a user would write by hand; ``pipeline`` is ``tensor`` or ``dataloader``."""

    def __init__(self, images: Tensor, device: torch.device, pipeline: str) -> None:
        self.device = device
        self.data = (_TensorBatches(images, device) if pipeline == "tensor"
                     else _LoaderBatches(images, device))
        self.gen, self.critic = build_models(device)
        self.ema = copy.deepcopy(self.gen).requires_grad_(False).eval()
        self.opt_g, self.opt_c = _adam(self.gen, 2e-3), _adam(self.critic, 2e-4)
        self.gen.train()
        self.critic.train()
        self.step_count = 0
        self.last: tuple[float, float] | None = None

    def step(self) -> None:
        gen, critic, dev = self.gen, self.critic, self.device
        real = self.data.next()
        with torch.no_grad():
            fake = gen(torch.randn(BATCH, LATENT, device=dev))
        d_real = critic(real).reshape(-1)
        d_fake = critic(fake).reshape(-1)
        loss_c = F.softplus(-d_real).mean() + F.softplus(d_fake).mean()
        self.opt_c.zero_grad(set_to_none=True)
        loss_c.backward()
        self.opt_c.step()

        critic.requires_grad_(False)
        loss_g = F.softplus(-critic(gen(torch.randn(BATCH, LATENT, device=dev))).reshape(-1)).mean()
        self.opt_g.zero_grad(set_to_none=True)
        loss_g.backward()
        self.opt_g.step()
        critic.requires_grad_(True)
        _ema(self.ema, gen)
        self.step_count += 1
        if self.step_count % LOG_EVERY == 0:
            self.last = (loss_c.item(), loss_g.item())

    def run(self, steps: int) -> float:
        """Seconds for ``steps`` steps."""
        clock = StepClock(self.device)
        clock.start()
        for _ in range(steps):
            self.step()
        return clock.stop()


def hand_loop(steps: int, warmup: int, device: str, pipeline: str) -> dict[str, Any]:
    """One baseline alone in this process (for its own peak memory)."""
    torch.manual_seed(0)
    trainer = HandTrainer(load_images(), torch.device(device), pipeline)
    trainer.run(warmup)
    seconds = trainer.run(steps)
    return {"seconds": seconds, "steps": steps, "images_per_s": steps * BATCH / seconds}


def ganframe_overrides(steps: int, device: str) -> list[str]:
    """The recipe as shipped, with the periodic extras off: no metrics, samples and
    checkpoint only at the end (after the timed window)."""
    return [
        f"train.steps={steps}",
        "train.sample_every=0",
        "train.checkpoint_every=0",
        "metrics=[]",
        "data.download=false",
        f"device={device}",
    ]


def ganframe_loop(steps: int, warmup: int, device: str) -> dict[str, Any]:
    """``ganframe.api.train`` on the registered ``dcgan-mnist`` recipe; the clock starts after
    the warm-up steps and stops after the last step, so building, the final sample grid and
    the final checkpoint are not timed."""
    from ganframe.api import load_recipe, train
    from ganframe.training import Progress

    dev = torch.device(device)
    clock = StepClock(dev)
    total = warmup + steps

    def on_step(_phase_step: int, step: int) -> None:
        if step == warmup:
            clock.start()
        elif step == total:
            clock.stop()

    recipe = load_recipe("dcgan-mnist", overrides=ganframe_overrides(total, device))
    out = Path(tempfile.mkdtemp(prefix="ganframe-bench-"))
    try:
        result = train(recipe, out=out / "run", progress=Progress(on_step=on_step))
        last = result.metrics[-1] if result.metrics else {}
    finally:
        shutil.rmtree(out, ignore_errors=True)
    assert clock.t0 is not None and clock.t1 is not None, "the step callback never fired"
    seconds = clock.t1 - clock.t0
    return {"seconds": seconds, "steps": steps, "images_per_s": steps * BATCH / seconds,
            "last_losses": [last.get("d_loss"), last.get("g_loss")]}


def paired(blocks: int, block_steps: int, warmup: int, device: str) -> dict[str, Any]:
    """All three in one process, interleaved in blocks of ``block_steps`` steps: ganframe
    trains through ``api.train``, and at every block boundary its step callback pauses it
    and runs one block of each hand-written loop (rotating their order). Every block of
    every variant meets the same machine load, so the per-block ratios pair up."""
    from ganframe.api import load_recipe, train
    from ganframe.training import Progress

    dev = torch.device(device)
    torch.manual_seed(0)
    images = load_images()  # memoised by the plugin: ganframe's dataset shares the tensor
    baselines = {"hand": HandTrainer(images, dev, "tensor"),
                 "dataloader": HandTrainer(images, dev, "dataloader")}
    for trainer in baselines.values():
        trainer.run(warmup)
    times: dict[str, list[float]] = {"ganframe": [], "hand": [], "dataloader": []}
    clock = StepClock(dev)
    names = list(baselines)

    def on_step(_phase_step: int, step: int) -> None:
        if step < warmup or (step - warmup) % block_steps:
            return
        block = (step - warmup) // block_steps
        if block > 0:
            times["ganframe"].append(clock.stop())
        if block < blocks:
            shift = block % len(names)
            for name in names[shift:] + names[:shift]:
                times[name].append(baselines[name].run(block_steps))
            clock.start()

    total = warmup + blocks * block_steps
    recipe = load_recipe("dcgan-mnist", overrides=ganframe_overrides(total, device))
    out = Path(tempfile.mkdtemp(prefix="ganframe-bench-"))
    try:
        train(recipe, out=out / "run", progress=Progress(on_step=on_step))
    finally:
        shutil.rmtree(out, ignore_errors=True)
    assert len(times["ganframe"]) == blocks, times
    rate = {k: [block_steps * BATCH / t for t in v] for k, v in times.items()}
    return {"block_steps": block_steps, "blocks": blocks, "warmup": warmup,
            "images_per_s": rate, "seconds": times}
