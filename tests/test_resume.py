"""Resume: the run record, the recipe-change policy, and checkpoints of the first format.

On resume every recipe change either takes effect from the resumed step (shown, recorded in
the checkpoints' ``resumes`` history) or is refused before anything is written; a checkpoint
never says something the run did not do.
"""

from __future__ import annotations

import ast
import itertools
import json
import re
import shutil
import subprocess
import sys
import tomllib
from pathlib import Path
from typing import Any

import pytest
import torch
from safetensors.torch import load_file, save_file

from ganframe import api, tomlwrite
from ganframe.checkpoint import read_checkpoint
from ganframe.errors import UserError
from ganframe.loop import resume
from ganframe.loop.resume import UNSET, Change, recipe_changes
from ganframe.run_record import CHECKPOINT_KEYS, RunRecord

ROOT = Path(__file__).resolve().parents[1]
#: Written by ganframe 0.1.0 (checkpoint format 1) before the run record existed; see
#: tests/data/README.md for how it was made.
OLD_CKPT = Path(__file__).parent / "data" / "ckpt-format1-gaussian-ring.safetensors"

TINY = [
    "device=cpu", "deterministic=true", "metrics=[]", "data.size=512",
    "generator.hidden=8", "generator.layers=1", "critic.hidden=8", "critic.layers=1",
    "train.steps=12", "train.batch_size=64", "train.log_every=2", "train.sample_every=0",
    "train.sample_count=8", "train.checkpoint_every=4", "train.keep_last=0",
]


def ring(*changes: str):
    return api.load_recipe("gaussian-ring", [*TINY, *changes])


def meta_of(path: Path) -> dict[str, Any]:
    return read_checkpoint(path).meta


def snapshot(folder: Path) -> dict[str, tuple[bytes, int] | None]:
    """Every path under ``folder``: files with bytes and mtime, folders as None."""
    return {
        str(p.relative_to(folder)): (p.read_bytes(), p.stat().st_mtime_ns) if p.is_file() else None
        for p in sorted(folder.rglob("*"))
    }


def messages_during(**kwargs: Any) -> tuple[Any, list[str]]:
    from ganframe.loop.callbacks import Progress

    seen: list[str] = []
    return api.train(progress=Progress(on_message=seen.append), **kwargs), seen


def lr_of(meta: dict[str, Any], net: str) -> list[float]:
    return [g["hyper"]["lr"] for g in meta["optimizers"][net]["param_groups"]]


# -- the bug of issue 13, both ways ------------------------------------------------------------


def test_a_learning_rate_changed_on_resume_is_used_recorded_and_shown(tmp_path: Path) -> None:
    """``--set optim.generator.lr=0.5`` on resume: the optimiser runs at 0.5 from the resumed
    step (it used to keep the checkpoint's 0.001 while recipe.toml said 0.5)."""
    out, same = tmp_path / "run", tmp_path / "same"
    for folder in (out, same):
        api.train(ring(), out=folder, max_steps=4)
    result, seen = messages_during(recipe=ring("optim.generator.lr=0.5"), out=out, resume=True)
    unchanged = api.train(ring(), out=same, resume=True)

    step8, last = meta_of(out / "checkpoints/step-00000008.safetensors"), meta_of(result.checkpoint)
    assert lr_of(step8, "generator") == [0.5] and lr_of(last, "generator") == [0.5]
    assert lr_of(last, "critic") == [0.001]
    assert tomllib.loads((out / "recipe.toml").read_text())["optim"]["generator"]["lr"] == 0.5
    assert "recipe changes take effect from step 4: optim.generator.lr 0.001 -> 0.5" in seen
    history = [{"step": 4, "changes": [{"key": "optim.generator.lr", "old": 0.001, "new": 0.5}]}]
    assert step8["resumes"] == history and last["resumes"] == history
    assert "resumes" not in meta_of(same / "checkpoints/last.safetensors")
    # ...and it was trained with: the generator moved elsewhere than at the old rate
    a, b = load_file(str(result.checkpoint)), load_file(str(unchanged.checkpoint))
    assert not torch.equal(a["generator.net.0.weight"], b["generator.net.0.weight"])


