"""``ganframe check-plugin NAME``: everything a plugin registers, imported, built and tried.

Components load lazily, so ``list-plugins`` and ``validate`` say ``ok`` about a plugin whose
factory string has a typo or whose generator returns the wrong shape; a user finds out in the
middle of a run. This check does what a run would do, on tiny data, and reports per
component, so a plugin's CI can run it:

1. Every dataset is built from its default options (with the network switched off, so
   nothing is downloaded); one that needs data that is not there is *skipped* with the
   reason. What a dataset's ``info()`` says is the first data description the other
   components are tried with; then a fake one per kind (:func:`ganframe.testing
   .fake_data_info`: image 1×8×8, points 2-D, text with a tiny vocabulary).
2. Every component's config model and factory are imported and the component is built;
   its contract is checked: a generator's ``generate(4)`` gives 4 finite samples, a critic
   scores a batch to (N,) or (N, 1), a loss's ``critic_loss``/``generator_loss`` are finite
   StepOutputs on the plugin's networks (or the core's MLPs on points), a metric returns
   JSON-able numbers, a logger or callback is a ``Callback``, an optimiser steps a Linear's
   parameters with ``lr`` in its groups, a schedule's ``factor(0, 10)`` is a finite float,
   a sample writer writes a file, a command imports.
3. Every shipped recipe runs 2 steps (each phase 1) with batch 8, no metrics, on the CPU, in
   a temporary folder, and its checkpoint draws samples; a recipe whose data is not here is
   skipped with the reason.

A component passes with the first data description it builds and works with. The check
fails when any component or recipe fails; skipped ones do not fail it.
"""

from __future__ import annotations

import contextlib
import json
import math
import socket
import tempfile
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from pydantic import BaseModel, ValidationError

from ganframe.errors import PluginError, UserError, one_line
from ganframe.plugins import PluginHost, get_host
from ganframe.registry import ALL_KINDS, ComponentSpec, Owner, RecipeSpec, Registry

__all__ = ["Report", "Row", "check_plugin"]

OK, FAILED, SKIPPED = "ok", "failed", "skipped"


@dataclass
class Row:
    kind: str
    name: str
    status: str  #: ok, failed or skipped
    detail: str = ""

    def as_json(self) -> dict[str, str]:
        return {"kind": self.kind, "name": self.name, "status": self.status,
                "detail": self.detail}


@dataclass
class Report:
    plugin: str
    version: str = ""
    dist: str = ""
    rows: list[Row] = field(default_factory=list)

    @property
    def ok(self) -> bool:
        return bool(self.rows) and all(r.status != FAILED for r in self.rows)

    def as_json(self) -> dict[str, Any]:
        return {"plugin": self.plugin, "version": self.version, "dist": self.dist,
                "ok": self.ok, "components": [r.as_json() for r in self.rows]}

    def text(self) -> str:
        """One line per component, for logs and assertion messages."""
        lines = [f"{self.plugin} {self.version}: {'ok' if self.ok else 'FAILED'}"]
        lines += [f"  {r.status:7} {r.kind} {r.name}: {r.detail}" for r in self.rows]
        return "\n".join(lines)


@dataclass
class Candidate:
    """A data description components are tried with: a built dataset's, or a fake one."""

    label: str  #: ``dataset 'moons'`` or ``fake points``
    info: dict[str, Any]
    dataset: Any = None
    spec: ComponentSpec | None = None
    config: Any = None


class _Skip(Exception):
    """The component cannot be tried here (its data is missing); not a failure."""


@contextlib.contextmanager
def offline() -> Iterator[None]:
    """No network while plugins' code runs: a dataset that would download fails fast (and is
    skipped as needing data) instead of fetching gigabytes during a check."""

    def refuse(*_: Any, **__: Any) -> Any:
        raise OSError("the network is switched off during 'ganframe check-plugin'")

    saved = socket.socket.connect, socket.socket.connect_ex, socket.create_connection
    socket.socket.connect = refuse  # type: ignore[method-assign]
    socket.socket.connect_ex = refuse  # type: ignore[method-assign]
    socket.create_connection = refuse  # type: ignore[assignment]
    try:
        yield
    finally:
        socket.socket.connect, socket.socket.connect_ex, socket.create_connection = saved


