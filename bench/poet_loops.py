"""LSTM-poet benchmarks: MLE training throughput (ganframe vs a hand-written loop) and one
SeqGAN generator update with the plugin's batched rollouts vs the nested per-rollout,
per-prefix loop of popular SeqGAN implementations (:mod:`naive_rollout`).

Networks, data and losses are the plugin's own (``lstm`` generator, ``cnn`` critic,
``poems`` quatrain5 data with its 5,000+ character vocabulary), so only the code around
them differs between the two sides of each ratio. The SeqGAN update runs on freshly
initialised networks: the work of a rollout does not depend on the weights (every position
of every completion is computed), only on the sizes.
"""

from __future__ import annotations

import os
import shutil
import tempfile
from pathlib import Path
from types import SimpleNamespace
from typing import Any

import torch
from measure import StepClock
from torch import Tensor, nn

BATCH = 64
LOG_EVERY = 50


def build_poems(split: str = "train") -> Any:
    from ganframe_poet.configs import PoemsConfig
    from ganframe_poet.data import build_poems as build

    root = Path(os.environ["GANFRAME_DATA"]).expanduser()
    return build(PoemsConfig(mode="quatrain5", max_len=24, split=split),
                 SimpleNamespace(data_root=root, recipe_dir=None))


def build_networks(info: dict[str, Any], device: torch.device) -> tuple[nn.Module, nn.Module]:
    """The recipe ``lstm-poet``'s generator and critic, from the plugin's factories."""
    from ganframe_poet.configs import CNNCriticConfig, LSTMGeneratorConfig
    from ganframe_poet.critics import build_cnn_critic
    from ganframe_poet.generator import build_lstm_generator

    ctx = SimpleNamespace(data_info=info)
    gen = build_lstm_generator(LSTMGeneratorConfig(max_len=24), ctx)
    critic = build_cnn_critic(CNNCriticConfig(), ctx)
    return gen.to(device), critic.to(device)


# -- MLE ----------------------------------------------------------------------------------


class HandMLE:
    """Teacher-forced MLE as a tutorial writes it: shuffled slices of the token tensor."""

    def __init__(self, tokens: Tensor, info: dict[str, Any], device: torch.device) -> None:
        self.tokens, self.device = tokens, device
        self.gen, _critic = build_networks(info, device)
        self.opt = torch.optim.Adam(self.gen.parameters(), lr=1e-3, betas=(0.5, 0.999))
        self.gen.train()
        self.rng = torch.Generator().manual_seed(0)
        self.per_epoch = len(tokens) // BATCH
        self.order, self.pos = torch.randperm(len(tokens), generator=self.rng), 0
        self.step_count = 0
        self.last: float | None = None

    def step(self) -> None:
        if self.pos >= self.per_epoch:
            self.order, self.pos = torch.randperm(len(self.tokens), generator=self.rng), 0
        idx = self.order[self.pos * BATCH : (self.pos + 1) * BATCH]
        batch = self.tokens[idx].to(self.device, non_blocking=True)
        self.pos += 1
        loss = self.gen.nll(batch)
        self.opt.zero_grad(set_to_none=True)
        loss.backward()
        self.opt.step()
        self.step_count += 1
        if self.step_count % LOG_EVERY == 0:
            self.last = loss.item()

    def run(self, steps: int) -> float:
        clock = StepClock(self.device)
        clock.start()
        for _ in range(steps):
            self.step()
        return clock.stop()


def mle_hand(steps: int, warmup: int, device: str) -> dict[str, Any]:
    """The hand-written MLE loop alone in this process (for its own peak memory)."""
    torch.manual_seed(0)
    data = build_poems()
    trainer = HandMLE(data.tokens, data.info(), torch.device(device))
    trainer.run(warmup)
    seconds = trainer.run(steps)
    tokens = steps * BATCH * data.tokens.shape[1]
    return {"seconds": seconds, "steps": steps, "tokens_per_s": tokens / seconds}


def _mle_overrides(total: int, device: str) -> list[str]:
    """The registered ``lstm-poet`` recipe cut down to its MLE phase (test-NLL evaluation,
    metrics and intermediate samples off), in fp32 like the hand loop: the row measures what
    the framework costs, not what the recipe's bf16 autocast saves."""
    return [
        f'phases=[{{name = "mle", loss = {{type = "mle", eval_every = 0}}, steps = {total}}}]',
        "metrics=[]",
        "train.sample_every=0",
        "train.checkpoint_every=0",
        'train.precision="fp32"',
        f"device={device}",
    ]


