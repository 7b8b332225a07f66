"""The loop's events: what a callback receives, in which order, and the core's own callbacks
(``register_callbacks`` and ``register_loggers`` built-ins included)."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest

from ganframe import api
from ganframe.errors import UserError
from ganframe.loop.events import EVENTS, Callback, CallbackList
from ganframe.plugins import load_plugins
from ganframe.recipe import load_recipe

RECIPE = """
name = "events"
seed = 1
device = "cpu"
deterministic = true
[data]
type = "gaussian-ring"
size = 256
[generator]
type = "mlp"
hidden = 8
layers = 1
[critic]
type = "mlp"
hidden = 8
layers = 1
[[phases]]
name = "warm"
steps = 4
loss = { type = "non-saturating" }
[[phases]]
name = "main"
steps = 6
loss = { type = "hinge" }
[train]
batch_size = 32
log_every = 2
sample_every = 5
checkpoint_every = 5
[[metrics]]
type = "ring-modes"
every = 5
n_samples = 64
"""


class Recorder(Callback):
    """Writes down every event with what it says about the run."""

    def __init__(self) -> None:
        self.seen: list[tuple[Any, ...]] = []

    def on_run_start(self, trainer):
        self.seen.append(("run_start", trainer.state.step, trainer.resumed))

    def on_phase_start(self, trainer, phase):
        self.seen.append(("phase_start", phase.name))

    def on_step_end(self, trainer):
        self.seen.append(("step_end", trainer.state.step))

    def on_phase_end(self, trainer, phase):
        self.seen.append(("phase_end", phase.name))

    def on_log(self, trainer, row):
        self.seen.append(("log", row["step"], row["event"]))

    def on_samples(self, trainer, samples, path):
        self.seen.append(("samples", trainer.state.step, tuple(samples.shape), path.name))

    def on_evaluate(self, trainer, name, values):
        self.seen.append(("evaluate", trainer.state.step, name))

    def on_checkpoint(self, trainer, path):
        self.seen.append(("checkpoint", trainer.state.step, path.name))

    def on_train_end(self, trainer):
        self.seen.append(("train_end", trainer.state.step))

    def on_run_end(self, trainer, result):
        self.seen.append(("run_end", None if result is None else result.step))


@pytest.fixture
def registry():
    return load_plugins(autoload=False).registry


def recipe(tmp_path: Path, registry, extra: str = "", overrides=()):
    path = tmp_path / "r.toml"
    path.write_text(RECIPE + extra, encoding="utf-8")
    return load_recipe(path, registry, list(overrides))


def test_events_arrive_in_the_documented_order(tmp_path, registry):
    rec = Recorder()
    result = api.train(recipe(tmp_path, registry), out=tmp_path / "run", callbacks=[rec])
    assert result.step == 10
    seen = rec.seen
    assert seen[0] == ("run_start", 0, False)
    assert seen[1] == ("phase_start", "warm")
    assert seen[-1] == ("run_end", 10)
    names = [e[0] for e in seen]
    # phases: warm's four steps end before it ends, then main starts
    assert names.index("phase_end") > max(i for i, e in enumerate(seen) if e == ("step_end", 4))
    assert ("phase_end", "warm") in seen and ("phase_start", "main") in seen
    assert seen.index(("phase_end", "warm")) < seen.index(("phase_start", "main"))
    # every step ends once, in order
    assert [e[1] for e in seen if e[0] == "step_end"] == list(range(1, 11))
    # step 5: the log rows... then samples, the metric and the checkpoint, in that order
    at5 = [e for e in seen if len(e) > 1 and e[1] == 5 and e[0] != "step_end"]
    assert [e[0] for e in at5] == ["samples", "evaluate", "log", "checkpoint"]
    assert at5[0][2] == (64, 2) and at5[0][3] == "step-00000005.png"
    # the end: the last step's row came at its step end; the final samples, metric and
    # checkpoint come from the core's on_train_end, which runs before this (later) callback's
    last = names.index("phase_end", names.index("phase_start", 2))
    assert names[last - 1:] == ["step_end", "phase_end", "samples", "evaluate", "log",
                                "checkpoint", "train_end", "run_end"]
    # on_log saw exactly what metrics.jsonl holds
    rows = [json.loads(x) for x in (tmp_path / "run/metrics.jsonl").read_text().splitlines()]
    assert [(r["step"], r["event"]) for r in rows] == [e[1:] for e in seen if e[0] == "log"]


def test_run_end_is_called_when_the_run_fails(tmp_path, registry):
    class Boom(Callback):
        def on_step_end(self, trainer):
            if trainer.state.step == 3:
                raise UserError("stop here")

    rec = Recorder()
    with pytest.raises(UserError, match="stop here"):
        api.train(recipe(tmp_path, registry), out=tmp_path / "run", callbacks=[Boom(), rec])
    assert rec.seen[-1] == ("run_end", None)


def test_callback_list_calls_only_what_a_callback_overrides():
    class OnlyLogs(Callback):
        def on_log(self, trainer, row):
            pass

    listeners = CallbackList([OnlyLogs(), Callback()])
    assert len(listeners._listeners["on_log"]) == 1
    assert all(not listeners._listeners[e] for e in EVENTS if e != "on_log")
    assert "on_step_end" in EVENTS and EVENTS[0] == "on_run_start" and EVENTS[-1] == "on_run_end"


def test_builtin_throughput_callback_reports_rates(tmp_path, registry):
    """register_callbacks: the core's own callback is chosen from a recipe like a plugin's."""
    extra = '\n[[callbacks]]\ntype = "throughput"\nevery = 5\n'
    api.train(recipe(tmp_path, registry, extra), out=tmp_path / "run")
    rows = [json.loads(x) for x in (tmp_path / "run/metrics.jsonl").read_text().splitlines()]
    speed = [r for r in rows if r["event"] == "throughput"]
    assert [r["step"] for r in speed] == [5, 10]
    for r in speed:
        assert r["steps_per_s"] > 0
        # 5 steps; warm and main draw one critic batch each per step (n_critic 1): 5 x 32
        assert r["real_per_s"] == pytest.approx(r["steps_per_s"] * 32)


def test_loggers_replace_the_default_and_an_unknown_one_names_the_key(tmp_path, registry):
    """register_loggers: with a [[loggers]] list that leaves jsonl out, no metrics.jsonl."""
    rec = Recorder()
    api.train(recipe(tmp_path, registry, "", ["loggers=[]"]), out=tmp_path / "run",
              callbacks=[rec])
    assert not (tmp_path / "run/metrics.jsonl").exists()
    assert any(e[0] == "log" for e in rec.seen)  # rows still reach the other listeners
    with pytest.raises(UserError, match=r"loggers\.0\.type.*jsonl"):
        recipe(tmp_path, registry, '\n[[loggers]]\ntype = "jsnl"\n')
