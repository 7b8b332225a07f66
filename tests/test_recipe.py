"""Recipe loading: schema errors with dotted keys, component configs, overrides, phases."""

from __future__ import annotations

import tomllib
from pathlib import Path

import pytest

from ganframe import tomlwrite
from ganframe.errors import UserError
from ganframe.plugins import load_plugins
from ganframe.recipe import apply_overrides, load_recipe, parse_override

TINY = """
name = "tiny"
seed = 3
[data]
type = "gaussian-ring"
size = 512
[generator]
type = "mlp"
hidden = 16
[critic]
type = "mlp"
hidden = 16
[loss]
type = "wgan-gp"
gp_lambda = 5.0
[train]
batch_size = 32
steps = 10
"""


@pytest.fixture(scope="module")
def registry():
    return load_plugins(autoload=False).registry


def write(tmp_path: Path, text: str, name: str = "r.toml") -> Path:
    p = tmp_path / name
    p.write_text(text, encoding="utf-8")
    return p


def error_of(tmp_path: Path, registry, text: str, overrides=None) -> str:
    path = write(tmp_path, text)
    with pytest.raises(UserError) as info:
        load_recipe(path, registry, overrides)
    return str(info.value)


def test_valid_recipe_resolves_components_and_defaults(tmp_path, registry):
    r = load_recipe(write(tmp_path, TINY), registry)
    assert r.name == "tiny"
    spec, cfg = r.component("loss")
    assert spec.name == "wgan-gp" and cfg.gp_lambda == 5.0
    assert r.component("generator")[1].hidden == 16
    assert r.component("generator")[1].latent_dim == 8  # default filled in
    phases = r.recipe.phase_list()
    assert [p.name for p in phases] == ["train"] and phases[0].steps == 10


def test_error_names_file_and_dotted_component_key(tmp_path, registry):
    msg = error_of(
        tmp_path, registry, TINY.replace("hidden = 16\n[critic]", "hidden = -1\n[critic]")
    )
    assert msg.startswith(f"{tmp_path / 'r.toml'}: generator.hidden: ")
    assert "greater than 0" in msg


def test_misspelled_option_of_a_lax_plugin_model_is_still_an_error(tmp_path):
    """A plugin's config model that does not forbid extra keys would let pydantic drop a
    misspelled option silently; the recipe loader refuses it anyway. A model that asks for
    extra keys (extra="allow") keeps them."""
    import copy

    from pydantic import AliasChoices, BaseModel, ConfigDict, Field

    from ganframe.registry import ComponentSpec

    class Lax(BaseModel):  # no model_config: pydantic's default is extra="ignore"
        hidden: int = 16
        latent_dim: int = Field(8, validation_alias=AliasChoices("latent_dim", "z_dim"))

    class Open(BaseModel):
        model_config = ConfigDict(extra="allow")
        hidden: int = 16

    reg = copy.deepcopy(load_plugins(autoload=False).registry)
    for name, model in (("lax", Lax), ("open", Open)):
        reg.add(ComponentSpec("generator", name, "ganframe.builtin.toy:build_generator", model,
                              "testplugin", "0"))
    text = TINY.replace('type = "mlp"\nhidden = 16\n[critic]', 'type = "lax"\nhiden = 32\n'
                        'z_dim = 4\n[critic]')
    msg = error_of(tmp_path, reg, text)
    assert "generator.hiden: unknown key" in msg and "z_dim" not in msg
    ok = load_recipe(write(tmp_path, text.replace("hiden", "hidden")), reg)
    assert ok.component("generator")[1].hidden == 32
    assert ok.component("generator")[1].latent_dim == 4  # the alias is a known key
    opened = load_recipe(write(tmp_path, text.replace('"lax"', '"open"')), reg)
    assert opened.component("generator")[1].model_extra == {"hiden": 32, "z_dim": 4}
    # `ganframe schema` tells editors the same: extra keys only where the model wants them.
    from ganframe.schema import recipe_schema

    schema = recipe_schema(reg)
    alternatives = {
        alt["properties"]["type"]["enum"][0]: alt
        for alt in schema["$defs"]["GeneratorTable"]["oneOf"]
    }
    assert alternatives["lax"]["additionalProperties"] is False
    assert alternatives["open"]["additionalProperties"] is True


def test_unknown_keys_are_errors_at_every_level(tmp_path, registry):
    msg = error_of(tmp_path, registry, TINY + "colour = 1\n")
    assert "train.colour: unknown key" in msg
    msg = error_of(tmp_path, registry, TINY.replace("size = 512", "size = 512\nsizes = 3"))
    assert "data.sizes: unknown key" in msg
    msg = error_of(tmp_path, registry, "bogus = 1\n" + TINY)
    assert "bogus: unknown key" in msg


