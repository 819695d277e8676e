"""stdin/stdout code benchmarks (APPS, CodeContests, TACO, Codeforces, ...).

Task names: `code:<hub id>` (e.g. `code:codeparrot/apps`, `code:deepmind/code_contests`) or
`code:<path to .jsonl / .jsonl.gz>`. With `--data-dir`, `code:<owner>/<name>` reads the offline copy
`<data_dir>/code/<owner>__<name>.jsonl[.gz]` instead of the hub (a missing copy is a UserError).

Rows become problems through a `StdioFormat`: the question field and the test fields (the first
present question field; every present test field, concatenated: public + private + generated).
A test field holds either `{"inputs": [...], "outputs": [...]}` (APPS, TACO, CodeContests' `input` /
`output`), possibly as a JSON string, or a list of `{"input", "output"}` cases, possibly compressed
as LiveCodeBench compresses its private tests (decoded with an unpickler that refuses every global,
so no code runs). LiveCodeBench itself, with its functional problems, release versions and judging
rules, is the `livecodebench:` task (`code_lcb`).
Known hub ids have presets; other ids and local files are matched against common field names.
Problems with call-based tests (APPS/TACO `fn_name`, "functional" cases) or no tests are skipped;
the count is in the task's `source`.

Score: the fraction of tests whose stdout matches the expected output (ProRL's continuous code
reward); threshold 1.0, so `correct` means every test passed. Matching: whitespace-separated
tokens must be equal, except that two non-integer numbers may differ by 1e-6 (absolute or
relative). Each test runs in a fresh process of one sandbox (`sandbox.run_stdio`).

Example:
    >>> stdout_matches("1 2\\n3.0000001\\n", "1  2 3.0")
    True
"""

from __future__ import annotations

import hashlib
import json
import math
import re
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from prorl_eval.errors import UserError
from prorl_eval.sandbox import SANDBOX_VERSION, Limits, run_stdio
from prorl_eval.tasks.base import Problem, Score, Task
from prorl_eval.tasks.code_extract import extract_code
from prorl_eval.tasks.datafiles import load_hub_rows, read_jsonl
from prorl_eval.tasks.entries import Family
from prorl_eval.tasks.options import TaskOptions

STDIO_LIMITS = Limits(cpu_s=4, wall_s=8, memory_mb=1024, max_procs=16, total_wall_s=60)
STDIO_INSTRUCTION = (
    "Write a Python 3 program that reads the input from standard input and prints the answer to "
    "standard output. Give the complete program in a single ```python code block."
)
_INT = re.compile(r"[+-]?\d+")


@dataclass(frozen=True)
class StdioFormat:
    """Where a dataset keeps the statement and the tests."""

    question: tuple[str, ...]
    tests: tuple[str, ...]
    ids: tuple[str, ...] = ()
    split: str = "test"


GENERIC_FORMAT = StdioFormat(
    question=("question", "question_content", "description", "problem", "prompt", "statement"),
    tests=("input_output", "tests", "test_cases", "public_tests", "private_tests",
           "generated_tests", "public_test_cases", "private_test_cases", "official_tests"),
    ids=("problem_id", "task_id", "question_id", "id", "name"),
)  # fmt: skip
PRESETS: dict[str, StdioFormat] = {
    "codeparrot/apps": StdioFormat(("question",), ("input_output",), ("problem_id",)),
    "BAAI/TACO": StdioFormat(("question",), ("input_output",)),
    "deepmind/code_contests": StdioFormat(
        ("description",), ("public_tests", "private_tests", "generated_tests"), ("name",)
    ),
    "open-r1/codeforces": StdioFormat(("description",), ("official_tests",), ("id",), "test"),
}


@dataclass(frozen=True)
class StdioConfig:
    """Which dataset (hub id or local file), how many problems, the tests' cap and limits."""

    source: str
    limit: int | None = None
    data_dir: str | None = None
    split: str | None = None  # None: the preset's split, else "test"
    max_tests: int | None = None  # keep the first N tests of a problem (None: all)
    limits: Limits = STDIO_LIMITS

    def validate(self) -> None:
        if not self.source.strip():
            raise UserError("code:<hub id or file> needs a dataset after the colon.")
        for name in ("limit", "max_tests"):
            value = getattr(self, name)
            if value is not None and value <= 0:
                raise UserError(f"code:{self.source}: {name} must be > 0 (got {value}).")
        self.limits.validate()


