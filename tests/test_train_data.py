"""The training data mix: weights, suites, deterministic order, epochs, resumable cursor."""

from __future__ import annotations

from collections import Counter
from pathlib import Path

import pytest

from prorl_eval.errors import UserError
from prorl_eval.tasks.registry import TaskOptions
from prorl_train.data import DataMix, epoch_order, expand_mix, pick_task

FIXTURES = Path(__file__).parent / "fixtures" / "train"
CAPS = f"custom:{FIXTURES}/capital_start.jsonl?prompt=prompt&answer=pattern&verifier=regex&id=id"
ECHO = f"custom:{FIXTURES}/echo.jsonl?prompt=prompt&answer=answer&verifier=contains&id=id"


def test_expand_mix_splits_suites_and_normalises():
    weights = expand_mix({"gym-default": 1.0, "gym:leg_counting": 1.0})
    assert weights == pytest.approx(
        {"gym:basic_arithmetic": 0.25, "gym:spell_backward": 0.25, "gym:leg_counting": 0.5}
    )
    # a task named twice adds up
    weights = expand_mix({"gym-default": 2.0, "gym:basic_arithmetic": 1.0})
    assert weights == pytest.approx({"gym:basic_arithmetic": 2 / 3, "gym:spell_backward": 1 / 3})


WEIGHTS = [[0.5, 0.5], [0.7, 0.2, 0.1], [1 / 3, 1 / 3, 1 / 3], [0.9, 0.1]]


@pytest.mark.parametrize("weights", WEIGHTS)
def test_pick_task_tracks_the_weights_at_every_prefix(weights):
    drawn = [0] * len(weights)
    for k in range(500):
        drawn[pick_task(weights, drawn, k)] += 1
        # brute force: after k+1 draws each task is within one draw of its exact share
        for w, d in zip(weights, drawn, strict=True):
            assert abs(d - w * (k + 1)) <= 1.0 + 1e-9


def test_pick_task_breaks_ties_to_the_first():
    assert pick_task([0.5, 0.5], [0, 0], 0) == 0
    assert pick_task([0.5, 0.5], [1, 0], 1) == 1


def test_epoch_order_is_a_seeded_permutation():
    order = epoch_order(0, "t", 0, 10)
    assert sorted(order) == list(range(10))
    assert order == epoch_order(0, "t", 0, 10)
    assert order != epoch_order(1, "t", 0, 10) or order != epoch_order(0, "t", 1, 10)


def make_mix(seed: int = 0, weights=(0.75, 0.25)) -> DataMix:
    return DataMix({CAPS: weights[0], ECHO: weights[1]}, TaskOptions(), seed)


def test_draws_follow_weights_and_cover_every_problem_each_epoch():
    mix = make_mix()
    items = mix.draw(40)  # 30 from CAPS (8 problems), 10 from ECHO (5 problems)
    counts = Counter(item.task.name for item in items)
    assert counts == {CAPS: 30, ECHO: 10}
    echo_ids = [item.problem.id for item in items if item.task.name == ECHO]
    assert sorted(echo_ids[:5]) == sorted(echo_ids[5:]) == [f"e{i}" for i in range(5)]
    caps_ids = [item.problem.id for item in items if item.task.name == CAPS]
    for epoch in range(3):
        assert sorted(caps_ids[epoch * 8 : epoch * 8 + 8]) == [f"p{i}" for i in range(8)]
    assert [item.index for item in items] == list(range(40))
    # the prompt is the task's own prompt for the problem
    first = items[0]
    assert first.prompt == first.task.prompt(first.problem)


def test_order_depends_on_seed_only():
    a = [(i.task.name, i.problem.id) for i in make_mix(seed=3).draw(25)]
    b = [(i.task.name, i.problem.id) for i in make_mix(seed=3).draw(25)]
    c = [(i.task.name, i.problem.id) for i in make_mix(seed=4).draw(25)]
    assert a == b
    assert a != c


def test_cursor_resumes_the_same_stream():
    straight = [(i.task.name, i.problem.id, i.index) for i in make_mix().draw(23)]
    first = make_mix()
    head = [(i.task.name, i.problem.id, i.index) for i in first.draw(9)]
    state = first.state_dict()
    second = make_mix()
    second.load_state_dict(state)
    tail = [(i.task.name, i.problem.id, i.index) for i in second.draw(14)]
    assert head + tail == straight


