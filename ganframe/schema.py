"""The JSON Schema of recipe files, for editors (``ganframe schema``).

The core's :class:`~ganframe.recipe.Recipe` model says what a recipe looks like, but its
component tables accept any keys: which keys are valid depends on the ``type`` chosen and on
the plugins installed. Here each component table becomes a ``oneOf`` over the registered
components of its kind, every alternative pinning ``type`` to that component's name and
listing its config model's options, so an editor can complete names and options and flag
misspelt keys as ganframe itself would. Only config models are read, never factories, so
building the schema imports no torch.
"""

from __future__ import annotations

import copy
from typing import Any

from ganframe.recipe import MetricTable, OptimizerTable, Recipe, ScheduleTable
from ganframe.registry import ALL_KINDS, ComponentSpec, Registry

__all__ = ["JSON_SCHEMA_DIALECT", "recipe_schema"]

JSON_SCHEMA_DIALECT = "https://json-schema.org/draft/2020-12/schema"

#: ``$defs`` key of the table schema of each kind: ``DatasetTable``, ``OptimizerTable``...
_TABLE_DEF = {kind: kind.capitalize() + "Table" for kind in ALL_KINDS}
_CORE_TABLE_REFS = {"#/$defs/ComponentTable", "#/$defs/MetricTable"}
#: Kinds whose tables may leave out ``type``: the component it then names.
_DEFAULT_TYPE = {
    "optimizer": OptimizerTable.model_fields["type"].default,
    "schedule": ScheduleTable.model_fields["type"].default,
}


def _type_values(spec: ComponentSpec, ambiguous: set[str]) -> list[str]:
    """A name registered by two plugins must be written ``plugin:name`` (see Registry.get)."""
    if spec.name in ambiguous:
        return [spec.qualified_name]
    return [spec.name, spec.qualified_name]


def _def_prefix(spec: ComponentSpec) -> str:
    return f"{spec.kind}:{spec.qualified_name}:"


def _config_schema(spec: ComponentSpec, defs: dict[str, Any]) -> dict[str, Any] | None:
    """The component's config model as JSON Schema, its nested ``$defs`` moved into ``defs``
    under a per-component prefix (two plugins may both have a model called ``Options``).
    None when the plugin's config model cannot be loaded or rendered."""
    prefix = _def_prefix(spec)
    try:
        model = spec.config_model()
        schema = model.model_json_schema(ref_template="#/$defs/" + prefix + "{model}")
    except Exception:  # a plugin's broken lazy config string must not break the schema
        return None
    for name, sub in schema.pop("$defs", {}).items():
        defs[prefix + name] = sub
    return schema


def _alternative(
    spec: ComponentSpec,
    ambiguous: set[str],
    defs: dict[str, Any],
    extra: dict[str, Any],
    default_type: str | None = None,
) -> dict[str, Any]:
    values = _type_values(spec, ambiguous)
    type_required = ["type"] if spec.name != default_type or spec.name in ambiguous else []
    type_schema: dict[str, Any] = {"enum": values}
    if spec.summary:
        type_schema["description"] = spec.summary
    config = _config_schema(spec, defs)
    title = f"{spec.kind} {values[0]} (plugin {spec.plugin} {spec.version})".strip()
    if config is None:
        return {
            "type": "object",
            "title": title,
            "description": f"{spec.summary} (its options could not be read: the plugin's "
            "config model failed to load)".lstrip(" "),
            "properties": {"type": type_schema, **extra},
            "required": type_required,
        }
    properties = {
        key: value for key, value in config.get("properties", {}).items() if key != "type"
    }
    required = [key for key in config.get("required", []) if key != "type"]
    alternative: dict[str, Any] = {
        "type": "object",
        "title": title,
        "properties": {"type": type_schema, **properties, **extra},
        "required": [*type_required, *required],
        # Unknown keys are recipe errors, as in validation, unless the model asks for them.
        "additionalProperties": config.get("additionalProperties") is True,
    }
    if spec.summary:
        alternative["description"] = spec.summary
    return alternative