def test_a_batch_size_changed_on_resume_is_refused_and_the_run_is_left_as_it_was(
    tmp_path: Path,
) -> None:
    out = tmp_path / "run"
    api.train(ring(), out=out, max_steps=4)
    before = snapshot(out)
    with pytest.raises(UserError) as caught:
        api.train(ring("train.batch_size=32", "optim.generator.lr=0.5"), out=out, resume=True)
    text = str(caught.value)
    assert str(out / "checkpoints" / "last.safetensors") in text
    assert "train.batch_size 64 -> 32" in text and "recipe.toml" in text and "--out" in text
    assert "optim.generator.lr" not in text  # only what is refused
    assert snapshot(out) == before
    assert tomllib.loads((out / "recipe.toml").read_text())["train"]["batch_size"] == 64


def test_a_refused_phase_length_leaves_the_run_as_it_was(tmp_path: Path) -> None:
    """Phase lengths are checked before recipe.toml and metrics.jsonl are rewritten."""
    out = tmp_path / "run"
    api.train(ring(), out=out, max_steps=8)
    before = snapshot(out)
    with pytest.raises(UserError, match="the run stopped at step 8, in phase 'train'"):
        api.train(ring("train.steps=6"), out=out, resume=True)
    assert snapshot(out) == before


def test_the_history_of_changes_is_kept_by_every_later_checkpoint(tmp_path: Path) -> None:
    out = tmp_path / "run"
    api.train(ring(), out=out, max_steps=4)
    api.train(ring("train.log_every=4"), out=out, resume=True, max_steps=6)
    api.train(ring("train.log_every=4"), out=out, resume=True, max_steps=8)  # no change
    result = api.train(ring("train.log_every=4", "train.steps=16"), out=out, resume=True)
    assert result.step == 16
    assert meta_of(result.checkpoint)["resumes"] == [
        {"step": 4, "changes": [{"key": "train.log_every", "old": 2, "new": 4}]},
        {"step": 8, "changes": [{"key": "train.steps", "old": 12, "new": 16}]},
    ]
    record = RunRecord.from_meta(meta_of(result.checkpoint), result.checkpoint)
    assert [r.step for r in record.resumes] == [4, 8]


def test_a_refused_change_is_refused_by_the_cli_with_exit_status_2(tmp_path: Path) -> None:
    out = tmp_path / "run"
    api.train(ring(), out=out, max_steps=4)
    args = [sys.executable, "-m", "ganframe", "run", "gaussian-ring", "--out", str(out),
            "--resume", "--quiet"]
    for item in [*TINY, "seed=5"]:
        args += ["--set", item]
    proc = subprocess.run(args, capture_output=True, text=True, timeout=300)
    assert proc.returncode == 2, proc.stderr
    assert "seed 0 -> 5" in proc.stderr and "Traceback" not in proc.stderr


# -- the policy, key by key --------------------------------------------------------------------


def _put(doc: dict[str, Any], key: str, value: Any) -> None:
    """Set ``key`` (dotted, digits index lists padded with empty tables) unless UNSET."""
    parts = key.split(".")
    target: Any = doc
    for part, nxt in itertools.pairwise(parts):
        empty: Any = [] if nxt.isdigit() else {}
        if isinstance(target, list):
            while len(target) <= int(part):
                target.append({})
            target = target[int(part)]
        else:
            target = target.setdefault(part, empty)
    last = parts[-1]
    if isinstance(target, list):
        while len(target) < int(last):
            target.append({})
        if value is not UNSET:
            target.append(value)
    elif value is not UNSET:
        target[last] = value


def one_change(key: str, old: Any, new: Any, phase: int | None = 0) -> Change:
    a: dict[str, Any] = {}
    b: dict[str, Any] = {}
    _put(a, key, old)
    _put(b, key, new)
    found = recipe_changes(a, b, phase=phase)
    assert [c.key for c in found] == [key], found
    return found[0]


