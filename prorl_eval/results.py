"""Turn sample rows into results.json, and load runs into pandas.

`summarize` groups rows by task and problem and reports each task's metrics (`metrics`): the
unbiased pass@k, avg@k and maj@k with bootstrap CIs over problems, lengths and truncation, and
breakdowns by problem tags. Each problem uses its own n_i; a k above the smallest n_i of a task is
refused.

Example:
    >>> import prorl_eval
    >>> df = prorl_eval.load_samples("runs/x")      # doctest: +SKIP
    >>> res = prorl_eval.load_results("runs/x")     # doctest: +SKIP
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np

from prorl_eval.errors import UserError
from prorl_eval.jsonio import read_json
from prorl_eval.metrics import check_by_fields, task_summary
from prorl_eval.passk import DEFAULT_BOOTSTRAP_RESAMPLES, DEFAULT_BOOTSTRAP_SEED
from prorl_eval.runstore import RESULTS_FILE, SAMPLES_FILE
from prorl_eval.schema import read_samples


def parse_ks(spec: str) -> list[int]:
    """Parse `--k 1,2,4`; every k must be a positive integer."""
    ks = []
    for part in spec.split(","):
        part = part.strip()
        if not part:
            continue
        try:
            k = int(part)
        except ValueError:
            raise UserError(f"--k takes comma-separated integers (got '{part}').") from None
        if k <= 0:
            raise UserError(f"--k values must be >= 1 (got {k}).")
        if k not in ks:
            ks.append(k)
    if not ks:
        raise UserError("--k is empty; pass values such as 1,2,4,8,16.")
    return sorted(ks)


def parse_by(spec: str | None) -> tuple[str, ...]:
    """Parse `--by level,subject` into tag names (order kept, repeats dropped)."""
    fields: list[str] = []
    for part in (spec or "").split(","):
        if part.strip() and part.strip() not in fields:
            fields.append(part.strip())
    return tuple(fields)


def default_ks(n: int) -> list[int]:
    """Powers of two up to n, plus n itself."""
    ks = [2**i for i in range(n.bit_length()) if 2**i <= n]
    return ks if ks[-1] == n else [*ks, n]


def summarize(
    rows: list[dict[str, Any]],
    ks: list[int],
    *,
    by: Sequence[str] = (),
    require_maj: bool = False,
    resamples: int = DEFAULT_BOOTSTRAP_RESAMPLES,
    seed: int = DEFAULT_BOOTSTRAP_SEED,
) -> dict[str, dict[str, Any]]:
    """Per-task summary (`metrics.task_summary`): num_problems, n (smallest per-problem count),
    mean_score, pass@k, avg@k and maj@k with CIs, lengths, and breakdowns by the `by` tags."""
    if by:
        check_by_fields(rows, by)
    by_task: dict[str, dict[str, list[dict[str, Any]]]] = defaultdict(lambda: defaultdict(list))
    for row in rows:
        by_task[row["task"]][row["problem_id"]].append(row)
    tasks = {}
    for task, problems in by_task.items():
        smallest = min(len(samples) for samples in problems.values())
        too_big = [k for k in ks if k > smallest]
        if too_big:
            raise UserError(
                f"k={too_big[0]} exceeds the samples per problem of {task} (smallest "
                f"n={smallest}); use k <= {smallest} or generate more samples with a larger --n."
            )
        tasks[task] = task_summary(
            problems, ks, by=by, require_maj=require_maj, resamples=resamples, seed=seed,
            task=task,
        )  # fmt: skip
    return dict(sorted(tasks.items()))


def _run_paths(path: str | Path, filename: str) -> Path:
    path = Path(path)
    return path / filename if path.is_dir() else path


def load_samples(path: str | Path, *, allow_problem_mismatch: bool = False) -> Any:
    """Load a samples file (or a run folder's samples.jsonl) into a pandas DataFrame, one row each.

    The `sampling` dict is kept as a column and also spread into `sampling.*` columns. Rows with
    the same (task, problem_id) but different `problem_fingerprint`s (rows of different problems
    mixed in one file) raise ProblemMismatch, or warn when `allow_problem_mismatch` is set.
    """
    import pandas as pd

    from prorl_eval.fingerprints import check_rows

    source = _run_paths(path, SAMPLES_FILE)
    rows = read_samples(source)
    check_rows(rows, str(source), allow=allow_problem_mismatch)
    frame = pd.DataFrame(rows)
    if "sampling" in frame.columns:
        spread = pd.json_normalize(frame["sampling"].apply(lambda s: s or {}).tolist())
        spread.columns = [f"sampling.{c}" for c in spread.columns]
        frame = pd.concat([frame, spread], axis=1)
    return frame


def load_results(path: str | Path) -> Any:
    """Load results.json (or a run folder's) into a tidy DataFrame: one row per (task, k).

    Columns: task, k, pass_at_k, ci_low, ci_high, maj_at_k, maj_ci_low, maj_ci_high (NaN where
    the task has no extracted answers), avg_at_k, pass_at_k_untruncated (NaN without lengths),
    num_problems, n, mean_score, mean_response_tokens, truncated_share. The file's run metadata is
    attached as `frame.attrs["run"]`.
    """
    import pandas as pd

    data = read_json(_run_paths(path, RESULTS_FILE), "results file")
    records = []
    for task, summary in data.get("tasks", {}).items():
        for k, value in summary["pass_at_k"].items():
            low, high = summary.get("pass_at_k_ci95", {}).get(k, [np.nan, np.nan])
            maj_low, maj_high = summary.get("maj_at_k_ci95", {}).get(k, [np.nan, np.nan])
            records.append(
                {
                    "task": task,
                    "k": int(k),
                    "pass_at_k": value,
                    "ci_low": low,
                    "ci_high": high,
                    "maj_at_k": summary.get("maj_at_k", {}).get(k, np.nan),
                    "maj_ci_low": maj_low,
                    "maj_ci_high": maj_high,
                    "avg_at_k": summary.get("avg_at_k", {}).get(k, summary["mean_score"]),
                    "pass_at_k_untruncated": summary.get("pass_at_k_untruncated", {}).get(
                        k, np.nan
                    ),
                    "num_problems": summary["num_problems"],
                    "n": summary["n"],
                    "mean_score": summary["mean_score"],
                    "mean_response_tokens": summary.get("mean_response_tokens", np.nan),
                    "truncated_share": summary.get("truncated_share", np.nan),
                }
            )
    frame = pd.DataFrame(records)
    frame.attrs["run"] = {key: value for key, value in data.items() if key != "tasks"}
    return frame


def load_breakdowns(path: str | Path) -> Any:
    """The `by` breakdowns of results.json as a tidy DataFrame: one row per (task, tag, value, k)
    with pass_at_k, ci_low, ci_high, maj_at_k, num_problems and mean_score."""
    import pandas as pd

    data = read_json(_run_paths(path, RESULTS_FILE), "results file")
    records = []
    for task, summary in data.get("tasks", {}).items():
        for tag, values in summary.get("by", {}).items():
            for value, part in values.items():
                for k, passed in part["pass_at_k"].items():
                    low, high = part["pass_at_k_ci95"][k]
                    records.append({
                        "task": task, "tag": tag, "value": value, "k": int(k),
                        "pass_at_k": passed, "ci_low": low, "ci_high": high,
                        "maj_at_k": part.get("maj_at_k", {}).get(k, np.nan),
                        "num_problems": part["num_problems"], "mean_score": part["mean_score"],
                    })  # fmt: skip
    columns = ["task", "tag", "value", "k", "pass_at_k", "ci_low", "ci_high", "maj_at_k",
               "num_problems", "mean_score"]  # fmt: skip
    return pd.DataFrame(records, columns=columns)
