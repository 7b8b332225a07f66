"""``ganframe new-plugin``: the generated project is valid, installs with pip, lists, trains,
passes its own tests, and disappears again when uninstalled.

The end-to-end part installs one generated plugin into the running interpreter's
environment (pip, no network: no index, no build isolation, no dependency resolution), so it
needs setuptools there; it is skipped with that reason when setuptools is missing. The
plugin is uninstalled in the fixture's teardown whatever happens in between.
"""

from __future__ import annotations

import ast
import importlib.metadata as md
import importlib.util
import json
import os
import subprocess
import sys
import tomllib
import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest
from typer.testing import CliRunner

from ganframe.cli import app
from ganframe.devtools.scaffold import new_plugin, plugin_files
from ganframe.errors import UserError
from ganframe.registry import KINDS
from ganframe.version import PLUGIN_API_VERSION, __version__

ALL_KINDS = list(KINDS)
#: Tests the generated project has: 4 always (listing, light entry point, the shipped recipe,
#: ganframe check-plugin), plus one per kind.
BASE_TESTS = 4

# -- names, folders, kinds -------------------------------------------------------------------


@pytest.mark.parametrize(
    "name",
    ["", "MyGan", "1gan", "my gan", "my--gan", "gan-", "-gan", "my.gan", "gän", "a" * 41],
)
def test_bad_names_are_refused(name: str, tmp_path: Path) -> None:
    with pytest.raises(UserError, match="invalid plugin name"):
        new_plugin(name, tmp_path / "p")
    assert not (tmp_path / "p").exists()


@pytest.mark.parametrize("name", ["a", "mygan", "my-gan", "my_gan2", "x-1"])
def test_good_names_map_to_distribution_package_and_entry_point(name: str) -> None:
    files = plugin_files(name)
    pkg = "ganframe_" + name.replace("-", "_")
    project = tomllib.loads(files["pyproject.toml"])["project"]
    assert project["name"] == f"ganframe-{name}"
    assert project["entry-points"]["ganframe"] == {name: f"{pkg}.plugin"}
    assert f"{pkg}/plugin.py" in files


def test_refuses_a_non_empty_folder_and_leaves_it_alone(tmp_path: Path) -> None:
    target = tmp_path / "work"
    target.mkdir()
    (target / "notes.txt").write_text("mine", encoding="utf-8")
    with pytest.raises(UserError, match="not empty") as info:
        new_plugin("mygan", target)
    assert str(target) in str(info.value)
    assert [p.name for p in target.iterdir()] == ["notes.txt"]
    assert (target / "notes.txt").read_text(encoding="utf-8") == "mine"


def test_refuses_a_file_and_accepts_an_empty_folder(tmp_path: Path) -> None:
    (tmp_path / "afile").write_text("x", encoding="utf-8")
    with pytest.raises(UserError, match="not a folder"):
        new_plugin("mygan", tmp_path / "afile")
    (tmp_path / "empty").mkdir()
    path = new_plugin("mygan", tmp_path / "empty")
    assert path == (tmp_path / "empty").resolve()
    assert (path / "ganframe_mygan" / "plugin.py").is_file()


