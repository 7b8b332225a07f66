"""Hostile recipes, checkpoints, data files and concurrent runs (docs/security.md).

Each section is one class of issue 14's security findings, tried with several cases, not
only the quoted example: run names and folders, ``--force`` and the run manifest, one writer
per run folder, failures before the first checkpoint, data paths chosen by checkpoints, data
paths that are not files, decompression bombs, checkpoints whose metadata lies about the
network, and text that a terminal would interpret. Exit codes come from real processes
(``python -m ganframe``) where the process matters (signals, locks between processes); the
rest goes through the command functions in this process. ``CASES`` counts the cases tried
per class; the summary is printed at the end of the module (``pytest -s``).
"""

from __future__ import annotations

import gzip
import json
import os
import shutil
import signal
import socket
import struct
import subprocess
import sys
import textwrap
import time
import zlib
from collections import Counter
from collections.abc import Iterator
from pathlib import Path

import numpy as np
import pytest
import safetensors
import safetensors.torch
import torch
from typer.testing import CliRunner

from ganframe import api, runfolder
from ganframe.cli import app
from ganframe.errors import UserError
from ganframe.loop.events import Callback
from ganframe.textsafe import printable

CASES: Counter[str] = Counter()

TOY = """\
name = "toy"
seed = 0
device = "cpu"

[data]
type = "gaussian-ring"
size = 128

[generator]
type = "mlp"
hidden = 8
layers = 1
latent_dim = 2

[critic]
type = "mlp"
hidden = 8
layers = 1

[optim.generator]
lr = 1e-3

[train]
batch_size = 32
steps = 4
log_every = 2
checkpoint_every = 2
keep_last = 0
sample_every = 2
sample_count = 16
"""

CHARS = "春风花月夜山水云天地日星江河湖海松竹梅兰雪雨霜露朝暮秋冬夏晴寒烟柳桥舟客酒歌"

TINY_POET = """\
name = "tiny-poet"
device = "cpu"

[data]
type = "poems"
mode = "quatrain5"
path = "poems.txt"
holdout = 0.25

[generator]
type = "lstm"
embedding_dim = 8
hidden_dim = 8
num_layers = 1

[loss]
type = "mle"

[train]
batch_size = 4
steps = 2
log_every = 1
precision = "fp32"

[[metrics]]
type = "bleu"
n_samples = 8
"""


# -- helpers --------------------------------------------------------------------------------


def env(**extra: str) -> dict[str, str]:
    out = {k: v for k, v in os.environ.items() if not k.startswith("GANFRAME_")}
    out["OMP_NUM_THREADS"] = "1"
    out.update(extra)
    return out


def ganframe(*args: str | Path, cwd: Path | None = None, timeout: float = 300,
             **extra_env: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "ganframe", *map(str, args)], capture_output=True, text=True,
        env=env(**extra_env), timeout=timeout, cwd=cwd,
    )


def start(*args: str | Path, **extra_env: str) -> subprocess.Popen[str]:
    return subprocess.Popen(
        [sys.executable, "-m", "ganframe", *map(str, args)], stdout=subprocess.PIPE,
        stderr=subprocess.PIPE, text=True, env=env(**extra_env),
    )


def invoke(*args: str | Path):
    return CliRunner().invoke(app, [str(a) for a in args])


def wait_for(check, what: str, limit: float = 180.0) -> None:
    """Poll until ``check()`` holds (a process reached a state); not a timing assertion."""
    deadline = time.monotonic() + limit
    while not check():
        if time.monotonic() > deadline:
            raise AssertionError(f"gave up waiting for {what}")
        time.sleep(0.05)


def user_error(result, *needles: str) -> str:
    """Exit 2 through the CLI's error mapping, one message without a traceback."""
    text = result.stderr
    assert result.exit_code == 2, (result.exit_code, result.stdout, text, result.exception)
    assert "Traceback" not in text + result.stdout
    for needle in needles:
        assert needle in text, (needle, text)
    return text


def tree(folder: Path) -> dict[str, bytes | None]:
    """Every path under ``folder`` (hidden ones too) with file contents."""
    if not folder.exists():
        return {}
    return {str(p.relative_to(folder)): (p.read_bytes() if p.is_file() else None)
            for p in sorted(folder.rglob("*"))}


def quatrain(i: int) -> str:
    return "".join(
        "".join(CHARS[(i + 5 * k + j) % len(CHARS)] for j in range(5)) + p
        for k, p in enumerate("，。，。")
    )


def write_poems(path: Path, n: int = 24) -> Path:
    path.write_text("\n".join(quatrain(i) for i in range(n)) + "\n", encoding="utf-8")
    return path


def with_meta(src: Path, dst: Path, change) -> Path:
    """Copy a checkpoint with its JSON metadata changed (tensors kept)."""
    with safetensors.safe_open(str(src), "pt") as f:
        meta = json.loads(f.metadata()["ganframe"])
        tensors = {k: f.get_tensor(k) for k in f.keys()}
    change(meta)
    safetensors.torch.save_file(tensors, str(dst), metadata={"ganframe": json.dumps(meta)})
    return dst


@pytest.fixture(scope="module")
def workdir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return tmp_path_factory.mktemp("security")


@pytest.fixture(scope="module")
def toy(workdir: Path) -> tuple[Path, Path]:
    """(the toy recipe, a finished run of it made here); tests copy the run to change it."""
    recipe = workdir / "toy.toml"
    recipe.write_text(TOY, encoding="utf-8")
    run = workdir / "toy-run"
    result = invoke("run", recipe, "--out", run, "--quiet")
    assert result.exit_code == 0, result.stderr
    return recipe, run


