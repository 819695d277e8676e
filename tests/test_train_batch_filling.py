"""Keeping the dynamic-sampling batch full: draws per round, surplus trimming, per-task filter
criteria, the short-batch policy and the metrics (`prorl_train/batch_filling.py`)."""

from __future__ import annotations

import logging
import math

import pytest

from prorl_train.batch_filling import BatchFiller, ShortBatchError, group_criterion
from prorl_train.config import RolloutConfig
from prorl_train.rollout import Rollouts


def groups_batch(first_id: int, groups: list[list[float]], task: str = "t") -> Rollouts:
    """One scored round: group k (id first_id + k) has the given rewards; correct = 1.0."""
    r = Rollouts()
    for k, rewards in enumerate(groups):
        for reward in rewards:
            r.prompt_ids.append([1])
            r.response_ids.append([2])
            r.rewards.append(reward)
            r.correct.append(reward >= 1.0)
            r.truncated.append(False)
            r.loss_mask.append(True)
            r.group_ids.append(first_id + k)
            r.tasks.append(task)
            r.domains.append("d")
            r.texts.append("x")
    return r


MIXED, RIGHT, WRONG, PARTIAL = [0.0, 1.0], [1.0, 1.0], [0.0, 0.0], [0.3, 0.6]


def test_round_zero_draws_the_batch_times_oversample():
    assert BatchFiller(256, RolloutConfig()).next_draw() == 256
    assert BatchFiller(256, RolloutConfig(oversample=1.5)).next_draw() == 384
    assert BatchFiller(10, RolloutConfig(oversample=1.01)).next_draw() == 11  # ceil


def test_refill_divides_by_the_share_kept_so_far():
    filler = BatchFiller(8, RolloutConfig(oversample=1.25))
    assert filler.next_draw() == 10
    filler.add(groups_batch(0, [MIXED] * 4 + [RIGHT] * 6), {"t": False})
    # 4 of 8 kept, 4 of 10 generated groups were informative: 4 * 1.25 / 0.4
    assert filler.next_draw() == math.ceil(4 * 1.25 / 0.4)
    filler = BatchFiller(8, RolloutConfig())
    filler.add(groups_batch(0, [RIGHT] * 8), {"t": False})
    assert filler.next_draw() == 8 * 8  # nothing kept: the draw is bounded by MAX_REFILL_FACTOR


def test_surplus_groups_are_trimmed_in_draw_order():
    filler = BatchFiller(3, RolloutConfig())
    filler.add(groups_batch(0, [MIXED, RIGHT]), {"t": False})
    filler.add(groups_batch(10, [MIXED, MIXED, WRONG, MIXED, MIXED]), {"t": False})
    assert sorted(set(filler.kept.group_ids)) == [0, 10, 11]
    assert filler.next_draw() == 0
    stats = filler.finish(step=1)
    assert stats["rollout/groups_kept"] == 3 == stats["rollout/groups_requested"]
    assert stats["rollout/dropped_surplus"] == 2
    assert stats["rollout/dropped_all_correct"] == 1 and stats["rollout/dropped_all_wrong"] == 1
    assert stats["rollout/groups_generated"] == 7 and stats["rollout/rounds"] == 2
    assert stats["rollout/filtered_share"] == pytest.approx(2 / 7)
    assert stats["rollout/groups_short"] == 0


def test_rounds_are_bounded():
    filler = BatchFiller(2, RolloutConfig(max_extra_rounds=2))
    for round_ in range(3):
        assert filler.next_draw() > 0
        filler.add(groups_batch(100 * round_, [RIGHT] * filler.next_draw()), {"t": False})
    assert filler.next_draw() == 0