APPLIES, REFUSED = True, False
POLICY_ROWS = [
    # top level
    ("name", "a", "b", APPLIES),
    ("description", "", "longer", APPLIES),
    ("device", "cuda", "cpu", APPLIES),
    ("threads", 0, 2, APPLIES),
    ("deterministic", False, True, APPLIES),
    ("ganframe.requires", [], ["ganframe-dcgan>=0.1"], APPLIES),
    ("seed", 0, 1, REFUSED),
    # data and networks (check_same_run reports these first, with current defaults)
    ("data.size", 512, 256, REFUSED),
    ("data.type", "gaussian-ring", "mnist", REFUSED),
    ("generator.hidden", 8, 16, REFUSED),
    ("critic.layers", 1, 2, REFUSED),
    ("critic", UNSET, {"type": "mlp"}, REFUSED),
    # optimisers
    ("optim.generator.lr", 0.001, 0.5, APPLIES),
    ("optim.critic.lr", 0.001, 0.0005, APPLIES),
    ("optim.generator.betas", [0.5, 0.999], [0.0, 0.99], APPLIES),
    ("optim.critic.weight_decay", 0.0, 0.01, APPLIES),
    ("optim.critic.momentum", 0.0, 0.9, APPLIES),
    ("optim.generator.schedule.type", "constant", "cosine", APPLIES),
    ("optim.generator.schedule", UNSET, {"type": "cosine"}, APPLIES),
    ("optim.generator.type", "adam", "sgd", REFUSED),
    ("optim.critic.type", "adam", "adamw", REFUSED),
    # train
    ("train.batch_size", 64, 32, REFUSED),
    ("train.sync_batchnorm", False, True, REFUSED),
    ("train.ema", 0.0, 0.999, REFUSED),
    ("train.ema", 0.999, 0.0, REFUSED),
    ("train.ema", 0.99, 0.999, APPLIES),
    ("train.precision", "fp32", "bf16", APPLIES),
    ("train.precision", "bf16", "fp32", APPLIES),
    ("train.precision", "fp32", "fp16", REFUSED),
    ("train.precision", "fp16", "bf16", REFUSED),
    ("train.steps", 100, 200, APPLIES),
    ("train.epochs", 1.0, 2.5, APPLIES),
    ("train.n_critic", 1, 5, APPLIES),
    ("train.grad_clip", 0.0, 1.0, APPLIES),
    ("train.ema_start", 0, 100, APPLIES),
    ("train.compile", False, True, APPLIES),
    ("train.channels_last", False, True, APPLIES),
    ("train.log_every", 50, 10, APPLIES),
    ("train.sample_every", 0, 100, APPLIES),
    ("train.sample_count", 64, 16, APPLIES),
    ("train.checkpoint_every", 0, 100, APPLIES),
    ("train.keep_last", 3, 0, APPLIES),
    ("train.on_nonfinite", "stop", "rollback", APPLIES),
    ("train.rollback_lr_factor", 0.5, 0.25, APPLIES),
    ("train.max_rollbacks", 3, 5, APPLIES),
    # objectives and phases
    ("loss.r1_gamma", 0.5, 1.0, APPLIES),
    ("loss.type", "hinge", "wgan-gp", REFUSED),
    ("loss", {"type": "hinge"}, UNSET, REFUSED),
    ("phases.1.name", "main", "adversarial", APPLIES),
    ("phases.1.lr.generator", 0.0005, 0.0001, APPLIES),
    ("phases.1.lr", UNSET, {"critic": 0.001}, APPLIES),
    ("phases.1.n_critic", 1, 3, APPLIES),
    ("phases.1.checkpoint_every", 0, 10, APPLIES),
    ("phases.1.loss.gp_lambda", 10.0, 1.0, APPLIES),
    ("phases.1.steps", 8, 10, APPLIES),
    ("phases.1.epochs", 2.0, 3.0, APPLIES),
    ("phases.2", UNSET, {"name": "more", "loss": {"type": "hinge"}, "steps": 4}, APPLIES),
    ("phases.1", {"name": "main", "loss": {"type": "hinge"}, "steps": 4}, UNSET, APPLIES),
    ("phases", UNSET, [{"name": "a", "loss": {"type": "hinge"}, "steps": 4}], APPLIES),
    # metrics, loggers, callbacks, what a later version may add
    ("metrics.0.every", 500, 100, APPLIES),
    ("metrics.0.n_samples", 2000, 500, APPLIES),
    ("metrics.1", UNSET, {"type": "ring-modes", "every": 0}, APPLIES),
    ("metrics", [{"type": "ring-modes"}], UNSET, APPLIES),
    ("loggers.0.type", "jsonl", "tensorboard", APPLIES),
    ("callbacks", UNSET, [{"type": "my-callback"}], APPLIES),
    ("reports.html", False, True, APPLIES),
]