def check_plugin(name: str, *, host: PluginHost | None = None, recipes: bool = True) -> Report:
    """Check the loaded plugin ``name``; a name no plugin has is a UserError."""
    host = host or get_host()
    infos = {p.name: p for p in host.plugins}
    if name not in infos:
        known = ", ".join(sorted(p.name for p in host.plugins if not p.builtin)) or "(none)"
        raise UserError(f"no plugin named {name!r} is installed (installed plugins: {known}); "
                        "the name is the entry-point name 'ganframe list-plugins' shows.")
    info = infos[name]
    report = Report(name, info.version, info.dist)
    if not info.status.startswith("ok"):
        report.rows.append(Row("plugin", name, FAILED, info.status))
        return report
    with offline(), tempfile.TemporaryDirectory(prefix="ganframe-check-") as tmp:
        checker = _Checker(host.registry, name, Path(tmp))
        checker.components(report)
        checker.writers_and_commands(report)
        if recipes:
            for spec in [r for r in host.registry.recipes if r.plugin == name]:
                report.rows.append(checker.recipe(spec))
    if not report.rows:
        report.rows.append(Row("plugin", name, SKIPPED, "registers nothing to check"))
    return report


def _describe(exc: BaseException) -> str:
    """A failure as the report shows it: a UserError's or a broken contract's own message."""
    return str(exc) if isinstance(exc, UserError | AssertionError) else one_line(exc)


def _import(spec: ComponentSpec) -> None:
    """Import the config model and the factory first: their failures do not depend on the
    data a component is tried with."""
    spec.config_model()
    spec.owner.load(spec.factory, "factory", (spec.kind, spec.name),
                    f"{spec.kind} {spec.qualified_name}")


def _default_config(spec: ComponentSpec, shrink: dict[str, Any] | None = None) -> BaseModel:
    """The component's config with its defaults (and ``shrink`` where it has those keys); a
    required option makes the component untestable here (skipped)."""
    model = spec.config_model()
    options = {k: v for k, v in (shrink or {}).items() if k in model.model_fields}
    try:
        return model.model_validate(options)
    except ValidationError as exc:
        needed = sorted({str(e["loc"][0]) for e in exc.errors() if e["loc"]})
        raise _Skip(f"its options need values to build it: {', '.join(needed)}") from None


