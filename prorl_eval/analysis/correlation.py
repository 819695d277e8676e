"""Does RL help most where the base is weakest? Per-task correlations with bootstrap CIs.

What
----
ProRL reports a strong negative correlation between a task's base pass@128 and the gain RL
brings on it ("the weaker the start, the stronger the gain"), and relates gains to the Creativity
Index. :func:`correlation_points` builds one point per task from a base-vs-RL task table
(:func:`prorl_eval.analysis.boundary.task_table`): ``x`` = base pass@k, ``y`` = the RL gain in
pass@1 (or pass@k), plus a creativity column when a per-task table of it is given.
:func:`correlate` then reports, over tasks:

- the least-squares line ``y ≈ slope · x + intercept`` (``scipy.stats.linregress``);
- Pearson's r and its two-sided p-value (``scipy.stats.pearsonr``: t-test with T − 2 degrees of
  freedom, exact under bivariate normality);
- Spearman's ρ (Pearson's r of the ranks, ties averaged) and its p-value
  (``scipy.stats.spearmanr``, t approximation);
- percentile bootstrap CIs of slope, r and ρ: resample r takes the tasks
  ``rng.integers(0, T, size=T)`` (row r of one ``(resamples, T)`` draw of
  ``numpy.random.default_rng(seed)``), the same tasks for all three coefficients. A resample
  whose x or y is constant has no defined coefficient and is skipped; ``valid_resamples`` says
  how many were used. With few tasks (the paper has ~20) the CIs are wide: read them before r.

Example:
    >>> stats = correlate([0.9, 0.5, 0.1, 0.3], [0.0, 0.2, 0.6, 0.5], resamples=200)
    >>> round(stats["pearson_r"], 3), stats["num_points"]
    (-0.975, 4)
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import numpy as np
from numpy.typing import ArrayLike

from prorl_eval.analysis.inputs import display_name
from prorl_eval.errors import UserError
from prorl_eval.passk import DEFAULT_BOOTSTRAP_RESAMPLES, DEFAULT_BOOTSTRAP_SEED

__all__ = [
    "GAIN_COLUMNS",
    "bootstrap_coefficients",
    "correlate",
    "correlation_points",
    "per_task_values",
    "plot_correlation",
]

GAIN_COLUMNS = {"pass@1": "gain_pass_at_1", "pass@k": "gain_pass_at_k"}
MIN_POINTS = 3


def _row_pearson(a_RT: np.ndarray, b_RT: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Row-wise Pearson r and least-squares slope of b on a; NaN where a or b is constant."""
    a_c = a_RT - a_RT.mean(axis=1, keepdims=True)
    b_c = b_RT - b_RT.mean(axis=1, keepdims=True)
    sab = (a_c * b_c).sum(axis=1)
    saa = (a_c * a_c).sum(axis=1)
    sbb = (b_c * b_c).sum(axis=1)
    ok = (np.ptp(a_RT, axis=1) > 0) & (np.ptp(b_RT, axis=1) > 0)
    r = np.full(len(a_RT), np.nan)
    slope = np.full(len(a_RT), np.nan)
    r[ok] = np.clip(sab[ok] / np.sqrt(saa[ok] * sbb[ok]), -1.0, 1.0)
    slope[ok] = sab[ok] / saa[ok]
    return r, slope


def bootstrap_coefficients(
    x: np.ndarray, y: np.ndarray, resamples: int, seed: int
) -> dict[str, np.ndarray]:
    """Bootstrap draws of slope, Pearson r and Spearman ρ over resampled points -> (resamples,).

    Every coefficient of resample r comes from the same points ``idx[r]`` with
    ``idx = default_rng(seed).integers(0, T, size=(resamples, T))``; NaN marks a resample with
    constant x or y.
    """
    from scipy.stats import rankdata

    idx_RT = np.random.default_rng(seed).integers(0, len(x), size=(resamples, len(x)))
    x_RT, y_RT = x[idx_RT], y[idx_RT]
    r, slope = _row_pearson(x_RT, y_RT)
    rho, _ = _row_pearson(rankdata(x_RT, axis=1), rankdata(y_RT, axis=1))
    return {"slope": slope, "pearson_r": r, "spearman_rho": rho}


