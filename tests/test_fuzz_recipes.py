"""Property-based fuzzing of recipe loading: whatever a recipe file holds, loading it either
succeeds or raises :class:`~ganframe.errors.UserError`, never any other exception.

Four sources of documents: random nested tables written with :mod:`ganframe.tomlwrite`,
random text, random bytes, and random mutations (deleted, renamed, retyped and junk keys,
extreme numbers, edits of the text) of every recipe shipped in ``recipes/``. A recipe that
loads must also survive the round trip the run folder relies on: its resolved form, written
back as TOML, loads to the same thing.
"""

from __future__ import annotations

import math
import tomllib
from collections import Counter
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from ganframe import api, tomlwrite
from ganframe.errors import UserError

RECIPES = sorted((Path(__file__).resolve().parents[1] / "recipes").glob("*.toml"))
SETTINGS = settings(
    max_examples=250,
    derandomize=True,
    deadline=None,
    database=None,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large],
)
RUN: Counter[str] = Counter()  # examples per test, and how many loaded successfully

#: Keys a recipe really uses, so random documents often reach deep validation.
KEYS = [
    "name", "seed", "device", "deterministic", "description", "data", "generator", "critic",
    "loss", "phases", "optim", "train", "metrics", "type", "steps", "epochs", "batch_size",
    "n_critic", "lr", "betas", "hidden", "layers", "latent_dim", "size", "every", "ganframe",
    "requires", "mode", "path", "root", "base_width", "ema", "log_every", "checkpoint_every",
    "threads", "sync_batchnorm",
]
TYPES = [
    "gaussian-ring", "mlp", "non-saturating", "hinge", "wgan-gp", "adam", "sgd", "rmsprop",
    "mnist", "dcgan", "poems", "lstm", "cnn", "mle", "seqgan", "gumbel", "ring-modes",
    "builtin:mlp", ":", "a:b:c", "",
]
EXTREME_NUMBERS = [0, -1, 1, 2**63 - 1, -(2**63), 10**30, 0.0, -0.0, 1e308, 1e-308,
                   math.inf, -math.inf, math.nan, 0.5, -2.5]

keys = st.one_of(st.sampled_from(KEYS), st.text(min_size=1, max_size=12))
scalars = st.one_of(
    st.booleans(),
    st.integers(min_value=-(2**63), max_value=2**63 - 1),
    st.floats(allow_nan=True, allow_infinity=True),
    st.sampled_from(EXTREME_NUMBERS),
    st.sampled_from(TYPES),
    st.text(max_size=20),
)
values = st.recursive(
    scalars,
    lambda inner: st.one_of(
        st.lists(inner, max_size=4),
        st.dictionaries(keys, inner, max_size=5),
        st.lists(st.dictionaries(keys, inner, min_size=1, max_size=4), min_size=1, max_size=3),
    ),
    max_leaves=25,
)
documents = st.dictionaries(keys, values, max_size=10)


