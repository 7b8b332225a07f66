"""The one way ganframe replaces a file: atomically, durably, with ordinary file modes.

Checkpoints, the run folder (``recipe.toml``, a rewritten ``metrics.jsonl``) and sample files
all go through :func:`atomic_write`, so they share one set of guarantees:

* the final name holds either the old file or the complete new one, never a prefix: the data
  goes to a temporary sibling (same folder, so same file system and an atomic rename), is
  flushed and fsynced, then moved over the final name with :func:`os.replace`;
* the rename itself survives a power cut: the folder is fsynced after it (where the platform
  allows; failures of that last step are ignored, the file is already complete);
* the file gets the modes any other file of the user gets: the temporary file is created
  with ``os.open(..., 0o666)`` so the umask applies (``0o644`` under the usual ``022``), not
  ``mkstemp``'s private ``0o600``, which made run records unreadable to colleagues;
* a failed write removes its temporary file and raises an :class:`OSError` that names the
  final path, which is the name the user knows.

Temporary names start with ``.`` and end with ``.tmp`` (:data:`TEMP_GLOB`): hidden from
``ls`` and never matched by a scan for real files, and a crash's leftovers can be found and
removed (:meth:`ganframe.checkpoint.CheckpointDir.remove_stale_temps`).

This module sits at the bottom of the layers: it imports only the standard library.
"""

from __future__ import annotations

import os
import secrets
from collections.abc import Callable
from pathlib import Path
from typing import BinaryIO

__all__ = ["TEMP_GLOB", "TEMP_PREFIX", "TEMP_SUFFIX", "atomic_write", "fsync_dir", "is_temp_name"]

TEMP_PREFIX = "."
TEMP_SUFFIX = ".tmp"
#: Matches every temporary file :func:`atomic_write` creates in a folder (``folder.glob``).
TEMP_GLOB = f"{TEMP_PREFIX}*{TEMP_SUFFIX}"

#: What :func:`atomic_write` writes: the bytes themselves, or a function that writes them to
#: the open binary file it is given (for data streamed from elsewhere, e.g. tensor memory).
Content = bytes | bytearray | memoryview | Callable[[BinaryIO], object]

_FLAGS = (
    os.O_WRONLY | os.O_CREAT | os.O_EXCL | getattr(os, "O_BINARY", 0) | getattr(os, "O_CLOEXEC", 0)
)


def is_temp_name(name: str) -> bool:
    """Whether a file name is one :func:`atomic_write` uses for its temporary files."""
    return name.startswith(TEMP_PREFIX) and name.endswith(TEMP_SUFFIX)


def atomic_write(path: str | os.PathLike[str], content: Content, *, parents: bool = False) -> Path:
    """Replace ``path`` with ``content`` so that it is either the old file or the whole new one.

    ``parents=True`` creates missing parent folders first (sample files, the run folder);
    without it a missing folder is an error, as for :func:`open`. Returns ``path``.
    """
    path = Path(path)
    if isinstance(content, bytes | bytearray | memoryview):
        data = content

        def write(f: BinaryIO) -> object:
            return f.write(data)

    elif callable(content):
        write = content
    else:
        raise TypeError(
            f"atomic_write({str(path)!r}, ...) takes bytes or a function that writes to a "
            f"binary file, not {type(content).__name__}"
        )
    folder = path.parent
    tmp: Path | None = None
    try:
        if parents:
            folder.mkdir(parents=True, exist_ok=True)
        tmp, fd = _create_temp(folder, path.name)
        with os.fdopen(fd, "wb") as f:
            write(f)
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, path)
    except OSError as exc:  # e.g. a full disk: say which file could not be written
        if tmp is not None:
            tmp.unlink(missing_ok=True)
        raise OSError(exc.errno, exc.strerror or str(exc), str(path)) from exc
    except BaseException:
        if tmp is not None:
            tmp.unlink(missing_ok=True)
        raise
    fsync_dir(folder)
    return path


def _create_temp(folder: Path, name: str) -> tuple[Path, int]:
    """A new temporary sibling of ``name``, opened for writing; never an existing file."""
    while True:
        tmp = folder / f"{TEMP_PREFIX}{name}.{secrets.token_hex(6)}{TEMP_SUFFIX}"
        try:
            return tmp, os.open(tmp, _FLAGS, 0o666)
        except FileExistsError:
            continue


def fsync_dir(folder: str | os.PathLike[str]) -> None:
    """Make renames and new names in ``folder`` durable; not possible (nor needed) on Windows.

    Best effort: some file systems refuse to fsync a folder, and by the time this runs the
    file itself is complete and in place.
    """
    if os.name == "nt":
        return
    try:
        fd = os.open(folder, os.O_RDONLY)
    except OSError:
        return
    try:
        os.fsync(fd)
    except OSError:
        pass
    finally:
        os.close(fd)
