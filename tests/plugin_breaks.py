"""A broken third-party plugin, one way per scenario, and what ``ganframe`` prints about it.

Shared by tests/test_plugin_errors.py (each message names the plugin, the component and the
file:line) and tests/test_plugin_docs.py (the "When your plugin breaks" section of
docs/plugins.md shows exactly this output). The plugin is ``rgan`` (distribution
ganframe-rgan 0.1.0, package ``ganframe_rgan``): a relativistic-average loss, written as a
new author would, with one mistake per scenario. It is a real (fake) distribution: a
dist-info folder on ``PYTHONPATH``, found through ``importlib.metadata`` like an installed one.

``python tests/plugin_breaks.py`` prints every scenario's output, to paste into the docs.
"""

from __future__ import annotations

import atexit
import functools
import os
import re
import shutil
import subprocess
import sys
import tempfile
import textwrap
from dataclasses import dataclass, field
from pathlib import Path

PLUGIN = '''\
from pydantic import BaseModel, ConfigDict, Field

from ganframe import hookimpl


class RaGanConfig(BaseModel):
    model_config = ConfigDict(extra="forbid")
    smoothing: float = Field(0.0, ge=0, lt=1, description="One-sided label smoothing.")


@hookimpl
def register_losses(register):
    register("ragan", "ganframe_rgan.loss:RaGAN", config=RaGanConfig)
'''

LOSS = '''\
import torch.nn.functional as F
from ganframe.components import StepOutput


class RaGAN:
    """Relativistic average GAN (Jolicoeur-Martineau, 2018)."""

    trains_critic = True
    trains_generator = True

    def __init__(self, config, ctx):
        self.smoothing = config.smoothing

    def _gaps(self, ctx, real, fake):
        r, f = ctx.score(real).reshape(-1), ctx.score(fake).reshape(-1)
        return r - f.mean(), f - r.mean()

    def critic_loss(self, ctx, real):
        real_gap, fake_gap = self._gaps(ctx, real, ctx.fake(real.shape[0]).detach())
        target = 1.0 - self.smoothing
        loss = F.softplus(-real_gap).mean() * target + F.softplus(fake_gap).mean()
        return StepOutput(loss, {"d_loss": loss.detach()})

    def generator_loss(self, ctx, real):
        real_gap, fake_gap = self._gaps(ctx, real, ctx.fake(real.shape[0]))
        loss = F.softplus(real_gap).mean() + F.softplus(-fake_gap).mean()
        return StepOutput(loss, {"g_loss": loss.detach()})
'''

RECIPE = """\
name = "ring-ragan"
device = "cpu"

[data]
type = "gaussian-ring"
size = 256

[generator]
type = "mlp"
hidden = 16
layers = 1

[critic]
type = "mlp"
hidden = 16
layers = 1

[loss]
type = "ragan"

[train]
batch_size = 32
steps = 2
"""


@dataclass
class Scenario:
    """One mistake: what is changed in the good plugin, and the command that shows it."""

    key: str
    title: str
    args: list[str]
    plugin: str = PLUGIN
    loss: str = LOSS
    recipe: str = RECIPE
    extra: dict[str, str] = field(default_factory=dict)  #: more files of the package
    exit_code: int = 2


def _swap(text: str, old: str, new: str) -> str:
    assert old in text, old
    return text.replace(old, new)


#: The hook registers "ragan", then fails on its second component: the plugin is dropped.
HOOK_RAISES = _swap(PLUGIN, "config=RaGanConfig)\n",
                    'config=RaGanConfig)\n    register("ragan-gp", SETTINGS["gp"])\n'
                    ).replace("class RaGanConfig", "SETTINGS = {}\n\n\nclass RaGanConfig")

SCENARIOS: dict[str, Scenario] = {s.key: s for s in (
    Scenario("typo", "A typo in a lazy factory string", ["run", "ring.toml", "--out", "run"],
             plugin=_swap(PLUGIN, "loss:RaGAN", "loss:RaGan")),
    Scenario("dependency", "A missing dependency of the component's module",
             ["run", "ring.toml", "--out", "run"],
             loss="import kornia  # an optional dependency the user does not have\n" + LOSS),
    Scenario("build", "The factory raises while building",
             ["run", "ring.toml", "--out", "run"],
             loss=_swap(LOSS, "self.smoothing = config.smoothing",
                        "self.smoothing = config.label_smoothing")),
    Scenario("config", "A lazy config model that does not exist",
             ["validate", "ring.toml"],
             plugin=_swap(PLUGIN, "config=RaGanConfig", 'config="ganframe_rgan.plugin:Config"')),
    Scenario("hook", "A hook that raises (and the recipe that needed it)",
             ["validate", "ring.toml"],
             plugin=HOOK_RAISES),
    Scenario("debug", "The same, with --debug: the traceback under the warning",
             ["--debug", "list-plugins", "--json"],
             plugin=HOOK_RAISES,
             exit_code=0),
    Scenario("register", "A wrong call of register", ["list-plugins", "--json"],
             plugin=_swap(PLUGIN, "config=RaGanConfig", "confg=RaGanConfig"), exit_code=0),
    Scenario("hookname", "A misspelled hook name", ["list-plugins", "--json"],
             plugin=_swap(PLUGIN, "def register_losses", "def register_lossses"),
             exit_code=0),
    Scenario("import", "The entry point does not import (and a recipe that needed it)",
             ["validate", "ring.toml"],
             plugin=_swap(PLUGIN, "from ganframe import hookimpl",
                          "from ganframe import hookimpl\nfrom ganframe_rgan import helpers")),
    Scenario("case", "A component's name in another case", ["validate", "ring.toml"],
             recipe=_swap(RECIPE, 'type = "ragan"', 'type = "raGAN"')),
    Scenario("key", "A misspelled recipe key", ["validate", "ring.toml"],
             recipe=_swap(RECIPE, "steps = 2", "stpes = 2")),
    Scenario("option", "A misspelled option of the plugin's component", ["validate", "ring.toml"],
             recipe=_swap(RECIPE, 'type = "ragan"', 'type = "ragan"\nsmoothing_ = 0.1')),
)}


