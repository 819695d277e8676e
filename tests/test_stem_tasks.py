"""Multiple-choice STEM tasks: letter extraction, seeded shuffling, loading (made-up GPQA rows)."""

from __future__ import annotations

import collections
import json
import pickle
import sys
import types
from dataclasses import dataclass
from pathlib import Path

import pytest

from prorl_eval.errors import UserError
from prorl_eval.tasks.stem import (
    GPQA_DIAMOND,
    MC_DATASETS,
    MCDatasetSpec,
    MultipleChoiceConfig,
    MultipleChoiceTask,
    build_stem_task,
    catalogue_entries,
    extract_choice,
    shuffle_order,
)

FIXTURES = Path(__file__).parent / "fixtures"  # holds stem/gpqa_diamond.jsonl (made-up questions)
CHOICES = ["3.2 eV", "12 m/s", "Benzene", "None of the above"]


@dataclass(frozen=True)
class Options:
    """Stands in for registry.TaskOptions (same fields)."""

    limit: int | None = None
    seed: int = 0
    data_dir: str | None = str(FIXTURES)


# (response, expected letter or None)
EXTRACTION_CASES = [
    ("Answer: C", "C"),
    ("The answer is (C)", "C"),
    ("So we get \\boxed{C}", "C"),
    ("$\\boxed{\\text{B}}$", "B"),
    ("Answer: $\\boxed{D}$", "D"),
    ("**C**", "C"),
    ("C)", "C"),
    ("(c)", "C"),
    ("the correct option is C.", "C"),
    ("Long derivation here.\nC", "C"),
    ("Long derivation here.\n**(B)**", "B"),
    ("Work...\nC) Benzene", "C"),
    ("So the right compound is benzene", "C"),  # the option's text, case-insensitive
    ("It must be 12 m/s", "B"),
    ("\\boxed{12 m/s}", "B"),  # a boxed option text
    ("<think>Answer: A. Hmm, or (B)?</think>\nAnswer: D", "D"),  # letters inside <think> ignored
    ("A quick check shows the energy is low.\nAnswer: B", "B"),  # article "A" is not an answer
    ("A quick check shows the energy is low.", None),
    ("The answer is a bit tricky to see.", None),  # lowercase article
    ("Answer: A. Wait, that is wrong.\nFinal answer: C", "C"),  # the last statement wins
    ("If the answer is A then X fails, so the answer is B.", "B"),
    ("**Answer:** D", "D"),
    ("Answer: **B**", "B"),
    ("the answer is c.", "C"),
    ("The answer is: (b)", "B"),
    ("answer is option C", "C"),
    ("I choose B", "B"),
    ("Hmm. The final answer is $C$.", "C"),
    ("Therefore, C.", "C"),
    ("ANSWER: D", "D"),
    ("", None),
    ("<think>C is likely", None),  # unterminated trace: nothing after it
    ("Both answers A and B fail\nso I am unsure", None),
    ("Answer: E", None),  # not one of the four letters
    ("Option (A) is out, (B) too\nso it is (D)", "D"),
    ("The answer is B because the units work out.", "B"),
    ("3.2 eV", "A"),
]


@pytest.mark.parametrize(("response", "expected"), EXTRACTION_CASES)
def test_extract_choice_table(response, expected):
    letter, how = extract_choice(response, CHOICES)
    assert letter == expected, how
    assert how  # always a reason


def test_no_answer_reason_and_option_text_boundary():
    letter, how = extract_choice("I really cannot decide.", CHOICES)
    assert letter is None and "no answer letter" in how
    # "112 m/s" ends with "12 m/s" but not on a word boundary: not option B
    assert extract_choice("We measure 112 m/s", CHOICES)[0] is None
    # with options "2" and "12", the longest matching option wins
    assert extract_choice("the result is 12", ["2", "12", "3", "4"])[0] == "B"
    assert extract_choice("the result is 2", ["2", "12", "3", "4"])[0] == "A"
    # a unit letter ending the response is not read as a choice when an option's text matches
    amps = ["0.05 A", "0.5 A", "50 A", "2 A"]
    assert extract_choice("The current is 0.5 A", amps)[0] == "B"
    assert extract_choice("The current is 0.5 A.\nAnswer: C", amps)[0] == "C"


