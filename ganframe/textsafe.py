"""Text from recipes, checkpoints and file names, made safe to show on a terminal.

A shared recipe or checkpoint chooses names (the run's ``name``, phase names, metric keys) and
the file system chooses paths; ganframe prints them. Printed raw, an ESC sequence in a name
could move the cursor, recolour or hide the rest of a message, or set the terminal's title,
and a rich markup tag (``[/x]``) crashed the printing itself. Every user-derived string goes
through :func:`printable` and is printed with markup off (``markup=False, highlight=False``).

This module imports only the standard library (the command line, the progress display and
plugin commands use it; none of them may pull in torch for it).
"""

from __future__ import annotations

import re

__all__ = ["printable"]

#: C0 controls but tab and newline, DEL, C1 controls, and the Unicode bidirectional
#: overrides and isolates (which reorder what the terminal shows, "Trojan source").
_UNPRINTABLE = re.compile("[\x00-\x08\x0b-\x1f\x7f-\x9f\u202a-\u202e\u2066-\u2069]")


def _escape(match: re.Match[str]) -> str:
    code = ord(match.group())
    return f"\\x{code:02x}" if code < 0x100 else f"\\u{code:04x}"


def printable(text: object) -> str:
    """``str(text)`` with every control character but newline and tab written as ``\\xNN``
    (bidirectional controls as ``\\uNNNN``), so it shows what it is and changes nothing."""
    return _UNPRINTABLE.sub(_escape, str(text))
