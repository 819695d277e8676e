"""The starter sets: bundled, split without overlap, verified by the custom verifiers."""

from __future__ import annotations

import json

import pytest

from prorl_eval.errors import UserError
from prorl_eval.tasks.registry import TaskOptions, build_task, catalogue, expand_names
from prorl_eval.tasks.starter import DATA, STARTER_SETS


def test_the_default_tasks_are_the_starter_sets():
    from prorl_eval.tasks.registry import DEFAULT_TASKS

    assert expand_names(DEFAULT_TASKS) == [f"starter:{name}" for name in STARTER_SETS]
    assert {f"starter:{n}" for n in STARTER_SETS} <= {entry.name for entry in catalogue()}


@pytest.mark.parametrize("name", sorted(STARTER_SETS))
def test_splits_share_no_question_and_the_gold_scores_itself(name):
    held_out = build_task(f"starter:{name}", TaskOptions())
    train = build_task(f"starter:{name}-train", TaskOptions())
    eval_problems, train_problems = held_out.load(), train.load()
    assert len(eval_problems) == 16 and len(train_problems) > 16
    assert not {p.question for p in eval_problems} & {p.question for p in train_problems}
    assert held_out.domain == STARTER_SETS[name]["domain"] == train.domain
    for problem in eval_problems[:4]:
        good = {"products": f"Answer: {problem.answer}", "sums": f"\\boxed{{{problem.answer}}}"}
        response = good.get(name, f"It is {problem.answer}.")
        assert held_out.score(response, problem).value == 1.0
        assert held_out.score("Answer: nothing", problem).value == 0.0


def test_the_files_are_what_the_generator_writes(tmp_path, monkeypatch):
    import importlib.util
    from pathlib import Path

    script = Path(__file__).parents[1] / "scripts" / "make_starter_data.py"
    spec = importlib.util.spec_from_file_location("make_starter_data", script)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    monkeypatch.setattr(module, "OUT", tmp_path / "a" / "b" / "c")
    module.main()
    for path in DATA.glob("*.jsonl"):
        assert (tmp_path / "a" / "b" / "c" / path.name).read_text() == path.read_text()
        assert all(json.loads(line)["id"] for line in path.read_text().splitlines())


def test_unknown_starter_names_are_user_errors():
    with pytest.raises(UserError, match="choose one of starter:capitals"):
        build_task("starter:capital", TaskOptions())
    with pytest.raises(UserError, match="unknown starter task"):
        build_task("starter:capitals-eval", TaskOptions())
