"""Training sets by hub id (`train:*`): their row formats, offline route, verifiers and bad rows."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from prorl_eval.errors import UserError
from prorl_eval.tasks.math_answer import verify_math
from prorl_eval.tasks.registry import TaskOptions, build_task, catalogue
from prorl_eval.tasks.stem import score_choice

FIXTURES = Path(__file__).parent / "fixtures"
OFFLINE = TaskOptions(data_dir=str(FIXTURES))
SOURCES = ("train:deepscaler", "train:eurus-code", "train:sciq", "train:rlvr-ifeval")


def _task(name: str):
    task = build_task(name, OFFLINE)
    return task, task.load()


def test_each_domain_has_a_catalogued_training_source():
    entries = {entry.name: entry for entry in catalogue()}
    domains = {name: entries[name].domain for name in SOURCES}
    assert domains == {
        "train:deepscaler": "math",
        "train:eurus-code": "code",
        "train:sciq": "stem",
        "train:rlvr-ifeval": "ifeval",
    }
    for name in SOURCES:
        assert "<data_dir>/train/" in entries[name].source


@pytest.mark.parametrize(
    ("name", "count", "skipped"),
    [
        ("train:deepscaler", 5, 0),
        ("train:eurus-code", 2, 2),  # a maths row and a call-based (fn_name) row
        ("train:sciq", 3, 0),
        ("train:rlvr-ifeval", 4, 1),  # a choice among other answers than IFEval's checker knows
    ],
)
def test_offline_fixtures_load_in_the_hub_row_format(name, count, skipped):
    task, problems = _task(name)
    assert (len(problems), task.skipped) == (count, skipped)
    assert task.source.endswith(f"train/{task.spec.local_file}")
    assert len({p.id for p in problems}) == count


def test_the_hub_route_calls_load_dataset_with_the_hub_id_and_split(monkeypatch):
    import datasets

    rows = [json.loads(line) for line in (FIXTURES / "train/sciq.jsonl").read_text().splitlines()]
    calls = []

    def fake_load_dataset(path, name=None, *, split=None, token=None):
        calls.append((path, name, split))
        return rows

    monkeypatch.setattr(datasets, "load_dataset", fake_load_dataset)
    task = build_task("train:sciq", TaskOptions())
    assert len(task.load()) == 3 and task.source == "hub:allenai/sciq (train)"
    assert calls == [("allenai/sciq", None, "train")]


def test_deepscaler_is_scored_by_math_verify():
    task, problems = _task("train:deepscaler")
    fraction = problems[2]  # gold \frac{3}{28}
    for response in ("so \\boxed{\\frac{3}{28}}", "so \\boxed{3/28}", "so \\boxed{\\frac{3}{27}}"):
        expected = verify_math(response, fraction.answer).value
        assert task.score(response, fraction).value == expected
    assert task.score("\\boxed{6/56}", fraction).value == 1.0
    assert task.score("\\boxed{7}", problems[1]).value == 0.0
    assert task.prompt(problems[0]).endswith("put your final answer within \\boxed{}.")


def test_eurus_code_rows_run_their_tests_in_the_sandbox():
    task, problems = _task("train:eurus-code")
    total = problems[0]
    assert total.id == "codecontests-1" and "Write Python code" not in task.prompt(total)
    assert total.answer == [("1 2\n", "3\n"), ("10 -4\n", "6\n")]
    right = "```python\na, b = map(int, input().split())\nprint(a + b)\n```"
    assert task.score(right, total).value == 1.0
    assert task.score("```python\nprint(3)\n```", total).value == 0.5  # one test of two


def test_sciq_is_shuffled_by_seed_and_scored_as_gpqa():
    task, problems = _task("train:sciq")
    for problem in problems:
        choices = problem.metadata["choices"]
        assert sorted(choices) == sorted(
            [problem.metadata["correct_text"], *set(choices) - {problem.metadata["correct_text"]}]
        )
        assert choices["ABCD".index(problem.answer)] == problem.metadata["correct_text"]
        for letter in "ABCD":
            response = f"Thinking...\nAnswer: {letter}"
            assert task.score(response, problem) == score_choice(response, problem.answer, choices)
    other = build_task("train:sciq", TaskOptions(data_dir=str(FIXTURES), seed=5)).load()
    assert [p.metadata["choices"] for p in other] != [p.metadata["choices"] for p in problems]


def test_rlvr_ifeval_constraints_keep_their_meaning_under_the_ifeval_checkers():
    task, problems = _task("train:rlvr-ifeval")
    lowercase, at_most_12, garden_twice, yes_no = problems
    calm = "the morning was quiet and the lake was still, with mist rising over the water."
    assert task.score(calm, lowercase).value == 1.0
    assert task.score(calm.capitalize(), lowercase).value == 0.0
    words = " ".join(["light"] * 12)
    assert task.score(words, at_most_12).value == 1.0
    assert task.score(words + " scatters", at_most_12).value == 0.0  # 13 > at most 12
    assert garden_twice.metadata["instruction_id_list"] == ["keywords:frequency"] * 2
    for count, expected in ((1, 0.0), (2, 1.0), (3, 0.0)):  # exactly 2
        reply = "Dear neighbour, " + " and ".join(["the garden"] * count) + " look lovely."
        assert task.score(reply, garden_twice).value == expected, count
    assert task.score("My answer is yes.", yes_no).value == 1.0


def _write(tmp_path: Path, file: str, rows: list[dict]) -> TaskOptions:
    (tmp_path / "train").mkdir(exist_ok=True)
    lines = "".join(json.dumps(row) + "\n" for row in rows)
    (tmp_path / "train" / file).write_text(lines)
    return TaskOptions(data_dir=str(tmp_path))


@pytest.mark.parametrize(
    ("name", "file", "row", "field"),
    [
        ("train:deepscaler", "deepscaler.jsonl", {"problem": "1+1?"}, "'answer'"),
        (
            "train:eurus-code",
            "eurus_code.jsonl",
            {"ability": "code", "prompt": [{"role": "user", "content": "x"}], "reward_model": {}},
            "'reward_model.ground_truth'",
        ),
        ("train:sciq", "sciq.jsonl", {"question": "q", "correct_answer": "a"}, "'distractor1'"),
        (
            "train:rlvr-ifeval",
            "rlvr_ifeval.jsonl",
            {
                "messages": [{"role": "user", "content": "Say hi."}],
                "ground_truth": json.dumps({"func_name": "validate_word_constraint", "N": None}),
            },
            "'ground_truth.N'",
        ),
    ],
)
def test_a_row_without_a_needed_field_names_source_row_and_field(tmp_path, name, file, row, field):
    options = _write(tmp_path, file, [row])
    with pytest.raises(UserError) as caught:
        build_task(name, options).load()
    message = str(caught.value)
    assert f"{name}: " in message and "row 0" in message and field in message
    assert "\n" not in message


def test_a_missing_offline_copy_names_the_file_and_the_fix(tmp_path):
    with pytest.raises(
        UserError, match=r"train/deepscaler\.jsonl does not exist.*unset --data-dir"
    ):
        build_task("train:deepscaler", TaskOptions(data_dir=str(tmp_path)))


def test_prorl_train_refuses_a_bad_training_row_before_loading_a_model(tmp_path, capsys):
    import yaml

    from prorl_train.cli import main

    _write(tmp_path, "deepscaler.jsonl", [{"problem": "1+1?", "answer": "2"}, {"problem": "2+2?"}])
    settings = {
        "model": {"name": str(tmp_path / "no-such-model")},
        "data": {"mix": {"train:deepscaler": 1.0}, "data_dir": str(tmp_path)},
    }
    config = tmp_path / "run.yaml"
    config.write_text(yaml.safe_dump(settings))
    assert main(["--config", str(config), "--out", str(tmp_path / "run")]) == 2
    err = capsys.readouterr().err
    assert "row 1 has no 'answer' field" in err and "Traceback" not in err
    assert "no-such-model" not in err.split("error:")[1]
