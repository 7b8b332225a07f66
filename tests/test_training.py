"""The loop: learning on the toy problem, exact resume, phases, EMA, logging, data stream."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import torch
from safetensors.torch import load_file

from ganframe import api
from ganframe.errors import UserError
from ganframe.loop.clock import strip_time
from ganframe.loop.data import DataStream
from ganframe.loop.optim import ema_update
from ganframe.plugins import load_plugins
from ganframe.recipe import load_recipe
from ganframe.registry import ComponentSpec

BASE = """
name = "tiny"
seed = 11
device = "cpu"
deterministic = true
[data]
type = "gaussian-ring"
size = 640
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


@pytest.fixture(scope="module")
def registry():
    return load_plugins(autoload=False).registry


def recipe(tmp_path: Path, registry, body: str, overrides=None, name="r.toml"):
    p = tmp_path / name
    p.write_text(BASE + body, encoding="utf-8")
    return load_recipe(p, registry, overrides)


def tensors(path: Path) -> dict[str, torch.Tensor]:
    return {k: v for k, v in load_file(str(path)).items() if not k.startswith("rng.")}


def assert_identical(a: Path, b: Path) -> None:
    ta, tb = tensors(a), tensors(b)
    assert ta.keys() == tb.keys()
    different = [k for k in ta if not torch.equal(ta[k], tb[k])]
    assert not different, f"tensors differ: {different[:5]}"


TWO_PHASES = """
[[phases]]
name = "warm"
loss = { type = "hinge" }
steps = 6
n_critic = 2
lr = { critic = 0.003 }
[[phases]]
name = "main"
loss = { type = "wgan-gp", gp_lambda = 1.0 }
steps = 8
lr = { generator = 0.0005 }
"""


@pytest.mark.parametrize("stop_at", [3, 6, 9])  # mid-phase, at the boundary, in phase two
def test_resume_is_bit_identical(tmp_path, registry, stop_at):
    body = TWO_PHASES + "[optim.critic]\nlr = 0.001\n"
    over = ["train.ema=0.9", "train.checkpoint_every=3"]
    straight = api.train(recipe(tmp_path, registry, body, over), out=tmp_path / "a")
    assert straight.step == 14
    api.train(recipe(tmp_path, registry, body, over), out=tmp_path / "b", max_steps=stop_at)
    resumed = api.train(recipe(tmp_path, registry, body, over), out=tmp_path / "b", resume=True)
    assert resumed.step == 14
    assert_identical(straight.checkpoint, resumed.checkpoint)
    # the log of the resumed run reads like the uninterrupted one
    rows_a = [strip_time(json.loads(x))
              for x in (tmp_path / "a/metrics.jsonl").read_text().splitlines()]
    rows_b = [strip_time(json.loads(x))
              for x in (tmp_path / "b/metrics.jsonl").read_text().splitlines()]
    # no partial row where it stopped: the pending sums came back from the checkpoint
    assert rows_b == rows_a


def test_a_run_stopped_at_a_phase_boundary_can_lengthen_the_phase_it_finished(tmp_path, registry):
    """--max-steps at the end of pre-training, then more pre-training: the resumed run
    continues the first phase (it used to start the next one silently) and ends exactly
    where a run planned with the longer phase from the start ends."""
    over = ["train.checkpoint_every=3"]
    longer = [*over, "phases.0.steps=9"]
    straight = api.train(recipe(tmp_path, registry, TWO_PHASES, longer), out=tmp_path / "a")
    assert straight.step == 17
    api.train(recipe(tmp_path, registry, TWO_PHASES, over), out=tmp_path / "b", max_steps=6)
    resumed = api.train(recipe(tmp_path, registry, TWO_PHASES, longer), out=tmp_path / "b",
                        resume=True)
    assert resumed.step == 17
    assert_identical(straight.checkpoint, resumed.checkpoint)
    rows = [json.loads(x) for x in (tmp_path / "b/metrics.jsonl").read_text().splitlines()]
    phases = {r["step"]: r["phase"] for r in rows if r["event"] == "train"}
    assert phases[8] == "warm" and phases[10] == "main"


