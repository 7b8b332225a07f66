"""``[ganframe] requires``: specifiers and version order as pip reads them (``packaging``),
each requirement checked once, and the list bounded.

Installed versions come from fake distributions (a dist-info folder with METADATA) on a
temporary ``sys.path`` entry, so every case is exact and nothing is installed.
"""

from __future__ import annotations

import importlib.metadata as md
from pathlib import Path

import pytest

from ganframe import requirements
from ganframe.errors import UserError
from ganframe.requirements import MAX_LENGTH, MAX_REQUIREMENTS, check, problem

SOURCE = "r.toml"


def make_dist(root: Path, name: str, version: str) -> None:
    info = root / f"{name.replace('-', '_')}-{version}.dist-info"
    info.mkdir(parents=True)
    (info / "METADATA").write_text(f"Metadata-Version: 2.1\nName: {name}\nVersion: {version}\n",
                                   encoding="utf-8")


@pytest.fixture
def dists(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    make_dist(tmp_path, "gfr-stable", "0.1.0")
    make_dist(tmp_path, "gfr-pre", "0.1.0rc1")
    make_dist(tmp_path, "gfr-post", "1.2.post3")
    make_dist(tmp_path, "gfr-odd", "not.a.version")
    monkeypatch.syspath_prepend(str(tmp_path))
    return tmp_path


@pytest.mark.parametrize("req", [
    "gfr-stable",
    "gfr-stable~=0.1",
    "gfr-stable~=0.1.0",
    "gfr-stable>=0.1,<0.2",
    "gfr-stable>=0.1, <0.2",
    "gfr-stable[extra]>=0.1",
    "gfr-stable==0.1.*",
    "gfr-stable===0.1.0",
    "gfr-stable!=0.2",
    "GFR_Stable>=0.1",  # names compare as pip normalises them
    "gfr-pre>=0.1.0rc1",
    "gfr-pre<0.2",
    "gfr-pre>0.1.0b2",  # rc comes after beta
    "gfr-pre~=0.1.0rc1",
    "gfr-post>=1.2",
    "gfr-post>1.2.post2",
    "gfr-stable>=9; python_version < '3'",  # a marker that is false here: not needed
])
def test_met_requirements_pass(dists: Path, req: str) -> None:
    assert problem(req) is None
    check([req], SOURCE)


@pytest.mark.parametrize("req,message", [
    ("gfr-stable~=0.2", "gfr-stable 0.1.0 is installed but the recipe needs gfr-stable~=0.2"),
    ("gfr-stable>=0.1,<0.1.0", "gfr-stable 0.1.0 is installed but the recipe needs"),
    ("gfr-pre>=0.1.0", "gfr-pre 0.1.0rc1 is installed but the recipe needs gfr-pre>=0.1.0"),
    ("gfr-pre==0.1.0", "gfr-pre 0.1.0rc1 is installed"),
    # PEP 440, as pip: "<V" excludes V's pre-releases, ">V" its post-releases
    ("gfr-pre<0.1.0", "gfr-pre 0.1.0rc1 is installed"),
    ("gfr-post>1.2", "gfr-post 1.2.post3 is installed"),
    ("gfr-stable[extra]>=1", "gfr-stable 0.1.0 is installed but the recipe needs"),
    ("gfr-stable>=1; python_version >= '3'", "gfr-stable 0.1.0 is installed"),
    ("gfr-absent>=1", "gfr-absent is not installed (pip install 'gfr-absent>=1')"),
    ("gfr-odd>=1", "gfr-odd not.a.version is installed, a version that cannot be compared"),
    ("gfr stable", "'gfr stable' is not a requirement like 'package>=1.0'"),
    ("gfr-stable>=", "'gfr-stable>=' is not a requirement like 'package>=1.0'"),
    (">=1.0", "is not a requirement like 'package>=1.0'"),
    ("gfr-stable @ https://example.invalid/x.whl", "a URL is not a version to check"),
])
def test_unmet_or_bad_requirements_say_why(dists: Path, req: str, message: str) -> None:
    assert message in (problem(req) or "")
    with pytest.raises(UserError) as info:
        check([req], SOURCE)
    assert str(info.value).startswith(f"{SOURCE}: ganframe.requires: ")
    assert message in str(info.value)


def test_every_problem_is_listed_once(dists: Path) -> None:
    with pytest.raises(UserError) as info:
        check(["gfr-absent", "gfr-stable>=2", "gfr-absent", " gfr-absent ", "gfr-stable"],
              SOURCE)
    text = str(info.value)
    assert text.count("gfr-absent is not installed") == 1
    assert text.count("gfr-stable 0.1.0 is installed") == 1


def test_repeated_entries_are_checked_once(dists: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    # 5 MB of repeated entries once took ten minutes: each entry looked the distribution up
    calls: list[str] = []
    real = md.version

    def counting(name: str) -> str:
        calls.append(name)
        return real(name)

    monkeypatch.setattr(requirements.md, "version", counting)
    check(["gfr-stable>=0.1"] * 300_000 + ["gfr-pre", "gfr-stable~=0.1"], SOURCE)
    assert sorted(calls) == ["gfr-pre", "gfr-stable"]


def test_the_list_is_bounded(dists: Path) -> None:
    check([f"gfr-stable>=0.0.{i}" for i in range(MAX_REQUIREMENTS)], SOURCE)
    with pytest.raises(UserError) as info:
        check([f"gfr-stable>=0.0.{i}" for i in range(MAX_REQUIREMENTS + 1)], SOURCE)
    assert f"more than {MAX_REQUIREMENTS} different requirements" in str(info.value)
    long = "gfr-stable>=0.1" + " " * MAX_LENGTH + ",<1"
    with pytest.raises(UserError) as info:
        check([long], SOURCE)
    assert f"at most {MAX_LENGTH} are allowed" in str(info.value)
    assert len(str(info.value)) < 400  # the message quotes the start of it, not all


def test_a_recipe_with_unmet_requirements_is_refused_by_validate(
    dists: Path, tmp_path: Path
) -> None:
    from typer.testing import CliRunner

    from ganframe.cli import app

    recipe = tmp_path / "needs.toml"
    recipe.write_text(
        '[ganframe]\nrequires = ["gfr-stable>=0.1,<0.2", "gfr-pre>=0.1.0"]\n'
        '[data]\ntype = "gaussian-ring"\n[generator]\ntype = "mlp"\n[train]\nsteps = 1\n',
        encoding="utf-8",
    )
    result = CliRunner().invoke(app, ["validate", str(recipe)])
    assert result.exit_code == 2, result.output
    assert "gfr-pre 0.1.0rc1 is installed but the recipe needs gfr-pre>=0.1.0" in result.output
    assert "gfr-stable" not in result.output.split("needs", 1)[1]
