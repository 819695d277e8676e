"""The report's sections beyond pass@k, read from each run's results.json: majority voting,
response lengths and truncation, and breakdowns by problem tags. A section appears only where a run
has its numbers (maj@k needs extracted answers, lengths need `finish_reason`, breakdowns `--by`).
"""

from __future__ import annotations

import math
from typing import Any

from prorl_eval.report.loading import LoadedRun
from prorl_eval.report.sections import Section, TextTable


def _fmt(value: Any, pct: bool = True) -> str:
    if value is None or (isinstance(value, float) and math.isnan(value)):
        return "–"
    return f"{100 * value:.1f}" if pct else f"{value:.0f}"


def _ci(value: float, low: float, high: float) -> str:
    if math.isnan(value):
        return "–"
    return f"{100 * value:.1f} [{100 * low:.1f}, {100 * high:.1f}]"


def voting_and_lengths_section(runs: list[LoadedRun], k: int) -> Section | None:
    """pass@k beside maj@k and avg@k, and the response lengths, per run and task, at `k`."""
    rows = []
    for run in runs:
        frame = run.results
        at_k = frame[frame["k"] == k]
        for _, row in at_k.iterrows():
            if math.isnan(row["maj_at_k"]) and math.isnan(row["truncated_share"]):
                continue
            rows.append((
                run.label, str(row["task"]), _ci(row["pass_at_k"], row["ci_low"], row["ci_high"]),
                _ci(row["maj_at_k"], row["maj_ci_low"], row["maj_ci_high"]), _fmt(row["avg_at_k"]),
                _fmt(row["mean_response_tokens"], pct=False), _fmt(row["truncated_share"]),
                _fmt(row["pass_at_k_untruncated"]),
            ))  # fmt: skip
    if not rows:
        return None
    columns = ("run", "task", f"pass@{k} [95% CI]", f"maj@{k} [95% CI]", "avg score",
               "mean tokens", "truncated %", f"pass@{k} finished")  # fmt: skip
    table = TextTable(columns, tuple(rows), right=(False, False, *([True] * 6)))
    return Section(
        title=f"Majority voting and response lengths (k = {k})",
        paragraphs=(
            f"maj@{k} is the expected correctness of the majority answer of {k} samples (exact "
            "over every k-subset of the n; – where the verifier extracts no answer). avg score is "
            "the mean score. truncated % is the share of responses cut at max_new_tokens; "
            f"pass@{k} finished counts only the responses that ended by themselves, over the "
            f"problems with at least {k} of them. All values in %.",
        ),
        tables=(table,),
    )


def breakdown_section(runs: list[LoadedRun], k: int) -> Section | None:
    """pass@1, pass@k and maj@k per value of each tag the runs were broken down by (`--by`)."""
    from prorl_eval.results import load_breakdowns

    rows = []
    for run in runs:
        parts = load_breakdowns(run.path)
        if parts.empty:
            continue
        for (task, tag, value), group in parts.groupby(["task", "tag", "value"], sort=False):
            one = group[group["k"] == 1]
            top = group[group["k"] == k]
            rows.append((
                run.label, str(task), f"{tag} = {value}", str(int(group["num_problems"].iloc[0])),
                _row_ci(one), _row_ci(top),
                _fmt(top["maj_at_k"].iloc[0]) if not top.empty else "–",
            ))  # fmt: skip
    if not rows:
        return None
    columns = ("run", "task", "part", "problems", "pass@1 [95% CI]",
               f"pass@{k} [95% CI]", f"maj@{k}")  # fmt: skip
    table = TextTable(columns, tuple(rows), right=(False, False, False, True, True, True, True))
    return Section(
        title="Breakdowns by problem tags",
        paragraphs=(
            "Each task's problems split by the tags it was broken down by (--by), with 95% "
            "bootstrap CIs over the problems of each part. Values in %.",
        ),
        tables=(table,),
    )


def _row_ci(rows: Any) -> str:
    if rows.empty:
        return "–"
    row = rows.iloc[0]
    return _ci(row["pass_at_k"], row["ci_low"], row["ci_high"])


def extra_sections(runs: list[LoadedRun]) -> list[Section]:
    """The sections above that have numbers, at the largest k every run's results hold (maj@1
    is pass@1, so the report's own k, often 1, would show nothing new)."""
    shared = set.intersection(*(set(run.results["k"].astype(int)) for run in runs))
    if not shared:
        return []
    k = max(shared)
    found = (voting_and_lengths_section(runs, k), breakdown_section(runs, k))
    return [section for section in found if section is not None]
