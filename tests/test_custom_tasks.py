"""Custom tasks: the `custom:<source>?key=value` syntax, its errors, the verifiers, the loaders."""

from __future__ import annotations

import importlib.util
import json
import pickle
import shutil
import sys
import types
from dataclasses import dataclass
from pathlib import Path

import pytest

from prorl_eval.errors import UserError
from prorl_eval.tasks.custom import (
    CUSTOM_TASKS,
    VERIFIERS,
    CustomConfig,
    build_custom_task,
    extract_final_answer,
    normalise_answer,
    parse_custom_argument,
)

FIXTURES = Path(__file__).parent / "fixtures" / "custom"
QA = FIXTURES / "qa.jsonl"
HAS_MATH = importlib.util.find_spec("prorl_eval.tasks.math_answer") is not None


@dataclass(frozen=True)
class Options:
    """Stands in for registry.TaskOptions (same fields)."""

    limit: int | None = None
    seed: int = 0
    data_dir: str | None = None


def test_parse_full_argument():
    config = parse_custom_argument(
        f"{QA}?prompt=question&answer=answer&verifier=Exact&id=qid&instruction=Be%20brief."
    )
    assert config == CustomConfig(
        source=str(QA),
        prompt="question",
        answer="answer",
        verifier="exact",
        id="qid",
        instruction="Be brief.",
    )
    hub = parse_custom_argument("someone/data?prompt=p&answer=a&split=validation&config=main")
    assert (hub.is_local, hub.split, hub.config, hub.verifier) == (
        False,
        "validation",
        "main",
        "exact",
    )


@pytest.mark.parametrize(
    ("argument", "message"),
    [
        (f"{QA}", "needs a source and options"),
        (f"{QA}?answer=answer", "needs prompt=<column>"),
        (f"{QA}?prompt=question", "needs answer=<column>"),
        (f"{QA}?prompt=q&answer=a&verifier=fuzzy", "unknown custom verifier 'fuzzy'.*contains"),
        (f"{QA}?prompt=q&answer=a&colour=red", "unknown option 'colour'; known options: prompt"),
        (f"{QA}?prompt=q&prompt=r&answer=a", "'prompt' is given twice"),
        (f"{QA}?prompt=q&answer=a&choices=many", "choices must be a number"),
        (f"{QA}?prompt=q&answer=a&choices=1", "choices must be between 2 and 26"),
        ("missing/nothing.jsonl?prompt=q&answer=a", "does not exist"),
        ("not a hub id!?prompt=q&answer=a", "neither a .jsonl/.json/.csv file nor a hub"),
    ],
)
def test_parse_errors(argument, message):
    with pytest.raises(UserError, match=message):
        parse_custom_argument(argument)


def test_missing_column_names_it_and_the_available_ones():
    task = build_custom_task(f"{QA}?prompt=prompt&answer=answer", Options())
    with pytest.raises(UserError, match="no column 'prompt'; available columns: 'qid', 'question'"):
        task.load()
    task = build_custom_task(f"{QA}?prompt=question&answer=answer&id=uid", Options())
    with pytest.raises(UserError, match="no column 'uid'"):
        task.load()


def test_jsonl_task_end_to_end():
    argument = f"{QA}?prompt=question&answer=answer&verifier=exact&id=qid"
    task = build_custom_task(argument, Options())
    assert task.name == f"custom:{argument}"
    problems = task.load()
    assert [p.id for p in problems] == ["q-capital", "q-sum", "q-color", "q-year"]
    assert task.prompt(problems[1]).startswith("What is 17 + 25?\n\nGive your final answer")
    assert task.score("Adding gives 42.\nAnswer: 42", problems[1]).value == 1.0
    assert task.score("Answer: 41", problems[1]).value == 0.0
    assert task.score("I think it is **Blue**.\nAnswer: Blue", problems[2]).value == 1.0  # any gold
    assert task.score("<think>Answer: 1999</think>Answer: 2000", problems[3]).value == 0.0
    assert build_custom_task(argument, Options(limit=2)).load() == problems[:2]
    assert task.version.startswith("custom-v3;verifier=exact;sha256=")
    no_text = build_custom_task(argument + "&instruction=none", Options())
    assert no_text.prompt(problems[1]) == "What is 17 + 25?"


def test_version_tracks_file_content(tmp_path):
    copy = tmp_path / "qa.jsonl"
    shutil.copy(QA, copy)
    argument = f"{copy}?prompt=question&answer=answer"
    before = build_custom_task(argument, Options()).version
    assert build_custom_task(argument, Options()).version == before
    copy.write_text(QA.read_text().replace("Fredville", "Fredtown"))
    assert build_custom_task(argument, Options()).version != before