@pytest.fixture(autouse=True)
def no_real_data(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    monkeypatch.delenv("GANFRAME_DATA", raising=False)
    monkeypatch.setenv("GANFRAME_CACHE", str(tmp_path / "cache"))


@pytest.fixture(scope="module", autouse=True)
def summary() -> Iterator[None]:
    yield
    lines = ", ".join(f"{k}: {v}" for k, v in sorted(CASES.items()))
    print(f"\nsecurity cases tried: {sum(CASES.values())} ({lines})")


# -- 1. a recipe's name never chooses a folder outside runs/ ---------------------------------

HOSTILE_NAMES = [
    "../../x", "/tmp/abs-run", "..", ".", ".hidden", "-rf", "a/b", "a\\b", "x\x00y",
    "x\x1b[31mred", "two\nlines", "tab\there", "x" * 101, " leading", "trailing ",
    "bidi\u202eevil", "c1\x9bcontrol",
]


@pytest.mark.parametrize("name", HOSTILE_NAMES, ids=[repr(n)[:24] for n in HOSTILE_NAMES])
def test_a_name_that_is_not_one_plain_folder_name_is_refused_at_validation(
    tmp_path: Path, name: str
) -> None:
    CASES["names"] += 1
    path = tmp_path / "r.toml"
    path.write_text(TOY.replace('name = "toy"', f"name = {json.dumps(name)}"), encoding="utf-8")
    text = user_error(invoke("validate", path), str(path), "name", "cannot name a run folder")
    assert "\x1b" not in text and "\x00" not in text


@pytest.mark.parametrize("name", ["../../escaped", "/tmp/ganframe-abs-escape", "a/../../b"])
def test_run_with_a_hostile_name_writes_nothing_anywhere(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, name: str
) -> None:
    CASES["names"] += 1
    work = tmp_path / "a" / "b" / "work"
    work.mkdir(parents=True)
    monkeypatch.chdir(work)
    path = work / "r.toml"
    path.write_text(TOY.replace('name = "toy"', f"name = {json.dumps(name)}"), encoding="utf-8")
    before = tree(tmp_path)
    user_error(invoke("run", path, "--quiet"), "name")
    assert tree(tmp_path) == before
    assert not Path("/tmp/ganframe-abs-escape").exists()


@pytest.mark.parametrize("name", ["my-run", "run_1.v2", "春风", "[red]x", "a b"])
def test_plain_names_still_work(tmp_path: Path, name: str) -> None:
    CASES["names"] += 1
    assert runfolder.run_name_problem(name) is None
    assert runfolder.default_folder(name) == Path("runs") / name


def test_a_name_taken_from_an_unsafe_file_name_needs_out(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Without ``name`` the file's stem names the run; a stem that cannot name a folder is
    refused when the folder would be derived from it, and --out makes the run possible."""
    CASES["names"] += 1
    monkeypatch.chdir(tmp_path)
    path = tmp_path / "-odd.toml"
    path.write_text(TOY.replace('name = "toy"\n', ""), encoding="utf-8")
    user_error(invoke("run", path, "--quiet"), "name", "--out")
    assert not (tmp_path / "runs").exists()
    result = invoke("run", path, "--out", tmp_path / "chosen", "--quiet")
    assert result.exit_code == 0, result.stderr


def test_an_explicit_out_is_the_users_choice_anywhere(tmp_path: Path, toy) -> None:
    CASES["names"] += 1
    recipe, _ = toy
    out = tmp_path / "deep" / ".." / "elsewhere"
    result = invoke("run", recipe, "--out", out, "--quiet")
    assert result.exit_code == 0, result.stderr
    assert (tmp_path / "elsewhere" / "checkpoints" / "last.safetensors").is_file()


# -- 2. --force deletes only what ganframe can prove it wrote ---------------------------------


def copy_run(run: Path, dst: Path) -> Path:
    shutil.copytree(run, dst)
    return dst


def test_the_manifest_lists_what_a_run_wrote(toy) -> None:
    CASES["force"] += 1
    _, run = toy
    manifest = runfolder.Manifest.read(run)
    assert manifest is not None
    assert {"checkpoints/", "samples/", "recipe.toml", "metrics.jsonl"} <= set(manifest.entries)
    assert not (run / runfolder.LOCK_FILE).exists()  # released at the end of the run


def test_force_keeps_every_file_ganframe_did_not_write(tmp_path: Path, toy) -> None:
    CASES["force"] += 1
    recipe, run = toy
    out = copy_run(run, tmp_path / "run")
    mine = {
        "notes.txt": b"my notes",
        "checkpoints/best.safetensors": b"my best model",
        "checkpoints/step-1.safetensors.bak": b"a backup",
        "samples/for-the-paper.png": b"png",
        "analysis/plot.py": b"print()",
    }
    for rel, data in mine.items():
        (out / rel).parent.mkdir(parents=True, exist_ok=True)
        (out / rel).write_bytes(data)
    result = invoke("run", recipe, "--out", out, "--force", "--quiet",
                    "--set", "train.steps=2")
    assert result.exit_code == 0, result.stderr
    for rel, data in mine.items():
        assert (out / rel).read_bytes() == data, rel
    # the old run's files are gone, the new run's are there
    assert sorted(p.name for p in (out / "checkpoints").glob("step-*.safetensors")) == [
        "step-00000002.safetensors"]
    assert sorted(p.name for p in (out / "samples").glob("step-*")) == ["step-00000002.png"]


def test_force_refuses_a_run_folder_without_a_manifest(tmp_path: Path, toy) -> None:
    CASES["force"] += 1
    recipe, run = toy
    out = copy_run(run, tmp_path / "old")
    (out / runfolder.MANIFEST_FILE).unlink()  # as an older ganframe left it
    before = tree(out)
    user_error(invoke("run", recipe, "--out", out, "--force", "--quiet"),
               str(out), runfolder.MANIFEST_FILE, "by hand")
    assert tree(out) == before


@pytest.mark.parametrize("entries", [
    ["../victim.txt"],
    ["checkpoints/../../victim.txt"],
    ["/ABS/victim.txt"],
    ["outside/step-00000001.png"],  # a symlink to a folder outside the run folder
    ["samples/"],  # samples is a symlink to a folder outside
    ["checkpoints/user-notes.txt"],  # listed, but not a name ganframe gives checkpoints
], ids=["dotdot", "nested-dotdot", "absolute", "symlinked-parent", "symlinked-folder",
        "unowned-name"])
def test_a_tampered_manifest_cannot_direct_force_elsewhere(
    tmp_path: Path, toy, entries: list[str]
) -> None:
    CASES["force"] += 1
    recipe, run = toy
    out = copy_run(run, tmp_path / "run")
    victims = tmp_path / "victims"
    victims.mkdir()
    (tmp_path / "victim.txt").write_text("precious")
    (victims / "step-00000001.png").write_text("precious")
    (out / "checkpoints" / "user-notes.txt").write_text("precious")
    (out / "outside").symlink_to(victims)
    entries = [e.replace("/ABS", str(tmp_path)) for e in entries]
    if entries == ["samples/"]:
        shutil.rmtree(out / "samples")
        (out / "samples").symlink_to(victims)
    manifest = json.loads((out / runfolder.MANIFEST_FILE).read_text())
    manifest["entries"] += entries
    (out / runfolder.MANIFEST_FILE).write_text(json.dumps(manifest))
    result = invoke("run", recipe, "--out", out, "--force", "--quiet", "--set", "train.steps=2")
    if entries == ["samples/"]:  # a run never writes through a link: refused before deleting
        user_error(result, str(out / "samples"), "symbolic link")
    else:
        assert result.exit_code == 0, result.stderr
    assert (tmp_path / "victim.txt").read_text() == "precious"
    assert (victims / "step-00000001.png").read_text() == "precious"
    assert (out / "checkpoints" / "user-notes.txt").read_text() == "precious"


def test_a_plugins_registered_file_is_removed_by_force(tmp_path: Path, toy) -> None:
    """A logger writing into the run folder registers its file; --force removes it then,
    and leaves an unregistered file of the same kind alone."""
    CASES["force"] += 1
    recipe, _ = toy
    out = tmp_path / "run"

    class TrackerFile(Callback):
        def on_run_start(self, trainer) -> None:
            path = trainer.out / "tracker.log"
            path.write_text("rows")
            runfolder.register(path)

    api.train(api.load_recipe(recipe), out=out, callbacks=[TrackerFile()])
    (out / "unregistered.log").write_text("mine")
    assert "tracker.log" in runfolder.Manifest.read(out).entries
    api.train(api.load_recipe(recipe), out=out, force=True)
    assert not (out / "tracker.log").exists()
    assert (out / "unregistered.log").read_text() == "mine"


@pytest.mark.parametrize("name", ["checkpoints", "samples", "metrics.jsonl", ".ganframe.lock"])
def test_a_run_never_writes_through_a_link_in_its_folder(tmp_path: Path, toy, name: str) -> None:
    """A run folder unpacked from elsewhere may hold links anywhere: resuming it writes
    nothing through them (no checkpoint rotation in a linked folder, no rows appended to a
    linked file, no lock file truncated through a link)."""
    CASES["force"] += 1
    recipe, run = toy
    out = copy_run(run, tmp_path / "received")
    victim = tmp_path / "victim"
    if name in ("checkpoints", "samples"):
        shutil.copytree(out / name, victim)
        shutil.rmtree(out / name)
    else:
        victim.write_text("precious\n")
        (out / name).unlink(missing_ok=True)
    (out / name).symlink_to(victim)
    before = tree(victim) if victim.is_dir() else victim.read_bytes()
    result = invoke("run", recipe, "--out", out, "--resume", "--quiet", "--set", "train.steps=8")
    text = user_error(result, str(out / name))
    assert "link" in text or "regular file" in text
    assert (tree(victim) if victim.is_dir() else victim.read_bytes()) == before


def test_a_lock_file_that_is_a_fifo_is_an_error_not_a_hang(tmp_path: Path, toy) -> None:
    CASES["lock"] += 1
    recipe, run = toy
    out = copy_run(run, tmp_path / "received")
    os.mkfifo(out / runfolder.LOCK_FILE)
    user_error(invoke("run", recipe, "--out", out, "--resume", "--quiet"),
               str(out / runfolder.LOCK_FILE), "remove it")


# -- 3. one writer per run folder ------------------------------------------------------------


def lock_holder(run: Path) -> int | None:
    try:
        return json.loads((run / runfolder.LOCK_FILE).read_text()).get("pid")
    except (OSError, ValueError):
        return None


def test_a_second_run_into_a_training_folder_stops_at_once_and_sampling_beside_it_works(
    tmp_path: Path, toy
) -> None:
    """One process trains (a checkpoint every step, so last.safetensors is replaced all the
    time); a second ``run --resume`` into the folder fails at once naming the first, while
    ``sample`` and the API read the folder's checkpoints beside it without a lock."""
    CASES["lock"] += 3
    recipe, _ = toy
    run = tmp_path / "busy"
    trainer = start("run", recipe, "--out", run, "--quiet", "--set", "train.steps=1000000",
                    "--set", "train.checkpoint_every=1", "--set", "train.keep_last=2",
                    "--set", "train.sample_every=0")
    try:
        wait_for(lambda: lock_holder(run) == trainer.pid
                 and (run / "checkpoints" / "last.safetensors").exists(), "the first run")
        second = ganframe("run", recipe, "--out", run, "--resume", "--quiet")
        assert second.returncode == 2, second.stderr
        assert f"pid {trainer.pid} on host {socket.gethostname()}" in second.stderr
        assert "Traceback" not in second.stderr
        steps = []
        for _ in range(25):  # readers need no lock and always see whole checkpoints
            ckpt = api.load_checkpoint(run)
            steps.append(ckpt.step)
            assert api.sample(ckpt, 4).shape == (4, 2)
        assert trainer.poll() is None and len(set(steps)) > 1, steps  # it saved meanwhile
        sampled = ganframe("sample", run, "-n", "8", "-o", tmp_path / "beside.npy")
        assert sampled.returncode == 0, sampled.stderr
    finally:
        trainer.send_signal(signal.SIGTERM)
        trainer.communicate(timeout=120)
    assert trainer.returncode == 128 + signal.SIGTERM
    assert not (run / runfolder.LOCK_FILE).exists()


def test_a_refused_resume_leaves_the_holders_temporary_checkpoint(tmp_path: Path, toy) -> None:
    """Stale temporary files are cleaned only after the lock is taken: a resume next to a
    running writer must not delete the checkpoint that writer is writing."""
    CASES["lock"] += 1
    recipe, run = toy
    out = copy_run(run, tmp_path / "run")
    holder = runfolder.RunLock(out)
    assert holder.acquire() is None
    temp = out / "checkpoints" / ".step-00000006.safetensors.0123456789ab.tmp"
    temp.write_bytes(b"being written")
    try:
        proc = ganframe("run", recipe, "--out", out, "--resume", "--quiet",
                        "--set", "train.steps=6")
        assert proc.returncode == 2, proc.stderr
        assert f"pid {os.getpid()}" in proc.stderr
        assert temp.read_bytes() == b"being written"
    finally:
        holder.release()
    result = invoke("run", recipe, "--out", out, "--resume", "--quiet", "--set", "train.steps=6")
    assert result.exit_code == 0, result.stderr
    assert not temp.exists()  # now it is a stale temporary file: removed


def test_two_writers_in_one_process_are_refused_too(tmp_path: Path) -> None:
    CASES["lock"] += 1
    first = runfolder.open_run(tmp_path / "run", resume=False, force=False)
    try:
        with pytest.raises(UserError, match=f"pid {os.getpid()}"):
            runfolder.open_run(tmp_path / "run", resume=True, force=False)
    finally:
        first.close()
    runfolder.open_run(tmp_path / "run", resume=True, force=False).close()


def test_a_stale_lock_is_taken_over_with_a_message(tmp_path: Path, toy) -> None:
    CASES["lock"] += 1
    recipe, run = toy
    out = copy_run(run, tmp_path / "run")
    (out / runfolder.LOCK_FILE).write_text(json.dumps({"pid": 4242424, "host": "gone-host"}))
    result = invoke("run", recipe, "--out", out, "--resume", "--quiet", "--set", "train.steps=6")
    assert result.exit_code == 0, result.stderr
    assert "took over the lock" in result.stderr
    assert "pid 4242424 on host gone-host" in result.stderr
    assert not (out / runfolder.LOCK_FILE).exists()


def test_a_killed_run_leaves_a_lock_the_next_resume_takes_over(tmp_path: Path, toy) -> None:
    CASES["lock"] += 1
    recipe, _ = toy
    run = tmp_path / "killed"
    proc = start("run", recipe, "--out", run, "--quiet", "--set", "train.steps=1000000",
                 "--set", "train.checkpoint_every=5", "--set", "train.sample_every=0")
    wait_for(lambda: lock_holder(run) == proc.pid
             and (run / "checkpoints" / "last.safetensors").exists(), "a checkpoint")
    proc.kill()
    proc.communicate(timeout=60)
    assert lock_holder(run) == proc.pid  # the file stays; the kernel dropped the lock
    reached = api.load_checkpoint(run).step
    again = ganframe("run", recipe, "--out", run, "--resume", "--quiet",
                     "--max-steps", str(reached + 5),
                     "--set", "train.steps=1000000", "--set", "train.checkpoint_every=5",
                     "--set", "train.sample_every=0")
    assert again.returncode == 0, again.stderr
    assert f"took over the lock of a ganframe process that is gone (pid {proc.pid}" in (
        again.stderr)


# -- 4. a failure before the first checkpoint leaves nothing that blocks the same command -------


class Boom(Callback):
    """Raises ``exc`` at the end of step ``at`` (before any checkpoint in these runs)."""

    def __init__(self, exc: BaseException, at: int = 1) -> None:
        self.exc, self.at = exc, at

    def on_step_end(self, trainer) -> None:
        if trainer.state.step == self.at:
            raise self.exc


@pytest.mark.parametrize("exc", [RuntimeError("a bug"), KeyboardInterrupt(), MemoryError(),
                                 UserError("diverged")],
                         ids=["internal-error", "keyboard-interrupt", "memory", "user-error"])
@pytest.mark.parametrize("existed", [False, True], ids=["new-folder", "users-folder"])
def test_any_exit_before_the_first_checkpoint_cleans_up(
    tmp_path: Path, toy, exc: BaseException, existed: bool
) -> None:
    CASES["early-exit"] += 1
    recipe, _ = toy
    out = tmp_path / "run"
    if existed:
        out.mkdir()
        (out / "notes.txt").write_text("mine")
    resolved = api.load_recipe(recipe, ["train.checkpoint_every=0", "train.sample_every=1"])
    with pytest.raises(type(exc)):
        api.train(resolved, out=out, callbacks=[Boom(exc)])
    assert tree(out) == ({"notes.txt": b"mine"} if existed else {})
    # the same command works again
    api.train(api.load_recipe(recipe, ["train.checkpoint_every=0"]), out=out)
    assert (out / "checkpoints" / "last.safetensors").is_file()


def test_an_exit_after_the_first_checkpoint_keeps_the_run(tmp_path: Path, toy) -> None:
    CASES["early-exit"] += 1
    recipe, _ = toy
    out = tmp_path / "run"
    with pytest.raises(RuntimeError):
        api.train(api.load_recipe(recipe), out=out, callbacks=[Boom(RuntimeError("x"), at=3)])
    assert (out / "checkpoints" / "step-00000002.safetensors").is_file()
    assert runfolder.has_run(out)


SLOW_PLUGIN = """
import os
import time
from pathlib import Path

from ganframe import hookimpl


def build(config, ctx):
    Path(os.environ["GF_STARTED"]).write_text("building")
    time.sleep(300)
    raise RuntimeError("never reached")


def explode(config, ctx):
    raise ZeroDivisionError("a bug in a factory")


@hookimpl
def register_datasets(register):
    register("slow-start", build, summary="blocks while it is built")


@hookimpl
def register_generators(register):
    register("explodes", explode, summary="always fails")
"""


@pytest.fixture(scope="module")
def slow_site(workdir: Path) -> Path:
    site = workdir / "slow-site"
    info = site / "gfc_slow-0.1.0.dist-info"
    info.mkdir(parents=True)
    (info / "METADATA").write_text("Metadata-Version: 2.1\nName: gfc-slow\nVersion: 0.1.0\n")
    (info / "entry_points.txt").write_text("[ganframe]\ngfcslow = gfc_slow_plugin\n")
    (site / "gfc_slow_plugin.py").write_text(textwrap.dedent(SLOW_PLUGIN))
    return site


def slow_env(site: Path, marker: Path) -> dict[str, str]:
    path = os.pathsep.join(filter(None, [str(site), os.environ.get("PYTHONPATH")]))
    return {"PYTHONPATH": path, "GF_STARTED": str(marker)}


@pytest.mark.parametrize("signum", [signal.SIGTERM, signal.SIGHUP], ids=["SIGTERM", "SIGHUP"])
def test_a_signal_during_start_up_cleans_up(tmp_path: Path, slow_site: Path, signum) -> None:
    CASES["early-exit"] += 1
    recipe = tmp_path / "slow.toml"
    recipe.write_text(TOY.replace('type = "gaussian-ring"\nsize = 128', 'type = "slow-start"'))
    out, marker = tmp_path / "run", tmp_path / "started"
    proc = start("run", recipe, "--out", out, "--quiet", **slow_env(slow_site, marker))
    wait_for(marker.exists, "the dataset factory")
    assert (out / runfolder.LOCK_FILE).exists()
    proc.send_signal(signum)
    _, stderr = proc.communicate(timeout=120)
    assert proc.returncode == 128 + signum, stderr
    assert "Traceback" not in stderr
    assert not out.exists()


def test_sigkill_during_start_up_does_not_block_the_next_run(
    tmp_path: Path, slow_site: Path, toy
) -> None:
    """SIGKILL leaves what it leaves (nothing can clean up); the next run into the folder
    still starts: no checkpoint means no run, and the lock is stale."""
    CASES["early-exit"] += 1
    recipe, _ = toy
    slow = tmp_path / "slow.toml"
    slow.write_text(TOY.replace('type = "gaussian-ring"\nsize = 128', 'type = "slow-start"'))
    out, marker = tmp_path / "run", tmp_path / "started"
    proc = start("run", slow, "--out", out, "--quiet", **slow_env(slow_site, marker))
    wait_for(marker.exists, "the dataset factory")
    proc.kill()
    proc.communicate(timeout=60)
    assert (out / runfolder.LOCK_FILE).exists() and not runfolder.has_run(out)
    result = invoke("run", recipe, "--out", out, "--quiet")
    assert result.exit_code == 0, result.stderr
    assert "took over the lock" in result.stderr


def test_a_plugin_bug_while_building_cleans_up(tmp_path: Path, slow_site: Path) -> None:
    CASES["early-exit"] += 1
    recipe = tmp_path / "bug.toml"
    recipe.write_text(TOY.replace('type = "mlp"\nhidden = 8\nlayers = 1\nlatent_dim = 2',
                                  'type = "explodes"'))
    out = tmp_path / "run"
    proc = ganframe("run", recipe, "--out", out, "--quiet",
                    **slow_env(slow_site, tmp_path / "unused"))
    assert proc.returncode in (1, 2), proc.stderr
    assert "a bug in a factory" in proc.stderr
    assert not out.exists()


def test_files_of_an_earlier_attempt_without_checkpoint_are_cleared(tmp_path: Path, toy) -> None:
    """What a killed attempt left (its manifest lists it, no checkpoint) does not count as
    a run; the next run clears it and says so."""
    CASES["early-exit"] += 1
    recipe, _ = toy
    out = tmp_path / "run"
    (out / "samples").mkdir(parents=True)
    (out / "recipe.toml").write_text("old")
    (out / "metrics.jsonl").write_text('{"step": 1}\n')
    (out / "samples" / "step-00000001.png").write_bytes(b"old")
    (out / "mine.txt").write_text("mine")
    manifest = runfolder.Manifest(out)
    for rel in ("recipe.toml", "metrics.jsonl", "samples/step-00000001.png"):
        manifest.add(out / rel)
    assert not runfolder.has_run(out)
    result = invoke("run", recipe, "--out", out, "--quiet")
    assert result.exit_code == 0, result.stderr
    assert "removed what an earlier run left" in result.stderr
    assert not (out / "samples" / "step-00000001.png").exists()
    assert (out / "mine.txt").read_text() == "mine"


# -- 5. a checkpoint does not choose which files ganframe reads -------------------------------


@pytest.fixture(scope="module")
def poet_run(workdir: Path) -> Path:
    pytest.importorskip("ganframe_poet")
    write_poems(workdir / "poems.txt")
    recipe = workdir / "poet.toml"
    recipe.write_text(TINY_POET, encoding="utf-8")
    run = workdir / "poet-run"
    result = invoke("run", recipe, "--out", run, "--quiet")
    assert result.exit_code == 0, result.stderr
    return run


def recorded_path(ckpt: Path, path: str) -> None:
    with_meta(ckpt, ckpt, lambda m: m["recipe"]["data"].update(path=path))


def test_eval_of_your_own_run_reads_its_recorded_data(poet_run: Path) -> None:
    CASES["eval-paths"] += 1
    assert runfolder.is_own_run(poet_run / "checkpoints" / "last.safetensors")
    result = invoke("eval", poet_run, "--json")
    assert result.exit_code == 0, result.stderr
    assert "bleu3" in json.loads(result.stdout)["bleu"]


@pytest.mark.parametrize("where", ["/dev/zero", "fifo", "secret"])
def test_eval_of_a_received_checkpoint_never_opens_its_recorded_path(
    tmp_path: Path, poet_run: Path, where: str
) -> None:
    """A copied run folder (or a checkpoint alone) is not the user's run: the path its
    recipe records is not opened (no hang on a FIFO, no /dev/zero, no probing of a file);
    the user gives the data path."""
    CASES["eval-paths"] += 1
    received = copy_run(poet_run, tmp_path / "received")
    target = {"fifo": tmp_path / "fifo", "secret": tmp_path / "secret.txt"}.get(where, where)
    if where == "fifo":
        os.mkfifo(target)
    if where == "secret":
        write_poems(Path(target), 40)
    for ckpt in (received / "checkpoints").glob("*.safetensors"):
        recorded_path(ckpt, str(target))
    text = user_error(invoke("eval", received), "data.path")
    assert "not in a run folder made here" in text and "GANFRAME_DATA" in text
    assert str(target) not in text
    # the user's own data path
    poems = write_poems(tmp_path / "my-poems.txt")
    result = invoke("eval", received, "--json", "--set", f"data.path={json.dumps(str(poems))}")
    assert result.exit_code == 0, result.stderr
    # a checkpoint on its own (outside any run folder) is a received one too
    alone = shutil.copy(received / "checkpoints" / "last.safetensors", tmp_path / "alone.st")
    user_error(invoke("eval", alone), "data.path")


def test_a_data_path_given_for_eval_must_be_a_regular_file(tmp_path: Path,
                                                           poet_run: Path) -> None:
    CASES["eval-paths"] += 1
    fifo = tmp_path / "fifo"
    os.mkfifo(fifo)
    user_error(invoke("eval", poet_run, "--set", f"data.path={json.dumps(str(fifo))}"),
               str(fifo), "FIFO")


def test_your_own_runs_recorded_fifo_is_refused_not_read(tmp_path: Path, poet_run: Path) -> None:
    CASES["eval-paths"] += 1
    own = tmp_path / "own"
    api.train(api.load_recipe(poet_run.parent / "poet.toml"), out=own)
    fifo = tmp_path / "fifo"
    os.mkfifo(fifo)
    for ckpt in (own / "checkpoints").glob("*.safetensors"):
        recorded_path(ckpt, str(fifo))
    user_error(invoke("eval", own), str(fifo), "FIFO")


# -- 6. data paths that are not regular files --------------------------------------------------

MNIST_NAMES = ["train-images-idx3-ubyte", "train-labels-idx1-ubyte", "t10k-images-idx3-ubyte",
               "t10k-labels-idx1-ubyte"]


def idx_bytes(array: np.ndarray, magic: int) -> bytes:
    a = np.ascontiguousarray(array, dtype=np.uint8)
    return struct.pack(f">i{a.ndim}i", magic, *a.shape) + a.tobytes()


def good_mnist(folder: Path, n: int = 8) -> Path:
    folder.mkdir(parents=True, exist_ok=True)
    for name in MNIST_NAMES:
        images = "images" in name
        data = np.zeros((n, 28, 28)) if images else np.arange(n) % 10
        (folder / name).write_bytes(idx_bytes(data, 2051 if images else 2049))
    return folder


def not_a_file(path: Path, kind: str) -> None:
    path.unlink(missing_ok=True)
    if kind == "fifo":
        os.mkfifo(path)
    elif kind == "dev-zero":
        path.symlink_to("/dev/zero")
    else:
        path.mkdir()


@pytest.mark.parametrize("kind", ["fifo", "dev-zero", "folder"])
@pytest.mark.parametrize("name", MNIST_NAMES)
def test_an_mnist_file_that_is_not_a_regular_file_is_refused(
    tmp_path: Path, name: str, kind: str
) -> None:
    CASES["data-files"] += 1
    mnist = pytest.importorskip("ganframe_dcgan.mnist")
    root = good_mnist(tmp_path / "mnist")
    not_a_file(root / name, kind)
    split = "train" if name.startswith("train") else "test"
    expected = {"fifo": "FIFO", "dev-zero": "device", "folder": "not found"}[kind]
    with pytest.raises(UserError, match=expected):
        mnist.load_split(split, root, download_missing=False, data_root=None)


@pytest.mark.parametrize("kind", ["fifo", "dev-zero", "folder"])
@pytest.mark.parametrize("key", ["path", "test_path"])
def test_a_poem_file_that_is_not_a_regular_file_is_refused(
    tmp_path: Path, key: str, kind: str
) -> None:
    CASES["data-files"] += 1
    pytest.importorskip("ganframe_poet")
    from ganframe_poet.configs import PoemsConfig
    from ganframe_poet.data import build_poems

    good = write_poems(tmp_path / "good.txt")
    bad = tmp_path / "bad.txt"
    bad.write_text("x")
    not_a_file(bad, kind)
    options = {"path": str(good), key: str(bad), "split": "test" if key == "test_path" else "train"}
    expected = {"fifo": "FIFO", "dev-zero": "device", "folder": "cannot read"}[kind]
    with pytest.raises(UserError, match=expected):
        build_poems(PoemsConfig(**options), None)


def test_a_fifo_data_path_fails_the_run_without_hanging(tmp_path: Path) -> None:
    CASES["data-files"] += 1
    pytest.importorskip("ganframe_poet")
    fifo = tmp_path / "poems.txt"
    os.mkfifo(fifo)
    proc = ganframe("run", "lstm-poet", "--out", tmp_path / "out", "--quiet",
                    "--set", 'device="cpu"', "--set", f"data.path={json.dumps(str(fifo))}",
                    "--set", "metrics=[]", timeout=120)
    assert proc.returncode == 2, proc.stderr
    assert "FIFO" in proc.stderr and str(fifo) in proc.stderr
    assert not (tmp_path / "out").exists()


# -- 7. decompression bombs: the IDX header bounds what is decompressed ------------------------


def gzip_stream(head: bytes, zeros: int) -> bytes:
    """A gzip file of ``head`` then ``zeros`` zero bytes, compressed in chunks."""
    z = zlib.compressobj(9, zlib.DEFLATED, 31)
    parts = [z.compress(head)]
    chunk = bytes(1 << 20)
    for _ in range(zeros >> 20):
        parts.append(z.compress(chunk))
    parts.append(z.compress(bytes(zeros & ((1 << 20) - 1))))
    parts.append(z.flush())
    return b"".join(parts)


def header(name: str, count: int) -> bytes:
    if "images" in name:
        return struct.pack(">iiii", 2051, count, 28, 28)
    return struct.pack(">ii", 2049, count)


def bombs(folder: Path) -> dict[str, tuple[Path, str]]:
    """Per MNIST file: one that expands far past its declared size, one that declares a size
    no real file expands to, one that declares more items than any MNIST file has."""
    folder.mkdir(parents=True, exist_ok=True)
    made = {}
    for name in MNIST_NAMES:
        images = "images" in name
        for kind, count, zeros, needle in [
            ("expands", 16, 200 << 20, "extra bytes"),
            # a million labels are 1 MB, which any gzip file may expand to: it is short
            ("declares", 1_000_000, 1000, "no real MNIST file" if images else "truncated"),
            ("too-many", 50_000_000, 1000, "corrupt"),
        ]:
            path = folder / kind / f"{name}.gz"
            path.parent.mkdir(exist_ok=True)
            path.write_bytes(gzip_stream(header(name, count), zeros))
            made[f"{name}-{kind}"] = (path, needle)
    return made


def test_gzip_bombs_are_refused_within_the_declared_size(tmp_path: Path) -> None:
    """Each bomb is refused; reading all twelve in a fresh process raises its peak memory
    by far less than one bomb's 200 MB (the declared sizes bound what is decompressed)."""
    pytest.importorskip("ganframe_dcgan")
    made = bombs(tmp_path / "bombs")
    assert all(p.stat().st_size < 1_000_000 for p, _ in made.values())
    script = textwrap.dedent(f"""
        import json, resource
        from ganframe.errors import UserError
        from ganframe_dcgan import idx
        made = json.loads({json.dumps(json.dumps({k: [str(p), n] for k, (p, n) in made.items()}))})
        idx.read_labels  # imported before measuring
        start = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
        out = {{}}
        for key, (path, needle) in made.items():
            read = idx.read_images if "images" in key else idx.read_labels
            try:
                read(__import__("pathlib").Path(path))
                out[key] = "read"
            except UserError as exc:
                out[key] = needle in str(exc) and path in str(exc)
        out["peak_growth_kb"] = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss - start
        print(json.dumps(out))
    """)
    proc = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True,
                          env=env(), timeout=300)
    assert proc.returncode == 0, proc.stderr
    out = json.loads(proc.stdout)
    CASES["gzip-bombs"] += len(made)
    assert {k: v for k, v in out.items() if k != "peak_growth_kb"} == {k: True for k in made}
    assert out["peak_growth_kb"] < 64 * 1024, out["peak_growth_kb"]


def test_a_good_gzipped_mnist_file_still_reads(tmp_path: Path) -> None:
    CASES["gzip-bombs"] += 1
    idx = pytest.importorskip("ganframe_dcgan.idx")
    data = np.arange(5 * 784).reshape(5, 28, 28) % 251
    path = tmp_path / "train-images-idx3-ubyte.gz"
    path.write_bytes(gzip.compress(idx_bytes(data, 2051)))
    assert np.array_equal(idx.read_images(path)[:, 0].numpy(), data)


# -- 8. checkpoints whose metadata lies about the network -------------------------------------

VOCAB = ["<pad>", "<unk>", "<s>", "</s>", *CHARS[:10]]
POET_INFO = {"vocab": VOCAB, "max_len": 24, "seq_len": 25, "pad": 0, "unk": 1, "start": 2,
             "end": 3, "mode": "quatrain5", "template": None, "punctuation": "，。"}
IMAGE_INFO = {"shape": [1, 28, 28], "channels": 1, "height": 28, "width": 28,
              "value_range": [-1.0, 1.0], "num_classes": 10}
LIARS = [
    ("mlp", {"hidden": 65536, "layers": 3}, {"dim": 2}, "points"),
    ("mlp", {"latent_dim": 2**40}, {"dim": 2}, "points"),
    ("mlp", {"layers": 10**7}, {"dim": 2}, "points"),
    ("mlp", {"hidden": 64}, {"dim": 2**33}, "points"),
    ("mlp", {"conditional": True}, {"dim": 2, "num_classes": 2**40}, "points"),
    ("dcgan", {"base_width": 65536}, IMAGE_INFO, "image"),
    ("dcgan", {"latent_dim": 2**30}, IMAGE_INFO, "image"),
    ("dcgan", {}, {**IMAGE_INFO, "num_classes": 2**40}, "image"),
    ("lstm", {"hidden_dim": 65536}, POET_INFO, "text"),
    ("lstm", {"num_layers": 10**6}, POET_INFO, "text"),
    ("lstm", {"embedding_dim": 2**30}, POET_INFO, "text"),
    ("lstm", {"hidden_dim": 4096}, {**POET_INFO, "vocab": VOCAB * 5_000}, "text"),
]


def liar(path: Path, gtype: str, config: dict, info: dict, kind: str) -> Path:
    """A tiny checkpoint (a few hundred bytes of tensors) that declares ``config``."""
    meta = {"format": 1, "ganframe": "0.1.0", "recipe": {}, "data_kind": kind,
            "data_info": info, "plugins": {}, "generator": {"type": gtype, "config": config}}
    tensors = {"generator.net.0.weight": torch.zeros(8, 8), "generator.net.0.bias": torch.zeros(8)}
    safetensors.torch.save_file(tensors, str(path), metadata={"ganframe": json.dumps(meta)})
    return path


def test_checkpoints_that_declare_huge_networks_allocate_nothing(tmp_path: Path) -> None:
    """``sample`` on each lying checkpoint exits 2 naming the file, and the process's peak
    memory grows by far less than any of the declared networks (from 16 GB to terabytes)."""
    pytest.importorskip("ganframe_dcgan")
    pytest.importorskip("ganframe_poet")
    files = [str(liar(tmp_path / f"liar{i}.safetensors", *case)) for i, case in enumerate(LIARS)]
    assert all(Path(f).stat().st_size < 2_000_000 for f in files)
    script = textwrap.dedent(f"""
        import json, resource, sys
        from typer.testing import CliRunner
        from ganframe.cli import app
        import ganframe_dcgan.models, ganframe_poet.generator  # imported before measuring
        runner = CliRunner()
        runner.invoke(app, ["sample", {files[0]!r}, "-n", "2", "-o", "warm.npy"])
        start = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
        out = []
        for path in {files!r}:
            r = runner.invoke(app, ["sample", path, "-n", "2", "-o", path + ".npy"])
            out.append([r.exit_code, path in r.stderr, "Traceback" in r.stderr, r.stderr[-300:]])
        print(json.dumps({{"cases": out, "growth_kb": resource.getrusage(
            resource.RUSAGE_SELF).ru_maxrss - start}}))
    """)
    proc = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True,
                          env=env(), timeout=300, cwd=tmp_path)
    assert proc.returncode == 0, proc.stderr
    out = json.loads(proc.stdout.strip().splitlines()[-1])
    CASES["hostile-checkpoints"] += len(LIARS)
    for case, (code, named, traceback, text) in zip(LIARS, out["cases"], strict=True):
        assert (code, named, traceback) == (2, True, False), (case, text)
    assert out["growth_kb"] < 256 * 1024, out["growth_kb"]


