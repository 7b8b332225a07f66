"""What a new user sees first: start-up lines, progress in a terminal and in a log file, the
wall-clock stamps of metrics.jsonl, the end-of-run hints, ``recipes``, ``list-plugins`` and
``--help`` at 80 columns, and plots drawn with matplotlib.

Commands that a user runs in a terminal or a pipe are run as real subprocesses (with
``COLUMNS=80``), so what is checked is what a pipe or an 80-column terminal gets.
"""

from __future__ import annotations

import io
import json
import os
import re
import subprocess
import sys
import tomllib
from datetime import datetime
from pathlib import Path
from types import SimpleNamespace

import numpy as np
import pytest
from PIL import Image
from rich.console import Console
from typer.testing import CliRunner

from ganframe import api
from ganframe.cli import _finished, app
from ganframe.loop.clock import TIME_KEYS, strip_time
from ganframe.loop.startup import data_source
from ganframe.progress import RichProgress, duration, throughput_unit
from ganframe.recipe_facts import length_facts, recipe_summary

ROOT = Path(__file__).resolve().parents[1]
RING = ["train.steps=8", "train.log_every=2", "train.batch_size=32", "generator.hidden=8",
        "critic.hidden=8", "train.sample_every=0", "train.checkpoint_every=0", "metrics=[]",
        'device="cpu"']


def ganframe(*args: str, cwd: Path | None = None) -> subprocess.CompletedProcess:
    """The command as a user runs it, output to a pipe, in an 80-column setting."""
    env = {**os.environ, "COLUMNS": "80", "OMP_NUM_THREADS": "1"}
    env.pop("FORCE_COLOR", None)
    return subprocess.run([sys.executable, "-m", "ganframe", *args], capture_output=True,
                          text=True, env=env, cwd=cwd, timeout=300)


def rows(run: Path) -> list[dict]:
    return [json.loads(x) for x in (run / "metrics.jsonl").read_text().splitlines()]


# -- a run whose output goes to a pipe -------------------------------------------------------


@pytest.fixture(scope="module")
def piped(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, subprocess.CompletedProcess]:
    out = tmp_path_factory.mktemp("piped") / "run"
    sets = [x for item in RING for x in ("--set", item)]
    proc = ganframe("run", "gaussian-ring", "--out", str(out), "--max-steps", "6", *sets)
    assert proc.returncode == 0, proc.stderr
    return out, proc


def test_a_piped_run_says_where_it_runs_then_prints_a_line_per_log_interval(piped) -> None:
    out, proc = piped
    err = proc.stderr
    assert "\x1b[" not in err  # no terminal codes in a log file
    lines = err.splitlines()
    assert lines[0].startswith("device: cpu;") and "CPU thread(s)" in lines[0]
    assert "precision fp32" in lines[0] and "1 process" in lines[0]
    assert lines[1].startswith("data: ") and "generated in memory" in lines[1]
    assert lines[2] == f"run folder: {out}"
    assert "phase 1/1 'train': 6 steps of 8" in err
    steps = [ln for ln in lines if ln.startswith("step ")]
    # one line per log interval, the total is --max-steps, the phase name stays [train]
    assert [s.split(" [")[0] for s in steps] == ["step 2/6 (33%)", "step 4/6 (67%)",
                                               "step 6/6 (100%)"]
    for s in steps:
        assert re.search(r"\[train\] d_real=\S+ .*g_loss=\S+ \| [\d,.]+ pts/s \| \d+s elapsed, "
                         r"eta \d+s$", s), s
    assert steps[-1].endswith("eta 0s")  # at the last step, nothing is left


def test_the_end_of_a_run_says_how_to_sample_and_report(piped) -> None:
    out, proc = piped
    said = proc.stdout
    assert f"run stopped at --max-steps at step 6; run folder: {out}" in said
    assert re.search(r"sample with: ganframe sample \S+step-00000006\.safetensors -n 64 -o "
                     r"samples\.png", said)
    assert f"report with: ganframe report {out} -o report.html" in said
    assert "TensorBoard" not in said  # none configured


