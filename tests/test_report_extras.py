"""maj@k curves, and the report's sections on majority voting, lengths and breakdowns."""

from __future__ import annotations

import json

import numpy as np
import pandas as pd
import pytest
from conftest import run_cli
from oracles import maj_at_k_enumerated

from prorl_eval.analysis.curves import passk_curves, plot_passk_curves
from prorl_eval.analysis.inputs import problem_counts
from prorl_eval.analysis.majority import maj_curves
from prorl_eval.results import summarize


def voted_rows(seed: int = 0, problems: int = 6, n: int = 6) -> list[dict]:
    """Answers where the right one ("7") is common but not always the majority."""
    rng = np.random.default_rng(seed)
    rows = []
    for p in range(problems):
        weights = rng.dirichlet([1.0, 1.0, 1.0, 0.5])
        for i in range(n):
            answer = ["7", "8", "9", None][int(rng.choice(4, p=weights))]
            rows.append({
                "task": "gym:t", "problem_id": str(p), "sample_idx": i,
                "score": float(answer == "7"), "correct": answer == "7", "threshold": 1.0,
                "extracted_answer": answer, "tags": {"level": str(p % 2)},
                "num_tokens": int(rng.integers(5, 60)),
                "finish_reason": "length" if rng.random() < 0.2 else "stop",
            })  # fmt: skip
    return rows


def test_maj_curves_are_the_mean_of_each_problem_s_maj_at_k():
    rows = voted_rows()
    curve = maj_curves({"base": pd.DataFrame(rows)})
    assert curve.k.tolist() == [1, 2, 3, 4, 5, 6] and set(curve.task) == {"gym:t"}
    for k, value in zip(curve.k, curve.maj_at_k, strict=True):
        expected = np.mean([
            maj_at_k_enumerated([r["extracted_answer"] for r in rows if r["problem_id"] == str(p)],
                                [r["correct"] for r in rows if r["problem_id"] == str(p)], k)
            for p in range(6)
        ])  # fmt: skip
        assert value == pytest.approx(expected)
    no_answers = pd.DataFrame([{**r, "extracted_answer": None} for r in rows])
    assert maj_curves({"base": no_answers}).empty


def test_the_task_panels_draw_maj_at_k_dashed():
    frame = pd.DataFrame(voted_rows())
    curves = passk_curves({"base": problem_counts(frame)}, resamples=20)
    fig = plot_passk_curves(curves, "task", maj=maj_curves({"base": frame}))
    styles = [line.get_linestyle() for line in fig.axes[0].get_lines()]
    assert styles == ["-", "--"] and "dashed: maj@k" in fig._suptitle.get_text()


def test_report_shows_voting_lengths_and_breakdowns(tmp_path):
    run = tmp_path / "run"
    run.mkdir()
    rows = voted_rows()
    (run / "samples.jsonl").write_text("".join(json.dumps(r) + "\n" for r in rows))
    results = {"tasks": summarize(rows, [1, 2, 4], by=["level"], resamples=50), "ks": [1, 2, 4],
               "model": "m"}  # fmt: skip
    (run / "results.json").write_text(json.dumps(results))
    done = run_cli("report", str(run), "--out", str(tmp_path / "r"))
    assert done.returncode == 0, done.stderr
    text = (tmp_path / "r" / "report.md").read_text()
    summary = results["tasks"]["gym:t"]
    assert "## Majority voting and response lengths (k = 4)" in text
    maj = summary["maj_at_k"]["4"]
    low, high = summary["maj_at_k_ci95"]["4"]
    assert f"{100 * maj:.1f} \\[{100 * low:.1f}, {100 * high:.1f}\\]" in text
    assert f"| {100 * summary['truncated_share']:.1f} |" in text
    assert "## Breakdowns by problem tags" in text and "| level = 0 | 3 |" in text
    assert "Dashed: maj@k" in text