class _Checker:
    """The state of one check: the data descriptions found and the networks that built."""

    def __init__(self, registry: Registry, plugin: str, tmp: Path) -> None:
        from ganframe.testing import DATA_KINDS, fake_data_info

        self.registry, self.plugin, self.tmp = registry, plugin, tmp
        self.found: list[Candidate] = []  # from the plugin's datasets
        self.fakes = [Candidate(f"fake {k} data", fake_data_info(k)) for k in DATA_KINDS]
        self.generators: dict[str, Any] = {}  # candidate label -> a working generator
        self.critics: dict[str, Any] = {}

    @property
    def candidates(self) -> list[Candidate]:
        return [*self.found, *self.fakes]

    def specs(self, kind: str) -> list[ComponentSpec]:
        return [s for s in self.registry.components[kind] if s.plugin == self.plugin]

    # -- components -----------------------------------------------------------------------

    def components(self, report: Report) -> None:
        order = ["dataset", "generator", "critic", "loss", "metric",
                 *(k for k in ALL_KINDS if k not in ("dataset", "generator", "critic", "loss",
                                                      "metric"))]
        checks: dict[str, Callable[[ComponentSpec], str]] = {
            "dataset": self.dataset, "generator": self.generator, "critic": self.critic,
            "loss": self.loss, "metric": self.metric, "optimizer": self.optimizer,
            "schedule": self.schedule, "logger": self.callback, "callback": self.callback,
        }
        for kind in order:
            for spec in self.specs(kind):
                report.rows.append(self._row(spec, checks[kind]))

    def _row(self, spec: ComponentSpec, check: Callable[[ComponentSpec], str]) -> Row:
        try:
            _import(spec)
            return Row(spec.kind, spec.name, OK, check(spec))
        except _Skip as skip:
            return Row(spec.kind, spec.name, SKIPPED, str(skip))
        except Exception as exc:  # the check's verdict: the plugin's code failed
            return Row(spec.kind, spec.name, FAILED, _describe(exc))

    def _tried(self, spec: ComponentSpec, needs: Callable[[Candidate], bool],
               attempt: Callable[[Candidate], str]) -> str:
        """``attempt`` with each candidate ``needs`` accepts until one works; the first
        failure is reported when none does."""
        errors: list[str] = []
        for cand in self.candidates:
            if not needs(cand):
                continue
            try:
                return f"{attempt(cand)} ({cand.label})"
            except _Skip:
                raise
            except Exception as exc:
                errors.append(f"with {cand.label}: {_describe(exc)}")
        if not errors:
            raise _Skip(f"no generator of this plugin or the core fits a data description "
                        f"to try the {spec.kind} with")
        raise AssertionError(errors[0] + (f" (and {len(errors) - 1} more data descriptions "
                                          "failed)" if len(errors) > 1 else ""))

    def _ctx(self, cand: Candidate) -> Any:
        from ganframe.api import data_root
        from ganframe.testing import make_context

        build_data = None
        if cand.spec is not None:
            build_data = lambda config, s=cand.spec: s.build(  # noqa: E731
                config, make_context({}, data_root=data_root()))
        return make_context(cand.info, data_root=data_root(), data_config=cand.config,
                            build_data=build_data)

    def dataset(self, spec: ComponentSpec) -> str:
        import torch

        from ganframe.api import data_root
        from ganframe.components import as_batch
        from ganframe.testing import make_context

        config = _default_config(spec)
        try:
            data = spec.build(config, make_context({}, data_root=data_root()))
        except PluginError:
            raise
        except UserError as exc:
            raise _Skip(f"its data is not available here: {exc}") from None
        kind = getattr(data, "kind", None)
        _expect(isinstance(kind, str) and kind, "has no 'kind' (a string: image, points...)")
        n = len(data)
        _expect(n > 0, "is empty (len() is 0)")
        batch = as_batch(data.get(torch.arange(min(4, n))))
        _expect(len(batch) == min(4, n), f"get() of {min(4, n)} indices gave {len(batch)} items")
        info = dict(data.info())
        json.dumps(info)  # stored in checkpoints: must be JSON-able
        self.found.append(Candidate(f"dataset {spec.name!r}", info, data, spec, config))
        return f"{kind} data, {n} items, info() keys: {', '.join(sorted(info))}"

    def generator(self, spec: ComponentSpec) -> str:
        def attempt(cand: Candidate) -> str:
            gen = spec.build(_default_config(spec), self._ctx(cand))
            shape = _check_generator(gen)
            self.generators.setdefault(cand.label, gen)
            return f"generate(4) gives {shape}"

        return self._tried(spec, lambda c: True, attempt)

    def critic(self, spec: ComponentSpec) -> str:
        def attempt(cand: Candidate) -> str:
            critic = spec.build(_default_config(spec), self._ctx(cand))
            shape = _check_critic(critic, self._batch(cand))
            self.critics.setdefault(cand.label, critic)
            return f"scores a batch of 4 to {shape}"

        return self._tried(spec, lambda c: True, attempt)

    def _batch(self, cand: Candidate, n: int = 4) -> Any:
        import torch

        from ganframe.components import as_batch
        from ganframe.testing import fake_batch

        if cand.dataset is not None and len(cand.dataset) >= n:
            return as_batch(cand.dataset.get(torch.arange(n)))
        return as_batch(fake_batch(cand.info, n))

    def _networks(self, cand: Candidate) -> tuple[Any, Any]:
        """The plugin's generator and critic that work with ``cand``, else the core's MLPs
        (for points)."""
        gen, critic = self.generators.get(cand.label), self.critics.get(cand.label)
        if (gen is None or critic is None) and "dim" in cand.info and "vocab" not in cand.info:
            for kind in ("generator", "critic"):
                if (gen if kind == "generator" else critic) is not None:
                    continue
                try:
                    core = self.registry.get(kind, "mlp")
                    built = core.build(core.config_model().model_validate(
                        {"hidden": 16, "layers": 1}), self._ctx(cand))
                except (UserError, ValidationError):
                    continue
                gen, critic = (built, critic) if kind == "generator" else (gen, built)
        return gen, critic

    def loss(self, spec: ComponentSpec) -> str:
        def attempt(cand: Candidate) -> str:
            gen, critic = self._networks(cand)
            objective = spec.build(_default_config(spec), self._ctx(cand))
            return _check_objective(objective, gen, critic, self._batch(cand, 8))

        return self._tried(spec, lambda c: self._networks(c)[0] is not None, attempt)

    def metric(self, spec: ComponentSpec) -> str:
        def attempt(cand: Candidate) -> str:
            import torch

            from ganframe.components import EvalContext

            gen, _ = self._networks(cand)
            config = _default_config(spec, {"n_samples": 64, "batch_size": 16})
            try:
                metric = spec.build(config, self._ctx(cand))
                with torch.no_grad():
                    values = metric.evaluate(gen.eval(), cand.dataset,
                                             EvalContext(torch.device("cpu"), 0, cand.info, 64))
            except PluginError:
                raise
            except UserError as exc:
                raise _Skip(f"cannot be evaluated here: {exc}") from None
            return _check_values(values)

        return self._tried(spec, lambda c: self._networks(c)[0] is not None, attempt)

    def optimizer(self, spec: ComponentSpec) -> str:
        import torch

        config = _default_config(spec)
        lr = getattr(config, "lr", None)
        _expect(isinstance(lr, int | float) and lr > 0, "its config has no positive 'lr'")
        layer = torch.nn.Linear(2, 2)
        opt = spec.build(config, [p for p in layer.parameters()])
        _expect(isinstance(opt, torch.optim.Optimizer),
                f"built a {type(opt).__name__}, not a torch.optim.Optimizer")
        _expect(all("lr" in g for g in opt.param_groups), "its param groups have no 'lr'")
        before = layer.weight.detach().clone()
        layer(torch.ones(4, 2)).pow(2).sum().backward()
        opt.step()
        _expect(not torch.equal(before, layer.weight.detach()), "a step changed no parameter")
        return f"steps a Linear's parameters (lr {lr})"

    def schedule(self, spec: ComponentSpec) -> str:
        schedule = spec.build(_default_config(spec))
        values = [schedule.factor(0, 10), schedule.factor(9, 10)]
        _expect(all(isinstance(v, int | float) and math.isfinite(v) for v in values),
                f"factor(0, 10) and factor(9, 10) gave {values!r}, not finite numbers")
        return f"factor(0, 10) = {values[0]:.4g}, factor(9, 10) = {values[1]:.4g}"

    def callback(self, spec: ComponentSpec) -> str:
        from ganframe.loop.events import Callback

        built = spec.build(_default_config(spec), self._ctx(self.candidates[0]))
        _expect(isinstance(built, Callback),
                f"built a {type(built).__name__}, not a ganframe.loop.events.Callback")
        return f"a Callback ({type(built).__name__})"

    # -- writers, commands, recipes -------------------------------------------------------

    def writers_and_commands(self, report: Report) -> None:
        for w in [w for w in self.registry.writers if w.plugin == self.plugin]:
            name = f"{w.data_kind} {w.suffix}"
            report.rows.append(self._guarded("sample writer", name, lambda w=w: self.writer(w)))
        for c in [c for c in self.registry.commands if c.plugin == self.plugin]:
            report.rows.append(self._guarded("command", c.name,
                                             lambda c=c: (c.resolve(), "imports")[1]))

    def _guarded(self, kind: str, name: str, check: Callable[[], str]) -> Row:
        try:
            return Row(kind, name, OK, check())
        except _Skip as skip:
            return Row(kind, name, SKIPPED, str(skip))
        except Exception as exc:
            return Row(kind, name, FAILED, _describe(exc))

    def writer(self, spec: Any) -> str:
        """Write 4 samples: drawn by a generator of this plugin for that kind of data, else
        a fake batch of a kind ganframe knows."""
        import torch

        from ganframe.testing import DATA_KINDS, data_kind

        (spec.owner or Owner(spec.plugin)).load(spec.writer, "writer", None, "writer")
        for cand in self.candidates:
            kind = cand.dataset.kind if cand.dataset is not None else data_kind(cand.info)
            gen = self.generators.get(cand.label)
            if kind != spec.data_kind or (gen is None and cand.dataset is None
                                          and kind not in DATA_KINDS):
                continue
            if gen is not None:
                with torch.no_grad():
                    samples = gen.generate(4, device="cpu", rng=torch.Generator().manual_seed(0))
                what = "drawn by the generator"
            else:
                samples = self._batch(cand).data
                what = "of the data" if cand.dataset is not None else "fake"
            path = self.tmp / f"samples{spec.suffix}"
            spec.write(samples.cpu(), path, cand.info)
            _expect(path.is_file() and path.stat().st_size > 0, f"wrote no {path.name}")
            return f"wrote 4 samples {what} ({cand.label})"
        raise _Skip(f"imports; nothing to draw {spec.data_kind} samples with")

    def recipe(self, spec: RecipeSpec) -> Row:
        return self._guarded("recipe", spec.name, lambda: self._run_recipe(spec))

    def _run_recipe(self, spec: RecipeSpec) -> str:
        from ganframe import api
        from ganframe.recipe import parse_toml, validate
        from ganframe.testing import make_context

        source = f"{spec.name} (from {spec.plugin})"
        doc = tiny_recipe(parse_toml(spec.read_text(), source))
        resolved = validate(doc, source, self.registry)
        data_spec, data_config = resolved.component("data")
        try:
            data_spec.build(data_config.model_copy(), make_context({},
                                                                   data_root=api.data_root()))
        except PluginError:
            raise
        except UserError as exc:
            raise _Skip(f"its data is not available here: {exc}") from None
        result = api.train(resolved, out=self.tmp / f"recipe-{spec.name}", device="cpu",
                           max_steps=2, progress=False)  # the report is the output (--json)
        _expect(result.checkpoint is not None, "the run wrote no checkpoint")
        samples = api.sample(result.checkpoint, 4, seed=0)
        _expect(len(samples) == 4, f"its checkpoint drew {len(samples)} samples, not 4")
        return f"ran {result.step} step(s) on the CPU; its checkpoint draws samples"


