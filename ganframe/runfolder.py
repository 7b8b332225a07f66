"""The run folder: what a run writes, how it is named, protected and cleaned up.

Layout: ``recipe.toml`` (the fully resolved recipe), ``metrics.jsonl`` (one JSON object per
logged step), ``checkpoints/`` and ``samples/``, plus two hidden files of ganframe's own:

* ``.ganframe-run.json``, the **manifest**: every file and folder this folder's runs created.
  ``--force`` deletes only what it lists, and in ``checkpoints/`` and ``samples/`` only files
  named as ganframe names them; anything else in the folder is left alone. Whatever writes
  into a run folder (the jsonl logger, sample grids, checkpoints, a plugin's logger) says so
  with :func:`register`.
* ``.ganframe.lock``, held (``flock``) by the one process that writes the folder, with its
  pid and host inside, so a second run into the folder stops at once naming the first.

A run never silently reuses a folder that already holds a run: the user says ``--resume`` or
``--force``. A run that stops before its first checkpoint (an error, Ctrl-C, SIGTERM during
start-up, even SIGKILL) leaves nothing that blocks the same command: what it created is
removed on the way out, or, when the process could not clean up, by the next run.
See docs/security.md for the threat model these rules serve.
"""

from __future__ import annotations

import contextlib
import json
import os
import re
import socket
import stat
import tempfile
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from ganframe.errors import UserError
from ganframe.fileio import atomic_write

try:  # POSIX; elsewhere a run folder is not locked (documented in docs/security.md)
    import fcntl
except ImportError:  # pragma: no cover - Windows
    fcntl = None  # type: ignore[assignment]

__all__ = [
    "CHECKPOINTS",
    "LOCK_FILE",
    "MANIFEST_FILE",
    "METRICS_FILE",
    "RECIPE_FILE",
    "SAMPLES",
    "Manifest",
    "MetricsLog",
    "RunLock",
    "RunSession",
    "default_folder",
    "has_run",
    "is_own_run",
    "open_run",
    "register",
    "run_name_problem",
    "write_atomic",
]

RECIPE_FILE = "recipe.toml"
METRICS_FILE = "metrics.jsonl"
CHECKPOINTS = "checkpoints"
SAMPLES = "samples"
MANIFEST_FILE = ".ganframe-run.json"
LOCK_FILE = ".ganframe.lock"
RUNS_ROOT = Path("runs")
MAX_NAME_LENGTH = 100
_MANIFEST_VERSION = 1

#: What ganframe names its files inside the folders it owns: a file there that does not match
#: is not ganframe's, whatever a manifest says. Temporary siblings of atomic writes
#: (``.<name>.<12 hex>.tmp``, see :mod:`ganframe.fileio`) of such files are ganframe's too.
_OWNED_NAMES = {
    CHECKPOINTS: re.compile(r"(step-\d+|last)\.safetensors"),
    SAMPLES: re.compile(r"step-\d+\.[A-Za-z0-9]{1,16}"),
}
_TEMP_NAME = re.compile(r"\.(?P<name>.+)\.[0-9a-f]{12}\.tmp")
_CONTROL = re.compile("[\x00-\x1f\x7f-\x9f\u202a-\u202e\u2066-\u2069]")


def write_atomic(path: Path, data: bytes) -> None:
    """Replace a run-folder file (``recipe.toml``, a rewritten ``metrics.jsonl``) atomically,
    with the user's usual file modes: see :func:`ganframe.fileio.atomic_write`."""
    atomic_write(path, data, parents=True)
    register(path)


# -- names ---------------------------------------------------------------------------------


def run_name_problem(name: str) -> str | None:
    """Why ``name`` cannot name a run folder (``runs/<name>``), or None when it can.

    A recipe is shared text, and its ``name`` chooses where the run writes (and where
    ``--force`` deletes), so it must be one plain path component: no separators, no ``..``,
    nothing hidden, nothing that reads as an option, nothing a terminal interprets."""
    if not isinstance(name, str):
        return "it is not a string"
    if len(name) > MAX_NAME_LENGTH:
        return f"it is {len(name)} characters long (at most {MAX_NAME_LENGTH})"
    if _CONTROL.search(name):
        return "it contains a control character (a NUL byte, an escape sequence, a newline...)"
    if "/" in name or "\\" in name:
        return "it contains a path separator ('/' or '\\'); a run name is one folder name"
    if name in (".", ".."):
        return f"{name!r} names a folder that already exists"
    if name.startswith("."):
        return "it starts with '.' (a hidden folder)"
    if name.startswith("-"):
        return "it starts with '-' (reads as an option on a command line)"
    if name != name.strip():
        return "it starts or ends with white space"
    return None


