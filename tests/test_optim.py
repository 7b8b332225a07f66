"""Optimisers and learning-rate schedules as registered components: every built-in one
trains, schedules give the documented factors, a third party's optimiser and schedule work
from a recipe with no core change, and a recipe change on resume takes effect."""

from __future__ import annotations

import json
import math
import textwrap
from pathlib import Path

import pytest
import torch
from safetensors.torch import load_file
from test_plugins import make_dist

from ganframe import api
from ganframe.checkpoint import read_checkpoint
from ganframe.errors import UserError
from ganframe.loop.clock import strip_time
from ganframe.loop.optim import (
    LearningRates,
    hyperparameters,
    phase_rates,
    set_hyperparameters,
)
from ganframe.plugins import DISABLE_AUTOLOAD_ENV, DISABLE_PLUGINS_ENV, load_plugins
from ganframe.recipe import load_recipe

TINY = """
name = "tiny"
seed = 5
device = "cpu"
deterministic = true
[data]
type = "gaussian-ring"
size = 512
[generator]
type = "mlp"
hidden = 16
layers = 2
latent_dim = 4
[critic]
type = "mlp"
hidden = 16
layers = 2
[train]
batch_size = 64
log_every = 2
"""

#: The shipped toy recipe, made small enough for a test.
SMALL_RING = [
    "data.size=512", "generator.hidden=16", "generator.layers=1", "critic.hidden=16",
    "critic.layers=1", "train.batch_size=64", "train.log_every=10", "train.sample_every=0",
    "train.sample_count=16", "metrics.0.n_samples=200",
]


@pytest.fixture(scope="module")
def registry():
    return load_plugins(autoload=False).registry


def tiny(tmp_path: Path, registry, extra: str = "", overrides=(), steps: int | None = 12):
    """The tiny recipe plus ``extra`` TOML; ``steps=None`` for a recipe with phases."""
    path = tmp_path / "r.toml"
    path.write_text(TINY + textwrap.dedent(extra), encoding="utf-8")
    sets = [*overrides, *([f"train.steps={steps}"] if steps is not None else [])]
    return load_recipe(path, registry, sets)


def meta_of(checkpoint: Path) -> dict:
    return read_checkpoint(checkpoint).meta


def group(meta: dict, net: str) -> dict:
    return meta["optimizers"][net]["param_groups"][0]["hyper"]


def rows(run: Path) -> list[dict]:
    lines = (run / "metrics.jsonl").read_text(encoding="utf-8").splitlines()
    return [strip_time(r) for r in map(json.loads, lines) if r["event"] == "train"]


# -- the built-in optimisers ------------------------------------------------------------------


@pytest.mark.parametrize(
    ("kind", "torch_class", "options"),
    [
        ("adam", "Adam", {"betas": [0.0, 0.9]}),
        ("adamw", "AdamW", {"weight_decay": 0.01}),
        ("rmsprop", "RMSprop", {"alpha": 0.9, "momentum": 0.1}),
        ("sgd", "SGD", {"momentum": 0.9, "nesterov": True}),
    ],
)
def test_each_builtin_optimizer_builds_from_a_recipe_and_trains(
    tmp_path, registry, kind, torch_class, options
):
    sets = [f"optim.{net}.type={kind}" for net in ("generator", "critic")]
    sets += [f"optim.generator.{k}={json.dumps(v)}" for k, v in options.items()]
    sets += ["optim.generator.lr=0.01", "optim.critic.lr=0.01"]
    res = api.train(tiny(tmp_path, registry, overrides=sets), out=tmp_path / "run")
    meta = meta_of(res.checkpoint)
    assert meta["optimizers"]["generator"]["class"] == torch_class
    assert meta["optimizers"]["critic"]["class"] == torch_class
    hyper = group(meta, "generator")
    assert hyper["lr"] == 0.01
    for key, value in options.items():
        assert hyper[key] == value, key
    losses = [r["g_loss"] for r in rows(tmp_path / "run")]
    assert len(losses) == 6 and all(math.isfinite(x) for x in losses)
    assert len(set(losses)) > 1, f"{kind}: the loss did not move: {losses}"
    # ...and the written recipe says which optimiser ran, with its defaults filled in
    written = api.load_recipe(tmp_path / "run" / "recipe.toml", registry=registry)
    spec, config = written.component("optim.generator")
    assert spec.name == kind and config.lr == 0.01
    assert written.component("optim.generator.schedule")[0].name == "constant"


