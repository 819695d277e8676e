"""Base vs RL boundary on synthetic counts whose every number is checkable by hand."""

from __future__ import annotations

import io
from math import comb

import numpy as np
import pandas as pd
import pytest

from prorl_eval.analysis.boundary import (
    classify_regimes,
    compare_boundary,
    plot_boundary,
)
from prorl_eval.errors import UserError


def counts(spec: dict[str, list[tuple[str, int, int]]]) -> pd.DataFrame:
    """{task: [(problem_id, n, c), ...]} -> counts frame."""
    rows = [
        {"task": task, "problem_id": pid, "n": n, "c": c}
        for task, problems in spec.items()
        for pid, n, c in problems
    ]
    return pd.DataFrame(rows)


def brute_pass_at_k(n: int, c: int, k: int) -> float:
    """1 - C(n-c, k) / C(n, k) with exact integers."""
    return 1.0 - comb(n - c, k) / comb(n, k)


# Task "logic": 4 problems, n = 8. Task "math": 2 problems, n = 8 (base) / 10 (RL).
BASE = counts(
    {
        "logic": [("p0", 8, 0), ("p1", 8, 0), ("p2", 8, 4), ("p3", 8, 8)],
        "math": [("m0", 8, 6), ("m1", 8, 1)],
    }
)
STEP1 = counts(
    {
        "logic": [("p0", 8, 2), ("p1", 8, 0), ("p2", 8, 8), ("p3", 8, 8)],
        "math": [("m0", 10, 10), ("m1", 10, 0)],
    }
)
STEP2 = counts(
    {
        "logic": [("p0", 8, 4), ("p1", 8, 1), ("p2", 8, 8), ("p3", 8, 0)],
        "math": [("m0", 10, 10), ("m1", 10, 0)],
    }
)


def test_per_problem_and_per_task_numbers_by_hand():
    report = compare_boundary(BASE, {"step1": STEP1, "step2": STEP2}, k=4)
    problems = report.problems.set_index(["run", "task", "problem_id"])
    for run, frame in (("base", BASE), ("step1", STEP1), ("step2", STEP2)):
        for row in frame.itertuples():
            got = problems.loc[(run, row.task, row.problem_id)]
            assert got.pass_at_1 == row.c / row.n
            assert got.pass_at_k == pytest.approx(brute_pass_at_k(row.n, row.c, 4), abs=1e-12)

    tasks = report.tasks.set_index(["checkpoint", "task"])
    logic = tasks.loc[("step2", "logic")]
    assert logic.num_problems == 4
    assert logic.base_pass_at_1 == pytest.approx((0 + 0 + 4 / 8 + 1) / 4)
    assert logic.rl_pass_at_1 == pytest.approx((4 / 8 + 1 / 8 + 1 + 0) / 4)
    base_k = (0 + 0 + (1 - 1 / 70) + 1) / 4  # C(4,4)/C(8,4) = 1/70
    rl_k = ((1 - 1 / 70) + (1 - 35 / 70) + 1 + 0) / 4  # C(7,4)/C(8,4) = 35/70
    assert logic.base_pass_at_k == pytest.approx(base_k)
    assert logic.rl_pass_at_k == pytest.approx(rl_k)
    assert logic.gain_pass_at_k == pytest.approx(rl_k - base_k)
    # base never solves p0, p1; step2 solves both, with pass@1 4/8 and 1/8
    assert logic.base_unsolved == 2 and logic.rl_unsolved == 1
    assert logic.rl_only_solved == 2
    assert logic.rl_only_pass_at_1 == pytest.approx((4 / 8 + 1 / 8) / 2)
    # base solves p3 always, step2 never
    assert logic.base_only_solved == 1 and logic.base_only_pass_at_1 == 1.0

    step1 = tasks.loc[("step1", "logic")]
    assert step1.rl_only_solved == 1 and step1.rl_only_pass_at_1 == pytest.approx(2 / 8)
    assert step1.base_only_solved == 0 and np.isnan(step1.base_only_pass_at_1)

    math = tasks.loc[("step2", "math")]  # RL has n=10: each problem uses its own n
    assert math.rl_pass_at_k == pytest.approx((1 + 0) / 2)
    assert math.base_pass_at_k == pytest.approx((1 + brute_pass_at_k(8, 1, 4)) / 2)
    assert math.rl_only_solved == 0 and math.base_only_solved == 1
    assert math.base_only_pass_at_1 == pytest.approx(1 / 8)


