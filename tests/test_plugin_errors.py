"""Errors from a plugin's own code name the plugin, the component and the line to look at.

Each mistake of tests/plugin_breaks.py is made in a fake installed distribution (ganframe-rgan
0.1.0, plugin ``rgan``) and ``ganframe`` is run on it in a real process: a failure while
importing or building a component is a user error (exit 2, one paragraph, no traceback unless
``--debug``); a plugin that fails to load is one warning line naming the hook and the line
(the traceback under ``--debug``), and a recipe that needed it says so.
"""

from __future__ import annotations

import json
import sys
import textwrap
from pathlib import Path

import pytest
from plugin_breaks import SCENARIOS, Scenario, outcome, run
from pydantic import BaseModel

from ganframe.errors import PluginError, UserError, plugin_location, short_path
from ganframe.registry import ComponentSpec, Owner, Registry, WriterSpec, make_register

LABEL = "plugin rgan (ganframe-rgan 0.1.0)"


def line_of(text: str, needle: str) -> int:
    """The 1-based line of ``text`` holding ``needle`` (so the tests follow the sources)."""
    found = [i + 1 for i, line in enumerate(text.splitlines()) if needle in line]
    assert len(found) == 1, (needle, found)
    return found[0]


def errors(stderr: str) -> list[str]:
    return [line for line in stderr.splitlines() if line.startswith("error:")]


# -- importing and building components: PluginError, exit 2 ---------------------------------

BUILD_FAILURES = {
    # scenario: (what the message says, file, the source line it points at)
    "typo": ("cannot import its factory 'ganframe_rgan.loss:RaGan': AttributeError: module "
             "'ganframe_rgan.loss' has no attribute 'RaGan'; did you mean 'RaGAN'?",
             "plugin.py", "register(\"ragan\""),
    "dependency": ("cannot import its factory 'ganframe_rgan.loss:RaGAN': ModuleNotFoundError: "
                   "No module named 'kornia'", "loss.py", "import kornia"),
    "build": ("building it with 'ganframe_rgan.loss:RaGAN' failed: AttributeError: "
              "'RaGanConfig' object has no attribute 'label_smoothing'", "loss.py",
              "config.label_smoothing"),
    "config": ("cannot import its config model 'ganframe_rgan.plugin:Config': AttributeError",
               "plugin.py", "register(\"ragan\""),
}


def _source(scenario: Scenario, file: str) -> str:
    return scenario.plugin if file == "plugin.py" else scenario.loss


@pytest.mark.parametrize("key", sorted(BUILD_FAILURES))
def test_a_failure_of_the_plugins_code_names_plugin_component_and_line(key: str) -> None:
    scenario, ran = SCENARIOS[key], outcome(key)
    proc = ran.proc
    what, file, needle = BUILD_FAILURES[key]
    line = line_of(_source(scenario, file), needle)
    assert proc.returncode == 2, proc.stderr
    [error] = errors(proc.stderr)
    assert error.startswith(f"error: {LABEL}: loss 'ragan': {what}"), error
    assert error.endswith(f" (ganframe_rgan/{file}:{line})"), error
    assert "internal error" not in proc.stderr and "Traceback" not in proc.stderr
    assert len(proc.stderr.strip().splitlines()) == 1  # one paragraph
    # a run that failed before its first checkpoint leaves no folder behind
    assert not (ran.root / "run").exists()


def test_debug_shows_the_traceback_of_a_build_failure(tmp_path: Path) -> None:
    scenario = SCENARIOS["build"]
    scenario = Scenario(scenario.key, scenario.title, ["--debug", *scenario.args],
                        scenario.plugin, scenario.loss)
    proc = run(scenario, tmp_path)
    line = line_of(scenario.loss, "config.label_smoothing")
    assert proc.returncode == 2, proc.stderr
    assert "Traceback (most recent call last)" in proc.stderr
    assert f'ganframe_rgan/loss.py", line {line}, in __init__' in proc.stderr
    assert proc.stderr.rstrip().splitlines()[-1].startswith(f"error: {LABEL}: loss 'ragan'")
    assert not (tmp_path / "run").exists()


# -- load failures: a warning line with hook and line; the traceback under --debug ----------

