"""Peer oracle: prorl's per-test LiveCodeBench verdicts equal LiveCodeBench's own harness.

LiveCodeBench's side is `livecodebench.evaluation.testing_util.run_test` (nvidia-livecodebench),
run in a throwaway interpreter that forks once per solution, as its `check_correctness` runs each
in a process of its own (`run_test` disables os functions for the rest of the process). It stops
at a solution's first failing test, so its list is compared with the same prefix of prorl's.
The problems are tests/fixtures/code/livecodebench, in LiveCodeBench's own row format.
"""

from __future__ import annotations

import pickle
import subprocess
import sys
from dataclasses import replace
from pathlib import Path

import pytest

from prorl_eval.tasks.code_lcb import LcbTask, build_lcb_task
from prorl_eval.tasks.options import TaskOptions

FIXTURES = Path(__file__).parent / "fixtures"
FENCE = "```"
TIMEOUT_S = 2  # both harnesses get the same per-test limit (LiveCodeBench's default is 6)

LCB_SIDE = """
import os, pickle, sys
from livecodebench.evaluation.testing_util import run_test

cases = pickle.load(sys.stdin.buffer)
verdicts = []
for case in cases:
    read, write = os.pipe()
    pid = os.fork()
    if pid == 0:  # the solution's and the harness's prints must not reach the result stream
        os.close(read)
        os.dup2(os.open(os.devnull, os.O_WRONLY), 1)
        results, _ = run_test(case["sample"], test=case["code"], timeout=case["timeout"])
        os.write(write, pickle.dumps([r if isinstance(r, int) else bool(r) for r in results]))
        os._exit(0)
    os.close(write)
    data = b""
    while chunk := os.read(read, 65536):
        data += chunk
    os.waitpid(pid, 0)
    verdicts.append(pickle.loads(data))
sys.stdout.buffer.write(pickle.dumps(verdicts))
"""

SOLUTION = "class Solution:\n    def {name}(self, {args}):\n{body}"
# (problem, solution, what it exercises)
CASES = [
    ("abc900_a", "a, b = map(int, input().split())\nprint(a + b)", "stdin, correct"),
    ("abc900_a", "print(sum(map(int, stdin.readline().split())))", "stdin, LCB's imports"),
    ("abc900_a", "a, b = map(int, input().split())\nprint(a - b)", "stdin, wrong"),
    ("abc900_a", "print(sum(map(int, input().split())))\nexit()", "stdin, exit()"),
    ("abc900_a", "a, b = map(int, input().split())\nif a < 0:\n    raise ValueError\nprint(a + b)",
     "stdin, raises on one test"),
    ("abc900_a", "print(int(input().split()[0]) +", "stdin, syntax error"),
    ("abc900_a", "import time\na, b = map(int, input().split())\nif a == 10:\n"
     "    time.sleep(30)\nprint(a + b)", "stdin, too slow on one test"),
    ("2000A", "n = int(input())\nprint(sum(map(int, input().split())) / n)",
     "stdin, decimals: 2.5 equals 2.500000"),
    ("2000A", "n = int(input())\nprint(f'{sum(map(int, input().split())) / n:.7f}')",
     "stdin, decimals: an extra digit"),
    ("2000A", "n = int(input())\nprint(f'{sum(map(int, input().split())) / n:.6f}')",
     "stdin, decimals, correct"),
    ("abc901_b", "print(*range(1, int(input()) + 1))", "stdin, one line instead of n"),
    ("abc901_b", "for i in range(1, int(input()) + 1):\n    print(i, ' ')\nprint()",
     "stdin, trailing spaces and a blank line"),
    ("3001", SOLUTION.format(name="pairSum", args="nums, target", body=(
        "        seen = defaultdict(int)\n        for i, x in enumerate(nums):\n"
        "            if target - x in seen:\n                return (seen[target - x], i)\n"
        "            seen[x] = i\n")), "functional, tuple result, LCB's imports"),
    ("3001", SOLUTION.format(name="pairSum", args="nums, target", body=(
        "        for i in range(len(nums)):\n            for j in range(i + 1, len(nums)):\n"
        "                if nums[i] + nums[j] == target:\n                    return [j, i]\n")),
     "functional, wrong order"),
    ("3001", SOLUTION.format(name="twoSum", args="nums, target", body="        return [0, 1]\n"),
     "functional, wrong method name"),
    ("3002", SOLUTION.format(name="countVowels", args="s", body=(
        "        return sum(c in 'aeiou' for c in s)\n")), "functional, correct"),
    ("3002", "def countVowels(s):\n    return sum(c in 'aeiou' for c in s)\n",
     "functional, a plain function"),
    ("3002", SOLUTION.format(name="countVowels", args="s", body=(
        "        n = sum(c in 'aeiou' for c in s)\n        return n if n else 1 // n\n")),
     "functional, raises on one test"),
    ("3002", SOLUTION.format(name="countVowels", args="s", body=(
        "        import time\n        if s == 'xyz':\n            time.sleep(30)\n"
        "        return sum(c in 'aeiou' for c in s)\n")), "functional, too slow on one test"),
    ("3003", SOLUTION.format(name="average", args="nums", body=(
        "        return sum(nums) / len(nums)\n")), "functional, float, correct"),
    ("3003", SOLUTION.format(name="average", args="nums", body=(
        "        return sum(nums) / len(nums) + 1e-12\n")), "functional, float, off by 1e-12"),
    ("3003", SOLUTION.format(name="average", args="nums", body=(
        "        return sum(nums) // len(nums)\n")), "functional, int for float"),
]  # fmt: skip


