"""Crash safety: a real run killed with SIGKILL over and over still finishes, bit-exactly.

Each recipe (a first-party image recipe and a first-party text recipe, shrunk with ``--set``
and pointed at tiny data this file writes) is started as a real ``python -m ganframe run``
process and killed with SIGKILL at seeded-random moments after it has started logging.
Checkpoints are written every step, so many kills land while one is being written (a
temporary file left behind proves it). After every kill the next start uses ``--resume``;
it must resume from the checkpoint :class:`~ganframe.checkpoint.CheckpointDir` offers, which
must be complete, and no ``.tmp`` file may ever be taken for a checkpoint. The children
run on a simulated slow disk (``os.fsync`` of a regular file sleeps a little, injected with
a ``sitecustomize`` module), so that most of a step is spent inside a checkpoint write and
the seeded kills land there often on any machine, not only on one with a slow disk. A last
``--resume`` finishes the run, whose final checkpoint and log must equal, bit for bit, those
of an uninterrupted run of the same recipe (``deterministic = true``, CPU).

The delays are seeded, but how far a run gets before each kill depends on the machine's
speed; if a fast machine lets a run finish before it is killed, that round is checked like
the last one and a fresh round starts, so the number of kills never depends on speed.
"""

from __future__ import annotations

import json
import os
import random
import re
import subprocess
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path

import pytest
from safetensors.torch import load_file
from tinydata import dcgan_overrides, poet_overrides

from ganframe import api
from ganframe.checkpoint import CheckpointDir, read_checkpoint
from ganframe.loop.clock import TIME_KEYS

KILLS = 20  # per recipe, in a row
KILL_SEED = 1234
MAX_DELAY_S = 0.4  # kills land this long (uniform, seeded) after the first logged step
START_TIMEOUT_S = 120.0
SLOW_FSYNC_S = 0.03  # the simulated slow disk

SLOW_DISK = f"""
import os, stat, time

_fsync = os.fsync


def _slow_fsync(fd):
    try:
        regular = stat.S_ISREG(os.fstat(fd).st_mode)
    except OSError:
        regular = False
    if regular:
        time.sleep({SLOW_FSYNC_S})
    return _fsync(fd)


os.fsync = _slow_fsync
"""


CASES = {
    "dcgan-mnist": ("ganframe_dcgan", dcgan_overrides),
    "lstm-poet": ("ganframe_poet", poet_overrides),
}


# -- running and killing ------------------------------------------------------------------------


def child_env(slow_disk: Path) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("GANFRAME_DISABLE")}
    env.pop("GANFRAME_DATA", None)
    env["OMP_NUM_THREADS"] = "1"
    env["MKL_NUM_THREADS"] = "1"
    env["PYTHONPATH"] = os.pathsep.join(filter(None, [str(slow_disk), env.get("PYTHONPATH")]))
    return env


@dataclass
class Start:
    proc: subprocess.Popen
    err: Path
    out: Path

    def stderr(self) -> str:
        return self.err.read_text(encoding="utf-8", errors="replace")

    def stdout(self) -> str:
        return self.out.read_text(encoding="utf-8", errors="replace")


def start(recipe: str, sets: list[str], run: Path, logs: Path, index: int, resume: bool) -> Start:
    args = [sys.executable, "-m", "ganframe", "run", recipe, "--out", str(run), "--quiet"]
    for item in sets:
        args += ["--set", item]
    if resume:
        args.append("--resume")
    err, out = logs / f"{index:03d}.err", logs / f"{index:03d}.out"
    with err.open("wb") as e, out.open("wb") as o:
        proc = subprocess.Popen(args, stdout=o, stderr=e, env=child_env(logs / "slow-disk"))
    return Start(proc, err, out)


def wait_for_training(s: Start) -> bool:
    """True once the child logged a training step; False if it exited first."""
    deadline = time.monotonic() + START_TIMEOUT_S
    while time.monotonic() < deadline:
        if "\nstep " in "\n" + s.stderr():
            return True
        if s.proc.poll() is not None:
            return False
        time.sleep(0.01)
    s.proc.kill()
    s.proc.wait()
    raise AssertionError(f"no training step logged in {START_TIMEOUT_S} s:\n{s.stderr()}")


