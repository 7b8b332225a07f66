"""``ganframe report`` and ``ganframe runs`` on tiny real runs (the toy ring recipe, 12 steps)
and on run folders damaged the ways real ones get damaged: killed mid-write, still training,
emptied, not a run at all. The page itself is checked in a browser in
test_report_browser.py."""

from __future__ import annotations

import json
import os
import re
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
from typer.testing import CliRunner

from ganframe import api
from ganframe.cli import app
from ganframe.report.collect import read_run
from ganframe.report.plots import COLOURS
from ganframe.runfolder import RunLock

RING = [
    "generator.hidden=8", "critic.hidden=8", "train.steps=12", "train.log_every=2",
    "train.batch_size=32", "train.sample_every=4", "train.checkpoint_every=4",
    "train.sample_count=64", "metrics.0.every=4", "metrics.0.n_samples=64",
]
URL = re.compile(r"(https?|ftp)://|//[a-z0-9.-]+\.[a-z]{2,}/", re.I)


def ring_run(out: Path, **kw) -> Path:
    api.train(api.load_recipe("gaussian-ring", RING), out=out, **kw)
    return out


@pytest.fixture(scope="module")
def finished(tmp_path_factory) -> Path:
    return ring_run(tmp_path_factory.mktemp("runs") / "ring")


@pytest.fixture(scope="module")
def stopped(tmp_path_factory) -> Path:
    """The same run stopped by --max-steps at step 6 (a checkpoint there, not finished)."""
    return ring_run(tmp_path_factory.mktemp("runs") / "ring-slow", max_steps=6)


def copy_run(src: Path, dst: Path) -> Path:
    shutil.copytree(src, dst)
    return dst


def cli(*args: str | Path):
    return CliRunner().invoke(app, [str(a) for a in args])


def report(tmp_path: Path, *runs: Path, name: str = "report.html") -> str:
    out = tmp_path / name
    result = cli("report", *runs, "-o", out)
    assert result.exit_code == 0, (result.stdout, result.stderr, result.exception)
    assert f"wrote {out}" in result.stdout
    return out.read_text(encoding="utf-8")


def assert_user_error(result, *needles: str) -> None:
    assert result.exit_code == 2, (result.exit_code, result.stdout, result.stderr)
    assert isinstance(result.exception, SystemExit)  # mapped, not a traceback
    assert result.stderr.startswith("error: "), result.stderr
    assert "Traceback" not in result.stderr
    for needle in needles:
        assert needle in result.stderr, (needle, result.stderr)


# -- a finished run ------------------------------------------------------------------------


def test_a_finished_run_is_read_back_whole(finished):
    run = read_run(finished)
    assert run.status.state == "finished" and run.status.step == 12 == run.status.planned
    assert [r["step"] for r in run.train_rows()] == list(range(2, 13, 2))
    assert [r["step"] for r in run.metric_rows()] == [4, 8, 12]
    assert {c.step for c in run.checkpoints} == {8, 12}  # keep_last=2, plus last = 12
    assert [s.step for s in run.samples] == [4, 8, 12] and run.samples[0].kind == "image"
    import torch

    assert run.env["torch"] == torch.__version__ and run.env["processes"] == "1"
    assert run.env["ganframe"] and run.env["device"] == "cpu"
    assert run.wall_s is not None and run.wall_s > 0
    assert not run.notes


def test_the_report_of_a_finished_run_holds_curves_samples_recipe_and_no_url(finished,
                                                                            tmp_path):
    page = report(tmp_path, finished)
    assert "<h1>ring (gaussian-ring)</h1>" in page
    assert 'class="badge finished"' in page and "finished: 12 steps" in page
    # one figure per group: losses, metrics, learning rates (from none: no tb here) ...
    assert page.count('<svg') >= 2 and "d_loss" in page and "ring-modes" in page
    assert "samples/s (batch 32)" in page  # from the clock's elapsed_s on each row
    # each sample grid once in the slider, the last once more as the final samples
    assert page.count("data:image/png;base64,") == 3 + 1
    assert 'max="2" value="2"' in page  # the slider starts at the last grid
    assert "step-00000008.safetensors" in page and "last.safetensors" in page
    assert '<div class="toml">' in page and "gaussian-ring" in page
    assert not URL.search(page), URL.search(page)
    assert "default-src 'none'" in page  # the browser may fetch nothing, even by mistake