def test_metrics_rows_carry_time_and_elapsed_continued_on_resume(piped, tmp_path) -> None:
    out, _ = piped
    first = rows(out)
    for r in first:
        assert datetime.fromisoformat(r["time"]).tzinfo is not None  # ISO 8601, UTC
        assert isinstance(r["elapsed_s"], float) and r["elapsed_s"] > 0
    elapsed = [r["elapsed_s"] for r in first]
    assert elapsed == sorted(elapsed)
    # resumed in this process: the count goes on from the last row kept
    run = tmp_path / "run"
    import shutil

    shutil.copytree(out, run)
    api.train(api.load_recipe("gaussian-ring", RING), out=run, resume=True, progress=False)
    after = rows(run)
    assert [r["step"] for r in after] == [2, 4, 6, 8]
    assert after[:3] == first  # the rows before the checkpoint are kept as they were
    assert after[3]["elapsed_s"] > first[-1]["elapsed_s"]
    assert after[3]["time"] > first[-1]["time"]
    # and the rest of the row is what an uninterrupted run logs
    straight = tmp_path / "straight"
    api.train(api.load_recipe("gaussian-ring", RING), out=straight, progress=False)
    assert [strip_time(r) for r in after] == [strip_time(r) for r in rows(straight)]
    assert all(set(TIME_KEYS) <= set(r) for r in rows(straight))


def test_quiet_keeps_phase_names_in_brackets(tmp_path) -> None:
    sets = [x for item in RING for x in ("--set", item)]
    result = CliRunner().invoke(app, ["run", "gaussian-ring", "--out", str(tmp_path / "q"),
                                      "-q", *sets])
    assert result.exit_code == 0, result.stderr
    assert "step 2/8 (25%) [train] d_real=" in result.stderr
    # a terminal with colour, and a phase name that reads as rich markup: shown as written
    buf = io.StringIO()
    display = RichProgress(Console(file=buf, force_terminal=True, width=200), quiet=True)
    display.phase("[bold]warm[/bold]", 0, 4, 0, count=2)
    display.row({"step": 2, "phase": "[bold]warm[/bold]", "event": "train", "g_loss": 0.5,
                 "time": "2026-01-01T00:00:00Z", "elapsed_s": 1.0})
    text = re.sub(r"\x1b\[[0-9;]*m", "", buf.getvalue())
    assert "phase 1/2 '[bold]warm[/bold]': 4 steps" in text
    assert "step 2 [[bold]warm[/bold]] g_loss=0.5 | 0s elapsed, eta ?" in text
    assert "elapsed_s=" not in text and "time=" not in text


# -- the live display in a terminal ---------------------------------------------------------


def test_the_terminal_display_shows_phase_steps_throughput_eta_and_losses(
    tmp_path, monkeypatch
) -> None:
    monkeypatch.setenv("TERM", "xterm-256color")  # CI consoles may say TERM=dumb
    buf = io.StringIO()
    console = Console(file=buf, force_terminal=True, width=120, color_system=None)
    display = RichProgress(console)
    assert not display.quiet  # a terminal: the live bar
    api.train(api.load_recipe("gaussian-ring", RING), out=tmp_path / "r", max_steps=6,
              progress=display)
    text = buf.getvalue()
    assert "phase 1/1 train" in text
    assert "6/6" in text and "step 6/6" in text  # the bar ends at --max-steps, not at 8
    assert re.search(r"[\d,.]+ pts/s", text) and "eta 0s" in text
    assert re.search(r"d_loss=\S+ g_loss=\S+", text)  # the latest losses under the bar
    assert display.data_kind == "points"


def test_an_unattended_console_gets_plain_lines(monkeypatch) -> None:
    monkeypatch.setenv("TERM", "xterm-256color")
    assert RichProgress(Console(file=io.StringIO())).quiet
    assert not RichProgress(Console(file=io.StringIO(), force_terminal=True)).quiet
    assert RichProgress(Console(file=io.StringIO(), force_terminal=True), quiet=True).quiet
    monkeypatch.setenv("TERM", "dumb")  # a terminal that cannot redraw a bar
    assert RichProgress(Console(file=io.StringIO(), force_terminal=True)).quiet


def test_eta_counts_to_the_step_the_run_stops_at() -> None:
    display = RichProgress(Console(file=io.StringIO()))
    display.limit, display.step, display.steps_per_s = 600, 500, 2.0
    assert display.eta() == "50s"  # (600 - 500) / 2, not the phase's full length
    display.limit = 10_500
    assert display.eta() == "1h23m"
    assert duration(59.6) == "1m00s" and duration(3) == "3s"


def test_throughput_units_follow_the_data_kind() -> None:
    assert throughput_unit("image", {}) == ("img/s", 1)
    assert throughput_unit("text", {"seq_len": 33}) == ("tok/s", 33)
    assert throughput_unit("points", {}) == ("pts/s", 1)
    assert throughput_unit("audio", {}) == ("samples/s", 1)


