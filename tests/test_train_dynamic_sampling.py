"""Tests for prorl_train.dynamic_sampling: hand-made groups, a loop reference, both criteria."""

from __future__ import annotations

import doctest
import random

import pytest
import torch

from prorl_train import dynamic_sampling
from prorl_train.advantages import compute_advantages
from prorl_train.dynamic_sampling import FILTER_CRITERIA, filter_groups


def _filter_loop(rewards: list[float], ids: list[int], threshold: float, criterion: str):
    """Plain-Python keep mask and group counts."""
    members: dict[int, list[float]] = {}
    for r, gid in zip(rewards, ids, strict=True):
        members.setdefault(gid, []).append(r)
    keep_group = {}
    for gid, values in members.items():
        acc = sum(v >= threshold for v in values) / len(values)
        if criterion == "accuracy":
            keep_group[gid] = 0 < acc < 1
        else:
            keep_group[gid] = max(values) != min(values)
    keep = [keep_group[gid] for gid in ids]
    return keep, len(members), sum(keep_group.values())


def test_hand_made_groups():
    # group 10: all correct; 20: all wrong; 30: mixed; 40 / 50: single responses; 60: mixed
    rewards = [1.0, 0.0, 1.0, 1.0, 0.0, 1.0, 0.0, 1.0, 0.0, 0.0, 1.0]
    ids = [10, 20, 30, 10, 20, 30, 30, 40, 50, 60, 60]
    keep, stats = filter_groups(torch.tensor(rewards), torch.tensor(ids))
    assert keep.dtype == torch.bool
    assert keep.tolist() == [False, False, True, False, False, True, True, False, False, True, True]
    assert stats == {
        "groups": 6,
        "kept_groups": 2,
        "filtered_share": pytest.approx(4 / 6),
        "all_correct_groups": 2,  # 10 and 40
        "all_wrong_groups": 2,  # 20 and 50
        "kept_samples": 5,
        "accuracy": pytest.approx(6 / 11),
    }


@pytest.mark.parametrize(
    ("rewards", "threshold", "criterion", "kept"),
    [
        ([0.3, 0.6], 1.0, "accuracy", False),  # partial credit, nobody fully correct
        ([0.3, 0.6], 1.0, "reward_std", True),  # ... but GRPO sees a non-zero advantage
        ([0.3, 0.6], 0.5, "accuracy", True),  # a lower bar makes one response correct
        ([0.5, 0.5, 0.5], 0.5, "accuracy", False),
        ([0.5, 0.5, 0.5], 0.5, "reward_std", False),
        ([1.0, 0.99], 1.0, "accuracy", True),
        ([1.0, 1.0], 1.0, "reward_std", False),
        ([1.0], 1.0, "reward_std", False),
    ],
)
def test_criteria_table(rewards, threshold, criterion, kept):
    keep, stats = filter_groups(
        torch.tensor(rewards),
        torch.zeros(len(rewards), dtype=torch.long),
        correct_threshold=threshold,
        criterion=criterion,
    )
    assert keep.tolist() == [kept] * len(rewards)
    assert stats["kept_groups"] == int(kept)


@pytest.mark.parametrize("criterion", sorted(FILTER_CRITERIA))
@pytest.mark.parametrize("threshold", [1.0, 0.5])
def test_matches_loop_reference(criterion, threshold):
    rng = random.Random(f"{criterion}-{threshold}")
    for _ in range(50):
        rewards, ids = [], []
        for gid in rng.sample(range(1000), rng.randint(1, 8)):
            kind = rng.random()
            for _ in range(rng.randint(1, 6)):
                if kind < 0.3:
                    rewards.append(float(rng.random() < 0.5))
                elif kind < 0.5:
                    rewards.append(1.0 if kind < 0.4 else 0.0)
                else:
                    rewards.append(rng.choice([0.0, 0.25, 0.5, 0.75, 1.0]))
                ids.append(gid)
        order = rng.sample(range(len(ids)), len(ids))
        rewards, ids = [rewards[i] for i in order], [ids[i] for i in order]
        keep, stats = filter_groups(
            torch.tensor(rewards), torch.tensor(ids), correct_threshold=threshold,
            criterion=criterion,
        )  # fmt: skip
        ref_keep, n_groups, n_kept = _filter_loop(rewards, ids, threshold, criterion)
        assert keep.tolist() == ref_keep
        assert (stats["groups"], stats["kept_groups"]) == (n_groups, n_kept)
        assert stats["kept_samples"] == sum(ref_keep)
        assert stats["filtered_share"] == pytest.approx(1 - n_kept / n_groups)


def test_kept_groups_are_exactly_those_with_nonzero_grpo_advantages():
    """For 0/1 rewards, dynamic sampling drops exactly the groups GRPO gives no signal."""
    g = torch.Generator().manual_seed(0)
    ids = torch.arange(40).repeat_interleave(4)
    p_correct = torch.rand(40, generator=g)[ids]
    rewards = (torch.rand(160, generator=g) < p_correct).float()
    keep, _ = filter_groups(rewards, ids)
    adv = compute_advantages(rewards, ids)
    informative = torch.zeros(40, dtype=torch.bool).index_put_((ids,), adv != 0, accumulate=True)
    assert torch.equal(keep, informative[ids])
    assert 0 < keep.sum() < 160  # the batch has both kinds of group


def test_empty_batch_and_bad_inputs():
    keep, stats = filter_groups(torch.zeros(0), torch.zeros(0, dtype=torch.long))
    assert keep.shape == (0,) and stats["groups"] == 0 and stats["filtered_share"] == 0.0
    with pytest.raises(ValueError, match="group ids"):
        filter_groups(torch.ones(3), torch.zeros(2, dtype=torch.long))
    with pytest.raises(ValueError, match="unknown filter criterion"):
        filter_groups(torch.ones(2), torch.zeros(2, dtype=torch.long), criterion="std")


def test_doctest():
    assert doctest.testmod(dynamic_sampling).failed == 0