def test_a_report_compares_runs_one_colour_each_with_final_metrics_side_by_side(
        finished, stopped, tmp_path):
    page = report(tmp_path, finished, stopped)
    assert "Comparison of 2 runs" in page and "Side by side" in page
    table = page.split('id="compare"')[1].split("</table>")[0]
    assert "ring-modes/" in table and "stopped at step 6 of 12" in table
    for colour in COLOURS[:2]:
        assert f"stroke: {colour}" in page or f"stroke:{colour}" in page
    assert page.count('<section class="run">') == 2


def test_report_refuses_the_same_run_twice_and_a_folder_as_output(finished, tmp_path):
    assert_user_error(cli("report", finished, finished, "-o", tmp_path / "r.html"), "twice")
    assert_user_error(cli("report", finished, "-o", tmp_path), "is a folder")


# -- runs in other states ------------------------------------------------------------------


def test_a_stopped_run_says_where_it_stopped_and_how_to_go_on(stopped):
    run = read_run(stopped)
    assert run.status.state == "stopped"
    assert run.status.text == "stopped at step 6 of 12; --resume continues from step 6"


def test_a_run_still_training_is_reported_as_such(finished, tmp_path):
    live = copy_run(finished, tmp_path / "live")
    lock = RunLock(live)
    lock.acquire()  # what a training process holds for the whole run
    try:
        page = report(tmp_path, live)
        result = cli("runs", tmp_path, "--json")
    finally:
        lock.release()
    assert 'class="badge training"' in page and "the run is still training" in page
    (row,) = [r for r in json.loads(result.stdout) if r["name"] == "live"]
    assert row["status"] == "training"
    assert read_run(live).status.state == "finished"  # lock released: as it was


def test_a_killed_run_is_interrupted_and_its_half_written_line_is_left_out(finished,
                                                                          tmp_path):
    killed = copy_run(finished, tmp_path / "killed")
    (killed / "checkpoints" / "last.safetensors").unlink()  # as if it died after step 8
    for path in (killed / "checkpoints").glob("step-00000012*"):
        path.unlink()
    (killed / ".ganframe.lock").write_text('{"pid": 999999999, "host": "gone"}\n')
    with (killed / "metrics.jsonl").open("a") as fh:
        fh.write('{"step": 14, "phase": "train", "event": "train", "d_lo')
    run = read_run(killed)
    assert run.status.state == "interrupted"
    assert "interrupted at step 12 of 12" in run.status.text
    assert "--resume continues from step 8" in run.status.text
    assert max(r["step"] for r in run.rows) == 12
    page = report(tmp_path, killed)
    assert "(line 10) is cut short" in page and 'class="badge interrupted"' in page


@pytest.mark.parametrize(("content", "note"), [
    (b"", "metrics.jsonl is empty"),
    (b'{"step": 2, "phase": "train", "event": "train", "d_loss": 1.5}\n{"st',
     "is cut short"),
    (b'{"step": 2, "event": "train", "d_loss": 1.5}\nnot json\n[1]\n{"step": "4"}\n'
     b'{"step": 6, "event": "train", "d_loss": 1.25}\n', "3 damaged line(s)"),
    (b"\x00\xff\xfe garbage \x80\n", "1 damaged line(s)"),
])
def test_a_damaged_metrics_file_gives_a_report_of_what_is_there(finished, tmp_path, content,
                                                                note):
    run = copy_run(finished, tmp_path / "damaged")
    (run / "metrics.jsonl").write_bytes(content)
    page = report(tmp_path, run)
    assert note in page
    kept = [r["step"] for r in read_run(run).rows]
    assert kept == {b"": [], b"\x00": []}.get(content[:1], kept)
    if b"d_loss" in content:
        assert "d_loss" in page and "<svg" in page


