"""Property-based fuzzing of checkpoint metadata: whatever a checkpoint's JSON document says,
``api.load_checkpoint``, ``api.sample`` (and writing the samples), ``api.evaluate`` and a resume
(``api.train(..., resume=True)``, which trains one more step) either succeed or raise
:class:`~ganframe.errors.UserError`, never another exception, and never make the process grow
by more than a bound.

The checkpoints are real: a tiny gaussian-ring run writes them (one at a step with pending
log sums, so every kind of metadata is present). Each example rewrites the ``"ganframe"``
document of a copy (tensor bytes untouched, see ``ckpt_meta.py``): one to three fields, taken
from every field of the real document, get random types and sizes (huge and negative numbers,
inf and nan, long strings and lists, nested tables, null), are deleted, or get random
siblings; sometimes the whole document is replaced. Besides the random examples, a sweep
gives every field of the document each of a few hostile values.

It runs in a fresh subprocess so that its peak memory (``ru_maxrss``) is its own: the growth
over the process's size after one clean load, sample and resume must stay under
:data:`MAX_GROWTH_MB`.
"""

from __future__ import annotations

import json
import os
import resource
import shutil
import subprocess
import sys
import warnings
from collections import Counter
from pathlib import Path
from typing import Any

HERE = Path(__file__).resolve().parent
MAX_GROWTH_MB = 300
EXAMPLES = 100  # random examples, each loaded and sampled, one in four also resumed
SETS = [
    'device="cpu"', "deterministic=true", "metrics=[]", "data.size=128", "generator.hidden=8",
    "generator.layers=1", "critic.hidden=8", "critic.layers=1", "train.batch_size=32",
    "train.steps=4", "train.log_every=4", "train.checkpoint_every=2", "train.keep_last=0",
    "train.sample_every=0", "train.sample_count=8", "train.ema=0.5", "loss.r1_gamma=0",
]
HOSTILE = [None, True, -1, 0, 2**64, 10**400 // 10**300, -(2**70), 1e308, float("inf"),
           float("nan"), "", "x" * 5000, [], [None], {}, {"x": 1}]


def test_fuzzed_checkpoint_metadata_is_success_or_user_error(tmp_path: Path) -> None:
    env = {**os.environ, "OMP_NUM_THREADS": "1", "PYTHONHASHSEED": "0"}
    code = (f"import sys; sys.path.insert(0, {str(HERE)!r}); import test_fuzz_checkpoints as t; "
            f"t.main({str(tmp_path)!r}, {EXAMPLES})")
    proc = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                          env=env, timeout=600)
    assert proc.returncode == 0, proc.stderr[-4000:]
    report = json.loads(proc.stdout.strip().splitlines()[-1])
    print(f"\ncheckpoint metadata fuzzing: {report['summary']}")
    assert not report["failures"], "\n\n".join(report["failures"][:5])
    assert report["examples"] >= EXAMPLES and report["sweep"] > 100
    # every target saw both outcomes: the fuzzing reaches past the first check
    for target in ("load", "sample", "eval", "resume"):
        assert report["outcomes"][f"{target}:ok"] > 0, report["outcomes"]
        assert report["outcomes"][f"{target}:UserError"] > 0, report["outcomes"]
    assert report["growth_mb"] < MAX_GROWTH_MB, report


# -- the fuzzing itself, in the subprocess ------------------------------------------------------