def test_exclusive_problem_rows():
    report = compare_boundary(BASE, {"step1": STEP1, "step2": STEP2}, k=4)
    ex = report.exclusive
    step2 = ex[ex.checkpoint == "step2"]
    got = sorted(zip(step2.task, step2.problem_id, step2.side, step2.rl_c, strict=True))
    assert got == [
        ("logic", "p0", "rl_only", 4),
        ("logic", "p1", "rl_only", 1),
        ("logic", "p3", "base_only", 0),
        ("math", "m1", "base_only", 0),
    ]
    step1 = ex[ex.checkpoint == "step1"]
    assert list(zip(step1.problem_id, step1.side, strict=True)) == [
        ("p0", "rl_only"),
        ("m1", "base_only"),
    ]
    # checkpoints keep their training order, not alphabetical order
    late_first = compare_boundary(BASE, {"z_late": STEP1, "a_early": STEP2}, k=4).exclusive
    assert list(dict.fromkeys(late_first.checkpoint)) == ["z_late", "a_early"]
    # the exclusive counts of the task table are the row counts here
    per = ex.groupby(["checkpoint", "task", "side"]).size()
    tasks = report.tasks.set_index(["checkpoint", "task"])
    for (ckpt, task, side), count in per.items():
        assert tasks.loc[(ckpt, task), f"{side}_solved"] == count


def test_only_common_problems_are_compared_and_drops_reported():
    base = pd.concat([BASE, counts({"extra": [("e0", 8, 3)], "logic": [("p9", 8, 8)]})])
    rl = STEP2[STEP2.problem_id != "p1"]
    report = compare_boundary(base, {"rl": rl}, k=4)
    assert set(report.problems.problem_id) == {"p0", "p2", "p3", "m0", "m1"}
    assert report.tasks.set_index("task").num_problems.to_dict() == {"logic": 3, "math": 2}
    dropped = report.dropped.set_index(["run", "task"]).num_dropped.to_dict()
    assert dropped == {
        ("base", "extra"): 1,
        ("base", "logic"): 2,  # p1 (absent from RL) and p9 (absent from RL)
        ("base", "math"): 0,
        ("rl", "logic"): 0,
        ("rl", "math"): 0,
    }
    with pytest.raises(UserError, match="share no"):
        compare_boundary(BASE, {"rl": counts({"other": [("x", 8, 1)]})}, k=4)


def test_k_above_the_samples_is_refused_with_the_fix():
    with pytest.raises(UserError, match=r"k=9 .* run base on logic \(smallest n=8\); use --k 8"):
        compare_boundary(BASE, {"rl": STEP1}, k=9)
    # only compared problems count: a dropped problem with few samples does not block k
    base = pd.concat([BASE, counts({"logic": [("tiny", 2, 1)]})])
    assert len(compare_boundary(base, {"rl": STEP1}, k=8).tasks) == 2
    with pytest.raises(UserError, match="no RL run"):
        compare_boundary(BASE, {}, k=4)
    with pytest.raises(UserError, match="reserved"):
        compare_boundary(BASE, {"base": STEP1}, k=4)


def task_rows(gains_k: list[float], gain_1: float, task: str = "t") -> list[dict]:
    """Task-table rows for one task with the given per-checkpoint pass@k gains (base 0.5/0.3)."""
    rows = []
    for j, gain in enumerate(gains_k):
        rows.append(
            {
                "checkpoint": f"c{j}",
                "task": task,
                "base_pass_at_1": 0.3,
                "base_pass_at_k": 0.5,
                "rl_pass_at_1": 0.3 + gain_1,
                "rl_pass_at_k": 0.5 + gain,
                "gain_pass_at_1": gain_1,
                "gain_pass_at_k": gain,
            }
        )
    return rows