def test_csv_letter_task():
    task = build_custom_task(
        f"{FIXTURES / 'letters.csv'}?prompt=prompt&answer=gold&verifier=letter&id=id", Options()
    )
    problems = task.load()
    assert [(p.id, p.answer) for p in problems] == [("m1", "B"), ("m2", "(C)"), ("m3", "a")]
    assert "Answer: X" in task.prompt(problems[0])
    assert task.score("Whales breathe air.\nAnswer: B", problems[0]).value == 1.0
    assert task.score("The answer is (C)", problems[1]).value == 1.0  # gold "(C)"
    assert task.score("**A**", problems[2]).value == 1.0  # gold lowercase "a"
    assert task.score("A quick look says Mars.\nAnswer: B", problems[2]).value == 0.0


def test_gold_letter_out_of_range_and_bad_regex_fail_at_load(tmp_path):
    path = tmp_path / "mc.jsonl"
    path.write_text(json.dumps({"q": "pick", "a": "F"}) + "\n")
    with pytest.raises(UserError, match="row 0: gold 'F' is not one of the letters ABCD"):
        build_custom_task(f"{path}?prompt=q&answer=a&verifier=multiple_choice", Options()).load()
    task = build_custom_task(f"{path}?prompt=q&answer=a&verifier=letter&choices=6", Options())
    assert task.score("Answer: F", task.load()[0]).value == 1.0
    path.write_text(json.dumps({"q": "x", "a": "(unclosed"}) + "\n")
    with pytest.raises(UserError, match="invalid regular expression"):
        build_custom_task(f"{path}?prompt=q&answer=a&verifier=regex", Options()).load()
    path.write_text(json.dumps({"q": "x", "a": None}) + "\n")
    with pytest.raises(UserError, match="column 'a' is empty"):
        build_custom_task(f"{path}?prompt=q&answer=a", Options()).load()


def test_regex_task():
    task = build_custom_task(
        f"{FIXTURES / 'patterns.jsonl'}?prompt=prompt&answer=pattern&verifier=regex", Options()
    )
    date, greet = task.load()
    assert [date.id, greet.id] == ["0", "1"]  # no id column: row index
    assert task.prompt(date) == "Give a date in ISO format."  # regex adds no instruction
    assert task.score("Sure: 2024-02-29.", date).value == 1.0
    assert task.score("Sure: 2024-2-29.", date).value == 0.0
    assert task.score("HELLO there", greet).value == 1.0
    assert task.score("<think>hello</think>Goodbye", greet).value == 0.0


# (verifier, response, gold, expected score)
VERIFIER_CASES = [
    ("exact", "Answer: Paris", "paris", 1.0),
    ("exact", "The final answer is $\\boxed{Paris}$.", "Paris", 1.0),
    ("exact", "**Answer:** 3.50", "3.5", 1.0),  # numbers compared as numbers
    ("exact", "Answer: 1,000", "1000", 1.0),
    ("exact", "Answer: 35", "3.5", 0.0),
    ("exact", "Paris is the capital.\nAnswer: Lyon", "Paris", 0.0),
    ("exact", "just text\nParis", "Paris", 1.0),  # the last line when nothing else
    ("exact", "1. 4 - 1 = 3\n2. 3 + 4 = 7\n3.", "3", 0.0),  # an unfinished list item
    ("exact", "1. 4 - 1 = 4\n2. 42 = 4 * 5\n3", "3", 0.0),  # cut before the marker's dot
    ("exact", "4 - 1 equals\n3.", "3", 1.0),
    ("exact", "", "Paris", 0.0),
    ("exact", 'Answer: "Blue"', ["red", "blue"], 1.0),
    ("contains", "I believe the city is Paris, France.", "paris", 1.0),
    ("contains", "It is 14 metres.", "4", 0.0),  # not inside a longer number
    ("contains", "It is 4 metres.", "4", 1.0),
    ("contains", "<think>Paris</think>No idea.", "Paris", 0.0),
    ("contains", "Light can be GREEN.", ["red", "green"], 1.0),
    ("regex", "value = 0x1F", r"0x[0-9A-F]+", 1.0),
    ("regex", "value = 31", r"0x[0-9A-F]+", 0.0),
    ("multiple_choice", "Answer: (d)", "D", 1.0),
    ("multiple_choice", "Answer: C", "D", 0.0),
    ("letter", "no letter here", "A", 0.0),
]


@pytest.mark.parametrize(("verifier", "response", "gold", "expected"), VERIFIER_CASES)
def test_verifier_table(verifier, response, gold, expected):
    config = CustomConfig(source=str(QA), prompt="question", answer="answer", verifier=verifier)
    score = VERIFIERS[verifier].check(response, gold, config)
    assert score.value == expected, score.reason
    assert score.reason


def test_extraction_and_normalisation_helpers():
    assert extract_final_answer("x\n\\boxed{7}\nAnswer: 8") == ("7", "\\boxed{}")
    assert extract_final_answer("Final answer: 8\nthanks") == ("8", "answer line")
    assert normalise_answer("  **The  Answer**. ") == "the answer"
    assert normalise_answer("$\\text{Paris}$") == "paris"


