"""Maths benchmark tasks: loaders (offline copies and a faked hub), gold mapping, math-verify
scoring, and the verifier's time limit from the main thread, a worker thread and a process."""

from __future__ import annotations

import json
import multiprocessing
import time
from concurrent.futures import ProcessPoolExecutor, ThreadPoolExecutor
from pathlib import Path

import pytest

from prorl_eval.errors import UserError
from prorl_eval.tasks import math_answer
from prorl_eval.tasks.math_answer import (
    final_answer_region,
    gold_text,
    last_boxed,
    scorer_version,
    verify_math,
)
from prorl_eval.tasks.math_tasks import (
    MATH_INSTRUCTION,
    MATH_TASKS,
    MathConfig,
    MathTask,
    build_math_task,
    catalogue_entries,
)
from prorl_eval.tasks.registry import TaskOptions
from tests.conftest import shared_data_dir

SHARED = shared_data_dir()
PATHOLOGICAL = r"Multiplying out, the answer is \boxed{9^{9^{9^{9}}}}."

# name -> (rows, first id, first gold) of the offline copies described in ../shared/data
EXPECTED = {
    "aime24": (30, "60", "204"),
    "aime25": (30, "0", "70"),
    "amc23": (40, "0", "27"),
    "math500": (500, "test/precalculus/807.json", r"\left( 3, \frac{\pi}{2} \right)"),
    "minerva": (272, "0", "1.6"),
    "olympiadbench": (675, "1606", "2"),
}


@pytest.fixture(scope="module")
def shared_dir() -> Path:
    if not (SHARED / "math").is_dir():
        pytest.skip(f"offline benchmark copies not found under {SHARED}")
    return SHARED


@pytest.fixture(scope="module")
def loaded(shared_dir):
    """Every task loaded once from the offline copies: name -> (task, problems)."""
    out = {}
    for name in MATH_TASKS:
        task = MathTask(MathConfig(name, data_dir=str(shared_dir)))
        out[name] = (task, task.load())
    return out


# ----------------------------------------------------------------------------- loaders


def test_registry_names_and_listing():
    assert list(MATH_TASKS) == ["aime24", "aime25", "amc23", "math500", "minerva", "olympiadbench"]
    entries = catalogue_entries()
    assert [entry.name for entry in entries] == list(MATH_TASKS)
    for entry, spec in zip(entries, MATH_TASKS.values(), strict=True):
        assert entry.domain == "math" and entry.verifier == "math-verify"
        assert spec.hub_id in entry.source and spec.local_file in entry.source, entry.name
        assert entry.size == str(spec.size)


@pytest.mark.parametrize("name", list(EXPECTED))
def test_offline_loader_counts_ids_and_first_gold(loaded, name):
    task, problems = loaded[name]
    count, first_id, first_gold = EXPECTED[name]
    assert len(problems) == count
    assert problems[0].id == first_id
    assert problems[0].answer == first_gold
    assert all(isinstance(p.id, str) and p.id for p in problems)
    assert len({p.id for p in problems}) == count
    assert all(p.question and p.answer for p in problems)
    prompt = task.prompt(problems[0])
    assert prompt.startswith(problems[0].question) and prompt.endswith(MATH_INSTRUCTION)
    assert task.domain == "math" and task.name == name
    assert task.version.startswith(f"local:math/{MATH_TASKS[name].local_file}#sha256=")
    assert task.version.endswith(scorer_version())


def test_offline_ids_follow_each_dataset(loaded, shared_dir):
    """Own ids where the file has them (aime24 `id`, math500 `unique_id`, minerva `idx`), row
    index where it has none (aime25)."""
    for name, key in (("aime24", "id"), ("math500", "unique_id"), ("minerva", "idx")):
        path = shared_dir / "math" / MATH_TASKS[name].local_file
        raw = [json.loads(line) for line in path.read_text().splitlines() if line.strip()]
        assert [p.id for p in loaded[name][1]] == [str(r[key]) for r in raw]
    assert [p.id for p in loaded["aime25"][1]] == [str(i) for i in range(30)]


