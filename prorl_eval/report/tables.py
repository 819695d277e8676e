"""Results → paper-style tables: benchmarks grouped by domain, one column per run, mean ± CI.

What
----
:func:`cell_table` reads each run's results (the tidy frame of :func:`prorl_eval.load_results`)
at one k and returns one row per (run, task): the mean pass@k over problems and the half-width of
its 95% bootstrap CI, both in percent. :func:`build_tables` pivots those cells into one
:class:`DomainTable` per domain, as in the ProRL paper's tables: rows are the benchmarks of the
domain, columns are the runs, the best value of each row is marked, and a domain with two or more
benchmarks ends with an average row.

Order: as the task catalogue lists tasks (`prorl-eval tasks`, which follows the paper: aime24 ...
olympiadbench; humaneval, humaneval_plus, mbpp_plus; gpqa_diamond; ifeval; then the starter sets
and gym:*), a task outside it after the listed ones of its family (`code:*` after mbpp_plus, a
configured `gym:<dataset>?...` by its dataset); domains in the order their first task comes in the
catalogue, others alphabetically, "other" last.

Definitions
-----------
- *Half-width*: results.json stores the percentile bootstrap interval ``[low, high]``, which need
  not be symmetric about the mean; the table shows ``(high - low) / 2``.
- *Average row*: the unweighted mean of the domain's benchmark means (every benchmark counts
  equally, as in the paper's "Avg" columns), over the benchmarks **every** run has; a benchmark
  missing from some run is left out of the average (``DomainTable.excluded`` lists it). Its CI is
  the stratified bootstrap of :func:`prorl_eval.analysis.curves.passk_curves` (problems resampled
  within each benchmark, with the run's own results.json bootstrap resamples and seed), computed
  from the run's per-problem counts; without counts the average has no CI (NaN).
- *Best*: the largest value **as displayed** (rounded to one decimal), so equal-looking values
  are all marked; a row with fewer than two values marks nothing.

Everything here is pure: frames in, frames and dataclasses out.

Example:
    >>> import pandas as pd
    >>> res = pd.DataFrame({"task": ["aime24"], "k": [1], "pass_at_k": [0.5], "ci_low": [0.4],
    ...                     "ci_high": [0.6], "num_problems": [30], "n": [8], "mean_score": [0.5]})
    >>> cells = cell_table({"base": res}, k=1)
    >>> cells[["run", "domain", "task"]].values.tolist(), cells["half_width"].round(9).tolist()
    ([['base', 'math', 'aime24']], [10.0])
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from prorl_eval.errors import UserError

__all__ = [
    "AVERAGE_ROW",
    "DomainTable",
    "average_interval",
    "build_tables",
    "cell_table",
    "domain_sort_key",
    "mark_best",
    "report_order",
    "task_sort_key",
]

AVERAGE_ROW = "Average"
CELL_COLUMNS = (
    "run",
    "domain",
    "task",
    "k",
    "mean",
    "half_width",
    "ci_low",
    "ci_high",
    "num_problems",
    "n",
)


@dataclass(frozen=True)
class DomainTable:
    """One domain's table. ``mean``, ``half_width`` and ``best`` are frames indexed by the
    benchmark rows (then :data:`AVERAGE_ROW` when the domain has two or more benchmarks) with one
    column per run; values are percent, NaN where a run lacks the benchmark (or, for
    ``half_width`` of the average, where no per-problem counts were given)."""

    domain: str
    tasks: tuple[str, ...]
    runs: tuple[str, ...]
    mean: Any
    half_width: Any
    best: Any
    problems: dict[str, str]
    averaged: tuple[str, ...]
    excluded: tuple[str, ...]

    @property
    def has_average(self) -> bool:
        """Whether the last row is the domain average (two or more benchmarks)."""
        return len(self.mean.index) > len(self.tasks)


def task_sort_key(task: str) -> tuple[int, str]:
    """Catalogue order (:func:`prorl_eval.tasks.registry.catalogue_position`), ties by name."""
    from prorl_eval.tasks.registry import catalogue_position

    return (catalogue_position(task), task)


def domain_sort_key(domain: str) -> tuple[int, str]:
    """The catalogue's domains in its order, then other domains alphabetically, "other" last."""
    from prorl_eval.analysis.curves import UNKNOWN_DOMAIN
    from prorl_eval.tasks.registry import catalogue_domains

    known = catalogue_domains()
    if domain in known:
        return (known.index(domain), "")
    return (len(known) + (domain == UNKNOWN_DOMAIN), domain)