def test_several_problems_are_reported_together(tmp_path, registry):
    text = TINY.replace("batch_size = 32", "batch_size = 0\nn_critic = 0")
    msg = error_of(tmp_path, registry, text)
    assert ": 2 problems:" in msg
    assert "train.batch_size: Input should be greater than 0" in msg
    assert "train.n_critic: Input should be greater than 0" in msg
    text = TINY.replace("size = 512", "size = -2").replace(
        "hidden = 16\n[critic]", "hidden = 0\n[critic]"
    )
    msg = error_of(tmp_path, registry, text)
    assert ": 2 problems:" in msg and "data.size" in msg and "generator.hidden" in msg


def test_unknown_type_lists_available_and_suggests(tmp_path, registry):
    msg = error_of(tmp_path, registry, TINY.replace('type = "wgan-gp"', 'type = "wgan-pg"'))
    assert "loss.type: unknown loss type 'wgan-pg'" in msg
    assert "Did you mean 'wgan-gp'?" in msg
    for name in ("hinge", "lsgan", "non-saturating"):
        assert name in msg


def test_toml_syntax_error_names_file(tmp_path, registry):
    msg = error_of(tmp_path, registry, TINY + "[train\n")
    assert str(tmp_path / "r.toml") in msg and "not valid TOML" in msg


def test_phases_and_loss_are_exclusive(tmp_path, registry):
    text = (
        TINY.replace("steps = 10", "")
        + '[[phases]]\nname = "a"\nloss = { type = "hinge" }\nsteps = 3\n'
    )
    assert "either [loss] or [[phases]]" in error_of(tmp_path, registry, text)


def test_phase_needs_exactly_one_length(tmp_path, registry):
    text = (
        TINY.replace('[loss]\ntype = "wgan-gp"\ngp_lambda = 5.0\n', "").replace("steps = 10", "")
        + '[[phases]]\nname = "a"\nloss = { type = "hinge" }\n'
    )
    msg = error_of(tmp_path, registry, text)
    assert "phases.0" in msg and "exactly one of 'steps' or 'epochs'" in msg


def test_phase_loss_config_is_validated_with_its_place(tmp_path, registry):
    text = TINY.replace('[loss]\ntype = "wgan-gp"\ngp_lambda = 5.0\n', "").replace(
        "steps = 10", ""
    ) + (
        '[[phases]]\nname = "a"\nloss = { type = "hinge" }\nsteps = 3\n'
        '[[phases]]\nname = "b"\nloss = { type = "wgan-gp", gp_lambda = -1 }\nsteps = 3\n'
    )
    msg = error_of(tmp_path, registry, text)
    assert "phases.1.loss.gp_lambda" in msg


def test_optimizer_union_errors_are_readable(tmp_path, registry):
    msg = error_of(tmp_path, registry, TINY + '[optim.generator]\ntype = "adam"\nlr = 0\n')
    assert "optim.generator.lr: Input should be greater than 0" in msg
    msg = error_of(tmp_path, registry, TINY + '[optim.critic]\ntype = "lbfgs"\n')
    assert "optim.critic" in msg


def test_device_is_checked(tmp_path, registry):
    msg = error_of(tmp_path, registry, 'device = "gpu"\n' + TINY)
    assert "device: expected auto, cpu, cuda, cuda:N or mps" in msg


@pytest.mark.parametrize("value", ["-1", "100000"])
def test_threads_are_bounded(tmp_path, registry, value):
    msg = error_of(tmp_path, registry, f"threads = {value}\n" + TINY)
    assert "threads" in msg


@pytest.mark.parametrize(
    ("item", "key", "value"),
    [
        ("train.steps=5", ["train", "steps"], 5),
        ("optim.generator.lr=1e-3", ["optim", "generator", "lr"], 1e-3),
        ("device=cpu", ["device"], "cpu"),
        ('name="x y"', ["name"], "x y"),
        ("optim.generator.betas=[0.0, 0.9]", ["optim", "generator", "betas"], [0.0, 0.9]),
        ("deterministic=true", ["deterministic"], True),
    ],
)
def test_parse_override_reads_toml_literals(item, key, value):
    assert parse_override(item) == (key, value)