def tiny_recipe(doc: dict[str, Any]) -> dict[str, Any]:
    """A recipe document cut down to a smoke run: 2 steps (1 per phase), batch 8, 4 samples,
    no metrics, CPU and fp32, no compile."""
    doc = json.loads(json.dumps(doc))
    doc["device"] = "cpu"
    train = doc.setdefault("train", {})
    train.update(batch_size=8, sample_count=4, sample_every=0, log_every=1,
                 checkpoint_every=0, precision="fp32", compile=False)
    if doc.get("phases"):
        for phase in doc["phases"]:
            phase.pop("epochs", None)
            phase["steps"] = 1
    else:
        train.pop("epochs", None)
        train["steps"] = 2
    doc["metrics"] = []
    return doc


# -- contracts --------------------------------------------------------------------------------


def _expect(condition: Any, problem: str) -> None:
    if not condition:
        raise AssertionError(problem)


def _check_generator(gen: Any) -> tuple[int, ...]:
    import torch

    from ganframe.components import generate

    _expect(isinstance(gen, torch.nn.Module), f"built a {type(gen).__name__}, not an nn.Module")
    _expect(callable(getattr(gen, "generate", None)), "has no generate() method")
    with torch.no_grad():
        x = generate(gen.eval(), 4, device="cpu", rng=torch.Generator().manual_seed(0))
    _expect(isinstance(x, torch.Tensor), f"generate(4) returned a {type(x).__name__}")
    _expect(x.shape[0] == 4, f"generate(4) returned {x.shape[0]} samples")
    _expect(not x.is_floating_point() or torch.isfinite(x).all(),
            "generate(4) returned non-finite values")
    return tuple(x.shape)