LOAD_FAILURES = {
    # scenario: (status starts with, says, the plugin.py line it points at)
    "hook": ("failed: hook register_losses: KeyError: 'gp'", "", 'SETTINGS["gp"]'),
    "register": ("failed: hook register_losses: TypeError: register() got an unexpected "
                 "keyword argument 'confg' (did you mean 'config'?)",
                 "register_losses gets register(name, factory, config=None, summary='')",
                 "confg=RaGanConfig"),
    "hookname": ("failed: unknown hook 'register_lossses'", "did you mean register_losses?",
                 "def register_lossses"),
    "import": ("failed: import error: ImportError: cannot import name 'helpers'", "",
               "from ganframe_rgan import helpers"),
}


def _listing(scenario: Scenario, root: Path, *flags: str) -> tuple[dict, str]:
    listing = Scenario(scenario.key, scenario.title, [*flags, "list-plugins", "--json"],
                       scenario.plugin, scenario.loss, exit_code=0)
    proc = run(listing, root)
    assert proc.returncode == 0, proc.stderr
    rows = {row["name"]: row for row in json.loads(proc.stdout)}
    return rows["rgan"], proc.stderr


@pytest.mark.parametrize("key", sorted(LOAD_FAILURES))
def test_a_plugin_that_fails_to_load_is_one_warning_with_hook_and_line(
    key: str, tmp_path: Path
) -> None:
    scenario = SCENARIOS[key]
    starts, says, needle = LOAD_FAILURES[key]
    line = line_of(scenario.plugin, needle)
    row, stderr = _listing(scenario, tmp_path)
    assert row["status"].startswith(starts), row["status"]
    assert says in row["status"]
    assert f"(ganframe_rgan/plugin.py:{line})" in row["status"]
    assert row["components"]["loss"] == []
    warned = [ln for ln in stderr.splitlines() if "rgan" in ln]
    assert warned == [f"warning: ganframe plugin 'rgan' {row['status']}"], stderr
    assert "Traceback" not in stderr


@pytest.mark.parametrize("key", ["hook", "import", "register"])
def test_debug_prints_the_load_failures_traceback_under_its_warning(
    key: str, tmp_path: Path
) -> None:
    scenario = SCENARIOS[key]
    _starts, _says, needle = LOAD_FAILURES[key]
    line = line_of(scenario.plugin, needle)
    row, stderr = _listing(scenario, tmp_path, "--debug")
    lines = stderr.splitlines()
    warning = lines.index(f"warning: ganframe plugin 'rgan' {row['status']}")
    assert lines[warning + 1] == "Traceback (most recent call last):", stderr
    assert f'ganframe_rgan/plugin.py", line {line}' in stderr


def test_debug_works_for_any_command(tmp_path: Path) -> None:
    scenario = SCENARIOS["hook"]
    proc = run(Scenario("v", "", ["--debug", "validate", "ring.toml"], scenario.plugin), tmp_path)
    assert proc.returncode == 2
    assert "Traceback (most recent call last):" in proc.stderr
    assert proc.stderr.index("warning: ganframe plugin 'rgan'") < proc.stderr.index("Traceback")


# -- recipes that needed a plugin that failed -----------------------------------------------


def test_recipe_error_says_the_plugin_that_provides_the_type_failed() -> None:
    proc = outcome("hook").proc  # the hook registered "ragan", then raised
    assert proc.returncode == 2
    [error] = errors(proc.stderr)
    assert ("loss.type: unknown loss type 'ragan'; plugin rgan, which provides it, failed to "
            "load (hook register_losses: KeyError: 'gp'") in error
    assert "see 'ganframe list-plugins'" in error
    assert "Did you mean" not in error  # the failed plugin is the answer, not 'wgan'


def test_recipe_error_says_which_plugin_may_have_provided_the_type() -> None:
    proc = outcome("import").proc  # nothing registered: it may provide it
    assert proc.returncode == 2
    [error] = errors(proc.stderr)
    assert ("unknown loss type 'ragan'; plugin rgan failed to load (import error: ImportError: "
            "cannot import name 'helpers'") in error
    assert "which may provide it — see 'ganframe list-plugins'" in error


