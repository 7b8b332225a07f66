"""Every rule about resuming a run, in one place.

A resumed run must either continue exactly what the checkpoint holds, or say plainly why it
cannot. The rules, in the order a resume meets them:

1. :func:`check_world`: the same number of processes (data shards and the global batch
   depend on it);
2. :func:`check_same_run`: the same data and networks (``[data]``, ``[generator]``,
   ``[critic]``), read through today's config models so an option a plugin added since, at
   its default, is no difference;
3. :func:`check_recipe_changes`: every other recipe difference either takes effect from the
   resumed step (it is recorded in the checkpoints' ``resumes`` history and shown) or is
   refused with an error naming the key; never recorded and silently ignored. The table of
   which is which is :data:`POLICY`, documented in docs/running.md;
4. :func:`check_plugin_versions`: other plugin versions than the checkpoint's are a warning;
5. :func:`place_in_phases`: phase lengths may change only where no step already taken moves.

The functions are pure (they read records and plain values, raise
:class:`~ganframe.errors.UserError` or return what to show): the loop imports neither the
recipe nor the plugin registry, so what needs them (filling a component table with today's
defaults) is passed in as a callable.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal, Protocol

from ganframe.errors import UserError
from ganframe.run_record import ChangeRecord, RunPosition, RunRecord

__all__ = [
    "POLICY",
    "UNSET",
    "Change",
    "CurrentDefaults",
    "Position",
    "Rule",
    "applied_message",
    "check_plugin_versions",
    "check_recipe_changes",
    "check_same_run",
    "check_world",
    "find_checkpoint",
    "place_in_phases",
    "position",
    "recipe_changes",
    "rule_for",
    "with_current_defaults",
]

#: ``current_defaults(place, table) -> table``: a component table of the run's recipe (at the
#: dotted ``place``, e.g. ``"generator"`` or ``"phases.1.loss"``) with the defaults of the
#: component's config model as installed now filled in; the table unchanged where that is not
#: possible (another component, a removed option). Assembly builds it from the registry.
CurrentDefaults = Callable[[str, dict[str, Any]], dict[str, Any]]

_NEW_RUN = "start a new run with --out"


# -- the checkpoint's position and world --------------------------------------------------


def position(record: RunRecord, path: str | Path) -> RunPosition:
    """Where the run stood; a checkpoint without a position cannot be resumed."""
    if record.run is None:
        raise UserError(
            f"{path}: this checkpoint does not say where its run stood (its metadata has no "
            "'run' entry), so training cannot resume from it; it can still be sampled from. "
            f"Resume from a checkpoint written during training, or {_NEW_RUN}."
        )
    return record.run


def check_world(record: RunRecord, world: int, path: str | Path) -> None:
    """The same process count: each process's data shard and the global batch depend on it."""
    was = position(record, path).world
    if was != world:
        raise UserError(
            f"{path}: this run was trained in {was} process(es); resume it with "
            f"--nproc {was} (now {world}), or its data shards and global batch would change."
        )


def find_checkpoint(folder: Any, *, clean: bool) -> tuple[Path, Any, RunRecord] | None:
    """The checkpoint a resume starts from in ``folder`` (a CheckpointDir), read and typed;
    None when the folder holds none. ``clean`` (rank 0) first deletes the temporary files of
    writes a crash cut short. Checkpoints that are all damaged are an error naming one."""
    from ganframe.checkpoint import read_checkpoint

    if clean:
        folder.remove_stale_temps()
    latest = folder.latest()
    if latest is None:
        leftovers = [p for p in (folder.last_path, *folder.steps()) if p.exists()]
        if leftovers:
            read_checkpoint(leftovers[-1])  # raises, naming the file and what is wrong
        return None
    ckpt = read_checkpoint(latest)
    return latest, ckpt, RunRecord.from_meta(ckpt.meta, latest)


# -- same data, same networks ---------------------------------------------------------------