@pytest.mark.parametrize(("key", "old", "new", "applies"), POLICY_ROWS,
                         ids=[f"{r[0]}:{r[1]!r}->{r[2]!r}" for r in POLICY_ROWS])
def test_the_policy_for_each_key(key: str, old: Any, new: Any, applies: bool) -> None:
    change = one_change(key, old, new)
    assert change.applies is applies, change
    assert change.why


def test_an_objective_s_type_may_change_for_phases_still_to_come_only() -> None:
    # phase 1 in progress (its objective's state is in the checkpoint)
    assert not one_change("phases.1.loss.type", "hinge", "wgan-gp", phase=1).applies
    assert one_change("phases.2.loss.type", "hinge", "wgan-gp", phase=1).applies
    assert one_change("phases.0.loss.type", "mle", "hinge", phase=1).applies  # done
    assert not one_change("phases.0.loss.type", "mle", "hinge", phase=None).applies  # unknown
    assert not one_change("loss.type", "hinge", "wgan-gp", phase=0).applies


def test_comparison_goes_key_by_key_and_lists_of_values_as_a_whole() -> None:
    old = {"optim": {"generator": {"lr": 0.001, "betas": [0.5, 0.999], "eps": 1e-8}},
           "train": {"steps": 10, "compile": False}, "metrics": [{"type": "a", "every": 5}]}
    new = {"optim": {"generator": {"lr": 0.001, "betas": [0.5, 0.99], "eps": 1e-8}},
           "train": {"steps": 10.0, "compile": 0}, "metrics": [{"type": "a", "every": 5}],
           "new_section": {"x": 1}}
    found = {c.key: c for c in recipe_changes(old, new)}
    # 10 and 10.0 are the same number; False and 0 are not the same setting
    assert sorted(found) == ["new_section", "optim.generator.betas", "train.compile"]
    assert found["optim.generator.betas"].shown() == (
        "optim.generator.betas [0.5, 0.999] -> [0.5, 0.99]"
    )
    assert found["new_section"].old is UNSET and found["new_section"].shown().endswith(
        "(unset) -> {'x': 1}"
    )
    assert found["new_section"].record().model_dump(exclude_unset=True) == {
        "key": "new_section", "new": {"x": 1}
    }


def _record(recipe: dict[str, Any], **run: Any) -> RunRecord:
    position = {"step": 20, "phase": 0, "phase_step": 20, "stream": {"epoch": 0, "position": 1},
                **run}
    return RunRecord.model_validate({
        "recipe": recipe, "data_kind": "points", "data_info": {},
        "generator": {"type": "p:mlp", "config": {}}, "run": position,
    })


def test_refused_changes_are_named_together_with_what_to_do() -> None:
    old = _record({"seed": 0, "train": {"batch_size": 64, "log_every": 5}})
    new = {"seed": 1, "train": {"batch_size": 32, "log_every": 10}}
    with pytest.raises(UserError) as caught:
        resume.check_recipe_changes(old, new, "ck.safetensors")
    text = str(caught.value)
    assert text.startswith("ck.safetensors: cannot resume with this recipe: seed 0 -> 1 (")
    assert "train.batch_size 64 -> 32" in text and "log_every" not in text
    assert "values of seed and train.batch_size" in text and "--out" in text
    applied = resume.check_recipe_changes(old, {**old.recipe, "train": {
        "batch_size": 64, "log_every": 10}}, "ck.safetensors")
    assert resume.applied_message(applied, 20) == (
        "recipe changes take effect from step 20: train.log_every 5 -> 10"
    )