def build_stdio_task(hub_id_or_path: str, options: TaskOptions) -> StdioTask:
    """Registry builder for `code:<hub id or path>`."""
    config = StdioConfig(hub_id_or_path, limit=options.limit, data_dir=options.data_dir)
    return StdioTask(config)


# ----------------------------------------------------------------------------- tests


def _text(value: Any) -> str:
    if isinstance(value, list):
        return "\n".join(str(v) for v in value) + "\n"
    return str(value)


def _restricted_unpickle(data: bytes) -> Any:
    import pickle

    class NoGlobals(pickle.Unpickler):
        def find_class(self, module: str, name: str) -> Any:
            raise pickle.UnpicklingError(f"refusing global {module}.{name}")

    import io

    return NoGlobals(io.BytesIO(data)).load()


def decode_tests(text: Any) -> Any:
    """A JSON string, or LiveCodeBench's base64(zlib(pickle(json string))); other values (already
    parsed lists or dicts) are returned as they are."""
    if not isinstance(text, str):
        return text
    stripped = text.strip()
    if stripped[:1] in "[{":
        return json.loads(stripped)
    import base64
    import zlib

    inner = _restricted_unpickle(zlib.decompress(base64.b64decode(stripped)))
    return json.loads(inner) if isinstance(inner, str) else inner


def parse_tests(value: Any) -> list[tuple[str, str]] | None:
    """(stdin, expected stdout) pairs from one test field; None for call-based tests."""
    if value is None or value == "":
        return []
    if isinstance(value, str):
        value = decode_tests(value)
    if isinstance(value, dict):
        if value.get("fn_name"):
            return None
        inputs = value.get("inputs", value.get("input", []))
        outputs = value.get("outputs", value.get("output", []))
        if len(inputs) != len(outputs):
            raise ValueError(f"{len(inputs)} inputs but {len(outputs)} outputs")
        return [(_text(i), _text(o)) for i, o in zip(inputs, outputs, strict=True)]
    if isinstance(value, list):
        if any(isinstance(c, dict) and c.get("testtype") == "functional" for c in value):
            return None
        return [(_text(c["input"]), _text(c["output"])) for c in value]
    raise ValueError(f"unrecognised tests of type {type(value).__name__}")


def stdout_matches(actual: str, expected: str, tol: float = 1e-6) -> bool:
    """Token-wise equality after whitespace normalisation; non-integer numbers within `tol`."""
    got, want = actual.split(), expected.split()
    if len(got) != len(want):
        return False
    return all(a == b or _close(a, b, tol) for a, b in zip(got, want, strict=True))


def _close(a: str, b: str, tol: float) -> bool:
    if _INT.fullmatch(a) and _INT.fullmatch(b):
        return False  # integers must match exactly (they already differ as text)
    try:
        x, y = float(a), float(b)
    except ValueError:
        return False
    if not (math.isfinite(x) and math.isfinite(y)):
        return False
    return math.isclose(x, y, rel_tol=tol, abs_tol=tol)


# ----------------------------------------------------------------------------- the task


def _first(row: dict[str, Any], names: tuple[str, ...]) -> Any:
    return next((row[n] for n in names if row.get(n) not in (None, "")), None)


def row_to_problem(row: dict[str, Any], index: int, fmt: StdioFormat, where: str) -> Problem | None:
    """A problem, or None when the row has no stdin/stdout tests."""
    question = _first(row, fmt.question)
    if question is None:
        wanted = " or ".join(repr(n) for n in fmt.question)
        raise UserError(f"{where}: row {index} has no {wanted} field; it has {', '.join(row)}.")
    tests: list[tuple[str, str]] = []
    for field in fmt.tests:
        try:
            found = parse_tests(row.get(field))
        except (ValueError, KeyError, TypeError) as exc:
            raise UserError(
                f"{where}: row {index}: cannot read tests in {field!r}: {exc}"
            ) from None
        if found is None:
            return None
        tests.extend(found)
    if not tests:
        return None
    found_id = _first(row, fmt.ids)
    problem_id = str(found_id).strip() if found_id is not None else str(index)
    return Problem(problem_id, str(question).strip(), tests, {"tests": len(tests)})


