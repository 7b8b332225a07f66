"""Hostile values, class by class: every one ends in exit status 2 with a message naming the
file and the key (or the file), never a traceback, a C++ message, exit 1 or a hang; and
``ganframe validate`` refuses what ``ganframe run`` would refuse.

Classes: numbers out of range in recipes (non-finite floats, huge counts, seeds and sizes),
deep nesting in recipes and ``--set``/``--option`` values, recipe strings too large for a
checkpoint, damaged checkpoint metadata (types, RNG states, stream cursor, callback state),
checkpoint integrity (a byte appended, a flipped bit), run folders whose own names are the
wrong kind of file, permission errors reported as read or write, a full disk while writing
samples, temporary files of killed sample writes, and ``sample -n``/``--seed`` bounds.
"""

from __future__ import annotations

import errno
import json
import os
import shutil
import subprocess
import sys
import time
from collections import Counter
from collections.abc import Iterator
from pathlib import Path

import pytest
import safetensors
import safetensors.torch
import torch
from ckpt_meta import read_meta, rewrite_meta
from typer.testing import CliRunner

from ganframe.checkpoint import CheckpointDir, read_checkpoint
from ganframe.cli import app
from ganframe.errors import UserError

TOY = """\
name = "toy"
seed = 0
device = "cpu"
deterministic = true

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

[loss]
type = "hinge"

[optim.generator]
type = "adam"
lr = 1e-3

[train]
batch_size = 32
steps = 4
log_every = 4
checkpoint_every = 2
keep_last = 0
sample_every = 0
sample_count = 16
"""

TRIED: Counter[str] = Counter()  # cases per class, for the summary printed at the end


@pytest.fixture(scope="module", autouse=True)
def summary() -> Iterator[None]:
    yield
    total = sum(TRIED.values())
    print(f"\nhostile values tried: {total} ("
          + ", ".join(f"{k} {v}" for k, v in sorted(TRIED.items())) + ")")


@pytest.fixture(scope="module")
def good(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, Path]:
    folder = tmp_path_factory.mktemp("hostile")
    recipe = folder / "toy.toml"
    recipe.write_text(TOY, encoding="utf-8")
    run = folder / "good"
    result = invoke(["run", recipe, "--out", run, "--quiet"])
    assert result.exit_code == 0, result.stderr
    return recipe, run


def invoke(args: list[str | Path]):
    return CliRunner().invoke(app, [str(a) for a in args])


def assert_exit_2(result, *needles: str) -> str:
    text = result.stderr
    assert result.exit_code == 2, (result.exit_code, result.stdout, text, result.exception)
    assert "Traceback" not in text + result.stdout and "internal error" not in text, text
    for needle in needles:
        assert needle in text, (needle, text)
    return text


def copy_run(good: tuple[Path, Path], tmp_path: Path) -> Path:
    dst = tmp_path / "run"
    shutil.copytree(good[1], dst)
    return dst


# -- 1. numbers out of range: validate and run refuse them alike -----------------------------

