"""LiveCodeBench code generation: stdin/stdout and functional (LeetCode-style) problems, with its
release versions, contest-date windows, difficulty and platform filters.

Task names: `livecodebench:<release or file>[?start=YYYY-MM-DD&end=YYYY-MM-DD&difficulty=...&
platform=...]`, e.g. `livecodebench:release_v5?start=2024-08-01&end=2025-02-01`.

- Releases are those of `livecodebench/code_generation_lite`: `release_v1` ... `release_v6` hold
  `test.jsonl` ... `test6.jsonl` cumulatively, `v1` ... `v6` one file each, `release_latest` all.
  They are read file by file from the hub (`huggingface_hub.hf_hub_download`; the dataset's loading
  script is not used, since `datasets` 4 no longer runs scripts), or, with `--data-dir`, from
  `<data_dir>/code/livecodebench/<the same file names>`. A path to a `.jsonl` file reads that file.
- Filters: `start`/`end` keep problems whose contest date is within the window, both ends included
  (LiveCodeBench's `filter_dataset_by_date`); `difficulty` (easy, medium, hard) and `platform`
  (leetcode, codeforces, atcoder) take comma-separated values. A filter that leaves nothing is an
  error.
- Rows are read as LiveCodeBench's own `CodeGenerationProblem` (its fields, enums and dates), except
  that the compressed private tests are decoded by `code_stdio`'s unpickler, which refuses every
  global (LiveCodeBench unpickles them unrestricted). The prompt is LiveCodeBench's generic one
  (`get_generic_question_template_answer`: the question, the starter code or the stdin format).
- Score: the fraction of tests passed under LiveCodeBench's rules (`code_lcb_rules`); threshold
  1.0. Metadata: difficulty, platform, contest date, test type, title, tests.
"""

from __future__ import annotations

import dataclasses
import datetime as dt
import hashlib
import importlib.util
import json
from dataclasses import dataclass
from functools import cache
from pathlib import Path
from types import ModuleType, SimpleNamespace
from typing import Any
from urllib.parse import parse_qsl

from prorl_eval.errors import UserError
from prorl_eval.sandbox import SANDBOX_VERSION, Limits
from prorl_eval.tasks.base import Problem, Score, Task
from prorl_eval.tasks.code_extract import extract_code
from prorl_eval.tasks.code_lcb_rules import (
    LCB_TIMEOUT_S,
    LcbTests,
    grade,
    livecodebench_module,
    response_limits,
)
from prorl_eval.tasks.code_stdio import decode_tests
from prorl_eval.tasks.datafiles import read_jsonl
from prorl_eval.tasks.entries import Family
from prorl_eval.tasks.options import TaskOptions

LCB_HUB_ID = "livecodebench/code_generation_lite"
_FILES = ("test.jsonl", "test2.jsonl", "test3.jsonl", "test4.jsonl", "test5.jsonl", "test6.jsonl")
RELEASES: dict[str, tuple[str, ...]] = {
    **{f"release_v{n}": _FILES[:n] for n in range(1, 7)},
    **{f"v{n}": (_FILES[n - 1],) for n in range(1, 7)},
    "release_latest": _FILES,
}
DIFFICULTIES = ("easy", "medium", "hard")
PLATFORMS = ("leetcode", "codeforces", "atcoder")
LCB_OPTIONS = ("start", "end", "difficulty", "platform")
LCB_LIMITS = Limits(cpu_s=LCB_TIMEOUT_S, wall_s=LCB_TIMEOUT_S, memory_mb=1024, max_procs=16)


@dataclass(frozen=True)
class LcbConfig:
    """Which release (or file), the filters, how many problems, and the per-test timeout."""

    source: str
    start: dt.date | None = None
    end: dt.date | None = None
    difficulty: tuple[str, ...] = ()
    platform: tuple[str, ...] = ()
    limit: int | None = None
    data_dir: str | None = None
    timeout_s: float = LCB_TIMEOUT_S
    limits: Limits = LCB_LIMITS

    def validate(self) -> None:
        where = f"livecodebench:{self.source}"
        if not self.source.strip():
            raise UserError("livecodebench:<release or file> needs a release, e.g. release_v5.")
        is_file = self.source.endswith(".jsonl") or Path(self.source).is_file()
        if not is_file and self.source not in RELEASES:
            raise UserError(
                f"{where}: unknown release; use one of {', '.join(RELEASES)} or a .jsonl file."
            )
        for name, allowed in (("difficulty", DIFFICULTIES), ("platform", PLATFORMS)):
            unknown = sorted(set(getattr(self, name)) - set(allowed))
            if unknown:
                raise UserError(
                    f"{where}: unknown {name} {', '.join(unknown)}; use {', '.join(allowed)}."
                )
        if self.start and self.end and self.start > self.end:
            raise UserError(f"{where}: start {self.start} is after end {self.end}.")
        if self.limit is not None and self.limit <= 0:
            raise UserError(f"{where}: --limit must be > 0 (got {self.limit}).")
        if not self.timeout_s > 0:
            raise UserError(f"{where}: timeout_s must be > 0 (got {self.timeout_s}).")
        self.limits.validate()

    @property
    def filters(self) -> str:
        """The filters as the canonical query string ("" when none)."""
        parts = [f"start={self.start}"] if self.start else []
        parts += [f"end={self.end}"] if self.end else []
        parts += [f"difficulty={','.join(self.difficulty)}"] if self.difficulty else []
        parts += [f"platform={','.join(self.platform)}"] if self.platform else []
        return "&".join(parts)


