"""The plugin host: built-in and third-party plugins, failures, clashes, blocking, laziness.

Third-party plugins are real (fake) distributions on disk: a folder with
``<dist>-<version>.dist-info/{METADATA,entry_points.txt}`` and the plugin modules, put on
``sys.path`` in this process and on ``PYTHONPATH`` for ``ganframe`` subprocesses, so the host
finds them through ``importlib.metadata`` exactly as it finds installed packages.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import textwrap
import warnings
from collections.abc import Iterator
from pathlib import Path

import pytest

from ganframe.errors import UserError
from ganframe.plugins import (
    DISABLE_AUTOLOAD_ENV,
    DISABLE_PLUGINS_ENV,
    PluginHost,
    PluginWarning,
    load_plugins,
)
from ganframe.recipe import load_recipe
from ganframe.registry import ALL_KINDS
from ganframe.version import PLUGIN_API_VERSION, SUPPORTED_PLUGIN_APIS

BUILTIN_LOSSES = {"non-saturating", "minimax", "wgan", "wgan-gp", "hinge", "lsgan"}
KIND_KEYS = {"generator", "critic", "loss", "dataset", "metric"}

# -- the fake distributions ---------------------------------------------------------------

_GOOD = """
from pydantic import BaseModel, ConfigDict, Field

from ganframe import hookimpl


class TinyConfig(BaseModel):
    model_config = ConfigDict(extra="forbid")
    width: int = Field(4, gt=0)


@hookimpl
def register_generators(register):
    # lazy: listing and validating must not import gft_good_impl (which imports torch)
    register("tinygen", "gft_good_impl:build", config=TinyConfig, summary="test generator")
"""

_GOOD_IMPL = """
import torch  # noqa: F401  (heavy on purpose: only building may import this module)

from ganframe.builtin.toy import build_generator
from ganframe.builtin.toy_plugin import MLPConfig


def build(config, ctx):
    return build_generator(MLPConfig(hidden=config.width, layers=1), ctx)
"""

_BROKEN = """
raise ImportError("gft_broken needs libmissing")
"""

_HOOKFAIL = """
from ganframe import hookimpl


@hookimpl
def register_generators(register):
    register("halfgen", "gft_good_impl:build", summary="registered before the failure")


@hookimpl
def register_metrics(register):
    register("halfmetric", "gft_good_impl:build")
    raise RuntimeError("metric hook exploded")
"""

_FUTURE = """
from ganframe import hookimpl

GANFRAME_PLUGIN_API = 999


@hookimpl
def register_generators(register):
    register("futuregen", "gft_good_impl:build")
"""

_CLASH = """
from pydantic import BaseModel, ConfigDict

from ganframe import hookimpl


class TwinConfig(BaseModel):
    model_config = ConfigDict(extra="forbid")
    {key}: int = 1


@hookimpl
def register_generators(register):
    register("twin", "gft_good_impl:build", config=TwinConfig)
"""

_TYPO = """
from ganframe import hookimpl


@hookimpl
def register_generatorz(register):
    register("typogen", "gft_good_impl:build")
"""

_DUP = _FUTURE.replace("999", "1").replace("futuregen", "dupgen")

_COMMANDS = """
from ganframe import hookimpl


@hookimpl
def register_commands(register):
    register("hello", "gft_cmd_impl:hello", summary="Say hello (a plugin command).")
    register("run", "gft_cmd_impl:hello", summary="Clashes with the core's run.")
    register("ghost", "gft_cmd_missing:nothing", summary="Its module does not exist.")
    register("gft-tools", "gft_cmd_impl:tools", summary="A group of subcommands.")
"""

_COMMANDS_IMPL = """
import os
from pathlib import Path
from typing import Annotated

import typer

from ganframe.errors import UserError

marker = os.environ.get("GFT_CMD_MARKER")
if marker:  # lets a test see whether this module was imported at all
    Path(marker).write_text("imported")


