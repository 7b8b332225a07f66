"""Packaging: the entry point stays torch-free, recipes ship and validate, components list."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

PLUGIN_DIR = Path(__file__).resolve().parents[1]
REPO = PLUGIN_DIR.parents[1]
RECIPES = ("dcgan-mnist", "wgan-gp-mnist")


def test_entry_point_module_does_not_import_torch():
    code = (
        "import sys, json, ganframe_dcgan.plugin as p; "
        "print(json.dumps(sorted(m for m in sys.modules if m.split('.')[0] in "
        "('torch', 'numpy', 'safetensors'))))"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                         check=True, cwd=REPO)
    assert json.loads(out.stdout) == []


def test_entry_point_is_declared():
    import importlib.metadata as md

    eps = [ep for ep in md.entry_points(group="ganframe") if ep.name == "dcgan"]
    assert eps and eps[0].value == "ganframe_dcgan.plugin"


@pytest.mark.parametrize("name", RECIPES)
def test_shipped_recipes_equal_the_repository_copies(name):
    shipped = PLUGIN_DIR / "ganframe_dcgan" / "recipes" / f"{name}.toml"
    top = REPO / "recipes" / f"{name}.toml"
    assert shipped.read_bytes() == top.read_bytes(), (
        f"{top} and {shipped} differ; copy one over the other"
    )


def test_registers_components_and_recipes():
    from ganframe.plugins import load_plugins

    host = load_plugins()
    info = {p.name: p for p in host.plugins}
    assert info["dcgan"].status.startswith("ok"), info["dcgan"].status
    reg = host.registry
    assert reg.get("dataset", "mnist").plugin == "dcgan"
    assert reg.get("generator", "dcgan").plugin == "dcgan"
    assert reg.get("critic", "dcgan").plugin == "dcgan"
    assert reg.get("metric", "mnist-fid").plugin == "dcgan"
    for name in RECIPES:
        spec = reg.recipe(name)
        assert spec is not None and spec.plugin == "dcgan"
        assert "[data]" in spec.read_text()


@pytest.mark.parametrize("name", RECIPES)
def test_recipes_validate(name):
    from ganframe.plugins import load_plugins
    from ganframe.recipe import load_recipe

    reg = load_plugins().registry
    resolved = load_recipe(REPO / "recipes" / f"{name}.toml", reg)
    rec = resolved.recipe
    assert rec.name == name and rec.train.batch_size == 64
    assert resolved.component("data")[0].name == "mnist"
    assert resolved.component("metrics.0")[0].name == "mnist-fid"
    by_name = load_recipe(name, reg)  # the registered copy
    assert by_name.to_dict() == resolved.to_dict()
