"""Per-task correlations: against scipy and numpy directly, bootstrap against a plain loop."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
from scipy import stats as sps

from prorl_eval.analysis.boundary import compare_boundary
from prorl_eval.analysis.correlation import (
    bootstrap_coefficients,
    correlate,
    correlation_points,
    per_task_values,
    plot_correlation,
)
from prorl_eval.errors import UserError

# Weak bases gain most (the ProRL trend), with a tie in x to exercise Spearman's average ranks.
X = np.array([0.95, 0.9, 0.7, 0.7, 0.5, 0.35, 0.2, 0.1, 0.05])
Y = np.array([0.01, -0.02, 0.1, 0.05, 0.2, 0.18, 0.4, 0.35, 0.6])


def loop_bootstrap(x, y, resamples, seed):
    """Plain loop: scipy/numpy on each resample; NaN when x or y is constant."""
    idx = np.random.default_rng(seed).integers(0, len(x), size=(resamples, len(x)))
    out = {"slope": [], "pearson_r": [], "spearman_rho": []}
    for row in idx:
        xs, ys = x[row], y[row]
        if np.ptp(xs) == 0 or np.ptp(ys) == 0:
            for values in out.values():
                values.append(np.nan)
            continue
        out["slope"].append(np.polyfit(xs, ys, 1)[0])
        out["pearson_r"].append(sps.pearsonr(xs, ys).statistic)
        out["spearman_rho"].append(sps.spearmanr(xs, ys).statistic)
    return {name: np.array(values) for name, values in out.items()}


def test_point_estimates_match_scipy_and_numpy():
    got = correlate(X, Y, resamples=50)
    assert got["num_points"] == len(X)
    assert got["pearson_r"] == pytest.approx(sps.pearsonr(X, Y).statistic, abs=1e-12)
    assert got["pearson_r"] == pytest.approx(np.corrcoef(X, Y)[0, 1], abs=1e-12)
    assert got["pearson_p"] == pytest.approx(sps.pearsonr(X, Y).pvalue, rel=1e-9)
    ranks = sps.rankdata(X), sps.rankdata(Y)
    assert got["spearman_rho"] == pytest.approx(np.corrcoef(*ranks)[0, 1], abs=1e-12)
    assert got["spearman_p"] == pytest.approx(sps.spearmanr(X, Y).pvalue, rel=1e-9)
    slope, intercept = np.polyfit(X, Y, 1)
    assert (got["slope"], got["intercept"]) == pytest.approx((slope, intercept), abs=1e-12)
    assert got["pearson_r"] < -0.9 and got["pearson_p"] < 0.001
    # p-value by hand: t = r sqrt(T-2) / sqrt(1-r^2) with T-2 degrees of freedom
    r, t_dof = got["pearson_r"], len(X) - 2
    t = r * np.sqrt(t_dof) / np.sqrt(1 - r * r)
    assert got["pearson_p"] == pytest.approx(2 * sps.t.sf(abs(t), t_dof), rel=1e-6)


@pytest.mark.parametrize("seed", [0, 13])
def test_bootstrap_matches_a_plain_loop(seed):
    vectorised = bootstrap_coefficients(X, Y, 300, seed)
    looped = loop_bootstrap(X, Y, 300, seed)
    for name in ("slope", "pearson_r", "spearman_rho"):
        assert np.isnan(vectorised[name]).tolist() == np.isnan(looped[name]).tolist()
        assert vectorised[name] == pytest.approx(looped[name], abs=1e-10, nan_ok=True)
    got = correlate(X, Y, resamples=300, seed=seed, level=0.9)
    valid = ~np.isnan(looped["pearson_r"])
    assert got["valid_resamples"] == int(valid.sum())
    for name in ("slope", "pearson_r", "spearman_rho"):
        want = np.quantile(looped[name][valid], [0.05, 0.95])
        assert got[f"{name}_ci"] == pytest.approx(want.tolist(), abs=1e-10)


def test_degenerate_resamples_are_skipped():
    # 3 points, 2 of them equal in x: many resamples have constant x
    x, y = np.array([0.0, 0.0, 1.0]), np.array([0.0, 0.5, 1.0])
    looped = loop_bootstrap(x, y, 200, 1)
    got = correlate(x, y, resamples=200, seed=1)
    n_valid = int((~np.isnan(looped["pearson_r"])).sum())
    assert 0 < n_valid < 200 and got["valid_resamples"] == n_valid
    low, high = got["pearson_r_ci"]
    assert -1.0 <= low <= high <= 1.0


@pytest.mark.parametrize(
    ("x", "y", "match"),
    [
        ([0.1, 0.2], [0.3, 0.1], "at least 3"),
        ([0.5, 0.5, 0.5], [0.1, 0.2, 0.3], "same on every task"),
        ([0.1, 0.2, 0.3], [0.2, 0.2, 0.2], "same on every task"),
    ],
)
def test_too_few_or_constant_points_are_refused(x, y, match):
    with pytest.raises(UserError, match=match):
        correlate(x, y)


def test_non_finite_points_are_a_bug_not_a_user_error():
    with pytest.raises(ValueError, match="finite"):
        correlate([0.1, np.nan, 0.3], [0.1, 0.2, 0.3])


def _task_table():
    rows = []
    for i, bx in enumerate(X[:5]):
        # 10 problems per task; base solves round(10*bx) problems every time
        solved = round(10 * bx)
        rows += [(f"t{i}", str(p), 4, 4 if p < solved else 0) for p in range(10)]
    base = pd.DataFrame(rows, columns=["task", "problem_id", "n", "c"])
    rl = base.copy()
    rl.loc[rl.c == 0, "c"] = 1  # RL solves every unsolved problem once in 4
    return compare_boundary(base, {"rl": rl}, k=4).tasks


def test_points_from_a_task_table_and_creativity_merge():
    tasks = _task_table()
    points = correlation_points(tasks)
    assert points.columns.tolist() == [
        "task",
        "base_pass_at_1",
        "base_pass_at_k",
        "gain_pass_at_1",
        "gain_pass_at_k",
    ]
    # base pass@4 = fraction solved; gain pass@1 = unsolved fraction / 4; gain pass@4 = unsolved
    solved = np.array([round(10 * b) / 10 for b in X[:5]])
    assert points.base_pass_at_k.to_numpy() == pytest.approx(solved)
    assert points.gain_pass_at_1.to_numpy() == pytest.approx((1 - solved) / 4)
    assert points.gain_pass_at_k.to_numpy() == pytest.approx(1 - solved)
    stats = correlate(points.base_pass_at_k, points.gain_pass_at_1, resamples=50)
    assert stats["pearson_r"] == pytest.approx(-1.0) and stats["slope"] == pytest.approx(-0.25)

    creativity = pd.DataFrame({"task": ["t0", "t2", "t9"], "creativity_index": [1.5, 2.0, 9.0]})
    merged = correlation_points(tasks, creativity)
    assert merged.set_index("task").creativity_index.to_dict() == pytest.approx(
        {"t0": 1.5, "t1": np.nan, "t2": 2.0, "t3": np.nan, "t4": np.nan}, nan_ok=True
    )
    with pytest.raises(UserError, match="lacks column"):
        correlation_points(tasks, creativity.rename(columns={"creativity_index": "ci"}))
    with pytest.raises(UserError, match="twice"):
        correlation_points(tasks, pd.concat([creativity, creativity]))


def test_per_response_creativity_is_averaged_per_problem_then_task():
    rows = pd.DataFrame(
        {
            "task": ["a", "a", "a", "a", "b", "b"],
            "problem_id": ["0", "0", "0", "1", "0", "1"],
            "sample_idx": [0, 1, 2, 0, 0, 0],
            "model": "m",
            "creativity_index": [1.0, 2.0, None, 6.0, 0.5, None],  # None: too short to score
        }
    )
    got = per_task_values(rows, "creativity_index").set_index("task").creativity_index
    # a: problem 0 -> mean(1, 2) = 1.5, problem 1 -> 6; task mean (1.5 + 6) / 2, not (1+2+6)/3
    assert got.to_dict() == {"a": pytest.approx(3.75), "b": pytest.approx(0.5)}
    with pytest.raises(UserError, match="mixes models"):
        per_task_values(rows.assign(model=["m", "x", "m", "m", "m", "m"]), "creativity_index")


def test_plot_labels_every_point_and_draws_the_fit():
    points = pd.DataFrame({"task": [f"t{i}" for i in range(len(X))], "x": X, "y": Y})
    stats = correlate(X, Y, resamples=50)
    fig = plot_correlation(points, "x", "y", stats, axis_labels=("base pass@128", "gain"))
    ax = fig.axes[0]
    assert sorted(t.get_text() for t in ax.texts) == sorted(points.task)
    fit = next(line for line in ax.lines if line.get_label() == "fit")
    xs, ys = fit.get_xdata(), fit.get_ydata()
    assert ys == pytest.approx(stats["slope"] * xs + stats["intercept"])
    assert ax.get_xlabel() == "base pass@128" and "Pearson r=" in fig.get_suptitle()


def test_labels_of_nearby_points_do_not_overlap():
    """Seen in the miniature report: two tasks at base pass@32 0.94 and 1.0 with gain 0 printed
    one label over the other. Coincident points share a label; nearby ones are staggered."""
    points = pd.DataFrame(
        {
            "task": ["sums", "products", "capitals", "also-capitals", "chain"],
            "x": [0.69, 0.94, 1.0, 1.0, 0.0],
            "y": [0.0, 0.0, 0.0, 0.0, 0.06],
        }
    )
    stats = correlate(points.x.to_numpy(), points.y.to_numpy(), resamples=50)
    fig = plot_correlation(points, "x", "y", stats)
    fig.canvas.draw()
    boxes = {t.get_text(): t.get_window_extent() for t in fig.axes[0].texts}
    assert set(boxes) == {"sums", "products", "capitals, also-capitals", "chain"}
    names = sorted(boxes)
    for i, a in enumerate(names):
        for b in names[i + 1 :]:
            assert not boxes[a].overlaps(boxes[b]), (a, b)
