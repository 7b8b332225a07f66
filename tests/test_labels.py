"""Class labels in the contracts: batches, conditional generation, losses, sampling options,
the labelled ring end to end (train, resume bit-exactly, sample chosen modes)."""

from __future__ import annotations

import math
from pathlib import Path

import numpy as np
import pytest
import torch
from pydantic import BaseModel, Field
from safetensors.torch import load_file
from torch import nn
from typer.testing import CliRunner

from ganframe import api
from ganframe.builtin.losses_plugin import register_losses
from ganframe.builtin.toy import (
    GaussianRing,
    MLPCritic,
    MLPGenerator,
    build_critic,
    build_generator,
    ring_centres,
)
from ganframe.builtin.toy_plugin import CriticMLPConfig, MLPConfig, RingConfig
from ganframe.cli import app
from ganframe.components import (
    Batch,
    BuildContext,
    LatentGenerator,
    StepContext,
    as_batch,
    check_sampling_options,
    generate,
)
from ganframe.errors import UserError
from ganframe.registry import Registry, make_register

LOSSES = ["non-saturating", "minimax", "wgan", "wgan-gp", "hinge", "lsgan"]
ROOT = Path(__file__).resolve().parents[1]


# -- Batch --------------------------------------------------------------------------------


def test_as_batch_wraps_a_tensor_and_keeps_a_batch():
    x = torch.randn(4, 2)
    b = as_batch(x)
    assert isinstance(b, Batch) and b.data is x and b.labels is None and len(b) == 4
    labelled = Batch(x, torch.tensor([0, 1, 2, 3]))
    assert as_batch(labelled) is labelled
    moved = labelled.to("cpu")
    assert torch.equal(moved.data, x) and moved.labels.tolist() == [0, 1, 2, 3]
    assert Batch(x).to("cpu").labels is None
    with pytest.raises(TypeError, match="Tensor or a Batch"):
        as_batch([1, 2])  # type: ignore[arg-type]


@pytest.mark.parametrize(
    "labels",
    [torch.tensor([0, 1, 2]), torch.tensor([0, 1, 2, 3], dtype=torch.int32),
     torch.zeros(4, 1, dtype=torch.int64)],
)
def test_batch_refuses_labels_of_the_wrong_shape_or_dtype(labels):
    with pytest.raises(ValueError, match="int64"):
        Batch(torch.randn(4, 2), labels)


# -- the toy networks ---------------------------------------------------------------------


class Echo(LatentGenerator):
    """A conditional generator whose sample is (label, first latent coordinate)."""

    conditional = True
    num_classes = 5

    def __init__(self) -> None:
        super().__init__()
        self.latent_dim = 3
        self.scale = nn.Parameter(torch.ones(()))

    def forward(self, z: torch.Tensor, labels: torch.Tensor) -> torch.Tensor:
        return torch.stack([labels.float(), z[:, 0]], dim=1) * self.scale


class Plain(LatentGenerator):
    def __init__(self) -> None:
        super().__init__()
        self.latent_dim = 3
        self.lin = nn.Linear(3, 2)

    def forward(self, z: torch.Tensor) -> torch.Tensor:
        return self.lin(z)


def ring_ctx(labels: bool = True, modes: int = 8) -> BuildContext:
    data = GaussianRing(RingConfig(size=512, modes=modes, labels=labels))
    return BuildContext(data_info=data.info())


def cond_nets(seed: int = 0) -> tuple[MLPGenerator, MLPCritic]:
    torch.manual_seed(seed)
    ctx = ring_ctx()
    gen = build_generator(MLPConfig(hidden=16, layers=2, latent_dim=4, conditional=True), ctx)
    critic = build_critic(CriticMLPConfig(hidden=16, layers=2, conditional=True), ctx)
    return gen, critic


def test_conditional_mlps_take_their_classes_from_the_data():
    gen, critic = cond_nets()
    assert gen.conditional and gen.num_classes == 8 and critic.conditional
    x = gen(gen.sample_latent(6, "cpu"), torch.arange(6))
    assert x.shape == (6, 2) and critic(x, torch.arange(6)).shape == (6,)
    with pytest.raises(UserError, match="conditional = true needs labelled data"):
        build_generator(MLPConfig(conditional=True), ring_ctx(labels=False))
    with pytest.raises(UserError, match="critic mlp: conditional = true"):
        build_critic(CriticMLPConfig(conditional=True), ring_ctx(labels=False))
    # Unconditional networks are what they always were (no embedding, same parameters).
    plain = build_generator(MLPConfig(hidden=16, layers=2), ring_ctx())
    assert not plain.conditional and not hasattr(plain, "embed")