def test_default_folder_is_ganframe_name_in_the_working_directory(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.chdir(tmp_path)
    assert new_plugin("mygan") == (tmp_path / "ganframe-mygan").resolve()


@pytest.mark.parametrize("kinds", [["generators"], ["generator", "optimizer"], [], [" ", ""]])
def test_unknown_or_no_kinds_are_refused_with_the_valid_ones(kinds: list[str]) -> None:
    with pytest.raises(UserError) as info:
        plugin_files("mygan", kinds)
    message = str(info.value)
    assert all(kind in message for kind in KINDS), message
    if kinds == ["generators"]:
        assert "Did you mean 'generator'" in message


def test_kinds_are_deduplicated_and_ordered() -> None:
    a = plugin_files("mygan", ["critic", "generator", "critic"])
    b = plugin_files("mygan", "generator,critic")
    assert a == b


# -- what is generated ---------------------------------------------------------------------


def _imports(source: str) -> set[str]:
    roots = set()
    for node in ast.walk(ast.parse(source)):
        if isinstance(node, ast.Import):
            roots |= {a.name.split(".")[0] for a in node.names}
        elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            roots.add(node.module.split(".")[0])
    return roots


@pytest.mark.parametrize(
    "kinds", [ALL_KINDS, ["generator", "critic"], ["loss", "metric"], ["dataset"]]
)
def test_generated_files_per_kind(kinds: list[str]) -> None:
    files = plugin_files("mygan", kinds)
    pkg = "ganframe_mygan"
    modules = {"generator", "critic", "loss", "dataset", "metric"}
    for module in modules:
        assert (f"{pkg}/{module}.py" in files) == (module in kinds), module
    for path, text in files.items():
        if path.endswith(".py"):
            compile(text, path, "exec")
    plugin = files[f"{pkg}/plugin.py"]
    # the entry-point module stays light: no torch, factories as lazy strings
    assert _imports(plugin) <= {
        "__future__",
        "collections",
        "importlib",
        "typing",
        "pydantic",
        "ganframe",
    }
    assert f"GANFRAME_PLUGIN_API = {PLUGIN_API_VERSION}" in plugin
    hooks = {
        "generator": "register_generators",
        "critic": "register_critics",
        "loss": "register_losses",
        "dataset": "register_datasets",
        "metric": "register_metrics",
    }
    for kind, hook in hooks.items():
        assert (f"def {hook}(" in plugin) == (kind in kinds)
    assert "def register_recipes(" in plugin
    assert any(p.startswith("tests/test_") and p.endswith("_plugin.py") for p in files)
    assert "README.md" in files


@pytest.mark.parametrize("kinds", [ALL_KINDS, ["generator", "critic"], ["metric"]])
def test_example_recipe_uses_the_plugin_and_core_for_the_rest(kinds: list[str]) -> None:
    recipe = tomllib.loads(plugin_files("mygan", kinds)["ganframe_mygan/recipes/example.toml"])
    expected = {
        "data": "mygan-moons" if "dataset" in kinds else "gaussian-ring",
        "generator": "mygan-mlp" if "generator" in kinds else "mlp",
        "critic": "mygan-mlp" if "critic" in kinds else "mlp",
        "loss": "mygan-lsgan" if "loss" in kinds else "non-saturating",
    }
    assert {key: recipe[key]["type"] for key in expected} == expected
    metric_types = [m["type"] for m in recipe.get("metrics", [])]
    assert metric_types == (["mygan-mean-distance"] if "metric" in kinds else [])


def test_pyproject_is_ready_to_publish() -> None:
    doc = tomllib.loads(plugin_files("my-gan", ALL_KINDS)["pyproject.toml"])
    assert doc["build-system"]["build-backend"] == "setuptools.build_meta"
    project = doc["project"]
    assert project["version"] == "0.1.0"
    assert project["dependencies"] == [f"ganframe>={'.'.join(__version__.split('.')[:2])}"]
    assert project["readme"] == "README.md"
    setuptools = doc["tool"]["setuptools"]
    assert setuptools["package-data"] == {"ganframe_my_gan": ["recipes/*.toml"]}
    assert setuptools["packages"]["find"]["include"] == ["ganframe_my_gan*"]


def test_generated_tests_use_the_testing_kit_and_a_neutral_folder() -> None:
    files = plugin_files("my-gan", ALL_KINDS)
    tests = files["tests/test_my_gan_plugin.py"]
    assert "from ganframe.testing import build_component, check_plugin, run_recipe" in tests
    assert "result = check_plugin(PLUGIN)" in tests
    # `python -c` from a neutral folder with -P: a ganframe/ folder where the tests run
    # must not shadow the installed ganframe (nor the plugin)
    assert '[sys.executable, "-P", "-c", code]' in tests
    assert "text=True, cwd=tmp_path" in tests
    for internal in ("as_json(", "config_model(", "spec.build(", "recipe.components"):
        assert internal not in tests, internal
    assert "from ganframe.testing import" in files["tests/conftest.py"]
    assert 'pip install -e ".[test]"' in files["README.md"]
    assert "ganframe check-plugin my-gan" in files["README.md"]


def test_generated_project_is_ruff_clean(tmp_path: Path) -> None:
    if importlib.util.find_spec("ruff") is None:
        pytest.skip("ruff is not installed")
    path = new_plugin("my-gan", tmp_path / "p", ALL_KINDS)
    for args in (["check", "--no-cache", "."], ["format", "--check", "--no-cache", "."]):
        proc = subprocess.run(
            [sys.executable, "-m", "ruff", *args], cwd=path, capture_output=True, text=True
        )
        assert proc.returncode == 0, proc.stdout + proc.stderr


def test_cli_new_plugin(tmp_path: Path) -> None:
    runner = CliRunner()
    target = tmp_path / "ganframe-clitest"
    result = runner.invoke(
        app, ["new-plugin", "clitest", "--dir", str(target), "--kinds", "loss, metric"]
    )
    assert result.exit_code == 0, result.output
    assert "created plugin project" in result.output
    # the README's install: the test extra brings pytest, which the generated tests need
    assert f"next: pip install -e '{target.resolve()}[test]' && pytest" in result.output
    assert (target / "ganframe_clitest" / "loss.py").is_file()
    assert not (target / "ganframe_clitest" / "generator.py").exists()
    again = runner.invoke(app, ["new-plugin", "clitest", "--dir", str(target)])
    assert again.exit_code == 2  # a UserError: the folder is not empty


# -- end to end: pip install, list, run, its own tests, uninstall --------------------------


def _env() -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("GANFRAME_DISABLE")}
    env.update(OMP_NUM_THREADS="1", PIP_DISABLE_PIP_VERSION_CHECK="1", PIP_NO_INPUT="1")
    return env


