"""Results into pandas, and the k helpers."""

from __future__ import annotations

import json

import pytest

import prorl_eval
from prorl_eval.errors import UserError
from prorl_eval.results import default_ks, parse_ks, summarize


def _rows():
    return [
        {
            "task": task,
            "problem_id": str(p),
            "sample_idx": i,
            "score": float(i <= p),
            "correct": i <= p,
            "sampling": {"temperature": 0.6, "seed": 0},
        }
        for task in ("a", "b")
        for p in range(3)
        for i in range(4)
    ]


def test_load_samples_and_results_into_pandas(tmp_path):
    rows = _rows()
    (tmp_path / "samples.jsonl").write_text("".join(json.dumps(r) + "\n" for r in rows))
    results = {"tasks": summarize(rows, [1, 2, 4]), "model": "m", "ks": [1, 2, 4]}
    (tmp_path / "results.json").write_text(json.dumps(results))

    samples = prorl_eval.load_samples(tmp_path)
    assert len(samples) == 24
    assert {"task", "problem_id", "sample_idx", "score", "correct", "sampling.temperature"} <= set(
        samples.columns
    )
    assert samples.groupby("task")["correct"].sum().to_dict() == {"a": 6, "b": 6}

    frame = prorl_eval.load_results(tmp_path / "results.json")
    assert len(frame) == 2 * 3
    row = frame[(frame.task == "a") & (frame.k == 1)].iloc[0]
    assert row.pass_at_k == pytest.approx(6 / 12)
    assert row.ci_low <= row.pass_at_k <= row.ci_high
    assert frame[frame.k == 4].pass_at_k.tolist() == [1.0, 1.0]
    assert frame.attrs["run"]["model"] == "m"


def test_k_parsing_and_defaults():
    assert parse_ks("8, 1,2,2") == [1, 2, 8]
    assert default_ks(16) == [1, 2, 4, 8, 16]
    assert default_ks(12) == [1, 2, 4, 8, 12]
    assert default_ks(1) == [1]
    for bad in ("0", "-1", "a", ""):
        with pytest.raises(UserError):
            parse_ks(bad)


def test_summary_uses_each_problems_own_n():
    rows = _rows()[:12] + [
        {"task": "a", "problem_id": "9", "sample_idx": i, "score": 0.0, "correct": False}
        for i in range(8)
    ]
    summary = summarize(rows, [1, 4])["a"]
    assert summary["n"] == 4 and summary["num_samples"] == 20
    assert summary["pass_at_k"]["1"] == pytest.approx((1 / 4 + 2 / 4 + 3 / 4 + 0) / 4)
    with pytest.raises(UserError, match="smallest n=4"):
        summarize(rows, [8])