def test_unknown_type_without_failed_plugins_keeps_its_message() -> None:
    reg = Registry()
    reg.add(ComponentSpec("loss", "ragan", "m:f", None, "rgan", "0.1.0"))
    reg.add(ComponentSpec("loss", "wgan", "m:f", None, "core", "1"))
    with pytest.raises(UserError) as info:
        reg.get("loss", "raGAN")
    assert str(info.value).startswith("unknown loss type 'raGAN'. Did you mean 'ragan'?")
    with pytest.raises(UserError, match="Did you mean 'wgan'"):
        reg.get("loss", "wgna")
    with pytest.raises(UserError) as info:
        reg.get("loss", "zzz")
    assert "Did you mean" not in str(info.value) and "failed" not in str(info.value)


def test_qualified_name_of_a_failed_plugin_blames_it() -> None:
    reg = Registry(failed={"rgan": "import error: X", "other": "import error: Y"})
    message = reg.unknown_message("loss", "rgan:ragan")
    assert "plugin rgan, which provides it, failed to load (import error: X)" in message
    assert "other" not in message


def test_case_only_differences_are_still_suggested_next_to_a_failed_plugin() -> None:
    reg = Registry(failed={"rgan": "import error: X"})
    reg.add(ComponentSpec("loss", "hinge", "m:f", None, "core", "1"))
    message = reg.unknown_message("loss", "HINGE")
    assert "Did you mean 'hinge'?" in message and "plugin rgan failed to load" in message
    assert "Did you mean" not in reg.unknown_message("loss", "hing")  # near spelling: no


# -- names in recipes and register calls: "did you mean", whatever the case -------------------


@pytest.mark.parametrize("key,expected", [
    ("case", "loss.type: unknown loss type 'raGAN'. Did you mean 'ragan'?"),
    ("key", "train.stpes: unknown key (not a setting here; check the spelling); did you mean "
            "'steps'?"),
    ("option", "loss.smoothing_: unknown key (not a setting here; check the spelling); did "
               "you mean 'smoothing'?"),
])
def test_misspelt_names_get_a_suggestion(key: str, expected: str) -> None:
    proc = outcome(key).proc
    assert proc.returncode == 2
    [error] = errors(proc.stderr)
    assert expected in error, error


def test_nested_and_lenient_models_suggest_keys_too(tmp_path: Path) -> None:
    from ganframe.plugins import load_plugins
    from ganframe.recipe import load_recipe_text

    registry = load_plugins(autoload=False).registry

    class Lenient(BaseModel):  # no extra="forbid": the recipe still refuses unknown keys
        width: int = 4

    registry.add(ComponentSpec("generator", "lenient", "m:f", Lenient, "t", "0"))
    text = textwrap.dedent("""\
        [data]
        type = "gaussian-ring"
        [generator]
        type = "lenient"
        WIDHT = 3
        [critic]
        type = "mlp"
        [[phases]]
        name = "a"
        loss = { type = "hinge" }
        steps = 2
        n_critik = 2
        """)
    with pytest.raises(UserError) as info:
        load_recipe_text(text, "r.toml", registry)
    assert "phases.0.n_critik: unknown key" in str(info.value)
    assert "did you mean 'n_critic'?" in str(info.value)
    text = text.replace("n_critik = 2\n", "")
    with pytest.raises(UserError, match="generator.WIDHT: unknown key .*did you mean 'width'"):
        load_recipe_text(text, "r.toml", registry)


def test_a_wrong_register_call_says_what_register_takes() -> None:
    register = make_register(Registry(), "loss", "rgan", "0.1.0")
    with pytest.raises(TypeError) as info:
        register("ragan", "m:f", confg=None)
    message = str(info.value)
    assert "unexpected keyword argument 'confg'" in message
    assert "did you mean 'config'?" in message
    assert "register_losses gets register(name, factory, config=None, summary='')" in message
    assert "make_register" not in message
    with pytest.raises(TypeError, match="missing a required argument: 'factory'"):
        register("ragan")


# -- in this process: what a PluginError carries ----------------------------------------------