def test_recipes_without_type_or_optim_tables_get_adam_and_a_constant_schedule(
    tmp_path, registry
):
    r = tiny(tmp_path, registry, "[optim.critic]\nlr = 3e-4\n")
    for net, lr in (("generator", 2e-4), ("critic", 3e-4)):
        spec, config = r.component(f"optim.{net}")
        assert spec.name == "adam" and config.lr == lr and tuple(config.betas) == (0.5, 0.999)
        assert r.component(f"optim.{net}.schedule")[0].name == "constant"
    written = r.to_dict()["optim"]["critic"]
    assert written["type"] == "adam" and written["eps"] == 1e-8
    assert written["schedule"] == {"type": "constant"}


@pytest.mark.parametrize(
    ("table", "needles"),
    [
        ('[optim.generator]\ntype = "adagrad"\n',
         ["optim.generator.type", "unknown optimizer type 'adagrad'", "adam, adamw, rmsprop, sgd"]),
        ('[optim.generator]\nmomentum = 0.9\n', ["optim.generator.momentum", "unknown key"]),
        ('[optim.critic]\ntype = "sgd"\nlr = 0\n',
         ["optim.critic.lr: Input should be greater than 0"]),
        ('[optim.generator.schedule]\ntype = "cosin"\n',
         ["optim.generator.schedule.type", "Did you mean 'cosine'", "constant, cosine, linear"]),
        ('[optim.generator.schedule]\ntype = "cosine"\nmin_factr = 0.1\n',
         ["optim.generator.schedule.min_factr", "unknown key"]),
        ('[optim.generator.schedule]\ntype = "warmup"\n',
         ["optim.generator.schedule.steps", "Field required"]),
        ('[optim.critic.schedule]\ntype = "linear"\nend_factor = 2.0\n',
         ["optim.critic.schedule.end_factor", "less than or equal to 1"]),
    ],
)
def test_bad_optimizer_and_schedule_tables_name_the_key(tmp_path, registry, table, needles):
    with pytest.raises(UserError) as info:
        tiny(tmp_path, registry, table)
    for needle in needles:
        assert needle in str(info.value), str(info.value)


# -- schedules ----------------------------------------------------------------------------------


def schedule(registry, name: str, **options):
    spec = registry.get("schedule", name)
    return spec.build(spec.config_model().model_validate(options))


def test_constant_is_exactly_one(registry):
    s = schedule(registry, "constant")
    assert all(s.factor(step, total) == 1.0 for total in (1, 7, 1000) for step in range(total))


@pytest.mark.parametrize(
    ("name", "options", "total", "expected"),
    [
        ("linear", {}, 10, {0: 1.0, 5: 0.5, 9: 0.1}),
        ("linear", {"end_factor": 0.1}, 10, {0: 1.0, 5: 0.55, 9: 0.19}),
        ("linear", {"warmup_steps": 4}, 14, {0: 0.2, 3: 0.8, 4: 1.0, 9: 0.5, 13: 0.1}),
        ("cosine", {}, 10, {0: 1.0, 5: 0.5}),
        ("cosine", {"min_factor": 0.2}, 10, {0: 1.0, 5: 0.6}),
        ("cosine", {"warmup_steps": 1}, 11, {0: 0.5, 1: 1.0, 6: 0.5}),
        ("warmup", {"steps": 3}, 10, {0: 0.25, 1: 0.5, 2: 0.75, 3: 1.0, 9: 1.0}),
        ("warmup", {"steps": 20}, 10, {9: 10 / 21}),  # a phase shorter than the warm-up
    ],
)
def test_schedule_factors(registry, name, options, total, expected):
    s = schedule(registry, name, **options)
    got = {step: s.factor(step, total) for step in expected}
    assert got == pytest.approx(expected, abs=1e-12)
    values = [s.factor(step, total) for step in range(total)]
    assert all(0 < v <= 1 for v in values), values  # no step is wasted at lr 0


def test_cosine_decays_monotonically_to_its_floor(registry):
    s = schedule(registry, "cosine", min_factor=0.1)
    values = [s.factor(step, 50) for step in range(50)]
    assert values == sorted(values, reverse=True)
    assert 0.1 < values[-1] < 0.11


# -- LearningRates and hyper-parameters, without a run -------------------------------------------


def _opts(lr: float = 0.1) -> dict[str, torch.optim.Optimizer]:
    net = torch.nn.Linear(2, 2)
    return {"generator": torch.optim.Adam(net.parameters(), lr=lr)}


def test_learning_rates_write_the_exact_base_phase_and_scaled_rates():
    base = 0.1 + 0.2  # not a round number: the written rate must be this very float
    opts = _opts(base)
    rates = LearningRates(opts, {"generator": base}, {"generator": None})
    rates.apply(3, 10)
    assert opts["generator"].param_groups[0]["lr"] == base
    rates.start_phase({"generator": 0.5, "critic": 0.7})  # no critic here: ignored
    rates.apply(0, 10, scale=0.25)
    assert rates.current() == {"generator": 0.125}
    rates.start_phase({})
    rates.apply(0, 10)
    assert rates.current() == {"generator": base}