def default_folder(name: str, source: str = "the recipe") -> Path:
    """``runs/<name>``, for a name that is one safe folder name (see :func:`run_name_problem`).

    Recipes are validated with the same rule, so this only refuses names that did not come
    from a validated ``name`` key (a recipe file's name, a name set from Python)."""
    problem = run_name_problem(name)
    if problem or not name:
        raise UserError(
            f"{source}: name {name!r} cannot name a run folder ({problem or 'it is empty'}). "
            "Set `name` in the recipe to a plain folder name (letters, digits, '-', '_'), "
            "or choose the run folder with --out."
        )
    return RUNS_ROOT / name


# -- the manifest --------------------------------------------------------------------------


def _abs(path: str | os.PathLike[str]) -> Path:
    return Path(os.path.abspath(path))


def _owned_file_name(folder: str, name: str) -> bool:
    """Whether ``name`` is a name ganframe gives files in its own ``folder`` (``checkpoints``,
    ``samples``), or a temporary sibling of one."""
    pattern = _OWNED_NAMES.get(folder)
    if pattern is None:
        return False
    temp = _TEMP_NAME.fullmatch(name)
    return bool(pattern.fullmatch(temp.group("name") if temp else name))


class Manifest:
    """The list of what ganframe created in a run folder (``.ganframe-run.json``).

    Entries are paths relative to the folder; a folder entry ends with ``/``. It also records
    the folder's identity (device and inode) when it was made, which tells a run folder made
    here from one copied in from elsewhere (see :func:`is_own_run`)."""

    def __init__(self, folder: Path, entries: list[str] | None = None,
                 identity: list[int] | None = None) -> None:
        self.folder = Path(folder)
        self.entries: list[str] = list(entries or [])
        self.identity = identity
        self.saved = False

    @property
    def path(self) -> Path:
        return self.folder / MANIFEST_FILE

    @classmethod
    def read(cls, folder: Path) -> Manifest | None:
        """The folder's manifest; None when it has none or it is not one ganframe wrote."""
        path = Path(folder) / MANIFEST_FILE
        try:
            if not path.is_file() or path.stat().st_size > 16 * 1024 * 1024:
                return None
            doc = json.loads(path.read_text(encoding="utf-8"))
        except (OSError, UnicodeDecodeError, json.JSONDecodeError, RecursionError):
            return None
        if not isinstance(doc, dict) or doc.get("ganframe_run") != _MANIFEST_VERSION:
            return None
        entries = doc.get("entries")
        if not isinstance(entries, list) or not all(isinstance(e, str) for e in entries):
            return None
        identity = doc.get("folder")
        if not (isinstance(identity, list) and len(identity) == 2
                and all(isinstance(i, int) for i in identity)):
            identity = None
        found = cls(Path(folder), entries, identity)
        found.saved = True
        return found

    def relative(self, path: str | os.PathLike[str]) -> str | None:
        """``path`` relative to the folder (POSIX form), or None when it lies outside."""
        try:
            rel = _abs(path).relative_to(_abs(self.folder))
        except ValueError:
            return None
        text = rel.as_posix()
        return None if text in ("", ".") else text

    def covers(self, rel: str) -> bool:
        """Listed, or a file ganframe names in one of its listed folders."""
        if rel in self.entries or f"{rel}/" in self.entries:
            return True
        parent, _, name = rel.rpartition("/")
        return f"{parent}/" in self.entries and _owned_file_name(parent, name)

    def add(self, path: str | os.PathLike[str], *, folder: bool = False,
            save: bool = True) -> None:
        """Record that this run created ``path`` (a file, or with ``folder`` a folder)."""
        rel = self.relative(path)
        if rel is None or rel in (MANIFEST_FILE, LOCK_FILE):
            return
        entry = f"{rel}/" if folder else rel
        if entry not in self.entries and (folder or not self.covers(rel)):
            self.entries.append(entry)
            self.saved = False
        if save and not self.saved:
            self.save()

    def save(self) -> None:
        if self.identity is None:
            st = os.stat(self.folder)
            self.identity = [st.st_dev, st.st_ino]
        doc = {"ganframe_run": _MANIFEST_VERSION, "folder": self.identity,
               "entries": self.entries}
        atomic_write(self.path, (json.dumps(doc, indent=1) + "\n").encode())
        self.saved = True

    def _target(self, entry: str) -> Path | None:
        """The path an entry names, if it is a plain relative path whose folder lies inside
        the run folder (a manifest is a file like any other: it may have been edited)."""
        parts = entry.rstrip("/").split("/")
        if entry.startswith("/") or "\\" in entry or any(p in ("", ".", "..") for p in parts):
            return None
        target = self.folder.joinpath(*parts)
        try:
            inside = target.parent.resolve().is_relative_to(self.folder.resolve())
        except OSError:
            return None
        return target if inside else None

    def remove_listed(self) -> list[str]:
        """Delete what the manifest lists and that still looks like ganframe's; returns the
        entries left in place. Folders go last, and only when they are empty."""
        left: list[str] = []
        folders = [e for e in self.entries if e.endswith("/")]
        for entry in [e for e in self.entries if not e.endswith("/")]:
            target = self._target(entry)
            parent, _, name = entry.rpartition("/")
            # in ganframe's own folders, only names ganframe gives its files
            ours = parent not in _OWNED_NAMES or _owned_file_name(parent, name)
            if target is None or not ours or not _remove_file(target):
                left.append(entry)
        for entry in sorted(folders, key=len, reverse=True):
            target = self._target(entry)
            if target is None or not _remove_owned_folder(target, entry.rstrip("/")):
                left.append(entry)
        return left


