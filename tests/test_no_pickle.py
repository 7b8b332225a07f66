"""No object deserialisation anywhere: checkpoints and data are read without pickle.

A checkpoint or data file may come from anybody; unpickling one runs whatever code it
names. So (1) no source file of the core or of the first-party plugins uses a deserialiser
that can run code, (2) loading, resuming, sampling and reading data work with every such
deserialiser made to fail, (3) a malicious pickle-based ``.pt`` file given as a checkpoint
is refused with exit 2 and is never unpickled, and (4) checkpoint metadata is JSON read
within limits (header size, nesting) so a hostile header cannot exhaust memory or crash.
"""

from __future__ import annotations

import json
import os
import pickle
import re
import struct
from collections.abc import Iterator
from pathlib import Path

import numpy as np
import pytest
import safetensors.torch
import torch
from typer.testing import CliRunner

import ganframe
from ganframe import api
from ganframe.checkpoint import (
    MAX_METADATA_BYTES,
    CheckpointDir,
    read_checkpoint,
    save_checkpoint,
)
from ganframe.cli import app
from ganframe.errors import UserError

REPO = Path(ganframe.__file__).resolve().parents[1]
_REAL_PICKLE_LOADS = pickle.loads
_REAL_TORCH_LOAD = torch.load

# -- 1. static: no code-executing deserialiser in the sources -------------------------------------

FORBIDDEN = {
    "pickle-like import": re.compile(
        r"^\s*(?:import|from)\s+(?:c?pickle|_pickle|dill|shelve|marshal|joblib|cloudpickle)\b",
        re.MULTILINE,
    ),
    "dynamic pickle import": re.compile(r"""(?:__import__|import_module)\(\s*["']c?pickle"""),
    "pickle call": re.compile(r"\bpickle\.(?:loads?|Unpickler)\b"),
    "torch.load": re.compile(r"\btorch\.(?:load|jit\.load|serialization\.load)\b"),
    "allow_pickle=True": re.compile(r"allow_pickle\s*=\s*True"),
    "object collectives": re.compile(
        r"\b(?:all_gather_object|broadcast_object_list|gather_object|scatter_object_list|"
        r"send_object_list|recv_object_list)\b"
    ),
    "hub loader": re.compile(r"\bload_state_dict_from_url\b"),
}


def source_files() -> list[Path]:
    """The core and every first-party plugin's code (their own tests excluded: a test may
    spell a forbidden name to check for it, as this file does)."""
    files = sorted((REPO / "ganframe").rglob("*.py"))
    for plugin in sorted((REPO / "plugins").glob("*/")):
        files += [
            p for p in sorted(plugin.rglob("*.py"))
            if "tests" not in p.relative_to(plugin).parts
        ]
    return files


def violations(text: str) -> list[str]:
    return [name for name, pattern in FORBIDDEN.items() if pattern.search(text)]


def test_the_scanner_finds_each_forbidden_use() -> None:
    """Guard against a vacuous static check: every pattern fires on a sample."""
    samples = {
        "pickle-like import": "import pickle\n",
        "dynamic pickle import": "m = importlib.import_module('pickle')",
        "pickle call": "obj = pickle.loads(data)",
        "torch.load": "state = torch.load(path, weights_only=True)",
        "allow_pickle=True": "np.load(f, allow_pickle = True)",
        "object collectives": "dist.broadcast_object_list(objs)",
        "hub loader": "load_state_dict_from_url(url)",
    }
    assert samples.keys() == FORBIDDEN.keys()
    for name, sample in samples.items():
        assert name in violations(sample), name
    assert violations("from ganframe import api\nnp.save(f, a, allow_pickle=False)\n") == []


def test_no_source_file_uses_a_code_executing_deserialiser() -> None:
    files = source_files()
    assert len(files) > 30, files  # the core and both plugins were found
    assert any("ganframe_dcgan" in str(p) for p in files)
    assert any("ganframe_poet" in str(p) for p in files)
    found = {
        str(p.relative_to(REPO)): v
        for p in files
        if (v := violations(p.read_text(encoding="utf-8")))
    }
    assert found == {}