def test_component_tables_are_compared_with_the_defaults_of_today() -> None:
    """An option a plugin added since, at its default, is not a change (nor refused)."""
    old = _record({"generator": {"type": "mlp", "hidden": 8},
                   "loss": {"type": "hinge"}, "train": {"steps": 4}})
    new = {"generator": {"type": "mlp", "hidden": 8, "latent_dim": 8},
           "loss": {"type": "hinge", "margin": 1.0}, "train": {"steps": 8}}
    seen: list[str] = []

    def defaults(place: str, table: dict[str, Any]) -> dict[str, Any]:
        seen.append(place)
        added = {"generator": {"latent_dim": 8}, "loss": {"margin": 1.0}}.get(place, {})
        return {**table, **added}

    resume.check_same_run(old, new, "ck", defaults)
    changes = resume.check_recipe_changes(old, new, "ck", defaults)
    assert [c.key for c in changes] == ["train.steps"]
    assert {"generator", "loss"} <= set(seen)
    with pytest.raises(UserError, match=r"\[generator\] differs from the run's \(latent_dim: "
                                        r"\(unset\) -> 8\)"):
        resume.check_same_run(old, new, "ck")


def test_world_and_position_checks() -> None:
    record = _record({}, world=2)
    resume.check_world(record, 2, "ck")
    with pytest.raises(UserError, match=r"trained in 2 process\(es\); resume it with --nproc 2"):
        resume.check_world(record, 1, "ck")
    bare = record.model_copy(update={"run": None})
    with pytest.raises(UserError, match="does not say where its run stood"):
        resume.check_world(bare, 1, "ck")


def test_plugin_version_notes() -> None:
    record = _record({}).model_copy(update={"plugins": {"a": "1.0", "b": "2.0", "c": "3"}})
    assert resume.check_plugin_versions(record, {"a": "1.0", "b": "2.1"}, "ck") == [
        "ck: made with plugin b 2.0; 2.1 is installed",
        "ck: made with plugin c 3, which is not loaded",
    ]


# -- phase lengths -----------------------------------------------------------------------------


class Pos:
    def __init__(self, step: int, phase: int, phase_step: int) -> None:
        self.step, self.phase, self.phase_step = step, phase, phase_step

    def __repr__(self) -> str:
        return f"Pos{(self.step, self.phase, self.phase_step)}"


NAMES = ["warm", "main"]


@pytest.mark.parametrize(
    ("where", "lengths", "moved_to"),
    [
        ((9, 1, 3), [6, 8], (9, 1, 3)),  # unchanged
        ((9, 1, 3), [6, 10], (9, 1, 3)),  # the phase in progress grows
        ((9, 1, 3), [6, 3], (9, 2, 0)),  # ...or shrinks to what it has run: done
        ((6, 1, 0), [9, 8], (6, 0, 6)),  # stopped on the boundary: the finished phase grows
        ((14, 2, 0), [6, 8], (14, 2, 0)),  # at the end
    ],
)
def test_place_in_phases(where, lengths, moved_to) -> None:
    pos = Pos(*where)
    resume.place_in_phases(pos, lengths, [6, 8], NAMES, "r.toml")
    assert (pos.step, pos.phase, pos.phase_step) == moved_to


def test_place_in_phases_refuses_moving_steps_already_taken() -> None:
    with pytest.raises(UserError, match=r"^r\.toml: the run stopped at step 9, in phase 'main'.*"
                                        r"phases end at steps 4, 12.*--out"):
        resume.place_in_phases(Pos(9, 1, 3), [4, 8], [6, 8], NAMES, "r.toml")
    with pytest.raises(UserError, match=r"in phase 3 of 3, which the recipe no longer has"):
        resume.place_in_phases(Pos(16, 2, 2), [6, 8], [6, 8, 4], NAMES, "r.toml")


# -- the run record ----------------------------------------------------------------------------


def test_the_first_format_round_trips_exactly() -> None:
    meta = meta_of(OLD_CKPT)
    record = RunRecord.from_meta(meta, OLD_CKPT)
    assert record.to_meta() == {k: v for k, v in meta.items() if k not in CHECKPOINT_KEYS}
    assert "resumes" not in record.to_meta() and record.resumes == []
    assert (record.step, record.run.phase_lengths, record.generator.config["hidden"]) == (
        20, [40], 16
    )
    # a key a newer ganframe adds survives, and so does one this version does not know
    future = {**meta, "run": {**meta["run"], "later": [1]}, "reports": {"html": "r.html"}}
    again = RunRecord.from_meta(future, OLD_CKPT).to_meta()
    assert again["run"]["later"] == [1] and again["reports"] == {"html": "r.html"}