def test_a_checkpoint_that_fits_its_description_still_loads(toy) -> None:
    CASES["hostile-checkpoints"] += 1
    _, run = toy
    ckpt = api.load_checkpoint(run)
    assert api.sample(ckpt, 3).shape == (3, 2)


def test_a_declared_width_that_does_not_match_the_tensors_names_them(tmp_path: Path, toy) -> None:
    CASES["hostile-checkpoints"] += 1
    _, run = toy
    bad = with_meta(run / "checkpoints" / "last.safetensors", tmp_path / "w.safetensors",
                    lambda m: m["generator"]["config"].update(hidden=12))
    user_error(invoke("sample", bad, "-n", "2", "-o", tmp_path / "x.npy"), "shape", "(12,")


# -- 9. text from recipes and checkpoints is shown, never interpreted ---------------------------


def test_printable_escapes_control_characters() -> None:
    CASES["terminal"] += 1
    assert printable("a\x1b[2Jb\x00c\x07\x9b\u202e\tok\n") == (
        "a\\x1b[2Jb\\x00c\\x07\\x9b\\u202e\tok\n")
    assert printable("[/x] 春风") == "[/x] 春风"


@pytest.mark.parametrize("phase", ["[/x]", "[bold]", "\x1b[31mred", "{task.fields[rate]}",
                                   "[/]\x1b]0;title\x07"])