# -- the labelled ring --------------------------------------------------------------------


def test_labelled_ring_labels_are_the_nearest_mode():
    labelled = GaussianRing(RingConfig(size=4000, std=0.05, labels=True))
    plain = GaussianRing(RingConfig(size=4000, std=0.05))
    index = torch.arange(4000)
    batch = labelled.get(index)
    assert isinstance(batch, Batch) and batch.labels.dtype == torch.int64
    nearest = torch.cdist(batch.data, ring_centres(8, 2.0)).argmin(dim=1)
    assert torch.equal(nearest, batch.labels)
    assert torch.bincount(batch.labels, minlength=8).min() > 400  # every mode is a class
    # Same points as the unlabelled ring; its info (stored in checkpoints) is unchanged.
    assert isinstance(plain.get(index), torch.Tensor)
    assert torch.equal(plain.get(index), batch.data)
    info = labelled.info()
    assert info["num_classes"] == 8 and len(info["class_names"]) == 8
    assert "num_classes" not in plain.info()


# -- generate() and its labels ------------------------------------------------------------


def test_generate_draws_the_classes_asked_for():
    g = Echo()
    rng = lambda: torch.Generator().manual_seed(1)  # noqa: E731
    assert g.generate(4, device="cpu", rng=rng(), labels=3)[:, 0].tolist() == [3.0] * 4
    given = g.generate(3, device="cpu", rng=rng(), labels=[4, 0, 2])
    assert given[:, 0].tolist() == [4.0, 0.0, 2.0]
    assert torch.equal(
        g.generate(3, device="cpu", rng=rng(), labels=torch.tensor([4, 0, 2])), given
    )
    assert g.generate(2, device="cpu", labels=np.int64(1))[:, 0].tolist() == [1.0, 1.0]
    # The noise does not depend on the labels: one seed, the same latents in every class.
    assert torch.equal(given[:, 1], g.generate(3, device="cpu", rng=rng())[:, 1])
    # No labels: uniform random classes from rng, reproducibly.
    a = g.generate(2000, device="cpu", rng=rng())[:, 0].long()
    assert torch.equal(a, g.generate(2000, device="cpu", rng=rng())[:, 0].long())
    counts = torch.bincount(a, minlength=5)
    assert counts.numel() == 5 and (counts > 300).all()
    # The module-level helper passes labels through.
    assert generate(g, 2, device="cpu", labels=2)[:, 0].tolist() == [2.0, 2.0]


@pytest.mark.parametrize(
    ("labels", "needle"),
    [
        (5, "label 5 is out of range: Echo has 5 classes (labels 0 to 4)"),
        ([0, -1, 2], "label -1 is out of range"),
        ([0, 1], "got 2 labels for 3 samples"),
        (torch.tensor([[0, 1, 2]]), "got 3 labels for 3 samples"),
        ([0.5, 1.0, 2.0], "whole class numbers"),
        (True, "must be a class number"),
        ("3", "must be a class number"),
    ],
)
def test_bad_labels_are_user_errors(labels, needle):
    with pytest.raises(UserError) as err:
        Echo().generate(3, device="cpu", labels=labels)
    assert needle in str(err.value)


def test_labels_for_an_unconditional_generator_are_refused():
    with pytest.raises(UserError, match="Plain is not conditional"):
        Plain().generate(3, device="cpu", labels=1)


# -- StepContext --------------------------------------------------------------------------


def test_fake_of_an_unconditional_generator_ignores_the_batch_labels():
    g = Plain()
    ctx = StepContext(g, None, torch.device("cpu"), labels=torch.tensor([1, 2, 3, 4]))
    torch.manual_seed(5)
    got = ctx.fake(4)
    after = torch.get_rng_state()
    torch.manual_seed(5)
    assert torch.equal(got, g(g.sample_latent(4, "cpu")))
    assert torch.equal(after, torch.get_rng_state())  # no label draw for it
    assert ctx.fake_labels(4) is None
    with pytest.raises(UserError, match="Plain is not conditional"):
        ctx.fake(4, torch.tensor([0, 1, 2, 3]))


