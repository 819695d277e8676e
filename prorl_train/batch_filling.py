"""Keeping a dynamic-sampling batch full: how many prompts each round draws, which groups it
keeps, and what happens when the rounds run out.

Why
---
Dynamic sampling (DAPO, ProRL) drops prompt groups without learning signal. Drawing only the
missing number of prompts per refill round leaves the batch short whenever the model solves (or
fails) many prompts: with half the groups dropped, a 256-prompt batch ends near 246 groups after
3 refills, and the short batch then splits into uneven mini-batches.

Rules
-----
* Round 0 draws ``ceil(batch_size * oversample)`` prompts; a refill round draws
  ``ceil(missing * oversample / kept_share)``, where ``kept_share`` is the share of groups kept
  so far (at least ``1 / MAX_REFILL_FACTOR``). ``oversample`` plays the role of verl's
  ``gen_batch_size / train_batch_size``; dividing by the observed share fills the batch in
  expectation in one refill. At most ``1 + max_extra_rounds`` rounds.
* A group is kept when its criterion sees signal: ``accuracy`` keeps 0 < accuracy < 1,
  ``reward_std`` keeps groups whose rewards are not all equal (`dynamic_sampling.py`).
  ``auto`` picks per task: ``reward_std`` for partial-credit tasks (`Task.partial_credit`:
  Reasoning Gym, stdin/stdout code, LiveCodeBench), where a group scoring {0.3, 0.6} has no
  correct answer but non-zero advantages; ``accuracy`` for the rest.
* Kept groups beyond ``batch_size`` are dropped in draw order ("surplus"), so a filled batch
  has exactly ``batch_size`` groups, as verl's DAPO recipe trims its batch.
* When the rounds run out first, ``short_batch`` decides: ``continue`` trains on the groups kept
  and logs a warning with the numbers; ``error`` stops the run with them (the last checkpoint
  stays).

Without dynamic sampling one round draws ``batch_size`` prompts and keeps every group.

Example
-------
>>> from prorl_train.config import RolloutConfig
>>> filler = BatchFiller(8, RolloutConfig(oversample=1.5))
>>> filler.next_draw()
12
"""

from __future__ import annotations

import logging
import math
from typing import TYPE_CHECKING

import torch

from prorl_eval.errors import UserError
from prorl_train.dynamic_sampling import filter_groups
from prorl_train.rollout import Rollouts

if TYPE_CHECKING:
    from prorl_train.config import RolloutConfig

__all__ = ["MAX_REFILL_FACTOR", "BatchFiller", "ShortBatchError", "group_criterion"]

log = logging.getLogger("prorl_train")

# A refill round draws at most this many prompts per missing group (times `oversample`), so a
# round where almost everything was dropped does not draw an unbounded batch.
MAX_REFILL_FACTOR = 8.0


class ShortBatchError(UserError):
    """The dynamic-sampling rounds ran out before the batch was full (`short_batch=error`)."""


def group_criterion(setting: str, partial_credit: bool) -> str:
    """The filter criterion of a task's groups: the setting, or for `auto` the task's own."""
    if setting != "auto":
        return setting
    return "reward_std" if partial_credit else "accuracy"


