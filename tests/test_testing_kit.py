"""``ganframe.testing``, the plugin author's testing kit: fake data descriptions, building
components as recipes do, a plugin that is not installed, recipes run in this process, exact
resume and ``ganframe check-plugin``, and the fixtures a conftest.py re-exports."""

from __future__ import annotations

import json
import sys
import textwrap
from collections.abc import Iterator
from pathlib import Path

import pytest
import torch
from pydantic import ValidationError

from ganframe import api
from ganframe import testing as kit
from ganframe.components import Batch, BuildContext
from ganframe.errors import UserError
from ganframe.loop.events import Callback
from ganframe.plugins import current_host, get_registry
from ganframe.testing import (
    DATA_KINDS,
    assert_resumes_exactly,
    build_component,
    check_plugin,
    checkpoint_tensors,
    data_kind,
    fake_batch,
    fake_data_info,
    host_with,
    make_context,
    run_recipe,
)

# the kit's fixtures, as a plugin's conftest.py makes them available
run_folder, fake_info, build_ctx = kit.run_folder, kit.fake_info, kit.build_ctx

RECIPE = """\
name = "kit"
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
type = "non-saturating"
[train]
batch_size = 32
steps = 100
log_every = 1
sample_count = 8
"""

TINY = [
    "data.size=256", "generator.hidden=16", "generator.layers=1", "critic.hidden=16",
    "critic.layers=1", "train.batch_size=32", "train.log_every=1", "train.sample_count=8",
    "metrics=[]",
]

# -- fake data descriptions ------------------------------------------------------------------


def test_fake_data_info_has_what_each_kind_must_say() -> None:
    image, points, text = (fake_data_info(k) for k in ("image", "points", "text"))
    assert image["shape"] == [1, 8, 8] and (image["channels"], image["height"]) == (1, 8)
    assert points["dim"] == 2 and len(points["plot_range"]) == 2
    assert text["vocab"][text["pad"]] == "<pad>" and text["seq_len"] == text["max_len"] + 1
    assert {text[k] for k in ("pad", "unk", "start", "end")} == {0, 1, 2, 3}
    assert [data_kind(i) for i in (image, points, text)] == ["image", "points", "text"]
    assert DATA_KINDS == ("image", "points", "text")
    for info in (image, points, text):
        assert json.loads(json.dumps(info)) == info  # JSON-able, like a real info()
        assert "num_classes" not in info


def test_fake_data_info_options_and_independence() -> None:
    big = fake_data_info("image", shape=[3, 16, 12], labelled=True)
    assert (big["channels"], big["height"], big["width"]) == (3, 16, 12)
    assert big["num_classes"] == 3 and len(big["class_names"]) == 3
    big["shape"].append(99)
    assert fake_data_info("image")["shape"] == [1, 8, 8]  # each call is a fresh copy
    with pytest.raises(ValueError, match="unknown data kind 'audio'"):
        fake_data_info("audio")


@pytest.mark.parametrize("kind,shape,dtype", [
    ("image", (5, 1, 8, 8), torch.float32),
    ("points", (5, 2), torch.float32),
    ("text", (5, 9), torch.int64),
])
def test_fake_batch_fits_its_description(kind: str, shape: tuple, dtype: torch.dtype) -> None:
    info = fake_data_info(kind)
    x = fake_batch(info, 5, seed=3)
    assert isinstance(x, torch.Tensor) and tuple(x.shape) == shape and x.dtype == dtype
    assert torch.equal(x, fake_batch(info, 5, seed=3))
    assert not torch.equal(x, fake_batch(info, 5, seed=4))
    if kind == "image":
        assert x.min() >= -1 and x.max() <= 1
    if kind == "text":
        assert x.min() >= 0 and x.max() < len(info["vocab"])
    labelled = fake_batch(fake_data_info(kind, labelled=True), 5)
    assert isinstance(labelled, Batch) and labelled.labels is not None
    assert labelled.labels.max() < 3


def test_make_context_is_a_cpu_build_context(tmp_path: Path) -> None:
    ctx = make_context(kind="text", recipe_dir=tmp_path)
    assert isinstance(ctx, BuildContext) and ctx.device == torch.device("cpu")
    assert ctx.data_info == fake_data_info("text") and ctx.recipe_dir == tmp_path
    assert make_context({"dim": 3}).data_info == {"dim": 3}