@pytest.mark.parametrize(
    ("gains_k", "gain_1", "growth", "expected", "reason"),
    [
        ([-0.05], 0.2, None, "diminished", "fell"),
        ([-0.021], 0.0, None, "diminished", "fell"),
        ([0.10], 0.0, None, "sustained", "gain 0.100"),
        ([0.021], 0.1, None, "sustained", ""),
        ([0.02], 0.1, None, "plateau", "pass@1 +0.100"),  # exactly δ is not a gain
        ([0.01], 0.2, None, "plateau", "pass@1"),
        ([-0.02], 0.2, None, "plateau", "pass@1"),  # exactly -δ is not a loss
        ([0.0], 0.0, None, "diminished", "unchanged"),
        ([0.01], 0.02, None, "diminished", "unchanged"),
        ([0.05, 0.10], 0.1, None, "sustained", "grew 0.050 → 0.100"),
        ([0.10, 0.11], 0.1, None, "plateau", "within γ"),
        ([0.10, 0.03], 0.1, None, "plateau", "within γ"),  # final below an earlier peak
        ([0.05, 0.20, 0.21], 0.1, None, "plateau", "earlier 0.200"),  # vs the best earlier
        ([0.05, 0.10], 0.1, 0.1, "plateau", "γ=0.1"),
        ([0.05, 0.10], 0.1, 0.0, "sustained", ""),
        ([0.10, -0.05], 0.3, None, "diminished", "fell"),
        ([0.10, 0.0], 0.3, None, "plateau", "pass@1"),
    ],
)
def test_regime_rules(gains_k, gain_1, growth, expected, reason):
    table = pd.DataFrame(task_rows(gains_k, gain_1))
    labels = [f"c{j}" for j in range(len(gains_k))]
    out = classify_regimes(table, labels, delta=0.02, growth_delta=growth).iloc[0]
    assert out.regime == expected
    assert reason in out.reason
    assert out.final_checkpoint == labels[-1]
    assert out.gain_pass_at_k == gains_k[-1]


def test_regimes_follow_the_given_checkpoint_order():
    table = pd.DataFrame(task_rows([0.20, 0.05], 0.1))  # c0 gain 0.20, c1 gain 0.05
    assert classify_regimes(table, ["c1", "c0"]).regime.tolist() == ["sustained"]
    assert classify_regimes(table, ["c0", "c1"]).regime.tolist() == ["plateau"]
    with pytest.raises(UserError, match="delta"):
        classify_regimes(table, ["c0", "c1"], delta=-0.1)


def test_end_to_end_regimes_on_synthetic_runs():
    # logic: gain grows 0 -> 0.25 -> 0.5 (sustained); math: base saturates, RL narrows.
    base = counts(
        {"logic": [(f"p{i}", 4, 0) for i in range(4)], "math": [("a", 4, 2), ("b", 4, 1)]}
    )
    s1 = counts({"logic": [("p0", 4, 1)] + [(f"p{i}", 4, 0) for i in (1, 2, 3)],
                 "math": [("a", 4, 4), ("b", 4, 0)]})  # fmt: skip
    s2 = counts({"logic": [("p0", 4, 2), ("p1", 4, 1), ("p2", 4, 0), ("p3", 4, 0)],
                 "math": [("a", 4, 4), ("b", 4, 0)]})  # fmt: skip
    report = compare_boundary(base, {"s1": s1, "s2": s2}, k=4, delta=0.05)
    regimes = report.regimes.set_index("task")
    assert regimes.regime.to_dict() == {"logic": "sustained", "math": "diminished"}
    assert regimes.loc["logic", "gain_pass_at_k"] == pytest.approx(0.5)
    assert regimes.loc["logic", "best_earlier_gain_pass_at_k"] == pytest.approx(0.25)
    assert regimes.loc["math", "gain_pass_at_k"] == pytest.approx(-0.5)


def test_plot_boundary_draws_base_and_each_checkpoint():
    report = compare_boundary(BASE, {"step1": STEP1, "step2": STEP2}, k=4)
    fig = plot_boundary(report.tasks, 4)
    ax = fig.axes[0]
    assert len(ax.patches) == 2 * 3 * 2  # tasks x runs x (pass@1, pass@k)
    assert [t.get_text() for t in ax.get_xticklabels()] == ["logic", "math"]
    heights = sorted(round(p.get_height(), 6) for p in ax.patches)
    assert round(report.tasks.rl_pass_at_k.max(), 6) in heights
    buffer = io.BytesIO()
    fig.savefig(buffer, format="png")
    assert buffer.getvalue()[:4] == b"\x89PNG"
