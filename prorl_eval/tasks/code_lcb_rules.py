"""LiveCodeBench's judging rules, taken from its own harness (`nvidia-livecodebench`'s
`livecodebench.evaluation.testing_util`) and applied to programs run in prorl's sandbox.

What comes from LiveCodeBench:
- `import_string`: the imports (`from math import *`, `from typing import *`, ...) that its
  harness puts before every program, so `List[int]` or a bare `gcd` work as they do there;
- stdin/stdout: `get_stripped_lines` and `convert_line_to_decimals`: the stripped output must have
  as many lines as the expected one, and each line must be equal as text or, element by element,
  as `Decimal`s (so "2.5" equals "2.500000" but "2.5000001" does not; no tolerance);
- functional (LeetCode-style): inputs are one JSON value per line, the expected output one JSON
  value; a `class Solution` program is called through an instance (LiveCodeBench tests the text
  for "class Solution"), a returned tuple counts as a list, and the comparison is `==`;
- the time limit: `timeout` seconds per test (its `--evaluation_timeout`, default 6) and
  (timeout + 1) x tests + 5 seconds for a whole response (`check_correctness`'s global limit).

What differs, on purpose: the program runs in prorl's sandbox, one fresh process per stdin test
(LiveCodeBench runs every test in one process, with patched stdin, after `reliability_guard`), so
the per-test limit also covers the interpreter's start (~50 ms); stdin programs run as `__main__`
(LiveCodeBench wraps them in a function and lifts an `if __name__ == "__main__":` body, to the
same effect for ordinary programs); the functional comparison runs outside the candidate's
process, on plain data. LiveCodeBench stops at a response's first failing test; prorl runs every
stdin test (the score is the fraction passed) and, like LiveCodeBench, stops functional calls at
the first exception or timeout (later tests count as failed).
`tests/test_code_peer_livecodebench.py` checks per-test verdicts against `testing_util.run_test`.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, replace
from typing import Any

from prorl_eval.errors import UserError
from prorl_eval.sandbox import Limits, call_function, run_stdio

LCB_REQUIREMENT = "nvidia-livecodebench==26.3"
LCB_TIMEOUT_S = 6  # LiveCodeBench's default --evaluation_timeout, seconds per test
_ENTRY = "_prorl_lcb_entry"


def livecodebench_module(name: str) -> Any:
    """`livecodebench.<name>` from nvidia-livecodebench (a one-line error when it is missing)."""
    import importlib

    try:
        return importlib.import_module(f"livecodebench.{name}")
    except ImportError:
        raise UserError(
            f"LiveCodeBench tasks need its harness: pip install --no-deps {LCB_REQUIREMENT} "
            "(scripts/setup.sh installs it)."
        ) from None


def testing_util() -> Any:
    """LiveCodeBench's `testing_util` module."""
    return livecodebench_module("evaluation.testing_util")


@dataclass(frozen=True)
class LcbTests:
    """A problem's tests as LiveCodeBench's `get_evaluation_sample` lists them (public, then
    private): the inputs and outputs as text, and `fn_name` for a functional problem."""

    inputs: tuple[str, ...]
    outputs: tuple[str, ...]
    fn_name: str | None = None

    @classmethod
    def of(cls, answer: dict[str, Any]) -> LcbTests:
        """From a problem's answer (plain data: inputs, outputs, fn_name)."""
        return cls(tuple(answer["inputs"]), tuple(answer["outputs"]), answer.get("fn_name"))

    @property
    def functional(self) -> bool:
        return self.fn_name is not None


def response_limits(base: Limits, timeout_s: float, tests: int) -> Limits:
    """One response's sandbox limits under LiveCodeBench's time rule."""
    total = (timeout_s + 1) * tests + 5
    return replace(base, cpu_s=timeout_s, wall_s=timeout_s, total_wall_s=total)


def stdout_matches(actual: str, expected: str) -> bool:
    """LiveCodeBench's stdin/stdout rule (the comparison part of `testing_util.grade_stdio`)."""
    util = testing_util()
    got, want = util.get_stripped_lines(actual), util.get_stripped_lines(expected)
    if len(got) != len(want):
        return False
    for line, target in zip(got, want, strict=True):
        if line == target:
            continue
        ok_line, decimals = util.convert_line_to_decimals(line)
        ok_target, target_decimals = util.convert_line_to_decimals(target)
        if not (ok_line and ok_target) or decimals != target_decimals:
            return False
    return True


def grade(code: str, tests: LcbTests, limits: Limits, timeout_s: float) -> tuple[list[bool], str]:
    """Each test's verdict for the program `code`, and the first failure's description."""
    program = f"{testing_util().import_string}\n\n{code}"
    if tests.functional:
        return _grade_functional(program, tests, limits, timeout_s)
    return _grade_stdio(program, tests, limits)


def _grade_stdio(program: str, tests: LcbTests, limits: Limits) -> tuple[list[bool], str]:
    results = run_stdio(program, list(tests.inputs), limits=limits)
    verdicts, failure = [], ""
    for number, (result, expected) in enumerate(zip(results, tests.outputs, strict=True), 1):
        passed = result.ok and stdout_matches(result.stdout, expected)
        verdicts.append(passed)
        if not passed and not failure:
            why = "wrong answer" if result.ok else f"{result.status}: {result.reason}"
            last = result.stderr.strip().splitlines()[-1:] if result.status == "error" else []
            failure = f"test {number}: {why}" + (f" ({last[0][:200]})" if last else "")
    return verdicts, failure


def _grade_functional(
    program: str, tests: LcbTests, limits: Limits, timeout_s: float
) -> tuple[list[bool], str]:
    name = str(tests.fn_name)
    if not name.isidentifier():
        raise UserError(f"LiveCodeBench problem has an invalid func_name {name!r}.")
    entry = name
    if "class Solution" in program:  # LiveCodeBench's own test for a LeetCode-style class
        program += f"\n\n_prorl_lcb_solution = Solution()\n\n\ndef {_ENTRY}(*args):\n"
        program += f"    return _prorl_lcb_solution.{name}(*args)\n"
        entry = _ENTRY
    try:
        inputs = [[json.loads(line) for line in text.split("\n")] for text in tests.inputs]
        expected = [json.loads(text) for text in tests.outputs]
    except json.JSONDecodeError as exc:
        raise UserError(f"LiveCodeBench functional test is not JSON per line: {exc}") from None
    session = replace(limits, wall_s=limits.total_wall_s, cpu_s=limits.total_wall_s)
    per_call = [timeout_s] * len(inputs)
    result = call_function(program, entry, inputs, limits=session, call_limits_s=per_call)
    verdicts = []
    for value, want in zip(result.values, expected, strict=False):
        verdicts.append((list(value) if isinstance(value, tuple) else value) == want)
    failure = ""
    if False in verdicts:
        failure = f"test {verdicts.index(False) + 1}: wrong answer"
    elif len(verdicts) < len(expected):
        why = result.reason if result.status == "raised" else f"{result.status}: {result.reason}"
        failure = f"test {len(verdicts) + 1}: {why}"
    verdicts += [False] * (len(expected) - len(verdicts))
    return verdicts, failure[:300]