# -- building components as a recipe does ------------------------------------------------------


def test_build_component_validates_options_then_builds() -> None:
    gen = build_component("generator", "mlp", options={"hidden": 8, "layers": 1},
                          data_info=fake_data_info("points", dim=3))
    assert gen.generate(4, device="cpu").shape == (4, 3)
    with pytest.raises(ValidationError):
        build_component("generator", "mlp", options={"hidden": -1})
    with pytest.raises(ValidationError):  # unknown option: the builtin models forbid extras
        build_component("generator", "mlp", options={"hiden": 8})
    layer = torch.nn.Linear(2, 2)
    opt = build_component("optimizer", "sgd", options={"lr": 0.1},
                          args=[list(layer.parameters())])
    assert isinstance(opt, torch.optim.SGD) and opt.param_groups[0]["lr"] == 0.1
    schedule = build_component("schedule", "linear")
    assert schedule.factor(0, 10) == pytest.approx(1.0)


def test_fixtures_are_usable_from_a_test_module(run_folder: Path, fake_info, build_ctx,
                                                tmp_path: Path) -> None:
    assert run_folder.parent == tmp_path and not run_folder.exists()
    assert fake_info("points") == fake_data_info("points")
    assert build_ctx(kind="image").data_info["shape"] == [1, 8, 8]


# -- a plugin module that is not installed ------------------------------------------------------

KIT_PLUGIN = '''
from pydantic import BaseModel, ConfigDict

from ganframe import hookimpl

__version__ = "0.3.0"


class CountingConfig(BaseModel):
    model_config = ConfigDict(extra="forbid")
    drift: float = 0.05


@hookimpl
def register_losses(register):
    register("counting", "gft_kit_impl:Counting", config=CountingConfig,
             summary="non-saturating, plus a drift that grows with a counter it never saves")
'''

KIT_IMPL = '''
import torch.nn.functional as F

from ganframe.components import StepOutput


class Counting:
    """Non-saturating GAN whose generator loss drifts with the number of calls: state that
    is not in a state_dict, so a resumed run differs from a straight one."""

    trains_critic = True
    trains_generator = True

    def __init__(self, config, ctx):
        self.drift, self.calls = config.drift, 0

    def critic_loss(self, ctx, real):
        fake = ctx.fake(real.shape[0]).detach()
        loss = F.softplus(-ctx.score(real)).mean() + F.softplus(ctx.score(fake)).mean()
        return StepOutput(loss)

    def generator_loss(self, ctx, real):
        self.calls += 1
        loss = F.softplus(-ctx.score(ctx.fake(real.shape[0]))).mean()
        drift = sum(p.sum() for p in ctx.generator.parameters()) * self.drift * self.calls
        return StepOutput(loss + drift)
'''


