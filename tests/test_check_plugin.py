"""``ganframe check-plugin NAME``: every component of a plugin imported, built on tiny data and
held to its contract, every shipped recipe run for two steps; per-component report, exit 1 on
any failure.

The plugins checked are modules in a temporary folder loaded with
``ganframe.testing.host_with`` (no installation), in this process: one that gets everything
right (a dataset read from a user's ``.npz`` by the data-path convention, an MLP generator
and critic, a relativistic loss, a metric, an optimiser, a schedule, a logger, a callback, a
sample writer, a command and a shipped recipe), and one that gets each contract wrong.
"""

from __future__ import annotations

import json
import socket
import sys
import textwrap
from collections.abc import Iterator
from pathlib import Path

import numpy as np
import pytest
from typer.testing import CliRunner

from ganframe.cli import app
from ganframe.devtools.checkplugin import check_plugin, offline, tiny_recipe
from ganframe.errors import UserError
from ganframe.testing import host_with

PLUGIN = '''
from importlib.resources import files

from pydantic import BaseModel, ConfigDict, Field

from ganframe import hookimpl

P = "ganframe_chk.parts"


class Strict(BaseModel):
    model_config = ConfigDict(extra="forbid")


class NpzConfig(Strict):
    path: str = Field("points.npz", description="An .npz file with an array 'points'.")


class MlpConfig(Strict):
    width: int = 16
    latent_dim: int = 4


class SgdConfig(Strict):
    lr: float = Field(0.01, gt=0)


class EveryConfig(Strict):
    every: int = 1


@hookimpl
def register_datasets(register):
    register("npz-points", f"{P}:NpzPoints", config=NpzConfig)


@hookimpl
def register_generators(register):
    register("chk-mlp", f"{P}:build_generator", config=MlpConfig)


@hookimpl
def register_critics(register):
    register("chk-mlp", f"{P}:build_critic", config=MlpConfig)


@hookimpl
def register_losses(register):
    register("chk-ragan", f"{P}:RaGan")


@hookimpl
def register_metrics(register):
    register("chk-spread", f"{P}:Spread")


@hookimpl
def register_optimizers(register):
    register("chk-sgd", f"{P}:sgd", config=SgdConfig)


@hookimpl
def register_schedules(register):
    register("chk-halving", f"{P}:Halving")


@hookimpl
def register_loggers(register):
    register("chk-null", f"{P}:NullLogger")


@hookimpl
def register_callbacks(register):
    register("chk-every", f"{P}:Every", config=EveryConfig)


@hookimpl
def register_sample_writers(register):
    register("points", ".chk", f"{P}:write_chk")


@hookimpl
def register_commands(register):
    register("chk-hello", f"{P}:hello")


@hookimpl
def register_recipes(register):
    register("chk-npz", files("ganframe_chk") / "npz.toml")
'''

PARTS = '''
import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from ganframe.components import LatentGenerator, StepOutput
from ganframe.loop.events import Callback


class NpzPoints:
    kind = "points"

    def __init__(self, config, ctx):
        path = ctx.data_path(config, "path", must_exist=True)
        with np.load(path) as archive:
            self.points = torch.from_numpy(archive["points"]).float()

    def __len__(self):
        return self.points.shape[0]

    def get(self, index):
        return self.points[index]

    def info(self):
        return {"dim": int(self.points.shape[1]), "plot_range": [-3.0, 3.0]}


class Mlp(LatentGenerator):
    def __init__(self, latent_dim, width, dim):
        super().__init__()
        self.latent_dim = latent_dim
        self.net = nn.Sequential(nn.Linear(latent_dim, width), nn.ReLU(), nn.Linear(width, dim))

    def forward(self, z):
        return self.net(z)


def build_generator(config, ctx):
    return Mlp(config.latent_dim, config.width, int(ctx.data_info["dim"]))


def build_critic(config, ctx):
    dim = int(ctx.data_info["dim"])
    width = config.width
    return nn.Sequential(nn.Linear(dim, width), nn.LeakyReLU(0.2), nn.Linear(config.width, 1))


class RaGan:
    trains_critic = True
    trains_generator = True

    def __init__(self, config, ctx):
        pass

    def critic_loss(self, ctx, real):
        fake = ctx.fake(real.shape[0]).detach()
        r, f = ctx.score(real).reshape(-1), ctx.score(fake).reshape(-1)
        return StepOutput(F.softplus(-(r - f.mean())).mean(), {"gap": (r - f).mean().detach()})

    def generator_loss(self, ctx, real):
        r, f = ctx.score(real).reshape(-1), ctx.score(ctx.fake(real.shape[0])).reshape(-1)
        return StepOutput(F.softplus(-(f - r.mean())).mean())


class Spread:
    def __init__(self, config, ctx):
        pass

    def evaluate(self, generator, dataset, ctx):
        x = generator.generate(32, device=ctx.device, rng=torch.Generator().manual_seed(0))
        return {"spread": float(x.std()), "per_axis": [float(v) for v in x.std(0)]}


def sgd(config, params):
    return torch.optim.SGD(params, lr=config.lr)


class Halving:
    def __init__(self, config):
        pass

    def factor(self, step, total):
        return 0.5 ** (step / max(1, total))


class NullLogger(Callback):
    def __init__(self, config, ctx):
        self.rows = 0

    def on_log(self, trainer, row):
        self.rows += 1


class Every(Callback):
    def __init__(self, config, ctx):
        self.every = config.every


def write_chk(samples, path, info):
    path.write_text("\\n".join(" ".join(f"{v:.4f}" for v in row) for row in samples.tolist()))


def hello():
    print("hello")
'''

