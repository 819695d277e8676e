"""Peer oracle: prorl's HumanEval+/MBPP+ verdicts equal evalplus's own check on the same solutions.

evalplus's side runs in a throwaway interpreter: its `trusted_exec` computes the canonical outputs
(and their times), its `untrusted_check` judges the base inputs, then the plus inputs, as its
`evaluate` does. prorl's side is the task's `score`, which runs the program in prorl's sandbox.
"""

from __future__ import annotations

import pickle
import subprocess
import sys
from pathlib import Path

import pytest

from prorl_eval.tasks.code import build_code_task
from prorl_eval.tasks.code_evalplus import output_not_none_tasks
from prorl_eval.tasks.options import TaskOptions

FIXTURES = Path(__file__).parent / "fixtures"
FENCE = "```"

EVALPLUS_SIDE = """
import pickle, sys
from evalplus.eval import untrusted_check
from evalplus.gen.util import trusted_exec

verdicts = []
for case in pickle.load(sys.stdin.buffer):
    canonical = case["prompt"] + case["canonical"]
    statuses = []
    for inputs in (case["base_input"], case["plus_input"]):
        expected, times = trusted_exec(
            canonical, inputs, case["entry_point"], record_time=True,
            output_not_none=case["not_none"],
        )
        status, details = untrusted_check(
            case["dataset"], case["code"], inputs, case["entry_point"], expected, case["atol"],
            times,
        )
        statuses.append((status, [bool(d) for d in details]))
    verdicts.append(statuses)
sys.stdout.buffer.write(pickle.dumps(verdicts))
"""

HAS_CLOSE = (
    "def has_close_elements(numbers, threshold):\n"
    "    for i, a in enumerate(numbers):\n"
    "        for b in numbers[:i]:\n"
    "            if abs(a - b) < threshold:\n"
    "                return True\n"
    "    return {empty}\n"
)
TRUNCATE = "def truncate_number(number):\n    return {body}\n"
MAD = (
    "def mean_absolute_deviation(numbers):\n"
    "    if len(numbers) < {short}:\n        return 1.0\n"
    "    mean = sum(numbers) / len(numbers)\n"
    "    return sum(abs(x - mean) for x in numbers) / len(numbers)\n"
)
NOT_PRIME = (
    "import math\ndef is_not_prime(n):\n{one}"
    "    return any(n % i == 0 for i in range(2, int(math.sqrt(n)) + 1))\n"
)
SLOW = (
    "import time\ndef truncate_number(number):\n"
    "    if number == 1.33:\n        time.sleep({seconds})\n    return number % 1.0\n"
)  # correct, but slow on HumanEval/2's second base input (the canonical takes microseconds)
AREA = "import math\ndef circle_area(r):\n    return math.pi * r * r + {delta}\n"

# (task, problem, solution or None for the canonical one, what it exercises)
CASES = [
    *[("humaneval_plus", f"HumanEval/{i}", None, "canonical") for i in (0, 2, 4)],
    *[("mbpp_plus", f"Mbpp/{i}", None, "canonical") for i in (2, 3, 787, 9001)],
    ("humaneval_plus", "HumanEval/0", HAS_CLOSE.format(empty="len(numbers) == 0"), "plus only"),
    ("humaneval_plus", "HumanEval/0", HAS_CLOSE.format(empty="True"), "base fails"),
    (
        "humaneval_plus",
        "HumanEval/2",
        TRUNCATE.format(body="number % 1.0 if number < 100 else 0.0"),
        "plus only",
    ),
    ("humaneval_plus", "HumanEval/4", MAD.format(short=3), "plus only"),
    ("mbpp_plus", "Mbpp/3", NOT_PRIME.format(one=""), "plus only"),
    (
        "mbpp_plus",
        "Mbpp/3",
        NOT_PRIME.format(one="    if n == 1:\n        return True\n"),
        "rewritten",
    ),
    ("humaneval_plus", "HumanEval/2", TRUNCATE.format(body="number % 1.0 + 9e-7"), "float inside"),
    ("humaneval_plus", "HumanEval/2", SLOW.format(seconds=0.3), "slow, within its limit"),
    ("humaneval_plus", "HumanEval/2", SLOW.format(seconds=1.5), "slow, over its limit"),
    ("humaneval_plus", "HumanEval/2", TRUNCATE.format(body="number % 1.0 + 1.2e-6"), "float out"),
    ("mbpp_plus", "Mbpp/9001", AREA.format(delta="9e-7"), "float inside"),
    ("mbpp_plus", "Mbpp/9001", AREA.format(delta="2e-6"), "float out"),
    ("mbpp_plus", "Mbpp/9001", "def circle_area(r):\n    return 3.14159 * r * r\n", "float out"),
    (
        "mbpp_plus",
        "Mbpp/2",
        "def similar_elements(a, b):\n    return tuple(sorted(set(a) & set(b)))\n",
        "set oracle",
    ),
    (
        "mbpp_plus",
        "Mbpp/2",
        "def similar_elements(a, b):\n    return list(set(a) | set(b))\n",
        "set oracle",
    ),
    (
        "mbpp_plus",
        "Mbpp/787",
        "import re\ndef text_match_three(text):\n    return bool(re.search('abbb', text))\n",
        "not-None oracle",
    ),
    (
        "mbpp_plus",
        "Mbpp/787",
        "import re\ndef text_match_three(text):\n    return re.search('ab{3}', text)\n",
        "not-None oracle",
    ),
    ("mbpp_plus", "Mbpp/787", "def text_match_three(text):\n    return 'yes'\n", "not-None oracle"),
    (
        "humaneval_plus",
        "HumanEval/32",
        "def find_zero(xs):\n    return 0.0\n",
        "find_zero oracle",
    ),
]