@pytest.fixture(scope="module")
def task_and_problems():
    task = build_lcb_task("release_v2", TaskOptions(data_dir=str(FIXTURES)))
    task = LcbTask(replace(task.config, timeout_s=TIMEOUT_S))
    return task, {p.id: p for p in task.load()}


def lcb_verdicts(cases: list[dict]) -> list[list]:
    """LiveCodeBench's per-test results (True, or -2/-3/-4 at the first failure) per case."""
    done = subprocess.run(
        [sys.executable, "-c", LCB_SIDE],
        input=pickle.dumps(cases),
        capture_output=True,
        timeout=600,
        check=True,
    )
    return pickle.loads(done.stdout)


def test_per_test_verdicts_equal_livecodebench_run_test(task_and_problems):
    import json

    task, problems = task_and_problems
    cases, ours = [], []
    for pid, code, _ in CASES:
        tests = problems[pid].answer
        sample = {"input_output": json.dumps(tests)}
        cases.append({"sample": sample, "code": code, "timeout": TIMEOUT_S})
        ours.append(task.score(f"{FENCE}python\n{code}\n{FENCE}", problems[pid]))
    theirs = lcb_verdicts(cases)
    kinds = set()
    for (pid, _, what), score, results in zip(CASES, ours, theirs, strict=True):
        mine = score.extra["tests"]
        label = f"{pid} ({what}): prorl {mine} {score.reason!r}, LiveCodeBench {results}"
        assert mine[: len(results)] == [r is True for r in results], label
        if all(r is True for r in results):
            assert len(results) == len(mine) and score.value == 1.0, label
        kinds.update(r for r in results if r is not True)
        kinds.add("pass" if score.value == 1.0 else "fail")
    # LiveCodeBench saw wrong answers, runtime errors and timeouts, and some solutions passed
    assert {"pass", "fail", -2, -3, -4} <= kinds


def test_the_decimal_rule_is_livecodebench_s_not_a_tolerance(task_and_problems):
    """'2.5' equals '2.500000' (as Decimals) but '1.3333333' does not equal '1.333333', where
    the generic stdin/stdout tasks accept a 1e-6 difference."""
    from prorl_eval.tasks.code_lcb_rules import stdout_matches
    from prorl_eval.tasks.code_stdio import stdout_matches as generic_matches

    assert stdout_matches("2.5\n", "2.500000\n")
    assert not stdout_matches("1.3333333\n", "1.333333\n")
    assert generic_matches("1.3333333\n", "1.333333\n")
    assert not stdout_matches("1 2 3\n", "1\n2\n3\n") and generic_matches("1 2 3\n", "1\n2\n3\n")