def test_records_written_now_round_trip_exactly(tmp_path: Path) -> None:
    api.train(ring(), out=tmp_path / "run", max_steps=4)
    result = api.train(ring("train.log_every=4"), out=tmp_path / "run", resume=True)
    meta = meta_of(result.checkpoint)
    assert RunRecord.from_meta(meta, "x").to_meta() == {
        k: v for k, v in meta.items() if k not in CHECKPOINT_KEYS
    }
    assert set(meta) >= {"ganframe", "recipe", "data_kind", "data_info", "recipe_dir",
                         "components", "plugins", "generator", "run", "resumes", "format"}


def _damaged(meta: dict[str, Any], change) -> dict[str, Any]:
    doc = json.loads(json.dumps(meta))
    change(doc)
    return doc


DAMAGE = [
    ("run-step-a-string", lambda m: m["run"].update(step="20"), ["run.step", "'20'"]),
    ("run-step-negative", lambda m: m["run"].update(step=-1), ["run.step"]),
    ("run-step-a-bool", lambda m: m["run"].update(step=True), ["run.step"]),
    ("stream-cursor-missing", lambda m: m["run"]["stream"].pop("position"),
     ["run.stream.position", "missing"]),
    ("phase-lengths-not-numbers", lambda m: m["run"].update(phase_lengths=["40"]),
     ["run.phase_lengths.0"]),
    ("generator-missing", lambda m: m.pop("generator"), ["generator: missing",
                                                          "generator.type"]),
    ("generator-not-a-table", lambda m: m.update(generator="mlp"), ["generator", "'mlp'"]),
    ("generator-config-a-list", lambda m: m["generator"].update(config=[]),
     ["generator.config"]),
    ("data-kind-a-number", lambda m: m.update(data_kind=3), ["data_kind"]),
    ("component-without-plugin", lambda m: m["components"]["generator"].pop("plugin"),
     ["components.generator.plugin"]),
    ("plugin-version-a-number", lambda m: m["plugins"].update(x=1), ["plugins.x"]),
    ("recipe-a-list", lambda m: m.update(recipe=[]), ["recipe"]),
    ("resumes-not-a-list", lambda m: m.update(resumes={"step": 1}), ["resumes"]),
    ("resume-without-step", lambda m: m.update(resumes=[{"changes": []}]), ["resumes.0.step"]),
]


@pytest.mark.parametrize(("change", "needles"), [(c, n) for _, c, n in DAMAGE],
                         ids=[i for i, _, _ in DAMAGE])
def test_damaged_metadata_names_the_file_and_the_field(change, needles) -> None:
    meta = _damaged(meta_of(OLD_CKPT), change)
    with pytest.raises(UserError) as caught:
        RunRecord.from_meta(meta, OLD_CKPT)
    text = str(caught.value)
    assert text.startswith(f"{OLD_CKPT}: the checkpoint's metadata is damaged"), text
    for needle in needles:
        assert needle in text, (needle, text)


def test_damaged_metadata_is_a_user_error_for_sample_and_resume(tmp_path: Path) -> None:
    bad = tmp_path / "run" / "checkpoints" / "last.safetensors"
    bad.parent.mkdir(parents=True)
    (tmp_path / "run" / "samples").mkdir()
    meta = _damaged(meta_of(OLD_CKPT), lambda m: m["run"].update(phase="one"))
    save_file(load_file(str(OLD_CKPT)), str(bad), metadata={"ganframe": json.dumps(meta)})
    with pytest.raises(UserError, match=r"last\.safetensors: .*damaged.*run\.phase"):
        api.load_checkpoint(bad)
    recipe = tmp_path / "recipe.toml"
    recipe.write_text(tomlwrite.dumps(RunRecord.from_meta(meta_of(OLD_CKPT), "x").recipe))
    before = snapshot(tmp_path / "run")
    with pytest.raises(UserError, match=r"last\.safetensors: .*damaged.*run\.phase"):
        api.train(api.load_recipe(recipe), out=tmp_path / "run", resume=True)
    assert snapshot(tmp_path / "run") == before
    # without a run position: samples, but does not resume
    meta = _damaged(meta_of(OLD_CKPT), lambda m: m.pop("run"))
    save_file(load_file(str(OLD_CKPT)), str(bad), metadata={"ganframe": json.dumps(meta)})
    assert api.load_checkpoint(bad).step == 0
    with pytest.raises(UserError, match="does not say where its run stood"):
        api.train(api.load_recipe(recipe), out=tmp_path / "run", resume=True)