# (id, --set item, the key the message must name)
OUT_OF_RANGE = [
    ("lr-inf", "optim.generator.lr=inf", "optim.generator.lr"),
    ("lr-nan", "optim.generator.lr=nan", "optim.generator.lr"),
    ("critic-lr-minus-inf", "optim.critic.lr=-inf", "optim.critic.lr"),
    ("betas-inf", "optim.generator.betas=[0.5, inf]", "optim.generator.betas"),
    ("epochs-inf", "train.epochs=inf", "train.epochs"),
    ("epochs-1e300", "train.epochs=1e300", "train.epochs"),
    ("steps-2**62", "train.steps=4611686018427387904", "train.steps"),
    ("grad-clip-inf", "train.grad_clip=inf", "train.grad_clip"),
    ("ema-nan", "train.ema=nan", "train.ema"),
    ("n-critic-2**62", "train.n_critic=4611686018427387904", "train.n_critic"),
    ("sample-count-2**62", "train.sample_count=4611686018427387904", "train.sample_count"),
    ("seed-2**70", "seed=1180591620717411303424", "seed"),
    ("seed-2**63", "seed=9223372036854775807", "seed"),
    ("seed-negative", "seed=-1", "seed"),
    ("data-size-2**70", "data.size=1180591620717411303424", "data.size"),
    ("data-modes-2**62", "data.modes=4611686018427387904", "data.modes"),
    ("data-radius-inf", "data.radius=inf", "data.radius"),
    ("data-std-nan", "data.std=nan", "data.std"),
    ("data-seed-2**64", "data.seed=18446744073709551616", "data.seed"),
    ("hidden-2**62", "generator.hidden=4611686018427387904", "generator.hidden"),
    ("layers-2**62", "critic.layers=4611686018427387904", "critic.layers"),
    ("latent-2**62", "generator.latent_dim=4611686018427387904", "generator.latent_dim"),
    ("metric-samples-2**62", 'metrics=[{type="ring-modes", n_samples=4611686018427387904}]',
     "metrics.0.n_samples"),
    ("metric-sigmas-inf", 'metrics=[{type="ring-modes", sigmas=inf}]', "metrics.0.sigmas"),
    ("loss-option-inf", 'loss={type="wgan-gp", gp_lambda=inf}', "loss.gp_lambda"),
    ("schedule-option-nan", 'optim.generator.schedule={type="cosine", min_factor=nan}',
     "optim.generator.schedule"),
]


@pytest.mark.parametrize(("item", "key"), [pytest.param(i, k, id=n) for n, i, k in OUT_OF_RANGE])
def test_validate_and_run_refuse_numbers_out_of_range(good, tmp_path: Path, item: str,
                                                      key: str) -> None:
    recipe, _ = good
    TRIED["numbers out of range"] += 2
    assert_exit_2(invoke(["validate", recipe, "--set", item]), str(recipe), key)
    out = tmp_path / "out"
    assert_exit_2(invoke(["run", recipe, "--set", item, "--out", out, "--quiet"]), key)
    assert not (out / "checkpoints").exists() or not list((out / "checkpoints").iterdir())


def test_phase_learning_rate_inf_is_refused(tmp_path: Path) -> None:
    TRIED["numbers out of range"] += 1
    text = TOY.replace('[loss]\ntype = "hinge"\n', "").replace("steps = 4\n", "")
    text += ('[[phases]]\nname = "a"\nloss = { type = "hinge" }\nsteps = 2\n'
             "lr = { generator = inf }\n")
    path = tmp_path / "p.toml"
    path.write_text(text, encoding="utf-8")
    assert_exit_2(invoke(["validate", path]), "phases.0.lr.generator", "finite")


@pytest.mark.parametrize(("option", "size"), [("hidden", 65536), ("layers", 256)])
def test_networks_too_large_for_memory_are_refused_before_they_are_built(
    good, tmp_path: Path, option: str, size: int
) -> None:
    """Values inside the bounds can still ask for more memory than the machine has: the run
    measures the network on the meta device and refuses it, naming the component and its
    options (nothing is allocated, so this takes no time)."""
    TRIED["sizes beyond memory"] += 1
    recipe, _ = good
    other = "generator.layers=256" if option == "hidden" else "generator.hidden=65536"
    sets = ["--set", f"generator.{option}={size}", "--set", other]
    start = time.monotonic()
    text = assert_exit_2(invoke(["run", recipe, *sets, "--out", tmp_path / "o", "--quiet"]),
                         "generator", "hidden=65536", "layers=256", "GiB")
    assert time.monotonic() - start < 60, text


def test_a_factory_failing_on_sizes_is_a_user_error_naming_its_options(tmp_path: Path) -> None:
    """Sizes no plugin bound catches: the factory's own allocation error becomes a user
    error naming the place, the component and its options."""
    from ganframe import api
    from ganframe.registry import ComponentSpec

    TRIED["sizes beyond memory"] += 1

    def factory(config, ctx):
        return torch.nn.Linear(2, 2**62)  # RuntimeError: storage size calculation overflowed

    registry = api.get_registry()
    registry.add(ComponentSpec("critic", "hostile-wide", factory, None, "test", "0"))
    try:
        path = tmp_path / "r.toml"
        path.write_text(TOY.replace('[critic]\ntype = "mlp"\nhidden = 8\nlayers = 1',
                                    '[critic]\ntype = "hostile-wide"'), encoding="utf-8")
        with pytest.raises(UserError, match=r"critic: critic test:hostile-wide \(\).*cannot "
                                            r"be built with these sizes.*overflow"):
            api.train(api.load_recipe(path, registry=registry), out=tmp_path / "o")
    finally:
        registry.components["critic"] = [
            s for s in registry.components["critic"] if s.name != "hostile-wide"]


