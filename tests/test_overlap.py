"""Training/evaluation overlap counts from a run's train_prompts.json."""

from __future__ import annotations

import json

from prorl_eval.analysis.overlap import run_overlap
from prorl_eval.cli import main
from prorl_eval.tasks.registry import TaskOptions, resolve_tasks
from prorl_train.data import DataMix, Holdout


def _prompts(spec, **options):
    return {
        t.name: {t.prompt(p) for p in t.load()} for t in resolve_tasks(spec, TaskOptions(**options))
    }


def test_overlap_counts_identical_prompts_against_brute_force(tmp_path):
    mix = DataMix({"gym:leg_counting": 1.0}, TaskOptions(limit=30, seed=0), seed=0)
    mix.write_prompts_manifest(tmp_path)
    trained = {mix.tasks["gym:leg_counting"].prompt(p) for p in mix.problems["gym:leg_counting"]}
    for seed in (0, 1):
        tasks = resolve_tasks("gym:leg_counting", TaskOptions(limit=40, seed=seed))
        result = run_overlap(tmp_path, tasks)
        expected = len(
            _prompts("gym:leg_counting", limit=40, seed=seed)["gym:leg_counting"] & trained
        )
        assert result["tasks"][0]["in_training"] == expected
        assert result["tasks"][0]["problems"] == 40
    assert (
        run_overlap(tmp_path, resolve_tasks("gym:leg_counting", TaskOptions(limit=40)))[
            "in_training"
        ]
        == 30
    )  # the same seed: the first 30 problems are the training pool


def test_a_holdout_brings_the_overlap_to_zero(tmp_path, capsys):
    mix = DataMix(
        {"gym:leg_counting": 1.0},
        TaskOptions(limit=30, seed=0),
        seed=0,
        holdout=Holdout("gym:leg_counting", seed=0, limit=10),
    )
    mix.write_prompts_manifest(tmp_path)
    out = tmp_path / "overlap.json"
    args = ["overlap", str(tmp_path), "--tasks", "gym:leg_counting", "--limit", "10"]
    assert main([*args, "--out", str(out)]) == 0
    assert "gym:leg_counting" in capsys.readouterr().out
    result = json.loads(out.read_text())
    assert result["in_training"] == 0 and result["problems"] == 10
    assert result["held_out"] == {"gym:leg_counting": 10}


def test_a_folder_without_training_prompts_is_one_line_exit_2(tmp_path, capsys):
    assert main(["overlap", str(tmp_path), "--tasks", "gym:leg_counting"]) == 2
    assert "has no train_prompts.json" in capsys.readouterr().err
