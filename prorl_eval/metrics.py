"""One task's metrics from its sample rows: pass@k, avg@k, maj@k, response lengths, breakdowns.

`task_summary` is what results.json holds per task (docs/contracts.md lists the keys):

- `pass_at_k` (unbiased, `passk`), `avg_at_k` (mean score: the same for every k, see `voting`) and,
  when the verifier extracts answers, `maj_at_k` (`voting.maj_at_k_values`), each with a 95%
  bootstrap CI over problems drawn from the same resampled problem sets;
- lengths, when rows record them: mean and median response tokens, the share of responses cut at
  `max_new_tokens` (`finish_reason == "length"`), and pass@k over the responses that finished,
  computed over the problems with at least k of them (`untruncated_problems[k]` says how many);
- `by`: the same metrics for each value of a problem tag (`tags` in the rows: MATH-500's `level`
  and `subject`, LiveCodeBench's `difficulty`, Reasoning Gym's `category`, ...).
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import numpy as np

from prorl_eval.errors import UserError
from prorl_eval.passk import (
    DEFAULT_BOOTSTRAP_RESAMPLES,
    DEFAULT_BOOTSTRAP_SEED,
    metric_summary,
    pass_at_k,
    pass_at_k_summary,
)
from prorl_eval.voting import has_answers, maj_at_k_values

Rows = list[dict[str, Any]]


def is_correct(row: dict[str, Any]) -> bool:
    """A row's `correct`, else `score >= threshold` (threshold 1.0 when absent), as readers do."""
    if "correct" in row and row["correct"] is not None:
        return bool(row["correct"])
    return float(row["score"]) >= float(row.get("threshold", 1.0))


def task_summary(
    problems: dict[str, Rows],
    ks: Sequence[int],
    *,
    by: Sequence[str] = (),
    require_maj: bool = False,
    resamples: int = DEFAULT_BOOTSTRAP_RESAMPLES,
    seed: int = DEFAULT_BOOTSTRAP_SEED,
    task: str = "",
) -> dict[str, Any]:
    """Every metric of one task; `problems` maps problem id to its rows."""
    ordered = [sorted(rows, key=lambda r: int(r["sample_idx"])) for rows in problems.values()]
    n = np.array([len(rows) for rows in ordered])
    c = np.array([sum(is_correct(r) for r in rows) for rows in ordered])
    scores = np.array([np.mean([float(r["score"]) for r in rows]) for rows in ordered])
    summary: dict[str, Any] = {
        "num_problems": len(ordered),
        "n": int(n.min()),
        "num_samples": int(n.sum()),
        "mean_score": float(scores.mean()),
        **pass_at_k_summary(n, c, ks, resamples=resamples, seed=seed),
        **metric_summary("avg_at_k", np.tile(scores, (len(ks), 1)), ks, resamples=resamples,
                         seed=seed),
    }  # fmt: skip
    answers = [[r.get("extracted_answer") for r in rows] for rows in ordered]
    if any(has_answers(a) for a in answers):
        votes = [
            maj_at_k_values(a, [is_correct(r) for r in rows], ks)
            for a, rows in zip(answers, ordered, strict=True)
        ]
        per_k = np.array(votes).T
        summary.update(metric_summary("maj_at_k", per_k, ks, resamples=resamples, seed=seed))
    elif require_maj:
        raise UserError(
            f"maj@k needs extracted answers, and no row of {task} has one: its verifier compares "
            "no answer (code, IFEval, contains), or the rows predate schema 3 (re-score them with "
            "`prorl-eval score`)."
        )
    summary.update(length_summary(ordered, ks))
    if by:
        summary["by"] = breakdowns(problems, ks, by, resamples=resamples, seed=seed)
    return summary


def length_summary(ordered: list[Rows], ks: Sequence[int]) -> dict[str, Any]:
    """Response lengths, the truncated share and pass@k over finished responses ({} when the rows
    record no lengths)."""
    flat = [r for rows in ordered for r in rows]
    if not any(r.get("finish_reason") for r in flat):
        return {}
    tokens = np.array([int(r.get("num_tokens") or 0) for r in flat])
    truncated = [[r.get("finish_reason") == "length" for r in rows] for rows in ordered]
    finished_n = np.array([len(t) - sum(t) for t in truncated])
    finished_c = np.array(
        [sum(is_correct(r) for r, cut in zip(rows, t, strict=True) if not cut)
         for rows, t in zip(ordered, truncated, strict=True)]
    )  # fmt: skip
    untruncated, counted = {}, {}
    for k in ks:
        keep = finished_n >= k
        counted[str(k)] = int(keep.sum())
        if keep.any():
            untruncated[str(k)] = float(np.mean(pass_at_k(finished_n[keep], finished_c[keep], k)))
    return {
        "mean_response_tokens": float(tokens.mean()),
        "median_response_tokens": float(np.median(tokens)),
        "truncated_share": float(np.mean([cut for t in truncated for cut in t])),
        "pass_at_k_untruncated": untruncated,
        "untruncated_problems": counted,
    }


def problem_tags(rows: Rows) -> dict[str, str]:
    """A problem's tags, from its first row that has them."""
    return next((dict(r["tags"]) for r in rows if r.get("tags")), {})


def breakdowns(
    problems: dict[str, Rows],
    ks: Sequence[int],
    by: Sequence[str],
    *,
    resamples: int = DEFAULT_BOOTSTRAP_RESAMPLES,
    seed: int = DEFAULT_BOOTSTRAP_SEED,
) -> dict[str, dict[str, Any]]:
    """{tag: {value: the metrics of that value's problems}} for each tag the problems carry."""
    out: dict[str, dict[str, Any]] = {}
    for field in by:
        groups: dict[str, dict[str, Rows]] = {}
        for pid, rows in problems.items():
            value = problem_tags(rows).get(field)
            if value is not None:
                groups.setdefault(str(value), {})[pid] = rows
        if not groups:
            continue
        out[field] = {
            value: task_summary(members, ks, resamples=resamples, seed=seed)
            for value, members in sorted(groups.items(), key=lambda kv: _natural(kv[0]))
        }
    return out


def _natural(text: str) -> tuple:
    """Sort "Level 2" before "Level 10" and numbers numerically."""
    import re

    return tuple(int(p) if p.isdigit() else p for p in re.split(r"(\d+)", text))


def check_by_fields(rows: Rows, by: Sequence[str]) -> None:
    """An unknown `--by` field (no row carries that tag) is a UserError listing the known ones."""
    known = sorted({key for r in rows for key in (r.get("tags") or {})})
    unknown = [field for field in by if field not in known]
    if unknown:
        listed = ", ".join(known) if known else "none (the rows carry no tags)"
        raise UserError(f"unknown --by field {unknown[0]!r}; the rows' problem tags are: {listed}.")
