"""Reading benchmark data: local JSONL / JSON / CSV files and Hugging Face hub splits.

Every task family loads its problems through these four functions, so bad input is reported the
same way everywhere: a malformed line names its file and line number, a missing column names the
columns that exist, and a hub failure says how to fix it (log in, or use --data-dir).

Example:
    >>> rows = read_table(Path("shared/data/math/aime24.jsonl"))   # doctest: +SKIP
"""

from __future__ import annotations

import csv
import gzip
import json
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from prorl_eval.errors import UserError


def read_jsonl(path: Path) -> list[dict[str, Any]]:
    """The objects of a .jsonl (or .jsonl.gz) file; a malformed line is a UserError naming it."""
    path = Path(path)
    if not path.is_file():
        raise UserError(f"data file {path} does not exist.")
    opener = gzip.open if path.name.endswith(".gz") else open
    rows = []
    with opener(path, "rt", encoding="utf-8") as fh:
        for lineno, line in enumerate(fh, start=1):
            if not line.strip():
                continue
            try:
                row = json.loads(line)
            except json.JSONDecodeError as exc:
                raise UserError(f"{path}:{lineno}: malformed JSON ({exc.msg}).") from None
            if not isinstance(row, dict):
                raise UserError(f"{path}:{lineno}: expected one JSON object per line.")
            rows.append(row)
    return rows


def read_table(path: Path) -> list[dict[str, Any]]:
    """Rows of a local .jsonl, .json (a list of objects) or .csv file; bad input is a UserError."""
    path = Path(path)
    if not path.is_file():
        raise UserError(f"data file {path} does not exist.")
    if path.suffix == ".csv":
        with path.open(encoding="utf-8", newline="") as fh:
            return list(csv.DictReader(fh))
    if path.suffix == ".json":
        try:
            rows = json.loads(path.read_text(encoding="utf-8"))
        except json.JSONDecodeError as exc:
            raise UserError(f"{path}: malformed JSON ({exc.msg}, line {exc.lineno}).") from None
        if not isinstance(rows, list):
            raise UserError(f"{path}: a .json data file must hold a list of objects.")
        return rows
    return read_jsonl(path)


def check_columns(available: Any, needed: Sequence[str], where: str) -> None:
    """A UserError naming each missing column and the columns that exist."""
    have = list(available)
    missing = [c for c in needed if c not in have]
    if missing:
        raise UserError(
            f"{where}: no column {', '.join(repr(c) for c in missing)}; "
            f"available columns: {', '.join(repr(c) for c in have) or '(none)'}."
        )


def load_hub_rows(
    hub_id: str, split: str, *, config: str | None = None, gated: bool = False
) -> list[dict[str, Any]]:
    """Rows of a hub dataset split (lazy `datasets` import); failures become a UserError."""
    import datasets

    try:
        dataset = datasets.load_dataset(hub_id, config, split=split, token=True if gated else None)
    except Exception as exc:  # network, auth and name errors are all user-fixable here
        hint = (
            " It is gated: accept its terms on huggingface.co and log in (`hf auth login` or "
            "HF_TOKEN)."
            if gated
            else ""
        )
        raise UserError(
            f"could not load {hub_id} ({config or 'default'}, {split}) from the Hugging Face "
            f"hub: {type(exc).__name__}: {str(exc)[:200]}.{hint} Check the network, or pass "
            "--data-dir with an offline copy."
        ) from None
    return [dict(row) for row in dataset]