def test_every_logged_event_is_plotted_throughput_rows_first(tmp_path):
    run = tmp_path / "written"
    run.mkdir()
    rows = [{"step": s, "phase": "train", "event": "train", "g_loss": 1 / s, "elapsed_s": s}
            for s in (10, 20, 30)]
    rows += [{"step": s, "phase": "train", "event": "throughput", "steps_per_s": 3.0 + s,
              "real_per_s": 96.0} for s in (10, 20, 30)]
    rows += [{"step": 30, "phase": "train", "event": "weights", "norm": 2.5}]
    (run / "metrics.jsonl").write_text("".join(json.dumps(r) + "\n" for r in rows))
    page = report(tmp_path, run)
    throughput = page.split('id="throughput"')[1].split("</svg>")[0]
    assert "steps_per_s" in throughput and "real_per_s" in throughput
    assert "samples/s" not in page  # the callback's rows win over the clock's estimate
    assert "weights/norm" in page.split('id="other"')[1]
    assert "wall time</th><td>30 s" in page


def test_a_run_without_metrics_or_checkpoints_still_reports(tmp_path):
    bare = tmp_path / "bare"
    bare.mkdir()
    (bare / "recipe.toml").write_text('name = "bare"\n[train]\nsteps = 100\n')
    page = report(tmp_path, bare)
    assert "no metrics.jsonl" in page and "nothing trained yet" in page and "None yet." in page


def test_not_a_run_folder_or_a_missing_one_is_one_clear_error(tmp_path):
    assert_user_error(cli("report", tmp_path, "-o", tmp_path / "r.html"), "not a run folder",
                      f"ganframe runs {tmp_path}")
    assert_user_error(cli("report", tmp_path / "nope"), "no such folder")
    assert_user_error(cli("runs", tmp_path / "nope"), "no such folder")
    (tmp_path / "file").write_text("x")
    assert_user_error(cli("runs", tmp_path / "file"), "not a folder")
    assert not (tmp_path / "r.html").exists()


# -- ganframe runs -------------------------------------------------------------------------


def test_runs_lists_each_run_with_status_steps_values_and_checkpoint(finished, stopped,
                                                                     tmp_path):
    copy_run(finished, tmp_path / "a-done")
    copy_run(stopped, tmp_path / "b-stopped")
    (tmp_path / "not-a-run").mkdir()
    rows = json.loads(cli("runs", tmp_path, "--json").stdout)
    assert [(r["name"], r["status"], r["step"], r["planned_steps"]) for r in rows] == [
        ("a-done", "finished", 12, 12), ("b-stopped", "stopped", 6, 12)]
    assert rows[0]["last_checkpoint_step"] == 12 and "ring-modes/modes" in str(
        rows[0]["last_values"])
    assert rows[0]["recipe"] == "gaussian-ring" and rows[0]["wall_time_s"] > 0
    table = cli("runs", tmp_path).stdout
    assert "a-done" in table and "b-stopped" in table and "12/12" in table
    assert "6/12" in table and "step 12" in table and "not-a-run" not in table
    # one run folder lists itself
    assert [r["name"] for r in json.loads(cli("runs", tmp_path / "a-done", "--json").stdout)
            ] == ["a-done"]


def test_runs_of_an_empty_folder_says_so(tmp_path):
    result = cli("runs", tmp_path)
    assert result.exit_code == 0 and "no run folders in" in result.stderr
    assert json.loads(cli("runs", tmp_path, "--json").stdout) == []


def test_help_and_runs_import_neither_torch_nor_matplotlib(finished):
    code = (
        "import sys\nfrom typer.testing import CliRunner\nfrom ganframe.cli import app\n"
        "for args in (['--help'], ['report', '--help'], ['runs', '--help'],"
        f" ['runs', {str(finished.parent)!r}]):\n"
        "    r = CliRunner().invoke(app, args)\n"
        "    assert r.exit_code == 0, (args, r.output)\n"
        "print(sorted(m for m in ('torch', 'matplotlib', 'numpy') if m in sys.modules))\n"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                         timeout=120)
    assert out.returncode == 0, out.stderr
    assert out.stdout.strip() == "[]"


# -- a text run ----------------------------------------------------------------------------


