"""Problem fingerprints: recorded in every row, compared before rows of several sources meet."""

from __future__ import annotations

import json
import warnings

import pytest
from typer.testing import CliRunner

from prorl_eval.analysis.inputs import load_counts_by_run
from prorl_eval.cli import app, main
from prorl_eval.fingerprints import (
    ProblemMismatch,
    ProblemMismatchWarning,
    problem_fingerprint,
    task_fingerprint,
)
from prorl_eval.results import load_samples
from prorl_eval.runner import EvalConfig, run_pass_at_k
from prorl_eval.schema import read_samples
from prorl_eval.tasks.registry import TaskOptions, resolve_tasks
from tests.conftest import ScriptedGenerator

TASKS = "gym:leg_counting,gym:basic_arithmetic"


def _run(out, n=2):
    tasks = resolve_tasks(TASKS, TaskOptions(limit=3))
    answers = {t.prompt(p): str(p.answer) for t in tasks for p in t.load()}
    config = EvalConfig(out=str(out), tasks=TASKS, n=n, ks=(1,), limit=3, batch_size=8)
    return run_pass_at_k(config, generator_factory=lambda b, m: ScriptedGenerator(answers))


def _tamper(path, task="gym:leg_counting", problem_id="1", fingerprint="0" * 16):
    rows = read_samples(path)
    for row in rows:
        if row["task"] == task and row["problem_id"] == problem_id:
            row["problem_fingerprint"] = fingerprint
    path.write_text("".join(json.dumps(r) + "\n" for r in rows))


def test_every_row_records_its_problems_fingerprint_and_gold(tmp_path):
    _run(tmp_path / "run")
    tasks = {t.name: t for t in resolve_tasks(TASKS, TaskOptions(limit=3))}
    for row in read_samples(tmp_path / "run" / "samples.jsonl"):
        task = tasks[row["task"]]
        problem = next(p for p in task.load() if p.id == row["problem_id"])
        assert row["problem_fingerprint"] == task_fingerprint(task, problem)
        assert row["problem_fingerprint"] == problem_fingerprint(row["prompt"], problem.answer)
        assert row["gold_answer"] == str(problem.answer)
        # the scripted model answers <answer>gold</answer> or <answer>wrong</answer>
        said = str(problem.answer) if row["correct"] else "wrong"
        assert (row["extracted_answer"], row["extraction"]) == (said, "<answer> tag")
        assert row["schema_version"] == 3


def test_fingerprints_tell_problems_apart():
    base = problem_fingerprint("What is 2 + 2?", "4")
    assert len(base) == 16
    assert base != problem_fingerprint("What is 2 + 2?", "5")
    assert base != problem_fingerprint("What is 2 + 2? ", "4")
    assert problem_fingerprint("q", {"b": 1, "a": 2}) == problem_fingerprint("q", {"a": 2, "b": 1})


def test_resume_refuses_a_folder_whose_rows_saw_other_problems(tmp_path):
    out = tmp_path / "run"
    _run(out, n=2)
    _tamper(out / "samples.jsonl")
    before = (out / "samples.jsonl").read_bytes()
    with pytest.raises(ProblemMismatch, match=r"1 of 6 problems \(gym:leg_counting 1; e.g."):
        _run(out, n=4)
    assert (out / "samples.jsonl").read_bytes() == before


def test_resume_with_the_same_problems_goes_on(tmp_path):
    out = tmp_path / "run"
    _run(out, n=2)
    _run(out, n=4)
    assert len(read_samples(out / "samples.jsonl")) == 2 * 3 * 4


def test_load_samples_refuses_rows_of_different_problems_under_one_id(tmp_path):
    _run(tmp_path / "run")
    rows = read_samples(tmp_path / "run" / "samples.jsonl")
    rows[0]["problem_fingerprint"] = "f" * 16
    mixed = tmp_path / "mixed.jsonl"
    mixed.write_text("".join(json.dumps(r) + "\n" for r in rows))
    with pytest.raises(ProblemMismatch, match=r"rows of .*mixed\.jsonl disagree"):
        load_samples(mixed)
    with pytest.warns(ProblemMismatchWarning, match="compared anyway"):
        frame = load_samples(mixed, allow_problem_mismatch=True)
    assert len(frame) == len(rows)


def test_rows_without_fingerprints_are_not_checked(tmp_path):
    _run(tmp_path / "run")
    rows = read_samples(tmp_path / "run" / "samples.jsonl")
    for row in rows:
        del row["problem_fingerprint"]
    old = tmp_path / "old.jsonl"
    old.write_text("".join(json.dumps(r) + "\n" for r in rows))
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        counts = load_counts_by_run(
            {"old": old, "new": tmp_path / "run" / "samples.jsonl"}, allow_problem_mismatch=False
        )
    assert set(counts) == {"old", "new"}


def test_analyses_refuse_runs_that_disagree_on_a_problem_in_one_line(tmp_path, capsys):
    _run(tmp_path / "base")
    _run(tmp_path / "rl")
    _tamper(tmp_path / "rl" / "samples.jsonl", task="gym:basic_arithmetic", problem_id="2")
    out = tmp_path / "out"
    commands = {
        "curves": ["curves", str(tmp_path / "base"), str(tmp_path / "rl"), "--out", str(out)],
        "boundary": ["boundary", "--base", str(tmp_path / "base"), "--rl", str(tmp_path / "rl")],
        "correlate": ["correlate", "--base", str(tmp_path / "base"), "--rl", str(tmp_path / "rl")],
    }
    for name, args in commands.items():
        if name != "curves":
            args += ["--out", str(out), "--k", "2"]
        capsys.readouterr()
        assert main(args) == 2, name
        err = capsys.readouterr().err.strip()
        assert len(err.splitlines()) == 1, err
        assert "1 of 6 problems (gym:basic_arithmetic 1; e.g. gym:basic_arithmetic #2)" in err
        assert "--allow-problem-mismatch" in err
    assert not out.exists() or not any(out.iterdir())


def test_analyses_go_on_with_a_warning_when_asked(tmp_path):
    _run(tmp_path / "base")
    _run(tmp_path / "rl")
    _tamper(tmp_path / "rl" / "samples.jsonl")
    with pytest.warns(ProblemMismatchWarning) as caught:
        result = CliRunner().invoke(
            app,
            [
                *("curves", str(tmp_path / "base"), str(tmp_path / "rl")),
                *("--out", str(tmp_path / "out"), "--allow-problem-mismatch"),
            ],
        )
    assert result.exit_code == 0, result.output
    assert (tmp_path / "out" / "passk_curves.csv").is_file()
    assert "1 of 6 problems" in str(caught[0].message)


def test_score_refuses_rows_of_problems_it_cannot_rebuild(tmp_path, capsys):
    _run(tmp_path / "run")
    samples = tmp_path / "run" / "samples.jsonl"
    _tamper(samples)
    target = tmp_path / "scored.jsonl"
    args = ["score", "--samples", str(samples), "--out", str(target), "--workers", "0"]
    assert main(args) == 2
    err = capsys.readouterr().err
    assert "problems rebuilt for scoring disagree" in err and "--data-seed" in err
    assert not target.exists()
    assert main([*args, "--allow-problem-mismatch"]) == 0
    assert "warning:" in capsys.readouterr().err
    assert len(read_samples(target)) == len(read_samples(samples))