def test_fake_of_a_conditional_generator_uses_given_then_batch_then_random_labels():
    g = Echo()
    ctx = StepContext(g, None, torch.device("cpu"))
    assert ctx.fake(3, torch.tensor([4, 4, 0]))[:, 0].tolist() == [4.0, 4.0, 0.0]
    random = ctx.fake(500)[:, 0]
    assert set(random.long().tolist()) == set(range(5))
    ctx.labels = torch.tensor([2, 1, 0, 3])
    assert ctx.fake(3)[:, 0].tolist() == [2.0, 1.0, 0.0]  # the real batch's, first n
    assert ctx.fake_labels(4).tolist() == [2, 1, 0, 3]
    assert ctx.fake_labels(6).shape == (6,)  # more than the batch has: random classes
    with pytest.raises(UserError, match="one class per sample"):
        ctx.fake(3, torch.tensor([1, 2]))


def test_score_passes_labels_to_a_conditional_critic_only():
    seen = []

    class Spy(nn.Module):
        def __init__(self, conditional: bool) -> None:
            super().__init__()
            self.conditional = conditional

        def forward(self, x, labels=None):
            seen.append(labels)
            return x.sum(1)

    x, y = torch.ones(2, 2), torch.tensor([1, 0])
    StepContext(Plain(), Spy(False), torch.device("cpu")).score(x, y)
    StepContext(Plain(), Spy(True), torch.device("cpu")).score(x, y)
    assert seen[0] is None and seen[1] is y
    with pytest.raises(UserError, match="is conditional and needs the class"):
        StepContext(Plain(), Spy(True), torch.device("cpu")).score(x)


# -- losses -------------------------------------------------------------------------------


def objective(name: str, **config: float):
    reg = Registry()
    register_losses(register=make_register(reg, "loss", "ganframe.builtin.losses_plugin", "0"))
    spec = reg.get("loss", name)
    return spec.build(spec.config_model()(**config), BuildContext())


@pytest.mark.parametrize(
    ("name", "r1"), [(n, 0.0) for n in LOSSES] + [(n, 1.0) for n in LOSSES if n != "wgan-gp"]
)
def test_every_loss_trains_conditional_networks(name, r1):
    gen, critic = cond_nets()
    data = GaussianRing(RingConfig(size=256, labels=True)).get(torch.arange(64))
    ctx = StepContext(gen, critic, torch.device("cpu"), labels=data.labels)
    obj = objective(name, r1_gamma=r1)
    out = obj.critic_loss(ctx, data.data)
    assert math.isfinite(out.loss.item()) and all(
        math.isfinite(float(v)) for v in out.logs.values()
    )
    out.loss.backward()
    assert critic.embed.weight.grad is not None and critic.embed.weight.grad.abs().sum() > 0
    assert gen.embed.weight.grad is None  # the critic step leaks nothing into the generator
    critic.zero_grad()
    out = obj.generator_loss(ctx, data.data)
    assert math.isfinite(out.loss.item())
    out.loss.backward()
    assert gen.embed.weight.grad is not None and gen.embed.weight.grad.abs().sum() > 0


def test_the_critic_sees_fakes_with_fake_labels_and_reals_with_real_labels():
    calls: list[tuple[torch.Tensor, torch.Tensor]] = []

    class Spy(MLPCritic):
        def forward(self, x, labels=None):
            calls.append((x.detach().clone(), labels))
            return super().forward(x, labels)

    gen, _ = cond_nets()
    torch.manual_seed(0)
    critic = Spy(2, 8, 1, num_classes=8)
    real = torch.randn(6, 2)
    labels = torch.tensor([0, 1, 2, 3, 4, 5])
    ctx = StepContext(gen, critic, torch.device("cpu"), labels=labels)
    objective("wgan-gp").critic_loss(ctx, real)
    (r_x, r_y), (f_x, f_y), (_, m_y) = calls
    assert torch.equal(r_x, real) and torch.equal(r_y, labels)
    assert not torch.equal(f_x, real) and torch.equal(f_y, labels)  # fakes for the same classes
    assert torch.equal(m_y, labels)  # interpolates are scored with the real labels


def test_unconditional_losses_draw_the_same_numbers_with_labelled_data():
    """A labelled batch changes nothing for unconditional networks (MNIST with DCGAN)."""
    torch.manual_seed(0)
    gen = MLPGenerator(4, 2, 16, 2)
    critic = MLPCritic(2, 16, 2)
    real = torch.randn(32, 2)
    results = []
    for labels in (None, torch.randint(8, (32,))):
        ctx = StepContext(gen, critic, torch.device("cpu"), labels=labels)
        torch.manual_seed(1)
        obj = objective("wgan-gp", r1_gamma=0.5)
        c = obj.critic_loss(ctx, real).loss
        g = obj.generator_loss(ctx, real).loss
        results.append((c, g, torch.get_rng_state()))
    (c0, g0, s0), (c1, g1, s1) = results
    assert torch.equal(c0, c1) and torch.equal(g0, g1) and torch.equal(s0, s1)