def temp_files(folder: Path) -> set[str]:
    return {p.name for p in folder.glob(".*.tmp")} if folder.is_dir() else set()


def assert_checkpoints_whole(folder: Path) -> tuple[int | None, int | None]:
    """Every ``*.safetensors`` reads completely; no temporary file is taken for a checkpoint.
    Returns the step of the checkpoint a resume would use and the newest step on disk
    (None: no checkpoint yet)."""
    cdir = CheckpointDir(folder)
    steps = [
        int(read_checkpoint(path).meta["run"]["step"])  # UserError if partial or corrupt
        for path in folder.glob("*.safetensors")
    ]
    assert all(not p.name.endswith(".tmp") for p in cdir.steps())
    latest = cdir.latest()
    if latest is None:
        assert not steps
        return None, None
    assert latest.suffix == ".safetensors" and not latest.name.startswith(".")
    return int(read_checkpoint(latest).meta["run"]["step"]), max(steps)


@dataclass
class Tally:
    kills: int = 0
    resumes: int = 0
    rounds: int = 1
    kills_during_write: int = 0  # a kill that left a half-written temporary file behind
    one_behind: int = 0  # resumed from last.safetensors while a newer step file was whole
    steps_at_kill: list[int | None] = field(default_factory=list)
    compared: int = 0


def train_rows(run: Path, leave_out: set[str] = frozenset()) -> list[dict]:
    rows = [json.loads(x) for x in (run / "metrics.jsonl").read_text().splitlines()]
    return [
        {k: v for k, v in r.items() if k not in leave_out and k not in TIME_KEYS}
        for r in rows
        if r.get("event") == "train"
    ]


def assert_same_as_reference(
    run: Path, reference: Path, total: int, leave_out: set[str] = frozenset()
) -> None:
    final = run / "checkpoints" / "last.safetensors"
    ref = reference / "checkpoints" / "last.safetensors"
    assert read_checkpoint(final).meta["run"]["step"] == total
    a, b = load_file(str(final)), load_file(str(ref))
    assert a.keys() == b.keys()
    differ = [k for k in a if not (a[k].dtype == b[k].dtype and (a[k] == b[k]).all())]
    assert not differ, f"tensors differ from the uninterrupted run: {differ[:8]}"
    meta_a, meta_b = read_checkpoint(final).meta, read_checkpoint(ref).meta
    assert meta_a == meta_b  # optimizer hyper-parameters, RNG, data cursor, recipe
    assert final.read_bytes() == ref.read_bytes()  # and so, byte for byte, the same file
    # the log reads as if the run had never stopped
    assert train_rows(run, leave_out) == train_rows(reference, leave_out)


