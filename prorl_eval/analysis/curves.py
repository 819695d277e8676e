"""pass@k curves (k = 1 .. n) per task, per domain and overall, with bootstrap bands.

What
----
For each run and each task, :func:`passk_curves` reports the unbiased pass@k
(:func:`prorl_eval.passk.pass_at_k`, mean over problems, each problem with its own ``n_i``) for
every ``k = 1 .. n``, where ``n`` is the smallest per-problem sample count of the group (optionally
capped by ``max_k``). Three scopes are reported:

- ``task``: one curve per task.
- ``domain``: the task's domain, from :func:`task_domain`: the ``domains`` mapping (the callers
  pass what each run's run.json recorded), else the task catalogue's (``gym:*`` → logic, math
  benchmarks → math, code benchmarks → code, ...). A domain's pass@k is the **unweighted mean of
  its tasks' pass@k**: every task counts equally, whatever its number of problems, so a
  500-problem benchmark does not drown a 30-problem one. Its k runs up to the smallest ``n``
  among its tasks.
- ``overall``: the same equal-weight mean over all tasks of the run.

Bands
-----
The band is a percentile bootstrap over problems at level ``level`` (default 95%), with the same
resampled problems for every k, so the band of one curve is coherent across k.

- A task's resample r uses the indices ``rng.integers(0, P, size=P)`` (row r of one
  ``(resamples, P)`` draw) of a fresh ``numpy.random.default_rng(seed)``; this is exactly the
  scheme of :func:`prorl_eval.passk.pass_at_k_summary`, so a task's band at k equals the
  ``pass_at_k_ci95`` that ``prorl-eval pass-at-k`` writes to results.json for the same seed.
- A domain or overall band is a *stratified* bootstrap: problems are resampled within each task
  (a task is never dropped or duplicated), the resampled task means are averaged with equal
  weights, and the quantiles are taken over those averages. One ``default_rng(seed)`` draws the
  ``(resamples, P_t)`` index block of each member task in sorted task order.

Runs are independent: each is computed with the same seed.

Example:
    >>> import pandas as pd
    >>> counts = pd.DataFrame({"task": ["gym:a", "gym:a"], "problem_id": ["0", "1"],
    ...                        "n": [4, 4], "c": [0, 2]})
    >>> curves = passk_curves({"base": counts}, resamples=50)
    >>> curves[curves.scope == "task"].pass_at_k.round(4).tolist()
    [0.25, 0.4167, 0.5, 0.5]
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

import numpy as np

from prorl_eval.analysis.inputs import display_name
from prorl_eval.passk import (
    DEFAULT_BOOTSTRAP_RESAMPLES,
    DEFAULT_BOOTSTRAP_SEED,
    bootstrap_means,
    pass_at_k,
)

__all__ = [
    "CURVE_COLUMNS",
    "UNKNOWN_DOMAIN",
    "bootstrap_means",
    "passk_curves",
    "passk_matrix",
    "plot_passk_by_step",
    "plot_passk_curves",
    "task_domain",
]

UNKNOWN_DOMAIN = "other"  # a task neither the mapping nor the catalogue knows
CURVE_COLUMNS = (
    "run",
    "scope",
    "group",
    "k",
    "pass_at_k",
    "ci_low",
    "ci_high",
    "num_tasks",
    "num_problems",
    "n",
)

# Elements of one (chunk x problems) block of resampled indices (~32 MiB of int64).


def task_domain(task: str, domains: Mapping[str, str] | None = None) -> str:
    """The domain of a task: its exact name in ``domains``, else its family prefix (the part before
    ':') there, else the task catalogue's domain
    (:func:`prorl_eval.tasks.registry.catalogue_domain`), else "other".

    ``domains`` is typically what the runs' run.json recorded (:func:`prorl_eval.analysis.inputs.
    recorded_domains`), plus any mapping the user gives; the catalogue covers older runs.

    Example:
        >>> [task_domain(t) for t in ("gym:basic_arithmetic", "aime24", "code:apps", "xyz")]
        ['logic', 'math', 'code', 'other']
    """
    from prorl_eval.tasks.registry import catalogue_domain

    table = domains or {}
    if task in table:
        return table[task]
    family = task.split(":", 1)[0] if ":" in task else None
    if family is not None and family in table:
        return table[family]
    return catalogue_domain(task) or UNKNOWN_DOMAIN


def passk_matrix(n: np.ndarray, c: np.ndarray, max_k: int) -> np.ndarray:
    """Per-problem pass@k for k = 1..max_k: shape (max_k, P), row k-1 is pass@k."""
    return np.stack([np.atleast_1d(pass_at_k(n, c, k)) for k in range(1, max_k + 1)])


def _band(means_KR: np.ndarray, level: float) -> tuple[np.ndarray, np.ndarray]:
    alpha = (1.0 - level) / 2.0
    low, high = np.quantile(means_KR, [alpha, 1.0 - alpha], axis=1)
    return low, high


def _task_arrays(counts: Any) -> dict[str, tuple[np.ndarray, np.ndarray]]:
    """{task: (n, c)} from a counts frame, tasks sorted."""
    out = {}
    for task, group in counts.groupby("task", sort=True):
        out[str(task)] = (group["n"].to_numpy(np.int64), group["c"].to_numpy(np.int64))
    return out


def _rows(run: str, scope: str, group: str, mean_K, low_K, high_K, n_tasks, n_problems, n):
    return [
        {
            "run": run,
            "scope": scope,
            "group": group,
            "k": k,
            "pass_at_k": float(mean_K[k - 1]),
            "ci_low": float(low_K[k - 1]),
            "ci_high": float(high_K[k - 1]),
            "num_tasks": n_tasks,
            "num_problems": n_problems,
            "n": n,
        }
        for k in range(1, len(mean_K) + 1)
    ]


def _run_curves(run: str, counts: Any, domains, max_k, resamples, seed, level) -> list[dict]:
    """Rows of one run: every task, then every domain, then overall."""
    tasks = _task_arrays(counts)
    if not tasks:
        raise ValueError(f"run {run!r} has no problems")
    values = {}
    rows: list[dict] = []
    for task, (n, c) in tasks.items():
        top = int(n.min()) if max_k is None else min(int(n.min()), max_k)
        values[task] = passk_matrix(n, c, top)
        boot = bootstrap_means(values[task], resamples, np.random.default_rng(seed))
        low, high = _band(boot, level)
        rows += _rows(run, "task", task, values[task].mean(1), low, high, 1, len(n), int(n.min()))
    groups: dict[tuple[str, str], list[str]] = {}
    for task in tasks:
        groups.setdefault(("domain", task_domain(task, domains)), []).append(task)
    groups[("overall", "overall")] = list(tasks)
    for (scope, name), members in sorted(groups.items()):
        top = min(values[t].shape[0] for t in members)
        rng = np.random.default_rng(seed)
        boot = np.mean([bootstrap_means(values[t][:top], resamples, rng) for t in members], axis=0)
        mean = np.mean([values[t][:top].mean(1) for t in members], axis=0)
        low, high = _band(boot, level)
        n_problems = sum(len(tasks[t][0]) for t in members)
        n_min = min(int(tasks[t][0].min()) for t in members)
        rows += _rows(run, scope, name, mean, low, high, len(members), n_problems, n_min)
    return rows


def passk_curves(
    runs: Mapping[str, Any],
    *,
    domains: Mapping[str, str] | None = None,
    max_k: int | None = None,
    resamples: int = DEFAULT_BOOTSTRAP_RESAMPLES,
    seed: int = DEFAULT_BOOTSTRAP_SEED,
    level: float = 0.95,
) -> Any:
    """pass@k for every k = 1..n of each run, per task, per domain and overall (see module doc).

    Args:
        runs: ``{label: counts}``, each counts frame with ``task``, ``problem_id``, ``n``, ``c``
            (as from :func:`prorl_eval.analysis.inputs.problem_counts`); the order is kept.
        domains: ``{task name or family prefix: domain}`` over the catalogue's domains.
        max_k: cap on k (default: the group's smallest per-problem ``n``).
        resamples, seed, level: bootstrap settings of the bands.

    Returns:
        DataFrame with :data:`CURVE_COLUMNS`; ``scope`` is task / domain / overall, ``group`` the
        task, domain or "overall", ``n`` the smallest per-problem sample count of the group.
    """
    import pandas as pd

    if max_k is not None and max_k < 1:
        raise ValueError(f"max_k must be >= 1, got {max_k}")
    if resamples < 1 or not 0.0 < level < 1.0:
        raise ValueError(f"need resamples >= 1 and 0 < level < 1 (got {resamples}, {level})")
    rows: list[dict] = []
    for run, counts in runs.items():
        rows += _run_curves(str(run), counts, domains, max_k, resamples, seed, level)
    frame = pd.DataFrame(rows, columns=list(CURVE_COLUMNS))
    order = {"task": 0, "domain": 1, "overall": 2}
    frame["_order"] = frame["scope"].map(order)
    runs_order = {str(run): i for i, run in enumerate(runs)}
    frame["_run"] = frame["run"].map(runs_order)
    frame = frame.sort_values(["_run", "_order", "group", "k"], kind="stable")
    return frame.drop(columns=["_order", "_run"]).reset_index(drop=True)


def plot_passk_curves(
    curves: Any,
    scope: str = "task",
    *,
    groups: Sequence[str] | None = None,
    ncols: int = 3,
    title: str | None = None,
    maj: Any | None = None,
) -> Any:
    """One panel per group of ``scope``: a line per run (pass@k vs log2 k) with its shaded band;
    with ``maj`` (:func:`prorl_eval.analysis.majority.maj_curves`), the task panels also draw
    each run's maj@k as a dashed line of the same colour.

    Returns a ``matplotlib.figure.Figure`` built without pyplot (no display needed; ``savefig``
    renders with Agg).
    """
    from matplotlib.figure import Figure

    data = curves[curves["scope"] == scope]
    if data.empty:
        raise ValueError(f"no curves with scope {scope!r}")
    names = list(groups) if groups is not None else sorted(data["group"].unique())
    ncols = max(1, min(ncols, len(names)))
    nrows = -(-len(names) // ncols)
    fig = Figure(figsize=(4.2 * ncols, 3.2 * nrows), layout="constrained")
    axes = fig.subplots(nrows, ncols, squeeze=False)
    runs = list(dict.fromkeys(data["run"]))
    for ax, name in zip(axes.ravel(), names, strict=False):
        for i, run in enumerate(runs):
            line = data[(data["group"] == name) & (data["run"] == run)]
            if line.empty:
                continue
            colour = f"C{i % 10}"
            ax.plot(line["k"], line["pass_at_k"], color=colour, label=run, lw=1.6)
            ax.fill_between(line["k"], line["ci_low"], line["ci_high"], color=colour, alpha=0.2)
            if maj is not None and scope == "task":
                votes = maj[(maj["task"] == name) & (maj["run"] == run)]
                if not votes.empty:
                    ax.plot(votes["k"], votes["maj_at_k"], color=colour, ls="--", lw=1.2,
                            label=f"{run} maj@k")  # fmt: skip
        ax.set_xscale("log", base=2)
        ax.set_ylim(-0.02, 1.02)
        ax.set_title(display_name(name), fontsize=10)
        ax.set_xlabel("k")
        ax.set_ylabel("pass@k")
        ax.grid(alpha=0.3)
    for ax in axes.ravel()[len(names) :]:
        ax.set_visible(False)
    axes.ravel()[0].legend(fontsize=8, loc="lower right")
    voting = "; dashed: maj@k" if maj is not None and scope == "task" and len(maj) else ""
    fig.suptitle(title or f"pass@k per {scope} (shaded: bootstrap CI over problems{voting})")
    return fig


def plot_passk_by_step(
    curves: Any,
    steps: Mapping[str, int],
    ks: Sequence[int],
    *,
    scope: str = "task",
    groups: Sequence[str] | None = None,
    ncols: int = 3,
) -> Any:
    """One panel per group of ``scope``: pass@k against the training step of each run (the base
    at step 0), a line per k of ``ks`` with its bootstrap band.

    ``curves`` is :func:`passk_curves` output for the runs named in ``steps`` ({run: step}).
    """
    from matplotlib.figure import Figure

    data = curves[(curves["scope"] == scope) & curves["run"].isin(list(steps))]
    if data.empty:
        raise ValueError(f"no curves with scope {scope!r} for runs {list(steps)}")
    names = list(groups) if groups is not None else sorted(data["group"].unique())
    ncols = max(1, min(ncols, len(names)))
    nrows = -(-len(names) // ncols)
    fig = Figure(figsize=(4.2 * ncols, 3.2 * nrows + 0.5), layout="constrained")
    axes = fig.subplots(nrows, ncols, squeeze=False)
    for ax, name in zip(axes.ravel(), names, strict=False):
        for i, k in enumerate(ks):
            line = data[(data["group"] == name) & (data["k"] == k)].copy()
            line["step"] = line["run"].map(steps)
            line = line.sort_values("step")
            colour = f"C{i % 10}"
            ax.plot(
                line["step"], line["pass_at_k"], color=colour, marker="o", ms=3, label=f"pass@{k}"
            )
            ax.fill_between(line["step"], line["ci_low"], line["ci_high"], color=colour, alpha=0.2)
        ax.set_ylim(-0.02, 1.02)
        ax.set_title(display_name(name), fontsize=10)
        ax.set_xlabel("training step (0 = base)")
        ax.set_ylabel("pass@k")
        ax.grid(alpha=0.3)
    for ax in axes.ravel()[len(names) :]:
        ax.set_visible(False)
    axes.ravel()[0].legend(fontsize=8, loc="best")
    fig.suptitle(f"pass@k against training step, per {scope} (shaded: bootstrap CI)")
    return fig
