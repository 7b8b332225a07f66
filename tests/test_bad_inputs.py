"""Bad input, table by table: every mistake a user can make ends in exit status 2 with one
message naming the file and the key or line, never a traceback, and never harms a run.

Most rows go through the real command functions in this process (typer's CliRunner, the
same error mapping as the program, without a fresh torch import per row); a few run
``python -m ganframe`` to prove the process-level exit status. Where a row points at an
existing run folder, the folder's files (bytes and modification times) are snapshotted
before the call and compared after it.
"""

from __future__ import annotations

import errno
import gzip
import json
import os
import shutil
import struct
import subprocess
import sys
import zlib
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import pytest
import safetensors.torch
import torch
from typer.testing import CliRunner

from ganframe.checkpoint import MAX_METADATA_BYTES, CheckpointDir, read_checkpoint
from ganframe.cli import app

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

[loss]
type = "non-saturating"

[optim.generator]
type = "adam"
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
TRIED: list[str] = []  # ids of the rows run, for the summary printed at the end


# -- helpers ----------------------------------------------------------------------------------


def line_of(text: str, fragment: str) -> int:
    """1-based line of the first occurrence of ``fragment`` in ``text``."""
    assert fragment in text, fragment
    return text[: text.index(fragment)].count("\n") + 1


def snapshot(folder: Path) -> dict[str, tuple[bytes, int] | None]:
    """Every path under ``folder``: files with bytes and mtime, folders as None."""
    if not folder.exists():
        return {}
    out: dict[str, tuple[bytes, int] | None] = {}
    for p in sorted(folder.rglob("*")):
        out[str(p.relative_to(folder))] = (
            (p.read_bytes(), p.stat().st_mtime_ns) if p.is_file() else None
        )
    return out


def idx(array: np.ndarray, magic: int) -> bytes:
    a = np.ascontiguousarray(array, dtype=np.uint8)
    return struct.pack(f">i{a.ndim}i", magic, *a.shape) + a.tobytes()


def digits(n: int = 16, seed: int = 0) -> tuple[np.ndarray, np.ndarray]:
    rng = np.random.default_rng(seed)
    return (
        rng.integers(0, 256, (n, 28, 28)).astype(np.uint8),
        rng.integers(0, 10, n).astype(np.uint8),
    )


def quatrain(i: int) -> str:
    return "".join(
        "".join(CHARS[(i + 5 * k + j) % len(CHARS)] for j in range(5)) + p
        for k, p in enumerate("，。，。")
    )


def with_meta(src: Path, dst: Path, change: Callable[[dict], None]) -> Path:
    """Copy a checkpoint with its JSON metadata changed (tensors kept)."""
    with safetensors.safe_open(str(src), "pt") as f:
        meta = json.loads(f.metadata()["ganframe"])
        tensors = {k: f.get_tensor(k) for k in f.keys()}
    change(meta)
    safetensors.torch.save_file(tensors, str(dst), metadata={"ganframe": json.dumps(meta)})
    return dst


@dataclass
class Bad:
    """One bad call: CLI arguments, what the message must contain, what must stay as is."""

    args: list[str | Path]
    needles: list[str]
    guard: list[Path] = field(default_factory=list)  # folders that must not change at all
    absent: list[Path] = field(default_factory=list)  # paths that must not come to exist
    patch: Callable[[pytest.MonkeyPatch], None] | None = None
    keep: list[Path] = field(default_factory=list)  # files that must stay byte/mtime equal


@dataclass
class Kit:
    """What the rows build their bad inputs from."""

    tmp: Path
    recipe: Path  # the good toy recipe
    good: Path  # a finished good run (shared; rows copy it before changing anything)

    def run_copy(self) -> Path:
        dst = self.tmp / "run"
        shutil.copytree(self.good, dst)
        return dst

    @property
    def last(self) -> Path:
        return self.good / "checkpoints" / "last.safetensors"

    def write(self, name: str, data: str | bytes) -> Path:
        path = self.tmp / name
        path.parent.mkdir(parents=True, exist_ok=True)
        if isinstance(data, str):
            path.write_text(data, encoding="utf-8")
        else:
            path.write_bytes(data)
        return path


def invoke(args: list[str | Path]):
    return CliRunner().invoke(app, [str(a) for a in args])


def assert_clean_user_error(result, needles: list[str]) -> None:
    text = result.stderr
    assert result.exit_code == 2, (result.exit_code, result.stdout, text, result.exception)
    assert isinstance(result.exception, SystemExit), repr(result.exception)
    assert "Traceback" not in text + result.stdout
    assert text.startswith("error: ") or "\nerror: " in text, text  # progress may precede it
    for needle in needles:
        assert needle in text, (needle, text)


def check(bad: Bad, monkeypatch: pytest.MonkeyPatch, row: str) -> None:
    TRIED.append(row)
    before = {g: snapshot(g) for g in bad.guard}
    kept = {k: (k.read_bytes(), k.stat().st_mtime_ns) for k in bad.keep}
    with monkeypatch.context() as m:
        if bad.patch is not None:
            bad.patch(m)
        result = invoke(bad.args)
    assert_clean_user_error(result, bad.needles)
    for g, snap in before.items():
        assert snapshot(g) == snap, f"{g} changed"
    for k, (data, mtime) in kept.items():
        assert k.read_bytes() == data and k.stat().st_mtime_ns == mtime, f"{k} changed"
    for a in bad.absent:
        assert not a.exists(), f"{a} was created"


# -- fixtures -------------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def workdir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return tmp_path_factory.mktemp("bad-inputs")


