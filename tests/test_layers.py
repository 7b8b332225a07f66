"""The layers of docs/architecture.md, checked on the source so they cannot erode unnoticed.

Every module under ``ganframe/`` is parsed with :mod:`ast` (nothing is imported, so a broken
or half-written module still gets checked) and every import is collected: at module level,
inside functions, and under ``if TYPE_CHECKING:``. A lazy import inside a function is still
a dependency (it decides what a module needs to work and where cycles hide, e.g. the old
``plugins -> ganframe/__init__ -> api -> plugins``), so the rules apply to all of them unless
a rule says otherwise.

:data:`RULES` is the table of layers: for each module (a dotted prefix below ``ganframe``),
either the only ganframe modules it may import (``only``) or those it must never import
(``never``). :data:`KNOWN_VIOLATIONS` lists, by name, the places that break a rule today
because their module is being rewritten; each entry says what to do, and a test fails when an
entry no longer happens, so the list only ever shrinks.
"""

from __future__ import annotations

import ast
import subprocess
import sys
from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from functools import cache
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
PACKAGE = ROOT / "ganframe"
#: First-party plugin packages: they use ganframe's public names only, like anybody's plugin.
PLUGIN_PACKAGES = sorted(p for p in (ROOT / "plugins").glob("*/ganframe_*") if p.is_dir())

#: ganframe modules every module may import: the leaves of the graph.
LEAVES = frozenset({"errors", "version"})


@dataclass(frozen=True)
class Rule:
    """What the modules named ``prefix`` (the module, or a package and everything in it) may
    import of ganframe. Names are relative to ``ganframe`` (``""`` is the package itself,
    ``ganframe/__init__.py``); ``never`` and ``only`` match a module and its submodules."""

    prefix: str
    why: str
    never: frozenset[str] = frozenset()
    only: frozenset[str] | None = None  # None: no allowlist
    #: (importer, imported, kind of import or "any") pairs the rule lets through
    exempt: tuple[tuple[str, str, str], ...] = ()
    #: kinds of import the rule looks at; default all three
    kinds: frozenset[str] = frozenset({"module", "function", "type_checking"})


def _only(*names: str) -> frozenset[str]:
    return frozenset(names) | LEAVES


def _never(*names: str) -> frozenset[str]:
    return frozenset(names)


RULES: tuple[Rule, ...] = (
    Rule("errors", "the bottom layer: everybody raises UserError", only=_only()),
    Rule("version", "the bottom layer: read by the host, checkpoints and the CLI", only=_only()),
    Rule("fileio", "the one atomic write, used by checkpoints, run folder and writers",
         only=_only()),
    Rule("hookspecs", "the whole plugin contract; plugins import hookimpl from it",
         only=_only()),
    Rule("textsafe", "printing user-derived text safely is used by every layer that prints",
         only=_only()),
    Rule("components", "the contracts plugins code against; they change only on purpose",
         only=_only()),
    Rule("registry", "what plugins registered; lazy 'module:attr' references only",
         only=_only()),
    Rule("plugins", "the host loads ganframe.builtin.* by name string, not by import "
         "(importing the package __init__ was the cycle plugins -> __init__ -> api -> plugins)",
         only=_only("hookspecs", "registry")),
    Rule("recipe", "recipes are data: validating one never trains or loads plugins",
         never=_never("api", "cli", "training", "loop", "plugins", "assemble", "devtools")),
    Rule("loop", "the loop is given built parts; assemble builds them from recipe + registry "
         "(training is only a re-export of the loop now: importing it would be a cycle)",
         never=_never("recipe", "registry", "plugins", "api", "cli", "assemble", "devtools",
                      "training")),
    Rule("builtin", "the core's default plugins are plugins: no command-line or API internals",
         never=_never("cli", "api", "devtools"),
         # `ganframe new-plugin` is the command-line face of the scaffold: it may import
         # devtools, inside its command function only (listing commands stays cheap).
         exempt=(("builtin.authoring", "devtools", "function"),
                 # `ganframe fid` measures a checkpoint's samples: it loads the checkpoint
                 # through the API, inside its command function only.
                 ("builtin.fid_command", "api", "function"))),
    *(
        Rule(name, "file formats and processes know nothing of recipes, plugins or the loop",
             never=_never("api", "cli", "recipe", "registry", "plugins", "loop", "assemble",
                          "training", "devtools"))
        for name in ("checkpoint", "fileio", "safetensors_write", "distributed", "syncbn",
                     "device", "layers", "augment")
    ),
    Rule("", "devtools document and template the core; the core never needs them",
         never=_never("devtools"),
         exempt=(("devtools", "devtools", "any"), ("builtin.authoring", "devtools", "function"))),
)