def _date(value: str, key: str, argument: str) -> dt.date:
    try:
        return dt.date.fromisoformat(value.strip()[:10])
    except ValueError:
        raise UserError(
            f"livecodebench:{argument}: {key} must be a date like 2024-08-01 (got {value!r})."
        ) from None


def parse_lcb_argument(argument: str, options: TaskOptions) -> LcbConfig:
    """`release_v5?start=2024-08-01&difficulty=easy,medium` into a validated LcbConfig."""
    source, _, query = argument.partition("?")
    values: dict[str, Any] = {}
    for key, value in parse_qsl(query, keep_blank_values=True):
        if key not in LCB_OPTIONS:
            raise UserError(
                f"livecodebench:{argument}: unknown option '{key}'; known: "
                f"{', '.join(LCB_OPTIONS)}."
            )
        if key in values:
            raise UserError(f"livecodebench:{argument}: option '{key}' is given twice.")
        if key in ("start", "end"):
            values[key] = _date(value, key, argument)
        else:
            values[key] = tuple(v.strip().lower() for v in value.split(",") if v.strip())
    config = LcbConfig(source.strip(), limit=options.limit, data_dir=options.data_dir, **values)
    config.validate()
    return config


def build_lcb_task(argument: str, options: TaskOptions) -> LcbTask:
    """Registry builder for `livecodebench:<release or file>[?filters]`."""
    return LcbTask(parse_lcb_argument(argument, options))


# ----------------------------------------------------------------------------- data


def _release_files(config: LcbConfig) -> list[Path]:
    """The files to read: the given file, the offline copies, or the hub's (downloaded once)."""
    if config.source not in RELEASES:
        path = Path(config.source).expanduser()
        if not path.is_file():
            raise UserError(f"livecodebench:{config.source}: no such file.")
        return [path]
    names = RELEASES[config.source]
    if config.data_dir is not None:
        folder = Path(config.data_dir).expanduser() / "code" / "livecodebench"
        missing = [name for name in names if not (folder / name).is_file()]
        if missing:
            raise UserError(
                f"livecodebench:{config.source}: no offline copy of {', '.join(missing)} in "
                f"{folder}; put the files of {LCB_HUB_ID} there or unset --data-dir."
            )
        return [folder / name for name in names]
    from huggingface_hub import hf_hub_download

    try:
        return [Path(hf_hub_download(LCB_HUB_ID, name, repo_type="dataset")) for name in names]
    except Exception as exc:  # offline, or the hub refused: one line, not a traceback
        raise UserError(
            f"livecodebench:{config.source}: could not download {LCB_HUB_ID} "
            f"({type(exc).__name__}); pass --data-dir with code/livecodebench/{names[0]} etc."
        ) from None


def _problem_class() -> Any:
    return livecodebench_module("benchmarks.code_generation").CodeGenerationProblem


def read_problem(row: dict[str, Any], where: str) -> Any:
    """One row as LiveCodeBench's `CodeGenerationProblem`; a row it cannot read is a UserError
    naming the field."""
    problem_class = _problem_class()
    fields = [f.name for f in dataclasses.fields(problem_class)]
    missing = [name for name in fields if name not in row]
    if missing:
        raise UserError(f"{where} is not in LiveCodeBench's format: it lacks {', '.join(missing)}.")
    values = {name: row[name] for name in fields}
    try:
        for name in ("public_test_cases", "private_test_cases", "metadata"):
            if name == "private_test_cases" or not isinstance(values[name], str):
                values[name] = json.dumps(decode_tests(values[name]))  # the JSON text it reads
        return problem_class(**values)
    except Exception as exc:  # LiveCodeBench's own checks: enums, dates, JSON fields
        raise UserError(f"{where}: LiveCodeBench cannot read it: {exc!r}"[:300]) from None


def _keep(problem: Any, config: LcbConfig) -> bool:
    day = problem.contest_date.date()
    if (config.start and day < config.start) or (config.end and day > config.end):
        return False
    if config.difficulty and problem.difficulty.value not in config.difficulty:
        return False
    return not config.platform or problem.platform.value in config.platform


