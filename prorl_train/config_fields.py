"""Helpers shared by the config sections: a dataclass field with help text, and the check that a
setting names an entry of a table."""

from __future__ import annotations

from dataclasses import field
from typing import Any

from prorl_eval.errors import UserError


def setting(default: Any, help: str) -> Any:
    """A dataclass field with an immutable default and help text."""
    return field(default=default, metadata={"help": help})


def check_choice(name: str, value: str, table: dict) -> None:
    """UserError naming setting `name` and its choices when `value` is not a key of `table`."""
    if value not in table:
        raise UserError(f"{name} '{value}' is unknown; choose one of {', '.join(sorted(table))}.")