def test_resume_refuses_a_changed_length_of_a_phase_already_left_behind(tmp_path, registry):
    over = ["train.checkpoint_every=3"]
    api.train(recipe(tmp_path, registry, TWO_PHASES, over), out=tmp_path / "b", max_steps=9)
    for change in ("phases.0.steps=4", "phases.0.steps=7", "phases.1.steps=2"):
        with pytest.raises(UserError, match=r"stopped at step 9, in phase 'main'.*--out"):
            api.train(recipe(tmp_path, registry, TWO_PHASES, [*over, change]),
                      out=tmp_path / "b", resume=True)
    # Two earlier phases changed by +2 and -2 end where they ended before: the step counts
    # agree, the lengths recorded in the checkpoint do not.
    three = TWO_PHASES + '[[phases]]\nname = "third"\nloss = { type = "hinge" }\nsteps = 4\n'
    api.train(recipe(tmp_path, registry, three, over), out=tmp_path / "c", max_steps=16)
    with pytest.raises(UserError, match=r"stopped at step 16, in phase 'third'"):
        api.train(recipe(tmp_path, registry, three, [*over, "phases.0.steps=8",
                                                     "phases.1.steps=6"]),
                  out=tmp_path / "c", resume=True)
    # Fewer phases than the run has already entered.
    with pytest.raises(UserError, match=r"stopped at step 16, in phase 3 of 3, which"):
        api.train(recipe(tmp_path, registry, "\n".join(TWO_PHASES.split("\n")[:7]), over),
                  out=tmp_path / "c", resume=True)
    # The phase the run is in may shrink to what it has run: the run is then complete.
    done = api.train(recipe(tmp_path, registry, TWO_PHASES, [*over, "phases.1.steps=3"]),
                     out=tmp_path / "b", resume=True)
    assert done.step == 9


def test_resume_checks_networks_and_data_but_not_options_added_since(tmp_path, registry):
    """A plugin upgrade that adds an option (at its default) must not block resuming a run
    made before it; a real change of a network is refused, naming the option."""
    from safetensors import safe_open
    from safetensors.torch import save_file

    body = '[loss]\ntype = "non-saturating"\n'
    plain = BASE.replace("latent_dim = 4\n", "")  # the default, 8, fills it in the run's recipe
    p = tmp_path / "r.toml"
    p.write_text(plain + body, encoding="utf-8")
    api.train(load_recipe(p, registry, ["train.steps=4"]), out=tmp_path / "run")
    last = tmp_path / "run/checkpoints/last.safetensors"
    with safe_open(str(last), "pt") as f:
        header = f.metadata()
    meta = json.loads(header["ganframe"])
    assert meta["recipe"]["generator"]["latent_dim"] == 8
    del meta["recipe"]["generator"]["latent_dim"]  # as written by a version without it
    save_file(load_file(str(last)), str(last), metadata={**header, "ganframe": json.dumps(meta)})
    resumed = api.train(load_recipe(p, registry, ["train.steps=6"]), out=tmp_path / "run",
                        resume=True)
    assert resumed.step == 6
    with pytest.raises(UserError, match=r"\[generator\] differs.*hidden: 16 -> 32"):
        api.train(load_recipe(p, registry, ["train.steps=8", "generator.hidden=32"]),
                  out=tmp_path / "run", resume=True)


def test_a_phase_can_checkpoint_at_its_own_interval(tmp_path, registry):
    """Often during the short adversarial phase, never during pre-training (the run-wide
    interval would write hundreds of files in a long pre-training phase)."""
    over = ["train.checkpoint_every=4", "train.keep_last=0", "phases.0.checkpoint_every=0",
            "phases.1.checkpoint_every=3"]
    api.train(recipe(tmp_path, registry, TWO_PHASES, over), out=tmp_path / "run")
    def steps(run: str) -> list[int]:
        files = (tmp_path / run / "checkpoints").glob("step-*")
        return sorted(int(p.stem.split("-")[1]) for p in files)

    assert steps("run") == [9, 12, 14]  # phase two is steps 7-14; 14 is the final checkpoint
    api.train(recipe(tmp_path, registry, TWO_PHASES, over[:2]), out=tmp_path / "plain")
    assert steps("plain") == [4, 8, 12, 14]


