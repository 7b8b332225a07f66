"""Exact logs: a run stopped anywhere inside a logging interval and resumed writes the same
``metrics.jsonl`` (and the same final checkpoint, byte for byte) as a run that never stopped.

A stop between two log rows writes no partial row; the meter's pending sums travel in the
checkpoint (the ``ganframe:log_scalars`` callback state) and come back on resume, so the next
row averages exactly the steps it would have averaged. Stops are made by ``--max-steps`` at
every position of two logging intervals, by a real SIGTERM (sent by the process to itself at
a chosen step, and from outside at a random moment), and by a crash after a periodic
checkpoint that fell inside an interval.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import textwrap
import time
from pathlib import Path

import pytest
from ckpt_meta import rewrite_meta

from ganframe import api
from ganframe.checkpoint import read_checkpoint
from ganframe.errors import UserError
from ganframe.loop.clock import strip_time
from ganframe.loop.events import Callback
from ganframe.loop.meter import Meter

LOG_EVERY = 4
STEPS = 12
SETS = [
    'device="cpu"', "deterministic=true", "metrics=[]", "data.size=256", "generator.hidden=8",
    "generator.layers=1", "critic.hidden=8", "critic.layers=1", "train.batch_size=32",
    f"train.steps={STEPS}", f"train.log_every={LOG_EVERY}", "train.sample_every=0",
    "train.sample_count=16", "train.checkpoint_every=0", "train.keep_last=0",
]


def train(out: Path, extra: list[str] = (), **kw):
    return api.train(api.load_recipe("gaussian-ring", [*SETS, *extra]), out=out, **kw)


def log_bytes(run: Path) -> bytes:
    """metrics.jsonl less the wall-clock stamps (``time``, ``elapsed_s``), which differ
    between any two runs; everything else must match byte for byte (floats round-trip)."""
    lines = (run / "metrics.jsonl").read_bytes().decode().splitlines()
    return "".join(json.dumps(strip_time(json.loads(x)), ensure_ascii=False) + "\n"
                   for x in lines).encode()


def last(run: Path) -> Path:
    return run / "checkpoints" / "last.safetensors"


@pytest.fixture(scope="module")
def straight(tmp_path_factory: pytest.TempPathFactory) -> Path:
    out = tmp_path_factory.mktemp("exact") / "straight"
    result = train(out)
    assert result.step == STEPS and not result.stopped_early
    rows = [json.loads(x) for x in log_bytes(out).decode().splitlines()]
    assert [r["step"] for r in rows] == [4, 8, 12]
    return out


def assert_same_run(run: Path, straight: Path) -> None:
    assert log_bytes(run) == log_bytes(straight)
    assert last(run).read_bytes() == last(straight).read_bytes()


@pytest.mark.parametrize("stop", range(1, 2 * LOG_EVERY + 1))
def test_max_steps_at_every_position_of_an_interval(straight: Path, tmp_path: Path,
                                                    stop: int) -> None:
    out = tmp_path / "run"
    first = train(out, max_steps=stop)
    assert first.step == stop and first.stopped_early
    rows = [json.loads(x) for x in log_bytes(out).decode().splitlines()] if (
        out / "metrics.jsonl").exists() else []
    # no partial row: only the rows the uninterrupted run has by then
    assert [r["step"] for r in rows] == [s for s in (4, 8) if s <= stop]
    record = read_checkpoint(last(out)).meta
    pending = record.get("callbacks", {}).get("ganframe:log_scalars")
    if stop % LOG_EVERY:
        assert pending["ranks"][0]["steps"] == stop % LOG_EVERY
    else:
        assert pending is None  # nothing pending at a row
    resumed = train(out, resume=True)
    assert resumed.step == STEPS
    assert_same_run(out, straight)


def test_a_run_that_finishes_its_phases_still_flushes_its_last_partial_row(tmp_path: Path):
    out = tmp_path / "run"
    train(out, ["train.steps=6"])
    rows = [json.loads(x) for x in log_bytes(out).decode().splitlines()]
    assert [r["step"] for r in rows] == [4, 6]
    assert "ganframe:log_scalars" not in read_checkpoint(last(out)).meta["callbacks"]


def test_crash_after_a_periodic_checkpoint_inside_an_interval(straight: Path, tmp_path: Path):
    """A checkpoint at step 6 holds the sums of steps 5-6; a crash at step 10 (after row 8
    was written) resumes from 6, drops row 8 and writes it again from the same steps."""

    class Crash(Callback):
        def on_step_end(self, trainer) -> None:
            if trainer.state.step == 10:
                raise RuntimeError("simulated crash")

    out = tmp_path / "run"
    with pytest.raises(RuntimeError, match="simulated crash"):
        train(out, ["train.checkpoint_every=6"], callbacks=[Crash()])
    assert read_checkpoint(last(out)).meta["run"]["step"] == 6
    assert b'"step": 8' in log_bytes(out)
    train(out, ["train.checkpoint_every=6"], resume=True)
    assert log_bytes(out) == log_bytes(straight)
    # the periodic checkpoint is part of the recipe, so compare with a straight run of it
    ref = tmp_path / "ref"
    train(ref, ["train.checkpoint_every=6"])
    assert_same_run(out, ref)


# -- real signals ---------------------------------------------------------------------------

#: Runs ``ganframe run`` (the real command, exit codes and all) with a callback that sends
#: signals to its own process at chosen moments, so a signal lands at an exact step.
SELF_SIGNAL = textwrap.dedent("""
    import os, signal, sys
    from ganframe import api, cli
    from ganframe.loop.events import Callback

    what, at, count = sys.argv[1], int(sys.argv[2]), int(sys.argv[3])
    if what.startswith("nohup-"):  # what `nohup` does before it starts the command
        what = what[len("nohup-"):]
        signal.signal(getattr(signal, what), signal.SIG_IGN)
    sig = getattr(signal, what)

    def send():
        for _ in range(count):
            os.kill(os.getpid(), sig)

    class SelfSignal(Callback):
        def on_run_start(self, trainer):
            if at == 0:
                send()
        def on_step_end(self, trainer):
            if at > 0 and trainer.state.step == at:
                send()
        def on_samples(self, trainer, samples, path):  # at == -1: during the final samples
            if at == -1 and trainer.state.step == trainer.limit:
                send()

    real = api.train
    api.train = lambda *a, callbacks=(), **k: real(*a, callbacks=[*callbacks, SelfSignal()], **k)
    sys.argv = ["ganframe", *sys.argv[4:]]
    cli.main()