def _as_points(x: ArrayLike, y: ArrayLike) -> tuple[np.ndarray, np.ndarray]:
    x_arr, y_arr = np.asarray(x, dtype=np.float64), np.asarray(y, dtype=np.float64)
    if x_arr.ndim != 1 or x_arr.shape != y_arr.shape:
        raise ValueError(f"x and y must be 1-D of one length, got {x_arr.shape}, {y_arr.shape}")
    if not (np.all(np.isfinite(x_arr)) and np.all(np.isfinite(y_arr))):
        raise ValueError("x and y must be finite (drop the tasks without a value first)")
    if len(x_arr) < MIN_POINTS:
        raise UserError(
            f"a correlation needs at least {MIN_POINTS} tasks with values (got {len(x_arr)}); "
            "evaluate both models on more tasks."
        )
    if np.ptp(x_arr) == 0 or np.ptp(y_arr) == 0:
        raise UserError(
            "x or y is the same on every task, so no correlation is defined; "
            "add tasks where the values differ."
        )
    return x_arr, y_arr


def correlate(
    x: ArrayLike,
    y: ArrayLike,
    *,
    resamples: int = DEFAULT_BOOTSTRAP_RESAMPLES,
    seed: int = DEFAULT_BOOTSTRAP_SEED,
    level: float = 0.95,
) -> dict[str, Any]:
    """Least-squares fit, Pearson and Spearman (with p-values) and their bootstrap CIs.

    Returns:
        JSON-ready dict: ``num_points, slope, intercept, pearson_r, pearson_p, spearman_rho,
        spearman_p``, ``{slope,pearson_r,spearman_rho}_ci`` as ``[low, high]``, ``level``,
        ``resamples``, ``valid_resamples``, ``seed``.

    Raises:
        UserError: fewer than 3 points, or x or y constant.
    """
    from scipy import stats

    if resamples < 1 or not 0.0 < level < 1.0:
        raise ValueError(f"need resamples >= 1 and 0 < level < 1 (got {resamples}, {level})")
    x_arr, y_arr = _as_points(x, y)
    fit = stats.linregress(x_arr, y_arr)
    pearson = stats.pearsonr(x_arr, y_arr)
    spearman = stats.spearmanr(x_arr, y_arr)
    draws = bootstrap_coefficients(x_arr, y_arr, resamples, seed)
    valid = np.all([np.isfinite(v) for v in draws.values()], axis=0)
    alpha = (1.0 - level) / 2.0
    out: dict[str, Any] = {
        "num_points": len(x_arr),
        "slope": float(fit.slope),
        "intercept": float(fit.intercept),
        "pearson_r": float(pearson.statistic),
        "pearson_p": float(pearson.pvalue),
        "spearman_rho": float(spearman.statistic),
        "spearman_p": float(spearman.pvalue),
    }
    for name, values in draws.items():
        if valid.any():
            low, high = np.quantile(values[valid], [alpha, 1.0 - alpha])
            out[f"{name}_ci"] = [float(low), float(high)]
        else:
            out[f"{name}_ci"] = [float("nan"), float("nan")]
    out.update(level=level, resamples=resamples, valid_resamples=int(valid.sum()), seed=seed)
    return out


def per_task_values(table: Any, column: str) -> Any:
    """``task, column`` with one row per task, from a per-task or a per-response table.

    A table with a ``problem_id`` column holds per-response rows (``creativity.csv`` of
    ``prorl-eval creativity score``): missing values (responses too short to score) are left out,
    and a task's value is the mean over problems of each problem's mean, as in that command's
    summary. A per-task table must list each task once. A ``model`` column with more than one
    model is refused: the values would mix models.
    """
    missing = [c for c in ("task", column) if c not in table.columns]
    if missing:
        raise UserError(
            f"the creativity table lacks column(s) {', '.join(missing)}; it needs 'task' and "
            f"'{column}' (or name the column with --creativity-column)."
        )
    if "model" in table.columns and table["model"].dropna().astype(str).nunique() > 1:
        models = ", ".join(sorted(table["model"].dropna().astype(str).unique()))
        raise UserError(
            f"the creativity table mixes models ({models}); keep the rows of the RL model only."
        )
    frame = table.assign(task=table["task"].astype(str))
    if "problem_id" in frame.columns:
        frame = frame.dropna(subset=[column])
        per_problem = frame.groupby(["task", "problem_id"])[column].mean().reset_index()
        return per_problem.groupby("task", sort=True)[column].mean().reset_index()
    if frame["task"].duplicated().any():
        raise UserError("the creativity table lists a task twice; keep one value per task.")
    return frame[["task", column]].reset_index(drop=True)


