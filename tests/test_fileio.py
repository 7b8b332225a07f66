"""The one atomic write: regular file modes, the old file kept on failure, durable renames.

Every file a run writes goes through :func:`ganframe.fileio.atomic_write` (or, for
``metrics.jsonl`` rows, a plain append); these tests check the guarantees where users see
them: the files of a real tiny run, a sample PNG and a checkpoint.
"""

from __future__ import annotations

import os
import stat
from collections.abc import Iterator
from pathlib import Path

import pytest
import torch

from ganframe import api, fileio, runfolder
from ganframe.builtin import writers
from ganframe.checkpoint import CheckpointDir, read_checkpoint, save_checkpoint
from ganframe.plugins import load_plugins
from ganframe.recipe import load_recipe

TINY = """
name = "fileio"
seed = 3
device = "cpu"
[data]
type = "gaussian-ring"
size = 256
[generator]
type = "mlp"
hidden = 8
layers = 2
latent_dim = 2
[critic]
type = "mlp"
hidden = 8
layers = 2
[train]
steps = 6
batch_size = 32
log_every = 1
checkpoint_every = 2
sample_every = 2
"""


@pytest.fixture
def umask_022() -> Iterator[None]:
    """The usual umask, whatever the test machine has, so 0o644 is the expected mode."""
    old = os.umask(0o022)
    try:
        yield
    finally:
        os.umask(old)


def mode(path: Path) -> int:
    return stat.S_IMODE(path.stat().st_mode)


def temp_files(folder: Path) -> list[str]:
    return sorted(p.name for p in folder.iterdir() if fileio.is_temp_name(p.name))


# -- file modes ------------------------------------------------------------------------------


@pytest.mark.parametrize("content", [b"bytes", lambda f: f.write(b"callable")], ids=["bytes", "fn"])
def test_written_files_get_the_users_umask_not_0600(
    tmp_path: Path, umask_022: None, content
) -> None:
    path = fileio.atomic_write(tmp_path / "f.bin", content)
    assert mode(path) == 0o644
    assert path.read_bytes() in (b"bytes", b"callable")
    assert temp_files(tmp_path) == []


def test_every_file_of_a_real_run_has_regular_modes(tmp_path: Path, umask_022: None) -> None:
    # The run folder used mkstemp, so recipe.toml and a rewritten metrics.jsonl were 0600.
    source = tmp_path / "r.toml"
    source.write_text(TINY, encoding="utf-8")
    registry = load_plugins(autoload=False).registry
    out = tmp_path / "run"
    api.train(load_recipe(source, registry, []), out=out, max_steps=4)
    # resuming rewrites recipe.toml and cuts metrics.jsonl back to the checkpoint's step
    api.train(load_recipe(source, registry, []), out=out, max_steps=6, resume=True)
    files = [p for p in out.rglob("*") if p.is_file()]
    names = {p.relative_to(out).as_posix() for p in files}
    assert {runfolder.RECIPE_FILE, runfolder.METRICS_FILE} <= names
    assert any(n.startswith(f"{runfolder.CHECKPOINTS}/") for n in names), names
    assert any(n.startswith(f"{runfolder.SAMPLES}/") for n in names), names
    assert {p.relative_to(out).as_posix(): oct(mode(p)) for p in files} == {
        n: oct(0o644) for n in names
    }
    assert not [p for p in files if fileio.is_temp_name(p.name)]


def test_sample_png_has_regular_mode(tmp_path: Path, umask_022: None) -> None:
    path = tmp_path / "deep" / "samples" / "s.png"  # the writer creates missing folders
    writers.write_image_png(torch.zeros(4, 1, 3, 3), path, {})
    assert mode(path) == 0o644


def test_checkpoint_and_its_last_copy_have_regular_modes(tmp_path: Path, umask_022: None) -> None:
    net = torch.nn.Linear(2, 2)
    single = save_checkpoint(tmp_path / "c.safetensors", modules={"g": net}, optimizers={}, meta={})
    assert mode(single) == 0o644
    folder = CheckpointDir(tmp_path / "checkpoints")
    step = folder.save(5, modules={"g": net}, optimizers={}, meta={})
    assert mode(step) == 0o644 and mode(folder.last_path) == 0o644
    assert read_checkpoint(folder.last_path).meta is not None