""")


def self_signal(tmp_path: Path, out: Path, what: str, at: int, count: int = 1,
                extra: list[str] = ()) -> subprocess.CompletedProcess[str]:
    script = tmp_path / "self_signal.py"
    script.write_text(SELF_SIGNAL, encoding="utf-8")
    args = ["run", "gaussian-ring", "--out", str(out), "--quiet"]
    for item in [*SETS, *extra]:
        args += ["--set", item]
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    return subprocess.run([sys.executable, str(script), what, str(at), str(count), *args],
                          capture_output=True, text=True, env=env, timeout=300)


@pytest.mark.parametrize("at", [2, 4, 7])  # the signal arrives after this step's end
def test_sigterm_inside_an_interval_resumes_to_the_same_log(straight: Path, tmp_path: Path,
                                                            at: int) -> None:
    out = tmp_path / "run"
    proc = self_signal(tmp_path, out, "SIGTERM", at)
    assert proc.returncode == 143, proc.stderr
    assert "Traceback" not in proc.stderr
    stopped = read_checkpoint(last(out)).meta["run"]["step"]
    assert stopped == at + 1  # the handler ran inside step `at`'s end: one more step, then stop
    assert f"interrupted at step {stopped}" in proc.stderr
    train(out, resume=True)
    assert_same_run(out, straight)


def test_sighup_saves_and_stops_like_sigterm(straight: Path, tmp_path: Path) -> None:
    out = tmp_path / "run"
    proc = self_signal(tmp_path, out, "SIGHUP", 5)
    assert proc.returncode == 129, proc.stderr
    assert "Traceback" not in proc.stderr and "resume with: ganframe run" in proc.stderr
    assert read_checkpoint(last(out)).meta["run"]["step"] == 6
    train(out, resume=True)
    assert_same_run(out, straight)


def test_sighup_under_nohup_stays_ignored(straight: Path, tmp_path: Path) -> None:
    out = tmp_path / "run"
    proc = self_signal(tmp_path, out, "nohup-SIGHUP", 5)
    assert proc.returncode == 0, proc.stderr
    assert_same_run(out, straight)


def test_second_sigterm_exits_143_at_once(tmp_path: Path) -> None:
    out = tmp_path / "run"
    proc = self_signal(tmp_path, out, "SIGTERM", 3, count=2)
    assert proc.returncode == 143, proc.stderr
    assert "Traceback" not in proc.stderr
    # at once: no checkpoint after the step the signals came in, and no temporary files
    assert not list((out / "checkpoints").glob("*.safetensors"))
    assert not list(out.rglob(".*.tmp"))


def test_sigterm_during_the_final_samples_writes_the_checkpoint_and_exits_143(
    straight: Path, tmp_path: Path
) -> None:
    out = tmp_path / "run"
    proc = self_signal(tmp_path, out, "SIGTERM", -1)
    assert proc.returncode == 143, proc.stderr
    assert "Traceback" not in proc.stderr
    assert f"interrupted at step {STEPS} after the run finished" in proc.stderr
    assert_same_run(out, straight)  # the final row and checkpoint were written as usual


def test_sigterm_in_the_last_step_ends_the_run_as_usual_and_says_so(straight: Path,
                                                                    tmp_path: Path) -> None:
    out = tmp_path / "run"
    proc = self_signal(tmp_path, out, "SIGTERM", STEPS - 1)  # lands during the last step
    assert proc.returncode == 143, proc.stderr
    assert f"interrupted at step {STEPS} after the run finished" in proc.stderr
    assert_same_run(out, straight)


LONG = [*[s for s in SETS if not s.startswith("train.steps")], "train.steps=400",
        "train.log_every=7"]


def test_sigterm_from_outside_at_a_random_moment(tmp_path: Path) -> None:
    ref = tmp_path / "ref"
    api.train(api.load_recipe("gaussian-ring", LONG), out=ref)
    out = tmp_path / "run"
    args = [sys.executable, "-m", "ganframe", "run", "gaussian-ring", "--out", str(out),
            "--quiet"]
    for item in LONG:
        args += ["--set", item]
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    proc = subprocess.Popen(args, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
                            env=env)
    deadline = time.monotonic() + 120
    while not (out / "metrics.jsonl").exists() and time.monotonic() < deadline:
        assert proc.poll() is None, proc.communicate()
        time.sleep(0.01)
    proc.send_signal(signal.SIGTERM)
    _, err = proc.communicate(timeout=120)
    if proc.returncode == 0:
        pytest.skip("the run finished before the signal arrived")
    assert proc.returncode == 143, err
    stopped = read_checkpoint(last(out)).meta["run"]["step"]
    api.train(api.load_recipe("gaussian-ring", LONG), out=out, resume=True)
    assert log_bytes(out) == log_bytes(ref), f"stopped at step {stopped}"
    assert last(out).read_bytes() == last(ref).read_bytes()


# -- the meter's state ----------------------------------------------------------------------


def test_meter_state_round_trips_float32_sums_exactly() -> None:
    import torch

    m = Meter(torch.device("cpu"))
    values = [0.1, 1e-30, 3.4e38, -2.5, 1 / 3]
    for v in values:
        m.add({"a": torch.tensor(v, dtype=torch.float32), "b": v})
    m.steps = len(values)
    state = json.loads(json.dumps(m.state()))
    n = Meter(torch.device("cpu"))
    n.load(state)
    assert n.steps == m.steps and n.counts == m.counts
    assert all(torch.equal(n.sums[k], m.sums[k]) for k in m.sums)
    assert n.means() == m.means()


@pytest.mark.parametrize("state", [
    "x", [], {"ranks": {}}, {"ranks": [{"steps": -1, "sums": {}, "counts": {}}]},
    {"ranks": [{"steps": 1, "sums": {"a": "1"}, "counts": {"a": 1}}]},
    {"ranks": [{"steps": 1, "sums": {"a": 1.0}, "counts": {"b": 1}}]},
    {"ranks": [{"steps": 1, "sums": {"a": 1e300}, "counts": {"a": 1}}]},
    {"ranks": [{"steps": 1, "sums": {"a": 1.0}, "counts": {"a": 0}}]},
    {"ranks": [{"steps": 1, "sums": {"a": 1.0}, "counts": {"a": True}}]},
    {"ranks": [{"steps": 1, "sums": {"a": 1.0}, "counts": {"a": 1}}] * 2},
])
def test_a_damaged_meter_state_is_a_user_error_naming_the_file(tmp_path: Path, state) -> None:
    out = tmp_path / "run"
    train(out, max_steps=3)

    def damage(meta: dict) -> None:
        meta["callbacks"]["ganframe:log_scalars"] = state

    for path in (out / "checkpoints").glob("*.safetensors"):
        rewrite_meta(path, path, damage)
    with pytest.raises(UserError) as info:
        train(out, resume=True)
    text = str(info.value)
    assert "last.safetensors" in text and "ganframe:log_scalars" in text


# -- two processes ---------------------------------------------------------------------------


def test_two_processes_resume_to_the_same_log(tmp_path: Path) -> None:
    """Each process keeps its own pending sums: a checkpoint inside an interval gathers them
    all (rank order), and each process takes its own back on resume."""
    sets = [s for s in SETS if not s.startswith("train.checkpoint_every")]
    sets += ["train.checkpoint_every=3", "train.steps=9"]

    def ganframe(out: Path, *extra: str) -> None:
        args = [sys.executable, "-m", "ganframe", "run", "gaussian-ring", "--nproc", "2",
                "--out", str(out), "--quiet", *extra]
        for item in sets:
            args += ["--set", item]
        env = {**os.environ, "OMP_NUM_THREADS": "1"}
        proc = subprocess.run(args, capture_output=True, text=True, env=env, timeout=600)
        assert proc.returncode == 0, proc.stderr[-3000:]

    ganframe(tmp_path / "a")
    ganframe(tmp_path / "b", "--max-steps", "6")
    pending = read_checkpoint(last(tmp_path / "b")).meta["callbacks"]["ganframe:log_scalars"]
    assert [r["steps"] for r in pending["ranks"]] == [2, 2]  # steps 5 and 6 on both ranks
    assert pending["ranks"][0]["sums"] != pending["ranks"][1]["sums"]  # their own data
    ganframe(tmp_path / "b", "--resume")
    assert log_bytes(tmp_path / "b") == log_bytes(tmp_path / "a")
    assert last(tmp_path / "b").read_bytes() == last(tmp_path / "a").read_bytes()
