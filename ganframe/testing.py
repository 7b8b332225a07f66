"""Helpers and pytest fixtures for testing a ganframe plugin.

Everything a plugin's tests need without reaching into ganframe's internals: a fake data
description per kind of data (the ``info()`` a dataset would give), building a component the
way a recipe does, loading a plugin module that is not installed, running a recipe for a few
steps in this process, checking that a run resumes exactly, and running
``ganframe check-plugin`` on an installed plugin::

    # conftest.py of your plugin: makes the fixtures available to every test
    from ganframe.testing import build_ctx, fake_info, run_folder  # noqa: F401

    # test_mine.py
    from ganframe.testing import build_component, fake_data_info, run_recipe

    def test_generator_builds_for_images():
        gen = build_component("generator", "my-gen", data_info=fake_data_info("image"))
        assert gen.generate(4, device="cpu").shape == (4, 1, 8, 8)

    def test_shipped_recipe_runs(run_folder):
        assert run_recipe("my-recipe", steps=2, out=run_folder).step == 2

Importing this module imports neither torch nor pytest (the fixtures are made when first
imported), so ``conftest.py`` may import it freely.
"""

from __future__ import annotations

import contextlib
import copy
import json
import os
import subprocess
import sys
from collections.abc import Callable, Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

from ganframe.errors import UserError

if TYPE_CHECKING:  # torch stays out of import time
    from torch import Tensor

    from ganframe.components import Batch, BuildContext
    from ganframe.loop.trainer import TrainResult
    from ganframe.plugins import PluginHost
    from ganframe.recipe import ResolvedRecipe
    from ganframe.registry import Registry

__all__ = [
    "DATA_KINDS",
    "CheckResult",
    "assert_resumes_exactly",
    "build_component",
    "build_ctx",
    "check_plugin",
    "checkpoint_tensors",
    "data_kind",
    "fake_batch",
    "fake_data_info",
    "fake_info",
    "host_with",
    "make_context",
    "run_folder",
    "run_recipe",
]

#: The kinds of data :func:`fake_data_info` describes.
DATA_KINDS: tuple[str, ...] = ("image", "points", "text")

_FAKE_INFO: dict[str, dict[str, Any]] = {
    # what the core's image writers and the dcgan networks read: shape [C, H, W]
    "image": {"shape": [1, 8, 8], "channels": 1, "height": 8, "width": 8,
              "value_range": [-1.0, 1.0]},
    # what the core's point writers and MLPs read: the dimension and the plot range
    "points": {"dim": 2, "plot_range": [-3.0, 3.0]},
    # a tiny vocabulary: token i is vocab[i]; special tokens first
    "text": {"vocab": ["<pad>", "<unk>", "<s>", "</s>", "a", "b", "c", "d", "e", "f"],
             "pad": 0, "unk": 1, "start": 2, "end": 3, "max_len": 8, "seq_len": 9},
}


def fake_data_info(kind: str = "points", *, labelled: bool = False,
                   **changes: Any) -> dict[str, Any]:
    """A small ``info()`` of a dataset of ``kind`` (``image``: 1×8×8, ``points``: 2-D,
    ``text``: a 10-token vocabulary, sequences of 8), for building networks without data.
    ``labelled`` adds 3 classes (``num_classes``, ``class_names``); ``changes`` replace or add
    keys (``fake_data_info("image", shape=[3, 16, 16])``)."""
    if kind not in _FAKE_INFO:
        raise ValueError(f"unknown data kind {kind!r}; one of {', '.join(DATA_KINDS)}")
    info = copy.deepcopy(_FAKE_INFO[kind])
    if labelled:
        info.update(num_classes=3, class_names=["a", "b", "c"])
    if kind == "image" and "shape" in changes:
        c, h, w = (int(v) for v in changes["shape"])
        info.update(channels=c, height=h, width=w)
    info.update(changes)
    return info


def data_kind(info: Mapping[str, Any]) -> str:
    """The kind of data an ``info()`` describes, by the keys each kind must have: ``vocab``
    (text), ``shape`` (image), else points."""
    if "vocab" in info:
        return "text"
    return "image" if "shape" in info else "points"


def fake_batch(info: Mapping[str, Any], n: int = 8, *, seed: int = 0) -> Tensor | Batch:
    """``n`` random real-looking items for ``info``: images in [-1, 1], standard normal
    points, token ids (a :class:`~ganframe.components.Batch` with labels when the info has
    ``num_classes``)."""
    import torch

    from ganframe.components import Batch

    rng = torch.Generator().manual_seed(seed)
    kind = data_kind(info)
    if kind == "text":
        length = int(info.get("seq_len", int(info.get("max_len", 8)) + 1))
        x = torch.randint(len(info["vocab"]), (n, length), generator=rng)
    elif kind == "image":
        x = torch.rand(n, *(int(s) for s in info["shape"]), generator=rng) * 2 - 1
    else:
        x = torch.randn(n, int(info.get("dim", 2)), generator=rng)
    k = int(info.get("num_classes", 0) or 0)
    if k:
        return Batch(x, torch.randint(k, (n,), generator=rng))
    return x