# -- 2. deep nesting -------------------------------------------------------------------------


@pytest.mark.parametrize("depth", [40, 500, 5000])
def test_deep_nesting_in_a_recipe_set_and_option_is_a_user_error(good, tmp_path: Path,
                                                                 depth: int) -> None:
    recipe, run = good
    TRIED["deep nesting"] += 4
    deep = "[" * depth + "]" * depth
    path = tmp_path / "deep.toml"
    path.write_text(TOY.replace("[data]", f"x = {deep}\n[data]"), encoding="utf-8")
    assert_exit_2(invoke(["validate", path]), str(path), "nested")
    tables = "x = " + "{a = " * depth + "1" + "}" * depth
    path.write_text(TOY.replace("[data]", f"{tables}\n[data]"), encoding="utf-8")
    assert_exit_2(invoke(["validate", path]), str(path), "nested")
    assert_exit_2(invoke(["validate", recipe, "--set", f"data.modes={deep}"]), "data.modes",
                  "nested")
    out = tmp_path / "s.png"
    assert_exit_2(invoke(["sample", run, "-n", "4", "-o", out, "--option", f"t={deep}"]),
                  "nested")
    assert not out.exists()


# -- 3. strings too large for a checkpoint, NUL bytes -----------------------------------------


def test_description_limit_and_a_recipe_too_large_for_a_checkpoint(tmp_path: Path) -> None:
    TRIED["recipe size"] += 3
    big = tmp_path / "big.toml"
    big.write_text(f'description = "{"x" * (64 * 1024 + 1)}"\n' + TOY, encoding="utf-8")
    assert_exit_2(invoke(["validate", big]), "description", "65536")
    # at the limit it validates, runs and checkpoints
    edge = tmp_path / "edge.toml"
    edge.write_text(f'description = "{"x" * (64 * 1024)}"\n' + TOY, encoding="utf-8")
    assert invoke(["validate", edge]).exit_code == 0
    result = invoke(["run", edge, "--out", tmp_path / "edge", "--quiet"])
    assert result.exit_code == 0, result.stderr
    # many phases: each value is fine, the whole is too large for a checkpoint header
    text = TOY.replace('[loss]\ntype = "hinge"\n', "").replace("steps = 4\n", "")
    text += "".join(f'[[phases]]\nname = "{i:0250d}"\nloss = {{ type = "hinge" }}\nsteps = 1\n'
                    for i in range(4500))
    many = tmp_path / "many.toml"
    many.write_text(text, encoding="utf-8")
    assert_exit_2(invoke(["validate", many]), str(many), "resolved recipe", "bytes")


def test_nul_byte_in_a_name_is_refused(good) -> None:
    recipe, _ = good
    TRIED["recipe size"] += 1
    assert_exit_2(invoke(["validate", recipe, "--set", 'name="a\\u0000b"']), "name")


# -- 4. damaged checkpoint metadata through the commands ---------------------------------------