def report_order(tasks: Sequence[str], domains: Mapping[str, str] | None = None) -> list[str]:
    """Tasks as the report lists them: by domain (:func:`domain_sort_key`), then catalogue order.

    Example:
        >>> report_order(["gym:b", "humaneval", "math500", "aime24", "gym:a"])
        ['aime24', 'math500', 'humaneval', 'gym:a', 'gym:b']
    """
    from prorl_eval.analysis.curves import task_domain

    def key(task: str) -> tuple:
        return (domain_sort_key(task_domain(task, domains)), task_sort_key(task))

    return sorted(dict.fromkeys(tasks), key=key)


def _check_k(label: str, frame: Any, k: int, all_ks: dict[str, set[int]]) -> None:
    """UserError naming the run and task without pass@k, and the k every run has."""
    for task, group in frame.groupby("task", sort=True):
        have = set(group["k"].astype(int))
        if k not in have:
            common = sorted(set.intersection(*all_ks.values()))
            choice = f"pick --k among {', '.join(map(str, common))}" if common else "no k is shared"
            raise UserError(
                f"run {label} has no pass@{k} for {task} (its results.json has k = "
                f"{', '.join(map(str, sorted(have)))}); {choice}, or recompute it with "
                f"`prorl-eval pass-at-k --samples RUN/samples.jsonl --k {k} --out RUN`."
            )


def cell_table(
    results: Mapping[str, Any], k: int, *, domains: Mapping[str, str] | None = None
) -> Any:
    """One row per (run, task) at ``k``: mean and CI half-width in percent (module doc).

    Args:
        results: ``{label: frame}`` with the columns of :func:`prorl_eval.load_results`; order
            is kept (it is the column order of the tables).
        k: the k of pass@k shown in the cells.
        domains: ``{task name or family: domain}`` (what the runs' run.json recorded) over the
            task catalogue's domains.

    Returns:
        DataFrame with :data:`CELL_COLUMNS`; ``ci_low``/``ci_high`` in percent too.

    Raises:
        UserError: a run has no tasks, or lacks pass@k at this k for one of its tasks.
    """
    import pandas as pd

    from prorl_eval.analysis.curves import task_domain

    if k < 1:
        raise UserError(f"--k must be >= 1 (got {k}).")
    all_ks = {}
    for label, frame in results.items():
        if frame.empty:
            raise UserError(f"run {label} has no tasks in its results.json; re-run pass-at-k.")
        all_ks[label] = set(frame["k"].astype(int))
    parts = []
    for label, frame in results.items():
        _check_k(label, frame, k, all_ks)
        at_k = frame[frame["k"].astype(int) == k]
        part = pd.DataFrame(
            {
                "run": label,
                "domain": [task_domain(str(t), domains) for t in at_k["task"]],
                "task": at_k["task"].astype(str).to_numpy(),
                "k": k,
                "mean": 100.0 * at_k["pass_at_k"].to_numpy(float),
                "half_width": 50.0 * (at_k["ci_high"] - at_k["ci_low"]).to_numpy(float),
                "ci_low": 100.0 * at_k["ci_low"].to_numpy(float),
                "ci_high": 100.0 * at_k["ci_high"].to_numpy(float),
                "num_problems": at_k["num_problems"].to_numpy(int),
                "n": at_k["n"].to_numpy(int),
            }
        )
        parts.append(part)
    return pd.concat(parts, ignore_index=True)[list(CELL_COLUMNS)]


def mark_best(values: Any, decimals: int = 1) -> Any:
    """Boolean frame: True at each row's largest value as displayed (rounded to ``decimals``).

    Ties are all marked; rows with fewer than two non-NaN values mark nothing.

    Example:
        >>> import pandas as pd
        >>> frame = pd.DataFrame({"a": [1.04, 5.0, 2.0], "b": [1.0, 4.0, float("nan")]})
        >>> mark_best(frame).values.tolist()
        [[True, True], [True, False], [False, False]]
    """
    shown = values.round(decimals)
    top = shown.max(axis=1)
    best = shown.eq(top, axis=0) & shown.notna()
    enough = shown.notna().sum(axis=1) >= 2
    return best & enough.to_numpy()[:, None]


