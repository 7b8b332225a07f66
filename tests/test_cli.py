"""The ``ganframe`` command: exit codes, messages and the files each command writes.

Real processes (``python -m ganframe``) are used where the exit status and stderr of the
actual program matter (validation errors, internal errors, one full run); the rest goes
through typer's CliRunner in this process, which exercises the same command functions and
error mapping without paying for a fresh torch import per call.
"""

from __future__ import annotations

import json
import os
import re
import shutil
import subprocess
import sys
import textwrap
import tomllib
from collections.abc import Iterator
from pathlib import Path

import numpy as np
import pytest
from typer.testing import CliRunner

from ganframe import api
from ganframe import plugins as plugin_host
from ganframe.cli import app

# The base recipe; the run below changes four keys with --set so overrides are observable.
TINY = """\
name = "tiny-ring"
seed = 0
device = "cpu"

[data]
type = "gaussian-ring"
size = 256

[generator]
type = "mlp"
hidden = 16
layers = 2
latent_dim = 4

[critic]
type = "mlp"
hidden = 16
layers = 2

[loss]
type = "non-saturating"

[optim.generator]
lr = 1e-3

[train]
batch_size = 32
steps = 100
log_every = 5
sample_count = 64
keep_last = 0

[[metrics]]
type = "ring-modes"
n_samples = 256
"""
OVERRIDES = [
    "train.batch_size=64",
    "data.size=512",
    "train.checkpoint_every=10",
    "train.sample_every=10",
]
SET_ARGS = [a for o in OVERRIDES for a in ("--set", o)]
STEP_FILE = re.compile(r"step-\d{8}\.safetensors")

# A generator that builds but fails while training: an internal error (a factory that fails
# to build is a plugin's UserError since issue 19; see tests/test_plugin_errors.py).
CRASH_PLUGIN = '''
from ganframe import hookimpl


def explode(config, ctx):
    import torch

    class Exploding(torch.nn.Module):
        latent_dim = 2

        def __init__(self):
            super().__init__()
            self.weight = torch.nn.Parameter(torch.zeros(1))

        def sample_latent(self, n, device, rng=None):
            return torch.zeros(n, 2, device=device)

        def forward(self, z):
            raise RuntimeError("generator blew up in training")

    return Exploding()


@hookimpl
def register_generators(register):
    register("crashgen", explode, summary="always fails to train")
'''


# -- helpers ------------------------------------------------------------------------------


def env(**extra: str) -> dict[str, str]:
    out = {k: v for k, v in os.environ.items() if not k.startswith("GANFRAME_DISABLE")}
    out["OMP_NUM_THREADS"] = "1"  # a shared 2-core box: OpenMP spinning makes torch crawl
    out.update(extra)
    return out


def ganframe(*args: str, **extra_env: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "ganframe", *args],
        capture_output=True, text=True, env=env(**extra_env), timeout=300,
    )


def cli(*args: str | Path):
    return CliRunner().invoke(app, [str(a) for a in args])


def assert_user_error(result, *needles: str) -> None:
    """Exit 2 through the error mapping (a SystemExit, so no traceback), message on stderr."""
    assert result.exit_code == 2, (result.exit_code, result.stdout, result.stderr)
    assert isinstance(result.exception, SystemExit), result.exception
    assert result.stderr.startswith("error: "), result.stderr
    for needle in needles:
        assert needle in result.stderr, (needle, result.stderr)


def snapshot(folder: Path) -> dict[str, bytes | None]:
    return {
        str(p.relative_to(folder)): (p.read_bytes() if p.is_file() else None)
        for p in sorted(folder.rglob("*"))
    }


def train_steps(run: Path) -> list[int]:
    rows = [json.loads(line) for line in (run / "metrics.jsonl").read_text().splitlines()]
    return [r["step"] for r in rows if r["event"] == "train"]


@pytest.fixture(scope="module", autouse=True)
def one_torch_thread() -> Iterator[None]:
    import torch

    before = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(before)


@pytest.fixture(scope="module")
def workdir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return tmp_path_factory.mktemp("cli")


@pytest.fixture(scope="module")
def recipe(workdir: Path) -> Path:
    path = workdir / "tiny.toml"
    path.write_text(TINY, encoding="utf-8")
    return path