def test_resume_without_determinism_differs_only_if_state_is_lost(tmp_path, registry):
    """Guard against a vacuous resume test: a restart *without* restoring state diverges."""
    body = '[loss]\ntype = "non-saturating"\n'
    r = recipe(tmp_path, registry, body, ["train.steps=8"])
    full = api.train(r, out=tmp_path / "a")
    api.train(recipe(tmp_path, registry, body, ["train.steps=4"]), out=tmp_path / "b")
    # "resume" by starting a fresh 4-step run in another folder: not the same as 8 steps
    fresh = api.train(recipe(tmp_path, registry, body, ["train.steps=4"]), out=tmp_path / "c")
    a, c = tensors(full.checkpoint), tensors(fresh.checkpoint)
    assert any(not torch.equal(a[k], c[k]) for k in a if k.startswith("generator."))


def test_phases_set_learning_rates_and_log_phase_names(tmp_path, registry):
    res = api.train(recipe(tmp_path, registry, TWO_PHASES), out=tmp_path / "run")
    meta = json.loads(
        __import__("safetensors").safe_open(str(res.checkpoint), "pt").metadata()["ganframe"]
    )
    groups = meta["optimizers"]
    assert groups["critic"]["param_groups"][0]["hyper"]["lr"] == pytest.approx(0.003)
    assert groups["generator"]["param_groups"][0]["hyper"]["lr"] == pytest.approx(0.0005)
    rows = [json.loads(x) for x in (tmp_path / "run/metrics.jsonl").read_text().splitlines()]
    phases = {r["step"]: r["phase"] for r in rows if r["event"] == "train"}
    assert phases[2] == "warm" and phases[6] == "warm" and phases[8] == "main"
    # hinge logs, then wgan-gp logs
    assert "gp" not in rows[0] and "gp" in rows[-1]
    run = meta["run"]
    assert (run["step"], run["phase"], run["phase_step"], run["world"]) == (14, 2, 0, 1)


def test_epochs_count_critic_batches(tmp_path, registry):
    # 640 points / 64 = 10 batches per epoch; n_critic=2 uses 2 batches per step -> 5 steps
    r = recipe(
        tmp_path, registry, '[loss]\ntype = "hinge"\n', ["train.epochs=1", "train.n_critic=2"]
    )
    res = api.train(r, out=tmp_path / "run")
    assert res.step == 5


def test_max_steps_writes_final_checkpoint_and_rotation_keeps_last(tmp_path, registry):
    r = recipe(
        tmp_path,
        registry,
        '[loss]\ntype = "lsgan"\n',
        ["train.steps=50", "train.checkpoint_every=2", "train.keep_last=2"],
    )
    res = api.train(r, out=tmp_path / "run", max_steps=7)
    assert res.step == 7 and res.stopped_early
    names = sorted(p.name for p in (tmp_path / "run/checkpoints").glob("step-*.safetensors"))
    assert names == ["step-00000006.safetensors", "step-00000007.safetensors"]
    assert_identical(tmp_path / "run/checkpoints/last.safetensors", res.checkpoint)


def test_sampling_and_metrics_do_not_change_training(tmp_path, registry):
    body = '[loss]\ntype = "non-saturating"\n'
    quiet = recipe(tmp_path, registry, body, ["train.steps=6"])
    busy = recipe(
        tmp_path,
        registry,
        body + '[[metrics]]\ntype = "ring-modes"\nevery = 1\nn_samples = 50\n',
        ["train.steps=6", "train.sample_every=1", "train.sample_count=10"],
        name="b.toml",
    )
    a = api.train(quiet, out=tmp_path / "a")
    b = api.train(busy, out=tmp_path / "b")
    assert_identical(a.checkpoint, b.checkpoint)
    assert len(list((tmp_path / "b/samples").glob("*.png"))) == 6
    metric_rows = [r for r in b.metrics if r["event"] == "metric"]
    assert [r["step"] for r in metric_rows] == [1, 2, 3, 4, 5, 6]


