"""pass@k curves: values against the plain-loop estimator, bands against a plain-loop bootstrap."""

from __future__ import annotations

import io

import numpy as np
import pandas as pd
import pytest

from prorl_eval import passk as passk_mod
from prorl_eval.analysis.curves import (
    bootstrap_means,
    passk_curves,
    plot_passk_curves,
    task_domain,
)
from prorl_eval.passk import pass_at_k_summary
from tests.oracles import pass_at_k_loop


def counts_frame(tasks: dict[str, tuple[list[int], list[int]]]) -> pd.DataFrame:
    rows = []
    for task, (ns, cs) in tasks.items():
        for i, (n, c) in enumerate(zip(ns, cs, strict=True)):
            rows.append({"task": task, "problem_id": str(i), "n": n, "c": c})
    return pd.DataFrame(rows)


def random_counts(rng, tasks: dict[str, int], n_choices=(6, 8, 9)) -> pd.DataFrame:
    spec = {}
    for task, problems in tasks.items():
        ns = rng.choice(n_choices, size=problems).tolist()
        cs = [int(rng.integers(0, n + 1)) for n in ns]
        spec[task] = (ns, cs)
    return counts_frame(spec)


def loop_band(values_KP: np.ndarray, idx_RP: np.ndarray, level: float):
    """Plain loops: for every resample and k, the mean of the resampled problems' values."""
    resamples = idx_RP.shape[0]
    means = np.empty((values_KP.shape[0], resamples))
    for r in range(resamples):
        for k in range(values_KP.shape[0]):
            means[k, r] = np.mean([values_KP[k, i] for i in idx_RP[r]])
    alpha = (1 - level) / 2
    return np.quantile(means, alpha, axis=1), np.quantile(means, 1 - alpha, axis=1), means


@pytest.mark.parametrize(
    ("task", "mapping", "expected"),
    [
        ("gym:basic_arithmetic", None, "logic"),
        ("gym:spell_backward", None, "logic"),
        ("aime24", None, "math"),
        ("aime25", None, "math"),
        ("amc23", None, "math"),
        ("math500", None, "math"),
        ("minerva", None, "math"),
        ("olympiadbench", None, "math"),
        ("humaneval", None, "code"),
        ("humaneval_plus", None, "code"),
        ("mbpp_plus", None, "code"),
        ("code:apps", None, "code"),
        ("gpqa_diamond", None, "stem"),
        ("starter:capitals", None, "knowledge"),  # the catalogue's domain, as the task's own
        ("starter:sums-train", None, "math"),
        ("starter:capitals", {"starter": "trivia"}, "trivia"),  # the mapping beats the catalogue
        ("gym:chain_sum?max_digits=1", None, "logic"),
        ("ifeval", None, "ifeval"),
        ("mystery", None, "other"),
        ("mystery:x", None, "other"),
        ("aime24:hard", None, "math"),  # a variant takes its base name's domain
        ("xaime24", None, "other"),  # no substring matching
        ("mystery:x", {"mystery": "science"}, "science"),
        ("gym:special", {"gym:special": "math"}, "math"),  # exact name beats the family
        ("gym:other", {"gym:special": "math"}, "logic"),
        ("aime24", {"aime24": "olympiad"}, "olympiad"),  # user mapping overrides defaults
    ],
)
def test_task_domain(task, mapping, expected):
    assert task_domain(task, mapping) == expected


def test_hand_computed_curve():
    # n=4: c=0 -> 0 for every k; c=2 -> pass@1 = 1/2, pass@2 = 1 - C(2,2)/C(4,2) = 5/6, then 1.
    counts = counts_frame({"gym:a": ([4, 4], [0, 2])})
    out = passk_curves({"base": counts}, resamples=20)
    task = out[out.scope == "task"]
    assert task.k.tolist() == [1, 2, 3, 4]
    assert task.pass_at_k.tolist() == pytest.approx([0.25, 5 / 12, 0.5, 0.5])
    assert set(out.scope) == {"task", "domain", "overall"}
    assert out[out.scope == "domain"].group.unique().tolist() == ["logic"]
    # one task: domain and overall equal the task curve
    for scope in ("domain", "overall"):
        assert out[out.scope == scope].pass_at_k.tolist() == pytest.approx(task.pass_at_k.tolist())


