"""results.json beyond pass@k: avg@k, maj@k, lengths and truncation, breakdowns by problem tags;
their pandas loaders and the CLI's options, each checked against a direct computation."""

from __future__ import annotations

import json
import os

import numpy as np
import pytest
from conftest import run_cli
from oracles import maj_at_k_enumerated, pass_at_k_loop

import prorl_eval
from prorl_eval.errors import UserError
from prorl_eval.passk import bootstrap_ci
from prorl_eval.results import summarize

KS = [1, 2, 4]


def make_rows(seed: int = 0, problems: int = 6, n: int = 4) -> list[dict]:
    """Rows with extracted answers ("7" is right), tags, lengths and some truncated responses."""
    rng = np.random.default_rng(seed)
    rows = []
    for p in range(problems):
        for i in range(n):
            answer = [None, "7", "8", "9"][int(rng.integers(0, 4))]
            truncated = bool(rng.random() < 0.3)
            rows.append({
                "task": "t", "problem_id": str(p), "sample_idx": i,
                "score": float(answer == "7"), "correct": answer == "7",
                "extracted_answer": answer, "tags": {"level": f"Level {p % 3 + 1}"},
                "num_tokens": int(rng.integers(5, 50)),
                "finish_reason": "length" if truncated else "stop",
            })  # fmt: skip
    return rows


def by_problem(rows):
    out = {}
    for row in sorted(rows, key=lambda r: (r["problem_id"], r["sample_idx"])):
        out.setdefault(row["problem_id"], []).append(row)
    return out


def test_maj_and_avg_equal_their_direct_computation():
    rows = make_rows()
    summary = summarize(rows, KS, resamples=200)["t"]
    problems = by_problem(rows)
    for k in KS:
        per_problem = [
            maj_at_k_enumerated([r["extracted_answer"] for r in rs], [r["correct"] for r in rs], k)
            for rs in problems.values()
        ]
        assert summary["maj_at_k"][str(k)] == pytest.approx(np.mean(per_problem))
        # the same resampled problem sets as pass@k: bootstrap_ci with the same seed
        low, high = bootstrap_ci(per_problem, resamples=200, seed=0)
        assert summary["maj_at_k_ci95"][str(k)] == pytest.approx([low, high])
        assert summary["avg_at_k"][str(k)] == pytest.approx(summary["mean_score"])


def test_lengths_truncation_and_pass_at_k_over_finished_responses():
    rows = make_rows(seed=1)
    summary = summarize(rows, KS, resamples=50)["t"]
    tokens = [r["num_tokens"] for r in rows]
    assert summary["mean_response_tokens"] == pytest.approx(np.mean(tokens))
    assert summary["median_response_tokens"] == pytest.approx(np.median(tokens))
    cut = [r["finish_reason"] == "length" for r in rows]
    assert summary["truncated_share"] == pytest.approx(np.mean(cut))
    finished = {
        pid: [r for r in rs if r["finish_reason"] == "stop"] for pid, rs in by_problem(rows).items()
    }
    for k in KS:
        kept = [rs for rs in finished.values() if len(rs) >= k]
        assert summary["untruncated_problems"][str(k)] == len(kept)
        if kept:
            expected = pass_at_k_loop(
                [len(rs) for rs in kept], [sum(r["correct"] for r in rs) for rs in kept], k
            ).mean()
            assert summary["pass_at_k_untruncated"][str(k)] == pytest.approx(expected)


def test_breakdown_by_a_tag_equals_the_summary_of_its_problems():
    rows = make_rows(seed=2)
    summary = summarize(rows, KS, by=["level"], resamples=50)["t"]
    assert list(summary["by"]["level"]) == ["Level 1", "Level 2", "Level 3"]
    for value, part in summary["by"]["level"].items():
        subset = [r for r in rows if r["tags"]["level"] == value]
        alone = summarize(subset, KS, resamples=50)["t"]
        assert part["pass_at_k"] == alone["pass_at_k"]
        assert part["pass_at_k_ci95"] == alone["pass_at_k_ci95"]
        assert part["maj_at_k"] == alone["maj_at_k"] and part["num_problems"] == 2