@pytest.fixture(scope="module")
def good(workdir: Path) -> tuple[Path, Path]:
    recipe = workdir / "toy.toml"
    recipe.write_text(TOY, encoding="utf-8")
    run = workdir / "good"
    result = invoke(["run", recipe, "--out", run, "--quiet"])
    assert result.exit_code == 0, result.stderr
    assert (run / "checkpoints" / "step-00000004.safetensors").is_file()
    return recipe, run


@pytest.fixture
def kit(good: tuple[Path, Path], tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Kit:
    # no real data and no download cache may be found by any row
    monkeypatch.delenv("GANFRAME_DATA", raising=False)
    monkeypatch.setenv("GANFRAME_CACHE", str(tmp_path / "cache"))
    return Kit(tmp_path, *good)


@pytest.fixture(scope="module", autouse=True)
def one_thread() -> Iterator[None]:
    before = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(before)


@pytest.fixture(scope="module", autouse=True)
def summary() -> Iterator[None]:
    yield
    print(f"\nbad inputs tried: {len(TRIED)} ({len(set(TRIED))} distinct rows)")


# -- 1. recipe files: syntax, types, keys, component names, sizes -----------------------------

# (id, text replaced, replacement, needles); "{line}" is the 1-based line of the replacement
RECIPE_ROWS = [
    ("toml-unclosed-table", "[critic]", "[critic", ["not valid TOML", "line {line}"]),
    ("toml-missing-value", "batch_size = 32", "batch_size =", ["not valid TOML", "line {line}"]),
    ("toml-duplicate-key", "seed = 0", "seed = 0\nseed = 1", ["not valid TOML", "line"]),
    ("toml-unterminated-string", 'name = "toy"', 'name = "toy', ["not valid TOML", "line 1"]),
    ("toml-bad-number", "lr = 1e-3", "lr = 1e-", ["not valid TOML", "line {line}"]),
    ("toml-bare-word", 'device = "cpu"', "device = cpu", ["not valid TOML", "line {line}"]),
    ("type-batch-string", "batch_size = 32", 'batch_size = "many"', ["train.batch_size"]),
    ("type-steps-float", "steps = 4", "steps = 4.5", ["train.steps"]),
    ("type-table-as-number", '[generator]\ntype = "mlp"\nhidden = 8\nlayers = 1\nlatent_dim = 2',
     "generator = 3", ["generator"]),
    ("type-betas-string", "lr = 1e-3", 'lr = 1e-3\nbetas = "0.5"', ["optim.generator.betas"]),
    ("type-bool-string", 'device = "cpu"', 'device = "cpu"\ndeterministic = "maybe"',
     ["deterministic"]),
    ("type-component-option", "hidden = 8\nlayers = 1\nlatent_dim", 'hidden = "wide"\nlayers = 1'
     "\nlatent_dim", ["generator.hidden"]),
    ("type-lr-list", "lr = 1e-3", "lr = [1e-3]", ["optim.generator.lr"]),
    ("unknown-top-level-key", "seed = 0", "sed = 0", ["sed", "unknown key"]),
    ("unknown-train-key", "batch_size = 32", "batchsize = 32", ["train.batchsize", "unknown key"]),
    ("unknown-component-key", "latent_dim = 2", "latnt_dim = 2",
     ["generator.latnt_dim", "unknown key"]),
    ("unknown-optimizer-key", "lr = 1e-3", "lr = 1e-3\nmomentum = 0.9",
     ["optim.generator.momentum", "unknown key"]),
    ("unknown-table", "[loss]", "[losses]\ntype = \"hinge\"\n[loss]", ["losses"]),
    ("unknown-generator-type", 'type = "mlp"\nhidden = 8\nlayers = 1\nlatent_dim',
     'type = "mlpp"\nhidden = 8\nlayers = 1\nlatent_dim', ["generator.type", "'mlpp'"]),
    ("unknown-loss-type", 'type = "non-saturating"', 'type = "non-saturated"',
     ["loss.type", "'non-saturated'"]),
    ("unknown-dataset-type", 'type = "gaussian-ring"', 'type = "gaussian-rings"',
     ["data.type", "'gaussian-rings'"]),
    ("unknown-optimizer-type", 'type = "adam"', 'type = "adagrad"',
     ["optim.generator", "adam, adamw, rmsprop, sgd"]),
    ("unknown-metric-type", "sample_count = 16", 'sample_count = 16\n[[metrics]]\ntype = "fid9"',
     ["metrics.0.type", "'fid9'"]),
    ("zero-batch-size", "batch_size = 32", "batch_size = 0",
     ["train.batch_size", "greater than 0"]),
    ("negative-steps", "steps = 4", "steps = -4", ["train.steps", "greater than 0"]),
    ("zero-log-every", "log_every = 2", "log_every = 0", ["train.log_every"]),
    ("negative-lr", "lr = 1e-3", "lr = -1e-3", ["optim.generator.lr"]),
    ("zero-hidden-width", "hidden = 8\nlayers = 1\nlatent_dim", "hidden = 0\nlayers = 1\n"
     "latent_dim", ["generator.hidden", "greater than 0"]),
    ("negative-keep-last", "keep_last = 0", "keep_last = -1", ["train.keep_last"]),
    ("zero-data-size", "size = 128", "size = 0", ["data.size"]),
    ("huge-ema", "sample_count = 16", "sample_count = 16\nema = 1.5", ["train.ema"]),
    ("bad-device", 'device = "cpu"', 'device = "gpu0"', ["device", "auto, cpu, cuda"]),
    ("missing-generator-table", '[generator]\ntype = "mlp"\nhidden = 8\nlayers = 1\nlatent_dim = 2',
     "", ["generator", "Field required"]),
    ("steps-and-epochs", "steps = 4", "steps = 4\nepochs = 1.0", ["train.steps", "train.epochs"]),
    ("loss-and-phases", "[train]", '[[phases]]\nname = "a"\nloss = { type = "hinge" }\n'
     "steps = 2\n\n[train]", ["[loss]", "[[phases]]"]),
    # the name chooses the run folder runs/<name>: one plain folder name only
    ("name-parent-folders", 'name = "toy"', 'name = "../../x"', ["name", "run folder"]),
    ("name-absolute", 'name = "toy"', 'name = "/tmp/x"', ["name", "run folder"]),
    ("name-dot-dot", 'name = "toy"', 'name = ".."', ["name", "run folder"]),
    ("name-hidden", 'name = "toy"', 'name = ".toy"', ["name", "run folder"]),
    ("name-option-like", 'name = "toy"', 'name = "--force"', ["name", "run folder"]),
    ("name-nul-byte", 'name = "toy"', 'name = "to\\u0000y"', ["name", "control character"]),
    ("name-escape-sequence", 'name = "toy"', 'name = "\\u001b[2Jtoy"',
     ["name", "control character"]),
    ("name-too-long", 'name = "toy"', f'name = "{"t" * 101}"', ["name", "101 characters"]),
]


@pytest.mark.parametrize(
    ("old", "new", "needles"),
    [pytest.param(o, n, k, id=i) for i, o, n, k in RECIPE_ROWS],
)
def test_bad_recipe_resuming_a_run(
    kit: Kit, monkeypatch: pytest.MonkeyPatch, request: pytest.FixtureRequest,
    old: str, new: str, needles: list[str],
) -> None:
    """A broken recipe given to ``run --resume`` names file and key and leaves the run be."""
    assert old in TOY
    text = TOY.replace(old, new, 1)
    path = kit.write("bad.toml", text)
    line = line_of(text, new.splitlines()[0]) if new else 0
    run = kit.run_copy()
    bad = Bad(
        ["run", path, "--out", run, "--resume", "--quiet"],
        [str(path), *(n.format(line=line) for n in needles)],
        guard=[run],
    )
    check(bad, monkeypatch, request.node.callspec.id)


def _non_utf8_recipe(kit: Kit) -> Bad:
    path = kit.write("latin1.toml", TOY.replace('"toy"', '"toy-caf\u00e9"').encode("latin-1"))
    return Bad(["validate", path], [str(path), "not UTF-8"])


def _missing_recipe(kit: Kit) -> Bad:
    return Bad(["run", kit.tmp / "nope.toml", "--out", kit.tmp / "out"],
               [str(kit.tmp / "nope.toml")], absent=[kit.tmp / "out"])


def _recipe_is_a_folder(kit: Kit) -> Bad:
    (kit.tmp / "dir.toml").mkdir()
    return Bad(["validate", kit.tmp / "dir.toml"], [str(kit.tmp / "dir.toml"), "no such recipe"])


def _empty_recipe(kit: Kit) -> Bad:
    path = kit.write("empty.toml", "")
    return Bad(["validate", path], [str(path), "data", "Field required"])


def _set_without_equals(kit: Kit) -> Bad:
    run = kit.run_copy()
    return Bad(["run", kit.recipe, "--set", "trainsteps", "--out", run, "--resume"],
               ["--set 'trainsteps'", "dotted.key=value"], guard=[run])


def _set_into_a_value(kit: Kit) -> Bad:
    run = kit.run_copy()
    return Bad(["run", kit.recipe, "--set", "train.batch_size.x=1", "--out", run, "--resume"],
               ["train.batch_size", "not a table"], guard=[run])


def _set_unknown_key(kit: Kit) -> Bad:
    run = kit.run_copy()
    return Bad(["run", kit.recipe, "--set", "train.stepz=8", "--out", run, "--resume"],
               [str(kit.recipe), "train.stepz", "unknown key"], guard=[run])


def _set_wrong_type(kit: Kit) -> Bad:
    run = kit.run_copy()
    return Bad(["run", kit.recipe, "--set", "train.steps=many", "--out", run, "--resume"],
               [str(kit.recipe), "train.steps"], guard=[run])


def _set_missing_list_item(kit: Kit) -> Bad:
    return Bad(["validate", kit.recipe, "--set", "metrics.3.every=1"],
               [str(kit.recipe), "metrics"])


def _unknown_registered_name(kit: Kit) -> Bad:
    return Bad(["validate", "gaussian-rinq"], ["'gaussian-rinq'", "gaussian-ring"])


# -- 2. data: missing, truncated and corrupt files; batch larger than the data ------------------


def _mnist(kit: Kit, files: dict[str, bytes], *extra: str) -> tuple[Bad, Path]:
    pytest.importorskip("ganframe_dcgan")
    root = kit.tmp / "mnist"
    root.mkdir(exist_ok=True)
    for name, data in files.items():
        (root / name).write_bytes(data)
    out = kit.tmp / "out"
    sets = [
        'device="cpu"', f"data.root={json.dumps(str(root))}", "data.download=false",
        "metrics=[]", "generator.base_width=4", "critic.base_width=4", "train.batch_size=8",
        "train.steps=2", *extra,
    ]
    args: list[str | Path] = ["run", "dcgan-mnist", "--out", out, "--quiet"]
    for s in sets:
        args += ["--set", s]
    return Bad(args, [], absent=[out]), root


IMAGES, LABELS = "train-images-idx3-ubyte", "train-labels-idx1-ubyte"


def _good_idx(n: int = 16) -> dict[str, bytes]:
    images, labels = digits(n)
    return {IMAGES: idx(images, 2051), LABELS: idx(labels, 2049)}


def _mnist_row(change: Callable[[dict[str, bytes]], None], needles: list[str], *extra: str):
    def build(kit: Kit) -> Bad:
        files = _good_idx()
        change(files)
        bad, root = _mnist(kit, files, *extra)
        bad.needles = [n.format(root=root) for n in needles]
        return bad

    return build


def _cut(name: str, keep: int) -> Callable[[dict[str, bytes]], None]:
    def change(files: dict[str, bytes]) -> None:
        files[name] = files[name][:keep]

    return change


def _set_file(name: str, data: bytes) -> Callable[[dict[str, bytes]], None]:
    def change(files: dict[str, bytes]) -> None:
        files[name] = data

    return change


def _gzip_damaged(files: dict[str, bytes]) -> None:
    data = gzip.compress(files.pop(IMAGES))
    files[IMAGES + ".gz"] = data[: len(data) // 2]


def _no_files(files: dict[str, bytes]) -> None:
    files.clear()


def _extra_bytes(files: dict[str, bytes]) -> None:
    files[IMAGES] += b"\0" * 10


def _labels_disagree(files: dict[str, bytes]) -> None:
    files[LABELS] = idx(digits(12)[1], 2049)


def _labels_all_zero(files: dict[str, bytes]) -> None:
    files[LABELS] = idx(np.zeros(16), 2049)


def _label_out_of_range(files: dict[str, bytes]) -> None:
    labels = digits()[1]
    labels[3] = 42
    files[LABELS] = idx(labels, 2049)


def _poems(kit: Kit, data: bytes | None, *extra: str, folder: bool = False) -> Bad:
    pytest.importorskip("ganframe_poet")
    path = kit.tmp / "poems.txt"
    if folder:
        path.mkdir()
    elif data is not None:
        path.write_bytes(data)
    out = kit.tmp / "out"
    args: list[str | Path] = ["run", "lstm-poet", "--out", out, "--quiet"]
    for s in ['device="cpu"', f"data.path={json.dumps(str(path))}", "metrics=[]", *extra]:
        args += ["--set", s]
    return Bad(args, [], absent=[out])


def _gzip_bomb(name: str) -> Callable[[dict[str, bytes]], None]:
    """``name`` gzipped as its 16 items followed by 64 MB of zeros (a 64 KB file)."""

    def change(files: dict[str, bytes]) -> None:
        z = zlib.compressobj(9, zlib.DEFLATED, 31)
        parts = [z.compress(files.pop(name))]
        parts += [z.compress(bytes(1 << 20)) for _ in range(64)]
        files[name + ".gz"] = b"".join([*parts, z.flush()])

    return change


def _gzip_declares_too_much(files: dict[str, bytes]) -> None:
    """A 1 KB gzip file whose header declares a million images (784 MB)."""
    files.pop(IMAGES)
    files[IMAGES + ".gz"] = gzip.compress(struct.pack(">iiii", 2051, 1_000_000, 28, 28)
                                          + bytes(1000))


def _poem_path(kind: str, needles: list[str]):
    """The poem file is a FIFO (a reader would block), /dev/zero (never ends)."""

    def build(kit: Kit) -> Bad:
        path = kit.tmp / "poems.txt"
        if kind == "fifo":
            os.mkfifo(path)
        else:
            path.symlink_to("/dev/zero")
        bad = _poems(kit, None)
        bad.needles = [str(path), *needles]
        return bad

    return build


def _poem_row(data: bytes | None, needles: list[str], *extra: str, folder: bool = False):
    def build(kit: Kit) -> Bad:
        bad = _poems(kit, data, *extra, folder=folder)
        bad.needles = [n.format(path=kit.tmp / "poems.txt") for n in needles]
        return bad

    return build


GOOD_POEMS = "\n".join(quatrain(i) for i in range(8)).encode("utf-8")


def _toy_batch_too_large(kit: Kit) -> Bad:
    run = kit.run_copy()
    return Bad(["run", kit.recipe, "--set", "data.size=16", "--out", kit.tmp / "out"],
               [str(kit.recipe), "train.batch_size", "larger than the dataset"],
               guard=[run], absent=[kit.tmp / "out"])


# -- 3. checkpoints: truncated, corrupt, foreign, another architecture ---------------------------


def _ckpt_bytes(kit: Kit) -> bytes:
    return kit.last.read_bytes()


def _bad_ckpt(make: Callable[[Kit, Path], None], needles: list[str], command: str = "sample",
              name: str = "bad.safetensors"):
    def build(kit: Kit) -> Bad:
        path = kit.tmp / name
        make(kit, path)
        out = kit.tmp / "samples.png"
        if command == "sample":
            args: list[str | Path] = ["sample", path, "-n", "4", "-o", out]
        else:
            args = ["eval", path, "--metric", "ring-modes"]
        return Bad(args, [str(path), *needles], absent=[out], keep=[kit.last])

    return build


def _half(kit: Kit, path: Path) -> None:
    data = _ckpt_bytes(kit)
    path.write_bytes(data[: len(data) // 2])


def _short(kit: Kit, path: Path) -> None:
    path.write_bytes(_ckpt_bytes(kit)[:5])


def _last_byte_missing(kit: Kit, path: Path) -> None:
    path.write_bytes(_ckpt_bytes(kit)[:-1])


def _noise(kit: Kit, path: Path) -> None:
    path.write_bytes(np.random.default_rng(5).integers(0, 256, 3000, dtype=np.uint8).tobytes())


def _header_json_broken(kit: Kit, path: Path) -> None:
    data = bytearray(_ckpt_bytes(kit))
    data[8] = ord("x")  # the header's opening brace
    path.write_bytes(bytes(data))


def _huge_header(kit: Kit, path: Path) -> None:
    path.write_bytes(struct.pack("<Q", MAX_METADATA_BYTES + 1) + b"{}" + b" " * 64)


def _plain_safetensors(kit: Kit, path: Path) -> None:
    safetensors.torch.save_file({"weight": torch.zeros(3)}, str(path), metadata={"format": "pt"})


def _torch_zip(kit: Kit, path: Path) -> None:
    path.write_bytes(b"PK\x03\x04" + bytes(range(256)) * 4)


def _future_format(kit: Kit, path: Path) -> None:
    with_meta(kit.last, path, lambda m: m.update(format=99))


def _meta_without_generator(kit: Kit, path: Path) -> None:
    with_meta(kit.last, path, lambda m: m.pop("generator"))


def _meta_generator_unknown(kit: Kit, path: Path) -> None:
    with_meta(kit.last, path, lambda m: m["generator"].update(type="nosuchplugin:gen"))


def _meta_generator_config_invalid(kit: Kit, path: Path) -> None:
    with_meta(kit.last, path, lambda m: m["generator"]["config"].update(hidden=-8))


def _meta_generator_not_a_table(kit: Kit, path: Path) -> None:
    with_meta(kit.last, path, lambda m: m.update(generator="mlp"))


def _json_depth_bomb(kit: Kit, path: Path) -> None:
    deep = "[" * 100_000 + "]" * 100_000
    safetensors.torch.save_file({"w": torch.zeros(2)}, str(path),
                                metadata={"ganframe": '{"format": 1, "x": ' + deep + "}"})


def _other_width(kit: Kit, path: Path) -> None:
    """Another architecture's tensors under this one's description (a mixed-up file)."""
    with_meta(kit.last, path, lambda m: m["generator"]["config"].update(hidden=12))


def _declares_huge_generator(kit: Kit, path: Path) -> None:
    """A toy checkpoint whose metadata says 65536-wide layers (16 GB) over its tiny tensors."""
    with_meta(kit.last, path, lambda m: m["generator"]["config"].update(hidden=65536, layers=3))


def _declares_huge_data(kit: Kit, path: Path) -> None:
    """The data description sizes the output layer: 2**33 points dimensions."""
    with_meta(kit.last, path, lambda m: m["data_info"].update(dim=2**33))


def _eval_set_data(item: str, needles: list[str]):
    def build(kit: Kit) -> Bad:
        return Bad(["eval", kit.good, "--metric", "ring-modes", "--set", item], needles)

    return build


def _missing(kit: Kit, path: Path) -> None:
    pass


def _empty_folder(kit: Kit, path: Path) -> None:
    path.mkdir()


def _resume_row(break_run: Callable[[Kit, Path], list[str]], needles: list[str]):
    """``run --resume`` into a copy of the good run after ``break_run`` changed it."""

    def build(kit: Kit) -> Bad:
        run = kit.run_copy()
        extra = break_run(kit, run)
        args: list[str | Path] = ["run", kit.recipe, "--out", run, "--resume", "--quiet"]
        for s in extra:
            args += ["--set", s]
        return Bad(args, [n.format(run=run) for n in needles], guard=[run])

    return build


def _truncate_all(kit: Kit, run: Path) -> list[str]:
    for p in (run / "checkpoints").glob("*.safetensors"):
        data = p.read_bytes()
        p.write_bytes(data[: len(data) // 2])
        os.utime(p, ns=(1, 1))  # mtimes the snapshot will see
    return ["train.steps=8"]


def _foreign_all(kit: Kit, run: Path) -> list[str]:
    for p in (run / "checkpoints").glob("*.safetensors"):
        _plain_safetensors(kit, p)
    return ["train.steps=8"]


def _wider_generator(kit: Kit, run: Path) -> list[str]:
    return ["generator.hidden=12", "train.steps=8"]


def _other_data(kit: Kit, run: Path) -> list[str]:
    return ["data.size=256", "train.steps=8"]


def _disguised_architecture(kit: Kit, run: Path) -> list[str]:
    """Checkpoints claim a width-12 recipe but hold width-8 tensors: the shape check must
    name the tensor."""
    for p in (run / "checkpoints").glob("*.safetensors"):
        with_meta(p, p, lambda m: m["recipe"]["generator"].update(hidden=12))
    return ["generator.hidden=12", "train.steps=8"]


# -- 4. output folders, options, full disk --------------------------------------------------------


def _existing_run(kit: Kit) -> Bad:
    run = kit.run_copy()
    return Bad(["run", kit.recipe, "--out", run, "--quiet"],
               [str(run), "--resume", "--force"], guard=[run])


def _out_is_a_file(kit: Kit) -> Bad:
    path = kit.write("out.txt", "precious")
    return Bad(["run", kit.recipe, "--out", path], [str(path), "not a folder"], keep=[path])


def _out_parent_is_a_file(kit: Kit) -> Bad:
    parent = kit.write("plain-file", "precious")
    return Bad(["run", kit.recipe, "--out", parent / "run"],
               [str(parent / "run"), "cannot write"], keep=[parent])


def _out_read_only(kit: Kit) -> Bad:
    if hasattr(os, "geteuid") and os.geteuid() == 0:
        pytest.skip("running as root: permission bits do not stop writes")
    folder = kit.tmp / "locked"
    folder.mkdir()
    folder.chmod(0o500)
    return Bad(["run", kit.recipe, "--out", folder / "run"], [str(folder / "run")],
               guard=[folder])


def _sample_into_a_file_path(kit: Kit) -> Bad:
    parent = kit.write("plain-file", "precious")
    return Bad(["sample", kit.last, "-n", "4", "-o", parent / "s.png"],
               [str(parent / "s.png"), "cannot write"], keep=[parent])


def _sample_unknown_suffix(kit: Kit) -> Bad:
    return Bad(["sample", kit.last, "-n", "4", "-o", kit.tmp / "s.gif"], [".gif", ".png"],
               absent=[kit.tmp / "s.gif"])


def _max_steps_zero(kit: Kit) -> Bad:
    run = kit.run_copy()
    return Bad(["run", kit.recipe, "--out", run, "--resume", "--max-steps", "0"],
               ["--max-steps"], guard=[run])


def _sample_n_zero(kit: Kit) -> Bad:
    return Bad(["sample", kit.last, "-n", "0", "-o", kit.tmp / "s.png"], ["-n"],
               absent=[kit.tmp / "s.png"])


def _nproc_zero(kit: Kit) -> Bad:
    return Bad(["run", kit.recipe, "--out", kit.tmp / "out", "--nproc", "0"], ["--nproc"],
               absent=[kit.tmp / "out"])


def _absent_cuda(kit: Kit) -> Bad:
    if torch.cuda.is_available():
        pytest.skip("this machine has a CUDA device")
    run = kit.run_copy()
    return Bad(["run", kit.recipe, "--out", run, "--resume", "--device", "cuda"],
               ["'cuda'", "--device cpu"], guard=[run])


def _raise_enospc(*args: object, **kwargs: object) -> None:
    raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC))


def _disk_full_everywhere(kit: Kit) -> Bad:
    run = kit.run_copy()
    ckpts = sorted((run / "checkpoints").iterdir())
    return Bad(
        ["run", kit.recipe, "--out", run, "--resume", "--set", "train.steps=8", "--quiet"],
        [str(run), "No space left on device"],
        keep=ckpts,
        patch=lambda m: m.setattr(os, "fsync", _raise_enospc),
    )


def _disk_full_at_checkpoint(kit: Kit) -> Bad:
    """The disk fills up when the next checkpoint is written, after some training."""
    run = kit.run_copy()
    ckpts = sorted((run / "checkpoints").iterdir())
    real = os.fsync

    def fsync(fd: int) -> None:
        if "/checkpoints/" in os.readlink(f"/proc/self/fd/{fd}"):
            _raise_enospc()
        real(fd)

    def patch(m: pytest.MonkeyPatch) -> None:
        m.setattr(os, "fsync", fsync)

    return Bad(
        ["run", kit.recipe, "--out", run, "--resume", "--set", "train.steps=8", "--quiet"],
        [str(run / "checkpoints"), "No space left on device"],
        keep=ckpts,
        patch=patch,
    )


ON_LINUX = pytest.mark.skipif(not Path("/proc/self/fd").is_dir(), reason="needs /proc")

OTHER_ROWS = [
    # recipe files and --set
    pytest.param(_non_utf8_recipe, id="recipe-not-utf8"),
    pytest.param(_missing_recipe, id="recipe-missing"),
    pytest.param(_recipe_is_a_folder, id="recipe-is-a-folder"),
    pytest.param(_empty_recipe, id="recipe-empty"),
    pytest.param(_set_without_equals, id="set-without-equals"),
    pytest.param(_set_into_a_value, id="set-into-a-value"),
    pytest.param(_set_unknown_key, id="set-unknown-key"),
    pytest.param(_set_wrong_type, id="set-wrong-type"),
    pytest.param(_set_missing_list_item, id="set-missing-list-item"),
    pytest.param(_unknown_registered_name, id="unknown-recipe-name"),
    # data
    pytest.param(_toy_batch_too_large, id="batch-larger-than-toy-data"),
    pytest.param(_mnist_row(_no_files, ["{root}", "not found"]), id="mnist-files-missing"),
    pytest.param(_mnist_row(_cut(IMAGES, 1000), [IMAGES, "truncated"]), id="idx-truncated"),
    pytest.param(_mnist_row(_cut(IMAGES, 3), [IMAGES, "truncated"]), id="idx-truncated-header"),
    pytest.param(_mnist_row(_cut(LABELS, 0), [LABELS, "truncated"]), id="idx-empty-file"),
    pytest.param(_mnist_row(_set_file(IMAGES, idx(digits()[1], 2049)), [IMAGES, "magic number"]),
                 id="idx-wrong-magic"),
    pytest.param(_mnist_row(_set_file(IMAGES, idx(np.zeros((4, 32, 32)), 2051)),
                            [IMAGES, "28x28"]), id="idx-not-28x28"),
    pytest.param(_mnist_row(_extra_bytes, [IMAGES, "extra bytes"]), id="idx-extra-bytes"),
    pytest.param(_mnist_row(_gzip_damaged, [IMAGES + ".gz", "damaged gzip"]),
                 id="idx-gzip-damaged"),
    pytest.param(_mnist_row(_labels_disagree, [IMAGES, LABELS, "disagree"]),
                 id="idx-label-count-differs"),
    pytest.param(_mnist_row(_label_out_of_range, [LABELS, "label 42"]), id="idx-label-42"),
    pytest.param(_mnist_row(_gzip_bomb(IMAGES), [IMAGES + ".gz", "extra bytes"]),
                 id="idx-images-gzip-bomb"),
    pytest.param(_mnist_row(_gzip_bomb(LABELS), [LABELS + ".gz", "extra bytes"]),
                 id="idx-labels-gzip-bomb"),
    pytest.param(_mnist_row(_gzip_declares_too_much, [IMAGES + ".gz", "1000000"]),
                 id="idx-gzip-declares-784-MB"),
    pytest.param(_poem_path("fifo", ["FIFO"]), id="poems-is-a-fifo"),
    pytest.param(_poem_path("dev-zero", ["device"]), id="poems-is-dev-zero"),
    pytest.param(_mnist_row(lambda f: None, ["dcgan-mnist", "train.batch_size",
                                             "larger than the dataset"], "data.limit=4"),
                 id="batch-larger-than-mnist"),
    pytest.param(_mnist_row(_labels_all_zero, [IMAGES, "classes"], "data.classes=[7, 8]"),
                 id="mnist-classes-absent"),
    pytest.param(_poem_row("白日依山尽，黄河入海流。\n".encode("gb18030"),
                           ["{path}, line 1", "UTF-8"]), id="poems-not-utf8"),
    pytest.param(_poem_row(GOOD_POEMS + b"\n\xff\xfe\n", ["{path}, line 9", "UTF-8"]),
                 id="poems-not-utf8-late"),
    pytest.param(_poem_row(b"", ["{path}, line 1", "empty"]), id="poems-empty"),
    pytest.param(_poem_row(b"\n  \n\n", ["{path}", "empty"]), id="poems-blank-lines"),
    pytest.param(_poem_row(b"hello world\nnot a poem\n", ["{path}", "none of its 2", "data"]),
                 id="poems-none-usable"),
    pytest.param(_poem_row(None, ["{path}", "not found"]), id="poems-missing"),
    pytest.param(_poem_row(None, ["{path}", "cannot read"], folder=True),
                 id="poems-is-a-folder"),
    pytest.param(_poem_row(GOOD_POEMS, ["lstm-poet", "train.batch_size",
                                        "larger than the dataset"]),
                 id="batch-larger-than-poems"),
    pytest.param(_poem_row(GOOD_POEMS, ["lstm-poet", "data.max_len"], "data.max_len=10"),
                 id="poems-max-len-too-short"),
    # checkpoints given to sample / eval
    pytest.param(_bad_ckpt(_half, ["truncated"]), id="sample-truncated-checkpoint"),
    pytest.param(_bad_ckpt(_short, ["too short"]), id="sample-5-byte-checkpoint"),
    pytest.param(_bad_ckpt(_last_byte_missing, ["truncated"]), id="sample-one-byte-short"),
    pytest.param(_bad_ckpt(_noise, []), id="sample-random-bytes"),
    pytest.param(_bad_ckpt(_header_json_broken, ["not valid safetensors JSON"]),
                 id="sample-corrupt-header"),
    pytest.param(_bad_ckpt(_huge_header, ["header length"]), id="sample-header-over-limit"),
    pytest.param(_bad_ckpt(_plain_safetensors, ["not a ganframe checkpoint"]),
                 id="sample-foreign-safetensors"),
    pytest.param(_bad_ckpt(_torch_zip, ["torch.save() archive"], name="model.pt"),
                 id="sample-torch-archive"),
    pytest.param(_bad_ckpt(_future_format, ["format 99", "Upgrade"]), id="sample-future-format"),
    pytest.param(_bad_ckpt(_missing, ["does not exist"]), id="sample-missing-checkpoint"),
    pytest.param(_bad_ckpt(_empty_folder, ["no checkpoint found"], name="empty-run"),
                 id="sample-folder-without-checkpoints"),
    pytest.param(_bad_ckpt(_meta_without_generator, ["generator.type"]),
                 id="sample-meta-without-generator"),
    pytest.param(_bad_ckpt(_meta_generator_unknown, ["nosuchplugin", "not installed"]),
                 id="sample-generator-plugin-missing"),
    pytest.param(_bad_ckpt(_meta_generator_config_invalid, ["hidden"]),
                 id="sample-meta-config-invalid"),
    pytest.param(_bad_ckpt(_meta_generator_not_a_table, ["generator"]),
                 id="sample-meta-generator-not-a-table"),
    pytest.param(_bad_ckpt(_json_depth_bomb, []), id="sample-metadata-json-depth-bomb"),
    pytest.param(_bad_ckpt(_other_width, ["generator.", "shape", "(12, 2)", "(8, 2)"]),
                 id="sample-other-architecture"),
    pytest.param(_bad_ckpt(_half, ["truncated"], command="eval"), id="eval-truncated-checkpoint"),
    pytest.param(_bad_ckpt(_noise, [], command="eval"), id="eval-random-bytes"),
    pytest.param(_bad_ckpt(_plain_safetensors, ["not a ganframe checkpoint"], command="eval"),
                 id="eval-foreign-safetensors"),
    pytest.param(_bad_ckpt(_torch_zip, ["torch.save() archive"], command="eval",
                           name="model.pt"), id="eval-torch-archive"),
    pytest.param(_bad_ckpt(_declares_huge_generator, ["does not fit", "nothing was built"]),
                 id="sample-declares-a-huge-generator"),
    pytest.param(_bad_ckpt(_declares_huge_generator, ["does not fit"], command="eval"),
                 id="eval-declares-a-huge-generator"),
    pytest.param(_bad_ckpt(_declares_huge_data, ["does not fit"]),
                 id="sample-declares-huge-data"),
    pytest.param(_eval_set_data("data.type=mnist", ["data.KEY=VALUE"]), id="eval-set-data-type"),
    pytest.param(_eval_set_data("data.size=-3", ["data.size"]), id="eval-set-data-invalid"),
    # checkpoints met by --resume
    pytest.param(_resume_row(_truncate_all, ["{run}", "truncated"]),
                 id="resume-all-checkpoints-truncated"),
    pytest.param(_resume_row(_foreign_all, ["{run}", "not a ganframe checkpoint"]),
                 id="resume-foreign-checkpoints"),
    pytest.param(_resume_row(_wider_generator, ["last.safetensors", "[generator]",
                                                "(hidden: 8 -> 12)"]),
                 id="resume-other-generator-width"),
    pytest.param(_resume_row(_other_data, ["last.safetensors", "[data]",
                                           "(size: 128 -> 256)"]),
                 id="resume-other-data"),
    pytest.param(_resume_row(_disguised_architecture, ["last.safetensors", "generator.",
                                                       "(12, 2)", "(8, 2)"]),
                 id="resume-checkpoint-of-other-shape"),
    # output folders, options, full disk
    pytest.param(_existing_run, id="existing-run-without-resume-or-force"),
    pytest.param(_out_is_a_file, id="out-is-a-file"),
    pytest.param(_out_parent_is_a_file, id="out-parent-is-a-file"),
    pytest.param(_out_read_only, id="out-parent-read-only"),
    pytest.param(_sample_into_a_file_path, id="sample-out-parent-is-a-file"),
    pytest.param(_sample_unknown_suffix, id="sample-unknown-suffix"),
    pytest.param(_max_steps_zero, id="max-steps-zero"),
    pytest.param(_sample_n_zero, id="sample-n-zero"),
    pytest.param(_nproc_zero, id="nproc-zero"),
    pytest.param(_absent_cuda, id="device-cuda-absent"),
    pytest.param(_disk_full_everywhere, id="disk-full"),
    pytest.param(_disk_full_at_checkpoint, id="disk-full-at-checkpoint", marks=ON_LINUX),
]


@pytest.mark.parametrize("build", OTHER_ROWS)
def test_bad_input(
    kit: Kit, monkeypatch: pytest.MonkeyPatch, request: pytest.FixtureRequest,
    build: Callable[[Kit], Bad],
) -> None:
    check(build(kit), monkeypatch, request.node.callspec.id)


def test_full_disk_leaves_the_previous_checkpoints_whole_and_the_run_resumable(
    kit: Kit, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Whatever the exit status (see the disk-full rows), a failed save must not damage the
    checkpoints already written nor leave temporary files, and once there is space again
    --resume continues from the last good checkpoint."""
    bad = _disk_full_at_checkpoint(kit)
    run = kit.tmp / "run"  # the copy _disk_full_at_checkpoint made
    kept = {k: (k.read_bytes(), k.stat().st_mtime_ns) for k in bad.keep}
    with monkeypatch.context() as m:
        assert bad.patch is not None
        bad.patch(m)
        result = invoke(bad.args)
    assert result.exit_code != 0
    assert "No space left on device" in result.stderr
    assert "Traceback" not in result.stderr + result.stdout
    for k, (data, mtime) in kept.items():
        assert k.read_bytes() == data and k.stat().st_mtime_ns == mtime, f"{k} changed"
    ckpts = run / "checkpoints"
    assert sorted(p.name for p in ckpts.iterdir()) == sorted(k.name for k in bad.keep)
    assert CheckpointDir(ckpts).latest() == ckpts / "last.safetensors"
    assert read_checkpoint(ckpts / "last.safetensors").meta["run"]["step"] == 4
    # space again: the run continues from step 4 and finishes
    result = invoke(bad.args)
    assert result.exit_code == 0, result.stderr
    assert "at step 4" in result.stderr
    assert read_checkpoint(ckpts / "last.safetensors").meta["run"]["step"] == 8
    TRIED.append("disk-full-then-resume")


def test_resume_into_a_folder_another_process_writes_changes_nothing(
    kit: Kit, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The folder's lock is held (by this process, as another run would hold it): a resume
    stops before touching anything, also the writer's temporary checkpoint."""
    from ganframe.runfolder import RunLock

    run = kit.run_copy()
    (run / "checkpoints" / ".step-00000006.safetensors.0123456789ab.tmp").write_bytes(b"writing")
    holder = RunLock(run)
    holder.acquire()
    try:
        check(Bad(["run", kit.recipe, "--out", run, "--resume", "--quiet", "--set",
                   "train.steps=8"], [str(run), f"pid {os.getpid()}", "another ganframe"],
                  guard=[run]), monkeypatch, "resume-while-another-process-writes")
    finally:
        holder.release()


# -- 5. the same through real processes: the exit status of the program itself --------------------


def ganframe(*args: str | Path) -> subprocess.CompletedProcess[str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("GANFRAME_")}
    env["OMP_NUM_THREADS"] = "1"
    return subprocess.run(
        [sys.executable, "-m", "ganframe", *map(str, args)],
        capture_output=True, text=True, env=env, timeout=300,
    )


def test_process_exit_status_is_2_for_a_typo_in_a_resumed_run(kit: Kit) -> None:
    text = TOY.replace("steps = 4", "stepz = 8")
    path = kit.write("typo.toml", text)
    run = kit.run_copy()
    before = snapshot(run)
    proc = ganframe("run", path, "--out", run, "--resume", "--quiet")
    assert proc.returncode == 2, (proc.stdout, proc.stderr)
    assert str(path) in proc.stderr and "train.stepz" in proc.stderr
    assert "Traceback" not in proc.stderr
    assert snapshot(run) == before
    TRIED.append("process-typo-in-resumed-run")


def test_process_exit_status_is_2_for_a_foreign_checkpoint_and_an_existing_run(kit: Kit) -> None:
    pt = kit.write("weights.pt", b"PK\x03\x04" + bytes(300))
    proc = ganframe("eval", pt)
    assert proc.returncode == 2, (proc.stdout, proc.stderr)
    assert str(pt) in proc.stderr and "Traceback" not in proc.stderr
    TRIED.append("process-eval-torch-archive")

    run = kit.run_copy()
    before = snapshot(run)
    proc = ganframe("run", kit.recipe, "--out", run, "--quiet")
    assert proc.returncode == 2, (proc.stdout, proc.stderr)
    assert str(run) in proc.stderr and "--resume" in proc.stderr
    assert "Traceback" not in proc.stderr
    assert snapshot(run) == before
    TRIED.append("process-existing-run")


def test_process_exit_status_is_2_for_a_truncated_idx_file(kit: Kit) -> None:
    bad, root = _mnist(kit, {IMAGES: _good_idx()[IMAGES][:500], LABELS: _good_idx()[LABELS]})
    proc = ganframe(*bad.args)
    assert proc.returncode == 2, (proc.stdout, proc.stderr)
    assert str(root / IMAGES) in proc.stderr and "truncated" in proc.stderr
    assert "Traceback" not in proc.stderr
    assert not (kit.tmp / "out").exists()
    TRIED.append("process-truncated-idx")
