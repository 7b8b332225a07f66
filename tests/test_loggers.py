"""The core's csv and tensorboard loggers, read back with their own readers and compared
with metrics.jsonl: same rows, same steps, once each after a resume."""

from __future__ import annotations

import csv
import importlib.util
import json
from pathlib import Path
from typing import ClassVar

import pytest

from ganframe import api
from ganframe.components import StepOutput
from ganframe.errors import UserError
from ganframe.loop.clock import TIME_KEYS
from ganframe.loop.events import Callback
from ganframe.plugins import load_plugins
from ganframe.recipe import load_recipe
from ganframe.registry import ComponentSpec

pytest.importorskip("tensorboard", reason="the tensorboard extra is part of the test extra")
from tensorboard.backend.event_processing.event_accumulator import (
    EventAccumulator,
)

RING = [
    "generator.hidden=8", "critic.hidden=8", "train.steps=12", "train.log_every=2",
    "train.batch_size=32", "train.sample_every=4", "train.checkpoint_every=4",
    "metrics.0.every=4", "metrics.0.n_samples=64",
    'loggers=[{type="jsonl"}, {type="csv"}, {type="tensorboard"}]',
]
FIXED = ("step", "phase", "event", "metric", *TIME_KEYS)


def jsonl(run: Path) -> list[dict]:
    return [json.loads(x) for x in (run / "metrics.jsonl").read_text().splitlines()]


def csv_rows(run: Path) -> list[dict]:
    with (run / "metrics.csv").open(newline="") as fh:
        return list(csv.DictReader(fh))


def board(run: Path) -> EventAccumulator:
    acc = EventAccumulator(str(run / "tb"), size_guidance={"scalars": 0, "images": 0,
                                                            "tensors": 0})
    acc.Reload()
    return acc


def expected_scalars(rows: list[dict]) -> dict[str, list[tuple[int, float]]]:
    """What the tensorboard logger promises for these metrics.jsonl rows."""
    out: dict[str, list[tuple[int, float]]] = {}
    for row in rows:
        prefix = f"metric/{row['metric']}" if row["event"] == "metric" else row["event"]
        for key, value in row.items():
            if key not in FIXED:
                out.setdefault(f"{prefix}/{key}", []).append((row["step"], float(value)))
    return out


def assert_board_equals_jsonl(run: Path) -> None:
    rows = jsonl(run)
    acc = board(run)
    want = expected_scalars(rows)
    tags = set(acc.Tags()["scalars"])
    assert tags == set(want) | {"lr/generator", "lr/critic"}
    for tag, points in want.items():
        got = [(e.step, e.value) for e in acc.Scalars(tag)]
        assert [s for s, _ in got] == [s for s, _ in points], tag  # each step once, in order
        for (_, g), (_, w) in zip(got, points, strict=True):
            assert g == pytest.approx(w, rel=1e-6, abs=1e-7), tag  # float32 in the file
    train_steps = [r["step"] for r in rows if r["event"] == "train"]
    for net in ("generator", "critic"):
        lr = acc.Scalars(f"lr/{net}")
        assert [e.step for e in lr] == train_steps
        assert all(e.value == pytest.approx(1e-3) for e in lr)


def assert_csv_equals_jsonl(run: Path) -> None:
    rows, table = jsonl(run), csv_rows(run)
    assert len(table) == len(rows)
    keys = {k for r in rows for k in r}
    assert set(table[0]) == keys  # one wide header with every key
    assert list(table[0])[:3] == ["step", "phase", "event"]
    for want, got in zip(rows, table, strict=True):
        for key in keys:
            if key not in want:
                assert got[key] == ""
            elif isinstance(want[key], str):
                assert got[key] == want[key]
            else:
                assert float(got[key]) == want[key]  # exact: repr round-trips


