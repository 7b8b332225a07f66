"""docs/plugins.md cannot drift from the code: its API reference is generated and current, its
"When your plugin breaks" section shows what ganframe really prints, and the plugin its
tutorial builds, written from the page alone, passes ``ganframe check-plugin``."""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest
from plugin_breaks import SCENARIOS, matches, outcome

from ganframe.devtools import docgen

ROOT = Path(__file__).resolve().parents[1]
GUIDE = ROOT / "docs" / docgen.PLUGINS_PAGE


def guide() -> str:
    return GUIDE.read_text(encoding="utf-8")


def test_the_api_reference_is_generated_and_current() -> None:
    page = guide()
    assert docgen.API_BEGIN in page and docgen.API_END in page
    assert docgen.with_api_reference(page) == page, (
        f"the API section of docs/plugins.md is stale; run `{docgen.COMMAND}`")


def test_the_api_reference_covers_what_a_plugin_uses() -> None:
    section = guide().split(docgen.API_BEGIN, 1)[1].split(docgen.API_END, 1)[0]
    from ganframe import components, testing

    for name in [*components.__all__, *testing.__all__]:
        assert f".{name}`" in section, name
    for name in ("ganframe.hookimpl", "ganframe.errors.PluginError",
                 "ganframe.loop.events.Callback", "ganframe.api.train",
                 "ganframe.api.load_recipe", "ganframe.api.load_checkpoint",
                 "ganframe.api.sample", "ganframe.plugins.load_plugins"):
        assert f"`{name}`" in section, name
    assert "`train(recipe: ResolvedRecipe | str | Path, *, out:" in section  # signatures


def test_docgen_check_flags_a_stale_api_section(tmp_path: Path) -> None:
    stale = guide().replace("#### `ganframe.api.train`", "#### `ganframe.api.trian`")
    (tmp_path / docgen.PLUGINS_PAGE).write_text(stale, encoding="utf-8")
    assert docgen.main(["--check", "--docs", str(tmp_path)]) == 1
    assert docgen.main(["--docs", str(tmp_path)]) == 0
    assert (tmp_path / docgen.PLUGINS_PAGE).read_text(encoding="utf-8") == guide()


def _shown_blocks() -> dict[str, str]:
    found = re.findall(r"<!-- breaks:(\w+) -->\n\n```text\n(.*?)```", guide(), flags=re.S)
    return dict(found)


def test_every_mistake_is_shown_in_the_guide() -> None:
    assert set(_shown_blocks()) == set(SCENARIOS)


@pytest.mark.parametrize("key", sorted(SCENARIOS))
def test_the_guide_shows_what_ganframe_prints(key: str) -> None:
    ran = outcome(key)
    assert ran.proc.returncode == SCENARIOS[key].exit_code, ran.proc.stderr
    expected = _shown_blocks()[key]
    assert matches(expected, ran.shown), (
        f"docs/plugins.md shows for {key!r}:\n{expected}\nganframe prints:\n{ran.shown}\n"
        "(python tests/plugin_breaks.py prints every scenario)")


def test_the_matcher_takes_dots_for_any_lines() -> None:
    assert matches("a\n...\nd\n", "a\nb\nc\nd\n")
    assert matches("a\n...\nb", "a\nb")
    assert not matches("a\n...\nd", "a\nb\nc")
    assert not matches("a\nb", "a\nb\nc")


# -- the tutorial's plugin, from the page alone ------------------------------------------------


def tutorial_files() -> dict[str, str]:
    """Every file of the tutorial: a line "`path`:" then a fenced block holding the file."""
    tutorial = guide().split("## Tutorial: a plugin end to end", 1)[1].split("\n## ", 1)[0]
    files = dict(re.findall(r"^`([\w./-]+)`:\n\n```\w*\n(.*?)```", tutorial, flags=re.M | re.S))
    files["ganframe_spiral/__init__.py"] = ""  # "(empty)" in the tree
    return files


def test_the_tutorial_names_every_file_of_its_tree() -> None:
    assert set(tutorial_files()) == {
        "pyproject.toml", "ganframe_spiral/__init__.py", "ganframe_spiral/plugin.py",
        "ganframe_spiral/data.py", "ganframe_spiral/models.py",
        "ganframe_spiral/recipes/spiral.toml", "tests/conftest.py", "tests/test_spiral.py",
    }


def test_the_tutorial_uses_only_documented_api() -> None:
    code = "\n".join(t for p, t in tutorial_files().items() if p.endswith(".py"))
    for internal in ("as_json(", "config_model(", "spec.build(", "recipe.components",
                     "registry.components", "registry.add("):
        assert internal not in code, internal


@pytest.fixture(scope="module")
def spiral(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[Path, Path]]:
    root = tmp_path_factory.mktemp("spiral")
    project = root / "ganframe-spiral"
    for rel, text in tutorial_files().items():
        path = project / rel
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(text, encoding="utf-8")
    target = root / "site"
    proc = subprocess.run(
        [sys.executable, "-m", "pip", "install", "--no-deps", "--no-build-isolation",
         "--no-index", "--no-cache-dir", "-q", "--target", str(target), str(project)],
        capture_output=True, text=True, timeout=240,
        env={**os.environ, "PIP_DISABLE_PIP_VERSION_CHECK": "1"},
    )
    if proc.returncode != 0 and "setuptools" in proc.stderr:
        pytest.skip(f"cannot build the tutorial's plugin here: {proc.stderr[-300:]}")
    assert proc.returncode == 0, proc.stdout + proc.stderr
    yield project, target


def _env(site: Path) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("GANFRAME_DISABLE")}
    env["PYTHONPATH"] = os.pathsep.join(filter(None, [str(site), env.get("PYTHONPATH")]))
    env["OMP_NUM_THREADS"] = "1"
    return env


def test_the_tutorials_plugin_passes_check_plugin(spiral: tuple[Path, Path],
                                                  tmp_path: Path) -> None:
    _project, site = spiral
    proc = subprocess.run(
        [sys.executable, "-P", "-m", "ganframe", "check-plugin", "spiral", "--json"],
        capture_output=True, text=True, env=_env(site), cwd=tmp_path, timeout=600)
    assert proc.returncode == 0, proc.stdout + proc.stderr
    report = json.loads(proc.stdout)
    found = {(r["kind"], r["name"]): r["status"] for r in report["components"]}
    assert found == {("dataset", "spiral"): "ok", ("generator", "resmlp"): "ok",
                     ("recipe", "spiral"): "ok"}, report
    assert report["ok"] is True and report["version"] == "0.1.0"


def test_the_tutorials_quick_tests_pass(spiral: tuple[Path, Path]) -> None:
    project, site = spiral
    # the learning test trains 1000 steps and check-plugin has its own test above
    proc = subprocess.run(
        [sys.executable, "-P", "-m", "pytest", "-q", "-p", "no:cacheprovider",
         "-k", "not learns and not check_plugin", "tests"],
        capture_output=True, text=True, env=_env(site), cwd=project, timeout=600)
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-2000:]
    assert "4 passed" in proc.stdout, proc.stdout[-2000:]