def test_shuffle_is_a_seeded_permutation():
    for pid in ("rec1", "rec2", "x"):
        order = shuffle_order(0, pid, 4)
        assert sorted(order) == [0, 1, 2, 3]
        assert order == shuffle_order(0, pid, 4)  # deterministic
    orders = {tuple(shuffle_order(seed, "rec1", 4)) for seed in range(40)}
    assert len(orders) > 10  # the seed matters
    orders = {tuple(shuffle_order(0, f"rec{i}", 4)) for i in range(40)}
    assert len(orders) > 10  # the id matters


def test_shuffle_places_the_correct_answer_uniformly():
    counts = collections.Counter(shuffle_order(3, f"id{i}", 4).index(0) for i in range(4000))
    assert set(counts) == {0, 1, 2, 3}
    for position in range(4):  # expected 1000 each; 5 sigma is about 137
        assert 850 < counts[position] < 1150, counts


def test_loads_fixture_and_scores():
    task = build_stem_task("gpqa_diamond", Options())
    problems = task.load()
    rows = [json.loads(line) for line in (FIXTURES / "stem" / "gpqa_diamond.jsonl").open()]
    assert [p.id for p in problems] == [r["Record ID"] for r in rows]
    for problem, row in zip(problems, rows, strict=True):
        choices = problem.metadata["choices"]
        assert sorted(choices) == sorted(
            [row["Correct Answer"]] + [row[f"Incorrect Answer {i}"] for i in (1, 2, 3)]
        )
        assert choices["ABCD".index(problem.answer)] == row["Correct Answer"]
        prompt = task.prompt(problem)
        assert row["Question"] in prompt and "Answer: X" in prompt
        for letter, text in zip("ABCD", choices, strict=True):
            assert f"\n{letter}) {text}" in prompt
        assert task.score(f"Reasoning...\nAnswer: {problem.answer}", problem).value == 1.0
        wrong = next(x for x in "ABCD" if x != problem.answer)
        score = task.score(f"Answer: {wrong}", problem)
        assert score.value == 0.0 and f"correct is {problem.answer}" in score.reason
        # answering with the correct option's own text also counts
        assert task.score(f"It is {row['Correct Answer']}", problem).value == 1.0
    assert task.version == "mc-v1;seed=0" and task.domain == "stem"
    assert task.source.endswith("gpqa_diamond.jsonl")


def test_seed_changes_prompts_not_ids_and_limit_keeps_order():
    base = build_stem_task("gpqa_diamond", Options(seed=0)).load()
    other_task = build_stem_task("gpqa_diamond", Options(seed=1))
    other = other_task.load()
    assert [p.id for p in base] == [p.id for p in other]
    assert any(
        a.metadata["choices"] != b.metadata["choices"] for a, b in zip(base, other, strict=True)
    )
    assert "seed=1" in other_task.version
    limited = build_stem_task("gpqa_diamond", Options(limit=2)).load()
    assert [p.id for p in limited] == [p.id for p in base[:2]]
    assert [p.metadata for p in limited] == [p.metadata for p in base[:2]]


def test_order_independent_of_row_order_and_csv_route(tmp_path):
    rows = [json.loads(line) for line in (FIXTURES / "stem" / "gpqa_diamond.jsonl").open()]
    (tmp_path / "stem").mkdir()
    import csv

    with (tmp_path / "stem" / "gpqa_diamond.csv").open("w", newline="") as fh:
        writer = csv.DictWriter(fh, fieldnames=list(rows[0]))
        writer.writeheader()
        writer.writerows(reversed(rows))
    task = build_stem_task("gpqa_diamond", Options(data_dir=str(tmp_path)))
    from_csv = {p.id: p for p in task.load()}
    base = {p.id: p for p in build_stem_task("gpqa_diamond", Options()).load()}
    assert from_csv.keys() == base.keys()
    for pid, problem in base.items():
        assert from_csv[pid].metadata == problem.metadata
        assert from_csv[pid].answer == problem.answer