def test_values_match_the_plain_loop_and_weighting_is_per_task():
    rng = np.random.default_rng(3)
    counts = random_counts(rng, {"gym:a": 3, "gym:b": 17, "aime24": 5})
    out = passk_curves({"run": counts}, resamples=10)
    per_task = {}
    for task, group in counts.groupby("task"):
        n, c = group.n.to_numpy(), group.c.to_numpy()
        rows = out[(out.scope == "task") & (out.group == task)]
        assert rows.k.tolist() == list(range(1, n.min() + 1))
        expected = [pass_at_k_loop(n, c, k).mean() for k in range(1, n.min() + 1)]
        assert rows.pass_at_k.to_numpy() == pytest.approx(expected, abs=1e-12)
        assert set(rows.n) == {n.min()} and set(rows.num_problems) == {len(n)}
        per_task[task] = expected
    logic = out[(out.scope == "domain") & (out.group == "logic")]
    top = min(len(per_task["gym:a"]), len(per_task["gym:b"]))
    assert logic.k.max() == top
    want = [(per_task["gym:a"][i] + per_task["gym:b"][i]) / 2 for i in range(top)]
    assert logic.pass_at_k.to_numpy() == pytest.approx(want, abs=1e-12)
    overall = out[out.scope == "overall"]
    top = min(len(v) for v in per_task.values())
    want = [np.mean([v[i] for v in per_task.values()]) for i in range(top)]
    assert overall.pass_at_k.to_numpy() == pytest.approx(want, abs=1e-12)
    assert set(overall.num_tasks) == {3} and set(overall.num_problems) == {25}
    # equal weight per task is not the problem-weighted pooled mean
    pooled = [pass_at_k_loop(counts.n, counts.c, k).mean() for k in range(1, top + 1)]
    assert not np.allclose(overall.pass_at_k.to_numpy(), pooled)


def test_max_k_caps_every_scope():
    counts = random_counts(np.random.default_rng(0), {"gym:a": 4, "math500": 4})
    out = passk_curves({"r": counts}, max_k=3, resamples=5)
    assert out.groupby(["scope", "group"]).k.max().eq(3).all()
    with pytest.raises(ValueError, match="max_k"):
        passk_curves({"r": counts}, max_k=0)


@pytest.mark.parametrize("level", [0.95, 0.8])
def test_task_bands_match_a_plain_loop_bootstrap_and_results_json(level):
    rng = np.random.default_rng(7)
    counts = random_counts(rng, {"gym:a": 9})
    resamples, seed = 60, 11
    out = passk_curves({"r": counts}, resamples=resamples, seed=seed, level=level)
    n, c = counts.n.to_numpy(), counts.c.to_numpy()
    ks = range(1, n.min() + 1)
    values = np.array([pass_at_k_loop(n, c, k) for k in ks])
    idx = np.random.default_rng(seed).integers(0, len(n), size=(resamples, len(n)))
    low, high, _ = loop_band(values, idx, level)
    task = out[out.scope == "task"]
    assert task.ci_low.to_numpy() == pytest.approx(low, abs=1e-12)
    assert task.ci_high.to_numpy() == pytest.approx(high, abs=1e-12)
    assert (task.ci_low <= task.ci_high).all()
    if level == 0.95:  # identical to the CI `prorl-eval pass-at-k` writes to results.json
        summary = pass_at_k_summary(n, c, list(ks), resamples=resamples, seed=seed)
        for k in ks:
            row = task[task.k == k].iloc[0]
            assert [row.ci_low, row.ci_high] == pytest.approx(summary["pass_at_k_ci95"][str(k)])