def test_natural_order_of_tag_values():
    rows = make_rows(problems=12)
    for row in rows:
        row["tags"] = {"level": f"Level {int(row['problem_id']) + 1}"}
    levels = list(summarize(rows, [1], by=["level"], resamples=10)["t"]["by"]["level"])
    assert levels[:3] == ["Level 1", "Level 2", "Level 3"] and levels[-1] == "Level 12"


def test_no_answers_no_maj_and_asking_for_it_is_an_error():
    rows = make_rows()
    for row in rows:
        row["extracted_answer"] = None
    assert "maj_at_k" not in summarize(rows, KS, resamples=10)["t"]
    with pytest.raises(UserError, match="maj@k needs extracted answers, and no row of t has one"):
        summarize(rows, KS, require_maj=True, resamples=10)
    with pytest.raises(UserError, match=r"unknown --by field 'difficulty'.*: level"):
        summarize(rows, KS, by=["difficulty"], resamples=10)


def test_rows_without_lengths_report_none():
    rows = [{k: v for k, v in r.items() if k not in ("finish_reason", "num_tokens")}
            for r in make_rows()]  # fmt: skip
    summary = summarize(rows, KS, resamples=10)["t"]
    assert "truncated_share" not in summary and "pass_at_k_untruncated" not in summary


def test_pandas_loaders(tmp_path):
    rows = make_rows()
    results = {"tasks": summarize(rows, KS, by=["level"], resamples=20), "ks": KS}
    (tmp_path / "results.json").write_text(json.dumps(results))
    frame = prorl_eval.load_results(tmp_path)
    assert list(frame.k) == KS
    expected = [results["tasks"]["t"]["maj_at_k"][str(k)] for k in KS]
    assert frame.maj_at_k.tolist() == pytest.approx(expected)
    assert not frame.truncated_share.isna().any()
    parts = prorl_eval.load_breakdowns(tmp_path)
    assert set(parts.value) == {"Level 1", "Level 2", "Level 3"} and len(parts) == 3 * len(KS)


def test_cli_recompute_with_by_and_maj(tmp_path):
    samples = tmp_path / "samples.jsonl"
    samples.write_text("".join(json.dumps(r) + "\n" for r in make_rows()))
    done = run_cli("pass-at-k", "--samples", str(samples), "--k", "1,2", "--by", "level",
                   "--maj", "--out", str(tmp_path / "o"))  # fmt: skip
    assert done.returncode == 0, done.stderr
    assert "maj " in done.stdout
    written = json.loads((tmp_path / "o" / "results.json").read_text())["tasks"]["t"]
    assert set(written["by"]["level"]) == {"Level 1", "Level 2", "Level 3"}
    bad = run_cli("pass-at-k", "--samples", str(samples), "--by", "subject", "--out",
                  str(tmp_path / "p"))  # fmt: skip
    assert bad.returncode == 2 and "unknown --by field 'subject'" in bad.stderr
    assert "Traceback" not in bad.stderr and not (tmp_path / "p" / "results.json").exists()


def test_load_problems_gives_what_a_run_saw(tmp_path):
    frame = prorl_eval.load_problems("gym:basic_arithmetic", limit=3)
    assert list(frame.problem_id) == ["0", "1", "2"]
    assert frame["tag.category"].unique().tolist() == ["arithmetic"]
    assert frame.prompt[0].startswith(frame.question[0]) and frame.gold_answer[0]
    (tmp_path / "math").mkdir()
    rows = [{"problem": f"What is {i} + {i}?", "answer": str(2 * i), "subject": "Algebra",
             "level": i, "unique_id": f"test/algebra/{i}.json"} for i in (1, 2)]  # fmt: skip
    (tmp_path / "math" / "math500.jsonl").write_text("".join(json.dumps(r) + "\n" for r in rows))
    math = prorl_eval.load_problems("math500", data_dir=str(tmp_path))
    assert math["tag.level"].tolist() == ["1", "2"] and math.gold_answer.tolist() == ["2", "4"]
    assert math.problem_id.tolist() == ["test/algebra/1.json", "test/algebra/2.json"]
    fixtures = os.path.join(os.path.dirname(__file__), "fixtures")
    code = prorl_eval.load_problems("livecodebench:release_v2?difficulty=hard", data_dir=fixtures)
    assert list(code.problem_id) == ["3003", "abc901_b"] and code.gold_answer.isna().all()