@pytest.fixture
def kit_module(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[str]:
    folder = tmp_path / "src"
    folder.mkdir()
    (folder / "gft_kit_plugin.py").write_text(textwrap.dedent(KIT_PLUGIN), encoding="utf-8")
    (folder / "gft_kit_impl.py").write_text(textwrap.dedent(KIT_IMPL), encoding="utf-8")
    (folder / "gft_kit_broken.py").write_text("raise RuntimeError('kit broke')\n",
                                              encoding="utf-8")
    monkeypatch.syspath_prepend(str(folder))
    yield "gft_kit_plugin"
    for name in ("gft_kit_plugin", "gft_kit_impl", "gft_kit_broken"):
        sys.modules.pop(name, None)


def test_host_with_loads_a_module_that_is_not_installed(kit_module: str) -> None:
    before = current_host()
    with host_with(kit=kit_module) as host:
        assert current_host() is host and get_registry() is host.registry
        info = {p.name: p for p in host.plugins}
        assert info["kit"].status == "ok"
        assert info["kit"].version == "0.3.0" and info["kit"].dist == "(not installed)"
        assert host.registry.get("loss", "kit:counting").plugin == "kit"
        # the API sees it: a recipe naming it validates
        sets = ["loss.type=kit:counting", "loss.r1_gamma=0.1"]
        with pytest.raises(UserError, match="loss.r1_gamma: unknown key"):  # its own options
            api.load_recipe("gaussian-ring", sets)
        resolved = api.load_recipe("gaussian-ring", ["loss={type='kit:counting', drift=0.5}"])
        assert resolved.component("loss")[0].plugin == "kit"
        assert resolved.component("loss")[1].drift == 0.5
    assert current_host() is before
    with pytest.raises(UserError, match="unknown loss type 'kit:counting'"):
        api.load_recipe("gaussian-ring", ["loss={type='kit:counting'}"])


def test_host_with_names_a_module_after_its_package(kit_module: str, tmp_path: Path) -> None:
    with host_with(kit_module) as host:
        assert host.registry.get("loss", "counting").plugin == "gft_kit_plugin"
    package = tmp_path / "src" / "ganframe_kitx"
    package.mkdir()
    (package / "__init__.py").write_text("")
    (package / "plugin.py").write_text(textwrap.dedent(KIT_PLUGIN), encoding="utf-8")
    try:
        with host_with("ganframe_kitx.plugin") as host:  # named like its entry point would be
            assert host.registry.get("loss", "counting").plugin == "kitx"
    finally:
        for name in ("ganframe_kitx", "ganframe_kitx.plugin"):
            sys.modules.pop(name, None)


def test_host_with_refuses_a_plugin_that_fails_to_load(kit_module: str) -> None:
    with pytest.raises(AssertionError) as info:
        with host_with(broken="gft_kit_broken"):
            pass
    assert "plugin broken failed: import error: RuntimeError: kit broke" in str(info.value)
    assert "Traceback" in str(info.value)  # what failed, where
    with host_with(broken="gft_kit_broken", check=False) as host:
        assert host.failures[0].name == "broken"


# -- running recipes ----------------------------------------------------------------------------


def test_run_recipe_runs_steps_in_this_process(run_folder: Path) -> None:
    result = run_recipe("gaussian-ring", steps=3, out=run_folder, overrides=TINY)
    assert result.step == 3 and result.stopped_early
    assert result.checkpoint is not None and result.checkpoint.is_file()
    tensors = checkpoint_tensors(result.checkpoint)
    assert tensors and all(isinstance(t, torch.Tensor) for t in tensors.values())
    more = run_recipe("gaussian-ring", steps=5, out=run_folder, overrides=TINY, resume=True)
    assert more.step == 5
    with pytest.raises(ValueError, match="at least 1"):
        run_recipe("gaussian-ring", steps=0, out=run_folder)
    with pytest.raises(ValueError, match="not a loaded recipe"):
        run_recipe(api.load_recipe("gaussian-ring"), out=run_folder, overrides=TINY)


def test_assert_resumes_exactly_passes_for_an_exact_plugin(tmp_path: Path) -> None:
    assert_resumes_exactly("gaussian-ring", out=tmp_path, steps=4, overrides=TINY)
    straight = checkpoint_tensors(tmp_path / "straight" / "checkpoints" / "last.safetensors")
    assert straight  # it compared real checkpoints


def test_assert_resumes_exactly_catches_state_a_plugin_does_not_save(
    kit_module: str, tmp_path: Path
) -> None:
    recipe = tmp_path / "kit.toml"
    recipe.write_text(RECIPE, encoding="utf-8")
    assert_resumes_exactly(recipe, out=tmp_path / "plain", steps=4)
    with host_with(kit_module) as host:
        assert host.registry.get("loss", "counting")
        with pytest.raises(AssertionError, match="checkpoint tensors differ from a straight"):
            assert_resumes_exactly(recipe, out=tmp_path / "counting", steps=4,
                                   overrides=["loss.type=counting"])


# -- ganframe check-plugin, from a test ----------------------------------------------------------


def test_check_plugin_runs_the_command_on_an_installed_plugin() -> None:
    result = check_plugin("ganframe.builtin.callbacks_plugin")
    assert result.ok and result.exit_code == 0, result.output
    assert result.failures() == []
    assert all(row["status"] == "ok" for row in result.rows), result.rows
    missing = check_plugin("no-such-plugin-xyz")
    assert not missing.ok and missing.exit_code == 2
    assert "no plugin named 'no-such-plugin-xyz'" in missing.output


def test_loggers_and_callbacks_build_through_the_kit(run_folder: Path) -> None:
    ctx = make_context(kind="points")
    assert isinstance(build_component("callback", "throughput", ctx=ctx), Callback)
    assert isinstance(build_component("logger", "jsonl", ctx=ctx), Callback)