def _recipe(new: RunRecord | Mapping[str, Any]) -> Mapping[str, Any]:
    return new.recipe if isinstance(new, RunRecord) else new


def check_same_run(
    old: RunRecord,
    new: RunRecord | Mapping[str, Any],
    path: str | Path,
    current_defaults: CurrentDefaults | None = None,
) -> None:
    """Resuming with other networks or data would silently train something else.

    ``new`` is the resumed run's record, or just its resolved recipe dict. The run's tables
    are read through today's config models first (``current_defaults``), so an option that a
    newer plugin version added, at its default, does not count as a change.
    """
    for key in ("data", "generator", "critic"):
        a = old.recipe.get(key)
        b = _recipe(new).get(key)
        if a != b and isinstance(a, dict) and current_defaults is not None:
            a = current_defaults(key, a)
        if a != b:
            a, b = a or {}, b or {}

            def shown(table: dict[str, Any], k: str) -> str:
                return repr(table[k]) if k in table else "(unset)"

            changed = ", ".join(
                f"{k}: {shown(a, k)} -> {shown(b, k)}"
                for k in sorted(set(a) | set(b), key=str)
                if shown(a, k) != shown(b, k)
            )
            raise UserError(
                f"{path}: cannot resume: the recipe's [{key}] differs from the run's "
                f"({changed}). Resume with the run's own recipe (its recipe.toml), or start "
                "a new run with --out."
            )


def with_current_defaults(recipe: Mapping[str, Any], fill: CurrentDefaults) -> dict[str, Any]:
    """A copy of ``recipe`` with every component table (a table with a ``type``) passed
    through ``fill``; ``fill`` leaves the places it does not know alone."""

    def walk(value: Any, place: str) -> Any:
        if isinstance(value, dict):
            inner = {k: walk(v, f"{place}.{k}" if place else str(k)) for k, v in value.items()}
            if place and isinstance(inner.get("type"), str):
                return fill(place, inner)
            return inner
        if isinstance(value, list):
            return [walk(v, f"{place}.{i}") for i, v in enumerate(value)]
        return value

    return walk(dict(recipe), "")


# -- plugin versions ------------------------------------------------------------------------


def check_plugin_versions(
    record: RunRecord, installed: Mapping[str, str], path: str | Path
) -> list[str]:
    """One note per plugin whose installed version (``installed``: name -> version of the
    plugins that loaded) differs from the checkpoint's, or that is not loaded at all."""
    notes = []
    for plugin, version in sorted(record.plugins.items()):
        have = installed.get(plugin)
        if have is None:
            notes.append(f"{path}: made with plugin {plugin} {version}, which is not loaded")
        elif have != version:
            notes.append(f"{path}: made with plugin {plugin} {version}; {have} is installed")
    return notes


# -- recipe changes -------------------------------------------------------------------------


class _Unset:
    """A key absent on one side of a comparison."""

    def __repr__(self) -> str:
        return "(unset)"


UNSET: Any = _Unset()


@dataclass(frozen=True)
class Change:
    """One recipe value that differs between the run and the recipe it is resumed with."""

    key: str  #: dotted, e.g. "optim.generator.lr", "phases.1.n_critic", "metrics.0.every"
    old: Any  #: the run's value (:data:`UNSET` if the run's recipe has no such key)
    new: Any  #: the new recipe's value (:data:`UNSET` if it has none)
    applies: bool  #: True: takes effect from the resumed step; False: refused
    why: str  #: the reason, from :data:`POLICY`

    def shown(self) -> str:
        return f"{self.key} {_shown(self.old)} -> {_shown(self.new)}"

    def record(self) -> ChangeRecord:
        """As stored in the checkpoints' ``resumes`` history (an unset side is left out)."""
        sides = {k: v for k, v in (("old", self.old), ("new", self.new)) if v is not UNSET}
        return ChangeRecord(key=self.key, **sides)