def _run(args: list[str], cwd: Path | None = None, timeout: int = 240):
    return subprocess.run(
        args, capture_output=True, text=True, env=_env(), cwd=cwd, timeout=timeout
    )


def _ganframe(*args: str, cwd: Path | None = None) -> subprocess.CompletedProcess[str]:
    return _run([sys.executable, "-m", "ganframe", *args], cwd=cwd)


def _listing() -> dict[str, dict]:
    proc = _ganframe("list-plugins", "--json")
    assert proc.returncode == 0, proc.stderr
    return {row["name"]: row for row in json.loads(proc.stdout)}


def _why_not_installable() -> str | None:
    if importlib.util.find_spec("pip") is None:
        return "pip is not available in this environment"
    if importlib.util.find_spec("setuptools") is None:
        return (
            "setuptools is not installed in this environment: the test builds the generated "
            "plugin with 'pip install --no-build-isolation', which uses the installed "
            "setuptools (pip install setuptools)"
        )
    version = tuple(int(p) for p in md.version("setuptools").split(".")[:2] if p.isdigit())
    if version < (70, 1) and importlib.util.find_spec("wheel") is None:
        return "setuptools older than 70.1 needs the 'wheel' package to build the plugin"
    return None


class InstalledPlugin:
    """One generated plugin, installed into this interpreter's environment."""

    def __init__(self, root: Path) -> None:
        self.name = f"sct-{uuid.uuid4().hex[:8]}"
        self.dist = f"ganframe-{self.name}"
        self.path = new_plugin(self.name, root / self.dist, ALL_KINDS)
        self.installed = False

    def install(self) -> None:
        proc = _run(
            [
                sys.executable,
                "-m",
                "pip",
                "install",
                "--no-deps",
                "--no-build-isolation",
                "--no-index",
                "--no-cache-dir",
                "-q",
                str(self.path),
            ]
        )
        assert proc.returncode == 0, proc.stdout + proc.stderr
        self.installed = True

    def ensure(self) -> None:
        if not self.installed:
            self.install()

    def uninstall(self) -> subprocess.CompletedProcess[str]:
        proc = _run([sys.executable, "-m", "pip", "uninstall", "-y", "-q", self.dist])
        self.installed = False
        return proc

    def component(self, kind: str) -> str:
        suffix = {
            "generator": "mlp",
            "critic": "mlp",
            "loss": "lsgan",
            "dataset": "moons",
            "metric": "mean-distance",
        }[kind]
        return f"{self.name}-{suffix}"


