"""maj@k (majority vote, also called cons@k) and avg@k from n samples per problem, exactly.

maj@k of a problem is the expected correctness of the majority answer of k samples drawn without
replacement from its n, over all C(n, k) subsets equally likely: the unbiased estimate, from n
samples, of what majority voting over k fresh samples scores (as pass@k's estimator is for pass@k).

Rules, stated once:
- Answers are the verifiers' extracted answers (`extracted_answer` in a row), compared as text
  after stripping surrounding whitespace; samples without one (no answer found) do not vote. A
  subset in which no sample answered scores 0.
- The majority answer of a subset is the one with the most votes in it. A tie goes to the answer
  with more votes among all n samples, then to the one sampled first (lowest `sample_idx`), so at
  k = n this is `collections.Counter.most_common`'s choice on the samples in order, the rule of
  lighteval's maj@n.
- An answer's correctness is the mean correctness of the samples that gave it (1 or 0 when the
  verifier is deterministic, as it is for the same text and gold).

Computation (no enumeration): answer c wins a subset holding j of its m_c copies when every answer
ranked before it (it would win a tie against c) holds fewer than j, and every answer ranked after
it at most j. The number of such subsets is C(m_c, j) times the coefficient of x^(k-j) in the
product of the other answers' truncated binomial polynomials and (1 + x)^(abstentions); answers
with fewer than j copies are unconstrained and fold into one binomial. Only answers with non-zero
correctness are counted. `tests/oracles.py` enumerates the subsets for small n to check it.

avg@k is the expected mean score of k samples; by linearity it is the mean score of all n, for
every k (lighteval averages the first k samples instead: the same expectation, more variance).

Example:
    >>> maj_at_k(["4", "4", "5", None], [True, True, False, False], 1)
    0.5
    >>> maj_at_k(["4", "4", "5", None], [True, True, False, False], 4)
    1.0
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np


@dataclass(frozen=True)
class _Answer:
    count: int
    value: float  # mean correctness of the samples that gave it


def _answers(answers: Sequence[str | None], correct: Sequence[float]) -> tuple[list[_Answer], int]:
    """The distinct answers in tie-break order (more votes, then sampled first), abstentions."""
    first: dict[str, int] = {}
    votes: dict[str, list[float]] = {}
    abstain = 0
    for index, (answer, ok) in enumerate(zip(answers, correct, strict=True)):
        if answer is None or not str(answer).strip():
            abstain += 1
            continue
        key = str(answer).strip()
        first.setdefault(key, index)
        votes.setdefault(key, []).append(float(ok))
    order = sorted(votes, key=lambda key: (-len(votes[key]), first[key]))
    return [_Answer(len(votes[key]), float(np.mean(votes[key]))) for key in order], abstain


def _binomial(m: int, top: int) -> np.ndarray:
    """Coefficients C(m, i) for i = 0 .. min(m, top)."""
    return np.array([math.comb(m, i) for i in range(min(m, top) + 1)], dtype=float)


def _truncate(poly: np.ndarray, degree: int) -> np.ndarray:
    return poly[: degree + 1]


def maj_at_k_values(
    answers: Sequence[str | None], correct: Sequence[float], ks: Sequence[int]
) -> list[float]:
    """maj@k of one problem for each k in `ks` (each 1 <= k <= n)."""
    n = len(answers)
    if len(correct) != n:
        raise ValueError(f"{n} answers but {len(correct)} correctness values")
    if any(not 1 <= k <= n for k in ks):
        raise ValueError(f"every k must be in 1..{n} (got {list(ks)})")
    classes, abstain = _answers(answers, correct)
    top = max(ks, default=0)
    totals = np.zeros(len(ks))
    for rank, target in enumerate(classes):
        if target.value == 0.0:
            continue
        for j in range(1, min(target.count, top) + 1):
            ways = _others(classes, rank, j, abstain, top - j)
            for index, k in enumerate(ks):
                if k >= j and k - j < len(ways):
                    totals[index] += target.value * math.comb(target.count, j) * ways[k - j]
    return [float(total / math.comb(n, k)) for total, k in zip(totals, ks, strict=True)]


def _others(classes: list[_Answer], rank: int, j: int, abstain: int, degree: int) -> np.ndarray:
    """Ways to pick s = 0..degree samples from the other answers and the abstentions so that the
    answer at `rank`, holding j votes, wins: coefficient s of the product polynomial."""
    free = abstain  # abstentions and answers too rare to reach j are unconstrained
    poly = np.ones(1)
    for other, answer in enumerate(classes):
        if other == rank:
            continue
        cap = j - 1 if other < rank else j  # an answer ranked before it must stay below j
        if answer.count <= cap:
            free += answer.count
            continue
        poly = _truncate(np.convolve(poly, _binomial(answer.count, cap)), degree)
    return _truncate(np.convolve(poly, _binomial(free, degree)), degree)


def maj_at_k(answers: Sequence[str | None], correct: Sequence[float], k: int) -> float:
    """maj@k of one problem (see the module docstring for the rules)."""
    return maj_at_k_values(answers, correct, [k])[0]


def has_answers(answers: Sequence[str | None]) -> bool:
    """True when some sample has an extracted answer to vote on."""
    return any(answer is not None for answer in answers)