def test_a_conditional_critic_with_an_unconditional_generator_is_a_user_error():
    _, critic = cond_nets()
    gen = MLPGenerator(4, 2, 16, 2)
    ctx = StepContext(gen, critic, torch.device("cpu"), labels=torch.zeros(8, dtype=torch.long))
    with pytest.raises(UserError, match="Make the generator conditional too"):
        objective("hinge").critic_loss(ctx, torch.randn(8, 2))


# -- sampling options ---------------------------------------------------------------------


class Truncated(Plain):
    class Options(BaseModel):
        truncation: float = Field(1.0, gt=0, le=1, description="Shrink the noise by this.")
        clip: bool = Field(False, description="Clip instead of scaling.")

    sampling_options = Options


def test_sampling_options_are_validated_against_the_generators_model():
    assert check_sampling_options(Truncated(), {"truncation": 0.5}) == {
        "truncation": 0.5, "clip": False}
    assert check_sampling_options(Truncated(), {}) == {"truncation": 1.0, "clip": False}
    with pytest.raises(UserError) as err:
        check_sampling_options(Truncated(), {"temperature": 0.8})
    text = str(err.value)
    assert "unknown sampling option(s) for Truncated: temperature" in text
    assert "truncation (Shrink the noise by this.; default 1.0)" in text
    assert "clip (Clip instead of scaling.; default False)" in text
    with pytest.raises(UserError) as err:
        check_sampling_options(Truncated(), {"truncation": 2})
    text = str(err.value)
    assert "truncation: input should be less than or equal to 1 (got 2)" in text
    assert "It accepts truncation (" in text
    with pytest.raises(UserError, match="truncation: input should be a valid number"):
        check_sampling_options(Truncated(), {"truncation": "warm"})


def test_a_generator_without_a_model_takes_no_options():
    assert check_sampling_options(Plain(), {}) == {}
    with pytest.raises(UserError) as err:
        check_sampling_options(Plain(), {"top_k": 3, "temperature": 0.5})
    assert "Plain takes no sampling options" in str(err.value)
    assert "temperature, top_k" in str(err.value)
    with pytest.raises(UserError, match="no sampling options"):
        Plain().generate(2, device="cpu", temperature=0.5)


# -- end to end: train, resume, sample ----------------------------------------------------

SMALL = [
    "generator.hidden=32", "critic.hidden=32", "generator.layers=2", "critic.layers=2",
    "train.batch_size=128", "data.size=2048", "train.sample_every=0", "train.log_every=50",
    "metrics.0.n_samples=512", "metrics.1.n_samples=512", "metrics.0.every=0",
    "metrics.1.every=0", "train.checkpoint_every=0",
]


@pytest.fixture(scope="module")
def cond_runs(tmp_path_factory) -> dict[str, api.TrainResult]:
    """The shipped conditional recipe, small: untrained (1 step) and trained (200 steps)."""
    base = tmp_path_factory.mktemp("cond")
    return {
        steps: api.train(api.load_recipe("gaussian-ring-cond", overrides=[
            *SMALL, f"train.steps={steps}"]), out=base / str(steps))
        for steps in (1, 200)
    }


def cli(*args: str | Path):
    return CliRunner().invoke(app, [str(a) for a in args])


def test_conditional_ring_learns_to_draw_the_mode_asked_for(cond_runs, tmp_path):
    accuracy = {
        steps: next(r for r in run.metrics if r.get("metric") == "ring-label-accuracy")
        for steps, run in cond_runs.items()
    }
    assert accuracy[1]["label_accuracy"] < 0.4  # chance is 1/8
    assert accuracy[200]["label_accuracy"] > 0.9, accuracy
    assert accuracy[200]["label_mode_distance"] < 0.5 * accuracy[1]["label_mode_distance"]

    centre = ring_centres(8, 2.0)[3]
    dist = {}
    for steps, run in cond_runs.items():
        out = tmp_path / f"mode3-{steps}.npy"
        result = cli("sample", run.checkpoint, "--labels", "3", "-n", "200", "-o", out)
        assert result.exit_code == 0, result.stderr
        points = torch.from_numpy(np.load(out, allow_pickle=False))
        assert points.shape == (200, 2)
        dist[steps] = (points - centre).norm(dim=1)
    nearest = torch.cdist(torch.from_numpy(np.load(tmp_path / "mode3-200.npy")), ring_centres(
        8, 2.0)).argmin(dim=1)
    assert (nearest == 3).float().mean() > 0.9
    assert dist[200].median() < 0.3 < dist[1].median(), (dist[1].median(), dist[200].median())