def _check_critic(critic: Any, batch: Any) -> tuple[int, ...]:
    import torch

    _expect(isinstance(critic, torch.nn.Module),
            f"built a {type(critic).__name__}, not an nn.Module")
    labels = batch.labels
    if getattr(critic, "conditional", False):
        k = max(1, int(getattr(critic, "num_classes", 0) or 1))
        labels = labels if labels is not None else torch.randint(k, (len(batch),))
        with torch.no_grad():
            score = critic.eval()(batch.data, labels)
    else:
        with torch.no_grad():
            score = critic.eval()(batch.data)
    n = len(batch)
    _expect(isinstance(score, torch.Tensor) and tuple(score.shape) in ((n,), (n, 1)),
            f"scored a batch of {n} to {getattr(score, 'shape', type(score).__name__)}, "
            f"not ({n},) or ({n}, 1)")
    _expect(torch.isfinite(score).all(), "its scores are not finite")
    return tuple(score.shape)


def _check_objective(objective: Any, gen: Any, critic: Any, batch: Any) -> str:
    import torch

    from ganframe.components import StepContext, StepOutput

    done = []
    for which in ("critic", "generator"):
        if not getattr(objective, f"trains_{which}", False):
            continue
        if which == "critic" and critic is None:
            raise _Skip("trains a critic, and no critic of this plugin or the core fits")
        ctx = StepContext(gen.train(), critic.train() if critic is not None else None,
                          torch.device("cpu"), phase_steps=10, labels=batch.labels)
        out = getattr(objective, f"{which}_loss")(ctx, batch.data)
        _expect(isinstance(out, StepOutput), f"{which}_loss returned a {type(out).__name__}, "
                "not a StepOutput")
        _expect(out.loss.numel() == 1 and torch.isfinite(out.loss).all(),
                f"{which}_loss's loss is not one finite number: {out.loss}")
        for key, value in dict(out.logs).items():
            number = float(value.detach()) if isinstance(value, torch.Tensor) else float(value)
            _expect(math.isfinite(number), f"{which}_loss logged {key} = {number}")
        done.append(f"{which}_loss {float(out.loss.detach()):.4g}")
    _expect(done, "trains neither the critic nor the generator")
    return ", ".join(done)


