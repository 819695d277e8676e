"""User-facing errors.

`UserError` marks input the user can fix (a bad option, a missing folder, a malformed file).
The CLIs print its message as one line and exit with code 2, without a traceback; anything
else is a bug and keeps its traceback.
"""

from __future__ import annotations

import warnings
from collections.abc import Callable


class UserError(Exception):
    """A problem with the user's input: the message names the problem and the fix, on one line."""

    def __init__(self, message: str) -> None:
        super().__init__(" ".join(message.split()))


class UserNotice(UserWarning):
    """A condition the user chose to go on with (e.g. `--allow-problem-mismatch`); the CLIs
    print it as one `warning:` line."""


def print_user_warnings(print_line: Callable[[str], None]) -> None:
    """Route :class:`UserNotice` warnings to `print_line` (one line each, no source line);
    other warnings keep Python's default display."""
    default = warnings.showwarning

    def show(message, category, filename, lineno, file=None, line=None):
        if issubclass(category, UserNotice):
            print_line(" ".join(str(message).split()))
        else:
            default(message, category, filename, lineno, file, line)

    warnings.showwarning = show
