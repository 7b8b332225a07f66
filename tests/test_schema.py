"""``ganframe schema``: the JSON Schema of recipes, built from the core model and the registry.

The structural tests need nothing but the standard library; the tests that run a real
validator use ``jsonschema`` when it is installed and are skipped otherwise.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import tomllib
from importlib.resources import files
from pathlib import Path
from typing import Any

import pytest
from pydantic import BaseModel, ConfigDict, Field

from ganframe.plugins import load_plugins
from ganframe.registry import KINDS, ComponentSpec, Registry
from ganframe.schema import JSON_SCHEMA_DIALECT, recipe_schema

TABLE = {
    "dataset": "DatasetTable",
    "generator": "GeneratorTable",
    "critic": "CriticTable",
    "loss": "LossTable",
    "metric": "MetricTable",
}


@pytest.fixture(scope="module")
def registry() -> Registry:
    return load_plugins(autoload=False).registry  # the core alone: fixed, known components


@pytest.fixture(scope="module")
def schema(registry: Registry) -> dict[str, Any]:
    return recipe_schema(registry)


def ring_recipe() -> dict[str, Any]:
    text = (files("ganframe.builtin") / "recipes" / "gaussian-ring.toml").read_text("utf-8")
    return tomllib.loads(text)


def refs(node: Any) -> list[str]:
    if isinstance(node, dict):
        found = [node["$ref"]] if isinstance(node.get("$ref"), str) else []
        return found + [r for v in node.values() for r in refs(v)]
    if isinstance(node, list):
        return [r for v in node for r in refs(v)]
    return []


def alternatives(schema: dict[str, Any], kind: str) -> list[dict[str, Any]]:
    return schema["$defs"][TABLE[kind]]["oneOf"]


def alternative_for(schema: dict[str, Any], kind: str, type_: str) -> dict[str, Any]:
    found = [a for a in alternatives(schema, kind) if type_ in a["properties"]["type"]["enum"]]
    assert len(found) == 1, f"{kind} type {type_!r} matches {len(found)} alternatives"
    return found[0]


def check_table(schema: dict[str, Any], kind: str, table: dict[str, Any]) -> None:
    """What ``oneOf`` + ``additionalProperties: false`` demand of one component table."""
    alt = alternative_for(schema, kind, table["type"])
    assert set(table) <= set(alt["properties"]), (kind, set(table) - set(alt["properties"]))
    assert set(alt["required"]) <= set(table)


# -- structure (no validator needed) -------------------------------------------------------


def test_schema_is_json_in_draft_2020_12_with_resolvable_refs(schema: dict[str, Any]) -> None:
    assert json.loads(json.dumps(schema)) == schema
    assert schema["$schema"] == JSON_SCHEMA_DIALECT
    assert schema["type"] == "object" and schema["additionalProperties"] is False
    all_refs = refs(schema)
    assert all_refs, "the component tables should be referenced from $defs"
    for ref in all_refs:
        assert ref.startswith("#/$defs/"), ref
        assert ref[len("#/$defs/") :] in schema["$defs"], f"dangling {ref}"
    assert "#/$defs/ComponentTable" not in all_refs  # every loose table was replaced


def test_each_component_table_points_at_its_kind(schema: dict[str, Any]) -> None:
    props = schema["properties"]
    assert props["data"]["$ref"] == "#/$defs/DatasetTable"
    assert props["generator"]["$ref"] == "#/$defs/GeneratorTable"
    assert props["critic"]["$ref"] == "#/$defs/CriticTable"
    assert props["loss"]["$ref"] == "#/$defs/LossTable"
    assert props["metrics"] == {**props["metrics"], "type": "array"}
    assert props["metrics"]["items"] == {"$ref": "#/$defs/MetricTable"}
    phase_loss = schema["$defs"]["PhaseConfig"]["properties"]["loss"]
    assert phase_loss["$ref"] == "#/$defs/LossTable"
    assert {"name", "seed", "optim", "train", "phases"} <= set(props)


def test_every_registered_component_is_one_alternative(
    schema: dict[str, Any], registry: Registry
) -> None:
    for kind in KINDS:
        specs = registry.components[kind]
        assert len(alternatives(schema, kind)) == len(specs)
        for spec in specs:
            alt = alternative_for(schema, kind, spec.name)
            assert alt["properties"]["type"]["enum"] == [spec.name, spec.qualified_name]
            fields = set(spec.config_model().model_fields)
            extra = {"every"} if kind == "metric" else set()
            assert set(alt["properties"]) == {"type"} | fields | extra
            assert alt["additionalProperties"] is False
    gens = {v for a in alternatives(schema, "generator") for v in a["properties"]["type"]["enum"]}
    assert "mlp" in gens and "ganframe.builtin.toy_plugin:mlp" in gens


def test_options_keep_types_bounds_defaults_and_descriptions(schema: dict[str, Any]) -> None:
    hidden = alternative_for(schema, "generator", "mlp")["properties"]["hidden"]
    assert hidden["type"] == "integer" and hidden["exclusiveMinimum"] == 0
    assert hidden["default"] == 128 and hidden["description"]
    wgan = alternative_for(schema, "loss", "wgan-gp")["properties"]
    assert wgan["gp_lambda"]["default"] == 10.0
    assert alternative_for(schema, "loss", "hinge")["properties"]["type"]["description"]


def test_shipped_recipe_fits_the_schema_structurally(schema: dict[str, Any]) -> None:
    doc = ring_recipe()
    assert set(doc) <= set(schema["properties"])
    check_table(schema, "dataset", doc["data"])
    check_table(schema, "generator", doc["generator"])
    check_table(schema, "critic", doc["critic"])
    check_table(schema, "loss", doc["loss"])
    for table in doc["metrics"]:
        check_table(schema, "metric", table)
    with pytest.raises(AssertionError):  # the check itself can fail
        check_table(schema, "generator", {**doc["generator"], "hiden": 3})


# -- plugins that clash, nest models or break ----------------------------------------------


class Inner(BaseModel):
    model_config = ConfigDict(extra="forbid")
    depth: int = Field(2, gt=0)


class Twin(BaseModel):
    model_config = ConfigDict(extra="forbid")
    inner: Inner = Field(default_factory=Inner)
    width: int


def _spec(kind: str, name: str, plugin: str, config: Any) -> ComponentSpec:
    return ComponentSpec(kind, name, "nowhere:build", config, plugin, "1.0", f"{name} of {plugin}")


def fake_registry() -> Registry:
    reg = Registry()
    reg.add(_spec("generator", "twin", "alpha", Twin))
    reg.add(_spec("generator", "twin", "beta", Twin))
    reg.add(_spec("generator", "solo", "alpha", None))
    reg.add(_spec("critic", "broken", "gamma", "no_such_module_xyz:Config"))
    return reg


def test_a_name_two_plugins_register_is_offered_only_qualified() -> None:
    schema = recipe_schema(fake_registry())
    enums = [a["properties"]["type"]["enum"] for a in alternatives(schema, "generator")]
    assert sorted(enums) == [["alpha:twin"], ["beta:twin"], ["solo", "alpha:solo"]]


def test_nested_config_models_get_per_component_defs() -> None:
    schema = recipe_schema(fake_registry())
    alt = alternative_for(schema, "generator", "alpha:twin")
    assert alt["required"] == ["type", "width"]
    inner_ref = alt["properties"]["inner"]["$ref"]
    other_ref = alternative_for(schema, "generator", "beta:twin")["properties"]["inner"]["$ref"]
    assert inner_ref != other_ref  # same model name, two plugins: two definitions
    for ref in refs(schema):
        assert ref[len("#/$defs/") :] in schema["$defs"], f"dangling {ref}"
    assert schema["$defs"][inner_ref[len("#/$defs/") :]]["properties"]["depth"]["default"] == 2


def test_broken_config_model_gives_a_permissive_alternative_not_a_crash() -> None:
    schema = recipe_schema(fake_registry())
    alt = alternative_for(schema, "critic", "broken")
    assert "additionalProperties" not in alt
    assert "could not be read" in alt["description"]


def test_a_kind_nobody_registers_accepts_nothing() -> None:
    schema = recipe_schema(fake_registry())
    assert schema["$defs"]["DatasetTable"]["not"] == {}
    assert "No dataset" in schema["$defs"]["DatasetTable"]["description"]


# -- a real validator, when installed ------------------------------------------------------


@pytest.fixture(scope="module")
def validator(schema: dict[str, Any]) -> Any:
    jsonschema = pytest.importorskip("jsonschema")
    jsonschema.Draft202012Validator.check_schema(schema)
    return jsonschema.Draft202012Validator(schema)


def _errors(validator: Any, doc: dict[str, Any]) -> list[str]:
    return [e.message for e in validator.iter_errors(doc)]


def test_jsonschema_accepts_the_shipped_recipe(validator: Any) -> None:
    assert _errors(validator, ring_recipe()) == []


def test_jsonschema_accepts_qualified_names_and_phases(validator: Any) -> None:
    doc = ring_recipe()
    doc["generator"]["type"] = "ganframe.builtin.toy_plugin:mlp"
    del doc["loss"], doc["train"]["steps"]
    doc["phases"] = [{"name": "a", "loss": {"type": "wgan-gp", "gp_lambda": 5.0}, "steps": 3}]
    assert _errors(validator, doc) == []


@pytest.mark.parametrize(
    "change",
    [
        lambda d: d["generator"].update(type="no-such-generator"),
        lambda d: d["generator"].update(hiden=64),  # misspelt option
        lambda d: d["critic"].update(hidden="wide"),  # wrong type
        lambda d: d["critic"].update(latent_dim=4),  # a generator option on the critic
        lambda d: d["metrics"][0].update(every=-1),  # core key of metric tables
        lambda d: d["data"].pop("type"),
        lambda d: d.update(devise="cpu"),  # unknown top-level key
        lambda d: d.update(device="gpu"),
    ],
)
def test_jsonschema_rejects_mistakes(validator: Any, change: Any) -> None:
    doc = ring_recipe()
    change(doc)
    assert _errors(validator, doc)


# -- the command -----------------------------------------------------------------------------

_PROBE = """
import atexit, sys
atexit.register(lambda: sys.stderr.write("\\nTORCH_IMPORTED=%s\\n" % ("torch" in sys.modules)))
from ganframe.cli import main
sys.argv = ["ganframe", "schema"]
main()
"""


def test_cli_prints_the_schema_of_installed_plugins_without_torch(tmp_path: Path) -> None:
    env = {k: v for k, v in os.environ.items() if not k.startswith("GANFRAME_DISABLE")}
    env["OMP_NUM_THREADS"] = "1"
    proc = subprocess.run(
        [sys.executable, "-c", _PROBE],
        capture_output=True,
        text=True,
        env=env,
        cwd=tmp_path,
        timeout=120,
    )
    assert proc.returncode == 0, proc.stderr
    assert "TORCH_IMPORTED=False" in proc.stderr, proc.stderr
    printed = json.loads(proc.stdout)
    assert printed["$schema"] == JSON_SCHEMA_DIALECT
    host = load_plugins()  # the same plugins the command saw, third-party ones included
    for kind in KINDS:
        offered = {v for a in alternatives(printed, kind) for v in a["properties"]["type"]["enum"]}
        assert set(host.registry.names(kind)) <= offered, kind