def test_partial_credit_groups_are_kept_by_reward_spread():
    assert group_criterion("auto", True) == "reward_std"
    assert group_criterion("auto", False) == "accuracy"
    assert group_criterion("accuracy", True) == "accuracy"
    rounds = [PARTIAL, [0.5, 0.5], WRONG, MIXED]
    kept = {}
    for setting, partial in [("auto", True), ("auto", False), ("accuracy", True)]:
        filler = BatchFiller(4, RolloutConfig(filter_criterion=setting, max_extra_rounds=0))
        filler.add(groups_batch(0, rounds), {"t": partial})
        kept[setting, partial] = (sorted(set(filler.kept.group_ids)), filler.finish(step=1))
    ids, stats = kept["auto", True]
    assert ids == [0, 3]  # {0.3, 0.6} has no correct answer but non-zero advantages
    assert stats["rollout/dropped_equal_rewards"] == 1 and stats["rollout/dropped_all_wrong"] == 1
    assert kept["auto", False][0] == [3] == kept["accuracy", True][0]


def test_each_task_uses_its_own_criterion():
    filler = BatchFiller(4, RolloutConfig(max_extra_rounds=0))
    batch = groups_batch(0, [PARTIAL], task="gym")
    batch.extend(groups_batch(1, [PARTIAL], task="math"))
    filler.add(batch, {"gym": True, "math": False})
    assert sorted(set(filler.kept.group_ids)) == [0]


def test_short_batch_continue_warns_with_the_numbers(caplog):
    filler = BatchFiller(4, RolloutConfig(max_extra_rounds=0))
    filler.add(groups_batch(0, [MIXED, RIGHT, RIGHT, WRONG]), {"t": False})
    with caplog.at_level(logging.WARNING, logger="prorl_train"):
        stats = filler.finish(step=7)
    assert stats["rollout/groups_short"] == 3 and stats["rollout/groups_kept"] == 1
    assert "step 7: dynamic sampling kept 1 of 4 groups after 1 rounds" in caplog.text
    assert "2 all correct, 1 all wrong" in caplog.text


def test_short_batch_error_stops_with_the_numbers():
    filler = BatchFiller(4, RolloutConfig(max_extra_rounds=0, short_batch="error"))
    filler.add(groups_batch(0, [MIXED, RIGHT, RIGHT, WRONG]), {"t": False})
    with pytest.raises(ShortBatchError, match=r"kept 1 of 4 groups.*rollout\.oversample"):
        filler.finish(step=7)


def test_without_dynamic_sampling_everything_is_kept():
    filler = BatchFiller(3, RolloutConfig(dynamic_sampling=False, oversample=2.0))
    assert filler.next_draw() == 3
    filler.add(groups_batch(0, [RIGHT, WRONG, MIXED]), {"t": False})
    assert filler.next_draw() == 0 and filler.kept.num_groups == 3
    assert filler.finish(step=1)["rollout/filtered_share"] == 0.0


@pytest.mark.parametrize(
    ("setting", "match"),
    [
        ("rollout.oversample=0.5", "rollout.oversample must be >= 1"),
        ("rollout.short_batch=drop", "rollout.short_batch"),
        ("rollout.filter_criterion=spread", "rollout.filter_criterion"),
    ],
)
def test_bad_settings_are_one_line_errors(tmp_path, setting, match):
    from prorl_eval.errors import UserError
    from prorl_train.config import load_config

    with pytest.raises(UserError, match=match):
        load_config(None, overrides=[setting], out=str(tmp_path)).validate()


def test_partial_credit_tasks_default_to_reward_spread():
    """The documented per-task default of filter_criterion=auto."""
    from prorl_eval.tasks.code import FunctionCodeTask
    from prorl_eval.tasks.code_lcb import LcbTask
    from prorl_eval.tasks.code_stdio import StdioTask
    from prorl_eval.tasks.gym import GymTask
    from prorl_eval.tasks.ifeval import IFEvalTask
    from prorl_eval.tasks.math_tasks import MathTask
    from prorl_eval.tasks.stem import MultipleChoiceTask
    from prorl_eval.tasks.train_sources import EurusCodeTask

    spread = [GymTask, StdioTask, LcbTask, EurusCodeTask]
    accuracy = [MathTask, MultipleChoiceTask, IFEvalTask, FunctionCodeTask]
    assert [group_criterion("auto", t.partial_credit) for t in spread] == ["reward_std"] * 4
    assert [group_criterion("auto", t.partial_credit) for t in accuracy] == ["accuracy"] * 4