@pytest.fixture(scope="module")
def folder(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return tmp_path_factory.mktemp("fuzz")


@pytest.fixture(scope="module", autouse=True)
def report() -> Iterator[None]:
    yield
    parts = ", ".join(f"{k}: {v}" for k, v in sorted(RUN.items()))
    print(f"\nfuzz examples run: {sum(v for k, v in RUN.items() if '/' not in k)} ({parts})")


def load_or_user_error(path: Path, counter: str) -> None:
    """The property: success or UserError; a success round-trips through the writer."""
    RUN[counter] += 1
    try:
        resolved = api.load_recipe(path)
    except UserError as exc:
        assert str(exc).strip(), "a UserError must say something"
        return
    RUN[f"{counter}/loaded"] += 1
    text = tomlwrite.dumps(resolved.to_dict())
    again = path.with_name("again.toml")
    again.write_text(text, encoding="utf-8")
    assert tomlwrite.dumps(api.load_recipe(again).to_dict()) == text


def write_text(folder: Path, text: str) -> Path:
    path = folder / "fuzz.toml"
    path.write_bytes(text.encode("utf-8", "surrogatepass"))
    return path


# -- random documents, text and bytes -------------------------------------------------------------


@SETTINGS
@given(doc=documents)
def test_random_documents(folder: Path, doc: dict[str, Any]) -> None:
    load_or_user_error(write_text(folder, tomlwrite.dumps(doc)), "documents")


@SETTINGS
@given(text=st.text(max_size=300))
def test_random_text(folder: Path, text: str) -> None:
    load_or_user_error(write_text(folder, text), "text")


@SETTINGS
@given(data=st.binary(max_size=300))
def test_random_bytes(folder: Path, data: bytes) -> None:
    path = folder / "fuzz.toml"
    path.write_bytes(data)
    load_or_user_error(path, "bytes")


# -- mutations of the shipped recipes --------------------------------------------------------------


def _places(node: Any, prefix: tuple[Any, ...] = ()) -> Iterator[tuple[Any, ...]]:
    """Every path to a value inside nested tables and lists."""
    items = node.items() if isinstance(node, dict) else enumerate(node)
    for k, v in items:
        yield (*prefix, k)
        if isinstance(v, dict | list):
            yield from _places(v, (*prefix, k))


def _tables(node: Any, prefix: tuple[Any, ...] = ()) -> Iterator[tuple[Any, ...]]:
    if isinstance(node, dict):
        yield prefix
    items = node.items() if isinstance(node, dict) else enumerate(node)
    for k, v in items:
        if isinstance(v, dict | list):
            yield from _tables(v, (*prefix, k))


def _at(doc: Any, path: tuple[Any, ...]) -> Any:
    for p in path:
        doc = doc[p]
    return doc


def _other_type(value: Any) -> st.SearchStrategy[Any]:
    kinds = {
        bool: st.booleans(),
        int: st.integers(-(10**6), 10**6),
        float: st.floats(allow_nan=False),
        str: st.text(max_size=8),
        list: st.lists(scalars, max_size=3),
        dict: st.dictionaries(keys, scalars, max_size=3),
    }
    mine = type(value)
    return st.one_of([s for t, s in kinds.items() if t is not mine])


MUTATIONS = ["delete", "retype", "number", "rename", "junk", "insert-text", "cut-text",
             "duplicate-line"]


def mutate(doc: dict[str, Any], data: st.DataObject) -> str:
    """Apply 1 to 3 random mutations; return the recipe's text."""
    text = None
    for _ in range(data.draw(st.integers(1, 3), label="mutations")):
        kind = data.draw(st.sampled_from(MUTATIONS), label="kind")
        RUN[f"mutations/{kind}"] += 1
        if kind in ("insert-text", "cut-text", "duplicate-line"):
            text = text if text is not None else tomlwrite.dumps(doc)
            if kind == "insert-text":
                at = data.draw(st.integers(0, len(text)), label="at")
                junk = data.draw(st.text(min_size=1, max_size=6) | st.sampled_from(
                    ["[", "]", "=", '"', "\n[train]\n", "\n[[phases]]\n", "#", "{", "\\"]))
                text = text[:at] + junk + text[at:]
            elif kind == "cut-text":
                at = data.draw(st.integers(0, len(text)), label="at")
                text = text[:at] + text[at + data.draw(st.integers(1, 40), label="n"):]
            else:
                lines = text.splitlines()
                i = data.draw(st.integers(0, len(lines) - 1), label="line")
                lines.insert(i, lines[i])
                text = "\n".join(lines)
            continue
        if text is not None:  # structural edits apply to the document, not to edited text
            continue
        places = list(_places(doc))
        if kind == "junk":
            table = _at(doc, data.draw(st.sampled_from(list(_tables(doc))), label="table"))
            table[data.draw(keys, label="key")] = data.draw(values, label="value")
            continue
        if not places:
            continue
        path = data.draw(st.sampled_from(places), label="place")
        parent, key = _at(doc, path[:-1]), path[-1]
        if kind == "delete":
            del parent[key]
        elif kind == "retype":
            parent[key] = data.draw(_other_type(parent[key]), label="value")
        elif kind == "number":
            parent[key] = data.draw(st.sampled_from(EXTREME_NUMBERS), label="number")
        elif isinstance(parent, dict):  # rename
            new = data.draw(
                st.sampled_from([key + "s", key[:-1], key.upper(), f"{key}_", "x" + key])
                | keys,
                label="new key",
            )
            parent[new] = parent.pop(key)
    return text if text is not None else tomlwrite.dumps(doc)


@pytest.mark.parametrize("recipe", RECIPES, ids=lambda p: p.stem)
@SETTINGS
@given(data=st.data())
def test_mutated_shipped_recipes(folder: Path, recipe: Path, data: st.DataObject) -> None:
    doc = tomllib.loads(recipe.read_text(encoding="utf-8"))
    load_or_user_error(write_text(folder, mutate(doc, data)), f"mutated-{recipe.stem}")


def test_shipped_recipes_are_found_and_the_unmutated_ones_load() -> None:
    """The mutation test above must start from recipes that do load."""
    assert len(RECIPES) >= 5, RECIPES
    for recipe in RECIPES:
        try:
            api.load_recipe(recipe)
        except UserError as exc:  # a recipe whose plugin is not installed
            assert "unknown" in str(exc), exc