def test_recipe_names_in_validate_and_run_are_printed_as_text(tmp_path: Path, phase: str) -> None:
    CASES["terminal"] += 1
    text = TOY.replace('name = "toy"', 'name = "[red]x[bold]"').replace(
        "[train]", "[[phases]]\nname = " + json.dumps(phase)
        + '\nsteps = 2\nloss = { type = "non-saturating" }\n\n[train]').replace("steps = 4\n", "")
    path = tmp_path / "markup.toml"
    path.write_text(text, encoding="utf-8")
    checked = invoke("validate", path)
    assert checked.exit_code == 0, checked.stderr
    assert f"ok ([red]x[bold]: 1 phase(s): {printable(phase)})" in checked.stdout
    ran = invoke("run", path, "--out", tmp_path / "run", "--quiet")
    assert ran.exit_code == 0, (ran.stderr, ran.exception)
    assert f"phase 1/1 '{printable(phase)}'" in ran.stderr
    assert f"step 2/2 (100%) [{printable(phase)}]" in ran.stderr
    assert "\x1b" not in ran.stderr + ran.stdout + checked.stdout


def test_quiet_lines_keep_the_phase_in_brackets(tmp_path: Path, toy) -> None:
    CASES["terminal"] += 1
    recipe, _ = toy
    result = invoke("run", recipe, "--out", tmp_path / "run", "--quiet")
    assert result.exit_code == 0, result.stderr
    assert "step 2/4 (50%) [train] " in result.stderr


