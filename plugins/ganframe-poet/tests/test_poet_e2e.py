"""A tiny phased run through the public API: MLE, critic pre-training and a few SeqGAN steps
lower the test NLL, write poems, and the checkpoint alone is enough to sample."""

from __future__ import annotations

import itertools
import math
import shutil

import pytest

RECIPE = """
name = "tiny-poet"
seed = 0
device = "cpu"

[data]
type = "poems"
path = "poems/tiny.train.txt"

[generator]
type = "lstm"
embedding_dim = 16
hidden_dim = 48
num_layers = 1
dropout = 0.0

[critic]
type = "cnn"
embedding_dim = 8
filters = 8
widths = [2, 3]

[optim.generator]
lr = 1e-2

[optim.critic]
lr = 1e-3

[train]
batch_size = 32
log_every = 10
sample_every = 30
sample_count = 12
checkpoint_every = 0

[[phases]]
name = "mle"
loss = { type = "mle", eval_every = 1000 }
steps = 40

[[phases]]
name = "critic-pretrain"
loss = { type = "seqgan-critic" }
steps = 4

[[phases]]
name = "adversarial"
loss = { type = "seqgan", rollouts = 2, samples = 8 }
steps = 3
lr = { generator = 1e-4 }

[[metrics]]
type = "bleu"
every = 0
n_samples = 40

[[metrics]]
type = "nll"
every = 0
"""


def test_phased_run_lowers_test_nll_writes_poems_and_samples_without_data(
    corpus, chars, tmp_path
):
    from ganframe import api
    from ganframe.checkpoint import read_checkpoint

    recipe_file = corpus.parent.parent / "tiny.toml"
    recipe_file.write_text(RECIPE, encoding="utf-8")
    result = api.train(api.load_recipe(recipe_file), out=tmp_path / "run")
    assert result.step == 47 and not result.stopped_early

    train_rows = [r for r in result.metrics if r.get("event") == "train"]
    assert [r["phase"] for r in train_rows][:4] == ["mle"] * 4
    initial_test_nll = train_rows[0]["test_nll"]  # measured at step 0, before any update
    assert initial_test_nll > 0.9 * math.log(47)
    assert {"pg_loss", "reward", "critic_acc"} <= set(train_rows[-1])
    final = {r["metric"]: r for r in result.metrics if r.get("event") == "metric"}
    assert final["nll"]["test_nll"] < 0.7 * initial_test_nll
    bleu = final["bleu"]
    assert set(bleu) >= {"bleu2", "bleu3", "bleu4", "bleu5", "self_bleu3", "valid_form",
                         "copied", "unique"}
    assert 0.0 <= bleu["bleu4"] <= bleu["bleu3"] <= bleu["bleu2"] <= 1.0

    samples = sorted((tmp_path / "run" / "samples").glob("*.txt"))
    assert samples, "poems are written into the run folder"
    lines = samples[-1].read_text(encoding="utf-8").splitlines()
    assert len(lines) == 12

    ckpt_path = result.checkpoint
    state = read_checkpoint(ckpt_path)
    assert any(k.startswith("objective.rollout.") for k in state.tensors)

    # The vocabulary travels in the checkpoint: sampling works with the data gone.
    data_info = state.meta["data_info"]
    shutil.rmtree(corpus.parent)
    ckpt = api.load_checkpoint(ckpt_path)
    assert ckpt.info["vocab"] == data_info["vocab"]
    x = api.sample(ckpt, 20, seed=3, temperature=0.8)
    assert x.equal(api.sample(ckpt, 20, seed=3, temperature=0.8))
    out = api.write_samples(x, tmp_path / "poems.txt", ckpt)
    poems = out.read_text(encoding="utf-8").splitlines()
    assert len(poems) == 20
    # The corpus walks through CHARS in order 85% of the time; a few dozen steps learn that
    # (an untrained model follows it about 1 time in 45).
    pairs = [(a, b) for p in poems for a, b in itertools.pairwise(p)
             if a in chars and b in chars]
    in_order = sum(chars.index(b) == (chars.index(a) + 1) % len(chars) for a, b in pairs)
    assert len(pairs) > 50 and in_order / len(pairs) > 0.5


