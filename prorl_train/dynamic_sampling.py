"""Dynamic sampling: drop prompt groups that carry no learning signal (pure torch).

What
----
With group-relative advantages, a prompt whose responses all got the same reward contributes
advantage 0 to every token, i.e. no gradient, but still dilutes the token-mean loss and costs a
backward pass. DAPO's *dynamic sampling* removes such groups (and keeps sampling until the batch
is full, which is the trainer's job); ProRL keeps it. :func:`filter_groups` returns which
responses to keep::

    acc_g  = share of responses of group g with reward >= correct_threshold
    keep_g = 0 < acc_g < 1                         (criterion "accuracy", the default)
    keep_g = max_g(r) != min_g(r)                  (criterion "reward_std")

Papers and departures
---------------------
* "accuracy" is the DAPO paper's constraint ``0 < |{o_i : is_equivalent(a, o_i)}| < G`` and
  ProRL's "filter out prompts with accuracy 0 or 1"; for 0/1 rewards both criteria agree.
* "reward_std" is what verl's DAPO recipe tests (std of the group's scores > 0). It differs for
  partial-credit rewards: a group scoring {0.3, 0.6} has accuracy 0 but a non-zero GRPO
  advantage, so "reward_std" keeps it and "accuracy" drops it.

Example
-------
>>> import torch
>>> keep, stats = filter_groups(torch.tensor([1.0, 1.0, 0.0, 1.0]), torch.tensor([0, 0, 1, 1]))
>>> keep.tolist(), stats["kept_groups"], stats["filtered_share"]
([False, False, True, True], 1, 0.5)
"""

from __future__ import annotations

from collections.abc import Callable

import torch
from torch import Tensor

from prorl_train.advantages import group_stats, grouped_rewards

__all__ = ["FILTER_CRITERIA", "filter_groups"]

# (rewards_B float64, group_B contiguous ids, num_groups, correct_threshold) -> keep_G bool
FilterCriterion = Callable[[Tensor, Tensor, int, float], Tensor]


def _group_accuracy(
    rewards_B: Tensor, group_B: Tensor, num_groups: int, threshold: float
) -> Tensor:
    """Share of responses with reward >= threshold, per group, (G,)."""
    correct_B = (rewards_B >= threshold).to(rewards_B.dtype)
    zeros_G = rewards_B.new_zeros(num_groups)
    count_G = zeros_G.index_add(0, group_B, torch.ones_like(rewards_B))
    return zeros_G.index_add(0, group_B, correct_B) / count_G


def _keep_by_accuracy(
    rewards_B: Tensor, group_B: Tensor, num_groups: int, threshold: float
) -> Tensor:
    """Keep groups with 0 < accuracy < 1 (DAPO, ProRL)."""
    acc_G = _group_accuracy(rewards_B, group_B, num_groups, threshold)
    return (acc_G > 0) & (acc_G < 1)


def _keep_by_reward_std(
    rewards_B: Tensor, group_B: Tensor, num_groups: int, threshold: float
) -> Tensor:
    """Keep groups whose rewards are not all equal (verl's DAPO recipe)."""
    return ~group_stats(rewards_B, group_B, num_groups)["constant"]


FILTER_CRITERIA: dict[str, FilterCriterion] = {
    "accuracy": _keep_by_accuracy,
    "reward_std": _keep_by_reward_std,
}


def filter_groups(
    rewards_B: Tensor,
    group_ids_B: Tensor,
    *,
    correct_threshold: float = 1.0,
    criterion: str = "accuracy",
) -> tuple[Tensor, dict[str, float | int]]:
    """Keep mask (B,) bool: True for responses of groups that carry learning signal.

    ``criterion`` names an entry of :data:`FILTER_CRITERIA` (module docstring). Stats:
    ``groups`` and ``kept_groups`` (ints), ``filtered_share`` (dropped groups / groups, 0.0 for
    an empty batch), ``all_correct_groups`` / ``all_wrong_groups`` (groups with accuracy 1 / 0,
    whatever the criterion), ``kept_samples`` (int) and ``accuracy`` (share of correct
    responses in the whole batch, before filtering).
    """
    if criterion not in FILTER_CRITERIA:
        known = ", ".join(sorted(FILTER_CRITERIA))
        raise ValueError(f"unknown filter criterion {criterion!r}; known: {known}")
    rewards_B, group_B, num_groups = grouped_rewards(rewards_B, group_ids_B)
    r64_B = rewards_B.to(torch.float64)
    group_B = group_B.to(r64_B.device)
    threshold = float(correct_threshold)
    keep_G = FILTER_CRITERIA[criterion](r64_B, group_B, num_groups, threshold)
    acc_G = _group_accuracy(r64_B, group_B, num_groups, threshold)
    keep_B = keep_G[group_B]
    kept = int(keep_G.sum())
    stats: dict[str, float | int] = {
        "groups": num_groups,
        "kept_groups": kept,
        "filtered_share": (num_groups - kept) / num_groups if num_groups else 0.0,
        "all_correct_groups": int((acc_G == 1).sum()),
        "all_wrong_groups": int((acc_G == 0).sum()),
        "kept_samples": int(keep_B.sum()),
        "accuracy": float((r64_B >= threshold).double().mean()) if r64_B.numel() else 0.0,
    }
    return keep_B, stats