def make_context(data_info: Mapping[str, Any] | None = None, *, kind: str = "points",
                 **fields: Any) -> BuildContext:
    """The ``ctx`` a factory gets: ``data_info`` (default :func:`fake_data_info` of
    ``kind``), on the CPU, seed 0; ``fields`` set the others (``recipe_dir``,
    ``data_root``, ``data_config``, ``build_data``)."""
    import torch

    from ganframe.components import BuildContext

    info = dict(data_info) if data_info is not None else fake_data_info(kind)
    fields.setdefault("device", torch.device("cpu"))
    return BuildContext(data_info=info, **fields)


def build_component(kind: str, name: str, *, options: Mapping[str, Any] | None = None,
                    data_info: Mapping[str, Any] | None = None, ctx: Any = None,
                    args: Sequence[Any] | None = None, registry: Registry | None = None) -> Any:
    """Build a registered component as a recipe would: its config model validates
    ``options`` (a pydantic ValidationError if they are wrong), then the factory is called.

    ``args`` are the factory's arguments after the config: by default a context from
    ``data_info`` (``ctx`` to give your own), nothing for a schedule; an optimiser needs
    ``args=[params]``. ``registry`` defaults to the process's (see :func:`host_with`)."""
    from ganframe.plugins import get_registry

    spec = (registry or get_registry()).get(kind, name)
    config = spec.config_model().model_validate(dict(options or {}))
    if args is None:
        args = [] if kind == "schedule" else [ctx if ctx is not None else
                                               make_context(data_info)]
    return spec.build(config, *args)


# -- plugins that are not installed ----------------------------------------------------------


def _plugin_name(module: Any) -> str:
    name = module if isinstance(module, str) else getattr(module, "__name__", "plugin")
    return name.split(".")[0].removeprefix("ganframe_") or name


@contextlib.contextmanager
def host_with(*modules: Any, autoload: bool = False, check: bool = True,
              **named: Any) -> Iterator[PluginHost]:
    """Load plugin modules (objects or import names) that are not installed, beside the
    core's own, and make that host the process's while the ``with`` block runs, so
    :func:`run_recipe`, ``ganframe.api`` and :func:`build_component` see them::

        with host_with("ganframe_rgan.plugin") as host:      # plugin name "rgan"
            assert host.registry.get("loss", "ragan").plugin == "rgan"

    A module is named after its top package without ``ganframe_`` (``ganframe_rgan.plugin``
    is ``rgan``); ``name=module`` chooses the name. ``autoload`` also loads the installed
    plugins. With ``check`` (the default) a plugin that fails to load raises an
    AssertionError carrying its traceback."""
    from ganframe.plugins import load_plugins, set_host

    extra = {**{_plugin_name(m): m for m in modules}, **named}
    host = load_plugins(autoload=autoload, extra=extra)
    if check:
        failed = [p for p in host.plugins if p.name in extra and not p.status.startswith("ok")]
        if failed:
            raise AssertionError("\n".join(f"plugin {p.name} {p.status}\n{p.traceback}"
                                           for p in failed))
    previous = set_host(host)
    try:
        yield host
    finally:
        set_host(previous)


# -- running recipes --------------------------------------------------------------------------


def run_recipe(recipe: str | Path | ResolvedRecipe, *, steps: int = 2, out: str | Path,
               overrides: Sequence[str] = (), device: str = "cpu", resume: bool = False,
               registry: Registry | None = None) -> TrainResult:
    """Run a recipe (a file, a registered name or a loaded recipe) in this process for
    ``steps`` generator steps in total (as ``--max-steps`` does: the run stops there and
    writes its checkpoint) into the run folder ``out``. ``overrides`` are ``--set`` items;
    ``resume`` continues the run in ``out``."""
    from ganframe import api

    if steps < 1:
        raise ValueError(f"steps must be at least 1, not {steps}")
    if isinstance(recipe, str | Path):
        recipe = api.load_recipe(recipe, list(overrides), registry=registry)
    elif overrides:
        raise ValueError("give overrides with a recipe file or name, not a loaded recipe")
    return api.train(recipe, out=out, resume=resume, device=device, max_steps=steps,
                     progress=False)  # tests stay quiet


def checkpoint_tensors(path: str | Path) -> dict[str, Tensor]:
    """Every tensor of a checkpoint file (weights, optimiser state, RNG states) by name."""
    from safetensors.torch import load_file

    return load_file(str(path))