def variant(folder: Path, name: str, text: str) -> Path:
    path = folder / name
    path.write_text(text, encoding="utf-8")
    return path


@pytest.fixture(scope="module")
def run(workdir: Path, recipe: Path) -> Path:
    """One real 20-step run, shared read-only by the tests below (they copy it to change it)."""
    out = workdir / "run"
    proc = ganframe("run", str(recipe), "--out", str(out), "--max-steps", "20", "--quiet",
                    *SET_ARGS)
    assert proc.returncode == 0, proc.stderr
    assert "step 20" in proc.stdout
    assert "Traceback" not in proc.stderr
    return out


def copy_run(run: Path, tmp_path: Path) -> Path:
    dst = tmp_path / "run"
    shutil.copytree(run, dst)
    return dst


# -- validate -----------------------------------------------------------------------------

BAD_RECIPES = {
    "syntax": (TINY.replace("[critic]", "[critic"), ["bad.toml", "not valid TOML"]),
    "unknown-key": (
        TINY.replace("latent_dim = 4", "laten_dim = 4"), ["generator.laten_dim", "unknown key"]
    ),
    "wrong-type": (
        TINY.replace("batch_size = 32", 'batch_size = "many"'), ["train.batch_size"]
    ),
    "negative": (
        TINY.replace("batch_size = 32", "batch_size = -32"),
        ["train.batch_size", "greater than 0"],
    ),
    "unknown-component": (
        TINY.replace('type = "non-saturating"', 'type = "hinj"'),
        ["loss.type", "'hinj'", "hinge", "wgan-gp", "lsgan"],
    ),
}


@pytest.mark.parametrize("case", sorted(BAD_RECIPES))
def test_validate_rejects_bad_recipe(case: str, tmp_path: Path) -> None:
    text, needles = BAD_RECIPES[case]
    path = variant(tmp_path, "bad.toml", text)
    proc = ganframe("validate", str(path))
    assert proc.returncode == 2, (proc.stdout, proc.stderr)
    assert str(path) in proc.stderr
    for needle in needles:
        assert needle in proc.stderr, (needle, proc.stderr)
    assert "Traceback" not in proc.stderr


def test_validate_ok_and_set_with_a_bad_key_path(recipe: Path) -> None:
    proc = ganframe("validate", str(recipe))
    assert proc.returncode == 0, proc.stderr
    assert "ok" in proc.stdout and "tiny-ring" in proc.stdout

    proc = ganframe("validate", str(recipe), "--set", "train.batch_size.x=1")
    assert proc.returncode == 2
    assert "train.batch_size" in proc.stderr
    assert "Traceback" not in proc.stderr


# -- run ----------------------------------------------------------------------------------


def test_run_writes_the_resolved_recipe(run: Path, recipe: Path) -> None:
    written = tomllib.loads((run / "recipe.toml").read_text(encoding="utf-8"))
    # --set overrides applied
    assert written["train"]["batch_size"] == 64
    assert written["data"]["size"] == 512
    assert written["train"]["checkpoint_every"] == 10
    # defaults filled in, for the core and for every component
    assert written["data"]["modes"] == 8 and written["data"]["seed"] == 0
    assert written["train"]["n_critic"] == 1 and written["train"]["ema"] == 0.0
    assert written["loss"]["r1_gamma"] == 0.0
    assert written["optim"]["generator"]["lr"] == pytest.approx(1e-3)
    assert written["optim"]["critic"]["type"] == "adam"
    assert written["metrics"][0]["sigmas"] == 3.0
    # the same settings as the recipe that was run, and it validates back to itself
    assert written == api.load_recipe(recipe, OVERRIDES).to_dict()
    assert api.load_recipe(run / "recipe.toml").to_dict() == written