def test_ema_weights_are_the_running_average(tmp_path, registry):
    model = torch.nn.Linear(2, 1)
    ema = torch.nn.Linear(2, 1)
    ema.load_state_dict(model.state_dict())
    before = ema.weight.detach().clone()
    with torch.no_grad():
        model.weight.add_(1.0)
    ema_update(ema, model, 0.9)
    assert torch.allclose(ema.weight, before + 0.1)


def test_sample_uses_ema_and_is_seeded(tmp_path, registry):
    r = recipe(
        tmp_path, registry, '[loss]\ntype = "non-saturating"\n', ["train.steps=4", "train.ema=0.5"]
    )
    res = api.train(r, out=tmp_path / "run")
    ck = api.load_checkpoint(res.checkpoint)
    ema = {k[4:]: v for k, v in load_file(str(res.checkpoint)).items() if k.startswith("ema.")}
    for k, v in ck.generator.state_dict().items():
        assert torch.equal(v, ema[k])
    x1, x2 = api.sample(ck, 20, seed=1), api.sample(ck, 20, seed=1)
    x3 = api.sample(ck, 20, seed=2)
    assert x1.shape == (20, 2) and torch.equal(x1, x2) and not torch.equal(x1, x3)


def test_missing_critic_for_adversarial_loss_is_a_user_error(tmp_path, registry):
    text = BASE.replace('[critic]\ntype = "mlp"\nhidden = 16\nlayers = 2\n', "")
    p = tmp_path / "nocritic.toml"
    p.write_text(text + '[loss]\ntype = "hinge"\n', encoding="utf-8")
    r = load_recipe(p, registry, ["train.steps=2"])
    with pytest.raises(UserError, match=r"critic: missing \[critic\] table; loss \(hinge\)"):
        api.train(r, out=tmp_path / "run")


def test_batch_larger_than_dataset_is_a_user_error(tmp_path, registry):
    r = recipe(
        tmp_path, registry, '[loss]\ntype = "hinge"\n', ["train.steps=2", "train.batch_size=1000"]
    )
    with pytest.raises(UserError, match="train.batch_size: 1000 is larger than the dataset"):
        api.train(r, out=tmp_path / "run")


class _Identity:
    kind = "points"

    def __init__(self, n: int) -> None:
        self.x = torch.arange(n)

    def __len__(self) -> int:
        return len(self.x)

    def get(self, index):
        return self.x[index]


def test_data_stream_epochs_are_permutations_and_resume_exactly():
    s = DataStream(_Identity(10), 3, seed=5)
    assert s.batches_per_epoch == 3
    first_epoch = torch.cat([s.next() for _ in range(3)])
    assert len(set(first_epoch.tolist())) == 9  # drop_last: one item left out, no repeats
    state = s.state()
    assert state == {"epoch": 1, "position": 0}
    nxt = [s.next() for _ in range(4)]
    s2 = DataStream(_Identity(10), 3, seed=5)
    s2.load_state(state)
    assert all(torch.equal(a, s2.next()) for a in nxt)
    # other epochs are shuffled differently
    assert not torch.equal(first_epoch, torch.cat(nxt[:3]))


def test_data_stream_shards_are_disjoint():
    shards = [DataStream(_Identity(12), 2, seed=1, rank=r, world=3) for r in range(3)]
    seen = [torch.cat([s.next() for _ in range(2)]).tolist() for s in shards]
    flat = [i for part in seen for i in part]
    assert len(flat) == 12 and len(set(flat)) == 12


class _MeanObjective:
    """A generator-only objective (like MLE pre-training): match the data mean."""

    trains_critic = False
    trains_generator = True

    def __init__(self, config, ctx) -> None:
        pass

    def generator_loss(self, ctx, real):
        from ganframe.components import StepOutput

        fake = ctx.fake(real.shape[0])
        loss = (fake.mean(0) - real.mean(0) - 1.5).pow(2).sum()
        return StepOutput(loss, {"gap": loss})


