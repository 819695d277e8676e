"""Reasoning Gym tasks, scored by the real reasoning-gym scorers."""

from __future__ import annotations

import pytest

from prorl_eval.errors import UserError
from prorl_eval.tasks.gym import GymConfig, GymTask
from prorl_eval.tasks.registry import TaskOptions, expand_names, resolve_tasks


@pytest.fixture(scope="module")
def arithmetic():
    task = GymTask(GymConfig("basic_arithmetic", limit=3, seed=0))
    return task, task.load()


def test_problems_have_stable_ids_and_answers(arithmetic):
    task, problems = arithmetic
    assert [p.id for p in problems] == ["0", "1", "2"]
    bigger = GymTask(GymConfig("basic_arithmetic", limit=6, seed=0)).load()
    assert [p.question for p in bigger[:3]] == [p.question for p in problems]
    other_seed = GymTask(GymConfig("basic_arithmetic", limit=3, seed=1)).load()
    assert [p.question for p in other_seed] != [p.question for p in problems]
    assert "<answer>" in task.prompt(problems[0])
    assert problems[0].question in task.prompt(problems[0])


@pytest.mark.parametrize(
    ("template", "expected", "how"),
    [
        ("<answer>{a}</answer>", 1.0, "<answer> tag"),
        ("Let me think.\n<answer> {a} </answer>", 1.0, "<answer> tag"),
        ("<answer>1</answer> no wait <answer>{a}</answer>", 1.0, "<answer> tag"),
        ("<answer>{a}</answer> no wait <answer>1</answer>", 0.0, "<answer> tag"),
        ("<think><answer>1</answer></think><answer>{a}</answer>", 1.0, "<answer> tag"),
        ("<think>long trace <answer>{a}</answer>", 0.0, "empty"),
        ("So the result is \\boxed{{{a}}}.", 1.0, "boxed"),
        ("Working...\nThe answer:\n{a}\n", 1.0, "last line"),
        ("<answer>wrong</answer>", 0.0, "<answer> tag"),
        ("", 0.0, "empty"),
    ],
)
def test_answer_extraction_and_scoring(arithmetic, template, expected, how):
    task, problems = arithmetic
    problem = problems[0]
    score = task.score(template.format(a=problem.answer), problem)
    assert score.value == expected
    assert how in score.reason


def test_partial_credit_comes_from_the_dataset_scorer():
    task = GymTask(GymConfig("basic_arithmetic", limit=1, seed=0))
    problem = task.load()[0]
    dataset_score = task.dataset.score_answer("12", problem.metadata["entry"])
    assert task.score("<answer>12</answer>", problem).value == dataset_score


def test_unknown_dataset_suggests_close_names():
    with pytest.raises(UserError, match="gym:basic_arithmetic"):
        GymTask(GymConfig("basic_arithmetc"))


def test_an_unfinished_list_item_is_no_answer():
    """Seen in the miniature run: responses cut off after "2. ..." end in the marker "3.", which
    the last-line fallback took for the answer of "4 - 1 =" (gold 3)."""
    (task,) = resolve_tasks("gym:chain_sum?max_digits=1&max_terms=2", TaskOptions(limit=16))
    problem = next(p for p in task.load() if p.answer == "3")
    assert task.score("1. 4 - 1 = 3\n2. 3 + 4 = 7\n3.", problem).value < 1.0  # not correct
    assert task.score("1. 4 - 1 = 4\n2. 42 = 4 * 5\n3", problem).value < 1.0  # cut before "."
    assert task.score("4 - 1 equals\n3.", problem).value == 1.0  # a bare "3." is still an answer
    assert task.score("1. 4 - 1 = 3\n2. So:\n<answer>3</answer>", problem).value == 1.0


def test_registry_resolves_names_and_suites():
    assert expand_names("gym-default,gym:leg_counting,gym:basic_arithmetic") == [
        "gym:basic_arithmetic",
        "gym:spell_backward",
        "gym:leg_counting",
    ]
    tasks = resolve_tasks("gym:leg_counting", TaskOptions(limit=2, seed=5))
    assert tasks[0].name == "gym:leg_counting" and len(tasks[0].load()) == 2
    assert "seed=5" in tasks[0].version


def test_dataset_settings_reach_the_generator_under_one_canonical_name():
    from prorl_eval.tasks.registry import build_task

    task = build_task(
        "gym:basic_arithmetic?max_terms=2&min_terms=2&operators=[+]&allow_negation=false",
        TaskOptions(limit=5),
    )
    assert task.name == (
        'gym:basic_arithmetic?allow_negation=false&max_terms=2&min_terms=2&operators=["+"]'
    )
    assert build_task(task.name, TaskOptions(limit=5)).name == task.name  # the name round-trips
    for problem in task.load():
        expression = problem.metadata["entry"]["metadata"]["expression"]
        assert expression.count("+") == 1 and "*" not in expression and "/" not in expression
        assert task.score(f"<answer>{problem.answer}</answer>", problem).value == 1.0
    plain = build_task("gym:basic_arithmetic", TaskOptions(limit=5)).load()
    assert [p.question for p in plain] != [p.question for p in task.load()]


@pytest.mark.parametrize(
    ("name", "fragment"),
    [
        ("gym:basic_arithmetic?max_term=2", "has no setting 'max_term'; its settings are"),
        ("gym:basic_arithmetic?seed=3", "has no setting 'seed'"),
        ("gym:basic_arithmetic?max_terms", "field=value pairs"),
        ("gym:basic_arithmetic?min_terms=5&max_terms=2", "rejects the settings"),
    ],
)
def test_bad_dataset_settings_are_user_errors(name, fragment):
    from prorl_eval.tasks.registry import build_task

    with pytest.raises(UserError, match=fragment):
        build_task(name, TaskOptions(limit=2)).load()


@pytest.mark.parametrize("dataset", ["basic_arithmetic", "chain_sum", "family_relationships"])
def test_data_seeds_build_disjoint_problems_and_seed_0_is_reasoning_gyms_own(dataset):
    """Reasoning Gym seeds item i with Random(seed + i): without the stride, data seeds 0, 1
    and 2 (evaluation, validation, training) would share almost every puzzle."""
    import reasoning_gym

    questions = {
        seed: [p.question for p in GymTask(GymConfig(dataset, limit=60, seed=seed)).load()]
        for seed in (0, 1, 2)
    }
    for a, b in [(0, 1), (1, 2), (0, 2)]:  # short puzzles can coincide by chance, rarely
        assert len(set(questions[a]) & set(questions[b])) <= 2
    own = reasoning_gym.create_dataset(dataset, size=60, seed=0)
    assert questions[0] == [own[i]["question"] for i in range(60)]
    shifted = reasoning_gym.create_dataset(dataset, size=60, seed=1)  # what seed 1 used to be
    assert len(set(questions[0]) & {shifted[i]["question"] for i in range(60)}) > 40


def test_the_version_names_the_reasoning_gym_seed_and_bad_seeds_are_refused():
    assert "rg_seed" not in GymTask(GymConfig("chain_sum", limit=2, seed=0)).version
    assert "rg_seed=2000000" in GymTask(GymConfig("chain_sum", limit=2, seed=2)).version
    with pytest.raises(UserError, match="data seed must be between 0 and 4293"):
        GymConfig("chain_sum", limit=2, seed=5000).validate()
    with pytest.raises(UserError, match="at most 1,000,000 problems"):
        GymConfig("chain_sum", limit=2_000_000).validate()