def _shown(value: Any, limit: int = 60) -> str:
    text = repr(value)
    return text if len(text) <= limit else text[: limit - 3] + "..."


Verdict = Literal["applies", "refused", "phases", "depends"]


@dataclass(frozen=True)
class Rule:
    """How a change to the keys matching ``pattern`` is treated on resume.

    ``pattern`` is dotted, ``*`` stands for one part (a name or a list index) and it also
    matches every key below it, unless ``exact``. ``verdict``: ``applies`` (from the resumed
    step), ``refused``, ``phases`` (a phase length, or a phase added or removed: applies, and
    :func:`place_in_phases` refuses it where it would move steps already taken) or
    ``depends`` (``refuse`` decides).
    """

    pattern: str
    verdict: Verdict
    why: str
    exact: bool = False
    #: for "depends": (key, old, new, phase in progress or None) -> refused?
    refuse: Callable[[str, Any, Any, int | None], bool] | None = None

    def matches(self, key: str) -> bool:
        want, parts = self.pattern.split("."), key.split(".")
        if len(parts) < len(want) or (self.exact and len(parts) != len(want)):
            return False
        return all(w in ("*", p) for w, p in zip(want, parts, strict=False))


def _ema_switched(key: str, old: Any, new: Any, phase: int | None) -> bool:
    def on(v: Any) -> bool:
        return v is not UNSET and bool(v)

    return on(old) != on(new)


def _fp16_involved(key: str, old: Any, new: Any, phase: int | None) -> bool:
    return "fp16" in (old, new)


def _objective_in_progress(key: str, old: Any, new: Any, phase: int | None) -> bool:
    index = int(key.split(".")[1]) if key.startswith("phases.") else 0
    return phase is None or index == phase


#: The recipe-change policy, first match wins; docs/running.md shows it as a table.
POLICY: tuple[Rule, ...] = (
    Rule("seed", "refused", "the data order and the sample noise derive from it"),
    Rule("data", "refused", "the run trains on one dataset"),
    Rule("generator", "refused", "the checkpoint's weights are this network's"),
    Rule("critic", "refused", "the checkpoint's weights are this network's"),
    Rule("optim.*.type", "refused", "the optimiser's saved state belongs to its type"),
    Rule("optim", "applies", "set on the optimiser from the resumed step"),
    Rule("train.batch_size", "refused",
         "the data stream's saved position counts batches of the run's size"),
    Rule("train.sync_batchnorm", "refused",
         "the batch-norm statistics so far were taken over the run's batches"),
    Rule("train.ema", "depends",
         "switching the EMA on or off: there are no EMA weights to resume, or they would be "
         "dropped; another decay applies", refuse=_ema_switched),
    Rule("train.precision", "depends",
         "fp16 keeps gradient-scaler state; bf16 <-> fp32 applies", refuse=_fp16_involved),
    Rule("train.steps", "phases", "phase lengths are checked against the steps taken"),
    Rule("train.epochs", "phases", "phase lengths are checked against the steps taken"),
    Rule("train", "applies", "read by the loop at every step"),
    Rule("loss", "refused", "switching between [loss] and [[phases]] changes the objective "
         "of the phase in progress", exact=True),
    Rule("loss.type", "depends", "the objective state saved in the checkpoint belongs to the "
         "phase in progress's objective", refuse=_objective_in_progress),
    Rule("loss", "applies", "the objective is rebuilt with them when the run resumes"),
    Rule("phases", "phases", "phases added or removed are checked against the steps taken",
         exact=True),
    Rule("phases.*", "phases", "phases added or removed are checked against the steps taken",
         exact=True),
    Rule("phases.*.steps", "phases", "phase lengths are checked against the steps taken"),
    Rule("phases.*.epochs", "phases", "phase lengths are checked against the steps taken"),
    Rule("phases.*.loss.type", "depends", "the objective state saved in the checkpoint "
         "belongs to the phase in progress's objective", refuse=_objective_in_progress),
    Rule("phases", "applies", "read when the phase runs"),
    Rule("metrics", "applies", "evaluated with them from the resumed step"),
    Rule("loggers", "applies", "built from them when the run resumes"),
    Rule("callbacks", "applies", "built from them when the run resumes"),
    Rule("name", "applies", "descriptive"),
    Rule("description", "applies", "descriptive"),
    Rule("device", "applies", "the checkpoint is loaded onto the new device"),
    Rule("threads", "applies", "set when the run resumes"),
    Rule("deterministic", "applies", "set when the run resumes"),
    Rule("ganframe", "applies", "checked when the run resumes"),
)

