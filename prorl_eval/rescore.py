"""Re-score existing samples with the registry's verifiers (`prorl-eval score`).

Needed when a verifier improves, and to score responses produced elsewhere. Input rows need `task`,
`problem_id` and `response`; every other field is kept, and `score`, `correct`, `threshold`,
`reason` and `extra` are set. Work is spread over worker processes; the output is written to a
temporary file and renamed into place, so an interrupted run leaves no partial output.

Example:
    >>> rescore_file("in.jsonl", "out.jsonl", data_dir="shared/data")   # doctest: +SKIP
"""

from __future__ import annotations

import json
import os
from collections.abc import Callable
from pathlib import Path
from typing import Any

from prorl_eval.errors import UserError
from prorl_eval.fingerprints import (
    ALLOW_FLAG,
    check_rows,
    differing,
    report_mismatch,
    task_fingerprint,
)
from prorl_eval.scoring import ScoreJob, Scorer
from prorl_eval.tasks.datafiles import read_jsonl
from prorl_eval.tasks.registry import TaskOptions

NEEDED = ("task", "problem_id", "response")


def read_rows_to_score(path: Path) -> list[dict[str, Any]]:
    """Rows of a JSONL file that each have task, problem_id and response (else a UserError)."""
    if not path.is_file():
        raise UserError(f"samples file {path} does not exist.")
    rows = read_jsonl(path)
    for number, row in enumerate(rows, start=1):
        missing = [f for f in NEEDED if f not in row]
        if missing:
            raise UserError(f"{path}: row {number} lacks field(s) {', '.join(missing)}.")
        row["problem_id"] = str(row["problem_id"])
    if not rows:
        raise UserError(f"{path} holds no rows to score.")
    return rows


def task_specs(
    rows: list[dict[str, Any]], *, seed: int, data_dir: str | None
) -> dict[str, TaskOptions]:
    """Loading options per task. Procedural (gym) tasks are generated up to the largest id seen."""
    specs = {}
    for name in sorted({row["task"] for row in rows}):
        limit = None
        if name.startswith("gym:"):
            ids = [row["problem_id"] for row in rows if row["task"] == name]
            if not all(i.isdigit() for i in ids):
                raise UserError(f"{name} problem ids must be row indices (got e.g. '{ids[0]}').")
            limit = max(int(i) for i in ids) + 1
        specs[name] = TaskOptions(limit=limit, seed=seed, data_dir=data_dir)
        specs[name].validate()
    return specs


def rescore_file(
    source: str | Path,
    target: str | Path,
    *,
    data_dir: str | None = None,
    seed: int = 0,
    workers: int = 0,
    overwrite: bool = False,
    allow_problem_mismatch: bool = False,
    progress: Callable[[int, int], None] | None = None,
) -> dict[str, Any]:
    """Score every row of `source` and write them to `target`; returns per-task mean scores.

    Rows that record a problem fingerprint must match the problem rebuilt here (else
    ProblemMismatch; a warning with `allow_problem_mismatch`)."""
    source, target = Path(source), Path(target)
    if source.resolve() == target.resolve():
        raise UserError("--out must differ from --samples; the input is never overwritten.")
    if target.exists() and not overwrite:
        raise UserError(f"{target} already exists; choose another --out or pass --overwrite.")
    rows = read_rows_to_score(source)
    specs = task_specs(rows, seed=seed, data_dir=data_dir)
    target.parent.mkdir(parents=True, exist_ok=True)
    with Scorer(specs, workers=workers) as scorer:
        thresholds = {
            name: scorer.local.problem(name, _first_id(rows, name))[0].threshold for name in specs
        }
        check_problems(scorer, rows, source, allow=allow_problem_mismatch)
        scores = _score_in_chunks(scorer, rows, progress)
        tags = {}
        for key in {(row["task"], str(row["problem_id"])) for row in rows}:
            task, problem = scorer.local.problem(*key)
            tags[key] = task.tags(problem)
    tmp = target.with_name(f".{target.name}.tmp")
    with tmp.open("w", encoding="utf-8") as fh:
        for row, score in zip(rows, scores, strict=True):
            threshold = thresholds[row["task"]]
            row.update(
                score=score.value,
                correct=score.value >= threshold,
                threshold=threshold,
                reason=score.reason,
                extracted_answer=score.answer,
                extraction=score.extraction,
                tags=tags[(row["task"], str(row["problem_id"]))],
                extra=score.extra,
            )
            fh.write(json.dumps(row, ensure_ascii=False) + "\n")
    os.replace(tmp, target)
    means: dict[str, list[float]] = {}
    for row in rows:
        means.setdefault(row["task"], []).append(row["score"])
    return {name: {"rows": len(v), "mean_score": sum(v) / len(v)} for name, v in means.items()}


def check_problems(
    scorer: Scorer, rows: list[dict[str, Any]], source: Path, *, allow: bool
) -> None:
    """Compare the rows' recorded fingerprints with the problems the scorer rebuilds."""
    recorded = check_rows(rows, str(source), allow=allow)
    current = {}
    for task, problem_id in recorded:
        built_task, problem = scorer.local.problem(task, problem_id)
        current[(task, problem_id)] = task_fingerprint(built_task, problem)
    report_mismatch(
        differing(recorded, current),
        len(recorded),
        f"{source} and the problems rebuilt for scoring",
        allow=allow,
        fix=f"check --data-seed / --data-dir, or pass {ALLOW_FLAG} to score them anyway",
    )


def _first_id(rows: list[dict[str, Any]], task: str) -> str:
    return next(row["problem_id"] for row in rows if row["task"] == task)


def _score_in_chunks(scorer: Scorer, rows: list[dict[str, Any]], progress: Any) -> list[Any]:
    jobs = [ScoreJob(row["task"], row["problem_id"], str(row["response"])) for row in rows]
    scores: list[Any] = []
    step = 256
    for start in range(0, len(jobs), step):
        scores.extend(scorer.score(jobs[start : start + step]))
        if progress:
            progress(len(scores), len(jobs))
    return scores