def test_objective_that_trains_only_the_generator(tmp_path, registry):
    registry.add(ComponentSpec("loss", "shift-mean", _MeanObjective, None, "test", "0"))
    try:
        text = BASE.replace('[critic]\ntype = "mlp"\nhidden = 16\nlayers = 2\n', "")
        p = tmp_path / "g.toml"
        p.write_text(text + '[loss]\ntype = "shift-mean"\n', encoding="utf-8")
        r = load_recipe(p, registry, ["train.steps=60", "optim.generator.lr=0.01"])
        res = api.train(r, out=tmp_path / "run")
    finally:
        registry.components["loss"] = [
            s for s in registry.components["loss"] if s.name != "shift-mean"
        ]
    gaps = [row["gap"] for row in res.metrics if row["event"] == "train"]
    assert gaps[-1] < 0.1 * gaps[0]
    # no critic in the checkpoint
    assert not any(k.startswith("critic.") for k in load_file(str(res.checkpoint)))


class _CountingObjective(_MeanObjective):
    """Stateful: counts its own steps, and the count is objective state in checkpoints."""

    def __init__(self, config, ctx) -> None:
        self.count = 0

    def generator_loss(self, ctx, real):
        out = super().generator_loss(ctx, real)
        self.count += 1
        out.logs["count"] = float(self.count)
        return out

    def state_dict(self):
        return {"count": torch.tensor([self.count])}

    def load_state_dict(self, state):
        self.count = int(state["count"][0])


def test_objective_state_saved_on_a_phase_boundary_stays_with_its_phase(tmp_path, registry):
    """A checkpoint on a boundary holds the finished phase's objective state: resumed into
    the next phase it must not be loaded there (both phases here use the same objective
    type, so it would load without complaint), but continuing the finished phase gets it."""
    registry.add(ComponentSpec("loss", "counting", _CountingObjective, None, "test", "0"))
    text = BASE.replace('[critic]\ntype = "mlp"\nhidden = 16\nlayers = 2\n', "")
    text += ('[[phases]]\nname = "one"\nloss = { type = "counting" }\nsteps = 4\n'
             '[[phases]]\nname = "two"\nloss = { type = "counting" }\nsteps = 4\n')
    p = tmp_path / "c.toml"
    p.write_text(text, encoding="utf-8")

    def counts(run: Path) -> list[float]:
        rows = [json.loads(x) for x in (run / "metrics.jsonl").read_text().splitlines()]
        return [r["count"] for r in rows if r["event"] == "train"]

    try:
        api.train(load_recipe(p, registry), out=tmp_path / "a")
        api.train(load_recipe(p, registry), out=tmp_path / "b", max_steps=4)
        api.train(load_recipe(p, registry), out=tmp_path / "b", resume=True)
        assert counts(tmp_path / "a") == [1.5, 3.5, 1.5, 3.5]  # means over each log row
        assert counts(tmp_path / "b") == counts(tmp_path / "a")
        # Lengthening the finished phase on resume continues it, with its own state.
        api.train(load_recipe(p, registry), out=tmp_path / "c", max_steps=4)
        api.train(load_recipe(p, registry, ["phases.0.steps=6"]), out=tmp_path / "c",
                  resume=True)
        assert counts(tmp_path / "c") == [1.5, 3.5, 5.5, 1.5, 3.5]
    finally:
        registry.components["loss"] = [
            s for s in registry.components["loss"] if s.name != "counting"
        ]


def test_bf16_autocast_trains_close_to_fp32(tmp_path, registry):
    body = '[loss]\ntype = "non-saturating"\n'
    a = api.train(recipe(tmp_path, registry, body, ["train.steps=3"]), out=tmp_path / "a")
    b = api.train(
        recipe(tmp_path, registry, body, ["train.steps=3", 'train.precision="bf16"']),
        out=tmp_path / "b",
    )
    ta, tb = tensors(a.checkpoint), tensors(b.checkpoint)
    w = "generator.net.0.weight"
    assert not torch.equal(ta[w], tb[w])  # bf16 really ran
    assert torch.allclose(ta[w], tb[w], atol=2e-2)