def average_interval(
    counts: Any, tasks: Sequence[str], k: int, *, resamples: int, seed: int, level: float = 0.95
) -> tuple[float, float, float]:
    """Equal-weight mean of ``tasks``' pass@k from per-problem counts, with its stratified
    bootstrap interval ``(mean, low, high)`` (fractions), via
    :func:`prorl_eval.analysis.curves.passk_curves`.

    The domain is "everything given", so the tasks share one stratified bootstrap.
    """
    from prorl_eval.analysis.curves import passk_curves

    subset = counts[counts["task"].astype(str).isin(list(tasks))]
    missing = sorted(set(tasks) - set(subset["task"].astype(str)))
    if missing:
        raise ValueError(f"counts lack task(s) {', '.join(missing)}")
    one = {str(task): "averaged" for task in tasks}
    curves = passk_curves(
        {"run": subset}, domains=one, max_k=k, resamples=resamples, seed=seed, level=level
    )
    row = curves[(curves["scope"] == "domain") & (curves["k"] == k)]
    if len(row) != 1:
        raise ValueError(f"no averaged pass@{k} (is k above a task's samples per problem?)")
    row = row.iloc[0]
    return float(row["pass_at_k"]), float(row["ci_low"]), float(row["ci_high"])


def _problems(cells: Any, task: str) -> str:
    counts = sorted(set(cells.loc[cells["task"] == task, "num_problems"].astype(int)))
    return str(counts[0]) if len(counts) == 1 else f"{counts[0]}–{counts[-1]}"


def _average_row(
    cells: Any,
    runs: Sequence[str],
    averaged: Sequence[str],
    counts: Mapping[str, Any | None],
    bootstrap: Mapping[str, Mapping[str, int]],
    k: int,
) -> tuple[list[float], list[float]]:
    """(means, half-widths) of the average row, one per run, percent."""
    means, halves = [], []
    for run in runs:
        mine = cells[(cells["run"] == run) & cells["task"].isin(list(averaged))]
        means.append(float(mine["mean"].mean()))
        run_counts = counts.get(run)
        if run_counts is None:
            halves.append(float("nan"))
            continue
        boot = bootstrap.get(run, {})
        _, low, high = average_interval(
            run_counts,
            averaged,
            k,
            resamples=int(boot.get("resamples", 1000)),
            seed=int(boot.get("seed", 0)),
        )
        halves.append(50.0 * (high - low))
    return means, halves


def build_tables(
    cells: Any,
    *,
    counts: Mapping[str, Any | None] | None = None,
    bootstrap: Mapping[str, Mapping[str, int]] | None = None,
) -> list[DomainTable]:
    """One :class:`DomainTable` per domain, in :func:`domain_sort_key` order.

    Args:
        cells: :func:`cell_table` output (its run order is the column order).
        counts: ``{run: per-problem counts}`` (``task, problem_id, n, c``) for the average row's
            CI; a run mapped to None (or absent) gets an average without CI.
        bootstrap: ``{run: {"resamples": R, "seed": s}}``, each run's results.json settings
            (default 1000 and 0).
    """
    import pandas as pd

    runs = list(dict.fromkeys(cells["run"]))
    k = int(cells["k"].iloc[0])
    tables = []
    for domain in sorted(cells["domain"].unique(), key=domain_sort_key):
        part = cells[cells["domain"] == domain]
        tasks = sorted(part["task"].unique(), key=task_sort_key)
        mean = part.pivot(index="task", columns="run", values="mean").reindex(tasks, columns=runs)
        half = part.pivot(index="task", columns="run", values="half_width")
        half = half.reindex(tasks, columns=runs)
        averaged = [t for t in tasks if mean.loc[t].notna().all()]
        excluded = [t for t in tasks if t not in averaged]
        if len(tasks) >= 2 and averaged:
            avg_mean, avg_half = _average_row(
                part, runs, averaged, counts or {}, bootstrap or {}, k
            )
            mean.loc[AVERAGE_ROW] = avg_mean
            half.loc[AVERAGE_ROW] = avg_half
        mean.index.name = half.index.name = None
        mean.columns.name = half.columns.name = None
        tables.append(
            DomainTable(
                domain=str(domain),
                tasks=tuple(tasks),
                runs=tuple(runs),
                mean=mean.astype(float),
                half_width=pd.DataFrame(half, dtype=float),
                best=mark_best(mean.astype(float)),
                problems={t: _problems(part, t) for t in tasks},
                averaged=tuple(averaged) if len(tasks) >= 2 else (),
                excluded=tuple(excluded) if len(tasks) >= 2 else (),
            )
        )
    return tables