def test_sample_labels_lists_all_and_seeds(cond_runs, tmp_path):
    ckpt = api.load_checkpoint(cond_runs[200].checkpoint)
    centres = ring_centres(8, 2.0)

    def modes(x: torch.Tensor) -> list[int]:
        return torch.cdist(x, centres).argmin(dim=1).tolist()

    assert modes(api.sample(ckpt, 7, labels=[0, 5, 2])) == [0, 5, 2, 0, 5, 2, 0]
    every = api.sample(ckpt, 10, labels="all")  # rounded up to 2 x 8 classes
    assert every.shape == (16, 2) and modes(every) == list(range(8)) * 2
    assert torch.equal(api.sample(ckpt, 5, seed=4, labels=1), api.sample(ckpt, 5, seed=4,
                                                                          labels=1))
    scores = api.evaluate(ckpt, ["ring-label-accuracy"])["ring-label-accuracy"]
    assert scores["label_accuracy"] > 0.9 and scores["worst_label_accuracy"] > 0.5
    out = tmp_path / "all.npy"
    result = cli("sample", cond_runs[200].checkpoint, "--labels", "all", "-n", "3", "-o", out)
    assert result.exit_code == 0, result.stderr
    assert "wrote 8 samples" in result.stdout and np.load(out).shape == (8, 2)
    result = cli("sample", cond_runs[200].checkpoint, "--labels", "1,6", "-n", "4", "-o", out)
    assert result.exit_code == 0 and modes(torch.from_numpy(np.load(out))) == [1, 6, 1, 6]


@pytest.mark.parametrize(
    ("args", "needles"),
    [
        (["--labels", "8"], ["label 8 is out of range", "8 classes"]),
        (["--labels", "three"], ["--labels 'three'", "comma-separated"]),
        (["--labels", "1,x"], ["--labels '1,x'"]),
        (["--option", "temperature=0.5"], ["no sampling options", "temperature"]),
        (["--option", "temperature"], ["--option 'temperature'", "KEY=VALUE"]),
        (["--top-k", "3", "--option", "top_k=4"], ["top_k is already given"]),
    ],
)
def test_sample_mistakes_are_user_errors(cond_runs, tmp_path, args, needles):
    out = tmp_path / "x.npy"
    result = cli("sample", cond_runs[200].checkpoint, "-o", out, *args)
    assert result.exit_code == 2, (result.stdout, result.stderr)
    for needle in needles:
        assert needle in result.stderr, (needle, result.stderr)
    assert not out.exists()


def test_labels_for_an_unconditional_checkpoint_are_refused(tmp_path):
    run = api.train(api.load_recipe("gaussian-ring", overrides=[
        "train.steps=2", "train.sample_every=0", "train.checkpoint_every=0",
        "metrics.0.n_samples=64"]), out=tmp_path / "plain")
    result = cli("sample", run.checkpoint, "--labels", "3", "-o", tmp_path / "x.npy")
    assert result.exit_code == 2
    assert "generator is not conditional" in result.stderr
    with pytest.raises(UserError, match="not conditional"):
        api.sample(run.checkpoint, 4, labels="all")


def test_conditional_resume_is_bit_identical(tmp_path):
    over = [*SMALL, "train.steps=12", "train.checkpoint_every=4", "train.ema=0.9",
            "deterministic=true"]

    def recipe():
        return api.load_recipe("gaussian-ring-cond", overrides=over)

    straight = api.train(recipe(), out=tmp_path / "a")
    api.train(recipe(), out=tmp_path / "b", max_steps=6)
    resumed = api.train(recipe(), out=tmp_path / "b", resume=True)
    a, b = (
        {k: v for k, v in load_file(str(p)).items() if not k.startswith("rng.")}
        for p in (straight.checkpoint, resumed.checkpoint)
    )
    assert a.keys() == b.keys() and any(k.endswith("embed.weight") for k in a)
    assert all(torch.equal(a[k], b[k]) for k in a)


def test_the_conditional_recipe_has_a_repository_copy():
    shipped = ROOT / "ganframe" / "builtin" / "recipes" / "gaussian-ring-cond.toml"
    assert shipped.read_bytes() == (ROOT / "recipes" / "gaussian-ring-cond.toml").read_bytes()