def test_plugin_error_carries_plugin_component_original_and_line(tmp_path: Path) -> None:
    package = tmp_path / "gfe_carry"
    package.mkdir()
    (package / "__init__.py").write_text("")
    (package / "loss.py").write_text("def build(config, ctx):\n    return {}['boom']\n")
    sys.path.insert(0, str(tmp_path))
    try:
        spec = ComponentSpec("loss", "boom", "gfe_carry.loss:build", None, "carry", "1.0",
                             dist="ganframe-carry", origin="gfe_carry/plugin.py:9",
                             packages=("gfe_carry",))
        with pytest.raises(PluginError) as info:
            spec.build(spec.config_model()(), None)
    finally:
        sys.path.remove(str(tmp_path))
        for name in [m for m in sys.modules if m.startswith("gfe_carry")]:
            del sys.modules[name]
    exc = info.value
    assert isinstance(exc, UserError)  # the CLI's exit 2
    assert (exc.plugin, exc.component, exc.where) == ("carry", ("loss", "boom"),
                                                      "gfe_carry/loss.py:2")
    assert isinstance(exc.original, KeyError) and exc.__cause__ is exc.original
    assert str(exc).startswith("plugin carry (ganframe-carry 1.0): loss 'boom': building it")
    assert "KeyError" in exc.traceback_text()


def test_a_user_error_from_a_factory_passes_through_unchanged() -> None:
    def factory(config, ctx):
        raise UserError("data.path: file not found")

    spec = ComponentSpec("dataset", "d", factory, None, "p", "1")
    with pytest.raises(UserError) as info:
        spec.build(spec.config_model()(), None)
    assert type(info.value) is UserError and str(info.value) == "data.path: file not found"


def test_the_location_falls_back_to_the_registration_then_the_innermost_frame() -> None:
    try:
        {}["x"]  # the raising line
    except KeyError as exc:
        caught = exc
    here = Path(__file__).name
    assert plugin_location(caught, ("nowhere",), "pkg/plugin.py:3") == "pkg/plugin.py:3"
    assert plugin_location(caught, ("nowhere",)).endswith(f"{here}:{line_of_caught()}")
    assert plugin_location(caught, ("test_plugin_errors",)) == f"{here}:{line_of_caught()}"
    assert short_path("/x/site/pkg/sub/mod.py", ("pkg",)) == "pkg/sub/mod.py"
    assert short_path("/x/site/single.py", ("single",)) == "single.py"


def line_of_caught() -> int:
    source = Path(__file__).read_text(encoding="utf-8")
    return line_of(source, "# the raising" + " line")


def test_lazy_writer_and_command_failures_name_their_plugin() -> None:
    owner = Owner("rgan", "ganframe-rgan", "0.1.0", "ganframe_rgan/plugin.py:20")
    writer = WriterSpec("points", ".xyz", "gfe_missing_module:write", "rgan", owner=owner)
    with pytest.raises(PluginError) as info:
        writer.write(None, Path("x.xyz"), {})
    assert str(info.value).startswith(
        f"{LABEL}: sample writer 'points .xyz': cannot import its writer "
        "'gfe_missing_module:write': ModuleNotFoundError")
    assert info.value.where == "ganframe_rgan/plugin.py:20"


def test_a_plugin_command_that_does_not_import_names_the_plugin(tmp_path: Path) -> None:
    plugin = PLUGIN_WITH_COMMAND
    (tmp_path / "quiet").mkdir()
    (tmp_path / "debug").mkdir()
    quiet = run(Scenario("cmd", "", ["--help"], plugin), tmp_path / "quiet")
    line = line_of(plugin, "rgan-tune")
    [warning] = [ln for ln in quiet.stderr.splitlines() if "rgan-tune" in ln]
    assert warning == (
        "warning: command 'rgan-tune' of plugin 'rgan' could not be loaded: "
        f"{LABEL}: command 'rgan-tune': cannot import its function 'ganframe_rgan.tune:main': "
        f"ModuleNotFoundError: No module named 'ganframe_rgan.tune' "
        f"(ganframe_rgan/plugin.py:{line})")
    assert "Traceback" not in quiet.stderr and quiet.returncode == 0
    debug = run(Scenario("cmd", "", ["--debug", "--help"], plugin), tmp_path / "debug")
    assert "Traceback (most recent call last):" in debug.stderr
    assert debug.stderr.index("rgan-tune") < debug.stderr.index("Traceback")


PLUGIN_WITH_COMMAND = SCENARIOS["typo"].plugin.replace("RaGan", "RaGAN") + '''

@hookimpl
def register_commands(register):
    register("rgan-tune", "ganframe_rgan.tune:main")
'''