def to_problem(problem: Any) -> Problem:
    """A prorl problem: the tests as LiveCodeBench lists them, its metadata for breakdowns."""
    sample = json.loads(problem.get_evaluation_sample()["input_output"])
    tests = {k: sample.get(k) for k in ("inputs", "outputs", "fn_name")}  # plain data: hashed
    meta = {
        "title": problem.question_title,
        "difficulty": problem.difficulty.value,
        "platform": problem.platform.value,
        "contest_date": problem.contest_date.date().isoformat(),
        "testtype": "functional" if tests["fn_name"] else "stdin",
        "starter_code": problem.starter_code,
        "tests": len(tests["inputs"]),
    }
    return Problem(str(problem.question_id), problem.question_content, tests, meta)


@cache
def _prompt_module() -> ModuleType:
    """LiveCodeBench's `prompts/code_generation.py`, loaded from its file: the `prompts` package's
    `__init__` imports the `anthropic` client (via `self_repair`), which prorl does not install."""
    import livecodebench

    path = Path(livecodebench.__file__).parent / "prompts" / "code_generation.py"
    spec = importlib.util.spec_from_file_location("livecodebench_code_generation_prompts", path)
    if spec is None or spec.loader is None:
        raise UserError(f"cannot load LiveCodeBench's prompts from {path}; reinstall it.")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


# ----------------------------------------------------------------------------- the task


class LcbTask(Task):
    """LiveCodeBench: score = the fraction of tests passed under its harness's rules."""

    domain = "code"
    extracts_answers = False
    threshold = 1.0
    partial_credit = True

    def __init__(self, config: LcbConfig) -> None:
        config.validate()
        self.config = config
        query = f"?{config.filters}" if config.filters else ""
        self.name = f"livecodebench:{config.source}{query}"
        release = config.source in RELEASES
        self.source = f"{LCB_HUB_ID} {config.source}" if release else config.source
        self._files: list[Path] | None = None
        self._version: str | None = None

    @property
    def version(self) -> str:  # type: ignore[override]
        """The harness, the files read (names and digests), the time rule and the sandbox;
        computed once (every sample row records it, and release files are large)."""
        if self._version is None:
            from importlib import metadata

            files = ",".join(
                f"{p.name}#sha256={hashlib.sha256(p.read_bytes()).hexdigest()[:12]}"
                for p in self._paths()
            )
            harness = f"nvidia-livecodebench=={metadata.version('nvidia-livecodebench')}"
            self._version = (
                f"{harness};{files};timeout={self.config.timeout_s:g}s;{SANDBOX_VERSION}"
            )
        return self._version

    def _paths(self) -> list[Path]:
        if self._files is None:
            self._files = _release_files(self.config)
        return self._files

    def load(self) -> list[Problem]:
        problems, seen = [], set()
        for path in self._paths():
            for index, row in enumerate(read_jsonl(path)):
                problem = read_problem(row, f"{path.name} row {index}")
                if problem.question_id in seen:
                    raise UserError(f"{self.name}: question_id {problem.question_id} repeats.")
                seen.add(problem.question_id)
                if _keep(problem, self.config):
                    problems.append(to_problem(problem))
        if not problems:
            raise UserError(
                f"{self.name}: no problem of {self.source} matches "
                f"{self.config.filters or 'the release'}; widen the filters."
            )
        return problems[: self.config.limit] if self.config.limit is not None else problems

    def prompt(self, problem: Problem) -> str:
        fields = SimpleNamespace(
            question_content=problem.question,
            starter_code=problem.metadata["starter_code"],
        )
        return _prompt_module().get_generic_question_template_answer(fields)

    def tags(self, problem: Problem) -> dict[str, str]:
        """Difficulty, platform, test type and the contest month (YYYY-MM)."""
        meta = problem.metadata
        return {
            "difficulty": meta["difficulty"], "platform": meta["platform"],
            "testtype": meta["testtype"], "contest_month": meta["contest_date"][:7],
        }  # fmt: skip

    def score(self, response: str, problem: Problem) -> Score:
        code, how = extract_code(response)
        tests = LcbTests.of(problem.answer)
        if not code:
            extra = {"passed": 0, "total": len(tests.inputs), "tests": []}
            return Score(0.0, how, extra, extraction=how)
        limits = response_limits(self.config.limits, self.config.timeout_s, len(tests.inputs))
        verdicts, failure = grade(code, tests, limits, self.config.timeout_s)
        passed = sum(verdicts)
        reason = f"{passed}/{len(verdicts)} tests passed [{how}]"
        reason += f"; first failure: {failure}" if failure else ""
        extra = {"passed": passed, "total": len(verdicts), "tests": verdicts}
        return Score(passed / len(verdicts), reason[:500], extra, extraction=how)


# The `livecodebench:<release or file>` family, as the registry lists and builds it.
FAMILY = Family(
    prefix="livecodebench",
    domain=LcbTask.domain,
    verifier="sandbox: LiveCodeBench's rules (stdin and functional; fraction of tests passed)",
    usage=(
        "livecodebench:<release_v1..v6, v1..v6, release_latest or file.jsonl>"
        "[?start=YYYY-MM-DD&end=YYYY-MM-DD&difficulty=easy,medium&platform=leetcode]"
    ),
    build=build_lcb_task,
)