@pytest.mark.parametrize("recipe", sorted(CASES))
def test_sigkill_at_random_moments_then_resume_finishes_bit_identically(
    recipe: str, tmp_path: Path
) -> None:
    module, make = CASES[recipe]
    pytest.importorskip(module)
    sets = make(tmp_path / "data")

    # The uninterrupted run, in this process (same single thread as the children).
    reference = api.train(api.load_recipe(recipe, sets), out=tmp_path / "reference")
    total = reference.step
    assert total >= 20 and not reference.stopped_early

    rng = random.Random(KILL_SEED)
    logs = tmp_path / "logs"
    (logs / "slow-disk").mkdir(parents=True)
    (logs / "slow-disk" / "sitecustomize.py").write_text(SLOW_DISK, encoding="utf-8")
    tally = Tally()
    run = tmp_path / "run-1"
    resume = False
    expected: int | None = None  # the step the next start must resume from
    index = 0
    while True:
        ckpts = run / "checkpoints"
        temps_before = temp_files(ckpts)
        s = start(recipe, sets, run, logs, index, resume)
        index += 1
        training = wait_for_training(s)
        if training and tally.kills < KILLS:
            time.sleep(rng.uniform(0.0, MAX_DELAY_S))
            s.proc.kill()
        rc = s.proc.wait(timeout=START_TIMEOUT_S)
        text = s.stderr()
        assert "Traceback" not in text, text
        if resume:
            if expected is None:
                assert "starting from step 0" in text, text
            else:
                found = re.search(r"^resuming from (\S+) at step (\d+)$", text, re.MULTILINE)
                assert found, text
                assert found[1].endswith(".safetensors"), found[0]  # never a .tmp file
                assert int(found[2]) == expected, (expected, found[0])
            tally.resumes += 1
        if rc == -9:  # killed: whatever it was doing, what is on disk must be usable
            tally.kills += 1
            tally.kills_during_write += bool(temp_files(ckpts) - temps_before)
            expected, newest = assert_checkpoints_whole(ckpts)
            tally.steps_at_kill.append(expected)
            # at most the one checkpoint whose write the kill interrupted is lost: a kill
            # between the step file and its copy to last.safetensors costs one step
            if newest is not None:
                assert expected is not None and newest - 1 <= expected <= newest
                tally.one_behind += expected < newest
            resume = True
            continue
        assert rc == 0, (rc, text)
        assert f"run finished at step {total}" in s.stdout(), s.stdout()
        assert assert_checkpoints_whole(ckpts) == (total, total)
        assert_same_as_reference(run, tmp_path / "reference", total, set())
        tally.compared += 1
        if tally.kills >= KILLS:
            break
        # a fast machine finished this round before the kill: go on in a fresh folder
        tally.rounds += 1
        run, resume, expected = tmp_path / f"run-{tally.rounds}", False, None

    assert tally.kills >= KILLS and tally.resumes >= KILLS
    leftovers = temp_files(run / "checkpoints")
    print(
        f"\n[{recipe}] kills survived: {tally.kills} ({tally.kills_during_write} while a "
        f"checkpoint was being written); resumes: {tally.resumes}; rounds: {tally.rounds}; "
        f"finished runs compared bit-for-bit with the uninterrupted run: {tally.compared}; "
        f"total steps {total}; resumed one step behind a newer whole step file: "
        f"{tally.one_behind}; step of the usable checkpoint after each kill: "
        f"{tally.steps_at_kill}; stale temporary files left in checkpoints/: {len(leftovers)}"
    )
    # Some kills must have landed inside a checkpoint write, or the test did not test that.
    assert tally.kills_during_write > 0


def test_mle_test_nll_log_survives_a_resume(tmp_path: Path) -> None:
    pytest.importorskip("ganframe_poet")
    sets = poet_overrides(tmp_path / "data")
    straight = api.train(api.load_recipe("lstm-poet", sets), out=tmp_path / "a", max_steps=6)
    api.train(api.load_recipe("lstm-poet", sets), out=tmp_path / "b", max_steps=3)
    resumed = api.train(
        api.load_recipe("lstm-poet", sets), out=tmp_path / "b", resume=True, max_steps=6
    )
    assert straight.step == resumed.step == 6
    # the weights agree (the kill test proves that at length); only the log can differ
    assert (tmp_path / "a/checkpoints/last.safetensors").read_bytes() == (
        tmp_path / "b/checkpoints/last.safetensors"
    ).read_bytes()
    assert train_rows(tmp_path / "b") == train_rows(tmp_path / "a")


TOY = """
name = "toy"
seed = 3
device = "cpu"
deterministic = true
[data]
type = "gaussian-ring"
size = 128
[generator]
type = "mlp"
hidden = 8
layers = 1
[critic]
type = "mlp"
hidden = 8
layers = 1
[train]
batch_size = 32
steps = 6
log_every = 1
checkpoint_every = 1
"""


def test_resume_removes_temporary_files_of_interrupted_writes(tmp_path: Path) -> None:
    recipe = tmp_path / "toy.toml"
    recipe.write_text(TOY, encoding="utf-8")
    out = tmp_path / "run"
    api.train(api.load_recipe(recipe), out=out, max_steps=3)
    ckpts = out / "checkpoints"
    whole = (ckpts / "step-00000003.safetensors").read_bytes()
    # what a SIGKILL inside CheckpointDir.save leaves behind (see the kill test's tally)
    (ckpts / ".step-00000004.safetensors.0123456789ab.tmp").write_bytes(whole[:100])
    (ckpts / ".last.safetensors.ba9876543210.tmp").write_bytes(whole)
    result = api.train(api.load_recipe(recipe), out=out, resume=True)
    assert result.step == 6
    assert sorted(p.name for p in ckpts.iterdir() if p.name.startswith(".")) == []