# -- a checkpoint written before the run record ------------------------------------------------


def test_a_checkpoint_of_the_first_format_resumes_exactly_and_samples(tmp_path: Path) -> None:
    """Made by ganframe 0.1.0 at step 20 of a 40-step run (tests/data/README.md): resumed by
    this version, it ends where a 40-step run of this version ends."""
    meta = meta_of(OLD_CKPT)
    recipe = tmp_path / "recipe.toml"  # the run's own recipe, as its run folder kept it
    recipe.write_text(tomlwrite.dumps(meta["recipe"]), encoding="utf-8")
    run = tmp_path / "run"
    (run / "checkpoints").mkdir(parents=True)
    shutil.copy(OLD_CKPT, run / "checkpoints" / "last.safetensors")

    resumed = api.train(api.load_recipe(recipe), out=run, resume=True)
    straight = api.train(api.load_recipe(recipe), out=tmp_path / "straight")
    assert resumed.step == straight.step == 40
    a, b = load_file(str(resumed.checkpoint)), load_file(str(straight.checkpoint))
    nets = [k for k in a if k.split(".")[0] in ("generator", "critic", "ema")]
    assert nets and a.keys() == b.keys()
    same_torch = meta["torch"] == torch.__version__
    for k in nets:  # other torch builds may round differently
        assert torch.equal(a[k], b[k]) if same_torch else torch.allclose(a[k], b[k], atol=1e-4)
    new_meta = meta_of(resumed.checkpoint)
    assert new_meta["run"]["step"] == 40 and new_meta["format"] == 1
    assert all(c["key"] != "train.batch_size" for r in new_meta.get("resumes", [])
               for c in r["changes"])

    ckpt = api.load_checkpoint(OLD_CKPT)
    assert (ckpt.step, ckpt.data_kind, ckpt.record.run.step) == (20, "points", 20)
    x = api.sample(ckpt, 16, seed=3)
    assert x.shape == (16, 2) and bool(torch.isfinite(x).all())
    assert torch.equal(x, api.sample(OLD_CKPT, 16, seed=3))


# -- layers and docs ---------------------------------------------------------------------------

FORBIDDEN = ("recipe", "registry", "plugins", "api", "cli", "assemble", "training")


@pytest.mark.parametrize("module", ["ganframe/loop/resume.py", "ganframe/run_record.py"])
def test_resume_rules_and_the_record_import_no_higher_layer(module: str) -> None:
    tree = ast.parse((ROOT / module).read_text(encoding="utf-8"))
    names: list[str] = []
    for node in ast.walk(tree):  # function-level and TYPE_CHECKING imports count too
        if isinstance(node, ast.Import):
            names += [a.name for a in node.names]
        elif isinstance(node, ast.ImportFrom) and node.module:
            names += [node.module] + [f"{node.module}.{a.name}" for a in node.names]
    bad = [n for n in names if n.split(".")[0] == "ganframe" and len(n.split(".")) > 1
           and n.split(".")[1] in FORBIDDEN]
    assert not bad, f"{module} imports {bad}"
    code = (f"import sys, importlib; importlib.import_module({module[:-3].replace('/', '.')!r}); "
            f"print([m for m in sys.modules if m.split('.')[:2] in "
            f"[['ganframe', n] for n in {FORBIDDEN!r}]])")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                         check=True, cwd=ROOT).stdout.strip()
    assert out == "[]", out


def test_the_policy_table_is_documented() -> None:
    text = (ROOT / "docs" / "running.md").read_text(encoding="utf-8")
    section = text.split("## Changing a recipe on resume", 1)[1].split("\n## ", 1)[0]
    missing = [r.pattern for r in resume.POLICY if f"`{r.pattern}`" not in section]
    assert not missing, f"docs/running.md does not show {missing}"
    assert re.search(r"\| refused \|", section) and "recipe.toml" in section