def test_run_writes_metrics_checkpoints_and_samples(run: Path) -> None:
    rows = [json.loads(line) for line in (run / "metrics.jsonl").read_text().splitlines()]
    assert rows and all(isinstance(r["step"], int) for r in rows)
    assert train_steps(run) == [5, 10, 15, 20]
    metric = [r for r in rows if r["event"] == "metric"]
    assert [r["step"] for r in metric] == [20]
    assert {"modes_covered", "high_quality", "sliced_w1"} <= set(metric[0])

    ckpts = run / "checkpoints"
    steps = sorted(p.name for p in ckpts.iterdir() if STEP_FILE.fullmatch(p.name))
    assert steps == ["step-00000010.safetensors", "step-00000020.safetensors"]
    assert (ckpts / "last.safetensors").read_bytes() == (ckpts / steps[-1]).read_bytes()
    samples = sorted(p.name for p in (run / "samples").iterdir())
    assert samples == ["step-00000010.png", "step-00000020.png"]


def test_second_run_into_the_folder_is_refused_and_changes_nothing(
    run: Path, recipe: Path
) -> None:
    before = snapshot(run)
    result = cli("run", recipe, "--out", run, "--max-steps", "20", "--quiet", *SET_ARGS)
    assert_user_error(result, str(run), "--resume", "--force")
    assert snapshot(run) == before


def test_force_starts_over(run: Path, recipe: Path, tmp_path: Path) -> None:
    out = copy_run(run, tmp_path)
    result = cli("run", recipe, "--out", out, "--force", "--max-steps", "10", "--quiet",
                 *SET_ARGS)
    assert result.exit_code == 0, result.stderr
    ckpts = sorted(p.name for p in (out / "checkpoints").iterdir())
    assert ckpts == ["last.safetensors", "step-00000010.safetensors"]
    assert train_steps(out) == [5, 10]
    assert sorted(p.name for p in (out / "samples").iterdir()) == ["step-00000010.png"]


def test_resume_continues_to_max_steps(run: Path, recipe: Path, tmp_path: Path) -> None:
    from ganframe.checkpoint import read_checkpoint

    out = copy_run(run, tmp_path)
    result = cli("run", recipe, "--out", out, "--resume", "--max-steps", "40", "--quiet",
                 *SET_ARGS)
    assert result.exit_code == 0, result.stderr
    assert "step 40" in result.stdout
    assert train_steps(out) == [5, 10, 15, 20, 25, 30, 35, 40]  # continued, no duplicates
    last = read_checkpoint(out / "checkpoints" / "last.safetensors")
    assert last.meta["run"]["step"] == 40
    assert (out / "checkpoints" / "step-00000040.safetensors").is_file()


def test_run_a_registered_recipe_by_name(tmp_path: Path) -> None:
    listed = cli("recipes")
    assert listed.exit_code == 0 and "gaussian-ring" in listed.stdout
    as_json = json.loads(cli("recipes", "--json").stdout)
    assert {"name": "gaussian-ring", "plugin": "ganframe.builtin.toy_plugin"}.items() <= next(
        r for r in as_json if r["name"] == "gaussian-ring"
    ).items()

    out = tmp_path / "by-name"
    result = cli("run", "gaussian-ring", "--max-steps", "5", "--out", out, "--quiet")
    assert result.exit_code == 0, result.stderr
    assert (out / "checkpoints" / "step-00000005.safetensors").is_file()
    assert tomllib.loads((out / "recipe.toml").read_text())["name"] == "gaussian-ring"


NO_CRITIC = TINY.replace('[critic]\ntype = "mlp"\nhidden = 16\nlayers = 2\n', "")


def test_missing_critic_for_a_critic_loss_is_a_user_error(tmp_path: Path) -> None:
    assert "[critic]" not in NO_CRITIC
    path = variant(tmp_path, "nocritic.toml", NO_CRITIC)
    result = cli("run", path, "--out", tmp_path / "out", "--max-steps", "5", "--quiet")
    assert_user_error(result, "critic", "non-saturating")


def test_failed_start_leaves_the_folder_reusable(tmp_path: Path) -> None:
    out = tmp_path / "out"
    bad = variant(tmp_path, "nocritic.toml", NO_CRITIC)
    assert cli("run", bad, "--out", out, "--max-steps", "5", "--quiet").exit_code == 2
    good = variant(tmp_path, "fixed.toml", TINY)
    result = cli("run", good, "--out", out, "--max-steps", "5", "--quiet")
    assert result.exit_code == 0, result.stderr