def mle_paired(blocks: int, block_steps: int, warmup: int, device: str) -> dict[str, Any]:
    """ganframe and the hand loop in one process, interleaved in blocks (see
    :func:`dcgan_loops.paired`)."""
    from ganframe.api import load_recipe, train
    from ganframe.training import Progress

    dev = torch.device(device)
    torch.manual_seed(0)
    data = build_poems()
    hand = HandMLE(data.tokens, data.info(), dev)
    hand.run(warmup)
    times: dict[str, list[float]] = {"ganframe": [], "hand": []}
    clock = StepClock(dev)

    def on_step(_phase_step: int, step: int) -> None:
        if step < warmup or (step - warmup) % block_steps:
            return
        block = (step - warmup) // block_steps
        if block > 0:
            times["ganframe"].append(clock.stop())
        if block < blocks:
            times["hand"].append(hand.run(block_steps))
            clock.start()

    total = warmup + blocks * block_steps
    recipe = load_recipe("lstm-poet", overrides=_mle_overrides(total, device))
    out = Path(tempfile.mkdtemp(prefix="ganframe-bench-"))
    try:
        train(recipe, out=out / "run", progress=Progress(on_step=on_step))
    finally:
        shutil.rmtree(out, ignore_errors=True)
    assert len(times["ganframe"]) == blocks, times
    per_block = block_steps * BATCH * data.tokens.shape[1]
    rate = {k: [per_block / t for t in v] for k, v in times.items()}
    return {"block_steps": block_steps, "blocks": blocks, "warmup": warmup,
            "tokens_per_s": rate, "seconds": times}


def mle_ganframe(steps: int, warmup: int, device: str) -> dict[str, Any]:
    """``ganframe.api.train`` alone in this process (for its own peak memory)."""
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

    overrides = _mle_overrides(total, device)
    recipe = load_recipe("lstm-poet", overrides=overrides)
    out = Path(tempfile.mkdtemp(prefix="ganframe-bench-"))
    try:
        result = train(recipe, out=out / "run", progress=Progress(on_step=on_step))
        last = result.metrics[-1].get("nll") if result.metrics else None
    finally:
        shutil.rmtree(out, ignore_errors=True)
    assert clock.t0 is not None and clock.t1 is not None, "the step callback never fired"
    seconds = clock.t1 - clock.t0
    per_step = BATCH * (recipe.component("data")[1].max_len + 1)
    return {"seconds": seconds, "steps": steps, "tokens_per_s": steps * per_step / seconds,
            "last_nll": last}


# -- SeqGAN generator update ----------------------------------------------------------------


def _naive_objective(config: Any) -> Any:
    from ganframe_poet.objectives import SeqGAN, evaluating
    from naive_rollout import naive_rollout_rewards

    class NaiveSeqGAN(SeqGAN):
        """The plugin's SeqGAN with only the reward computation swapped for the loop."""

        def rewards(self, ctx: Any, x: Tensor) -> Tensor:
            critic = ctx.critic
            net = self.rollout_net(ctx.generator)

            def score(seqs: Tensor) -> Tensor:
                return torch.sigmoid(critic(seqs).reshape(-1).float())

            with evaluating(critic):
                return naive_rollout_rewards(net, score, x, self.config.rollouts)

    return NaiveSeqGAN(config)


def _objective(variant: str, batch: int, rollouts: int) -> Any:
    from ganframe_poet.configs import SeqGANConfig
    from ganframe_poet.objectives import SeqGAN

    config = SeqGANConfig(rollouts=rollouts, samples=batch)
    return _naive_objective(config) if variant == "naive" else SeqGAN(config)


def _generator_update(objective: Any, sctx: Any, real: Tensor, opt: torch.optim.Optimizer,
                      critic: nn.Module, bf16: bool = False) -> float:
    """What the core does for one generator update (critic frozen, as in the core); with
    ``bf16`` the loss runs under bf16 autocast, as ``train.precision = "bf16"`` makes it."""
    critic.requires_grad_(False)
    try:
        with torch.autocast(sctx.device.type, dtype=torch.bfloat16, enabled=bf16):
            out = objective.generator_loss(sctx, real)
        opt.zero_grad(set_to_none=True)
        out.loss.backward()
        opt.step()
    finally:
        critic.requires_grad_(True)
    return float(out.logs["reward"])


def seqgan_update(variant: str, batch: int, rollouts: int, device: str) -> dict[str, Any]:
    """One SeqGAN generator update: sample ``batch`` poems, per-token rewards from
    ``rollouts`` completions of every prefix, policy-gradient loss, backward, Adam step.
    ``variant``: ``batched`` (the plugin), ``batched_bf16`` (the plugin under bf16
    autocast) or ``naive`` (the nested loop)."""
    from ganframe.components import StepContext

    dev = torch.device(device)
    torch.manual_seed(0)
    data = build_poems()
    gen, critic = build_networks(data.info(), dev)
    gen.train()
    critic.train()
    opt = torch.optim.Adam(gen.parameters(), lr=1e-4, betas=(0.5, 0.999))
    sctx = StepContext(gen, critic, dev, 0, 0, 1)
    real = data.get(torch.arange(batch)).to(dev)
    # Warm-up on a tiny problem: first-call allocations and kernel selection, not timed.
    bf16 = variant.endswith("_bf16")
    _generator_update(_objective(variant, 4, 1), sctx, real[:4], opt, critic, bf16)
    objective = _objective(variant, batch, rollouts)
    clock = StepClock(dev)
    clock.start()
    reward = _generator_update(objective, sctx, real, opt, critic, bf16)
    seconds = clock.stop()
    length = real.shape[1]
    return {
        "seconds": seconds,
        "completions": (length - 1) * rollouts * batch,
        "mean_reward": reward,
    }