def _table_schema(
    registry: Registry,
    kind: str,
    defs: dict[str, Any],
    extra: dict[str, Any],
    default_type: str | None = None,
) -> dict[str, Any]:
    specs = sorted(registry.components[kind], key=lambda s: (s.name, s.plugin))
    counts: dict[str, int] = {}
    for spec in specs:
        counts[spec.name] = counts.get(spec.name, 0) + 1
    ambiguous = {name for name, n in counts.items() if n > 1}
    description = (
        f"A {kind}: 'type' names a registered {kind} (or 'plugin:name'); the other keys are "
        "that component's options."
        + (f" Without 'type' it is {default_type!r}." if default_type else "")
    )
    if not specs:
        return {
            "description": f"No {kind} is registered by the loaded plugins.",
            "not": {},
        }
    return {
        "description": description,
        "oneOf": [_alternative(spec, ambiguous, defs, extra, default_type) for spec in specs],
    }


def _point_to(prop: dict[str, Any], ref: str) -> dict[str, Any]:
    """Replace a property's reference to the core's loose table (possibly inside an
    ``anyOf`` with null, for optional tables), keeping its description."""
    out = {k: v for k, v in prop.items() if k in ("description", "title")}
    if prop.get("$ref") in _CORE_TABLE_REFS or any(
        alt.get("$ref") in _CORE_TABLE_REFS for alt in prop.get("anyOf", [])
    ):
        out["$ref"] = ref
        return out
    if prop.get("type") == "array" and prop.get("items", {}).get("$ref") in _CORE_TABLE_REFS:
        return {**out, "type": "array", "items": {"$ref": ref}}
    raise ValueError(f"unexpected shape of a component table in the Recipe schema: {prop}")


def recipe_schema(registry: Registry) -> dict[str, Any]:
    """A JSON Schema (draft 2020-12) of recipe files for the components in ``registry``."""
    schema = copy.deepcopy(Recipe.model_json_schema())
    defs: dict[str, Any] = schema.setdefault("$defs", {})
    core_metric_keys = {
        k: v for k, v in MetricTable.model_json_schema()["properties"].items() if k != "type"
    }

    def ref(kind: str) -> str:
        return f"#/$defs/{_TABLE_DEF[kind]}"

    extras = {
        "metric": core_metric_keys,
        "optimizer": {
            "schedule": {
                "$ref": ref("schedule"),
                "description": OptimizerTable.model_fields["schedule"].description,
            }
        },
    }
    tables: dict[str, dict[str, Any]] = {}
    for kind in ALL_KINDS:
        tables[kind] = _table_schema(
            registry, kind, defs, extras.get(kind, {}), _DEFAULT_TYPE.get(kind)
        )
    defs.pop("ComponentTable", None)
    defs.pop("MetricTable", None)
    # The core's loose OptimizerTable and ScheduleTable (already referenced from
    # OptimSection) are replaced here by their registry-based tables of the same name.
    for kind, table in tables.items():
        defs[_TABLE_DEF[kind]] = table

    props = schema["properties"]
    props["data"] = _point_to(props["data"], ref("dataset"))
    props["generator"] = _point_to(props["generator"], ref("generator"))
    props["critic"] = _point_to(props["critic"], ref("critic"))
    props["loss"] = _point_to(props["loss"], ref("loss"))
    props["metrics"] = _point_to(props["metrics"], ref("metric"))
    props["loggers"] = _point_to(props["loggers"], ref("logger"))
    props["callbacks"] = _point_to(props["callbacks"], ref("callback"))
    phase = defs["PhaseConfig"]["properties"]
    phase["loss"] = _point_to(phase["loss"], ref("loss"))
    props["device"]["pattern"] = r"^(auto|cpu|mps|cuda(:\d+)?)$"

    plugins = sorted({(s.plugin, s.version) for k in ALL_KINDS for s in registry.components[k]})
    return {
        "$schema": JSON_SCHEMA_DIALECT,
        "title": "ganframe recipe",
        "description": "A ganframe training recipe (TOML). Component tables list the "
        "components registered by: "
        + (", ".join(f"{p} {v}" for p, v in plugins) or "no plugins")
        + ".",
        **{k: v for k, v in schema.items() if k not in ("title", "description")},
    }