def test_recipe_without_loss_table_runs_with_the_default_loss(tmp_path: Path) -> None:
    path = variant(tmp_path, "noloss.toml", TINY.replace('[loss]\ntype = "non-saturating"\n', ""))
    assert cli("validate", path).exit_code == 0
    out = tmp_path / "out"
    result = cli("run", path, "--out", out, "--max-steps", "5", "--quiet")
    assert result.exit_code == 0, result.stderr
    assert tomllib.loads((out / "recipe.toml").read_text())["loss"]["type"] == "non-saturating"


# -- sample and eval ----------------------------------------------------------------------


def test_sample_png_and_npy(run: Path, tmp_path: Path) -> None:
    from PIL import Image

    from ganframe.builtin.writers import PLOT_SIZE

    png = tmp_path / "s.png"
    result = cli("sample", run, "-n", "50", "-o", png)
    assert result.exit_code == 0, result.stderr
    with Image.open(png) as image:
        assert image.size == (PLOT_SIZE, PLOT_SIZE)
        colours = {c for _, c in image.convert("RGB").getcolors(maxcolors=1 << 16)}
    assert any(len(set(c)) > 1 for c in colours), "no points drawn (only white/grey pixels)"

    files = {}
    for name, seed in (("a", "3"), ("b", "3"), ("c", "4")):
        files[name] = tmp_path / f"{name}.npy"
        result = cli("sample", run / "checkpoints" / "last.safetensors", "-n", "37",
                     "--seed", seed, "-o", files[name])
        assert result.exit_code == 0, result.stderr
    a, b, c = (np.load(files[k], allow_pickle=False) for k in "abc")
    assert a.shape == (37, 2) and a.dtype == np.float32
    assert np.array_equal(a, b)
    assert not np.allclose(a, c)