class BatchFiller:
    """One step's dynamic-sampling state: `next_draw()` says how many prompts to draw, `add()`
    takes their scored rollouts, `finish()` applies the short-batch policy and returns the
    metrics; `kept` holds the batch."""

    def __init__(self, batch_size: int, rollout: RolloutConfig) -> None:
        self.batch_size = batch_size
        self.cfg = rollout
        self.kept = Rollouts()
        self.rounds = 0
        self.counts = dict.fromkeys(
            ("generated", "kept", "all_correct", "all_wrong", "equal_rewards", "surplus"), 0
        )

    @property
    def missing(self) -> int:
        return self.batch_size - self.kept.num_groups

    def next_draw(self) -> int:
        """Prompts to draw in the next round; 0 when the batch is full or the rounds are spent."""
        last_round = self.cfg.max_extra_rounds if self.cfg.dynamic_sampling else 0
        if self.missing <= 0 or self.rounds > last_round:
            return 0
        if not self.cfg.dynamic_sampling:
            return self.missing
        factor = self.cfg.oversample
        if self.rounds:
            share = self.counts["kept"] / self.counts["generated"]
            factor /= max(share, 1.0 / MAX_REFILL_FACTOR)
        return math.ceil(self.missing * factor)

    def add(self, batch: Rollouts, partial_credit: dict[str, bool]) -> None:
        """Keep `batch`'s informative groups (up to the batch size); `partial_credit` maps each
        task name of the batch to `Task.partial_credit`."""
        self.rounds += 1
        self.counts["generated"] += batch.num_groups
        if not self.cfg.dynamic_sampling:
            self.counts["kept"] += batch.num_groups
            self.kept.extend(batch)
            return
        keep = self._informative(batch, partial_credit)
        self.counts["kept"] += len({g for g, k in zip(batch.group_ids, keep, strict=True) if k})
        room = self.missing
        admitted: set[int] = set()
        for group, flag in zip(batch.group_ids, keep, strict=True):
            if flag and group not in admitted and len(admitted) < room:
                admitted.add(group)
        surplus = {g for g, k in zip(batch.group_ids, keep, strict=True) if k} - admitted
        self.counts["surplus"] += len(surplus)
        self.kept.extend(batch, [g in admitted for g in batch.group_ids])

    def _informative(self, batch: Rollouts, partial_credit: dict[str, bool]) -> list[bool]:
        """Per-sequence keep flags, each group judged by its task's criterion; counts why
        groups were dropped."""
        correct_B = torch.tensor([float(c) for c in batch.correct], dtype=torch.float64)
        rewards_B = torch.tensor(batch.rewards, dtype=torch.float64)
        group_B = torch.tensor(batch.group_ids, dtype=torch.long)
        by_accuracy, _ = filter_groups(correct_B, group_B, criterion="accuracy")
        by_spread, _ = filter_groups(rewards_B, group_B, criterion="reward_std")
        keep: list[bool] = []
        dropped: dict[int, str] = {}
        for i, task in enumerate(batch.tasks):
            spread = (
                group_criterion(self.cfg.filter_criterion, partial_credit[task]) == "reward_std"
            )
            flag = bool(by_spread[i] if spread else by_accuracy[i])
            keep.append(flag)
            if not flag:
                dropped[batch.group_ids[i]] = self._drop_reason(batch, batch.group_ids[i], spread)
        for reason in dropped.values():
            self.counts[reason] += 1
        return keep

    @staticmethod
    def _drop_reason(batch: Rollouts, group: int, spread: bool) -> str:
        """Why a dropped group carried no signal: all correct, all wrong (no correct answer and,
        under reward_std, no positive reward), or equal partial rewards."""
        members = [i for i, g in enumerate(batch.group_ids) if g == group]
        if all(batch.correct[i] for i in members):
            return "all_correct"
        if not spread or max(batch.rewards[i] for i in members) <= 0:
            return "all_wrong"
        return "equal_rewards"

    def finish(self, step: int) -> dict[str, float]:
        """The rollout metrics of the step; applies `short_batch` when the batch is short."""
        c = self.counts
        dropped = c["all_correct"] + c["all_wrong"] + c["equal_rewards"]
        stats = {
            "rollout/rounds": float(self.rounds),
            "rollout/groups_requested": float(self.batch_size),
            "rollout/groups_generated": float(c["generated"]),
            "rollout/groups_kept": float(self.kept.num_groups),
            "rollout/groups_short": float(max(self.missing, 0)),
            "rollout/dropped_all_correct": float(c["all_correct"]),
            "rollout/dropped_all_wrong": float(c["all_wrong"]),
            "rollout/dropped_equal_rewards": float(c["equal_rewards"]),
            "rollout/dropped_surplus": float(c["surplus"]),
            "rollout/filtered_share": dropped / c["generated"] if c["generated"] else 0.0,
        }
        if self.missing > 0 and self.cfg.dynamic_sampling:
            self._short(step, dropped)
        return stats

    def _short(self, step: int, dropped: int) -> None:
        c = self.counts
        what = (
            f"step {step}: dynamic sampling kept {self.kept.num_groups} of {self.batch_size} "
            f"groups after {self.rounds} rounds ({c['generated']} generated; dropped "
            f"{c['all_correct']} all correct, {c['all_wrong']} all wrong, "
            f"{c['equal_rewards']} with equal rewards)"
        )
        if self.cfg.short_batch == "error":
            raise ShortBatchError(
                f"{what}; raise rollout.oversample or rollout.max_extra_rounds, or set "
                "rollout.short_batch=continue to train on short batches."
            )
        log.warning("%s; training on the groups kept.", what)