_UNKNOWN = Rule("*", "applies", "a setting this version of the policy does not list")


def rule_for(key: str) -> Rule:
    """The first rule of :data:`POLICY` that matches ``key`` (a catch-all that applies
    if none does: a section added since is listed, not refused)."""
    return next((r for r in POLICY if r.matches(key)), _UNKNOWN)


def recipe_changes(
    old: Mapping[str, Any], new: Mapping[str, Any], *, phase: int | None = None
) -> list[Change]:
    """Every key whose value differs between two resolved recipe dicts, classified.

    Tables are compared key by key and lists of tables item by item (``phases.1.n_critic``);
    other values, lists of numbers included, as a whole. ``phase`` is the phase whose
    objective is in progress (its state is in the checkpoint); ``None`` if not known, which
    refuses a change of any objective's type.
    """
    found: list[tuple[str, Any, Any]] = []
    _diff(old, new, "", found)
    changes = []
    for key, a, b in found:
        rule = rule_for(key)
        refused = rule.verdict == "refused" or (
            rule.verdict == "depends" and rule.refuse is not None and rule.refuse(key, a, b, phase)
        )
        changes.append(Change(key, a, b, not refused, rule.why))
    return changes


def _diff(a: Any, b: Any, prefix: str, out: list[tuple[str, Any, Any]]) -> None:
    def at(k: object) -> str:
        return f"{prefix}.{k}" if prefix else str(k)

    if isinstance(a, dict) and isinstance(b, dict):
        for k in [*a, *(k for k in b if k not in a)]:
            if k not in b:
                out.append((at(k), a[k], UNSET))
            elif k not in a:
                out.append((at(k), UNSET, b[k]))
            else:
                _diff(a[k], b[k], at(k), out)
    elif _tables(a) and _tables(b):
        for i in range(max(len(a), len(b))):
            if i >= len(b):
                out.append((at(i), a[i], UNSET))
            elif i >= len(a):
                out.append((at(i), UNSET, b[i]))
            else:
                _diff(a[i], b[i], at(i), out)
    elif a != b or (type(a) is not type(b) and not _numbers(a, b)):
        out.append((prefix, a, b))


def _tables(value: Any) -> bool:
    return isinstance(value, list) and all(isinstance(v, dict) for v in value)


def _numbers(a: Any, b: Any) -> bool:
    return all(isinstance(v, int | float) and not isinstance(v, bool) for v in (a, b))


def check_recipe_changes(
    old: RunRecord,
    new: RunRecord | Mapping[str, Any],
    path: str | Path,
    current_defaults: CurrentDefaults | None = None,
) -> list[Change]:
    """The changes a resume applies; a :class:`UserError` naming every refused key first.

    ``new`` is the resumed run's record, or just its resolved recipe dict. Components'
    tables of the run are read through today's defaults first (as in
    :func:`check_same_run`), so an option added since is not a change.
    """
    run = old.run
    phase = None
    if run is not None:
        phase = run.objective_phase if run.objective_phase is not None else run.phase
    before = old.recipe if current_defaults is None else with_current_defaults(
        old.recipe, current_defaults
    )
    changes = recipe_changes(before, _recipe(new), phase=phase)
    refused = [c for c in changes if not c.applies]
    if refused:
        listed = "; ".join(f"{c.shown()} ({c.why})" for c in refused)
        keys = [c.key for c in refused]
        which = (
            f"value of {keys[0]} (the run folder's recipe.toml has it)"
            if len(keys) == 1
            else f"values of {', '.join(keys[:-1])} and {keys[-1]} (the run folder's "
            "recipe.toml has them)"
        )
        raise UserError(
            f"{path}: cannot resume with this recipe: {listed}. These settings cannot change "
            f"in the middle of a run: restore the run's {which}, or {_NEW_RUN}."
        )
    return changes


