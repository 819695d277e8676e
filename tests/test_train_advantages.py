"""Tests for prorl_train.advantages: every estimator against a plain-loop reference, edge cases."""

from __future__ import annotations

import doctest
import math
import random

import pytest
import torch

from prorl_train import advantages
from prorl_train.advantages import ADVANTAGE_ESTIMATORS, compute_advantages, group_index

# --------------------------------------------------------------------------- loop reference


def _advantages_loop(rewards: list[float], ids: list[int], estimator: str, eps: float) -> list:
    """Plain-Python advantages, written from the formulas without any tensor code."""
    members: dict[int, list[int]] = {}
    for i, gid in enumerate(ids):
        members.setdefault(gid, []).append(i)
    centred = [0.0] * len(rewards)
    scaled = [0.0] * len(rewards)
    left_out = [0.0] * len(rewards)
    for idx in members.values():
        values = [rewards[i] for i in idx]
        if max(values) == min(values):
            continue  # no comparison inside the group: advantage 0
        mean = sum(values) / len(values)
        std = math.sqrt(sum((v - mean) ** 2 for v in values) / (len(values) - 1))
        for i in idx:
            centred[i] = rewards[i] - mean
            scaled[i] = (rewards[i] - mean) / (std + eps)
            others = [rewards[j] for j in idx if j != i]  # RLOO: the mean of the others
            left_out[i] = rewards[i] - sum(others) / len(others)
    if estimator == "grpo":
        return scaled
    if estimator == "grpo_no_std":
        return centred
    if estimator == "rloo":
        return left_out
    assert estimator == "reinforce_pp"
    n = len(centred)
    mean = sum(centred) / n
    std = math.sqrt(sum((c - mean) ** 2 for c in centred) / max(n - 1, 1))
    return [(c - mean) / (std + eps) for c in centred]


def _random_batch(rng: random.Random, binary: bool) -> tuple[list[float], list[int]]:
    """Groups of sizes 1..8 (some constant), non-contiguous ids, shuffled order."""
    rewards, ids = [], []
    for _ in range(rng.randint(1, 9)):
        gid = rng.randint(-1000, 10**9)
        while gid in ids:
            gid += 1
        size = rng.randint(1, 8)
        kind = rng.random()
        for _ in range(size):
            if kind < 0.2:
                value = 1.0  # all correct
            elif kind < 0.3:
                value = 0.7  # constant non-binary (a rounding trap for the group mean)
            else:
                value = float(rng.random() < 0.5) if binary else round(rng.uniform(-2, 3), 3)
            rewards.append(value)
            ids.append(gid)
    order = list(range(len(rewards)))
    rng.shuffle(order)
    return [rewards[i] for i in order], [ids[i] for i in order]


@pytest.mark.parametrize("estimator", sorted(ADVANTAGE_ESTIMATORS))
@pytest.mark.parametrize("binary", [True, False])
def test_vectorised_matches_loop_reference(estimator, binary):
    rng = random.Random(f"{estimator}-{binary}")
    for _ in range(40):
        rewards, ids = _random_batch(rng, binary)
        got = compute_advantages(
            torch.tensor(rewards, dtype=torch.float64), torch.tensor(ids), estimator=estimator
        )
        expected = _advantages_loop(rewards, ids, estimator, 1e-6)
        assert torch.isfinite(got).all()
        torch.testing.assert_close(got, torch.tensor(expected, dtype=torch.float64))


# ------------------------------------------------------------------------- hand-made cases

S = 1 / math.sqrt(2)  # (1 - 0.5) / std([1, 0]) with the unbiased std sqrt(1/2)


@pytest.mark.parametrize(
    ("rewards", "ids", "expected"),
    [
        ([1.0, 0.0], [5, 5], [S, -S]),
        ([1.0, 0.0, 1.0, 1.0], [7, 7, 3, 3], [S, -S, 0.0, 0.0]),  # constant group -> 0
        ([1.0, 0.0, 0.0, 0.0], [1, 1, 1, 1], [1.5, -0.5, -0.5, -0.5]),  # std = 0.5
        ([0.3], [9], [0.0]),  # single response: nothing to compare with
        ([0.0, 1.0, 2.0], [4, 4, 4], [-1.0, 0.0, 1.0]),  # std = 1
        ([2.0, 1.0, 0.0, 2.0], [0, 1, 0, 1], [S, -S, -S, S]),
    ],
)
def test_grpo_table(rewards, ids, expected):
    got = compute_advantages(torch.tensor(rewards), torch.tensor(ids), eps=0.0)
    torch.testing.assert_close(got, torch.tensor(expected), atol=1e-6, rtol=1e-6)


@pytest.mark.parametrize("estimator", sorted(ADVANTAGE_ESTIMATORS))
@pytest.mark.parametrize("value", [0.7, 0.1, 1.0, 0.0, 1 / 3])
@pytest.mark.parametrize("eps", [1e-6, 0.0])
@pytest.mark.parametrize("dtype", [torch.float32, torch.float64])
def test_zero_variance_groups_are_exactly_zero(estimator, value, eps, dtype):
    # (0.1 + 0.1 + 0.1) / 3 != 0.1 in float64: without the explicit guard the deviation is an
    # ulp, and with eps = 0 dividing it by the zero or equally tiny std gives inf or O(1).
    rewards = torch.tensor([value] * 3 + [value] * 5 + [0.25], dtype=dtype)
    ids = torch.tensor([0, 0, 0, 1, 1, 1, 1, 1, 2])
    got = compute_advantages(rewards, ids, estimator=estimator, eps=eps)
    assert torch.equal(got, torch.zeros(9, dtype=dtype))