# -- failures --------------------------------------------------------------------------------


def _boom(*args, **kwargs):
    raise OSError(28, "No space left on device")


@pytest.mark.parametrize("where", ["write", "fsync", "replace"])
def test_a_failed_write_keeps_the_old_file_and_leaves_no_temp(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, where: str
) -> None:
    path = tmp_path / "recipe.toml"
    fileio.atomic_write(path, b"old")

    def write(f) -> None:
        f.write(b"half of the new")
        if where == "write":
            _boom()

    if where != "write":
        monkeypatch.setattr(os, where, _boom)
    with pytest.raises(OSError) as caught:
        fileio.atomic_write(path, write)
    monkeypatch.undo()
    # the error names the file the user knows, not the temporary one
    assert caught.value.filename == str(path)
    assert "No space left" in str(caught.value)
    assert path.read_bytes() == b"old"
    assert temp_files(tmp_path) == []


def test_any_exception_from_the_writer_removes_the_temp_and_propagates(tmp_path: Path) -> None:
    path = tmp_path / "s.png"
    path.write_bytes(b"old")

    def write(f) -> None:
        f.write(b"partial")
        raise KeyError("not an OSError")

    with pytest.raises(KeyError):
        fileio.atomic_write(path, write)
    assert path.read_bytes() == b"old"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["s.png"]


def test_missing_folder_is_an_error_unless_parents_are_asked_for(tmp_path: Path) -> None:
    path = tmp_path / "a" / "b" / "f.txt"
    with pytest.raises(FileNotFoundError) as caught:
        fileio.atomic_write(path, b"x")
    assert caught.value.filename == str(path)
    fileio.atomic_write(path, b"x", parents=True)
    assert path.read_bytes() == b"x"


def test_text_is_refused_with_a_clear_type_error(tmp_path: Path) -> None:
    with pytest.raises(TypeError, match="bytes or a function"):
        fileio.atomic_write(tmp_path / "f.txt", "text")  # type: ignore[arg-type]
    assert list(tmp_path.iterdir()) == []


# -- durability and naming --------------------------------------------------------------------


def test_file_then_folder_are_fsynced_around_the_rename(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    events: list[str] = []
    real_fsync, real_replace = os.fsync, os.replace
    folder_inode = tmp_path.stat().st_ino

    def fsync(fd: int) -> None:
        st = os.fstat(fd)
        is_folder = stat.S_ISDIR(st.st_mode) and st.st_ino == folder_inode
        events.append("fsync folder" if is_folder else "fsync file")
        real_fsync(fd)

    def replace(src, dst) -> None:
        events.append("replace")
        real_replace(src, dst)

    monkeypatch.setattr(os, "fsync", fsync)
    monkeypatch.setattr(os, "replace", replace)
    fileio.atomic_write(tmp_path / "f.bin", b"data")
    if os.name == "nt":  # folders cannot be fsynced there
        assert events == ["fsync file", "replace"]
    else:
        assert events == ["fsync file", "replace", "fsync folder"]


def test_temp_files_are_hidden_siblings_that_stale_temp_cleanup_finds(tmp_path: Path) -> None:
    seen: list[str] = []

    def write(f) -> None:
        seen.extend(p.name for p in tmp_path.iterdir())
        f.write(b"x")

    fileio.atomic_write(tmp_path / "last.safetensors", write)
    assert len(seen) == 1
    (name,) = seen
    assert name.startswith(".last.safetensors.") and name.endswith(".tmp")
    assert fileio.is_temp_name(name) and tmp_path.glob(fileio.TEMP_GLOB)
    # a crash's leftover of that name is what CheckpointDir cleans up before a resume
    (tmp_path / name).write_bytes(b"left by a crash")
    assert CheckpointDir(tmp_path).remove_stale_temps() == 1
    assert sorted(p.name for p in tmp_path.iterdir()) == ["last.safetensors"]