def applied_message(changes: Sequence[Change], step: int) -> str:
    """The line shown when a resume applies recipe changes."""
    return f"recipe changes take effect from step {step}: " + "; ".join(
        c.shown() for c in changes
    )


# -- phase lengths --------------------------------------------------------------------------


class Position(Protocol):
    """Where a run stands (the trainer's run state); :func:`place_in_phases` may move it."""

    step: int
    phase: int
    phase_step: int


def place_in_phases(
    state: Position,
    lengths: Sequence[int],
    ran_lengths: Sequence[int] | None,
    phase_names: Sequence[str],
    source: str,
) -> None:
    """Check a resumed run's position against the recipe's phase lengths now.

    ``lengths`` are the phases' lengths in steps now, ``ran_lengths`` those the checkpoint
    recorded (``None`` for checkpoints older than that record), ``source`` names the recipe.

    The phase the run is in may be lengthened or shortened (to no less than it has run).
    A run that stopped on a phase boundary, e.g. ``--max-steps`` at the end of the MLE
    phase, or at the end of the recipe, may lengthen the phase it just finished: it
    continues that phase (``--set phases.0.epochs=...``); ``state`` is moved back into it.
    A phase shortened to what it has run is done (``state`` moves to the next). Any other
    change to a phase that has run would shift every later step, so it is an error, not a
    silent skip.
    """
    st = state
    starts = [sum(lengths[:i]) for i in range(len(lengths) + 1)]
    finished = st.phase - (1 if st.phase_step == 0 else 0)  # phases that may not change

    def refuse() -> None:
        _refuse_new_lengths(st, starts, ran_lengths, phase_names, source)

    if st.phase > len(lengths) or (ran_lengths is not None and any(
        a != b for a, b in zip(ran_lengths[: max(finished, 0)], lengths, strict=False)
    )):
        refuse()
    if st.phase < len(lengths) and st.step == starts[st.phase] + st.phase_step:
        if st.phase_step < lengths[st.phase]:
            return
        if st.phase_step == lengths[st.phase]:  # shortened to what it has run: done
            st.phase, st.phase_step = st.phase + 1, 0
            return
    elif st.phase == len(lengths) and st.step == starts[-1]:
        return
    if st.phase_step == 0 and st.phase > 0 and starts[st.phase - 1] <= st.step:
        if st.step < starts[st.phase]:
            st.phase, st.phase_step = st.phase - 1, st.step - starts[st.phase - 1]
            return
    refuse()


def _refuse_new_lengths(
    st: Position,
    starts: list[int],
    ran: Sequence[int] | None,
    phase_names: Sequence[str],
    source: str,
) -> None:
    if st.phase < len(phase_names):
        where = f"in phase '{phase_names[st.phase]}'"
    elif ran is not None and st.phase < len(ran):
        where = f"in phase {st.phase + 1} of {len(ran)}, which the recipe no longer has"
    else:
        where = "at its end"
    raise UserError(
        f"{source}: the run stopped at step {st.step}, {where}, but the "
        "recipe now gives a phase that has already run a different length (phases end "
        f"at steps {', '.join(str(x) for x in starts[1:])}). On resume, only the phase "
        "the run is in may change its length (to no less than it has run), or, when the "
        "run stopped on a phase boundary, the phase it had just finished may grow. Restore "
        "the earlier lengths (and the data, if an epoch-sized phase changed with it), or "
        "start a new run with --out."
    )