def _remove_file(target: Path) -> bool:
    """Remove a listed file (a link itself, never what it points at); a folder standing
    where a file was listed is not ours. True when nothing is left there."""
    try:
        if target.is_symlink() or target.is_file():
            target.unlink()
        return not os.path.lexists(target)
    except OSError:
        return False


def _remove_owned_folder(target: Path, rel: str) -> bool:
    """Remove the files ganframe names in a listed folder, then the folder if empty."""
    if target.is_symlink() or not target.is_dir():
        return not os.path.lexists(target)
    name = rel.rpartition("/")[2]
    for entry in list(target.iterdir()):
        if _owned_file_name(name, entry.name) and (entry.is_file() or entry.is_symlink()):
            with contextlib.suppress(OSError):
                entry.unlink()
    try:
        target.rmdir()
    except OSError:
        return False
    return True


#: Manifests of the run folders this process is writing, by absolute folder path.
_ACTIVE: dict[Path, Manifest] = {}


def register(path: str | os.PathLike[str], *, folder: bool = False) -> None:
    """Record that the running process created ``path`` in the run folder it writes.

    Loggers, sample writers and checkpoints call this for every file they create in a run
    folder, so that ``--force`` and the clean-up of a failed start remove it. A path outside
    every run folder this process writes (or in another process of a multi-process run) is
    ignored, so callers need not check."""
    where = _abs(path)
    for root, manifest in _ACTIVE.items():
        if where.is_relative_to(root):
            manifest.add(where, folder=folder)
            return


def is_own_run(checkpoint: str | os.PathLike[str]) -> bool:
    """Whether ``checkpoint`` lies in ``<run>/checkpoints/`` of a run folder that ganframe
    created here: its manifest names the folder it was written in (device and inode), so a
    folder copied or unpacked from elsewhere is not one, even with its manifest."""
    path = _abs(checkpoint)
    if path.parent.name != CHECKPOINTS:
        return False
    run = path.parent.parent
    manifest = Manifest.read(run)
    if manifest is None or manifest.identity is None:
        return False
    try:
        st = os.stat(run)
    except OSError:
        return False
    return manifest.identity == [st.st_dev, st.st_ino]


# -- the lock ------------------------------------------------------------------------------