@pytest.mark.skipif(not HAS_MATH, reason="prorl_eval.tasks.math_answer not available")
def test_math_verifier(tmp_path):
    path = tmp_path / "math.jsonl"
    rows = [{"problem": "1/2 + 0?", "answer": "\\frac{1}{2}"}, {"problem": "2+2?", "answer": 4.0}]
    path.write_text("\n".join(json.dumps(r) for r in rows))
    task = build_custom_task(f"{path}?prompt=problem&answer=answer&verifier=math", Options())
    half, four = task.load()
    assert "\\boxed{}" in task.prompt(half)
    assert "math-verify==" in task.version
    assert task.score("So it is $\\boxed{0.5}$.", half).value == 1.0
    assert task.score("So it is $\\boxed{0.25}$.", half).value == 0.0
    assert task.score("\\boxed{4}", four).value == 1.0


@pytest.mark.skipif(not HAS_MATH, reason="prorl_eval.tasks.math_answer not available")
@pytest.mark.parametrize(
    ("response", "gold", "math_score", "number_score"),
    [
        # the restatement a policy learned in the miniature run: math-verify credits it
        ("1 + 13 = 22\nThe answer is that 1 + 13 equals 22", "14", 1.0, 0.0),
        ("11 + 17 = 28\nThe answer is that 11 + 17 equals", "28", 1.0, 0.0),
        ("The answer is $7 \\times 12$", "84", 1.0, 0.0),
        ("The answer is 28.", "28", 1.0, 1.0),
        ("So it is $\\boxed{28}$", "28", 1.0, 1.0),
        ("The answer is $\\frac{1}{2}$", "0.5", 1.0, 1.0),
        ("The answer is -3", "-3", 1.0, 1.0),
        ("The answer is 1,024", "1024", 1.0, 1.0),
        ("The answer is 22", "14", 0.0, 0.0),
    ],
)
def test_number_verifier_refuses_unevaluated_expressions(
    tmp_path, response, gold, math_score, number_score
):
    path = tmp_path / "sums.jsonl"
    path.write_text(json.dumps({"q": "What is it?", "a": gold}))
    by_verifier = {
        name: build_custom_task(f"{path}?prompt=q&answer=a&verifier={name}", Options())
        for name in ("math", "number")
    }
    (problem,) = by_verifier["number"].load()
    assert by_verifier["math"].score(response, problem).value == math_score
    score = by_verifier["number"].score(response, problem)
    assert score.value == number_score
    if math_score and not number_score:
        assert "is an expression, not a number (verifier=number)" in score.reason
    assert "verifier=number" in by_verifier["number"].version
    assert by_verifier["number"].version != by_verifier["math"].version


def test_hub_source_loads_lazily(monkeypatch):
    calls = []
    rows = [{"q": "2+2?", "a": "4"}, {"q": "3+3?", "a": "6"}]

    def load_dataset(*args, **kwargs):
        calls.append((args, kwargs))
        return rows

    monkeypatch.setitem(sys.modules, "datasets", types.SimpleNamespace(load_dataset=load_dataset))
    task = build_custom_task("someone/arith?prompt=q&answer=a&config=easy", Options())
    assert calls == [] and task.source == "hub:someone/arith"
    assert task.version == "custom-v3;verifier=exact;hub=someone/arith:easy:test"
    assert [p.answer for p in task.load()] == ["4", "6"]
    assert calls == [(("someone/arith", "easy"), {"split": "test", "token": None})]


def test_task_pickles_for_worker_processes():
    task = build_custom_task(f"{QA}?prompt=question&answer=answer&id=qid", Options())
    problem = task.load()[1]
    clone = pickle.loads(pickle.dumps(task))
    assert clone.score("Answer: 42", problem) == task.score("Answer: 42", problem)


def test_registry_description():
    (entry,) = CUSTOM_TASKS.values()
    for name in ("exact", "contains", "regex", "math", "multiple_choice", "letter"):
        assert name in entry["verifier"] and name in VERIFIERS


def test_a_custom_task_can_name_its_domain(tmp_path):
    from prorl_eval.tasks.registry import TaskOptions, build_task

    data = tmp_path / "sums.jsonl"
    data.write_text('{"q": "What is 1 + 1?", "a": "2"}\n')
    task = build_task(f"custom:{data}?prompt=q&answer=a&domain=math", TaskOptions())
    assert task.domain == "math" and task.describe()["domain"] == "math"
    assert build_task(f"custom:{data}?prompt=q&answer=a", TaskOptions()).domain == "custom"
    with pytest.raises(UserError, match="domain must be a lowercase name"):
        build_task(f"custom:{data}?prompt=q&answer=a&domain=Math Tasks", TaskOptions())