@pytest.mark.parametrize("name", list(EXPECTED))
def test_every_gold_scores_itself_and_others_do_not(loaded, name):
    """`\\boxed{gold}` scores 1 for every problem (catches field-mapping errors: a gold that is the
    question, a float, a whole solution or a list would not), and a different problem's gold scores
    0 on a deterministic sample of 50 (a verifier that accepts anything would not)."""
    task, problems = loaded[name]
    failed = [
        (p.id, p.answer)
        for p in problems
        if task.score(f"We get $x = \\boxed{{{p.answer}}}$.", p).value != 1.0
    ]
    assert failed == []
    accepted = []
    for i in range(0, len(problems), max(1, len(problems) // 50)):
        p, other = problems[i], problems[(i + 1) % len(problems)]
        if other.answer != p.answer and task.score(f"\\boxed{{{other.answer}}}", p).value:
            accepted.append((p.answer, other.answer))
    assert accepted in ([], [("5", "x=5")])  # MATH-500 holds one equivalent neighbour pair


def test_limit_keeps_the_first_problems(loaded, shared_dir):
    full = loaded["math500"][1]
    task = build_math_task("math500", TaskOptions(limit=7, data_dir=str(shared_dir)))
    assert [p.id for p in task.load()] == [p.id for p in full[:7]]


def test_task_score_uses_the_problem_gold(loaded):
    task, problems = loaded["math500"]
    assert task.score(r"so $(r,\theta) = \boxed{(3, \pi/2)}$", problems[0]).value == 1.0
    assert task.score(r"so $(r,\theta) = \boxed{(3, \pi)}$", problems[0]).value == 0.0
    amc_task, amc = loaded["amc23"]
    assert amc_task.score("They meet after \\boxed{27} miles.", amc[0]).value == 1.0


def test_missing_offline_file_is_a_user_error(tmp_path):
    (tmp_path / "math").mkdir()
    with pytest.raises(UserError) as err:
        build_math_task("minerva", TaskOptions(data_dir=str(tmp_path)))
    message = str(err.value)
    assert str(tmp_path / "math" / "minerva_math.jsonl") in message
    assert "--data-dir" in message and "math-ai/minervamath" in message


def test_malformed_offline_file_names_the_line(tmp_path):
    (tmp_path / "math").mkdir()
    lines = ['{"problem": "1+1?", "answer": "2"}', "{not json"]
    (tmp_path / "math" / "aime25.jsonl").write_text("\n".join(lines) + "\n")
    task = build_math_task("aime25", TaskOptions(data_dir=str(tmp_path)))
    with pytest.raises(UserError, match=r"aime25\.jsonl:2: malformed JSON"):
        task.load()


def test_offline_rows_missing_a_field_and_duplicate_ids(tmp_path):
    (tmp_path / "math").mkdir()
    path = tmp_path / "math" / "amc23.jsonl"
    path.write_text(json.dumps({"id": 1, "problem": "?"}) + "\n")
    with pytest.raises(UserError, match="no 'answer' column"):
        build_math_task("amc23", TaskOptions(data_dir=str(tmp_path))).load()
    rows = [{"id": 1, "problem": "a?", "answer": 1.0}, {"id": 1, "problem": "b?", "answer": 2.0}]
    path.write_text("".join(json.dumps(r) + "\n" for r in rows))
    with pytest.raises(UserError, match="appears twice"):
        build_math_task("amc23", TaskOptions(data_dir=str(tmp_path))).load()


def test_version_tracks_the_offline_file_contents(tmp_path):
    (tmp_path / "math").mkdir()
    path = tmp_path / "math" / "aime25.jsonl"
    path.write_text(json.dumps({"problem": "1+1?", "answer": "2"}) + "\n")
    before = build_math_task("aime25", TaskOptions(data_dir=str(tmp_path))).version
    path.write_text(json.dumps({"problem": "1+2?", "answer": "3"}) + "\n")
    after = build_math_task("aime25", TaskOptions(data_dir=str(tmp_path))).version
    assert before != after and "math-verify==" in after
    hub = build_math_task("aime25", TaskOptions()).version
    assert hub.startswith("hub:math-ai/aime25@test;") and hub.endswith(scorer_version())


def test_bad_config_is_a_user_error():
    with pytest.raises(UserError, match="unknown maths task 'aime2024'"):
        build_math_task("aime2024", TaskOptions())
    with pytest.raises(UserError, match="--limit"):
        MathTask(MathConfig("aime24", limit=0))


# ----------------------------------------------------------------------------- hub route


@pytest.fixture
def fake_hub(monkeypatch):
    """Replace `datasets.load_dataset` with an in-memory dataset; records what was asked for."""
    import datasets

    calls, tables = [], {}

    def load_dataset(path, name=None, split=None, **kwargs):
        calls.append((path, name, split))
        if path not in tables:
            raise FileNotFoundError(f"Dataset '{path}' doesn't exist on the Hub")
        return datasets.Dataset.from_list(tables[path])

    monkeypatch.setattr(datasets, "load_dataset", load_dataset)
    return calls, tables


def test_hub_route_maps_fields(fake_hub):
    calls, tables = fake_hub
    tables["math-ai/minervamath"] = [
        {"question": "Q0", "answer": "1.6"},
        {"question": "Q1", "answer": "4.5e33"},
    ]
    tables["math-ai/olympiadbench"] = [
        {"id": 1606, "question": "Q", "final_answer": ["$69$,$84$"], "answer_type": "Numerical"}
    ]
    tables["math-ai/amc23"] = [{"id": 0, "question": "Q", "answer": 27.0}]
    minerva = build_math_task("minerva", TaskOptions()).load()
    assert [(p.id, p.question, p.answer) for p in minerva] == [
        ("0", "Q0", "1.6"),
        ("1", "Q1", "4.5e33"),
    ]
    (olympiad,) = build_math_task("olympiadbench", TaskOptions()).load()
    assert (olympiad.id, olympiad.answer) == ("1606", "69,84")
    assert olympiad.metadata == {"answer_type": "Numerical"}
    (amc,) = build_math_task("amc23", TaskOptions(limit=1)).load()
    assert amc.answer == "27"
    assert verify_math(r"\boxed{84, 69}", olympiad.answer).value == 1.0
    assert calls == [
        ("math-ai/minervamath", None, "test"),
        ("math-ai/olympiadbench", None, "test"),
        ("math-ai/amc23", None, "test"),
    ]


def test_hub_route_uses_the_spec_ids_and_splits(fake_hub):
    calls, tables = fake_hub
    tables["HuggingFaceH4/aime_2024"] = [{"id": 60, "problem": "P", "answer": "204", "url": "u"}]
    tables["HuggingFaceH4/MATH-500"] = [
        {"problem": "P", "answer": "\\frac12", "unique_id": "test/x/1.json", "level": 3}
    ]
    (aime,) = build_math_task("aime24", TaskOptions()).load()
    (math500,) = build_math_task("math500", TaskOptions()).load()
    assert (aime.id, aime.answer, math500.id, math500.metadata) == (
        "60",
        "204",
        "test/x/1.json",
        {"level": 3},
    )
    assert [c[2] for c in calls] == ["train", "test"]


def test_hub_failure_is_a_user_error(fake_hub):
    with pytest.raises(
        UserError, match=r"could not load math-ai/aime25 \(default, test\).*--data-dir"
    ):
        build_math_task("aime25", TaskOptions()).load()


# ----------------------------------------------------------------------------- the verifier

CASES = [
    # equivalent forms
    (r"\boxed{\frac12}", "0.5", 1.0),
    (r"\boxed{0.5}", r"\frac{1}{2}", 1.0),
    (r"\boxed{\dfrac{1}{2}}", "1/2", 1.0),
    (r"\boxed{\tfrac{1}{2}}", "0.5", 1.0),
    ("The answer is 1/2", r"\frac{1}{2}", 1.0),
    (r"So the final answer is $\frac{1}{2}$.", "0.5", 1.0),
    (r"\boxed{0.6}", r"\frac12", 0.0),
    (r"\boxed{\sqrt{2}/2}", r"\frac{\sqrt{2}}{2}", 1.0),
    (r"\boxed{\frac{1}{\sqrt{2}}}", r"\frac{\sqrt{2}}{2}", 1.0),
    (r"\boxed{\frac{1}{2(n+1)}}", r"\frac{1}{2 n+2}", 1.0),
    (r"\boxed{p-q}", "p - q", 1.0),
    (r"\boxed{q-p}", "p - q", 0.0),
    (r"\boxed{x=3}", "3", 1.0),
    (r"\boxed{2^{1008}}", r"2^{1009}", 0.0),
    (r"\boxed{1,\!000}", "1000", 1.0),
    # units, degrees, money, text answers
    (r"\boxed{5\text{ cm}}", "5", 1.0),
    (r"\boxed{5\ \mathrm{m/s}}", "5", 1.0),
    (r"\boxed{30^\circ}", "30", 1.0),
    (r"\boxed{30}", r"30^\circ", 1.0),
    (r"\boxed{18.9}", r"\$18.90", 1.0),
    (r"\boxed{\text{Evelyn}}", r"\text{Evelyn}", 1.0),
    (r"\boxed{Evelyn}", r"\text{Evelyn}", 1.0),
    (r"\boxed{\text{Bob}}", r"\text{Evelyn}", 0.0),
    (r"\boxed{C}", r"\text{(C)}", 1.0),
    (r"\boxed{D}", r"\text{(C)}", 0.0),
    # <think> traces, several boxes
    ("<think>I get \\boxed{7}. Hmm.</think> Final: \\boxed{5}", "5", 1.0),
    ("<think>\\boxed{5}</think> so \\boxed{7}", "5", 0.0),
    ("<think>long and unfinished ... \\boxed{5}", "5", 0.0),
    ("First guess \\boxed{3}. Checking again, the answer is \\boxed{5}.", "5", 1.0),
    ("First guess \\boxed{3}. Checking again, the answer is \\boxed{5}.", "3", 0.0),
    ("\\boxed{3} then \\boxed{5}", "5", 1.0),
    ("So $\\boxed{3}$, $\\boxed{5}$ and \\boxed{7}.", "3,5,7", 1.0),
    # no answer, wrong answer
    ("I am not sure.", "5", 0.0),
    ("", "5", 0.0),
    ("The result is 5", "5", 0.0),  # a bare number is not an answer statement
    (r"\boxed{6}", "5", 0.0),
    # AMC float gold
    (r"\boxed{27}", 27.0, 1.0),
    (r"\boxed{27.0}", "27", 1.0),
    (r"\boxed{27.5}", 27.0, 0.0),
    # sets, tuples, intervals
    (r"\boxed{\{1,2\}}", r"\{2,1\}", 1.0),
    (r"\boxed{\{1,3\}}", r"\{2,1\}", 0.0),
    (r"\boxed{(2,1)}", "(1,2)", 0.0),
    (r"\boxed{84, 69}", "69,84", 1.0),
    (r"\boxed{69, 85}", "69,84", 0.0),
    (r"\boxed{(3, \pi/2)}", r"\left( 3, \frac{\pi}{2} \right)", 1.0),
    (r"\boxed{[1,2)}", "[1,2)", 1.0),
    (r"\boxed{(1,2]}", "[1,2)", 0.0),
    (r"\boxed{(-\infty, 0) \cup \{1\}}", r"(-\infty, 0) \cup\{1\}", 1.0),
    (r"\boxed{(-\infty, 0)}", r"(-\infty, 0) \cup\{1\}", 0.0),
    # negative numbers, percent
    (r"\boxed{-3}", "-3", 1.0),
    (r"\boxed{3}", "-3", 0.0),
    (r"\boxed{-\frac{1}{2}}", "-0.5", 1.0),
    (r"\boxed{\frac{1}{2}}", "-0.5", 0.0),
    (r"\boxed{50\%}", "50", 1.0),
    (r"\boxed{62.5\%}", "62.5%", 1.0),
    (r"\boxed{0.625}", "62.5%", 1.0),
    (r"\boxed{60\%}", r"50\%", 0.0),
    # answer statements without a box
    ("Answer: 12", "12", 1.0),
    ("The final answer is $12$. I hope it is correct.", "12", 1.0),
]


@pytest.mark.parametrize(("response", "gold", "expected"), CASES)
def test_verify_math_cases(response, gold, expected):
    score = verify_math(response, gold)
    assert score.value == expected, score.reason
    assert f"gold '{gold_text(gold)}'" in score.reason
    if expected == 1.0:
        assert score.reason.startswith("extracted '") and " matches gold" in score.reason
    assert score.extra["timed_out"] is False


def test_thread_route_agrees_with_the_main_thread():
    """The helper-process route (any non-main thread) gives the same verdicts and reasons."""
    here = [verify_math(r, g) for r, g, _ in CASES]
    with ThreadPoolExecutor(2) as pool:
        there = list(pool.map(lambda case: verify_math(case[0], case[1]), CASES))
    assert [(s.value, s.reason) for s in there] == [(s.value, s.reason) for s in here]


@pytest.mark.parametrize(
    ("value", "expected"),
    [(27.0, "27"), (2.5, "2.5"), (7, "7"), (["$69$,$84$"], "69,84"), (r"$\$5$", r"\$5")],
)
def test_gold_text(value, expected):
    assert gold_text(value) == expected


@pytest.mark.parametrize(
    ("text", "boxed", "region"),
    [
        ("no box", None, "no box"),
        (r"a \boxed{\frac{1}{2}} b", r"\frac{1}{2}", r"a \boxed{\frac{1}{2}} b"),
        (r"\boxed{1} x \boxed{2}", "2", r" x \boxed{2}"),
        (r"\boxed{1}, \boxed{2} or \boxed{3}", "3", r"\boxed{1}, \boxed{2} or \boxed{3}"),
        (r"\boxed{1} \fbox{2}", "2", r"\boxed{1} \fbox{2}"),
        (r"\boxed{unclosed", None, r"\boxed{unclosed"),
    ],
)
def test_last_boxed_and_answer_region(text, boxed, region):
    assert last_boxed(text) == boxed
    assert final_answer_region(text) == region


# ----------------------------------------------------------------------------- time limits


def _assert_timed_out(score):
    # the verdict says the time limit fired (no wall-clock bound: a busy machine must not fail it;
    # a check that never returns fails on pytest's own timeout)
    assert score.value == 0.0
    assert "timed out" in score.reason and "'27'" in score.reason
    assert score.extra["timed_out"] is True


def test_pathological_answer_times_out_in_the_main_thread():
    score = verify_math(PATHOLOGICAL, "27", timeout_s=1.0)
    _assert_timed_out(score)
    assert "9^{9^{9^{9}}}" in score.reason


def test_pathological_answer_times_out_in_a_worker_thread():
    def run():
        verify_math(r"\boxed{1}", "1")  # start this thread's helper first
        score = verify_math(PATHOLOGICAL, "27", timeout_s=1.0)
        after = verify_math(r"\boxed{\frac{54}{2}}", "27", timeout_s=1.0)  # a fresh helper
        return score, after

    with ThreadPoolExecutor(1) as pool:
        score, after = pool.submit(run).result()
    _assert_timed_out(score)
    assert "9^{9^{9^{9}}}" in score.reason
    assert after.value == 1.0, after.reason


def test_pathological_answer_times_out_in_a_worker_process():
    context = multiprocessing.get_context("spawn")
    with ProcessPoolExecutor(1, mp_context=context) as pool:
        assert pool.submit(verify_math, r"\boxed{27}", "27").result().value == 1.0  # warm
        score = pool.submit(verify_math, PATHOLOGICAL, "27", timeout_s=1.0).result()
    _assert_timed_out(score)


def test_a_helper_that_dies_is_replaced_or_reported():
    """A helper killed while idle is replaced silently; one killed mid-request scores 0 with a
    reason saying so (not a crash of the caller, not a "timed out")."""
    pool = math_answer._HELPERS
    with ThreadPoolExecutor(1) as threads:
        assert threads.submit(verify_math, r"\boxed{1}", "1").result().value == 1.0
        for helper in list(pool._all):
            helper.process.kill()
            helper.process.wait()  # dead before the next call looks at it
        assert threads.submit(verify_math, r"\boxed{2}", "2").result().value == 1.0
        future = threads.submit(verify_math, PATHOLOGICAL, "27", timeout_s=10.0)
        time.sleep(0.5)
        busy = [h for h in list(pool._all) if h not in pool._idle]
        assert len(busy) == 1
        busy[0].process.kill()
        score = future.result()
    assert score.value == 0.0 and score.extra["timed_out"] is False
    assert "crashed its helper process (exit code -9)" in score.reason


def test_timeout_must_be_positive():
    with pytest.raises(ValueError, match="timeout_s"):
        verify_math(r"\boxed{1}", "1", timeout_s=0)
