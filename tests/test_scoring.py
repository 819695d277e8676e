"""Parallel scoring, `prorl-eval score`, and the Reasoning Gym reference answers."""

from __future__ import annotations

import json
import subprocess
import sys

import pytest

from prorl_eval.errors import UserError
from prorl_eval.rescore import rescore_file
from prorl_eval.scoring import ScoreJob, Scorer
from prorl_eval.tasks.gym import NO_REFERENCE_ANSWER, GymConfig, GymTask, gym_dataset_names
from prorl_eval.tasks.registry import TaskOptions


def _jobs(task: GymTask) -> tuple[list[ScoreJob], list[float]]:
    jobs, expected = [], []
    for problem in task.load():
        for response, value in (
            (f"<answer>{problem.answer}</answer>", 1.0),
            ("<answer>x</answer>", 0.0),
        ):
            jobs.append(ScoreJob(task.name, problem.id, response))
            expected.append(value)
    return jobs, expected


def test_pool_and_inline_scoring_agree():
    task = GymTask(GymConfig("leg_counting", limit=6))
    jobs, expected = _jobs(task)
    specs = {task.name: TaskOptions(limit=6)}
    with Scorer(specs, workers=0) as inline, Scorer(specs, workers=2) as pool:
        inline_scores = inline.score(jobs)
        pool_scores = pool.score(jobs)
    assert [s.value for s in inline_scores] == expected
    assert pool_scores == inline_scores


def test_unknown_problem_is_a_user_error():
    with (
        Scorer({"gym:leg_counting": TaskOptions(limit=2)}) as scorer,
        pytest.raises(UserError, match="no problem '7'"),
    ):
        scorer.score([ScoreJob("gym:leg_counting", "7", "")])


def test_every_gym_dataset_scores_its_reference_answer():
    """Each dataset's own scorer gives its reference answer 1.0 (boxnet, rush_hour have none)."""
    failures = []
    for name in gym_dataset_names():
        task = GymTask(GymConfig(name, limit=2, seed=0))
        for problem in task.load():
            if problem.answer is None:
                assert name in NO_REFERENCE_ANSWER
                continue
            value = task.score(f"<answer>{problem.answer}</answer>", problem).value
            if value != 1.0:
                failures.append((name, problem.id, value))
    assert failures == []


def _write(path, rows):
    path.write_text("".join(json.dumps(r) + "\n" for r in rows))


def test_rescore_keeps_fields_and_sets_scores(tmp_path):
    task = GymTask(GymConfig("leg_counting", limit=3))
    problems = task.load()
    rows = [
        {
            "task": task.name,
            "problem_id": p.id,
            "response": f"<answer>{p.answer}</answer>",
            "sample_idx": 4,
            "model": "elsewhere",
            "score": 0.0,
        }
        for p in problems
    ] + [{"task": task.name, "problem_id": "2", "response": "no idea", "my_field": [1, 2]}]
    source, target = tmp_path / "in.jsonl", tmp_path / "out.jsonl"
    _write(source, rows)
    summary = rescore_file(source, target, workers=0)
    out = [json.loads(line) for line in target.read_text().splitlines()]
    assert [r["score"] for r in out] == [1.0, 1.0, 1.0, 0.0]
    assert [r["correct"] for r in out] == [True, True, True, False]
    assert out[0]["sample_idx"] == 4 and out[0]["model"] == "elsewhere"
    assert out[3]["my_field"] == [1, 2] and "last line" in out[3]["reason"]
    assert summary[task.name]["rows"] == 4
    with pytest.raises(UserError, match="already exists"):
        rescore_file(source, target)
    with pytest.raises(UserError, match="must differ"):
        rescore_file(source, source, overwrite=True)


@pytest.mark.parametrize(
    ("line", "message"),
    [
        ("{bad", "in.jsonl:1: malformed JSON"),
        ('{"task": "gym:leg_counting"}', "row 1 lacks field(s)"),
    ],
)
def test_rescore_rejects_bad_rows(tmp_path, line, message):
    source = tmp_path / "in.jsonl"
    source.write_text(line + "\n")
    with pytest.raises(UserError, match=message.replace("(", r"\(").replace(")", r"\)")):
        rescore_file(source, tmp_path / "out.jsonl")
    assert not (tmp_path / "out.jsonl").exists()


@pytest.mark.slow
def test_score_command_in_parallel(tmp_path):
    task = GymTask(GymConfig("basic_arithmetic", limit=4))
    rows = [
        {
            "task": task.name,
            "problem_id": p.id,
            "sample_idx": i,
            "response": f"<answer>{p.answer if i == 0 else 'no'}</answer>",
        }
        for p in task.load()
        for i in range(2)
    ]
    _write(tmp_path / "in.jsonl", rows)
    result = subprocess.run(
        [
            sys.executable,
            "-m",
            "prorl_eval.cli",
            "score",
            "--samples",
            str(tmp_path / "in.jsonl"),
            "--out",
            str(tmp_path / "out.jsonl"),
            "--workers",
            "2",
        ],
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert result.returncode == 0, result.stderr
    out = [json.loads(line) for line in (tmp_path / "out.jsonl").read_text().splitlines()]
    assert [r["correct"] for r in out] == [True, False] * 4
    assert "0.500" in result.stdout