# (id, change to the metadata document, what the message must name)
DAMAGE = [
    ("run-a-string", lambda m: m.update(run="step 4"), "run"),
    ("run-step-a-string", lambda m: m["run"].update(step="4"), "run.step"),
    ("run-step-huge", lambda m: m["run"].update(step=2**70), "run.step"),
    ("run-step-negative", lambda m: m["run"].update(step=-3), "run.step"),
    ("run-stream-missing", lambda m: m["run"].pop("stream"), "run.stream"),
    ("run-stream-position-past-epoch", lambda m: m["run"]["stream"].update(position=999),
     "run.stream.position"),
    ("run-epoch-2**64", lambda m: m["run"]["stream"].update(epoch=2**64), "run.stream.epoch"),
    ("plugins-a-list", lambda m: m.update(plugins=["builtin"]), "plugins"),
    ("plugins-version-a-number", lambda m: m["plugins"].update(builtin=1), "plugins"),
    ("recipe-metrics-strings", lambda m: m["recipe"].update(metrics=["ring-modes"]),
     "recipe.metrics.0"),
    ("recipe-metrics-type-a-number", lambda m: m["recipe"].update(metrics=[{"type": 5}]),
     "recipe.metrics.0"),
    ("recipe-data-a-string", lambda m: m["recipe"].update(data="gaussian-ring"), "recipe.data"),
    ("optimizers-a-list", lambda m: m.update(optimizers=[]), "optimizers"),
    ("optimizer-shapes-strings", lambda m: m["optimizers"]["generator"]["param_groups"][0]
     .update(shapes="2x2"), "optimizers.generator.param_groups.0.shapes"),
    ("optimizer-state-index-out-of-range", lambda m: m["optimizers"]["generator"]["state"]
     .update({"99": m["optimizers"]["generator"]["state"].pop("0")}), "state '99'"),
    ("optimizer-state-entry-dropped", lambda m: m["optimizers"]["generator"]["state"].pop("0"),
     "not described by its metadata"),
    ("rng-a-number", lambda m: m.update(rng=7), "rng"),
    ("rng-python-short", lambda m: m["rng"]["python"][1].pop(), "rng.python"),
    ("rng-python-out-of-range", lambda m: m["rng"]["python"][1].__setitem__(0, 2**40),
     "rng.python"),
    ("rng-numpy-pos-huge", lambda m: m["rng"]["numpy"].update(pos=2**40), "rng.numpy"),
    ("checksums-a-string", lambda m: m.update(checksums="crc"), "checksums"),
    ("checksum-algorithm-unknown", lambda m: m["checksums"].update(algorithm="md5"),
     "checksums.algorithm"),
    ("callbacks-log-state-a-list", lambda m: m.update(
        callbacks={"ganframe:log_scalars": [1]}), "callbacks"),
    ("callbacks-log-state-counts-zero", lambda m: m.update(callbacks={
        "ganframe:log_scalars": {"ranks": [{"steps": 1, "sums": {"g_loss": 1.0},
                                            "counts": {"g_loss": 0}}]}}),
     "ganframe:log_scalars"),
    ("resumes-a-dict", lambda m: m.update(resumes={}), "resumes"),
    ("data-info-a-list", lambda m: m.update(data_info=[]), "data_info"),
]


@pytest.mark.parametrize(("change", "needle"), [pytest.param(c, n, id=i) for i, c, n in DAMAGE])
def test_damaged_metadata_is_exit_2_naming_the_file_and_field(good, tmp_path: Path, change,
                                                              needle: str) -> None:
    """Resume (every checkpoint of the run damaged alike), and sample from the file."""
    recipe, _ = good
    run = copy_run(good, tmp_path)
    TRIED["damaged metadata"] += 2
    for path in (run / "checkpoints").glob("*.safetensors"):
        rewrite_meta(path, path, change)
    last = run / "checkpoints" / "last.safetensors"
    result = invoke(["run", recipe, "--out", run, "--resume", "--set", "train.steps=6",
                     "--quiet"])
    assert_exit_2(result, "/checkpoints/", needle)
    result = invoke(["sample", last, "-n", "4", "-o", tmp_path / "s.png"])
    if result.exit_code != 0:  # sampling needs less of the document than resuming
        assert_exit_2(result, "last.safetensors")


def _replace_tensor(src: Path, dst: Path, key: str, value: torch.Tensor,
                    keep_checksums: bool) -> None:
    with safetensors.safe_open(str(src), "pt") as f:
        tensors = {k: f.get_tensor(k) for k in f.keys()}
        meta = json.loads(f.metadata()["ganframe"])
    tensors[key] = value
    if not keep_checksums:
        meta.pop("checksums")  # as a checkpoint written before checksums
    safetensors.torch.save_file(tensors, str(dst), metadata={"ganframe": json.dumps(meta)})


