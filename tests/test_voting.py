"""maj@k and avg@k against enumeration of every k-subset, and lighteval's rule at k = n."""

from __future__ import annotations

from collections import Counter

import numpy as np
import pytest
from oracles import maj_at_k_enumerated

from prorl_eval.voting import maj_at_k, maj_at_k_values


def random_problem(rng: np.random.Generator, n: int):
    """n samples over a few answers (some abstaining); answer "0" is the correct one."""
    pool = ["0", "1", "2", "3", None][: int(rng.integers(2, 6))]
    answers = [pool[int(i)] for i in rng.integers(0, len(pool), size=n)]
    return answers, [float(a == "0") for a in answers]


@pytest.mark.parametrize("seed", range(40))
def test_maj_at_k_equals_enumerating_every_subset(seed):
    rng = np.random.default_rng(seed)
    n = int(rng.integers(1, 11))
    answers, correct = random_problem(rng, n)
    exact = maj_at_k_values(answers, correct, list(range(1, n + 1)))
    brute = [maj_at_k_enumerated(answers, correct, k) for k in range(1, n + 1)]
    assert exact == pytest.approx(brute, abs=1e-12)


def test_ties_and_partial_correctness():
    # "a" and "b" tie overall (2 votes each); "b" was sampled first, so it wins the 2-2 tie
    answers, correct = ["b", "a", "a", "b"], [0.0, 1.0, 1.0, 0.0]
    assert maj_at_k(answers, correct, 4) == 0.0
    assert maj_at_k(answers, correct, 2) == pytest.approx(maj_at_k_enumerated(answers, correct, 2))
    # an answer whose samples disagree on correctness counts its mean
    assert maj_at_k(["x", "x"], [1.0, 0.0], 2) == 0.5
    assert maj_at_k([None, None, "x"], [0.0, 0.0, 1.0], 1) == pytest.approx(1 / 3)


def test_at_k_equal_n_it_is_counter_most_common_as_lighteval_votes():
    rng = np.random.default_rng(7)
    for _ in range(50):
        n = int(rng.integers(1, 12))
        answers, correct = random_problem(rng, n)
        votes = Counter(a for a in answers if a is not None)
        expected = float(votes.most_common(1)[0][0] == "0") if votes else 0.0
        assert maj_at_k(answers, correct, n) == expected


def test_large_n_is_exact_and_fast_enough():
    rng = np.random.default_rng(3)
    answers = [str(int(x)) for x in rng.integers(0, 30, size=128)]
    correct = [float(a == "7") for a in answers]
    values = maj_at_k_values(answers, correct, [1, 2, 4, 8, 16, 32, 64, 128])
    assert values[0] == pytest.approx(sum(correct) / 128)
    assert all(0.0 <= v <= 1.0 for v in values)
    small = answers[:9]
    assert maj_at_k(small, correct[:9], 4) == pytest.approx(
        maj_at_k_enumerated(small, correct[:9], 4)
    )
