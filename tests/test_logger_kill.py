"""The csv and tensorboard loggers after a real SIGKILL, and on a process that is not rank 0.

A run killed with SIGKILL gets no chance to clean up: its event file and metrics.csv hold what
was written (and flushed) up to the kill, including rows past its last checkpoint. The resumed
run must show every step once, in every logger, as metrics.jsonl does.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path
from types import SimpleNamespace

import pytest

from ganframe import api

pytest.importorskip("tensorboard", reason="the tensorboard extra is part of the test extra")
from test_loggers import assert_board_equals_jsonl, assert_csv_equals_jsonl, board, jsonl

SETS = [
    "generator.hidden=8", "critic.hidden=8", "train.steps=100000", "train.log_every=2",
    "train.batch_size=32", "train.sample_every=0", "train.checkpoint_every=20", "metrics=[]",
    'device="cpu"', 'loggers=[{type="jsonl"}, {type="csv"}, {type="tensorboard"}]',
]


def test_a_sigkilled_run_resumes_with_each_step_once_in_every_logger(tmp_path: Path) -> None:
    run = tmp_path / "run"
    args = [sys.executable, "-m", "ganframe", "run", "gaussian-ring", "--out", str(run), "-q"]
    for item in SETS:
        args += ["--set", item]
    proc = subprocess.Popen(args, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True,
                            env={**os.environ, "OMP_NUM_THREADS": "1"})
    log = run / "metrics.jsonl"
    deadline = time.monotonic() + 120
    try:
        # well past the checkpoint of step 20 (the event writer has written some of the rows
        # after it: it writes every 10 events), before the next one (40)
        while time.monotonic() < deadline:
            steps = [json.loads(x)["step"] for x in log.read_text().splitlines()
                     if x.endswith("}")] if log.exists() else []
            if steps and steps[-1] >= 30:
                break
            assert proc.poll() is None, proc.communicate()
            time.sleep(0.01)
        proc.send_signal(signal.SIGKILL)
    finally:
        proc.kill()
        proc.communicate()
    killed_at = [json.loads(x)["step"] for x in log.read_text().splitlines() if x.endswith("}")]
    assert killed_at[-1] >= 30, killed_at
    checkpoint = max(int(p.stem.split("-")[1]) for p in (run / "checkpoints").glob("step-*"))
    assert checkpoint < killed_at[-1]  # the killed attempt logged past its last checkpoint
    on_disk = [e.step for e in board(run).Scalars("train/g_loss")]
    assert max(on_disk) > checkpoint, (on_disk, checkpoint)  # in the event file too
    assert list((run / "metrics.csv").read_text().splitlines())[-1].startswith(
        str(killed_at[-1]))

    api.train(api.load_recipe("gaussian-ring", SETS), out=run, resume=True,
              max_steps=killed_at[-1] + 4, progress=False)
    rows = jsonl(run)
    assert [r["step"] for r in rows] == list(range(2, killed_at[-1] + 5, 2))  # each once
    assert_csv_equals_jsonl(run)
    assert_board_equals_jsonl(run)  # purge_step dropped the killed attempt's later events
    assert [e.step for e in board(run).Scalars("train/g_loss")] == [r["step"] for r in rows]


def test_only_rank_0_writes_tensorboard_and_csv_files(tmp_path: Path) -> None:
    from ganframe.builtin.loggers import CsvLogger, TensorBoardLogger

    worker = SimpleNamespace(is_main=False, out=tmp_path, resumed=False,
                             state=SimpleNamespace(step=0), message=lambda text: None)
    row = {"step": 2, "phase": "train", "event": "train", "g_loss": 0.5}
    for logger in (TensorBoardLogger(), CsvLogger()):
        logger.on_run_start(worker)
        logger.on_phase_start(worker, None)
        logger.on_log(worker, row)
        logger.on_run_end(worker, None)
    assert list(tmp_path.iterdir()) == []  # nothing written by a process that is not rank 0


def test_a_reopened_writer_gets_an_event_file_that_sorts_after_the_last(tmp_path: Path) -> None:
    """TensorBoard reads event files in name order; the name starts with whole seconds and
    ends with a per-process counter compared as text ("...10" < "...9"), so a writer reopened
    in the same second could be read before the attempt it replaces. The logger waits for the
    next second instead."""
    from torch.utils.tensorboard import SummaryWriter

    from ganframe.builtin.loggers import _after_last_event_file

    SummaryWriter(log_dir=str(tmp_path)).close()
    _after_last_event_file(tmp_path)
    SummaryWriter(log_dir=str(tmp_path)).close()
    first, second = sorted(tmp_path.glob("events.out.tfevents.*"),
                           key=lambda p: p.stat().st_mtime_ns)
    assert int(second.name.split(".")[3]) > int(first.name.split(".")[3])
    assert sorted([first.name, second.name]) == [first.name, second.name]