def test_sample_errors(run: Path, tmp_path: Path) -> None:
    assert_user_error(cli("sample", tmp_path / "nope.safetensors", "-o", tmp_path / "x.npy"),
                      "nope.safetensors")

    corrupt = tmp_path / "corrupt.safetensors"
    data = (run / "checkpoints" / "last.safetensors").read_bytes()
    corrupt.write_bytes(data[: len(data) // 2])
    assert_user_error(cli("sample", corrupt, "-o", tmp_path / "x.npy"), "corrupt.safetensors")

    result = cli("sample", run, "-o", tmp_path / "x.xyz")
    assert_user_error(result, ".xyz", ".png", ".npy", ".csv")
    assert not (tmp_path / "x.xyz").exists()

    # A latent generator has no temperature: refused, not silently ignored.
    result = cli("sample", run, "-o", tmp_path / "t.npy", "--temperature", "0.5", "--top-k", "3")
    assert_user_error(result, "temperature", "top_k", "no sampling options")
    assert not (tmp_path / "t.npy").exists()


def test_corrupt_checkpoint_in_a_real_process(run: Path, tmp_path: Path) -> None:
    corrupt = tmp_path / "junk.safetensors"
    corrupt.write_bytes(b"\x07" * 64)
    proc = ganframe("sample", str(corrupt), "-o", str(tmp_path / "x.npy"))
    assert proc.returncode == 2
    assert "junk.safetensors" in proc.stderr
    assert "Traceback" not in proc.stderr


def test_eval_prints_ring_modes(run: Path) -> None:
    text = cli("eval", run)
    assert text.exit_code == 0, text.stderr
    assert "ring-modes" in text.stdout
    for key in ("modes_covered", "high_quality", "sliced_w1"):
        assert f"{key}:" in text.stdout

    as_json = cli("eval", run, "--metric", "ring-modes", "--json")
    assert as_json.exit_code == 0, as_json.stderr
    values = json.loads(as_json.stdout)["ring-modes"]
    assert 0 <= values["modes_covered"] <= 8
    assert 0.0 <= values["high_quality"] <= 1.0
    assert values["sliced_w1"] > 0
    assert f"modes_covered: {values['modes_covered']}" in text.stdout  # same seed, same value


def test_eval_of_a_named_metric_keeps_the_recipe_options(run: Path) -> None:
    # The recipe scores 256 points; the metric's default is 2,000. Naming the metric must
    # measure what training logged, not the defaults.
    from_recipe = api.evaluate(run)["ring-modes"]
    named = api.evaluate(run, ["ring-modes"])["ring-modes"]
    assert named == from_recipe


def test_eval_set_changes_a_metric_option(run: Path) -> None:
    base = json.loads(cli("eval", run, "--json").stdout)["ring-modes"]
    loose = cli("eval", run, "--json", "--set", "ring-modes.sigmas=40")
    assert loose.exit_code == 0, loose.stderr
    loose_values = json.loads(loose.stdout)["ring-modes"]
    # "High quality" within 40 std (2.0, the ring's radius) of a mode instead of 3 std.
    assert loose_values["high_quality"] > base["high_quality"] + 0.2, (loose_values, base)
    assert loose_values["sliced_w1"] == base["sliced_w1"]  # same samples, other threshold

    assert_user_error(cli("eval", run, "--set", "ring-modes.n_samples=0"),
                      "--set ring-modes.n_samples", "greater than 0")
    assert_user_error(cli("eval", run, "--set", "ring-modes.colour=1"), "ring-modes.colour")
    assert_user_error(cli("eval", run, "--set", "bleu.temperature=0.9"),
                      "'bleu' is not evaluated here", "--metric bleu")
    assert_user_error(cli("eval", run, "--set", "n_samples=5"), "METRIC.option=value")


# -- internal errors ----------------------------------------------------------------------


@pytest.fixture
def crash_site(tmp_path: Path) -> Path:
    """A fake installed distribution whose generator factory raises RuntimeError."""
    site = tmp_path / "site"
    info = site / "gfc_crash-0.1.0.dist-info"
    info.mkdir(parents=True)
    (info / "METADATA").write_text("Metadata-Version: 2.1\nName: gfc-crash\nVersion: 0.1.0\n")
    (info / "entry_points.txt").write_text("[ganframe]\ngfccrash = gfc_crash_plugin\n")
    (site / "gfc_crash_plugin.py").write_text(textwrap.dedent(CRASH_PLUGIN))
    return site


CRASH_RECIPE = TINY.replace("hidden = 16\nlayers = 2\nlatent_dim = 4\n", "").replace(
    '[generator]\ntype = "mlp"', '[generator]\ntype = "crashgen"'
)


def test_internal_error_is_exit_1_without_traceback(crash_site: Path, tmp_path: Path) -> None:
    path = variant(tmp_path, "crash.toml", CRASH_RECIPE)
    proc = ganframe("run", str(path), "--out", str(tmp_path / "out"), "--quiet",
                    PYTHONPATH=os.pathsep.join(filter(None, [str(crash_site),
                                                             os.environ.get("PYTHONPATH")])))
    assert proc.returncode == 1, (proc.stdout, proc.stderr)
    assert "internal error" in proc.stderr
    assert "generator blew up in training" in proc.stderr
    assert "--debug" in proc.stderr
    assert "Traceback" not in proc.stderr


def test_debug_lets_internal_errors_through(
    crash_site: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.syspath_prepend(str(crash_site))
    monkeypatch.setattr(plugin_host, "_HOST", None)  # rebuilt with the fake plugin
    monkeypatch.delitem(sys.modules, "gfc_crash_plugin", raising=False)
    path = variant(tmp_path, "crash.toml", CRASH_RECIPE)
    result = cli("--debug", "run", path, "--out", tmp_path / "out", "--quiet")
    assert result.exit_code == 1
    assert isinstance(result.exception, RuntimeError)  # not mapped: the traceback is shown
    assert "generator blew up in training" in str(result.exception)
    sys.modules.pop("gfc_crash_plugin", None)


def test_no_module_imports_click_directly() -> None:
    """click is not a dependency: typer vendors its own copy since 0.2x, so ``import click``
    works only where something else happened to install it (nltk does, on the developers'
    machines) and fails on a fresh install, as CI found."""
    root = Path(__file__).resolve().parents[1]
    sources = [*root.glob("ganframe/**/*.py"), *root.glob("plugins/*/ganframe_*/**/*.py")]
    assert len(sources) > 20
    offenders = [
        str(p.relative_to(root)) for p in sources
        if re.search(r"^\s*(import click|from click\b)", p.read_text(encoding="utf-8"), re.M)
    ]
    assert not offenders, offenders