RECIPE = """\
name = "chk-npz"
device = "cpu"

[data]
type = "npz-points"

[generator]
type = "chk-mlp"

[critic]
type = "chk-mlp"

[loss]
type = "chk-ragan"

[optim.generator]
type = "chk-sgd"

[optim.generator.schedule]
type = "chk-halving"

[train]
batch_size = 64
epochs = 3

[[metrics]]
type = "chk-spread"

[[loggers]]
type = "jsonl"

[[loggers]]
type = "chk-null"

[[callbacks]]
type = "chk-every"
"""

#: Each contract broken once: (where in PARTS, replaced by, the row that fails, it says).
BREAKS = [
    ("        return self.net(z)", "        return self.net(z)[:3]",
     ("generator", "chk-mlp"), "generate(4) returned 3 samples"),
    ("nn.Linear(config.width, 1))", "nn.Linear(config.width, 2))",
     ("critic", "chk-mlp"), "scored a batch of 4 to torch.Size([4, 2]), not (4,) or (4, 1)"),
    ("return StepOutput(F.softplus(-(f - r.mean())).mean())",
     "return StepOutput(F.softplus(-(f - r.mean())).mean() * float('nan'))",
     ("loss", "chk-ragan"), "generator_loss's loss is not one finite number"),
    ('return {"spread": float(x.std()),', 'return {"spread": "wide",',
     ("metric", "chk-spread"), "values that are not finite numbers: spread"),
    ("return torch.optim.SGD(params, lr=config.lr)", "return object()",
     ("optimizer", "chk-sgd"), "built a object, not a torch.optim.Optimizer"),
    ("return 0.5 ** (step / max(1, total))", "return float('inf')",
     ("schedule", "chk-halving"), "not finite numbers"),
    ("class NullLogger(Callback):", "class NullLogger:",
     ("logger", "chk-null"), "built a NullLogger, not a ganframe.loop.events.Callback"),
    ("        return {\"dim\": int(self.points.shape[1]), \"plot_range\": [-3.0, 3.0]}",
     "        return {\"dim\": int(self.points.shape[1]), \"range\": {1, 2}}",
     ("dataset", "npz-points"), "Object of type set is not JSON serializable"),
]


def write_plugin(root: Path, parts: str = PARTS, package: str = "ganframe_chk") -> Path:
    folder = root / "src" / package
    folder.mkdir(parents=True)
    (folder / "__init__.py").write_text("", encoding="utf-8")
    (folder / "plugin.py").write_text(textwrap.dedent(PLUGIN).replace("ganframe_chk", package),
                                      encoding="utf-8")
    (folder / "parts.py").write_text(textwrap.dedent(parts), encoding="utf-8")
    (folder / "npz.toml").write_text(RECIPE, encoding="utf-8")
    return root / "src"