def correlation_points(
    tasks: Any, creativity: Any | None = None, *, creativity_column: str = "creativity_index"
) -> Any:
    """One row per task: base pass@1/pass@k, RL gains, and the task's creativity if given.

    Args:
        tasks: a :func:`~prorl_eval.analysis.boundary.task_table` of a single checkpoint.
        creativity: optional per-task or per-response table with ``task`` and
            ``creativity_column`` (see :func:`per_task_values`); tasks it lacks get NaN.
    """
    if tasks["checkpoint"].nunique() != 1:
        raise ValueError("correlation_points takes the task table of one checkpoint")
    columns = ["task", "base_pass_at_1", "base_pass_at_k", "gain_pass_at_1", "gain_pass_at_k"]
    points = tasks[columns].reset_index(drop=True)
    if creativity is None:
        return points
    return points.merge(per_task_values(creativity, creativity_column), on="task", how="left")


def _label_lifts(anchors: list[tuple[float, float]], near: float = 0.08) -> list[float]:
    """Vertical offsets (points) for the labels at `anchors`: a label whose point lies within
    `near` of the axes' spans from an earlier label's point goes 10 points above or below it,
    alternately, so the labels of nearby points do not print over each other."""
    if not anchors:
        return []
    xs, ys = [a[0] for a in anchors], [a[1] for a in anchors]
    x_span, y_span = (max(xs) - min(xs)) or 1.0, (max(ys) - min(ys)) or 1.0
    lifts: list[float] = []
    for i, (x, y) in enumerate(anchors):
        crowd = sum(
            abs(x - anchors[j][0]) < near * x_span and abs(y - anchors[j][1]) < near * y_span
            for j in range(i)
        )
        lifts.append(0.0 if crowd == 0 else 10.0 * ((crowd + 1) // 2) * (-1) ** (crowd + 1))
    return lifts


def plot_correlation(
    points: Any,
    x: str,
    y: str,
    stats: dict[str, Any],
    *,
    label: str = "task",
    axis_labels: Sequence[str] | None = None,
) -> Any:
    """Scatter of ``y`` against ``x`` with each point labelled and the least-squares line.

    Returns a ``matplotlib.figure.Figure`` (no pyplot, no display).
    """
    from matplotlib.figure import Figure

    data = points[[label, x, y]].dropna()
    fig = Figure(figsize=(6.5, 4.8), layout="constrained")
    ax = fig.subplots()
    ax.scatter(data[x], data[y], color="C0", zorder=3)
    # Tasks at the same point share one label, so labels never print over each other.
    at: dict[tuple[float, float], list[str]] = {}
    for _, row in data.iterrows():
        at.setdefault((round(row[x], 6), round(row[y], 6)), []).append(
            display_name(str(row[label]))
        )
    for ((px, py), names), lift in zip(at.items(), _label_lifts(list(at)), strict=True):
        ax.annotate(
            ", ".join(names), (px, py), fontsize=7, xytext=(3, 3 + lift), textcoords="offset points"
        )
    ax.margins(x=0.35, y=0.15)  # room for the labels of the outermost points
    grid = np.linspace(float(data[x].min()), float(data[x].max()), 50)
    ax.plot(grid, stats["slope"] * grid + stats["intercept"], color="C3", lw=1.5, label="fit")
    ax.axhline(0.0, color="grey", lw=0.6)
    x_label, y_label = axis_labels or (x, y)
    ax.set_xlabel(x_label)
    ax.set_ylabel(y_label)
    low, high = stats["pearson_r_ci"]
    fig.suptitle(
        f"Pearson r={stats['pearson_r']:.2f} [{low:.2f}, {high:.2f}] (p={stats['pearson_p']:.3g}), "
        f"Spearman ρ={stats['spearman_rho']:.2f} (p={stats['spearman_p']:.3g})",
        fontsize=9,
    )
    ax.grid(alpha=0.3)
    ax.legend(fontsize=8)
    return fig