def test_compile_agrees_with_eager(tmp_path, registry):
    body = '[loss]\ntype = "hinge"\n'
    a = api.train(recipe(tmp_path, registry, body, ["train.steps=3"]), out=tmp_path / "a")
    import torch._dynamo
    import torch._dynamo.utils as dynamo_utils

    torch._dynamo.reset()  # no cached graphs from earlier tests
    dynamo_utils.counters.clear()
    r = recipe(tmp_path, registry, body, ["train.steps=3", "train.compile=true"])
    b = api.train(r, out=tmp_path / "b")
    compiled = sum(dynamo_utils.counters["stats"].values())
    assert compiled > 0, dict(dynamo_utils.counters)  # dynamo really traced the networks
    ta, tb = tensors(a.checkpoint), tensors(b.checkpoint)
    assert ta.keys() == tb.keys()  # compiling in place keeps checkpoint names
    for k in ta:
        assert torch.allclose(ta[k], tb[k], atol=1e-5), k


def test_fp16_needs_cuda(tmp_path, registry):
    if torch.cuda.is_available():
        pytest.skip("this machine has CUDA")
    r = recipe(
        tmp_path, registry, '[loss]\ntype = "hinge"\n', ["train.steps=2", 'train.precision="fp16"']
    )
    with pytest.raises(UserError, match="fp16 needs a CUDA device"):
        api.train(r, out=tmp_path / "run")


def test_finished_run_is_extended_by_resuming_with_more_steps(tmp_path, registry):
    body = '[loss]\ntype = "hinge"\n'
    straight = api.train(recipe(tmp_path, registry, body, ["train.steps=10"]), out=tmp_path / "a")
    api.train(recipe(tmp_path, registry, body, ["train.steps=6"]), out=tmp_path / "b")
    more = api.train(
        recipe(tmp_path, registry, body, ["train.steps=10"]), out=tmp_path / "b", resume=True
    )
    assert more.step == 10
    assert_identical(straight.checkpoint, more.checkpoint)


def test_resume_refuses_another_process_count(tmp_path, registry, monkeypatch):
    body = '[loss]\ntype = "hinge"\n'
    api.train(recipe(tmp_path, registry, body, ["train.steps=2"]), out=tmp_path / "run")
    from ganframe import distributed

    monkeypatch.setattr(distributed, "init", lambda info, dev: dev)
    monkeypatch.setattr(distributed, "barrier", lambda info: None)
    monkeypatch.setattr(distributed, "shutdown", lambda info: None)
    monkeypatch.setenv("WORLD_SIZE", "2")
    monkeypatch.setenv("RANK", "0")
    with pytest.raises(UserError, match=r"trained in 1 process\(es\); resume it with --nproc 1"):
        api.train(
            recipe(tmp_path, registry, body, ["train.steps=4"]), out=tmp_path / "run", resume=True
        )


def test_threads_apply_during_the_run_and_are_put_back(tmp_path, registry, monkeypatch):
    from ganframe.loop.trainer import Trainer

    seen = []
    fit = Trainer.fit

    def spy(self, *args, **kwargs):
        seen.append(torch.get_num_threads())
        return fit(self, *args, **kwargs)

    monkeypatch.setattr(Trainer, "fit", spy)
    before = torch.get_num_threads()
    wanted = before + 2
    body = '[loss]\ntype = "hinge"\n'
    api.train(recipe(tmp_path, registry, body, ["train.steps=2", f"threads={wanted}"]),
              out=tmp_path / "a")
    api.train(recipe(tmp_path, registry, body, ["train.steps=2"]), out=tmp_path / "b")
    assert seen == [wanted, before]  # 0 (the default) leaves torch's own count alone
    assert torch.get_num_threads() == before
    assert (tmp_path / "a" / "recipe.toml").read_text().count(f"threads = {wanted}") == 1