def test_group_bands_are_a_stratified_bootstrap():
    rng = np.random.default_rng(5)
    counts = random_counts(rng, {"gym:a": 5, "gym:b": 8, "ifeval": 3})
    resamples, seed = 40, 2
    out = passk_curves({"r": counts}, resamples=resamples, seed=seed)
    tasks = {t: (g.n.to_numpy(), g.c.to_numpy()) for t, g in counts.groupby("task")}
    for scope, group, members in [
        ("domain", "logic", ["gym:a", "gym:b"]),
        ("overall", "overall", ["gym:a", "gym:b", "ifeval"]),
    ]:
        top = min(tasks[t][0].min() for t in members)
        draw = np.random.default_rng(seed)  # one generator, member tasks in sorted order
        task_means = []
        for t in sorted(members):
            n, c = tasks[t]
            values = np.array([pass_at_k_loop(n, c, k) for k in range(1, top + 1)])
            idx = draw.integers(0, len(n), size=(resamples, len(n)))
            task_means.append(loop_band(values, idx, 0.95)[2])
        averaged = np.mean(task_means, axis=0)
        rows = out[(out.scope == scope) & (out.group == group)]
        assert rows.ci_low.to_numpy() == pytest.approx(np.quantile(averaged, 0.025, axis=1))
        assert rows.ci_high.to_numpy() == pytest.approx(np.quantile(averaged, 0.975, axis=1))


def test_bootstrap_means_same_stream_in_chunks(monkeypatch):
    values = np.random.default_rng(1).random((3, 7))
    whole = bootstrap_means(values, 50, np.random.default_rng(4))
    monkeypatch.setattr(passk_mod, "_BOOTSTRAP_CHUNK_ELEMENTS", 7 * 3)  # 3 resamples per chunk
    chunked = bootstrap_means(values, 50, np.random.default_rng(4))
    assert chunked == pytest.approx(whole, abs=1e-15)
    idx = np.random.default_rng(4).integers(0, 7, size=(50, 7))
    assert whole == pytest.approx(loop_band(values, idx, 0.95)[2], abs=1e-12)


def test_runs_keep_their_order_and_are_independent():
    rng = np.random.default_rng(9)
    a, b = random_counts(rng, {"gym:a": 4}), random_counts(rng, {"gym:a": 4, "aime24": 3})
    both = passk_curves({"zeta": a, "alpha": b}, resamples=15)
    assert list(dict.fromkeys(both.run)) == ["zeta", "alpha"]
    alone = passk_curves({"alpha": b}, resamples=15)
    pd.testing.assert_frame_equal(
        both[both.run == "alpha"].reset_index(drop=True), alone.reset_index(drop=True)
    )


def test_plot_has_a_panel_per_group_and_a_line_per_run():
    rng = np.random.default_rng(2)
    runs = {
        "base": random_counts(rng, {"gym:a": 4, "aime24": 4, "humaneval": 3}),
        "rl": random_counts(rng, {"gym:a": 4, "aime24": 4, "humaneval": 3}),
    }
    out = passk_curves(runs, resamples=10)
    fig = plot_passk_curves(out, "task", ncols=2)
    visible = [ax for ax in fig.axes if ax.get_visible()]
    assert sorted(ax.get_title() for ax in visible) == ["aime24", "gym:a", "humaneval"]
    assert all(len(ax.lines) == 2 and ax.get_xscale() == "log" for ax in visible)
    assert len(fig.axes) == 4  # a 2x2 grid, last panel hidden
    line = visible[0].lines[0]
    assert list(line.get_xdata()) == list(range(1, len(line.get_xdata()) + 1))
    buffer = io.BytesIO()
    fig.savefig(buffer, format="png")
    assert buffer.getvalue()[:8] == b"\x89PNG\r\n\x1a\n"
    assert len(plot_passk_curves(out, "domain").axes) == 3
    with pytest.raises(ValueError, match="scope"):
        plot_passk_curves(out, "nope")


def test_display_names_shorten_custom_tasks():
    from prorl_eval.analysis.inputs import display_name

    assert display_name("custom:a/b/capitals.jsonl?prompt=q&answer=a") == "custom:capitals"
    assert display_name("custom:org/data?prompt=q") == "custom:data"
    assert display_name("gym:basic_arithmetic") == "gym:basic_arithmetic"
    assert display_name("x" * 50, width=10) == "x" * 9 + "…"