def test_data_source_names_the_path_or_the_download_cache(tmp_path, monkeypatch) -> None:
    monkeypatch.setenv("GANFRAME_CACHE", str(tmp_path / "cache"))
    ds = SimpleNamespace(kind="image", source=tmp_path / "cache/mnist/train-images", __len__=None)
    assert "from " + str(tmp_path / "cache/mnist/train-images") in data_source(
        ds, {"name": "mnist"})
    assert "download cache" in data_source(ds, {"name": "mnist"})
    elsewhere = SimpleNamespace(kind="text", source="/data/poems.txt")
    said = data_source(elsewhere, {"name": "poems"})
    assert said == "poems (text) from /data/poems.txt"


# -- the Python API -------------------------------------------------------------------------


def test_train_prints_a_line_per_log_interval_unless_told_not_to(tmp_path, capsys) -> None:
    api.train(api.load_recipe("gaussian-ring", RING), out=tmp_path / "a", max_steps=4)
    said = capsys.readouterr().out
    assert "device: cpu;" in said and f"run folder: {tmp_path / 'a'}" in said
    assert re.search(r"step 2/4 \(50%\) \[train\] .*pts/s.*eta", said)
    assert re.search(r"step 4/4 \(100%\) \[train\]", said)
    api.train(api.load_recipe("gaussian-ring", RING), out=tmp_path / "b", max_steps=4,
              progress=False)
    assert capsys.readouterr().out == ""


# -- end-of-run hint for text -----------------------------------------------------------------


def test_the_sample_hint_uses_the_data_kinds_suffix(tmp_path, capsys) -> None:
    pytest.importorskip("ganframe_poet")
    result = SimpleNamespace(stopped_early=False, step=3, out=tmp_path,
                             checkpoint=tmp_path / "checkpoints/step-00000003.safetensors")
    (tmp_path / "tb").mkdir()
    _finished(result, "text")
    said = capsys.readouterr().out
    assert "-o samples.txt" in said and "samples.png" not in said
    assert f"TensorBoard logs: {tmp_path / 'tb'} (view with: tensorboard --logdir" in said
    _finished(result, "image")
    assert "-o samples.png" in capsys.readouterr().out


# -- recipes: summaries from the recipe files ---------------------------------------------------


def test_recipe_summaries_come_from_the_recipe_files(tmp_path) -> None:
    proc = ganframe("recipes", "--json")
    assert proc.returncode == 0, proc.stderr
    summaries = {r["name"]: r["summary"] for r in json.loads(proc.stdout)}
    assert "about 10 min" not in json.dumps(summaries)
    # each shipped recipe's summary states the length its file sets (5,628 steps for
    # dcgan-mnist when this was written, 1,128 for wgan-gp-mnist), phase by phase
    from ganframe.plugins import get_host

    for spec in get_host().registry.recipes:
        recipe = tomllib.loads(spec.read_text())
        said = summaries[spec.name]
        assert said.startswith(" ".join(recipe["description"].split()).rstrip(".")), said
        for table in recipe.get("phases") or [recipe["train"]]:
            amount = (f"{table['steps']:,} steps" if "steps" in table
                      else f"{table['epochs']:g} epochs")
            assert f"{table.get('name', '')} {amount}".strip() in said, (spec.name, said)
        assert f"batch {recipe['train']['batch_size']}" in said
    reference = (ROOT / "docs/recipe-reference.md").read_text(encoding="utf-8")
    assert summaries["dcgan-mnist"] in reference and "3000 steps" not in reference
    # a recipe's summary follows its file
    path = tmp_path / "r.toml"
    path.write_text('description = "Mine"\n[train]\nsteps = 1234\nbatch_size = 8\n')
    spec = SimpleNamespace(summary="stale 3000 steps", read_text=path.read_text)
    assert recipe_summary(spec) == "Mine; 1,234 steps, batch 8"
    path.write_text("[train]\nepochs = 2.5\n")
    assert recipe_summary(spec) == "stale 3000 steps; 2.5 epochs"
    assert length_facts({}) == "length unset"


def test_recipes_table_fits_80_columns() -> None:
    proc = ganframe("recipes")
    assert proc.returncode == 0, proc.stderr
    assert all(len(line) <= 80 for line in proc.stdout.splitlines())
    assert "…" not in proc.stdout and "5,628" in proc.stdout and "dcgan-mnist " in proc.stdout