@pytest.fixture(scope="module")
def plugin(tmp_path_factory: pytest.TempPathFactory) -> Iterator[InstalledPlugin]:
    reason = _why_not_installable()
    if reason:
        pytest.skip(reason)
    root = tmp_path_factory.mktemp("scaffold")
    # beside the project, a folder named like ganframe (a checkout, say) that is not it: the
    # generated tests must use the installed ganframe wherever they run from
    (root / "ganframe").mkdir()
    (root / "ganframe" / "__init__.py").write_text(
        'raise ImportError("this is not ganframe but a folder named like it")\n')
    p = InstalledPlugin(root)
    try:
        p.install()
        yield p
    finally:
        p.uninstall()


def test_installed_plugin_is_listed_with_version_and_components(
    plugin: InstalledPlugin,
) -> None:
    plugin.ensure()
    rows = _listing()
    assert plugin.name in rows, sorted(rows)
    row = rows[plugin.name]
    assert row["status"] == "ok", row["status"]
    assert row["version"] == "0.1.0"
    assert row["components"] == {kind: [plugin.component(kind)] for kind in KINDS}
    assert "register_recipes" in row["hooks"]


def test_installed_plugin_runs_with_plain_and_qualified_names(
    plugin: InstalledPlugin, tmp_path: Path
) -> None:
    plugin.ensure()
    n, c = plugin.name, plugin.component
    recipe = tmp_path / "mine.toml"
    recipe.write_text(
        f"""\
name = "scaffold-e2e"
device = "cpu"
[data]
type = "{c("dataset")}"
size = 256
[generator]
type = "{n}:{c("generator")}"
hidden = 16
layers = 1
[critic]
type = "{c("critic")}"
hidden = 16
layers = 1
[loss]
type = "{n}:{c("loss")}"
[train]
batch_size = 32
steps = 50
sample_count = 16
[[metrics]]
type = "{n}:{c("metric")}"
n_samples = 64
""",
        encoding="utf-8",
    )
    out = tmp_path / "run"
    proc = _ganframe("run", str(recipe), "--max-steps", "2", "--out", str(out), "--quiet")
    assert proc.returncode == 0, proc.stderr
    assert "stopped at --max-steps" in proc.stdout
    assert (out / "checkpoints" / "last.safetensors").is_file()
    rows = [json.loads(line) for line in (out / "metrics.jsonl").read_text().splitlines()]
    metric = [r for r in rows if r.get("event") == "metric"]
    assert metric and metric[-1]["step"] == 2
    assert metric[-1]["metric"] == f"{n}:{c('metric')}"
    assert metric[-1]["mean_distance"] > 0
    saved = tomllib.loads((out / "recipe.toml").read_text(encoding="utf-8"))
    assert saved["generator"]["type"] == f"{n}:{c('generator')}"
    assert saved["data"]["type"] == c("dataset")


def _pytest_command() -> list[str]:
    """The README's command, ``pytest``: the console script beside this interpreter."""
    script = Path(sys.executable).with_name("pytest")
    return [str(script)] if script.is_file() else [sys.executable, "-P", "-m", "pytest"]


def test_generated_project_tests_pass_against_the_installed_plugin(
    plugin: InstalledPlugin,
) -> None:
    plugin.ensure()
    # run from the folder that holds the project and a folder named ganframe/, as someone
    # with a ganframe checkout beside their plugin would
    parent = plugin.path.parent
    assert (parent / "ganframe" / "__init__.py").is_file()
    proc = _run([*_pytest_command(), "-q", "-p", "no:cacheprovider", plugin.path.name],
                cwd=parent, timeout=600)
    assert proc.returncode == 0, proc.stdout[-4000:] + proc.stderr[-2000:]
    assert f"{BASE_TESTS + len(KINDS)} passed" in proc.stdout, proc.stdout[-2000:]
    assert "skipped" not in proc.stdout


def test_uninstalled_plugin_is_gone(plugin: InstalledPlugin) -> None:
    plugin.ensure()
    proc = plugin.uninstall()
    assert proc.returncode == 0, proc.stdout + proc.stderr
    assert plugin.name not in _listing()
    with pytest.raises(md.PackageNotFoundError):
        md.distribution(plugin.dist)