#: Rule breaks that exist today in modules other people are rewriting in this change:
#: (importer, imported, kind) -> what has to happen. Tighten by deleting entries.
KNOWN_VIOLATIONS: dict[tuple[str, str, str], str] = {}

#: Modules of the planned layout that may not exist yet while it is being built.
PLANNED = frozenset({"loop", "assemble", "run_record"})

#: Modules that ``ganframe --help``, ``list-plugins`` and ``validate`` import: no torch at
#: module level (the builtin hookimpl modules are added below).
TORCH_FREE = ("", "version", "errors", "fileio", "hookspecs", "registry", "plugins", "recipe")


# -- reading the source -------------------------------------------------------------------


@dataclass(frozen=True)
class Import:
    importer: str  # relative to ganframe ("builtin.toy"; "" for the package __init__)
    target: str  # absolute dotted name of the imported module ("ganframe.api", "torch")
    names: tuple[str, ...]  # the names a from-import takes
    kind: str  # "module", "function" or "type_checking"
    line: int

    def where(self) -> str:
        return f"{_path_of(self.importer)}:{self.line}"


def _rel(dotted: str) -> str:
    return "" if dotted == "ganframe" else dotted.removeprefix("ganframe.")


def _path_of(rel: str) -> str:
    return str((Path("ganframe") / rel.replace(".", "/")) if rel else Path("ganframe"))


def _module_name(path: Path, root: Path) -> str:
    parts = list(path.relative_to(root).with_suffix("").parts)
    if parts[-1] == "__init__":
        parts.pop()
    return ".".join(parts)


@cache
def source_modules() -> dict[str, Path]:
    """Every ganframe module by absolute dotted name."""
    return {
        _module_name(p, ROOT): p
        for p in sorted(PACKAGE.rglob("*.py"))
        if "__pycache__" not in p.parts
    }


def _is_package(dotted: str) -> bool:
    path = source_modules().get(dotted)
    return path is not None and path.name == "__init__.py"


def _is_type_checking(test: ast.expr) -> bool:
    return (isinstance(test, ast.Name) and test.id == "TYPE_CHECKING") or (
        isinstance(test, ast.Attribute) and test.attr == "TYPE_CHECKING"
    )


def _walk(tree: ast.AST) -> Iterator[tuple[ast.AST, str]]:
    """Every node with the kind of place it is in: module level, a function, TYPE_CHECKING."""

    def visit(node: ast.AST, kind: str) -> Iterator[tuple[ast.AST, str]]:
        for child in ast.iter_child_nodes(node):
            child_kind = kind
            if isinstance(child, ast.FunctionDef | ast.AsyncFunctionDef | ast.Lambda):
                child_kind = "function"
            yield child, child_kind
            if isinstance(child, ast.If) and _is_type_checking(child.test) and kind == "module":
                for stmt in child.body:
                    yield stmt, "type_checking"
                    yield from visit(stmt, "type_checking")
                for stmt in child.orelse:
                    yield stmt, kind
                    yield from visit(stmt, kind)
                continue
            yield from visit(child, child_kind)

    yield from visit(tree, "module")


@cache
def imports_of(dotted: str) -> tuple[Import, ...]:
    path = source_modules()[dotted]
    tree = ast.parse(path.read_text(encoding="utf-8"), filename=str(path))
    package = dotted if _is_package(dotted) else dotted.rpartition(".")[0]
    found = []
    for node, kind in _walk(tree):
        if isinstance(node, ast.Import):
            for alias in node.names:
                found.append(Import(_rel(dotted), alias.name, (), kind, node.lineno))
        elif isinstance(node, ast.ImportFrom):
            if node.level:
                base = package.split(".")
                base = base[: len(base) - (node.level - 1)]
                module = ".".join([*base, node.module] if node.module else base)
            else:
                module = node.module or ""
            names = tuple(a.name for a in node.names)
            # `from ganframe import api` imports the module ganframe.api, not the package
            subs = [f"{module}.{n}" for n in names if f"{module}.{n}" in source_modules()]
            rest = tuple(n for n in names if f"{module}.{n}" not in source_modules())
            for sub in subs:
                found.append(Import(_rel(dotted), sub, (), kind, node.lineno))
            if rest or not subs:
                found.append(Import(_rel(dotted), module, rest, kind, node.lineno))
    return tuple(found)


def all_imports() -> Iterator[Import]:
    for dotted in source_modules():
        yield from imports_of(dotted)


def _matches(rel: str, prefix: str) -> bool:
    return prefix == "" or rel == prefix or rel.startswith(prefix + ".")


def _exempt(rule: Rule, imp: Import) -> bool:
    target = _rel(imp.target)
    return any(
        _matches(imp.importer, who) and _matches(target, what) and kind in ("any", imp.kind)
        for who, what, kind in rule.exempt
    )