@pytest.mark.parametrize("keep_checksums", [False, True])
@pytest.mark.parametrize(("key", "value"), [
    ("rng.torch", torch.zeros(100, dtype=torch.uint8)),
    ("rng.torch", torch.zeros(5056, dtype=torch.float32)),
    ("rng.numpy.keys", torch.zeros(10, dtype=torch.int64)),
    ("rng.numpy.keys", torch.full((624,), 2**40, dtype=torch.int64)),
])
def test_rng_state_of_the_wrong_size_or_range(good, tmp_path: Path, key: str,
                                              value: torch.Tensor, keep_checksums: bool) -> None:
    recipe, _ = good
    run = copy_run(good, tmp_path)
    TRIED["damaged metadata"] += 1
    for path in (run / "checkpoints").glob("*.safetensors"):
        _replace_tensor(path, path, key, value, keep_checksums)
    result = invoke(["run", recipe, "--out", run, "--resume", "--set", "train.steps=6",
                     "--quiet"])
    # with checksums the changed tensor is caught as damage first; without, by its check
    assert_exit_2(result, "last.safetensors", "checksum" if keep_checksums else key)


# -- 5. checkpoint integrity -------------------------------------------------------------------


def test_a_byte_appended_to_last_falls_back_to_the_newest_step_file(good,
                                                                   tmp_path: Path) -> None:
    recipe, _ = good
    run = copy_run(good, tmp_path)
    TRIED["checkpoint integrity"] += 3
    ckpts = run / "checkpoints"
    with (ckpts / "last.safetensors").open("ab") as f:
        f.write(b"\0")
    assert CheckpointDir(ckpts).latest() == ckpts / "step-00000004.safetensors"
    with pytest.raises(UserError, match="after its last tensor"):
        read_checkpoint(ckpts / "last.safetensors")
    with (ckpts / "step-00000004.safetensors").open("ab") as f:
        f.write(b"junk")
    assert CheckpointDir(ckpts).latest() == ckpts / "step-00000002.safetensors"
    result = invoke(["run", recipe, "--out", run, "--resume", "--quiet"])
    assert result.exit_code == 0, result.stderr
    assert "resuming from" in result.stderr and "step-00000002.safetensors" in result.stderr


def _flip_a_bit(path: Path, tensor: str) -> None:
    data = bytearray(path.read_bytes())
    n = int.from_bytes(data[:8], "little")
    start = json.loads(data[8 : 8 + n])[tensor]["data_offsets"][0]
    data[8 + n + start] ^= 0x10
    path.write_bytes(bytes(data))


@pytest.mark.parametrize("tensor", ["generator.net.0.weight", "optim.critic.state.0.exp_avg",
                                    "rng.torch"])
def test_a_flipped_bit_is_detected_naming_the_file_and_the_step_files(good, tmp_path: Path,
                                                                      tensor: str) -> None:
    recipe, _ = good
    run = copy_run(good, tmp_path)
    TRIED["checkpoint integrity"] += 2
    last = run / "checkpoints" / "last.safetensors"
    _flip_a_bit(last, tensor)
    result = invoke(["run", recipe, "--out", run, "--resume", "--set", "train.steps=6",
                     "--quiet"])
    assert_exit_2(result, str(last), tensor, "checksum", "step-*.safetensors")
    result = invoke(["sample", last, "-n", "4", "-o", tmp_path / "s.png"])
    assert_exit_2(result, str(last), "checksum")


def test_checksums_survive_a_rewrite_of_the_metadata(good, tmp_path: Path) -> None:
    """Checksums are per tensor, so a file whose tensors are laid out again (another writer
    of the same tensors) still verifies."""
    TRIED["checkpoint integrity"] += 1
    src = good[1] / "checkpoints" / "last.safetensors"
    with safetensors.safe_open(str(src), "pt") as f:
        tensors = {k: f.get_tensor(k) for k in f.keys()}
        meta = f.metadata()
    dst = tmp_path / "relaid.safetensors"
    safetensors.torch.save_file(tensors, str(dst), metadata=meta)
    assert dst.read_bytes() != src.read_bytes()
    assert read_checkpoint(dst).meta["checksums"]["algorithm"] == "crc32"


# -- 6. run folders whose own names are the wrong kind of file ----------------------------------