def test_a_text_run_shows_poems_at_its_metrics_temperature(tmp_path):
    pytest.importorskip("ganframe_poet")
    from tinydata import poet_overrides

    sets = [*poet_overrides(tmp_path / "data"), "phases.0.epochs=1", "phases.1.steps=2",
            "phases.2.steps=2", "train.sample_every=0",
            'metrics=[{type="bleu", n_samples=16, temperature=0.7, max_order=2}]']
    run = tmp_path / "poet"
    api.train(api.load_recipe("lstm-poet", sets), out=run)
    page = report(tmp_path, run)
    assert "temperature 0.7, the metrics&#x27;" in page
    poems = page.split('<pre class="poems">')[1].split("</pre>")[0].splitlines()
    assert len(poems) == 8 and all(poems)
    assert "Samples written while training" in page  # the final samples/step-*.txt
    assert "mle" in page and "adversarial" in page  # the phases are marked on the curves


def test_links_and_fifos_in_a_run_folder_are_not_followed(finished, tmp_path):
    """A run folder from elsewhere must not copy your files into a report you share."""
    secret = tmp_path / "secret.txt"
    secret.write_text("PRIVATE KEY\n")
    run = copy_run(finished, tmp_path / "hostile")
    (run / "samples" / "step-00000001.txt").symlink_to(secret)
    (run / "metrics.jsonl").unlink()
    (run / "metrics.jsonl").symlink_to(secret)
    (run / ".ganframe.lock").unlink(missing_ok=True)
    os.mkfifo(run / ".ganframe.lock")  # reading it would block the report forever
    page = report(tmp_path, run)
    assert "PRIVATE KEY" not in page
    assert "metrics.jsonl is not a regular file" in page
    assert [s.step for s in read_run(run).samples] == [4, 8, 12]


def test_runs_json_is_strict_json_even_for_a_diverged_run(tmp_path):
    run = tmp_path / "diverged"
    run.mkdir()
    (run / "metrics.jsonl").write_text('{"step": 5, "event": "train", "g_loss": NaN}\n')

    def refuse(name):
        raise ValueError(f"not strict JSON: {name}")

    (row,) = json.loads(cli("runs", tmp_path, "--json").stdout, parse_constant=refuse)
    assert row["last_values"] == {"g_loss": None} and row["status"] == "interrupted"
    assert "g_loss nan/inf" in cli("runs", tmp_path).stdout
    assert "nan" in report(tmp_path, run)  # the page shows it as it is


def test_runs_of_the_same_name_are_told_apart_by_their_folder(finished, tmp_path):
    a = copy_run(finished, tmp_path / "seed0" / "ring")
    b = copy_run(finished, tmp_path / "seed1" / "ring")
    page = report(tmp_path, a, b)
    assert "seed0/ring (gaussian-ring)" in page and "seed1/ring (gaussian-ring)" in page


def test_a_log_resumed_by_a_newer_ganframe_says_its_time_is_partial(tmp_path):
    run = tmp_path / "resumed"
    run.mkdir()
    rows = [{"step": 10, "event": "train", "g_loss": 1.0},
            {"step": 20, "event": "train", "g_loss": 0.5, "elapsed_s": 7.5}]
    (run / "metrics.jsonl").write_text("".join(json.dumps(r) + "\n" for r in rows))
    got = read_run(run)
    assert got.wall_s == 7.5 and "1 earlier row(s) have none" in got.wall_note


def test_names_from_the_run_folder_are_shown_literally(tmp_path):
    """Keys and names are data: no math markup for matplotlib, no HTML for the page."""
    runs = []
    for name in ("_hidden", "a<b>"):
        run = tmp_path / name
        run.mkdir()
        row = {"step": 1, "event": "train", "$\\frac{$": 1.0, "<script>x</script>": 2.0}
        (run / "metrics.jsonl").write_text(json.dumps(row) + "\n")
        runs.append(run)
    page = report(tmp_path, *runs)
    assert "<script>x</script>" not in page and "&lt;script&gt;" in page
    legend = page.split('id="losses"')[1].split("</svg>")[0]
    assert "_hidden" in legend and "a&lt;b&gt;" in legend  # a leading _ hid it from legends
    assert "\\frac{" in legend  # shown as typed, not as a (broken) formula