def hello(
    name: Annotated[str, typer.Argument(help="Who to greet.")],
    shout: Annotated[bool, typer.Option(help="Upper case.")] = False,
) -> None:
    \"\"\"Greet someone.\"\"\"
    if name == "nobody":
        raise UserError("hello needs somebody to greet; pass a name.")
    if name == "bug":
        raise RuntimeError("a bug in the plugin command")
    text = f"hello {name}"
    print(text.upper() if shout else text)


tools = typer.Typer(help="Plugin tools.")


@tools.command()
def check(path: str) -> None:
    \"\"\"Check a file.\"\"\"
    if not Path(path).exists():
        raise UserError(f"{path}: no such file; give an existing one.")
    print(f"{path} is fine")
"""

# (distribution, version, entry-point name, module name, source)
DISTS: tuple[tuple[str, str, str, str, str], ...] = (
    ("gft-good", "1.2.3", "gftgood", "gft_good_plugin", _GOOD),
    ("gft-broken", "0.1.0", "gftbroken", "gft_broken_plugin", _BROKEN),
    ("gft-hookfail", "0.1.0", "gfthookfail", "gft_hookfail_plugin", _HOOKFAIL),
    ("gft-future", "0.1.0", "gftfuture", "gft_future_plugin", _FUTURE),
    ("gft-clash-a", "0.1.0", "gftclasha", "gft_clash_a_plugin", _CLASH.format(key="only_a")),
    ("gft-clash-b", "0.2.0", "gftclashb", "gft_clash_b_plugin", _CLASH.format(key="only_b")),
    ("gft-typo", "0.1.0", "gfttypo", "gft_typo_plugin", _TYPO),
    ("gft-cmd", "0.3.0", "gftcmd", "gft_cmd_plugin", _COMMANDS),
    (
        "gft-dup-a",
        "0.1.0",
        "gftdup",
        "gft_dup_a_plugin",
        _FUTURE.replace("999", "1").replace("futuregen", "dupgen"),
    ),
    (
        "gft-dup-b",
        "0.1.0",
        "gftdup",
        "gft_dup_b_plugin",
        _FUTURE.replace("999", "1").replace("futuregen", "dupgen"),
    ),
)
FAKE_MODULES = [d[3] for d in DISTS] + ["gft_good_impl", "gft_cmd_impl"]


def make_dist(root: Path, dist: str, version: str, ep_name: str, module: str, src: str) -> None:
    info = root / f"{dist.replace('-', '_')}-{version}.dist-info"
    info.mkdir(parents=True)
    (info / "METADATA").write_text(
        f"Metadata-Version: 2.1\nName: {dist}\nVersion: {version}\n", encoding="utf-8"
    )
    (info / "entry_points.txt").write_text(f"[ganframe]\n{ep_name} = {module}\n", encoding="utf-8")
    (root / f"{module}.py").write_text(textwrap.dedent(src), encoding="utf-8")


def _forget_fake_modules() -> None:
    for name in FAKE_MODULES:
        sys.modules.pop(name, None)


@pytest.fixture(scope="module")
def site(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Path]:
    root = tmp_path_factory.mktemp("site")
    for dist in DISTS:
        make_dist(root, *dist)
    (root / "gft_good_impl.py").write_text(textwrap.dedent(_GOOD_IMPL), encoding="utf-8")
    (root / "gft_cmd_impl.py").write_text(textwrap.dedent(_COMMANDS_IMPL), encoding="utf-8")
    yield root
    _forget_fake_modules()


@pytest.fixture
def on_path(site: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """The fake distributions are importable and discoverable in this process."""
    monkeypatch.syspath_prepend(str(site))
    monkeypatch.delenv(DISABLE_AUTOLOAD_ENV, raising=False)
    monkeypatch.delenv(DISABLE_PLUGINS_ENV, raising=False)
    return site


def build_host(disabled: list[str] | None = None) -> tuple[PluginHost, list[str]]:
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always", PluginWarning)
        host = load_plugins(disabled)
    return host, [str(w.message) for w in caught if issubclass(w.category, PluginWarning)]


def by_name(host: PluginHost) -> dict[str, dict]:
    return {p.name: p.as_json(host.registry) for p in host.plugins}


def write_recipe(folder: Path, generator: str = 'type = "mlp"', name: str = "r") -> Path:
    path = folder / f"{name}.toml"
    path.write_text(
        textwrap.dedent(
            """\
            name = "plugins-test"
            device = "cpu"
            [data]
            type = "gaussian-ring"
            size = 256
            [generator]
            {generator}
            [critic]
            type = "mlp"
            [loss]
            type = "hinge"
            [train]
            batch_size = 32
            steps = 5
            """
        ).format(generator=generator),
        encoding="utf-8",
    )
    return path


def cli_env(site: Path, **extra: str) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("GANFRAME_DISABLE")}
    env["PYTHONPATH"] = os.pathsep.join(filter(None, [str(site), env.get("PYTHONPATH")]))
    env["OMP_NUM_THREADS"] = "1"
    env.update(extra)
    return env


def ganframe(site: Path, *args: str, **env: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "ganframe", *args],
        capture_output=True,
        text=True,
        env=cli_env(site, **env),
        timeout=120,
    )


# -- one CLI process: --help and list-plugins, watching sys.modules ------------------------

_PROBE = r"""
import contextlib, io, json, sys
from ganframe import cli