def main(workdir: str, examples: int) -> None:
    from hypothesis import HealthCheck, given, settings
    from hypothesis import strategies as st

    warnings.simplefilter("ignore")
    fuzz = Fuzz(Path(workdir))
    fuzz.warm_up()
    base = fuzz.rss_mb()
    failures: list[str] = []
    sweep = fuzz.sweep()
    failures += fuzz.failures

    @settings(max_examples=examples, derandomize=True, deadline=None, database=None,
              suppress_health_check=list(HealthCheck))
    @given(st.data())
    def random_examples(data: Any) -> None:
        doc = json.loads(json.dumps(fuzz.meta))
        what, doc = mutate(data, doc, fuzz.paths)
        fuzz.check(doc, what, resume=data.draw(st.integers(0, 3)) == 0)

    try:
        random_examples()
    except Exception as exc:  # hypothesis re-raises the first failure it kept
        failures.append(f"hypothesis: {type(exc).__name__}: {exc}")
    failures += [f for f in fuzz.failures if f not in failures]
    growth = fuzz.rss_mb() - base
    outcomes = dict(fuzz.outcomes)
    summary = (f"{fuzz.examples} random examples and {sweep} sweep cases; outcomes "
               + ", ".join(f"{k} {v}" for k, v in sorted(outcomes.items()))
               + f"; fields touched {len(fuzz.fields)}; peak RSS growth {growth:.0f} MB")
    print(json.dumps({"summary": summary, "failures": failures, "examples": fuzz.examples,
                      "sweep": sweep, "outcomes": outcomes, "growth_mb": growth}))


def json_values(st: Any) -> Any:
    """Random JSON of random types and sizes."""
    sizes = st.sampled_from([0, 1, 7, 1000, 100_000])
    scalars = st.one_of(
        st.none(), st.booleans(),
        st.integers(min_value=-(2**70), max_value=2**70),
        st.sampled_from([0, -1, 1, 2, 624, 625, 5056, 2**31, 2**32, 2**53, 2**63, 2**64]),
        st.floats(allow_nan=True, allow_infinity=True),
        st.text(max_size=20),
        st.sampled_from(["crc32", "MT19937", "generator", "ema", "builtin:mlp", "points"]),
    )
    big = st.one_of(
        st.builds(lambda n: "x" * n, st.sampled_from([10_000, 1_000_000])),
        st.builds(lambda n, v: [v] * n, sizes, scalars),
        st.builds(lambda n: {f"k{i}": i for i in range(n)}, sizes),
    )
    nested = st.recursive(
        scalars,
        lambda inner: st.one_of(st.lists(inner, max_size=5),
                                st.dictionaries(st.text(max_size=8), inner, max_size=5)),
        max_leaves=15,
    )
    return st.one_of(scalars, nested, big)


def mutate(data: Any, doc: Any, paths: list[tuple[Any, ...]]) -> tuple[str, Any]:
    """Change one to three fields of ``doc`` (or replace it); returns a label and the doc."""
    from hypothesis import strategies as st

    if data.draw(st.integers(0, 19)) == 0:
        return "(whole document)", data.draw(json_values(st))
    labels = []
    for _ in range(data.draw(st.integers(1, 3))):
        path = data.draw(st.sampled_from(paths))
        parent = _get(doc, path[:-1])
        if not isinstance(parent, dict | list):
            continue
        key = path[-1]
        if isinstance(parent, list) and not (isinstance(key, int) and key < len(parent)):
            continue
        if isinstance(parent, dict) and key not in parent:
            continue
        how = data.draw(st.sampled_from(["replace", "replace", "replace", "delete", "add"]))
        if how == "delete":
            del parent[key]
        elif how == "add" and isinstance(parent, dict):
            parent[data.draw(st.text(min_size=1, max_size=10))] = data.draw(json_values(st))
        else:
            parent[key] = data.draw(json_values(st))
        labels.append(f"{how} {'.'.join(map(str, path))}")
    return "; ".join(labels) or "(nothing)", doc


def all_paths(doc: Any, prefix: tuple[Any, ...] = (), depth: int = 0) -> list[tuple[Any, ...]]:
    """Every field of the document (the first two items of each list stand for the rest)."""
    out: list[tuple[Any, ...]] = []
    if depth > 8:
        return out
    items = doc.items() if isinstance(doc, dict) else (
        list(enumerate(doc))[:2] if isinstance(doc, list) else [])
    for key, value in items:
        out.append((*prefix, key))
        out += all_paths(value, (*prefix, key), depth + 1)
    return out