def assert_resumes_exactly(recipe: str | Path, *, out: str | Path, steps: int = 4,
                           overrides: Sequence[str] = (),
                           registry: Registry | None = None) -> None:
    """Run ``steps`` steps straight, and ``steps // 2`` then a resume to ``steps``, both
    deterministic on the CPU, and assert the two final checkpoints hold the same tensors:
    what a plugin must get right for ``--resume`` (objective state, callbacks, data order).
    """
    import torch

    if steps < 2:
        raise ValueError(f"steps must be at least 2 to stop half way, not {steps}")
    out = Path(out)
    sets = ["deterministic=true", *overrides]
    straight = run_recipe(recipe, steps=steps, out=out / "straight", overrides=sets,
                          registry=registry)
    run_recipe(recipe, steps=steps // 2, out=out / "resumed", overrides=sets, registry=registry)
    resumed = run_recipe(recipe, steps=steps, out=out / "resumed", overrides=sets,
                         registry=registry, resume=True)
    assert straight.step == resumed.step == steps, (straight.step, resumed.step)
    assert straight.checkpoint is not None and resumed.checkpoint is not None
    a, b = checkpoint_tensors(straight.checkpoint), checkpoint_tensors(resumed.checkpoint)
    assert sorted(a) == sorted(b), sorted(set(a) ^ set(b))
    differ = [k for k in sorted(a) if a[k].shape != b[k].shape or not torch.equal(a[k], b[k])]
    assert not differ, (f"after {steps // 2} steps and a resume, {len(differ)} of {len(a)} "
                        f"checkpoint tensors differ from a straight run: {differ[:10]}")


# -- ganframe check-plugin ---------------------------------------------------------------------


@dataclass
class CheckResult:
    """What ``ganframe check-plugin`` found: ``ok`` when nothing failed; ``rows`` are its
    ``--json`` rows (``kind``, ``name``, ``status``: ok, failed or skipped, ``detail``)."""

    ok: bool
    exit_code: int
    rows: list[dict[str, Any]] = field(default_factory=list)
    output: str = ""  #: stdout and stderr, for an assertion message

    def failures(self) -> list[dict[str, Any]]:
        return [r for r in self.rows if r.get("status") == "failed"]


def check_plugin(name: str, *, timeout: float = 900,
                 env: Mapping[str, str] | None = None) -> CheckResult:
    """Run ``ganframe check-plugin NAME --json`` in a fresh process on the installed plugin
    ``name``; ``assert result.ok, result.output`` in a test."""
    run_env = {**os.environ, **(env or {})}
    # -P: the installed ganframe, never a folder named ganframe/ in the working directory
    command = [sys.executable, "-P", "-m", "ganframe", "check-plugin", name, "--json"]
    proc = subprocess.run(command, capture_output=True, text=True, timeout=timeout,
                          env=run_env)
    try:
        rows = json.loads(proc.stdout)["components"]
    except (ValueError, KeyError, TypeError):
        rows = []
    return CheckResult(proc.returncode == 0, proc.returncode, rows,
                       proc.stdout + proc.stderr)


# -- pytest fixtures ---------------------------------------------------------------------------


def _fixtures() -> tuple[Callable[..., Any], ...]:
    """The fixtures, defined only where pytest is installed (it is a test dependency)."""
    try:
        import pytest
    except ImportError:  # pragma: no cover - the helpers above work without it
        def missing(*_: Any, **__: Any) -> Any:
            raise UserError("ganframe.testing's fixtures need pytest (pip install pytest)")

        return missing, missing, missing

    @pytest.fixture
    def run_folder(tmp_path: Path) -> Path:
        """A run folder that does not exist yet, in the test's temporary folder."""
        return tmp_path / "run"

    @pytest.fixture
    def fake_info() -> Callable[..., dict[str, Any]]:
        """:func:`fake_data_info`, as a fixture: ``fake_info("image", labelled=True)``."""
        return fake_data_info

    @pytest.fixture
    def build_ctx() -> Callable[..., Any]:
        """:func:`make_context`, as a fixture: ``build_ctx(kind="text")``."""
        return make_context

    return run_folder, fake_info, build_ctx


_FIXTURES = ("run_folder", "fake_info", "build_ctx")
run_folder: Any  # the fixtures (made by __getattr__ below)
fake_info: Any
build_ctx: Any


def __getattr__(name: str) -> Any:
    """The fixtures, made on first use: ``ganframe check-plugin`` uses this module's helpers
    without importing pytest."""
    if name in _FIXTURES:
        made = dict(zip(_FIXTURES, _fixtures(), strict=True))
        globals().update(made)
        return made[name]
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