# -- list-plugins and --help at 80 columns ------------------------------------------------------


def test_list_plugins_fits_80_columns_and_lists_sample_writers() -> None:
    proc = ganframe("list-plugins")
    assert proc.returncode == 0, proc.stderr
    text = proc.stdout
    assert all(len(line.rstrip()) <= 80 for line in text.splitlines()), text
    assert "…" not in text
    listed = json.loads(ganframe("list-plugins", "--json").stdout)
    builtins = [p["name"] for p in listed if p["name"].startswith("ganframe.builtin.")]
    assert len(builtins) >= 4
    heads = [line.split()[0] for line in text.splitlines() if line and not line[0].isspace()]
    for name in builtins:  # each built-in plugin under its own full name, once
        assert heads.count(name) == 1, name
    assert re.search(r"^  sample writers\s+image \.npy, image \.png, points \.csv", text, re.M)
    assert re.search(r"^  losses\s+hinge, lsgan", text, re.M)
    writers = {p["name"]: p["writers"] for p in listed}
    assert "points .png" in writers["ganframe.builtin.writers_plugin"]
    if "poet" in writers:
        assert writers["poet"] == ["text .txt"]


#: Every command's --help in one process with COLUMNS=80 (click reads it when it formats).
HELPS = """
import json, re, sys
from typer.testing import CliRunner
from ganframe.cli import app
top = CliRunner().invoke(app, ["--help"]).stdout
names = re.findall(r"^  (\\S+)", top.split("Commands:", 1)[1], re.M)
out = {"": top}
for name in names:
    result = CliRunner().invoke(app, [name, "--help"])
    out[name] = result.stdout if result.exit_code == 0 else f"exit {result.exit_code}"
sys.stdout.write(json.dumps(out))
"""


def test_help_texts_fit_80_columns_with_plain_metavars() -> None:
    env = {**os.environ, "COLUMNS": "80"}
    proc = subprocess.run([sys.executable, "-c", HELPS], capture_output=True, text=True,
                          env=env, timeout=300)
    assert proc.returncode == 0, proc.stderr
    helps = json.loads(proc.stdout)
    assert {"run", "sample", "list-plugins", "recipes"} <= set(helps)
    top = helps[""]
    assert "..." not in top.split("Commands:", 1)[1]  # no summary cut short
    for command, text in helps.items():
        assert text.startswith("Usage: "), (command, text)
        assert all(len(line) <= 80 for line in text.splitlines()), (command, text)
        assert "…" not in text, command
        assert not re.search(r"<(str|int|float|path|list\[[^\]]*\])>", text), (command, text)
        usage = text.splitlines()[0]
        assert "{" not in usage and "<" not in usage, usage
    run = helps["run"]
    assert "ganframe run [OPTIONS] RECIPE" in run.splitlines()[0]
    assert re.search(r"-o, --out PATH\s", run) and re.search(r"--max-steps INTEGER\s", run)


def test_help_in_process_gets_the_same_style() -> None:
    result = CliRunner().invoke(app, ["sample", "--help"])
    assert result.exit_code == 0
    assert "Usage: ganframe sample [OPTIONS] CHECKPOINT" in result.stdout
    assert "--seed INTEGER" in result.stdout and "<int>" not in result.stdout


# -- plots drawn with matplotlib ----------------------------------------------------------------


def test_poet_sweep_chart_is_drawn_with_matplotlib(tmp_path) -> None:
    pytest.importorskip("ganframe_poet")
    from ganframe_poet.sweep import plot

    rows_ = [
        {"label": "ckpt-a", "temperature": 0.5, "self_bleu3": 0.8, "bleu3": 0.30},
        {"label": "ckpt-a", "temperature": 1.0, "self_bleu3": 0.5, "bleu3": 0.25},
        {"label": "real (test split)", "temperature": "", "self_bleu3": 0.4, "bleu3": 0.35},
    ]
    path = tmp_path / "sweep.png"
    plot(rows_, path)
    with Image.open(path) as im:
        assert im.size == (720, 520)
        a = np.asarray(im.convert("RGB")).astype(int)
    blue = (np.abs(a - [0x1F, 0x77, 0xB4]).sum(axis=2) < 30).sum()
    black = (a.sum(axis=2) < 60).sum()
    assert blue > 200  # the checkpoint's line and markers
    assert black > 200  # the real poems' point, axes, labels and text
    assert (a.sum(axis=2) == 3 * 255).mean() > 0.7  # mostly white background
