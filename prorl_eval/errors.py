"""User-facing errors.

`UserError` marks input the user can fix (a bad option, a missing folder, a malformed file).
The CLIs print its message as one line and exit with code 2, without a traceback; anything
else is a bug and keeps its traceback.
"""

from __future__ import annotations


class UserError(Exception):
    """A problem with the user's input: the message names the problem and the fix, on one line."""

    def __init__(self, message: str) -> None:
        super().__init__(" ".join(message.split()))