def test_float_rounding_trap_is_real():
    """The case above is not vacuous: the naive group mean of equal rewards differs from them."""
    r = torch.tensor([0.1, 0.1, 0.1], dtype=torch.float64)
    assert not torch.equal(r - r.sum() / 3, torch.zeros(3))


@pytest.mark.parametrize("estimator", sorted(ADVANTAGE_ESTIMATORS))
@pytest.mark.parametrize("eps", [1e-6, 0.0])
def test_degenerate_batches_give_zeros_not_nan(estimator, eps):
    for rewards, ids in [([1.0], [0]), ([0.0, 0.0], [3, 3]), ([1.0, 0.0], [1, 2])]:
        r, g = torch.tensor(rewards), torch.tensor(ids)
        got = compute_advantages(r, g, estimator=estimator, eps=eps)
        assert torch.equal(got, torch.zeros(len(rewards)))
    empty = compute_advantages(torch.zeros(0), torch.zeros(0, dtype=torch.long))
    assert empty.shape == (0,)


# ------------------------------------------------------------------------ normalisation laws


def test_reinforce_pp_has_zero_mean_unit_std_over_the_batch():
    rng = random.Random(3)
    checked = 0
    for _ in range(30):
        rewards, ids = _random_batch(rng, binary=rng.random() < 0.5)
        got = compute_advantages(
            torch.tensor(rewards, dtype=torch.float64), torch.tensor(ids), estimator="reinforce_pp"
        )
        if torch.all(got == 0):  # every group constant: nothing to normalise
            continue
        checked += 1
        assert abs(got.mean().item()) < 1e-12
        assert got.std().item() == pytest.approx(1.0, abs=1e-5)  # eps=1e-6 in the denominator
    assert checked >= 20


def test_grpo_normalises_each_varied_group_and_no_std_centres_it():
    rng = random.Random(4)
    rewards, ids = _random_batch(rng, binary=False)
    r, g = torch.tensor(rewards, dtype=torch.float64), torch.tensor(ids)
    grpo = compute_advantages(r, g, estimator="grpo", eps=0.0)
    centred = compute_advantages(r, g, estimator="grpo_no_std")
    for gid in set(ids):
        sel = g == gid
        assert abs(centred[sel].sum().item()) < 1e-9
        if r[sel].max() > r[sel].min():
            assert abs(grpo[sel].mean().item()) < 1e-9
            assert grpo[sel].std().item() == pytest.approx(1.0)


@pytest.mark.parametrize("estimator", sorted(ADVANTAGE_ESTIMATORS))
def test_permuting_the_batch_permutes_the_advantages(estimator):
    rewards, ids = _random_batch(random.Random(5), binary=True)
    r, g = torch.tensor(rewards, dtype=torch.float64), torch.tensor(ids)
    perm = torch.randperm(len(rewards), generator=torch.Generator().manual_seed(0))
    base = compute_advantages(r, g, estimator=estimator)
    torch.testing.assert_close(
        compute_advantages(r[perm], g[perm], estimator=estimator), base[perm]
    )


def test_group_ids_may_be_any_integers():
    a = compute_advantages(torch.tensor([1.0, 0.0, 0.0]), torch.tensor([10**12, -4, 10**12]))
    b = compute_advantages(torch.tensor([1.0, 0.0, 0.0]), torch.tensor([1, 0, 1]))
    assert torch.equal(a, b)
    group_B, num_groups = group_index([8, 3, 8, 5])
    assert group_B.tolist() == [2, 0, 2, 1] and num_groups == 3


def test_dtypes_and_no_gradient():
    ids = torch.tensor([0, 0, 1, 1])
    assert compute_advantages(torch.tensor([1, 0, 1, 1]), ids).dtype == torch.float32
    assert compute_advantages(torch.tensor([True, False, True, True]), ids).dtype == torch.float32
    r64 = torch.tensor([1.0, 0.0, 1.0, 1.0], dtype=torch.float64)
    assert compute_advantages(r64, ids).dtype == torch.float64
    r = torch.tensor([1.0, 0.0, 1.0, 1.0], requires_grad=True)
    assert not compute_advantages(r, ids).requires_grad


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({"rewards_B": torch.ones(2), "group_ids_B": torch.zeros(3, dtype=torch.long)}, "group"),
        ({"rewards_B": torch.ones(2, 2), "group_ids_B": torch.zeros(4, dtype=torch.long)}, "1-D"),
        ({"rewards_B": torch.tensor([1.0, math.nan]), "group_ids_B": torch.zeros(2)}, "integer"),
        ({"rewards_B": torch.tensor([1.0, math.inf]), "group_ids_B": [0, 0]}, "finite"),
        ({"rewards_B": torch.ones(2), "group_ids_B": [0, 0], "estimator": "ppo"}, "unknown"),
    ],
)
def test_bad_inputs_raise(kwargs, message):
    with pytest.raises(ValueError, match=message):
        compute_advantages(**kwargs)


def test_doctest():
    assert doctest.testmod(advantages).failed == 0