def test_the_live_display_survives_markup_names(tmp_path: Path) -> None:
    CASES["terminal"] += 1
    from rich.console import Console

    from ganframe.progress import RichProgress

    with open(tmp_path / "screen.txt", "w", encoding="utf-8") as screen:
        console = Console(file=screen, force_terminal=True, width=200)
        display = RichProgress(console)
        display.phase("[/x] {task.fields[nope]} \x1b[2J", 0, 2, 0)
        display.row({"step": 1, "phase": "[/x]", "event": "train", "loss[/y]": 0.5})
        display.step_done(1, 1)
        display.print("[/z] message \x1b[2J")
        display.close()
    shown = (tmp_path / "screen.txt").read_text(encoding="utf-8")
    assert "[/x] {task.fields[nope]} \\x1b[2J" in shown
    assert "[/z] message \\x1b[2J" in shown and "\x1b[2J" not in shown


def test_paths_and_errors_are_printed_escaped(tmp_path: Path, toy) -> None:
    CASES["terminal"] += 2
    _, run = toy
    out = tmp_path / "s\x1b[2J[/x].npy"
    result = invoke("sample", run, "-n", "2", "-o", out)
    assert result.exit_code == 0, result.stderr
    assert "\\x1b[2J[/x].npy" in result.stdout and "\x1b" not in result.stdout
    missing = tmp_path / "no\x1b]0;pwned\x07.toml"
    failed = invoke("validate", missing)
    assert failed.exit_code == 2 and "\x1b" not in failed.stderr and "\\x1b" in failed.stderr