def test_cli_sample_and_temperature_sweep(corpus, tmp_path, monkeypatch):
    typer_testing = pytest.importorskip("typer.testing")
    from ganframe import api
    from ganframe.cli import app

    recipe_file = corpus.parent.parent / "tiny.toml"
    recipe_file.write_text(RECIPE, encoding="utf-8")
    result = api.train(api.load_recipe(recipe_file, ["phases.0.steps=5", "phases.1.steps=1",
                                                     "phases.2.steps=1"]),
                       out=tmp_path / "run")
    out = tmp_path / "poems.txt"
    res = typer_testing.CliRunner().invoke(
        app, ["sample", str(result.checkpoint), "-n", "7", "-o", str(out),
              "--temperature", "0.7"],
    )
    assert res.exit_code == 0, res.output
    assert len(out.read_text(encoding="utf-8").splitlines()) == 7

    # The quality-diversity sweep over temperatures, with real poems as the reference point.
    from ganframe_poet.sweep import plot, sweep, write_table
    from PIL import Image

    monkeypatch.chdir(corpus.parent.parent)  # the recipe's data path is relative
    rows = sweep([result.checkpoint], [0.3, 1.5], n=30)
    assert [r["temperature"] for r in rows] == [0.3, 1.5, ""]
    assert rows[-1]["label"].startswith("real")
    assert rows[0]["self_bleu3"] > rows[1]["self_bleu3"]  # colder sampling, less diversity
    write_table(rows, tmp_path / "sweep")
    plot(rows, tmp_path / "sweep" / "sweep.png")
    assert len((tmp_path / "sweep" / "sweep.csv").read_text().splitlines()) == 4
    assert Image.open(tmp_path / "sweep" / "sweep.png").size == (720, 520)
    # ... and as the plugin's `ganframe poet-sweep` command (register_commands hook).
    runner = typer_testing.CliRunner()
    res = runner.invoke(app, ["--help"])
    assert "poet-sweep" in res.output
    res = runner.invoke(app, ["poet-sweep", str(result.checkpoint), "--temperatures", "0.8",
                              "-n", "10", "--top-p", "0.9", "--out", str(tmp_path / "cli")])
    assert res.exit_code == 0, res.output
    assert (tmp_path / "cli" / "sweep.png").exists()
    table = (tmp_path / "cli" / "sweep.csv").read_text(encoding="utf-8").splitlines()
    assert table[0].startswith("label,temperature,top_p,") and ",0.8,0.9," in table[1]
    assert "coldest temperature with self-BLEU-3 <= real + 0.05" in res.output
    from ganframe_poet.sweep import coldest_within

    fake = [{"label": "m", "temperature": t, "self_bleu3": sb}
            for t, sb in ((0.6, 0.40), (0.8, 0.26), (1.0, 0.15))]
    fake.append({"label": "real", "temperature": "", "self_bleu3": 0.22})
    assert coldest_within(fake, 0.05) == {"m": 0.8}
    assert coldest_within(fake, 0.0) == {"m": 1.0}
    assert coldest_within(fake, -0.1) == {"m": None}
    for bad, says in ((["--temperatures", "0,1"], "positive"),
                      (["--temperatures", "warm"], "comma-separated numbers"),
                      (["--labels", "a,b"], "one name per checkpoint"),
                      (["--top-p", "1.5"], "(0, 1]")):
        res = runner.invoke(app, ["poet-sweep", str(result.checkpoint), *bad])
        assert res.exit_code == 2 and says in res.output, (bad, res.output)
        assert "Traceback" not in res.output

    # `ganframe eval` rebuilds the metrics from the checkpoint's recipe.
    scores = api.evaluate(result.checkpoint)  # the recipe's [[metrics]] tables
    assert set(scores["bleu"]) >= {"bleu3", "self_bleu3", "copied"}
    assert scores["nll"]["test_nll"] > 0
