"""The one exception type for mistakes a user can fix.

Everything raised as :class:`UserError` is printed by the CLI as a single paragraph and exits
with status 2; any other exception is a bug in ganframe or a plugin (exit 1).
"""

from __future__ import annotations


class UserError(Exception):
    """A problem with the user's input: recipe, data, checkpoint, output folder, plugin choice.

    The message must say what is wrong, where (file and key or line) and, when it helps,
    what to do about it.
    """