def make_site(root: Path, scenario: Scenario) -> Path:
    """The distribution ganframe-rgan 0.1.0 with the scenario's files, under ``root/site``;
    the recipe as ``root/ring.toml``."""
    site = root / "site"
    info = site / "ganframe_rgan-0.1.0.dist-info"
    info.mkdir(parents=True)
    (info / "METADATA").write_text("Metadata-Version: 2.1\nName: ganframe-rgan\n"
                                   "Version: 0.1.0\n", encoding="utf-8")
    (info / "entry_points.txt").write_text("[ganframe]\nrgan = ganframe_rgan.plugin\n",
                                           encoding="utf-8")
    package = site / "ganframe_rgan"
    package.mkdir()
    files = {"__init__.py": "", "plugin.py": scenario.plugin, "loss.py": scenario.loss,
             **scenario.extra}
    for name, text in files.items():
        (package / name).write_text(textwrap.dedent(text), encoding="utf-8")
    (root / "ring.toml").write_text(scenario.recipe, encoding="utf-8")
    return site


def run(scenario: Scenario, root: Path) -> subprocess.CompletedProcess[str]:
    """``ganframe ARGS`` in ``root`` with the scenario's plugin installed (PYTHONPATH)."""
    site = make_site(root, scenario)
    env = {k: v for k, v in os.environ.items() if not k.startswith("GANFRAME_DISABLE")}
    env["PYTHONPATH"] = os.pathsep.join(filter(None, [str(site), env.get("PYTHONPATH")]))
    env["OMP_NUM_THREADS"] = "1"
    return subprocess.run([sys.executable, "-P", "-m", "ganframe", *scenario.args], cwd=root,
                          capture_output=True, text=True, env=env, timeout=240)


@dataclass
class Outcome:
    proc: subprocess.CompletedProcess[str]
    root: Path  #: the folder it ran in (kept until the tests end)

    @property
    def shown(self) -> str:
        return shown(SCENARIOS[self.key], self.proc, self.root)

    key: str = ""


@functools.cache
def outcome(key: str) -> Outcome:
    """The scenario ``key`` run once per test session (the docs test and the errors test
    look at the same runs)."""
    root = Path(tempfile.mkdtemp(prefix=f"ganframe-breaks-{key}-"))
    atexit.register(shutil.rmtree, root, True)
    return Outcome(run(SCENARIOS[key], root), root, key)


def shown(scenario: Scenario, proc: subprocess.CompletedProcess[str], root: Path) -> str:
    """What the docs show: the command, then what it printed on stderr, with the machine's
    folders replaced by ``...`` and the list of available components by ``[...]``."""
    text = proc.stderr
    for folder in sorted({str(root / "site"), str(root), str(Path(__file__).parents[1])},
                         key=len, reverse=True):
        text = text.replace(folder, "...")
    # what is installed besides: not the point of the example
    text = re.sub(r"Available: [^.]*\.", "Available: [...].", text)
    return "$ ganframe " + " ".join(scenario.args) + "\n" + text.rstrip() + "\n"


def matches(expected: str, actual: str) -> bool:
    """``expected`` equals ``actual`` line by line, where a line ``...`` in ``expected``
    stands for any number of lines (tracebacks shown shortened in the docs)."""
    want, have = expected.rstrip("\n").split("\n"), actual.rstrip("\n").split("\n")

    def match(i: int, j: int) -> bool:
        if i == len(want):
            return j == len(have)
        if want[i] == "...":
            return any(match(i + 1, k) for k in range(j, len(have) + 1))
        return j < len(have) and want[i] == have[j] and match(i + 1, j + 1)

    return match(0, 0)


if __name__ == "__main__":
    for key, scenario in SCENARIOS.items():
        with tempfile.TemporaryDirectory() as tmp:
            proc = run(scenario, Path(tmp))
            print(f"<!-- breaks:{key} exit {proc.returncode} -->")
            print(shown(scenario, proc, Path(tmp)))