def test_csv_and_tensorboard_hold_what_metrics_jsonl_holds(tmp_path):
    run = tmp_path / "run"
    api.train(api.load_recipe("gaussian-ring", RING), out=run)
    rows = jsonl(run)
    assert {r["event"] for r in rows} == {"train", "metric"}
    assert [r["step"] for r in rows if r["event"] == "train"] == [2, 4, 6, 8, 10, 12]
    assert_csv_equals_jsonl(run)
    assert_board_equals_jsonl(run)
    acc = board(run)
    assert "recipe/text_summary" in acc.Tags()["tensors"]
    # the recipe as hyper-parameters, with the final metric values, in the hparams run
    hp = EventAccumulator(str(run / "tb/hparams"))
    hp.Reload()
    final = [r for r in rows if r["event"] == "metric"][-1]
    assert hp.Scalars("metric/ring-modes/sliced_w1")[-1].value == pytest.approx(
        final["sliced_w1"], rel=1e-6)
    # every file the loggers wrote is in the manifest, so --force removes it
    entries = json.loads((run / ".ganframe-run.json").read_text())["entries"]
    made = [p.relative_to(run).as_posix() for p in (run / "tb").rglob("*") if p.is_file()]
    assert made and all(m in entries for m in made) and "metrics.csv" in entries


def test_a_stopped_then_resumed_run_has_each_step_once(tmp_path):
    run = tmp_path / "run"
    api.train(api.load_recipe("gaussian-ring", RING), out=run, max_steps=6)
    api.train(api.load_recipe("gaussian-ring", RING), out=run, resume=True)
    assert_csv_equals_jsonl(run)
    assert_board_equals_jsonl(run)
    steps = [(r["step"], r["event"]) for r in jsonl(run)]
    assert len(steps) == len(set(steps))


def test_a_run_killed_after_logging_past_its_checkpoint_resumes_without_duplicates(tmp_path):
    """As if killed after step 10's row but before its checkpoint: the resume continues from
    step 8, and the rows of step 10 the killed attempt wrote are dropped from every log."""
    run = tmp_path / "run"
    api.train(api.load_recipe("gaussian-ring", RING), out=run, max_steps=10)
    assert [r["step"] for r in jsonl(run)][-1] == 10
    (run / "checkpoints/last.safetensors").unlink()
    (run / "checkpoints/step-00000010.safetensors").unlink()
    api.train(api.load_recipe("gaussian-ring", RING), out=run, resume=True)
    train = [r["step"] for r in jsonl(run) if r["event"] == "train"]
    assert train == [2, 4, 6, 8, 10, 12]
    assert_csv_equals_jsonl(run)
    assert_board_equals_jsonl(run)  # step 10 once: purge_step dropped the killed attempt's


class _NaNOnce:
    """Generator-only loss that is NaN once, at step index 7: the run rolls back to step 6."""

    trains_critic, trains_generator = False, True
    poisoned: ClassVar[set[int]] = set()

    def __init__(self, config, ctx) -> None:
        pass

    def generator_loss(self, ctx, real):
        loss = (ctx.fake(real.shape[0]) - real).pow(2).mean()
        if ctx.step == 7 and 7 not in self.poisoned:
            self.poisoned.add(7)
            loss = loss * float("nan")
        return StepOutput(loss, {"g_loss": loss})


def test_a_rollback_while_running_keeps_each_step_once(tmp_path):
    registry = load_plugins(autoload=False).registry
    registry.add(ComponentSpec("loss", "nan-once", _NaNOnce, None, "test", "0"))
    _NaNOnce.poisoned = set()
    path = tmp_path / "r.toml"
    path.write_text(
        'name = "boom"\nseed = 0\ndevice = "cpu"\n[data]\ntype = "gaussian-ring"\n'
        'size = 256\n[generator]\ntype = "mlp"\nhidden = 8\nlayers = 1\n[loss]\n'
        'type = "nan-once"\n[optim.generator]\ntype = "sgd"\nlr = 0.01\n[train]\n'
        'batch_size = 32\nsteps = 12\nlog_every = 2\ncheckpoint_every = 2\n'
        'on_nonfinite = "rollback"\n'
        '[[loggers]]\ntype = "jsonl"\n[[loggers]]\ntype = "csv"\n'
        '[[loggers]]\ntype = "tensorboard"\n', encoding="utf-8")
    run = tmp_path / "run"
    api.train(load_recipe(path, registry), out=run)
    assert _NaNOnce.poisoned == {7}  # the rollback happened
    assert len(list((run / "tb").glob("events.out.tfevents.*"))) == 2  # the writer reopened
    assert [r["step"] for r in jsonl(run)] == [2, 4, 6, 8, 10, 12]
    assert_csv_equals_jsonl(run)
    rows, acc = jsonl(run), board(run)
    assert [(e.step, e.value) for e in acc.Scalars("train/g_loss")] == [
        (r["step"], pytest.approx(r["g_loss"], rel=1e-6)) for r in rows]
    assert [e.step for e in acc.Scalars("lr/generator")] == [2, 4, 6, 8, 10, 12]


