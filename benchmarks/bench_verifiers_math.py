"""Throughput of the maths verifier (`prorl_eval.tasks.math_answer.verify_math`), in samples/s.

Builds typical responses to MATH-500 problems from the offline copy: each problem's reference
solution with its boxes removed as the "reasoning", then a final `\\boxed{}` that is the gold
(correct; a plain fraction written as its decimal), another problem's gold (wrong), or nothing
(a truncated `<think>` trace). Mix per 10 samples: 4 correct, 4 wrong, 1
truncated, 1 with a wrong boxed answer inside `<think>` and the gold after it. Times:

* the main thread (math-verify's own signal timeouts), first pass (gold parses not yet cached)
  and a second pass over the same samples;
* one worker thread (each call goes to a helper process) and two worker threads (two helpers in
  parallel), helpers started before timing;
* the main thread again with the reasoning repeated 16 times (reasoning-model lengths, ~8k chars).

Checks every score against the label it was built with. Prints a Markdown table.

Run: ``.venv/bin/python benchmarks/bench_verifiers_math.py [--data-dir ../shared/data]
[--samples 1000]``
"""

from __future__ import annotations

import argparse
import json
import platform
import random
import re
import sys
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))  # run from a checkout

from prorl_eval.tasks.math_answer import verify_math

SEED = 0
_BOX = re.compile(r"\\boxed")
_FRACTION = re.compile(r"\\frac\{(\d+)\}\{(\d+)\}")


def build_samples(data_dir: Path, count: int, repeat: int = 1) -> list[tuple[str, str, float]]:
    """(response, gold, expected score) triples, deterministic for a seed."""
    path = data_dir / "math" / "math500.jsonl"
    if not path.is_file():
        sys.exit(f"{path} not found; pass --data-dir with the offline benchmark copies.")
    rows = [json.loads(line) for line in path.read_text(encoding="utf-8").splitlines() if line]
    rng = random.Random(SEED)
    samples = []
    for i in range(count):
        row = rows[i % len(rows)]
        other = rows[(i * 7 + 3) % len(rows)]
        reasoning = "\n".join([_BOX.sub("", row["solution"])] * repeat)
        gold, kind = row["answer"], i % 10
        if kind < 4:
            samples.append(
                (f"{reasoning}\nThe final answer is $\\boxed{{{_variant(gold)}}}$.", gold, 1.0)
            )
        elif kind < 8:
            wrong = other["answer"] if other["answer"] != gold else gold + "+1"
            samples.append((f"{reasoning}\nSo the answer is $\\boxed{{{wrong}}}$.", gold, None))
        elif kind == 8:
            samples.append((f"<think>{reasoning[: rng.randint(50, 400)]}", gold, 0.0))
        else:
            trace = f"<think>{reasoning}\nMaybe \\boxed{{{other['answer']}}}? No.</think>"
            samples.append((f"{trace}\nAnswer: $\\boxed{{{gold}}}$", gold, 1.0))
    return samples


def _variant(gold: str) -> str:
    """An equivalent way to write a plain fraction gold (its decimal), else the gold itself."""
    match = _FRACTION.fullmatch(gold.strip())
    if match and int(match.group(2)) in (2, 4, 5, 8, 10, 20, 25):
        return repr(int(match.group(1)) / int(match.group(2)))
    return gold


def run_pass(samples: list[tuple[str, str, float]], threads: int) -> tuple[float, list[float]]:
    """Wall seconds to score every sample, and the scores (0 threads: the main thread)."""
    start = time.perf_counter()
    if threads == 0:
        values = [verify_math(r, g).value for r, g, _ in samples]
    else:
        with ThreadPoolExecutor(threads) as pool:
            values = list(pool.map(lambda s: verify_math(s[0], s[1]).value, samples))
    return time.perf_counter() - start, values


def warm_helpers(threads: int) -> None:
    """Start one helper process per worker thread before timing (about a second each)."""
    import threading

    barrier = threading.Barrier(threads)

    def hold(_: int) -> None:
        verify_math("\\boxed{1}", "1")
        barrier.wait()  # keep every thread busy so each starts its own helper

    with ThreadPoolExecutor(threads) as pool:
        list(pool.map(hold, range(threads)))


def check(samples: list[tuple[str, str, float]], values: list[float]) -> int:
    """How many scores disagree with the label a sample was built with (None: wrong or equal)."""
    return sum(
        1
        for (_, _, expected), v in zip(samples, values, strict=True)
        if expected is not None and v != expected
    )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--data-dir", default="../shared/data", type=Path)
    parser.add_argument("--samples", default=1000, type=int)
    args = parser.parse_args()
    short = build_samples(args.data_dir, args.samples)
    long = build_samples(args.data_dir, max(1, args.samples // 4), repeat=16)
    plan = [
        ("main thread, first pass", short, 0),
        ("main thread, second pass", short, 0),
        ("1 worker thread → a helper process", short, 1),
        ("2 worker threads → 2 helper processes", short, 2),
        ("main thread, long responses", long, 0),
    ]
    print(f"Machine: {platform.machine()}, Python {platform.python_version()}.\n")
    print("| route | samples | mean chars | seconds | samples/s | mean score | label mismatches |")
    print("|---|---:|---:|---:|---:|---:|---:|")
    for label, samples, threads in plan:
        if threads:
            warm_helpers(threads)
        seconds, values = run_pass(samples, threads)
        chars = sum(len(r) for r, _, _ in samples) / len(samples)
        print(
            f"| {label} | {len(samples)} | {chars:.0f} | {seconds:.2f} "
            f"| {len(samples) / seconds:.0f} | {sum(values) / len(values):.3f} "
            f"| {check(samples, values)} |"
        )


if __name__ == "__main__":
    main()
