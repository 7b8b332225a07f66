"""The data-path convention: a relative data path is looked up in $GANFRAME_DATA, the recipe's
folder, then the working directory; a shipped recipe's run records it resolved, so
``ganframe run runs/x/recipe.toml --resume`` finds the data again from anywhere.
"""

from __future__ import annotations

import random
import tomllib
from pathlib import Path
from types import SimpleNamespace

import pytest

from ganframe.components import BuildContext, data_path, resolve_data_path
from ganframe.errors import UserError
from ganframe.testing import run_recipe


@pytest.fixture
def places(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> SimpleNamespace:
    """Three folders, each holding some of the files a.txt, b.txt, c.txt; cwd is the last."""
    root, recipe, cwd = (tmp_path / n for n in ("data", "recipe", "cwd"))
    for folder, names in ((root, "a"), (recipe, "ab"), (cwd, "abc")):
        folder.mkdir()
        for name in names:
            (folder / f"{name}.txt").write_text(name, encoding="utf-8")
    monkeypatch.chdir(cwd)
    monkeypatch.delenv("GANFRAME_DATA", raising=False)
    return SimpleNamespace(root=root, recipe=recipe, cwd=cwd,
                           ctx=BuildContext(data_root=root, recipe_dir=recipe))


def test_the_first_place_that_has_it_wins(places: SimpleNamespace) -> None:
    ctx = places.ctx
    assert ctx.resolve_data_path("a.txt") == places.root / "a.txt"  # $GANFRAME_DATA first
    assert ctx.resolve_data_path("b.txt") == places.recipe / "b.txt"  # then the recipe's
    assert ctx.resolve_data_path("c.txt") == places.cwd / "c.txt"  # then the working dir
    assert ctx.resolve_data_path(places.cwd / "a.txt") == places.cwd / "a.txt"  # absolute
    (places.cwd / "sub").mkdir()
    assert resolve_data_path("sub/../c.txt", ctx) == places.cwd / "c.txt"  # normalised


def test_where_it_is_nowhere(places: SimpleNamespace) -> None:
    assert places.ctx.resolve_data_path("d.txt") == places.recipe / "d.txt"
    assert resolve_data_path("d.txt", None) == places.cwd / "d.txt"
    with pytest.raises(UserError) as info:
        places.ctx.resolve_data_path("d.txt", "data.path", must_exist=True)
    message = str(info.value)
    assert message.startswith("data.path: 'd.txt' was found in none of $GANFRAME_DATA (")
    for folder in (places.root, places.recipe, places.cwd):
        assert str(folder) in message


def test_ganframe_data_comes_from_the_context_else_the_environment(
    places: SimpleNamespace, monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    other = tmp_path / "other"
    other.mkdir()
    (other / "c.txt").write_text("other", encoding="utf-8")
    monkeypatch.setenv("GANFRAME_DATA", str(other))
    assert resolve_data_path("c.txt", SimpleNamespace()) == other / "c.txt"
    assert resolve_data_path("c.txt", BuildContext(data_root=places.root)) == places.cwd / "c.txt"
    home = Path("~").expanduser()
    assert resolve_data_path("~/x.txt", None) == home / "x.txt"


def test_a_shipped_recipe_records_the_resolved_path(places: SimpleNamespace) -> None:
    config = SimpleNamespace(path="c.txt", root=Path("b.txt"), test_path=None)
    shipped = BuildContext(data_root=places.root)  # no recipe_dir: a registered recipe
    assert data_path(config, "path", shipped) == places.cwd / "c.txt"
    assert config.path == str(places.cwd / "c.txt")
    assert shipped.data_path(config, "root") == places.cwd / "b.txt"
    assert config.root == places.cwd / "b.txt" and isinstance(config.root, Path)
    assert data_path(config, "test_path", shipped) is None and config.test_path is None
    from_file = SimpleNamespace(path="b.txt")
    assert places.ctx.data_path(from_file) == places.recipe / "b.txt"
    assert from_file.path == "b.txt"  # a recipe file keeps what it says


# -- end to end: the poems dataset and a resumed shipped recipe -------------------------------

SMALL = ["generator.embedding_dim=8", "generator.hidden_dim=16", "generator.num_layers=1",
         "critic.embedding_dim=8", "train.batch_size=8", "train.log_every=1", "metrics=[]",
         "train.sample_count=4"]


@pytest.fixture
def poems(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    pytest.importorskip("ganframe_poet")
    chars = "春风花月夜山水云天地日星江河湖海松竹梅兰雪雨霜露朝暮秋冬夏晴寒烟柳桥舟客酒歌"
    rng = random.Random(0)
    lines = ["".join("".join(rng.choice(chars) for _ in range(5)) + "，。"[i % 2]
                     for i in range(4)) for _ in range(120)]
    work = tmp_path / "work"
    work.mkdir()
    (work / "mine.txt").write_text("\n".join(lines) + "\n", encoding="utf-8")
    monkeypatch.chdir(work)
    monkeypatch.delenv("GANFRAME_DATA", raising=False)
    return work


def test_a_shipped_recipe_resumes_from_its_recipe_toml_without_the_set(
    poems: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    run = tmp_path / "runs" / "poet"
    first = run_recipe("lstm-poet", steps=2, out=run, overrides=["data.path=mine.txt", *SMALL])
    assert first.step == 2
    recorded = tomllib.loads((run / "recipe.toml").read_text(encoding="utf-8"))
    assert recorded["data"]["path"] == str(poems / "mine.txt")
    monkeypatch.chdir(tmp_path)  # elsewhere: "mine.txt" means nothing here
    resumed = run_recipe(run / "recipe.toml", steps=3, out=run, resume=True)
    assert resumed.step == 3


def test_a_recipe_file_keeps_its_relative_path_and_resumes_with_itself(
    poems: Path, tmp_path: Path
) -> None:
    recipe = poems / "mine.toml"
    shipped = Path(__import__("ganframe_poet").__file__).parent / "recipes" / "lstm-poet.toml"
    recipe.write_text(shipped.read_text(encoding="utf-8"), encoding="utf-8")
    sets = ["data.path=mine.txt", *SMALL]  # next to the recipe
    run = tmp_path / "runs" / "file"
    assert run_recipe(recipe, steps=2, out=run, overrides=sets).step == 2
    recorded = tomllib.loads((run / "recipe.toml").read_text(encoding="utf-8"))
    assert recorded["data"]["path"] == "mine.txt"
    assert run_recipe(recipe, steps=3, out=run, overrides=sets, resume=True).step == 3


def test_a_shipped_recipe_resumes_with_the_same_relative_set(poems: Path, tmp_path: Path) -> None:
    """The run recorded the absolute path; repeating the relative --set means the same file,
    so the resume is not refused as a different [data] table."""
    run = tmp_path / "runs" / "again"
    sets = ["data.path=mine.txt", *SMALL]
    assert run_recipe("lstm-poet", steps=2, out=run, overrides=sets).step == 2
    assert run_recipe("lstm-poet", steps=3, out=run, overrides=sets, resume=True).step == 3