def _check_values(values: Any) -> str:
    _expect(isinstance(values, dict) and values, f"returned {values!r}, not a dict of values")
    json.dumps(values)

    def numbers(v: Any) -> bool:
        if isinstance(v, bool):
            return False
        if isinstance(v, int | float):
            return math.isfinite(v)
        return isinstance(v, list) and all(numbers(x) for x in v)

    bad = [k for k, v in values.items() if not numbers(v)]
    _expect(not bad, f"values that are not finite numbers: {', '.join(bad)}")
    return ", ".join(f"{k} = {v:.4g}" if isinstance(v, float) else f"{k} = {v}"
                     for k, v in list(values.items())[:4])


def render(report: Report) -> Any:
    """The report as a rich table, one row per component."""
    from rich.table import Table
    from rich.text import Text

    verdict = "ok" if report.ok else "FAILED"
    table = Table(title=f"ganframe check-plugin {report.plugin} ({report.dist} "
                  f"{report.version}): {verdict}")
    for column in ("kind", "name", "status", "detail"):
        table.add_column(column)
    styles = {OK: "green", FAILED: "red", SKIPPED: "yellow"}
    for r in report.rows:
        table.add_row(Text(r.kind), Text(r.name), Text(r.status, style=styles[r.status]),
                      Text(r.detail))
    return table