class _Halving:
    def factor(self, step: int, total: int) -> float:
        return 0.5 ** step


def test_learning_rates_follow_the_schedule_and_keep_group_ratios():
    net = torch.nn.Linear(2, 2)
    opt = torch.optim.SGD(
        [{"params": [net.weight]}, {"params": [net.bias], "lr": 0.01}], lr=0.1
    )
    rates = LearningRates({"critic": opt}, {"critic": 0.1}, {"critic": _Halving()})
    assert rates.planned(2, 10) == pytest.approx({"critic": 0.025})
    rates.apply(2, 10)
    assert [g["lr"] for g in opt.param_groups] == pytest.approx([0.025, 0.0025])


def test_phase_rates_hold_until_a_later_phase_sets_another():
    tables = [{"critic": 1e-3}, {}, {"generator": 1e-4}, {"critic": 5e-4}]
    assert phase_rates(tables) == [
        {"critic": 1e-3},
        {"critic": 1e-3},
        {"critic": 1e-3, "generator": 1e-4},
        {"critic": 5e-4, "generator": 1e-4},
    ]


def test_set_hyperparameters_writes_the_recipe_over_restored_values():
    opt = _opts()["generator"]
    built = hyperparameters(opt)
    opt.param_groups[0]["betas"] = (0.0, 0.9)  # as a checkpoint of another recipe restores
    opt.param_groups[0]["lr"] = 0.5
    assert set_hyperparameters(opt, built) == [("betas", (0.0, 0.9), (0.9, 0.999))]
    assert opt.param_groups[0]["betas"] == (0.9, 0.999)
    assert opt.param_groups[0]["lr"] == 0.5  # LearningRates owns the learning rate
    assert set_hyperparameters(opt, built) == []
    config = {"betas": [0.5, 0.99], "eps": 1e-6, "lr": 1.0, "not_a_group_key": 3}
    changes = set_hyperparameters(opt, config)
    assert sorted(changes) == [("betas", (0.9, 0.999), (0.5, 0.99)), ("eps", 1e-8, 1e-6)]
    assert opt.param_groups[0]["lr"] == 0.5


# -- through a run -----------------------------------------------------------------------------


def test_a_schedule_sets_each_steps_rate_and_restarts_with_each_phase(tmp_path, registry):
    phases = """
    [optim.generator]
    lr = 0.01
    [optim.generator.schedule]
    type = "linear"
    end_factor = 0.5
    [[phases]]
    name = "a"
    loss = { type = "hinge" }
    steps = 4
    [[phases]]
    name = "b"
    loss = { type = "hinge" }
    steps = 8
    lr = { generator = 0.02 }
    """
    r = tiny(tmp_path, registry, phases, steps=None)
    first = api.train(r, out=tmp_path / "run", max_steps=4)  # the last step of phase a
    assert group(meta_of(first.checkpoint), "generator")["lr"] == pytest.approx(
        0.01 * (1 - 0.5 * 3 / 4)
    )
    r = tiny(tmp_path, registry, phases, steps=None)
    end = api.train(r, out=tmp_path / "run", resume=True)
    assert group(meta_of(end.checkpoint), "generator")["lr"] == pytest.approx(
        0.02 * (1 - 0.5 * 7 / 8)
    )
    assert group(meta_of(end.checkpoint), "critic")["lr"] == 2e-4  # no schedule: exact


def test_resume_with_a_schedule_is_bit_identical(tmp_path, registry):
    table = """
    [optim.generator.schedule]
    type = "cosine"
    warmup_steps = 3
    [optim.critic.schedule]
    type = "warmup"
    steps = 5
    """
    full = api.train(tiny(tmp_path, registry, table), out=tmp_path / "full")
    api.train(tiny(tmp_path, registry, table), out=tmp_path / "split", max_steps=7)
    split = api.train(tiny(tmp_path, registry, table), out=tmp_path / "split", resume=True)
    a, b = load_file(str(full.checkpoint)), load_file(str(split.checkpoint))
    keys = [k for k in a if not k.startswith("rng.")]
    assert keys and all(torch.equal(a[k], b[k]) for k in keys)
    assert meta_of(full.checkpoint)["optimizers"] == meta_of(split.checkpoint)["optimizers"]