def _ganframe(*args: str | Path, timeout: float = 120) -> subprocess.CompletedProcess[str]:
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    return subprocess.run([sys.executable, "-m", "ganframe", *map(str, args)],
                          capture_output=True, text=True, env=env, timeout=timeout)


@pytest.mark.parametrize("layout", ["checkpoints-file", "samples-file", "metrics-folder",
                                    "metrics-fifo", "recipe-folder", "last-folder"])
@pytest.mark.parametrize("resume", [False, True])
def test_run_folder_names_of_the_wrong_kind(good, tmp_path: Path, layout: str,
                                            resume: bool) -> None:
    recipe, _ = good
    TRIED["run folder layout"] += 1
    run = copy_run(good, tmp_path) if resume else tmp_path / "new"
    run.mkdir(exist_ok=True)
    name = {"checkpoints-file": "checkpoints", "samples-file": "samples",
            "metrics-folder": "metrics.jsonl", "metrics-fifo": "metrics.jsonl",
            "recipe-folder": "recipe.toml", "last-folder": "checkpoints/last.safetensors"}[layout]
    target = run / name
    if target.is_dir():
        shutil.rmtree(target)
    else:
        target.unlink(missing_ok=True)
    target.parent.mkdir(exist_ok=True)
    if layout.endswith("-file"):
        target.write_text("not a folder")
    elif layout == "metrics-fifo":
        os.mkfifo(target)
    else:
        target.mkdir()
    args = ["run", recipe, "--out", run, "--quiet", *(["--resume"] if resume else [])]
    proc = _ganframe(*args)  # a FIFO must not block: the timeout would fail the test
    assert proc.returncode == 2, (proc.stdout, proc.stderr)
    assert str(target) in proc.stderr and "Traceback" not in proc.stderr


# -- 7. permission errors say read or write ------------------------------------------------------


def test_permission_errors_say_whether_reading_or_writing_failed(tmp_path: Path,
                                                                 monkeypatch) -> None:
    from ganframe import cli

    TRIED["read or write"] += 3
    data = tmp_path / "data"
    data.mkdir()
    (data / "train.idx").write_bytes(b"x")
    out = tmp_path / "run"
    out.mkdir()
    denied: dict[Path, int] = {data: os.X_OK | os.R_OK, data / "train.idx": os.R_OK,
                               out: os.W_OK}
    real = os.access

    def access(path, mode, *a, **k):  # what a non-root user sees for chmod 000 / 0500
        for p, bits in denied.items():
            if Path(path) == p and mode & bits:
                return False
        return real(path, mode, *a, **k)

    monkeypatch.setattr(os, "access", access)
    err = PermissionError(errno.EACCES, "Permission denied", str(data / "train.idx"))
    assert cli._fs_error_text(err).startswith(f"cannot read {data / 'train.idx'}")
    # a file inside a folder that cannot be searched (stat of the file fails too)
    err = PermissionError(errno.EACCES, "Permission denied", str(data / "labels.idx"))
    assert cli._fs_error_text(err).startswith(f"cannot read {data / 'labels.idx'}")
    err = PermissionError(errno.EACCES, "Permission denied", str(out / "metrics.jsonl"))
    assert cli._fs_error_text(err).startswith(f"cannot write {out / 'metrics.jsonl'}")


@pytest.mark.skipif(hasattr(os, "geteuid") and os.geteuid() == 0,
                    reason="running as root: permission bits do not stop reads")
def test_an_unreadable_data_folder_is_reported_as_cannot_read(tmp_path: Path) -> None:
    pytest.importorskip("ganframe_dcgan")
    from tinydata import write_idx

    TRIED["read or write"] += 1
    root = write_idx(tmp_path / "mnist")
    root.chmod(0)
    try:
        proc = _ganframe("run", "dcgan-mnist", "--out", tmp_path / "o", "--quiet",
                         "--set", f"data.root={json.dumps(str(root))}", "--set",
                         "data.download=false", "--set", "train.steps=1")
    finally:
        root.chmod(0o755)
    assert proc.returncode == 2, proc.stderr
    assert "cannot write" not in proc.stderr and str(root) in proc.stderr


# -- 8. full disk while writing samples; stale temporary files -----------------------------------