def test_cursor_from_another_mix_is_refused():
    state = make_mix().state_dict()
    other = DataMix({CAPS: 1.0}, TaskOptions(), 0)
    with pytest.raises(UserError, match="other tasks"):
        other.load_state_dict(state)


def test_domains_come_from_the_tasks():
    mix = DataMix({CAPS: 1.0, "gym:leg_counting": 1.0}, TaskOptions(limit=3), 0)
    assert mix.domain(CAPS) == "custom"
    assert mix.domain("gym:leg_counting") == "logic"
    assert len(mix.problems["gym:leg_counting"]) == 3


def test_unknown_task_is_a_user_error():
    with pytest.raises(UserError, match="unknown task"):
        DataMix({"gym_typo": 1.0}, TaskOptions(), 0)


@pytest.mark.parametrize(
    ("response", "reward"),
    [
        ("Mars", 1.0),
        ("Mars.", 1.0),
        ("  Venus!\n", 1.0),
        ("The planet Mars", 0.0),
        ("pet animal", 0.0),
        ("", 0.0),
        ("42", 0.0),
    ],
)
def test_the_cpu_smoke_task_rewards_one_word_answers(response, reward):
    from prorl_train.presets import PRESETS, SMOKE_TASK

    assert SMOKE_TASK in PRESETS["cpu-smoke"]["data"]["mix"]
    mix = DataMix({SMOKE_TASK: 1.0}, TaskOptions(), 0)
    item = mix.draw(1)[0]
    assert item.prompt.endswith("Answer with one word.")
    assert len(mix.problems[SMOKE_TASK]) == 16
    assert item.task.score(response, item.problem).value == reward


def test_the_holdout_keeps_evaluation_problems_out_of_training():
    from prorl_train.data import Holdout

    evaluation = DataMix({"gym:leg_counting": 1.0}, TaskOptions(limit=4, seed=0), 0).problems
    held = {p.question for p in evaluation["gym:leg_counting"]}
    mix = DataMix(
        {"gym:leg_counting": 1.0},
        TaskOptions(limit=10, seed=0),  # the same seed as evaluation: the first 4 coincide
        seed=0,
        holdout=Holdout("gym:leg_counting", seed=0, limit=4),
    )
    assert mix.held_out == {"gym:leg_counting": 4}
    drawn = {item.problem.question for item in mix.draw(30)}  # five epochs over what is left
    assert len(drawn) == 6 and not drawn & held


def test_auto_holdout_covers_the_procedural_tasks_only():
    from prorl_train.data import Holdout

    mix = DataMix(
        {CAPS: 0.5, "gym:leg_counting": 0.5},
        TaskOptions(limit=5, seed=0),
        seed=0,
        holdout=Holdout("auto", seed=0, limit=3),
    )
    assert mix.held_out == {CAPS: 0, "gym:leg_counting": 3}
    assert mix.holdout.task_names(mix.tasks) == ["gym:leg_counting"]


def test_a_task_entirely_held_out_is_a_user_error():
    from prorl_train.data import Holdout

    with pytest.raises(UserError, match="all are held out for evaluation"):
        DataMix(
            {"gym:leg_counting": 1.0},
            TaskOptions(limit=3, seed=0),
            seed=0,
            holdout=Holdout("gym:leg_counting", seed=0, limit=5),
        )


def test_the_prompts_manifest_hashes_every_training_prompt(tmp_path):
    import json

    from prorl_eval.fingerprints import prompt_hash

    mix = make_mix()
    path = mix.write_prompts_manifest(tmp_path)
    manifest = json.loads(path.read_text())
    for name, task in mix.tasks.items():
        expected = sorted({prompt_hash(task.prompt(p)) for p in mix.problems[name]})
        assert manifest["tasks"][name] == expected
    assert manifest["held_out"] == {CAPS: 0, ECHO: 0}


def test_training_validation_and_evaluation_seeds_differ_by_default():
    from prorl_eval.runner import EvalConfig
    from prorl_train.config import TrainConfig

    cfg = TrainConfig()
    assert len({cfg.data.data_seed, cfg.val.data_seed, EvalConfig(out="x").data_seed}) == 3
    assert cfg.data.holdout == "auto" and cfg.data.holdout_seed == EvalConfig(out="x").data_seed