def test_shipped_weights_and_data_files_are_not_pickles() -> None:
    """Files shipped inside packages (e.g. a metric's classifier) are safetensors."""
    shipped = [
        p for root in (REPO / "ganframe", *sorted((REPO / "plugins").glob("*/")))
        for p in root.rglob("*")
        if p.is_file() and p.suffix in {".pt", ".pth", ".pkl", ".pickle", ".bin", ".ckpt",
                                         ".npy", ".npz", ".joblib", ".safetensors"}
        and "tests" not in p.parts
    ]
    for path in shipped:
        assert path.suffix == ".safetensors", path
        read_header = path.read_bytes()[:8]
        assert struct.unpack("<Q", read_header)[0] < MAX_METADATA_BYTES, path


# -- 2. runtime: everything works with every deserialiser made to fail ----------------------------


class Spy:
    """Stands in for a deserialiser: records the call, then refuses."""

    def __init__(self, name: str, calls: list[str]) -> None:
        self.name, self.calls = name, calls

    def __call__(self, *args: object, **kwargs: object) -> None:
        self.calls.append(self.name)
        raise AssertionError(f"{self.name} was called")


@pytest.fixture
def no_unpickling(monkeypatch: pytest.MonkeyPatch) -> Iterator[list[str]]:
    import _pickle

    calls: list[str] = []
    targets = [
        (pickle, "load"), (pickle, "loads"), (pickle, "Unpickler"),
        (_pickle, "load"), (_pickle, "loads"), (_pickle, "Unpickler"),
        (torch, "load"), (torch.serialization, "load"), (torch.jit, "load"),
        (np, "load"),
    ]
    for module, name in targets:
        monkeypatch.setattr(module, name, Spy(f"{module.__name__}.{name}", calls))
    yield calls
    assert calls == [], f"deserialisers were called: {calls}"


TOY = """
name = "toy"
seed = 2
device = "cpu"
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
steps = 4
log_every = 2
checkpoint_every = 2
ema = 0.5
"""


@pytest.fixture
def toy_run(tmp_path: Path) -> tuple[Path, Path]:
    recipe = tmp_path / "toy.toml"
    recipe.write_text(TOY, encoding="utf-8")
    out = tmp_path / "run"
    api.train(api.load_recipe(recipe), out=out, max_steps=2)
    return recipe, out


def test_load_sample_resume_and_cli_without_any_deserialiser(
    toy_run: tuple[Path, Path], tmp_path: Path, no_unpickling: list[str]
) -> None:
    recipe, out = toy_run
    last = out / "checkpoints" / "last.safetensors"
    ckpt = read_checkpoint(last)
    assert ckpt.meta["run"]["step"] == 2
    loaded = api.load_checkpoint(last)
    x = api.sample(loaded, 10, seed=1)
    assert x.shape == (10, 2) and torch.isfinite(x).all()
    # resuming reads the checkpoint (and its optimizer/RNG state) the same way
    result = api.train(api.load_recipe(recipe), out=out, resume=True)
    assert result.step == 4
    # and so does the command line
    runner = CliRunner()
    res = runner.invoke(app, ["sample", str(out), "-n", "8", "-o", str(tmp_path / "s.png")])
    assert res.exit_code == 0, res.stderr
    res = runner.invoke(app, ["eval", str(out), "--metric", "ring-modes", "--json"])
    assert res.exit_code == 0, res.stderr
    assert no_unpickling == []


def _idx(array: np.ndarray, magic: int) -> bytes:
    a = np.ascontiguousarray(array, dtype=np.uint8)
    return struct.pack(f">i{a.ndim}i", magic, *a.shape) + a.tobytes()