def _full_disk_under(fragment: str):
    real = os.fsync

    def fsync(fd: int) -> None:
        if fragment in os.readlink(f"/proc/self/fd/{fd}"):
            raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC))
        real(fd)

    return fsync


@pytest.mark.skipif(not Path("/proc/self/fd").is_dir(), reason="needs /proc")
def test_a_full_disk_while_writing_samples_names_the_file(good, tmp_path: Path,
                                                          monkeypatch) -> None:
    recipe, run = good
    TRIED["full disk"] += 3
    with monkeypatch.context() as m:
        m.setattr(os, "fsync", _full_disk_under("/samples/"))
        result = invoke(["run", recipe, "--out", tmp_path / "o", "--quiet"])
    text = assert_exit_2(result, "No space left on device")
    assert str(tmp_path / "o" / "samples" / "step-00000004.png") in text
    assert not list((tmp_path / "o").rglob(".*.tmp"))
    out = tmp_path / "grid.png"
    with monkeypatch.context() as m:
        m.setattr(os, "fsync", _full_disk_under("grid.png"))
        result = invoke(["sample", run, "-n", "8", "-o", out])
    assert_exit_2(result, str(out), "No space left on device")
    assert not out.exists() and not list(tmp_path.glob(".grid.png.*.tmp"))
    poet = pytest.importorskip("ganframe_poet.writers")
    path = tmp_path / "poems.txt"
    with monkeypatch.context() as m:
        m.setattr(os, "fsync", _full_disk_under("poems.txt"))
        with pytest.raises(OSError) as info:
            poet.write_text(torch.full((2, 4), 4, dtype=torch.long), path,
                            {"vocab": ["<pad>", "<end>", "<start>", "<unk>", "a"], "pad": 0,
                             "end": 1, "start": 2, "unk": 3})
    assert info.value.filename == str(path) and info.value.errno == errno.ENOSPC


def test_sample_cleans_temporary_files_that_killed_writes_left(good, tmp_path: Path) -> None:
    _, run = good
    TRIED["stale temporary files"] += 1
    out = tmp_path / "samples.png"
    stale = tmp_path / ".samples.png.0123456789ab.tmp"  # what a killed `ganframe sample` left
    fresh = tmp_path / ".samples.png.ba9876543210.tmp"  # a write going on right now
    other = tmp_path / ".other.png.0123456789ab.tmp"  # another file's
    mine = tmp_path / ".samples.png.notours.tmp"  # not a name ganframe makes
    for p in (stale, fresh, other, mine):
        p.write_bytes(b"partial")
    old = time.time() - 3600
    for p in (stale, other, mine):
        os.utime(p, (old, old))
    result = invoke(["sample", run, "-n", "8", "-o", out])
    assert result.exit_code == 0, result.stderr
    assert out.is_file() and not stale.exists()
    assert fresh.exists() and other.exists() and mine.exists()


# -- 9. sample -n and --seed bounds ------------------------------------------------------------


@pytest.mark.parametrize("args", [
    ["-n", "4611686018427387904"], ["-n", "1000001"], ["-n", "-5"],
    ["--seed", "1180591620717411303424"], ["--seed", "-1"],
])
def test_sample_counts_and_seeds_out_of_range(good, tmp_path: Path, args: list[str]) -> None:
    _, run = good
    TRIED["sample bounds"] += 1
    out = tmp_path / "s.png"
    assert_exit_2(invoke(["sample", run, *args, "-o", out]), args[0])
    assert not out.exists()


def test_eval_seed_out_of_range(good) -> None:
    _, run = good
    TRIED["sample bounds"] += 1
    assert_exit_2(invoke(["eval", run, "--metric", "ring-modes", "--seed", str(2**64)]),
                  "--seed")


def test_the_metadata_rewrite_helper_keeps_the_tensor_bytes(good, tmp_path: Path) -> None:
    src = good[1] / "checkpoints" / "last.safetensors"
    dst = rewrite_meta(src, tmp_path / "x.safetensors", lambda m: m.update(note="hi"))
    assert read_meta(dst)["note"] == "hi"
    assert read_checkpoint(dst).tensors.keys() == read_checkpoint(src).tensors.keys()