def _locate(source: str, data_dir: str | None) -> tuple[Path | None, str | None]:
    """(local file, None) or (None, hub id)."""
    path = Path(source).expanduser()
    if source.endswith((".jsonl", ".jsonl.gz")) or path.is_file() or source.startswith((".", "/")):
        if not path.is_file():
            raise UserError(f"code:{source}: no such file.")
        return path, None
    if data_dir is not None:
        folder = Path(data_dir).expanduser() / "code"
        stem = source.replace("/", "__")
        for candidate in (folder / f"{stem}.jsonl", folder / f"{stem}.jsonl.gz"):
            if candidate.is_file():
                return candidate, None
        raise UserError(
            f"code:{source}: no offline copy at {folder / stem}.jsonl[.gz]; put one there or "
            "unset --data-dir to load it from the hub."
        )
    return None, source


class StdioTask(Task):
    """A stdin/stdout benchmark: score = fraction of tests passed in the sandbox."""

    domain = "code"
    extracts_answers = False
    threshold = 1.0
    partial_credit = True

    def __init__(self, config: StdioConfig) -> None:
        config.validate()
        self.config = config
        self.name = f"code:{config.source}"
        self._path, self._hub = _locate(config.source, config.data_dir)
        self.format = PRESETS.get(self._hub or "", GENERIC_FORMAT)
        self.split = config.split or self.format.split
        if self._path is not None:
            digest = hashlib.sha256(self._path.read_bytes()).hexdigest()[:12]
            origin = f"local:{self._path.name}#sha256={digest}"
            self.source = str(self._path)
        else:
            origin = f"hub:{self._hub}@{self.split}"
            self.source = origin
        tests = f";max_tests={config.max_tests}" if config.max_tests else ""
        self.version = f"{origin}{tests};{SANDBOX_VERSION}"

    def load(self) -> list[Problem]:
        if self._path is not None:
            rows = read_jsonl(self._path)
        else:
            rows = load_hub_rows(str(self._hub), self.split)
        problems, skipped = [], 0
        for index, row in enumerate(rows):
            problem = row_to_problem(row, index, self.format, self.source)
            if problem is None:
                skipped += 1
                continue
            if self.config.max_tests is not None:
                kept = problem.answer[: self.config.max_tests]
                problem = Problem(problem.id, problem.question, kept, {"tests": len(kept)})
            problems.append(problem)
        if skipped:
            self.source = f"{self.source} ({skipped} rows without stdin/stdout tests skipped)"
        if not problems:
            raise UserError(f"{self.name}: {self.source} has no problems with stdin/stdout tests.")
        if len({p.id for p in problems}) != len(problems):
            raise UserError(f"{self.name}: problem ids repeat in {self.source}.")
        return problems[: self.config.limit] if self.config.limit is not None else problems

    def prompt(self, problem: Problem) -> str:
        return f"{problem.question}\n\n{STDIO_INSTRUCTION}"

    def score(self, response: str, problem: Problem) -> Score:
        code, how = extract_code(response)
        tests: list[tuple[str, str]] = problem.answer
        if not code:
            return Score(0.0, how, {"passed": 0, "total": len(tests)}, extraction=how)
        results = run_stdio(code, [stdin for stdin, _ in tests], limits=self.config.limits)
        passed, first_failure = 0, ""
        for number, (result, (_, expected)) in enumerate(zip(results, tests, strict=True), 1):
            if result.ok and stdout_matches(result.stdout, expected):
                passed += 1
            elif not first_failure:
                why = "wrong answer" if result.ok else f"{result.status}: {result.reason}"
                last = result.stderr.strip().splitlines()[-1:] if result.status == "error" else []
                why += f" ({last[0][:200]})" if last else ""
                first_failure = f"; first failure: test {number}: {why}"
        reason = f"{passed}/{len(tests)} tests passed [{how}]{first_failure}"
        extra = {"passed": passed, "total": len(tests)}
        return Score(passed / len(tests), reason[:500], extra, extraction=how)


# The `code:<hub id or file>` family, as the registry lists and builds it.
FAMILY = Family(
    prefix="code",
    domain=StdioTask.domain,
    verifier="sandbox: stdin/stdout (fraction of tests passed)",
    usage="code:<hub id, e.g. codeparrot/apps> or code:<file.jsonl[.gz]>",
    build=build_stdio_task,
)