def test_first_party_datasets_load_without_any_deserialiser(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, no_unpickling: list[str]
) -> None:
    """Data files are parsed, never unpickled; a run of each plugin takes a step."""
    monkeypatch.delenv("GANFRAME_DATA", raising=False)
    monkeypatch.setenv("GANFRAME_CACHE", str(tmp_path / "cache"))
    ran = []
    if _installed("ganframe_dcgan"):
        root = tmp_path / "mnist"
        root.mkdir()
        rng = np.random.default_rng(0)
        (root / "train-images-idx3-ubyte").write_bytes(
            _idx(rng.integers(0, 256, (16, 28, 28)), 2051)
        )
        (root / "train-labels-idx1-ubyte").write_bytes(_idx(rng.integers(0, 10, 16), 2049))
        sets = ['device="cpu"', f"data.root={json.dumps(str(root))}", "data.download=false",
                "metrics=[]", "generator.base_width=4", "critic.base_width=4",
                "train.batch_size=8", "train.steps=1", "train.sample_every=0"]
        res = api.train(api.load_recipe("dcgan-mnist", sets), out=tmp_path / "dcgan")
        assert res.step == 1 and read_checkpoint(res.checkpoint).meta["data_info"]["size"] == 16
        ran.append("dcgan")
    if _installed("ganframe_poet"):
        chars = "春风花月夜山水云天地日星江河湖海松竹梅兰雪雨霜露朝暮秋冬夏晴寒烟柳桥舟客酒歌"
        pick = np.random.default_rng(1).integers(0, len(chars), (60, 4, 5))
        poems = tmp_path / "poems.txt"
        poems.write_text(
            "\n".join(
                "".join(
                    "".join(chars[c] for c in line) + p
                    for line, p in zip(poem, "，。，。", strict=True)
                )
                for poem in pick
            ),
            encoding="utf-8",
        )
        sets = ['device="cpu"', f"data.path={json.dumps(str(poems))}", "metrics=[]",
                "generator.hidden_dim=8", "generator.embedding_dim=4",
                "generator.num_layers=1", "critic.filters=2", "critic.embedding_dim=4",
                "train.batch_size=8", 'phases.0={name = "mle", loss = { type = "mle" }, '
                "steps = 1}", "phases.1.steps=1", "phases.2.steps=1",
                "phases.2.loss.rollouts=1", "phases.2.loss.samples=4"]
        res = api.train(api.load_recipe("lstm-poet", sets), out=tmp_path / "poet")
        assert res.step == 3
        x = api.sample(res.checkpoint, 3, seed=0)
        assert x.dtype == torch.long and x.shape[0] == 3
        ran.append("poet")
    if not ran:
        pytest.skip("neither first-party plugin is installed")


def _installed(module: str) -> bool:
    try:
        __import__(module)
    except ImportError:
        return False
    return True


# -- 3. a malicious pickle given as a checkpoint --------------------------------------------------


class Payload:
    """Unpickling this creates a folder: the visible trace of code run by a deserialiser."""

    def __init__(self, marker: Path) -> None:
        self.marker = marker

    def __reduce__(self):  # type: ignore[no-untyped-def]
        return (os.mkdir, (str(self.marker),))


@pytest.fixture
def evil_files(tmp_path: Path) -> tuple[list[Path], Path]:
    marker = tmp_path / "PWNED"
    zip_pt = tmp_path / "model.pt"
    torch.save({"state_dict": Payload(marker)}, zip_pt)  # the zip archive format
    legacy = tmp_path / "legacy.pt"
    torch.save({"x": Payload(marker)}, legacy, _use_new_zipfile_serialization=False)
    raw = tmp_path / "weights.pkl"
    raw.write_bytes(pickle.dumps(Payload(marker), protocol=4))
    disguised = tmp_path / "model.safetensors"  # the same bytes under a trusted name
    disguised.write_bytes(zip_pt.read_bytes())
    # the payload really runs when a file is unpickled (what must never happen below)
    proof = Payload(tmp_path / "proof")
    _REAL_PICKLE_LOADS(pickle.dumps(proof))
    assert proof.marker.is_dir()
    _REAL_TORCH_LOAD(zip_pt, weights_only=False)
    assert marker.is_dir()
    marker.rmdir()
    return [zip_pt, legacy, raw, disguised], marker