class RunLock:
    """An exclusive ``flock`` on ``<run>/.ganframe.lock`` for the whole run.

    The kernel drops a ``flock`` when its process dies, however it dies, so a lock file that
    can be locked is stale: it is taken over, and :meth:`acquire` says whose it was. The file
    holds the holder's pid and host for the message a second writer gets."""

    def __init__(self, folder: Path) -> None:
        self.path = Path(folder) / LOCK_FILE
        self.fd: int | None = None

    def acquire(self) -> str | None:
        """Take the lock or raise UserError naming its holder; returns a note when a stale
        lock of a process that is gone was taken over."""
        if fcntl is None:  # pragma: no cover - no flock on this platform
            return None
        while True:
            fd = self._open()
            try:
                fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
            except OSError:
                holder = _describe(_read_fd(fd))
                os.close(fd)
                raise UserError(
                    f"{self.path.parent}: another ganframe process ({holder}) is writing to this "
                    "run folder. Wait for it to finish or stop it (it saves a checkpoint on "
                    "Ctrl-C or SIGTERM), or choose another --out; two runs in one folder "
                    "would overwrite each other's checkpoints and logs."
                ) from None
            # the holder before us may have removed the file after we opened it: lock the
            # file that has the name, not a removed one
            try:
                same = os.stat(self.path).st_ino == os.fstat(fd).st_ino
            except FileNotFoundError:
                same = False
            if same:
                break
            os.close(fd)
        previous = _read_fd(fd)
        self.fd = fd
        os.ftruncate(fd, 0)
        mine = {"pid": os.getpid(), "host": socket.gethostname()}
        os.pwrite(fd, (json.dumps(mine) + "\n").encode(), 0)
        if previous.strip():
            return (f"took over the lock of a ganframe process that is gone "
                    f"({_describe(previous)}); it stopped without cleaning up")
        return None

    def _open(self) -> int:
        """The lock file, opened without following a link or blocking on a FIFO (a copied
        run folder may hold anything under its name); it must be a regular file."""
        flags = os.O_RDWR | os.O_CREAT | os.O_NONBLOCK
        flags |= getattr(os, "O_NOFOLLOW", 0) | getattr(os, "O_CLOEXEC", 0)
        try:
            fd = os.open(self.path, flags, 0o666)
        except OSError as exc:
            raise UserError(f"{self.path}: cannot use it as the run folder's lock file "
                            f"({exc.strerror}); remove it.") from None
        if not stat.S_ISREG(os.fstat(fd).st_mode):
            os.close(fd)
            raise UserError(f"{self.path}: is not a regular file, so it cannot be the run "
                            "folder's lock file; remove it.")
        return fd

    def release(self) -> None:
        """Remove the lock file, then drop the lock (in this order, see :meth:`acquire`)."""
        if self.fd is None:
            return
        with contextlib.suppress(OSError):
            self.path.unlink()
        with contextlib.suppress(OSError):
            os.close(self.fd)
        self.fd = None


def _read_fd(fd: int) -> str:
    try:
        return os.pread(fd, 4096, 0).decode("utf-8", "replace")
    except OSError:
        return ""


def _describe(text: str) -> str:
    try:
        doc = json.loads(text)
    except (json.JSONDecodeError, RecursionError):
        doc = None
    if not isinstance(doc, dict):
        return "holder unknown"
    pid, host = doc.get("pid"), doc.get("host")
    pid = pid if isinstance(pid, int) else "?"
    host = _CONTROL.sub("?", host)[:255] if isinstance(host, str) else "?"
    return f"pid {pid} on host {host}"


# -- opening a run folder ------------------------------------------------------------------


def _checkpoint_files(out: Path) -> list[Path]:
    folder = out / CHECKPOINTS
    if not folder.is_dir():
        return []
    return [p for p in folder.iterdir() if _OWNED_NAMES[CHECKPOINTS].fullmatch(p.name)]


def has_run(out: Path) -> bool:
    """Whether ``out`` holds a run that a new run must not silently replace.

    A checkpoint makes a run. Without one, a folder whose manifest lists its run files
    holds only what a run that stopped before its first checkpoint left, which the next
    run clears; without a manifest (an older ganframe, or not ganframe at all),
    ``recipe.toml``, ``metrics.jsonl`` or a non-empty ``checkpoints/`` count as a run."""
    if _checkpoint_files(out):
        return True
    present = [n for n in (RECIPE_FILE, METRICS_FILE) if os.path.lexists(out / n)]
    manifest = Manifest.read(out)
    if manifest is None:
        folder = out / CHECKPOINTS
        return bool(present) or (folder.is_dir() and any(folder.iterdir()))
    return any(not manifest.covers(n) for n in present)


