"""Plain reference implementations that tests check the fast library code against.

Each is the obvious, slow version of a vectorised or two-pointer algorithm in the library, written
independently of it; the benchmarks in `benchmarks/` time them as their baselines. They live here,
not in the library, because nothing but tests and benchmarks calls them.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Sequence

import numpy as np


def pass_at_k_loop(n, c, k: int) -> np.ndarray:
    """pass@k one problem at a time, by the product form 1 - prod_{i=n-c+1..n} (1 - k/i).

    >>> pass_at_k_loop([4, 4, 10], [0, 2, 1], 2).round(4).tolist()
    [0.0, 0.8333, 0.2]
    """
    n_arr, c_arr = np.broadcast_arrays(np.asarray(n, dtype=np.int64), np.asarray(c, dtype=np.int64))
    out = np.empty(n_arr.size, dtype=np.float64)
    for idx, (n_i, c_i) in enumerate(
        zip(n_arr.ravel().tolist(), c_arr.ravel().tolist(), strict=True)
    ):
        if n_i - c_i < k:
            out[idx] = 1.0
            continue
        prod = 1.0
        for i in range(n_i - c_i + 1, n_i + 1):
            prod *= 1.0 - k / i
        out[idx] = 1.0 - prod
    return out.reshape(n_arr.shape)


def match_ends_quadratic(n: int, span_count: Callable[[int, int], int], min_l: int) -> np.ndarray:
    """The DJ search's ``ends`` (as `creativity.match_ends`), extending from scratch at every start:
    the O(n^2)-query search the two-pointer scan replaces."""
    ends = np.arange(n, dtype=np.int64)
    for f in range(n - min_l + 1):
        if span_count(f, f + min_l) == 0:
            continue
        e = f + min_l
        while e < n and span_count(f, e + 1) > 0:
            e += 1
        ends[f] = e
    return ends


def coverage_loop(ends: np.ndarray, lengths: Sequence[int]) -> np.ndarray:
    """`creativity.coverage_from_ends` as a plain loop over positions."""
    n = len(ends)
    out = []
    for length in lengths:
        covered = [False] * n
        for f in range(n):
            if ends[f] - f >= length:
                for i in range(f, int(ends[f])):
                    covered[i] = True
        out.append(sum(covered) / n if n else 0.0)
    return np.asarray(out)


def corpus_ngrams(docs: Iterable[Sequence[str]], max_n: int) -> set[tuple[str, ...]]:
    """Every n-gram (n <= ``max_n``) of tokenized documents."""
    grams: set[tuple[str, ...]] = set()
    for doc in docs:
        for k in range(1, max_n + 1):
            grams.update(tuple(doc[i : i + k]) for i in range(len(doc) - k + 1))
    return grams


def coverage_brute_force(words: Sequence[str], grams, lengths: Sequence[int]) -> np.ndarray:
    """Coverage by definition: mark every L-gram of ``words`` found in the corpus n-gram set
    (every span of >= L words contains one, so L-grams suffice)."""
    n = len(words)
    out = []
    for length in lengths:
        covered = np.zeros(n, dtype=bool)
        for i in range(n - length + 1):
            if tuple(words[i : i + length]) in grams:
                covered[i : i + length] = True
        out.append(covered.mean() if n else 0.0)
    return np.asarray(out)


def maj_at_k_enumerated(answers: Sequence[str | None], correct: Sequence[float], k: int) -> float:
    """maj@k by visiting every k-subset: count the votes in it, break ties by votes over all
    samples and then by the first sample that gave the answer, score the winner's correctness.

    >>> maj_at_k_enumerated(["a", "b", "b"], [1, 0, 0], 1)
    0.3333333333333333
    """
    from collections import Counter
    from itertools import combinations

    keys = [None if a is None or not str(a).strip() else str(a).strip() for a in answers]
    overall = Counter(key for key in keys if key is not None)
    first = {key: keys.index(key) for key in overall}
    pairs = list(zip(keys, correct, strict=True))
    worth = {key: np.mean([c for a, c in pairs if a == key]) for key in overall}
    total, subsets = 0.0, 0
    for chosen in combinations(range(len(keys)), k):
        subsets += 1
        votes = Counter(keys[i] for i in chosen if keys[i] is not None)
        if not votes:
            continue
        most = max(votes.values())
        tied = [key for key, count in votes.items() if count == most]
        winner = min(tied, key=lambda key: (-overall[key], first[key]))
        total += worth[winner]
    return total / subsets


def ppo_loss_loop(
    model, rollouts, indices, advantages, weights_of, temperature=1.0, clip=(0.2, 0.4)
):
    """token-mean over every response token of w_t * max(-A r_t, -A clip(r_t)), one sequence at a
    time, with r_t = pi / pi_old and pi_old the model itself (so r = 1 at the value, and the
    gradient is that of the surrogate). `weights_of(i, old_logp)` gives response i's per-token
    weights (the rollout correction's, or ones)."""
    import torch

    total, tokens = 0.0, 0
    for i in indices:
        seq = torch.tensor([rollouts.prompt_ids[i] + rollouts.response_ids[i]])
        start = len(rollouts.prompt_ids[i]) - 1
        logp = (model(seq).logits[0, :-1] / temperature).log_softmax(-1)[start:]
        logp = logp.gather(-1, seq[0, start + 1 :, None])[:, 0]
        ratio = torch.exp(logp - logp.detach())
        a = float(advantages[i])
        surrogate = torch.maximum(-a * ratio, -a * ratio.clamp(1 - clip[0], 1 + clip[1]))
        total = total + (weights_of(i, logp.detach()) * surrogate).sum()
        tokens += len(logp)
    return total / tokens