def _get(doc: Any, path: tuple[Any, ...]) -> Any:
    for key in path:
        try:
            doc = doc[key]
        except (KeyError, IndexError, TypeError):
            return None
    return doc


class Fuzz:
    """A real run to take checkpoints from, and the three targets."""

    def __init__(self, root: Path) -> None:
        from ganframe import api

        self.root = root
        self.api = api
        self.template = root / "template"
        self.recipe = api.load_recipe("gaussian-ring", SETS)
        api.train(self.recipe, out=self.template)
        ckpts = self.template / "checkpoints"
        self.source = ckpts / "step-00000002.safetensors"  # pending log sums in it
        for p in ckpts.iterdir():
            if p.name != self.source.name:
                p.unlink()
        self.source.rename(ckpts / "last.safetensors")
        self.source = ckpts / "last.safetensors"
        from ckpt_meta import read_meta

        self.meta = read_meta(self.source)
        assert "ganframe:log_scalars" in self.meta["callbacks"]
        self.paths = all_paths(self.meta)
        # one more step than the checkpoint's: the resumed run really trains
        self.longer = api.load_recipe(
            "gaussian-ring", ["train.steps=3" if s == "train.steps=4" else s for s in SETS])
        self.outcomes: Counter[str] = Counter()
        self.fields: set[str] = set()
        self.failures: list[str] = []
        self.examples = 0
        self.n = 0

    @staticmethod
    def rss_mb() -> float:
        return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024

    def warm_up(self) -> None:
        """One clean pass (imports, first allocations) before the baseline is taken."""
        self.check(self.meta, "(unchanged)", resume=True, count=False)
        assert not self.failures, self.failures
        self.outcomes.clear()

    def sweep(self) -> int:
        """Every field of the document gets a hostile value (in turn from :data:`HOSTILE`),
        loaded and sampled; each top-level field is also resumed from."""
        cases = 0
        for i, path in enumerate(self.paths):
            value = HOSTILE[i % len(HOSTILE)]
            doc = json.loads(json.dumps(self.meta))
            _get(doc, path[:-1])[path[-1]] = value
            self.check(doc, f"sweep {'.'.join(map(str, path))} = {value!r:.40}",
                       resume=len(path) == 1, count=False)
            cases += 1
        return cases

    def sample_and_write(self, path: Path, out: Path) -> None:
        ckpt = self.api.load_checkpoint(path)
        self.api.write_samples(self.api.sample(ckpt, 4), out, ckpt)

    def check(self, doc: Any, what: str, *, resume: bool, count: bool = True) -> None:
        from ckpt_meta import rewrite_meta

        from ganframe.errors import UserError

        self.n += 1
        self.examples += count
        self.fields.update(p.split(" ", 1)[-1] for p in what.split("; "))
        folder = self.root / f"ex-{self.n}"
        shutil.copytree(self.template, folder)
        path = folder / "checkpoints" / "last.safetensors"
        try:
            rewrite_meta(self.source, path, doc)
        except (ValueError, TypeError, OverflowError):  # not even JSON: a string document
            rewrite_meta(self.source, path, str(doc))
        targets = [("load", lambda: self.api.load_checkpoint(path)),
                   ("sample", lambda: self.sample_and_write(path, folder / "s.png")),
                   ("eval", lambda: self.api.evaluate(path, ["ring-modes"]))]
        if resume:
            targets.append(("resume", lambda: self.api.train(self.longer, out=folder,
                                                             resume=True)))
        for name, call in targets:
            try:
                call()
                self.outcomes[f"{name}:ok"] += 1
            except UserError:
                self.outcomes[f"{name}:UserError"] += 1
            except Exception as exc:
                import traceback

                self.failures.append(f"{name} with {what}: {type(exc).__name__}: {exc}\n"
                                     + "".join(traceback.format_exc(limit=-4)))
        shutil.rmtree(folder, ignore_errors=True)