@pytest.fixture(scope="module")
def tasks():
    options = TaskOptions(data_dir=str(FIXTURES))
    built = {name: build_code_task(name, options) for name in ("humaneval_plus", "mbpp_plus")}
    return {name: (task, {p.id: p for p in task.load()}) for name, task in built.items()}


def evalplus_verdicts(cases: list[dict]) -> list[list[tuple[str, list[bool]]]]:
    """evalplus's (status, per-input details) on base and on plus inputs, for each case."""
    done = subprocess.run(
        [sys.executable, "-c", EVALPLUS_SIDE],
        input=pickle.dumps(cases),
        capture_output=True,
        timeout=600,
        check=True,
    )
    return pickle.loads(done.stdout)


def peer_case(task, problem, solution: str) -> dict:
    meta = problem.metadata
    return {
        "dataset": task.spec.dataset,
        "code": solution,
        "entry_point": meta["entry_point"],
        "prompt": meta["prompt"],
        "canonical": meta["canonical"],
        "atol": meta["atol"],
        "base_input": meta["base_input"],
        "plus_input": meta["plus_input"],
        "not_none": task.spec.dataset == "mbpp" and meta["entry_point"] in output_not_none_tasks(),
    }


def solution_of(problem, solution: str | None) -> str:
    meta = problem.metadata
    return meta["prompt"] + meta["canonical"] if solution is None else solution


def test_verdicts_equal_evalplus_untrusted_check(tasks):
    cases, ours = [], []
    for name, pid, solution, _ in CASES:
        task, problems = tasks[name]
        code = solution_of(problems[pid], solution)
        cases.append(peer_case(task, problems[pid], code))
        ours.append(task.score(f"{FENCE}python\n{code}\n{FENCE}", problems[pid]))
    theirs = evalplus_verdicts(cases)
    seen = set()
    for (_, pid, _, what), score, ((base, _), (plus, _)) in zip(CASES, ours, theirs, strict=True):
        label = f"{pid} ({what}): prorl {score.reason!r}, evalplus base={base} plus={plus}"
        assert score.extra["base_passed"] == (base == "pass"), label
        assert (score.value == 1.0) == (base == "pass" and plus == "pass"), label
        seen.add((what, score.value, score.extra["base_passed"]))
    # The cases are not all of one kind: some pass, some fail only the plus inputs, some fail base.
    assert {(1.0, True), (0.0, True), (0.0, False)} <= {(v, b) for _, v, b in seen}
    assert ("plus only", 0.0, True) in seen and ("float inside", 1.0, True) in seen
    assert ("slow, over its limit", 0.0, False) in seen  # evalplus's rule: max(1 s, 4 x canonical)
    assert ("slow, within its limit", 1.0, True) in seen


def test_one_budget_instead_of_evalplus_time_rule_passes_the_slow_solution(tasks):
    """With `time_limits="budget"` the 1.5 s solution passes (30 s for all inputs), where evalplus
    and the default fail it; the task version says which rule scored the run."""
    from dataclasses import replace

    from prorl_eval.tasks.code import FunctionCodeTask

    task, problems = tasks["humaneval_plus"]
    budget = FunctionCodeTask(replace(task.config, time_limits="budget"))
    response = f"{FENCE}python\n{SLOW.format(seconds=1.5)}\n{FENCE}"
    default = task.score(response, problems["HumanEval/2"])
    assert default.value == 0.0 and "time limit 1 s of input 2" in default.reason
    assert budget.score(response, problems["HumanEval/2"]).value == 1.0
    assert "time=evalplus(min=1s,factor=4)" in task.version
    assert "time=budget(30s)" in budget.version


def test_find_zero_keeps_the_rule_that_pypi_evalplus_miscounts(tasks):
    """HumanEval/32: any root within atol passes. PyPI evalplus 0.3.1's check skips its progress
    counter on this oracle, so it reports 'fail' with no per-input results even for the canonical
    solution; prorl keeps the rule (a documented departure) and agrees that a non-root fails."""
    task, problems = tasks["humaneval_plus"]
    problem = problems["HumanEval/32"]
    canonical = solution_of(problem, None)
    score = task.score(f"{FENCE}python\n{canonical}\n{FENCE}", problem)
    ((base, details), (plus, _)) = evalplus_verdicts([peer_case(task, problem, canonical)])[0]
    assert score.value == 1.0, score.reason
    assert (base, plus, details) == ("fail", "fail", [])  # the miscount, not a wrong root