def test_missing_column_names_it(tmp_path):
    (tmp_path / "stem").mkdir()
    row = {"Record ID": "r1", "Question": "q", "Correct Answer": "a", "Incorrect Answer 1": "b"}
    (tmp_path / "stem" / "gpqa_diamond.jsonl").write_text(json.dumps(row) + "\n")
    with pytest.raises(UserError, match=r"'Incorrect Answer 2'.*available columns: 'Record ID'"):
        build_stem_task("gpqa_diamond", Options(data_dir=str(tmp_path))).load()


def test_duplicate_ids_and_unknown_task_are_user_errors(tmp_path):
    (tmp_path / "stem").mkdir()
    line = (FIXTURES / "stem" / "gpqa_diamond.jsonl").read_text().splitlines()[0]
    (tmp_path / "stem" / "gpqa_diamond.jsonl").write_text(line + "\n" + line + "\n")
    with pytest.raises(UserError, match="appears twice"):
        build_stem_task("gpqa_diamond", Options(data_dir=str(tmp_path))).load()
    with pytest.raises(UserError, match="known: gpqa_diamond"):
        build_stem_task("gpqa_main", Options())
    with pytest.raises(UserError, match="limit"):
        build_stem_task("gpqa_diamond", Options(limit=0))


def _fake_datasets(monkeypatch, rows=None, error=None):
    calls = []

    def load_dataset(*args, **kwargs):
        calls.append((args, kwargs))
        if error is not None:
            raise error
        return rows

    monkeypatch.setitem(sys.modules, "datasets", types.SimpleNamespace(load_dataset=load_dataset))
    return calls


def test_hub_route_is_gated_and_lazy(monkeypatch, tmp_path):
    rows = [json.loads(line) for line in (FIXTURES / "stem" / "gpqa_diamond.jsonl").open()]
    calls = _fake_datasets(monkeypatch, rows=rows)
    task = build_stem_task("gpqa_diamond", Options(data_dir=None))
    assert calls == []  # nothing loaded at build time
    problems = task.load()
    assert calls == [(("Idavidrein/gpqa", "gpqa_diamond"), {"split": "train", "token": True})]
    assert task.source == "hub:Idavidrein/gpqa" and len(problems) == 5
    # a data_dir without the file falls back to the hub too
    assert build_stem_task("gpqa_diamond", Options(data_dir=str(tmp_path))).load() == problems
    _fake_datasets(monkeypatch, error=PermissionError("401 gated"))
    with pytest.raises(UserError, match=r"gated.*--data-dir"):
        build_stem_task("gpqa_diamond", Options(data_dir=None)).load()


def test_generic_spec_by_config(tmp_path):
    spec = MCDatasetSpec(
        name="toy_mc",
        hub_id="someone/toy",
        hub_config=None,
        hub_split="test",
        question_field="q",
        correct_field="right",
        distractor_fields=("w1", "w2"),  # three options: A-C
        domain="science",
    )
    (tmp_path / "stem").mkdir()
    rows = [{"q": f"question {i}", "right": f"yes{i}", "w1": "no", "w2": "nope"} for i in range(3)]
    (tmp_path / "stem" / "toy_mc.jsonl").write_text("\n".join(json.dumps(r) for r in rows))
    task = MultipleChoiceTask(MultipleChoiceConfig(spec=spec, data_dir=str(tmp_path)))
    problems = task.load()
    assert [p.id for p in problems] == ["0", "1", "2"]  # no id field: row index
    assert "one of A, B, C" in task.prompt(problems[0]) and "D)" not in task.prompt(problems[0])
    assert task.score("Answer: D", problems[0]).value == 0.0  # D is not an option here
    assert task.score(f"Answer: {problems[1].answer}", problems[1]).value == 1.0
    assert task.domain == "science"


def test_task_and_problems_pickle():
    task = build_stem_task("gpqa_diamond", Options())
    problem = task.load()[0]
    clone, clone_problem = pickle.loads(pickle.dumps((task, problem)))
    response = f"Answer: {problem.answer}"
    assert clone.score(response, clone_problem) == task.score(response, problem)


def test_registry_descriptions():
    (entry,) = catalogue_entries()
    assert set(MC_DATASETS) == {entry.name} == {"gpqa_diamond"}
    assert entry.domain == "stem" and "Idavidrein/gpqa" in entry.source and entry.size == "198"
    assert GPQA_DIAMOND.num_choices == 4