@dataclass
class RunSession:
    """A run folder opened for writing: its lock is held and its manifest is active."""

    out: Path
    lock: RunLock
    manifest: Manifest
    created: bool  #: this session made the folder itself
    fresh: bool  #: the folder held no checkpoint when the run started
    notes: list[str] = field(default_factory=list)

    def has_checkpoint(self) -> bool:
        return bool(_checkpoint_files(self.out))

    def discard(self) -> None:
        """Remove what this run created (a run that stopped before its first checkpoint),
        so the same command works again; the user's own files stay."""
        self.manifest.remove_listed()
        with contextlib.suppress(OSError):
            self.manifest.path.unlink()
        self.close()
        with contextlib.suppress(OSError):
            self.out.rmdir()  # only if empty: the folder may hold the user's own files

    def close(self) -> None:
        _ACTIVE.pop(_abs(self.out), None)
        self.lock.release()


def open_run(out: Path, *, resume: bool, force: bool) -> RunSession:
    """Check that ``out`` can hold this run, lock it, and start its manifest; with
    ``force``, first delete what the manifest says an earlier run wrote. Nothing of a run
    that is there is changed before the lock is held."""
    out = Path(out)
    if out.exists() and not out.is_dir():
        raise UserError(f"{out}: output path exists and is not a folder; choose another --out.")
    created = not os.path.lexists(out)
    try:
        out.mkdir(parents=True, exist_ok=True)
        probe = tempfile.NamedTemporaryFile(dir=out, prefix=".write-test.", delete=True)
        probe.close()
    except OSError as exc:
        raise UserError(
            f"{out}: cannot write to the output folder ({exc.strerror}); choose another --out "
            "or fix its permissions."
        ) from None
    lock = RunLock(out)
    try:
        note = lock.acquire()
        session = _start(out, lock, created, resume=resume, force=force)
    except BaseException:
        lock.release()
        if created:
            with contextlib.suppress(OSError):
                out.rmdir()
        raise
    if note:
        session.notes.insert(0, note)
    return session


def _start(out: Path, lock: RunLock, created: bool, *, resume: bool,
           force: bool) -> RunSession:
    check_layout(out)
    _refuse_links(out)
    notes: list[str] = []
    manifest = Manifest.read(out)
    if has_run(out) and not resume:
        if not force:
            raise UserError(
                f"{out}: this folder already holds a run. Use --resume to continue it, --force "
                "to start over (deletes its checkpoints, samples and metrics), or --out to "
                "choose another folder."
            )
        _force_clear(out, manifest)
    elif manifest is not None and not resume and any(
        os.path.lexists(out / e.rstrip("/")) for e in manifest.entries if not e.endswith("/")
    ):
        left = manifest.remove_listed()
        notes.append("removed what an earlier run left in this folder (it stopped before its "
                     "first checkpoint)" + (f"; kept {', '.join(left)}" if left else ""))
    if manifest is None or not resume:
        manifest = Manifest(out)  # a new run: made here, whatever the folder held before
    for name in (CHECKPOINTS, SAMPLES):
        (out / name).mkdir(exist_ok=True)
        manifest.add(out / name, folder=True, save=not resume)
    session = RunSession(out, lock, manifest, created, fresh=not _checkpoint_files(out),
                         notes=notes)
    _ACTIVE[_abs(out)] = manifest
    return session


def _refuse_links(out: Path) -> None:
    """A run writes only inside its folder, so never through a symbolic link there: in a run
    folder copied or unpacked from elsewhere, ``checkpoints`` could point at any folder of
    yours (and rotation would delete its ``step-*.safetensors``), ``metrics.jsonl`` at any
    file (and rows would be appended to it)."""
    for name in (CHECKPOINTS, SAMPLES, METRICS_FILE):
        if (out / name).is_symlink():
            raise UserError(
                f"{out / name}: is a symbolic link (to {os.readlink(out / name)}); a run writes "
                "only inside its run folder, never through links. Replace it with a real "
                f"{'folder' if name != METRICS_FILE else 'file'}, or put the whole run folder "
                "where you want it with --out."
            )