@pytest.mark.parametrize(
    ("setting", "key", "value"),
    [
        ("optim.generator.lr=0.5", "lr", 0.5),
        ("optim.generator.betas=[0.0, 0.9]", "betas", [0.0, 0.9]),
    ],
)
def test_a_recipe_change_on_resume_takes_effect(tmp_path, setting, key, value):
    """The bug of issue 13: the run record said lr 0.5, the optimiser kept 0.001."""
    out = tmp_path / "r"
    api.train(api.load_recipe("gaussian-ring", SMALL_RING), out=out, max_steps=40)
    before = group(meta_of(out / "checkpoints" / "last.safetensors"), "generator")
    assert before["lr"] == 1e-3 and before["betas"] == [0.5, 0.999]
    res = api.train(
        api.load_recipe("gaussian-ring", [*SMALL_RING, setting]), out=out, resume=True,
        max_steps=80,
    )
    assert res.step == 80
    meta = meta_of(res.checkpoint)
    assert group(meta, "generator")[key] == value
    assert group(meta, "critic")[key] == before[key]  # the critic's was not changed
    assert meta["recipe"]["optim"]["generator"][key] == value  # the record says what ran


# -- a third party's optimiser and schedule -----------------------------------------------------

_PLUGIN = """
from pydantic import BaseModel, ConfigDict, Field

from ganframe import hookimpl


class HeavyBallConfig(BaseModel):
    model_config = ConfigDict(extra="forbid")
    lr: float = Field(0.01, gt=0)
    momentum: float = Field(0.5, ge=0, lt=1)


class StepDecayConfig(BaseModel):
    model_config = ConfigDict(extra="forbid")
    every: int = Field(2, gt=0)
    gamma: float = Field(0.5, gt=0, le=1)


class NoLrConfig(BaseModel):
    momentum: float = 0.9


@hookimpl
def register_optimizers(register):
    register("heavyball", "gfo_impl:heavyball", config=HeavyBallConfig, summary="SGD+momentum")
    register("nolr", "gfo_impl:heavyball", config=NoLrConfig)


@hookimpl
def register_schedules(register):
    register("step-decay", "gfo_impl:step_decay", config=StepDecayConfig, summary="steps")
"""

_IMPL = """
import torch


def heavyball(config, params):
    return torch.optim.SGD(params, lr=config.lr, momentum=config.momentum)


class StepDecay:
    def __init__(self, every, gamma):
        self.every, self.gamma = every, gamma

    def factor(self, step, total):
        return self.gamma ** (step // self.every)


def step_decay(config):
    return StepDecay(config.every, config.gamma)
"""


@pytest.fixture
def third_party(tmp_path_factory: pytest.TempPathFactory, monkeypatch: pytest.MonkeyPatch):
    import sys

    site = tmp_path_factory.mktemp("optsite")
    make_dist(site, "gfo-optim", "0.3.0", "gfooptim", "gfo_plugin", _PLUGIN)
    (site / "gfo_impl.py").write_text(textwrap.dedent(_IMPL), encoding="utf-8")
    monkeypatch.syspath_prepend(str(site))
    monkeypatch.delenv(DISABLE_PLUGINS_ENV, raising=False)
    host = load_plugins(autoload=True)
    # The run itself must not need the process-wide host to know the plugin.
    monkeypatch.setenv(DISABLE_AUTOLOAD_ENV, "1")
    yield host
    for name in ("gfo_plugin", "gfo_impl"):
        sys.modules.pop(name, None)


def test_a_plugin_optimizer_and_schedule_work_from_a_recipe(tmp_path, third_party):
    row = next(p for p in third_party.plugins if p.name == "gfooptim")
    assert row.status == "ok", row.status
    listed = row.as_json(third_party.registry)["components"]
    assert listed["optimizer"] == ["heavyball", "nolr"] and listed["schedule"] == ["step-decay"]
    table = """
    [optim.generator]
    type = "heavyball"
    lr = 0.04
    [optim.generator.schedule]
    type = "gfooptim:step-decay"
    every = 2
    """
    r = tiny(tmp_path, third_party.registry, table, steps=6)
    res = api.train(r, out=tmp_path / "run")
    meta = meta_of(res.checkpoint)
    assert meta["optimizers"]["generator"]["class"] == "SGD"
    hyper = group(meta, "generator")
    assert hyper["momentum"] == 0.5
    assert hyper["lr"] == pytest.approx(0.04 * 0.5 ** (5 // 2))  # the rate of the last step
    assert meta["components"]["optim.generator"]["plugin"] == "gfooptim"


def test_a_plugin_optimizer_without_lr_is_refused(tmp_path, third_party):
    with pytest.raises(UserError, match="optim.critic: optimizer gfooptim:nolr's config has no"):
        tiny(tmp_path, third_party.registry, '[optim.critic]\ntype = "nolr"\n')