def violations(imports: Iterable[Import] | None = None) -> list[tuple[Import, Rule]]:
    """Each import of ``imports`` (default: the whole source) that breaks a rule."""
    found = []
    for imp in all_imports() if imports is None else imports:
        if not (imp.target == "ganframe" or imp.target.startswith("ganframe.")):
            continue
        target = _rel(imp.target)
        if target == imp.importer:
            continue
        for rule in RULES:
            if not _matches(imp.importer, rule.prefix) or imp.kind not in rule.kinds:
                continue
            if _exempt(rule, imp):
                continue
            if rule.only is not None:
                bad = target == "" or not any(_matches(target, ok) for ok in rule.only if ok)
            else:
                bad = any(_matches(target, no) for no in rule.never if no)
            if bad:
                found.append((imp, rule))
    return found


def _key(imp: Import) -> tuple[str, str, str]:
    return (imp.importer, _rel(imp.target), imp.kind)


# -- the layer rules ----------------------------------------------------------------------


def test_the_source_is_found_and_parsed() -> None:
    names = {_rel(m) for m in source_modules()}
    assert {"", "errors", "version", "fileio", "plugins", "cli", "devtools.docgen"} <= names
    # sanity of the collector: a known lazy import and a known TYPE_CHECKING import
    kinds = {(_rel(i.target), i.kind) for i in imports_of("ganframe")}
    assert ("api", "function") in kinds and ("api", "type_checking") in kinds


def test_every_rule_names_modules_that_exist_or_are_planned() -> None:
    names = {_rel(m) for m in source_modules()}

    def known(prefix: str) -> bool:
        return any(_matches(n, prefix) for n in names) or prefix.split(".")[0] in PLANNED

    for rule in RULES:
        named = [rule.prefix, *rule.never, *(rule.only or ()),
                 *(n for who, what, _ in rule.exempt for n in (who, what))]
        unknown = [n for n in named if n and not known(n)]
        assert not unknown, f"rule for {rule.prefix!r} names unknown modules {unknown}"


def test_no_lower_layer_imports_a_higher_one() -> None:
    problems = [
        f"{imp.where()}: {_path_of(imp.importer)} imports ganframe.{_rel(imp.target)} "
        f"({imp.kind} level); rule for {rule.prefix or 'every module'!r}: {rule.why}"
        for imp, rule in violations()
        if _key(imp) not in KNOWN_VIOLATIONS
    ]
    assert not problems, "layer rules broken:\n" + "\n".join(sorted(set(problems)))


@pytest.mark.parametrize(
    ("importer", "target", "kind", "broken"),
    [
        ("plugins", "ganframe", "function", True),  # the old plugins -> __init__ -> api cycle
        ("plugins", "ganframe.builtin.toy_plugin", "function", True),  # by name string only
        ("plugins", "ganframe.version", "module", False),
        ("loop.trainer", "ganframe.recipe", "function", True),
        ("loop.trainer", "ganframe.registry", "type_checking", True),
        ("loop.trainer", "ganframe.checkpoint", "module", False),
        ("builtin.authoring", "ganframe.devtools.scaffold", "function", False),
        ("builtin.authoring", "ganframe.devtools.scaffold", "module", True),
        ("builtin.authoring", "ganframe.cli", "function", True),
        ("builtin.toy", "ganframe.devtools", "function", True),
        ("api", "ganframe.devtools.docgen", "function", True),
        ("devtools.docgen", "ganframe.plugins", "module", False),
        ("components", "ganframe.registry", "type_checking", True),
        ("checkpoint", "ganframe.fileio", "module", False),
        ("fileio", "ganframe.checkpoint", "function", True),
    ],
)
def test_the_rules_catch_what_they_should(
    importer: str, target: str, kind: str, broken: bool
) -> None:
    imp = Import(importer, target, (), kind, 1)
    assert bool(violations([imp])) is broken


def test_known_violations_are_still_real() -> None:
    """An entry of KNOWN_VIOLATIONS that no longer happens must go, so the rule tightens."""
    current = {_key(imp) for imp, _ in violations()}
    stale = sorted(set(KNOWN_VIOLATIONS) - current)
    assert not stale, f"fixed, delete from KNOWN_VIOLATIONS in {__file__}: {stale}"


def test_lower_layers_import_no_torch_at_module_level() -> None:
    # Listing plugins and validating recipes must not pay for torch, so these modules and
    # the builtin hookimpl modules import it (and numpy) inside functions only.
    modules = [*TORCH_FREE]
    modules += [_rel(m) for m in source_modules() if m.startswith("ganframe.builtin.")
                and m.endswith("_plugin")]
    heavy = ("torch", "numpy", "safetensors", "PIL")
    problems = [
        f"{imp.where()}: imports {imp.target} at module level"
        for rel in modules
        if f"ganframe.{rel}".rstrip(".") in source_modules()
        for imp in imports_of(f"ganframe.{rel}".rstrip("."))
        if imp.kind == "module" and imp.target.split(".")[0] in heavy
    ]
    assert not problems, "\n".join(problems)