result = {}
for label, argv in (("help", ["--help"]), ("list", ["list-plugins", "--json"])):
    sys.argv = ["ganframe", *argv]
    buf = io.StringIO()
    code = None
    with contextlib.redirect_stdout(buf):
        try:
            cli.main()
        except SystemExit as exc:
            code = exc.code
    result[label] = {
        "exit": code,
        "stdout": buf.getvalue(),
        "torch": "torch" in sys.modules,
        "lazy_impl": "gft_good_impl" in sys.modules,
    }
print("PROBE " + json.dumps(result))
"""


@pytest.fixture(scope="module")
def probe(site: Path) -> dict:
    proc = subprocess.run(
        [sys.executable, "-c", _PROBE],
        capture_output=True,
        text=True,
        env=cli_env(site),
        timeout=120,
    )
    assert proc.returncode == 0, proc.stderr
    line = [ln for ln in proc.stdout.splitlines() if ln.startswith("PROBE ")][-1]
    result = json.loads(line[len("PROBE ") :])
    result["stderr"] = proc.stderr
    return result


@pytest.fixture(scope="module")
def listing(probe: dict) -> list[dict]:
    assert probe["list"]["exit"] in (0, None), probe["stderr"]
    return json.loads(probe["list"]["stdout"])


def test_help_and_list_plugins_do_not_import_torch(probe: dict) -> None:
    assert probe["help"]["exit"] in (0, None)
    assert "list-plugins" in probe["help"]["stdout"]
    assert not probe["help"]["torch"], "'ganframe --help' imported torch"
    assert not probe["list"]["torch"], "'ganframe list-plugins' imported torch"


def test_listing_does_not_import_lazy_factories(probe: dict, listing: list[dict]) -> None:
    good = next(p for p in listing if p["name"] == "gftgood")
    assert good["components"]["generator"] == ["tinygen"]  # it was registered...
    assert not probe["list"]["lazy_impl"]  # ...without importing "gft_good_impl"


def test_list_plugins_json_shape(listing: list[dict]) -> None:
    assert listing, "no plugins listed"
    for row in listing:
        assert set(row) == {"name", "version", "status", "hooks", "components", "commands",
                            "writers", "recipes"}, row
        assert isinstance(row["commands"], list)
        # sample writers as "<data kind> <suffix>", recipes by name
        assert all(isinstance(w, str) and " ." in w for w in row["writers"]), row
        assert all(isinstance(r, str) for r in row["recipes"]), row
        # the primary kinds always; optimisers and schedules only where there are some
        assert KIND_KEYS <= set(row["components"]) <= set(ALL_KINDS), row
        assert all(row["components"][k] for k in set(row["components"]) - KIND_KEYS), row
        assert isinstance(row["hooks"], list)
        assert all(isinstance(v, list) for v in row["components"].values())


def test_builtin_plugins_register_through_the_hooks(listing: list[dict]) -> None:
    builtin = [p for p in listing if p["name"].startswith("ganframe.builtin.")]
    assert builtin and all(p["status"] == "ok" for p in builtin), builtin
    registered: dict[str, set[str]] = {k: set() for k in ALL_KINDS}
    for p in builtin:
        assert p["hooks"], p
        for kind, names in p["components"].items():
            registered[kind] |= set(names)
    assert "gaussian-ring" in registered["dataset"]
    assert "mlp" in registered["generator"] and "mlp" in registered["critic"]
    assert "ring-modes" in registered["metric"]
    assert registered["loss"] >= BUILTIN_LOSSES
    assert registered["optimizer"] == {"adam", "adamw", "rmsprop", "sgd"}
    assert registered["schedule"] == {"constant", "linear", "cosine", "warmup"}


def test_third_party_plugin_listed_with_version_and_components(listing: list[dict]) -> None:
    good = next(p for p in listing if p["name"] == "gftgood")
    assert good["version"] == "1.2.3"
    assert good["status"] == "ok"
    assert good["hooks"] == ["register_generators"]
    assert good["components"] == {
        "generator": ["tinygen"],
        "critic": [],
        "loss": [],
        "dataset": [],
        "metric": [],
    }


def test_cli_broken_plugin_is_one_warning_line_and_the_rest_works(
    site: Path, listing: list[dict], probe: dict, tmp_path: Path
) -> None:
    broken = next(p for p in listing if p["name"] == "gftbroken")
    assert broken["status"].startswith("failed:")
    assert "gft_broken needs libmissing" in broken["status"]
    lines = [ln for ln in probe["stderr"].splitlines() if "gftbroken" in ln]
    assert len(lines) == 1 and lines[0].startswith("warning:"), probe["stderr"]
    assert "Traceback" not in probe["stderr"]
    assert next(p for p in listing if p["name"] == "gftgood")["status"] == "ok"

    proc = ganframe(site, "validate", str(write_recipe(tmp_path)))
    assert proc.returncode == 0, proc.stderr
    assert "ok" in proc.stdout
    assert len([ln for ln in proc.stderr.splitlines() if "gftbroken" in ln]) == 1
    assert "Traceback" not in proc.stderr


def test_cli_disable_plugin_option(site: Path) -> None:
    proc = ganframe(site, "--disable-plugin", "gftgood", "list-plugins", "--json")
    assert proc.returncode == 0, proc.stderr
    rows = {p["name"]: p for p in json.loads(proc.stdout)}
    assert rows["gftgood"]["status"] == "disabled"
    assert rows["gftgood"]["components"]["generator"] == []
    assert rows["gftfuture"]["status"].startswith("incompatible")  # the others still load


# -- plugin commands (register_commands) ---------------------------------------------------


def test_plugin_command_is_listed_and_runs(site: Path, listing: list[dict], probe: dict) -> None:
    row = next(p for p in listing if p["name"] == "gftcmd")
    assert row["status"] == "ok" and row["commands"] == ["gft-tools", "ghost", "hello", "run"]
    assert row["hooks"] == ["register_commands"]
    helptext = probe["help"]["stdout"]
    assert "hello" in helptext and "Say hello (a plugin command)." in helptext
    assert "ghost" not in helptext  # its module does not import: left out...
    assert not probe["help"]["torch"]
    # ...with one warning line each for it and for the name the core owns.
    ghost = [ln for ln in probe["stderr"].splitlines() if "'ghost'" in ln]
    assert len(ghost) == 1 and "could not be loaded" in ghost[0], probe["stderr"]
    clash = [ln for ln in probe["stderr"].splitlines() if "command 'run'" in ln]
    assert len(clash) == 1 and "a ganframe command already provides" in clash[0]
    assert "Traceback" not in probe["stderr"]

    proc = ganframe(site, "hello", "world", "--shout")
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout.strip() == "HELLO WORLD"
    proc = ganframe(site, "hello", "--help")
    assert proc.returncode == 0 and "Who to greet." in proc.stdout


def test_plugin_command_errors_exit_like_core_commands(site: Path) -> None:
    proc = ganframe(site, "hello", "nobody")
    assert proc.returncode == 2
    assert "hello needs somebody to greet" in proc.stderr and "Traceback" not in proc.stderr
    proc = ganframe(site, "hello", "bug")
    assert proc.returncode == 1
    assert "internal error: RuntimeError: a bug in the plugin command" in proc.stderr
    assert "Traceback" not in proc.stderr
    proc = ganframe(site, "--debug", "hello", "bug")
    assert proc.returncode == 1 and "Traceback" in proc.stderr


def test_plugin_command_group(site: Path, tmp_path: Path) -> None:
    proc = ganframe(site, "--help")
    assert "gft-tools" in proc.stdout and "A group of subcommands." in proc.stdout
    proc = ganframe(site, "gft-tools", "check", str(tmp_path))
    assert proc.returncode == 0 and "is fine" in proc.stdout, proc.stderr
    proc = ganframe(site, "gft-tools", "check", str(tmp_path / "nope"))
    assert proc.returncode == 2 and "no such file; give an existing one" in proc.stderr
    assert "Traceback" not in proc.stderr


def test_core_command_is_never_replaced_and_disabled_plugins_lose_commands(
    site: Path, tmp_path: Path
) -> None:
    proc = ganframe(site, "run", str(tmp_path / "missing.toml"))
    assert proc.returncode == 2 and "hello" not in proc.stdout  # the core's run answered
    for args in (["-p", "gftcmd"], ["--disable-plugin=gftcmd"], ["-pgftcmd"]):
        proc = ganframe(site, *args, "hello", "world")
        assert proc.returncode == 2 and "No such command 'hello'" in proc.stderr, args
        proc = ganframe(site, *args, "--help")
        assert proc.returncode == 0 and "hello" not in proc.stdout, args


def test_core_commands_do_not_import_plugin_command_modules(site: Path, tmp_path: Path) -> None:
    marker = tmp_path / "imported"
    proc = ganframe(site, "validate", str(write_recipe(tmp_path)), GFT_CMD_MARKER=str(marker))
    assert proc.returncode == 0, proc.stderr
    proc = ganframe(site, "list-plugins", GFT_CMD_MARKER=str(marker))
    assert proc.returncode == 0, proc.stderr
    assert not marker.exists()
    proc = ganframe(site, "hello", "x", GFT_CMD_MARKER=str(marker))
    assert proc.returncode == 0 and marker.exists()


@pytest.mark.parametrize("name", ["Hello", "two words", "-x", "a:b", ""])
def test_invalid_command_names_fail_the_plugin(
    name: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    make_dist(tmp_path, "gft-badcmd", "0.1.0", "gftbadcmd", "gft_badcmd_plugin",
              "from ganframe import hookimpl\n\n@hookimpl\ndef register_commands(register):\n"
              f"    register({name!r}, print)\n")
    monkeypatch.syspath_prepend(str(tmp_path))
    monkeypatch.delenv(DISABLE_AUTOLOAD_ENV, raising=False)
    try:
        host, warned = build_host()
    finally:
        sys.modules.pop("gft_badcmd_plugin", None)
    row = by_name(host)["gftbadcmd"]
    assert row["status"].startswith("failed:") and "invalid command name" in row["status"]
    assert row["commands"] == [] and any("gftbadcmd" in w for w in warned)


# -- the host in this process --------------------------------------------------------------


def test_import_failure_is_recorded_and_others_keep_working(on_path: Path, tmp_path) -> None:
    host, warned = build_host()
    rows = by_name(host)
    assert rows["gftbroken"]["status"].startswith("failed:")
    assert "ImportError" in rows["gftbroken"]["status"]
    assert "gft_broken needs libmissing" in rows["gftbroken"]["status"]
    assert [w for w in warned if "gftbroken" in w], warned
    assert rows["gftgood"]["status"] == "ok"
    assert all(rows[n]["status"] == "ok" for n in rows if n.startswith("ganframe.builtin."))
    resolved = load_recipe(write_recipe(tmp_path), host.registry)
    assert resolved.component("generator")[0].plugin == "ganframe.builtin.toy_plugin"


def test_failing_hook_drops_partial_registrations(on_path: Path) -> None:
    host, warned = build_host()
    row = by_name(host)["gfthookfail"]
    assert row["status"].startswith("failed:")
    assert "metric hook exploded" in row["status"]
    assert row["components"] == {k: [] for k in KIND_KEYS}
    assert "halfgen" not in host.registry.names("generator")  # registered by an earlier hook
    assert "halfmetric" not in host.registry.names("metric")
    assert [w for w in warned if "gfthookfail" in w]
    with pytest.raises(UserError, match="halfgen"):
        host.registry.get("generator", "halfgen")


def test_plugin_for_another_api_version_is_incompatible(on_path: Path) -> None:
    host, _ = build_host()
    row = by_name(host)["gftfuture"]
    assert row["status"].startswith("incompatible:")
    assert "999" in row["status"]
    assert "futuregen" not in host.registry.names("generator")


@pytest.mark.parametrize("api", sorted(SUPPORTED_PLUGIN_APIS))
def test_plugins_for_every_supported_api_version_load(
    api: int, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    # API 2 changed the contracts compatibly: a plugin written for API 1 must keep loading.
    assert PLUGIN_API_VERSION in SUPPORTED_PLUGIN_APIS and 1 in SUPPORTED_PLUGIN_APIS
    src = _FUTURE.replace("999", str(api)).replace("futuregen", f"apigen{api}")
    make_dist(tmp_path, f"gft-api{api}", "0.1.0", f"gftapi{api}", f"gft_api{api}_plugin", src)
    monkeypatch.syspath_prepend(str(tmp_path))
    monkeypatch.delenv(DISABLE_AUTOLOAD_ENV, raising=False)
    try:
        host, warned = build_host()
    finally:
        sys.modules.pop(f"gft_api{api}_plugin", None)
    assert by_name(host)[f"gftapi{api}"]["status"] == "ok"
    assert f"apigen{api}" in host.registry.names("generator")
    assert not [w for w in warned if f"gftapi{api}" in w]


def test_same_name_from_two_plugins_needs_qualification(on_path: Path, tmp_path) -> None:
    host, _ = build_host()
    rows = by_name(host)
    assert rows["gftclasha"]["status"].startswith("ok")
    assert rows["gftclashb"]["status"].startswith("ok")
    with pytest.raises(UserError) as info:
        load_recipe(write_recipe(tmp_path, 'type = "twin"'), host.registry)
    assert "gftclasha" in str(info.value) and "gftclashb" in str(info.value)
    assert "gftclasha:twin" in str(info.value)

    a = load_recipe(
        write_recipe(tmp_path, 'type = "gftclasha:twin"\nonly_a = 2', "a"), host.registry
    )
    spec, config = a.component("generator")
    assert (spec.plugin, spec.version, config.only_a) == ("gftclasha", "0.1.0", 2)
    b = load_recipe(write_recipe(tmp_path, 'type = "gftclashb:twin"', "b"), host.registry)
    assert b.component("generator")[0].plugin == "gftclashb"
    assert b.component("generator")[0].version == "0.2.0"
    # each qualified name gets that plugin's own config model
    with pytest.raises(UserError, match="only_a"):
        load_recipe(
            write_recipe(tmp_path, 'type = "gftclashb:twin"\nonly_a = 2', "c"), host.registry
        )


def test_autoload_can_be_switched_off(on_path: Path, monkeypatch) -> None:
    monkeypatch.setenv(DISABLE_AUTOLOAD_ENV, "1")
    host, warned = build_host()
    names = [p.name for p in host.plugins]
    assert names and all(n.startswith("ganframe.builtin.") for n in names), names
    assert warned == []
    assert "gaussian-ring" in host.registry.names("dataset")
    assert "tinygen" not in host.registry.names("generator")


@pytest.mark.parametrize("via", ["argument", "environment"])
def test_one_plugin_can_be_blocked(on_path: Path, monkeypatch, via: str) -> None:
    monkeypatch.delitem(sys.modules, "gft_good_plugin", raising=False)
    if via == "environment":
        monkeypatch.setenv(DISABLE_PLUGINS_ENV, "gftgood, gftfuture")
        host, _ = build_host()
    else:
        host, _ = build_host(["gftgood"])
    rows = by_name(host)
    assert rows["gftgood"]["status"] == "disabled"
    assert rows["gftgood"]["version"] == "1.2.3"
    assert "tinygen" not in host.registry.names("generator")
    assert "gft_good_plugin" not in sys.modules  # blocked plugins are not even imported
    assert rows["gftclasha"]["status"].startswith("ok")


def test_lazy_factory_is_imported_when_a_recipe_builds_it(on_path: Path, tmp_path) -> None:
    import torch

    from ganframe.components import BuildContext

    _forget_fake_modules()
    host, _ = build_host()
    resolved = load_recipe(write_recipe(tmp_path, 'type = "tinygen"\nwidth = 3'), host.registry)
    assert "gft_good_impl" not in sys.modules  # validation reads only the config model
    spec, config = resolved.component("generator")
    gen = spec.build(config, BuildContext(data_info={"dim": 2}, device=torch.device("cpu")))
    assert "gft_good_impl" in sys.modules
    x = gen.generate(5, device=torch.device("cpu"), rng=torch.Generator().manual_seed(0))
    assert tuple(x.shape) == (5, 2)


def test_misspelled_hook_is_a_failed_plugin_not_a_silent_no_op(on_path: Path) -> None:
    fake_host, _ = build_host()
    info = {p.name: p for p in fake_host.plugins}["gfttypo"]
    assert info.status.startswith("failed:") and "register_generatorz" in info.status
    assert "typogen" not in fake_host.registry.names("generator")


def test_second_distribution_with_the_same_plugin_name_is_reported(on_path: Path) -> None:
    fake_host, _ = build_host()
    dups = [p for p in fake_host.plugins if p.name == "gftdup"]
    assert len(dups) == 2
    assert sorted(p.status.split(":")[0] for p in dups) == ["failed", "ok"]
    failed = next(p for p in dups if p.status.startswith("failed"))
    assert "already taken by distribution gft-dup-" in failed.status


def test_disabled_builtin_is_listed_as_disabled() -> None:
    host = load_plugins(["ganframe.builtin.toy_plugin"], autoload=False)
    info = {p.name: p for p in host.plugins}["ganframe.builtin.toy_plugin"]
    assert info.status == "disabled"
    assert "gaussian-ring" not in host.registry.names("dataset")
    assert "hinge" in host.registry.names("loss")


def test_incompatible_plugin_is_warned_about(on_path: Path) -> None:
    fake_host, caught = build_host()
    assert any(p.name == "gftfuture" for p in fake_host.failures)
    assert any("gftfuture" in line for line in caught)


def test_every_hook_spec_is_exercised_by_a_builtin_plugin() -> None:
    """Each hook is called for real: a default plugin implements it and what it registers
    reaches the registry under that plugin's name."""
    import inspect

    from ganframe import hookspecs
    from ganframe.plugins import HOOK_NAMES

    specs = {
        n for n, f in inspect.getmembers(hookspecs, inspect.isfunction) if n.startswith("register_")
    }
    assert specs == set(HOOK_NAMES)
    host = load_plugins(autoload=False)
    by_hook: dict[str, set[str]] = {}
    for info in host.plugins:
        for hook in info.hooks:
            by_hook.setdefault(hook, set()).add(info.name)
    assert set(by_hook) == specs
    reg = host.registry
    kinds = {
        "register_generators": "generator",
        "register_critics": "critic",
        "register_losses": "loss",
        "register_datasets": "dataset",
        "register_metrics": "metric",
        "register_optimizers": "optimizer",
        "register_schedules": "schedule",
    }
    for hook, kind in kinds.items():
        assert {s.plugin for s in reg.components[kind]} & by_hook[hook], hook
    assert {r.plugin for r in reg.recipes} & by_hook["register_recipes"]
    assert {w.plugin for w in reg.writers} & by_hook["register_sample_writers"]
    assert {c.plugin for c in reg.commands} & by_hook["register_commands"]