def test_an_image_run_logs_its_sample_grids(tmp_path):
    pytest.importorskip("ganframe_dcgan")
    from tinydata import dcgan_overrides

    sets = [*dcgan_overrides(tmp_path / "data"), "train.steps=2", "train.checkpoint_every=0",
            "train.sample_count=6", 'loggers=[{type="tensorboard", hparams=false}]']
    run = tmp_path / "run"
    drawn = []

    class Keep(Callback):
        def on_samples(self, trainer, samples, path):
            drawn.append(samples)

    api.train(api.load_recipe("dcgan-mnist", sets), out=run, callbacks=[Keep()])
    acc = board(run)
    assert acc.Tags()["images"] == ["samples"]
    images = acc.Images("samples")
    assert [im.step for im in images] == [2]
    assert (images[0].width, images[0].height) == (6 * 28, 28)  # the 6 samples side by side
    from io import BytesIO

    import numpy as np
    from PIL import Image

    pixels = np.asarray(Image.open(BytesIO(images[0].encoded_image_string)))[..., 0]
    # the grid is the drawn samples, from [-1, 1] to [0, 255], side by side
    (x,) = drawn
    want = np.concatenate(list((x[:, 0].numpy() + 1) / 2 * 255), axis=1)
    assert pixels.shape == want.shape == (28, 6 * 28)
    assert np.abs(pixels - want).max() <= 1
    assert not (run / "tb/hparams").exists()
    assert not (run / "metrics.jsonl").exists()  # only the loggers the recipe names


def test_a_text_run_logs_its_samples_decoded_like_the_text_writer(tmp_path):
    pytest.importorskip("ganframe_poet")
    from tinydata import poet_overrides

    sets = [*poet_overrides(tmp_path / "data"), "phases.0.epochs=1", "phases.1.steps=2",
            "phases.2.steps=2", "train.checkpoint_every=0",
            'loggers=[{type="tensorboard", hparams=false}]']
    run = tmp_path / "run"
    api.train(api.load_recipe("lstm-poet", sets), out=run)
    (written,) = (run / "samples").glob("step-*.txt")  # the poet plugin's own decoding
    (event,) = board(run).Tensors("samples/text_summary")
    assert event.step == int(written.stem.split("-")[1])
    shown = event.tensor_proto.string_val[0].decode("utf-8").split("\n\n")
    poems = written.read_text(encoding="utf-8").splitlines()
    assert shown == poems[: len(shown)] and len(shown) == min(16, len(poems))


def test_a_missing_tensorboard_is_refused_at_validation_with_the_install_command(monkeypatch):
    real = importlib.util.find_spec
    monkeypatch.setattr(importlib.util, "find_spec",
                        lambda name, *a: None if name == "tensorboard" else real(name, *a))
    with pytest.raises(UserError) as err:
        api.load_recipe("gaussian-ring", ['loggers=[{type="jsonl"}, {type="tensorboard"}]'])
    msg = str(err.value)
    assert "loggers.1" in msg and "pip install 'ganframe[tensorboard]'" in msg
    api.load_recipe("gaussian-ring", ['loggers=[{type="csv"}]'])  # the others still load
