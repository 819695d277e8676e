"""The loading options every task builder receives (`TaskOptions`) and where offline data lives.

This module sits below every task module and the registry, so both can import it without a cycle.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path

from prorl_eval.errors import UserError


@dataclass(frozen=True)
class TaskOptions:
    """Loading options shared by every task: how many problems, the data seed, and where offline
    copies of benchmark data live (`--data-dir` or `$PRORL_DATA_DIR`; None means the hub)."""

    limit: int | None = None
    seed: int = 0
    data_dir: str | None = None

    def validate(self) -> None:
        if self.limit is not None and self.limit <= 0:
            raise UserError(f"--limit must be a positive number of problems (got {self.limit}).")
        if self.data_dir is not None and not Path(self.data_dir).is_dir():
            raise UserError(
                f"data directory {self.data_dir} does not exist; pass --data-dir (or set "
                "PRORL_DATA_DIR) to a folder laid out like shared/data (math/, ifeval/, ...)."
            )


def data_dir_from(option: str | None) -> str | None:
    """`--data-dir` if given, else `$PRORL_DATA_DIR`, else None (load from the hub)."""
    return option or os.environ.get("PRORL_DATA_DIR") or None