MARKUP_PLUGIN = """
from pathlib import Path

from ganframe import hookimpl

RECIPE = Path(__file__).with_name("gfc_markup_recipe.toml")


@hookimpl
def register_recipes(register):
    register("[/r]ecipe", RECIPE, summary="[/summary] \\x1b[2J cleared?")
"""

BROKEN_PLUGIN = "raise RuntimeError('[/broken] \\x1b[31m red')\n"


def test_list_output_shows_plugin_text_as_it_is(tmp_path: Path) -> None:
    CASES["terminal"] += 2
    site = tmp_path / "site"
    for name, source in (("markup", MARKUP_PLUGIN), ("broken", BROKEN_PLUGIN)):
        info = site / f"gfc_{name}-0.1.0.dist-info"
        info.mkdir(parents=True)
        (info / "METADATA").write_text(
            f"Metadata-Version: 2.1\nName: gfc-{name}\nVersion: 0.1.0\n")
        (info / "entry_points.txt").write_text(f"[ganframe]\ngfc{name} = gfc_{name}_plugin\n")
        (site / f"gfc_{name}_plugin.py").write_text(textwrap.dedent(source))
    (site / "gfc_markup_recipe.toml").write_text(TOY)
    path = os.pathsep.join(filter(None, [str(site), os.environ.get("PYTHONPATH")]))
    listed = ganframe("recipes", PYTHONPATH=path, COLUMNS="300")
    assert listed.returncode == 0, listed.stderr
    assert "[/r]ecipe" in listed.stdout and "[/summary] \\x1b[2J" in listed.stdout
    plugins = ganframe("list-plugins", PYTHONPATH=path, COLUMNS="400")
    assert plugins.returncode == 0, plugins.stderr
    assert "[/broken]" in plugins.stdout + plugins.stderr
    assert "\x1b" not in plugins.stdout + listed.stdout