# -- private names ------------------------------------------------------------------------


def _bindings(tree: ast.AST, dotted: str) -> dict[str, str]:
    """Local names bound to ganframe modules: ``import ganframe.x as y``, ``from ganframe
    import x``; ``import ganframe.x`` binds ``ganframe``."""
    package = dotted if _is_package(dotted) else dotted.rpartition(".")[0]
    bound: dict[str, str] = {}
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            for a in node.names:
                if a.name.split(".")[0] == "ganframe":
                    if a.asname:
                        bound[a.asname] = a.name
                    else:
                        bound["ganframe"] = "ganframe"
        elif isinstance(node, ast.ImportFrom):
            if node.level:
                base = package.split(".")
                base = base[: len(base) - (node.level - 1)]
                module = ".".join([*base, node.module] if node.module else base)
            else:
                module = node.module or ""
            for a in node.names:
                if f"{module}.{a.name}" in source_modules():
                    bound[a.asname or a.name] = f"{module}.{a.name}"
    return bound


def _dotted(node: ast.expr) -> list[str] | None:
    parts = []
    while isinstance(node, ast.Attribute):
        parts.append(node.attr)
        node = node.value
    if not isinstance(node, ast.Name):
        return None
    return [node.id, *reversed(parts)]


def _private(name: str) -> bool:
    return name.startswith("_") and not (name.startswith("__") and name.endswith("__"))


def private_reads(path: Path, dotted: str) -> list[str]:
    """``from ganframe.x import _y`` and ``x._y`` with ``x`` a ganframe module, in one file."""
    tree = ast.parse(path.read_text(encoding="utf-8"), filename=str(path))
    bound = _bindings(tree, dotted)
    where = path.relative_to(ROOT) if path.is_relative_to(ROOT) else path
    found = []
    for node in ast.walk(tree):
        if isinstance(node, ast.ImportFrom) and not node.level and node.module and (
            node.module == "ganframe" or node.module.startswith("ganframe.")
        ):
            found += [
                f"{where}:{node.lineno}: from {node.module} import {a.name}"
                for a in node.names
                if _private(a.name) and node.module != dotted
            ]
        elif isinstance(node, ast.Attribute) and _private(node.attr):
            chain = _dotted(node.value)
            if not chain or chain[0] not in bound:
                continue
            module = ".".join([bound[chain[0]], *chain[1:]])
            if module in source_modules() and module != dotted:
                found.append(f"{where}:{node.lineno}: {module}.{node.attr}")
    return found


def _first_party_files() -> Iterator[tuple[Path, str]]:
    for dotted, path in source_modules().items():
        yield path, dotted
    for package in PLUGIN_PACKAGES:
        for path in sorted(package.rglob("*.py")):
            yield path, _module_name(path, package.parent)


def test_no_module_reads_another_modules_private_names() -> None:
    problems = [p for path, dotted in _first_party_files() for p in private_reads(path, dotted)]
    assert not problems, (
        "private names read across modules (make them public or move the code):\n"
        + "\n".join(problems)
    )


def test_the_private_name_check_sees_both_forms(tmp_path: Path) -> None:
    src = tmp_path / "probe.py"
    src.write_text(
        "from ganframe.plugins import _HOST\n"
        "from ganframe import plugins\n"
        "import ganframe.checkpoint as ck\n"
        "x = plugins._HOST or ck._STEP_FILE or plugins.__name__ or plugins.get_host\n",
        encoding="utf-8",
    )
    found = private_reads(src, "probe")
    found = [f.split(": ", 1)[1] for f in found]
    assert sorted(found) == sorted([
        "from ganframe.plugins import _HOST",
        "ganframe.plugins._HOST",
        "ganframe.checkpoint._STEP_FILE",
    ])


# -- what importing really pulls in -------------------------------------------------------


@pytest.mark.parametrize(
    "code",
    [
        "import ganframe.cli",
        "import ganframe.plugins",
        "import ganframe.recipe",
        "from ganframe.plugins import load_plugins; load_plugins(autoload=False)",
        # with the installed plugins too: first-party plugins follow the lazy-import rule
        "from ganframe.plugins import load_plugins; load_plugins()",
    ],
)
def test_command_line_and_plugin_host_do_not_import_torch(code: str) -> None:
    check = (
        f"{code}\nimport sys\n"
        "heavy = sorted(m for m in ('torch', 'numpy') if m in sys.modules)\n"
        "assert not heavy, f'imported {heavy}'\n"
    )
    result = subprocess.run(
        [sys.executable, "-c", check], capture_output=True, text=True, cwd=ROOT, timeout=120
    )
    assert result.returncode == 0, result.stderr[-2000:]