@pytest.mark.parametrize("command", ["sample", "eval"])
def test_malicious_pickle_checkpoint_is_refused_without_unpickling(
    evil_files: tuple[list[Path], Path], tmp_path: Path, command: str,
    no_unpickling: list[str],
) -> None:
    files, marker = evil_files
    runner = CliRunner()
    for path in files:
        args = [command, str(path)]
        args += ["-o", str(tmp_path / "x.png")] if command == "sample" else ["-m", "ring-modes"]
        res = runner.invoke(app, args)
        assert res.exit_code == 2, (path, res.exit_code, res.stderr, res.exception)
        assert str(path) in res.stderr, res.stderr
        assert "Traceback" not in res.stderr + res.stdout
        assert not marker.exists(), "the pickle payload ran"
    assert no_unpickling == []


def test_malicious_pickle_in_a_run_folder_is_never_resumed_from(
    evil_files: tuple[list[Path], Path], toy_run: tuple[Path, Path], no_unpickling: list[str],
) -> None:
    """A hostile file under the name of the newest checkpoint: --resume passes it over (its
    header is not safetensors) and continues from the sound step file."""
    files, marker = evil_files
    recipe, out = toy_run
    ckpts = out / "checkpoints"
    (ckpts / "last.safetensors").write_bytes(files[0].read_bytes())
    (ckpts / "step-00000009.safetensors").write_bytes(files[1].read_bytes())
    assert CheckpointDir(ckpts).latest() == ckpts / "step-00000002.safetensors"
    res = CliRunner().invoke(app, ["run", str(recipe), "--out", str(out), "--resume", "-q"])
    assert res.exit_code == 0, res.stderr
    assert "resuming from" in res.stderr and "step-00000002.safetensors" in res.stderr
    assert read_checkpoint(ckpts / "last.safetensors").meta["run"]["step"] == 4
    assert not marker.exists()
    assert no_unpickling == []


# -- 4. metadata is JSON read within limits --------------------------------------------------------
# (a header length over MAX_METADATA_BYTES is refused by read_checkpoint: test_checkpoint.py)


def test_writing_metadata_over_the_limit_is_refused_and_writes_nothing(tmp_path: Path) -> None:
    path = tmp_path / "big.safetensors"
    with pytest.raises(ValueError, match="MAX_METADATA_BYTES"):
        save_checkpoint(
            path, modules={"generator": torch.nn.Linear(2, 2)}, optimizers={},
            meta={"blob": "x" * (MAX_METADATA_BYTES + 1)}, rng=False,
        )
    assert list(tmp_path.iterdir()) == []


@pytest.mark.parametrize("claimed", [2**64 - 1, 2**63, MAX_METADATA_BYTES * 64])
def test_absurd_header_lengths_are_refused_before_any_allocation(
    tmp_path: Path, claimed: int
) -> None:
    path = tmp_path / "claim.safetensors"
    path.write_bytes(struct.pack("<Q", claimed) + b'{"__metadata__": {}}')
    with pytest.raises(UserError, match="header"):
        read_checkpoint(path)
    # and a resume never picks such a file
    assert CheckpointDir(tmp_path).latest() is None


def _nested(depth: int) -> str:
    return "[" * depth + "]" * depth




def test_deeply_nested_header_json_is_a_user_error(tmp_path: Path) -> None:
    raw = ('{"a": ' + _nested(100_000) + "}").encode()
    path = tmp_path / "step-00000001.safetensors"
    path.write_bytes(struct.pack("<Q", len(raw)) + raw)
    with pytest.raises(UserError, match="header"):
        read_checkpoint(path)
    assert CheckpointDir(tmp_path).latest() is None


def test_deeply_nested_ganframe_metadata_is_a_user_error(tmp_path: Path) -> None:
    path = tmp_path / "step-00000001.safetensors"
    meta = '{"format": 1, "deep": ' + _nested(100_000) + "}"
    safetensors.torch.save_file({"w": torch.zeros(2)}, str(path), metadata={"ganframe": meta})
    with pytest.raises(UserError, match=re.escape(str(path))):
        read_checkpoint(path)
    res = CliRunner().invoke(app, ["sample", str(path), "-o", str(tmp_path / "x.png")])
    assert res.exit_code == 2, (res.exit_code, res.stderr)