def test_overrides_apply_and_are_validated(tmp_path, registry):
    path = write(tmp_path, TINY)
    r = load_recipe(path, registry, ["train.steps=7", "generator.hidden=8", "loss.r1_gamma=1"])
    assert r.recipe.train.steps == 7
    assert r.component("generator")[1].hidden == 8
    assert r.component("loss")[1].r1_gamma == 1.0
    with pytest.raises(UserError, match="train.steps: Input should be greater than 0"):
        load_recipe(path, registry, ["train.steps=0"])
    with pytest.raises(UserError, match="is a value, not a table"):
        load_recipe(path, registry, ["train.steps.x=1"])
    with pytest.raises(UserError, match="expected dotted.key=value"):
        load_recipe(path, registry, ["train.steps"])


def test_overrides_reach_into_lists():
    doc = {"phases": [{"name": "a", "steps": 1}, {"name": "b", "steps": 2}]}
    apply_overrides(doc, ["phases.1.steps=9"])
    assert doc["phases"][1]["steps"] == 9
    with pytest.raises(UserError, match="no such list item"):
        apply_overrides(doc, ["phases.5.steps=1"])


def test_resolved_recipe_round_trips_through_toml(tmp_path, registry):
    text = TINY + '[[metrics]]\ntype = "ring-modes"\nevery = 5\nn_samples = 100\n'
    r = load_recipe(write(tmp_path, text), registry)
    doc = r.to_dict()
    again = tomllib.loads(tomlwrite.dumps(doc))
    assert again == doc
    assert again["generator"]["latent_dim"] == 8  # defaults are written out
    assert again["metrics"][0] == {
        "type": "ring-modes",
        "every": 5,
        "n_samples": 100,
        "sigmas": 3.0,
        "min_share": 0.2,
    }
    # and the written recipe loads back to the same thing
    r2 = load_recipe(write(tmp_path, tomlwrite.dumps(doc), "again.toml"), registry)
    assert r2.to_dict() == doc


def test_phased_recipe_round_trips(tmp_path, registry):
    text = TINY.replace('[loss]\ntype = "wgan-gp"\ngp_lambda = 5.0\n', "").replace(
        "steps = 10", ""
    ) + (
        '[[phases]]\nname = "warm"\nloss = { type = "hinge" }\nsteps = 3\nlr = { critic = 0.01 }\n'
        '[[phases]]\nname = "main"\nloss = { type = "lsgan" }\nepochs = 0.5\nn_critic = 2\n'
    )
    r = load_recipe(write(tmp_path, text), registry)
    doc = r.to_dict()
    assert tomllib.loads(tomlwrite.dumps(doc)) == doc
    assert [p["name"] for p in doc["phases"]] == ["warm", "main"]
    assert doc["phases"][0]["loss"] == {"type": "hinge", "r1_gamma": 0.0, "aux_classifier": 0.0}


def test_tomlwrite_quotes_awkward_keys_and_strings():
    doc = {"a b": 'q"uote\n', "t": {"x.y": [1, 2.5, True]}, "n": None}
    assert tomllib.loads(tomlwrite.dumps(doc)) == {"a b": 'q"uote\n', "t": {"x.y": [1, 2.5, True]}}


def test_registered_recipe_loads_by_name(registry):
    r = load_recipe("gaussian-ring", registry)
    assert r.name == "gaussian-ring"
    assert "from ganframe.builtin.toy_plugin" in r.source


def test_shipped_toy_recipe_matches_repository_copy():
    here = Path(__file__).resolve().parents[1]
    shipped = here / "ganframe" / "builtin" / "recipes" / "gaussian-ring.toml"
    assert shipped.read_bytes() == (here / "recipes" / "gaussian-ring.toml").read_bytes()


def test_missing_file_and_unknown_name(tmp_path, registry):
    with pytest.raises(UserError, match="no such recipe file"):
        load_recipe(tmp_path / "nope.toml", registry)
    with pytest.raises(UserError, match="neither a recipe file nor a registered recipe"):
        load_recipe("no-such-recipe", registry)


def test_non_utf8_recipe_is_a_user_error(tmp_path, registry):
    p = tmp_path / "bad.toml"
    p.write_bytes(b'name = "\xff"\n')
    with pytest.raises(UserError, match="not UTF-8"):
        load_recipe(p, registry)


def test_requires_is_checked(tmp_path):
    from ganframe.requirements import check

    check(["pydantic>=2.0", "pluggy"], "r.toml")
    with pytest.raises(UserError, match="no-such-dist-xyz is not installed"):
        check(["no-such-dist-xyz>=1"], "r.toml")
    with pytest.raises(UserError, match="needs pydantic>=999"):
        check(["pydantic>=999"], "r.toml")