def check_layout(out: Path) -> None:
    """The run folder's own names are what a run needs (folders, regular files) before
    anything is written: a ``checkpoints`` file, a ``metrics.jsonl`` folder or FIFO (which
    would block the first log row forever) is an error naming it."""
    folders = [out / CHECKPOINTS, out / SAMPLES]
    files = [out / RECIPE_FILE, out / METRICS_FILE]
    if (out / CHECKPOINTS).is_dir():
        files += [p for p in (out / CHECKPOINTS).iterdir()
                  if p.name.endswith(".safetensors") and not p.name.startswith(".")]
    for path, want in [*((f, "folder") for f in folders), *((f, "regular file") for f in files)]:
        try:
            st = os.stat(path)
        except FileNotFoundError:
            continue
        except OSError as exc:
            raise UserError(f"{path}: cannot use it ({exc.strerror}); fix it or choose another "
                            "--out.") from None
        ok = stat.S_ISDIR(st.st_mode) if want == "folder" else stat.S_ISREG(st.st_mode)
        if not ok:
            raise UserError(
                f"{path}: a run keeps a {want} there, but this is {_kind(st.st_mode)}; move it "
                "away or choose another --out."
            )


def _kind(mode: int) -> str:
    for test, name in ((stat.S_ISDIR, "a folder"), (stat.S_ISFIFO, "a FIFO (named pipe)"),
                       (stat.S_ISSOCK, "a socket"), (stat.S_ISCHR, "a character device"),
                       (stat.S_ISBLK, "a block device"), (stat.S_ISREG, "a regular file")):
        if test(mode):
            return name
    return "not a regular file"


def _force_clear(out: Path, manifest: Manifest | None) -> None:
    """``--force``: delete what ganframe can prove it wrote, refuse when it cannot."""
    if manifest is None:
        raise UserError(
            f"{out}: --force deletes only what ganframe can prove it wrote (the files listed "
            f"in its {MANIFEST_FILE}), and this folder has no such list: it was written by an "
            "older ganframe, or not by ganframe. If its recipe.toml, metrics.jsonl, "
            "checkpoints/ and samples/ are yours to delete, delete them by hand; or choose "
            "another --out."
        )
    manifest.remove_listed()
    with contextlib.suppress(OSError):
        manifest.path.unlink()
    left = [f"{CHECKPOINTS}/{p.name}" for p in _checkpoint_files(out)]
    left += [n for n in (RECIPE_FILE, METRICS_FILE) if os.path.lexists(out / n)]
    if left:
        raise UserError(
            f"{out}: --force removed what this folder's manifest lists, but {', '.join(left)} "
            "remain: the manifest does not list them, or they no longer look like files "
            "ganframe wrote. Delete them by hand if they are yours to delete, or choose "
            "another --out."
        )


def prepare(out: Path, *, resume: bool, force: bool) -> None:
    """Check and prepare ``out`` without keeping it open (see :func:`open_run`)."""
    open_run(out, resume=resume, force=force).close()


def discard(out: Path) -> None:
    """Remove what the manifest of ``out`` lists (a run that failed before its first
    checkpoint), and the folder itself when nothing else is left in it."""
    manifest = Manifest.read(out)
    if manifest is not None:
        manifest.remove_listed()
        with contextlib.suppress(OSError):
            manifest.path.unlink()
    with contextlib.suppress(OSError):
        Path(out).rmdir()


class MetricsLog:
    """Appends JSON rows; on resume, rows past the checkpoint's step are dropped so that
    a resumed run's log reads as if it had never stopped."""

    def __init__(self, path: Path, *, enabled: bool = True) -> None:
        self.path = path
        self.enabled = enabled
        self.rows: list[dict[str, Any]] = []

    def truncate_after(self, step: int) -> dict[str, Any] | None:
        """Drop the rows past ``step``; returns the last row kept (None: none), from which a
        resumed run's clock continues (``elapsed_s``)."""
        if not self.enabled or not self.path.exists():
            return None
        kept, last = [], None
        for line in self.path.read_text(encoding="utf-8").splitlines():
            try:
                row = json.loads(line)
            except json.JSONDecodeError:
                continue  # a line cut short by a crash
            if isinstance(row, dict) and int(row.get("step", 0)) <= step:
                kept.append(line)
                last = row
        write_atomic(self.path, "".join(f"{line}\n" for line in kept).encode())
        return last

    def write(self, row: dict[str, Any]) -> None:
        self.rows.append(row)
        if not self.enabled:
            return
        # never through a link: the row goes into the run folder or nowhere
        flags = os.O_WRONLY | os.O_APPEND | os.O_CREAT | getattr(os, "O_NOFOLLOW", 0)
        with os.fdopen(os.open(self.path, flags, 0o666), "a", encoding="utf-8") as fh:
            fh.write(json.dumps(row, ensure_ascii=False) + "\n")
            fh.flush()