@pytest.fixture
def data(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """$GANFRAME_DATA with the user's points.npz; the working directory elsewhere."""
    folder = tmp_path / "data"
    folder.mkdir()
    rng = np.random.default_rng(0)
    np.savez(folder / "points.npz", points=rng.normal(size=(200, 2)).astype(np.float32))
    monkeypatch.setenv("GANFRAME_DATA", str(folder))
    work = tmp_path / "work"
    work.mkdir()
    monkeypatch.chdir(work)
    return folder


@pytest.fixture
def plugin_path(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[Path]:
    src = write_plugin(tmp_path)
    monkeypatch.syspath_prepend(str(src))
    yield src
    for name in [m for m in sys.modules if m.startswith("ganframe_chk")]:
        del sys.modules[name]


def rows(report) -> dict[tuple[str, str], tuple[str, str]]:
    return {(r.kind, r.name): (r.status, r.detail) for r in report.rows}


def test_a_plugin_that_gets_everything_right_passes(data: Path, plugin_path: Path) -> None:
    with host_with("ganframe_chk.plugin") as host:
        report = check_plugin("chk", host=host)
    found = rows(report)
    assert report.ok, report.text()
    assert {status for status, _ in found.values()} == {"ok"}, report.text()
    assert set(found) == {
        ("dataset", "npz-points"), ("generator", "chk-mlp"), ("critic", "chk-mlp"),
        ("loss", "chk-ragan"), ("metric", "chk-spread"), ("optimizer", "chk-sgd"),
        ("schedule", "chk-halving"), ("logger", "chk-null"), ("callback", "chk-every"),
        ("sample writer", "points .chk"), ("command", "chk-hello"), ("recipe", "chk-npz"),
    }
    assert "200 items" in found[("dataset", "npz-points")][1]
    assert "generate(4) gives (4, 2) (dataset 'npz-points')" in found[("generator", "chk-mlp")][1]
    assert "critic_loss" in found[("loss", "chk-ragan")][1]
    assert "ran 2 step(s)" in found[("recipe", "chk-npz")][1]
    assert json.loads(json.dumps(report.as_json()))["ok"] is True


@pytest.mark.parametrize("old,new,row,says", BREAKS, ids=[b[2][0] for b in BREAKS])
def test_each_broken_contract_fails_its_row(
    old: str, new: str, row: tuple[str, str], says: str, data: Path, tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    parts = textwrap.dedent(PARTS)
    assert parts.count(old) == 1, old
    package = f"ganframe_chk_{row[0].replace(' ', '_')}"
    monkeypatch.syspath_prepend(str(write_plugin(tmp_path, parts.replace(old, new), package)))
    try:
        with host_with(f"{package}.plugin") as host:
            name = package.removeprefix("ganframe_")
            report = check_plugin(name, host=host, recipes=False)
    finally:
        for module in [m for m in sys.modules if m.startswith(package)]:
            del sys.modules[module]
    found = rows(report)
    assert not report.ok
    status, detail = found[row]
    assert status == "failed" and says in detail, report.text()
    failed = [key for key, (status, _) in found.items() if status == "failed"]
    assert failed == [row], report.text()  # the others still pass


def test_missing_data_skips_with_the_reason_and_does_not_fail(
    plugin_path: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("GANFRAME_DATA", str(tmp_path / "empty"))
    monkeypatch.chdir(tmp_path)
    with host_with("ganframe_chk.plugin") as host:
        report = check_plugin("chk", host=host)
    found = rows(report)
    for key in (("dataset", "npz-points"), ("recipe", "chk-npz")):
        status, detail = found[key]
        assert status == "skipped", report.text()
        assert detail.startswith("its data is not available here: data.path: 'points.npz' "
                                 "was found in none of $GANFRAME_DATA"), detail
    assert found[("generator", "chk-mlp")][0] == "ok"  # tried with fake points instead
    assert "(fake points data)" in found[("generator", "chk-mlp")][1]
    assert report.ok


def test_an_import_error_fails_the_component_without_trying_data(
    data: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    parts = "import kornia  # not installed\n" + textwrap.dedent(PARTS)
    monkeypatch.syspath_prepend(str(write_plugin(tmp_path, parts, "ganframe_chk_imp")))
    try:
        with host_with("ganframe_chk_imp.plugin") as host:
            report = check_plugin("chk_imp", host=host)
    finally:
        for module in [m for m in sys.modules if m.startswith("ganframe_chk_imp")]:
            del sys.modules[module]
    status, detail = rows(report)[("generator", "chk-mlp")]
    assert status == "failed"
    assert detail.startswith("plugin chk_imp ((not installed) 0): generator 'chk-mlp': cannot "
                             "import its factory 'ganframe_chk_imp.parts:build_generator': "
                             "ModuleNotFoundError: No module named 'kornia'")
    assert detail.endswith("(ganframe_chk_imp/parts.py:1)")
    assert "with fake" not in detail


def test_the_command_reports_and_exits_by_the_outcome(data: Path, plugin_path: Path) -> None:
    runner = CliRunner()
    with host_with("ganframe_chk.plugin"):
        result = runner.invoke(app, ["check-plugin", "chk", "--json", "--no-recipes"])
        assert result.exit_code == 0, result.output
        doc = json.loads(result.stdout)
        assert doc["plugin"] == "chk" and doc["ok"] is True
        assert "recipe" not in {r["kind"] for r in doc["components"]}
        table = runner.invoke(app, ["check-plugin", "chk", "--no-recipes"])
        assert table.exit_code == 0 and "chk-ragan" in table.stdout
        missing = runner.invoke(app, ["check-plugin", "nope"])
        assert missing.exit_code == 2
        assert "no plugin named 'nope'" in missing.output


def test_the_command_exits_1_on_a_failure(data: Path, tmp_path: Path,
                                          monkeypatch: pytest.MonkeyPatch) -> None:
    old, new, _row, _says = BREAKS[0]
    parts = textwrap.dedent(PARTS).replace(old, new)
    monkeypatch.syspath_prepend(str(write_plugin(tmp_path, parts, "ganframe_chk_fail")))
    try:
        with host_with("ganframe_chk_fail.plugin"):
            result = CliRunner().invoke(app, ["check-plugin", "chk_fail", "--json"])
    finally:
        for module in [m for m in sys.modules if m.startswith("ganframe_chk_fail")]:
            del sys.modules[module]
    assert result.exit_code == 1, result.output
    doc = json.loads(result.stdout)
    assert doc["ok"] is False
    failed = [(r["kind"], r["name"]) for r in doc["components"] if r["status"] == "failed"]
    assert failed == [("generator", "chk-mlp"), ("recipe", "chk-npz")]  # the recipe uses it


@pytest.mark.parametrize("plugin", ["ganframe.builtin.toy_plugin",
                                    "ganframe.builtin.losses_plugin",
                                    "ganframe.builtin.optim_plugin",
                                    "ganframe.builtin.writers_plugin"])
def test_the_cores_own_plugins_pass(plugin: str) -> None:
    report = check_plugin(plugin, recipes=plugin.endswith("toy_plugin"))
    assert report.ok, report.text()
    skipped = {r.name: r.detail for r in report.rows if r.status == "skipped"}
    # what cannot be tried without more than defaults says so; nothing else is skipped
    expected = {
        "ganframe.builtin.toy_plugin": {"ring-label-accuracy": "needs a conditional generator"},
        "ganframe.builtin.optim_plugin": {"warmup": "its options need values to build it: steps"},
    }.get(plugin, {})
    assert set(skipped) == set(expected), report.text()
    assert all(why in skipped[name] for name, why in expected.items()), report.text()
    if plugin.endswith("writers_plugin"):
        assert {r.detail.split(" (")[0] for r in report.rows} == {"wrote 4 samples fake"}


def test_a_plugin_that_failed_to_load_fails_the_check(tmp_path: Path,
                                                      monkeypatch: pytest.MonkeyPatch) -> None:
    (tmp_path / "gfk_broken.py").write_text("raise RuntimeError('no')\n", encoding="utf-8")
    monkeypatch.syspath_prepend(str(tmp_path))
    try:
        with host_with(broken="gfk_broken", check=False) as host:
            report = check_plugin("broken", host=host)
    finally:
        sys.modules.pop("gfk_broken", None)
    assert not report.ok
    assert report.rows[0].status == "failed" and "RuntimeError: no" in report.rows[0].detail
    with pytest.raises(UserError, match="no plugin named 'ghost'"):
        check_plugin("ghost", host=host)


def test_the_network_is_off_during_the_check() -> None:
    with offline():
        with pytest.raises(OSError, match="switched off during 'ganframe check-plugin'"):
            socket.create_connection(("127.0.0.1", 9))
        with socket.socket() as sock, pytest.raises(OSError, match="switched off"):
            sock.connect(("127.0.0.1", 9))
    assert socket.create_connection.__name__ == "create_connection"  # given back


def test_recipes_are_cut_down_to_a_smoke_run() -> None:
    doc = {"device": "cuda", "train": {"batch_size": 512, "precision": "fp16", "compile": True},
           "phases": [{"name": "a", "epochs": 3, "loss": {"type": "mle"}},
                      {"name": "b", "steps": 900, "loss": {"type": "x"}}],
           "metrics": [{"type": "fid"}]}
    small = tiny_recipe(doc)
    assert small["device"] == "cpu" and small["metrics"] == []
    assert [(p.get("steps"), "epochs" in p) for p in small["phases"]] == [(1, False), (1, False)]
    assert small["train"]["batch_size"] == 8 and small["train"]["precision"] == "fp32"
    assert doc["train"]["batch_size"] == 512  # the original is left alone
    single = tiny_recipe({"train": {"epochs": 2}})
    assert single["train"]["steps"] == 2 and "epochs" not in single["train"]
