"""The sample schema: one JSON object per line, shared by eval, training rollouts and analyses.

A sample is keyed by (task, problem_id, sample_idx). Generation appends rows to a JSONL file the
moment they are scored, so an interrupted run loses at most the row being written; `read_samples`
reports malformed lines by number, and `repair_torn_tail` drops a half-written final line left by a
crash (the row is simply generated again on resume).

Example:
    >>> row = SampleRow(task="gym:basic_arithmetic", problem_id="0", sample_idx=0, score=1.0)
    >>> row.to_dict()["correct"]
    True
"""

from __future__ import annotations

import json
import math
import os
from collections.abc import Iterable, Iterator
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

from prorl_eval.errors import UserError

# 2 added problem_fingerprint and gold_answer, 3 extracted_answer and extraction (older rows lack
# them and stay readable).
SCHEMA_VERSION = 3
REQUIRED_FIELDS = ("task", "problem_id", "sample_idx", "score")
SampleKey = tuple[str, str, int]


@dataclass
class SampleRow:
    """One generated and scored response. See docs/contracts.md for every field."""

    task: str
    problem_id: str
    sample_idx: int
    score: float
    prompt: str = ""
    response: str = ""
    correct: bool | None = None
    threshold: float = 1.0
    reason: str = ""
    model: str = ""
    model_revision: str | None = None
    backend: str = ""
    sampling: dict[str, Any] = field(default_factory=dict)
    num_tokens: int = 0
    prompt_tokens: int = 0
    finish_reason: str = ""
    task_version: str = ""
    problem_fingerprint: str = ""
    gold_answer: str | None = None
    extracted_answer: str | None = None
    extraction: str = ""
    tags: dict[str, str] = field(default_factory=dict)
    extra: dict[str, Any] = field(default_factory=dict)
    schema_version: int = SCHEMA_VERSION

    def __post_init__(self) -> None:
        if self.correct is None:
            self.correct = self.score >= self.threshold

    @property
    def key(self) -> SampleKey:
        return (self.task, self.problem_id, self.sample_idx)

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


def sample_key(row: dict[str, Any]) -> SampleKey:
    """The (task, problem_id, sample_idx) key of a row dict."""
    return (str(row["task"]), str(row["problem_id"]), int(row["sample_idx"]))


def normalise_row(row: Any, where: str) -> dict[str, Any]:
    """Check a row read from a file and coerce its key fields; `where` names it in errors.

    `problem_id` becomes a string, `sample_idx` an int, `score` a float in [0, 1], and `correct` is
    derived from `score >= threshold` (1.0 by default) when absent.
    """
    if not isinstance(row, dict):
        raise UserError(f"{where}: expected a JSON object, got {type(row).__name__}.")
    missing = [f for f in REQUIRED_FIELDS if f not in row]
    if missing:
        raise UserError(
            f"{where}: missing field(s) {', '.join(missing)}; every sample row needs "
            f"{', '.join(REQUIRED_FIELDS)}."
        )
    try:
        score = float(row["score"])
        sample_idx = int(row["sample_idx"])
    except (TypeError, ValueError) as exc:
        raise UserError(f"{where}: score and sample_idx must be numbers ({exc}).") from None
    if not (0.0 <= score <= 1.0) or math.isnan(score):
        raise UserError(f"{where}: score {score} is outside [0, 1].")
    if sample_idx < 0 or float(row["sample_idx"]) != sample_idx:
        raise UserError(f"{where}: sample_idx must be a non-negative integer.")
    out = dict(row)
    out["task"] = str(row["task"])
    out["problem_id"] = str(row["problem_id"])
    out["sample_idx"] = sample_idx
    out["score"] = score
    if out.get("correct") is None:
        out["correct"] = score >= float(row.get("threshold", 1.0))
    else:
        out["correct"] = bool(out["correct"])
    return out


def iter_samples(path: str | Path) -> Iterator[dict[str, Any]]:
    """Yield normalised rows of a samples JSONL file; a malformed line is a UserError naming it."""
    for _, row in iter_numbered_samples(path):
        yield row


def iter_numbered_samples(path: str | Path) -> Iterator[tuple[int, dict[str, Any]]]:
    """Like `iter_samples`, with each row's 1-based line number."""
    path = Path(path)
    if not path.is_file():
        raise UserError(f"samples file {path} does not exist; pass a JSONL file of sample rows.")
    with path.open("r", encoding="utf-8") as fh:
        for lineno, line in enumerate(fh, start=1):
            if not line.strip():
                continue
            try:
                row = json.loads(line)
            except json.JSONDecodeError as exc:
                raise UserError(
                    f"{path}:{lineno}: malformed JSON ({exc.msg}); fix or delete that line."
                ) from None
            yield lineno, normalise_row(row, f"{path}:{lineno}")


def read_samples(path: str | Path, *, allow_duplicates: bool = False) -> list[dict[str, Any]]:
    """Read every row of a samples file; a repeated (task, problem_id, sample_idx) is refused."""
    rows = []
    seen: dict[SampleKey, int] = {}
    for lineno, row in iter_numbered_samples(path):
        key = sample_key(row)
        if key in seen and not allow_duplicates:
            raise UserError(
                f"{path}: sample {key} appears twice (lines {seen[key]} and {lineno}); "
                "remove the duplicate rows."
            )
        seen[key] = lineno
        rows.append(row)
    return rows


def repair_torn_tail(path: Path) -> bool:
    """Drop a final line cut short by a crash (no newline, not valid JSON). Returns True if cut.

    A complete line always ends with a newline because rows are written whole, so a last line
    without one is a row the crash interrupted; the rest of the file is left untouched.
    """
    if not path.is_file() or path.stat().st_size == 0:
        return False
    with path.open("rb+") as fh:
        fh.seek(0, os.SEEK_END)
        size = fh.tell()
        fh.seek(max(0, size - 1))
        if fh.read(1) == b"\n":
            return False
        # Find the start of the last line.
        block = 1 << 16
        pos = size
        cut = 0
        while pos > 0:
            start = max(0, pos - block)
            fh.seek(start)
            chunk = fh.read(pos - start)
            idx = chunk.rfind(b"\n")
            if idx >= 0:
                cut = start + idx + 1
                break
            pos = start
        fh.seek(cut)
        tail = fh.read()
        try:
            json.loads(tail)
        except ValueError:
            fh.truncate(cut)
            return True
        fh.seek(0, os.SEEK_END)
        fh.write(b"\n")  # a complete row that only lost its newline
        return False


class SampleWriter:
    """Append-only JSONL writer: each row is written whole and flushed, a batch is fsynced."""

    def __init__(self, path: str | Path) -> None:
        self.path = Path(path)
        self._fh = self.path.open("a", encoding="utf-8")

    def write(self, rows: Iterable[SampleRow | dict[str, Any]]) -> int:
        count = 0
        for row in rows:
            data = row.to_dict() if isinstance(row, SampleRow) else row
            self._fh.write(json.dumps(data, ensure_ascii=False) + "\n")
            count += 1
        self._fh.flush()
        os.fsync(self._fh.fileno())
        return count

    def close(self) -> None:
        self._fh.close()

    def __enter__(self) -> SampleWriter:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()
