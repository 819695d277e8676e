"""Maths benchmarks with a final answer: AIME 2024/2025, AMC 2023, MATH-500, Minerva, OlympiadBench.

Each task asks for step-by-step reasoning with the final answer in `\\boxed{}` and scores it with
math-verify (`math_answer.verify_math`: 1.0 if the extracted answer equals the gold, else 0.0).

Data: with `data_dir` (`--data-dir`, `$PRORL_DATA_DIR`), the offline copy
`<data_dir>/math/<file>.jsonl` (a missing file is a UserError, never a silent hub download);
otherwise the Hugging Face hub dataset named in `MATH_TASKS`. The two routes have their own field
names (`FieldMap`): where a hub column's name is not certain, a field lists several candidates and
the first one present wins. Minerva's offline copy keeps its answer inside the `\\boxed{}` of a
worked solution; OlympiadBench's `final_answer` is a list (joined as a multi-part answer); AMC's
answer is a float (27.0 is gold "27"). Problem ids are the dataset's own id where it has one, else
the row index, as strings; `limit` keeps the first N problems.

The task version names the source (the hub id and split, or the offline file and its SHA-256) and
the scorer (`math-verify==0.9.0;prorl-math-v1`), so runs on different data or scorers never mix.

Example:
    >>> options = TaskOptions(limit=2, data_dir="../shared/data")  # doctest: +SKIP
    >>> task = build_math_task("math500", options)  # doctest: +SKIP
    >>> task.score("... so the answer is \\\\boxed{3}", task.load()[0]).value  # doctest: +SKIP
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass
from functools import partial
from pathlib import Path
from typing import Any

from prorl_eval.errors import UserError
from prorl_eval.tasks.base import Problem, Score, Task
from prorl_eval.tasks.datafiles import load_hub_rows, read_jsonl
from prorl_eval.tasks.entries import TaskEntry
from prorl_eval.tasks.math_answer import (
    DEFAULT_TIMEOUT_S,
    gold_text,
    last_boxed,
    scorer_version,
    verify_math,
)
from prorl_eval.tasks.options import TaskOptions

MATH_INSTRUCTION = "Please reason step by step, and put your final answer within \\boxed{}."
METADATA_FIELDS = ("subject", "level", "type", "subfield", "answer_type", "unit")


@dataclass(frozen=True)
class FieldMap:
    """Which columns of a source hold the question, the gold answer and the id. Each is a tuple of
    candidate names, the first present in a row wins; no id column means the row index."""

    question: tuple[str, ...]
    answer: tuple[str, ...]
    ids: tuple[str, ...] = ()
    boxed_answer: bool = False  # the answer column is a worked solution: gold is its last \boxed{}


@dataclass(frozen=True)
class MathSpec:
    """One maths benchmark: where it lives on the hub and offline, and its field names there."""

    name: str
    title: str
    hub_id: str
    split: str
    local_file: str  # under <data_dir>/math/
    size: int  # problems in the standard release
    hub_fields: FieldMap
    local_fields: FieldMap


_PLAIN = FieldMap(question=("problem", "question"), answer=("answer",), ids=("id",))


def _spec(
    name: str, title: str, hub: str, split: str, file: str, size: int, **fields: FieldMap
) -> MathSpec:
    plain = {"hub_fields": _PLAIN, "local_fields": _PLAIN}
    return MathSpec(name, title, hub, split, file, size, **{**plain, **fields})


# task name -> spec; another final-answer benchmark is one more entry here
MATH_TASKS: dict[str, MathSpec] = {
    spec.name: spec
    for spec in (
        _spec("aime24", "AIME 2024", "HuggingFaceH4/aime_2024", "train", "aime24.jsonl", 30),
        _spec("aime25", "AIME 2025", "math-ai/aime25", "test", "aime25.jsonl", 30),
        _spec("amc23", "AMC 2023", "math-ai/amc23", "test", "amc23.jsonl", 40),
        _spec(
            "math500",
            "MATH-500",
            "HuggingFaceH4/MATH-500",
            "test",
            "math500.jsonl",
            500,
            hub_fields=FieldMap(("problem",), ("answer",), ("unique_id",)),
            local_fields=FieldMap(("problem",), ("answer",), ("unique_id",)),
        ),
        _spec(
            "minerva",
            "Minerva math",
            "math-ai/minervamath",
            "test",
            "minerva_math.jsonl",
            272,
            hub_fields=FieldMap(("question", "problem"), ("answer",), ("idx", "id")),
            local_fields=FieldMap(("problem",), ("solution",), ("idx",), boxed_answer=True),
        ),
        _spec(
            "olympiadbench",
            "OlympiadBench (English, text-only maths)",
            "math-ai/olympiadbench",
            "test",
            "olympiadbench.jsonl",
            675,
            hub_fields=FieldMap(("question", "problem"), ("final_answer", "answer"), ("id",)),
            local_fields=FieldMap(("question",), ("final_answer",), ("id",)),
        ),
    )
}


@dataclass(frozen=True)
class MathConfig:
    """Which benchmark, how many problems, where the offline copies are, the scoring time limit."""

    name: str
    limit: int | None = None
    data_dir: str | None = None
    timeout_s: float = DEFAULT_TIMEOUT_S

    def validate(self) -> None:
        if self.name not in MATH_TASKS:
            raise UserError(
                f"unknown maths task '{self.name}'; known: {', '.join(MATH_TASKS)} "
                "(see `prorl-eval tasks`)."
            )
        if self.limit is not None and self.limit <= 0:
            raise UserError(f"{self.name} would have no problems: --limit must be > 0.")
        if not self.timeout_s > 0:
            raise UserError(f"{self.name}: the scoring time limit must be > 0 s.")

    def local_path(self) -> Path | None:
        """The offline copy to read, or None for the hub."""
        if self.data_dir is None:
            return None
        return Path(self.data_dir).expanduser() / "math" / MATH_TASKS[self.name].local_file


class MathTask(Task):
    """A final-answer maths benchmark scored by math-verify."""

    domain = "math"

    def __init__(self, config: MathConfig) -> None:
        config.validate()
        self.config = config
        self.spec = MATH_TASKS[config.name]
        self.name = config.name
        path = config.local_path()
        if path is None:
            self.source = f"hub:{self.spec.hub_id} ({self.spec.split})"
            origin = f"hub:{self.spec.hub_id}@{self.spec.split}"
        else:
            if not path.is_file():
                raise UserError(
                    f"{self.name}: offline data file {path} does not exist. Put the benchmark's "
                    f"JSONL copy there (<data_dir>/math/{self.spec.local_file}), point --data-dir "
                    f"or PRORL_DATA_DIR at a folder that has it, or unset both to load "
                    f"{self.spec.hub_id} from the Hugging Face hub."
                )
            self.source = str(path)
            digest = hashlib.sha256(path.read_bytes()).hexdigest()[:12]
            origin = f"local:math/{self.spec.local_file}#sha256={digest}"
        self.version = f"{origin};{scorer_version()}"

    def load(self) -> list[Problem]:
        path = self.config.local_path()
        if path is None:
            rows, fields = load_hub_rows(self.spec.hub_id, self.spec.split), self.spec.hub_fields
        else:
            rows, fields = read_jsonl(path), self.spec.local_fields
        if not rows:
            raise UserError(f"{self.name}: {self.source} holds no problems.")
        problems = [
            row_to_problem(row, index, fields, self.source) for index, row in enumerate(rows)
        ]
        ids = [p.id for p in problems]
        if len(set(ids)) != len(ids):
            repeated = next(i for i in ids if ids.count(i) > 1)
            raise UserError(f"{self.name}: problem id {repeated!r} appears twice in {self.source}.")
        return problems[: self.config.limit] if self.config.limit is not None else problems

    def prompt(self, problem: Problem) -> str:
        return f"{problem.question}\n{MATH_INSTRUCTION}"

    def tags(self, problem: Problem) -> dict[str, str]:
        """The benchmark's own labels (MATH-500's subject and level, OlympiadBench's subfield
        and answer type, Minerva's type)."""
        return {k: str(v) for k, v in problem.metadata.items() if k != "unit"}

    def score(self, response: str, problem: Problem) -> Score:
        return verify_math(response, problem.answer, timeout_s=self.config.timeout_s)


def build_math_task(name: str, options: TaskOptions) -> MathTask:
    """Registry builder for `aime24`, `aime25`, `amc23`, `math500`, `minerva`, `olympiadbench`.

    >>> build_math_task("math500", TaskOptions(data_dir="/nowhere"))  # doctest: +SKIP
    Traceback (most recent call last):
    UserError: math500: offline data file /nowhere/math/math500.jsonl does not exist. ...
    """
    return MathTask(MathConfig(name=name, limit=options.limit, data_dir=options.data_dir))


def catalogue_entries() -> list[TaskEntry]:
    """The maths benchmarks as the registry lists them: one entry per `MATH_TASKS` spec."""
    return [
        TaskEntry(
            name=spec.name,
            domain=MathTask.domain,
            verifier="math-verify",
            source=f"hub {spec.hub_id} or <data_dir>/math/{spec.local_file}",
            size=str(spec.size),
            build=partial(build_math_task, spec.name),
        )
        for spec in MATH_TASKS.values()
    ]


# ----------------------------------------------------------------------------- rows


def _first(row: dict[str, Any], names: tuple[str, ...]) -> tuple[str, Any] | None:
    """(column, value) of the first candidate column present (and not null) in the row."""
    for name in names:
        if row.get(name) is not None:
            return name, row[name]
    return None


def row_to_problem(row: dict[str, Any], index: int, fields: FieldMap, where: str) -> Problem:
    """One dataset row as a Problem with its gold answer normalised by `gold_text`."""
    question, answer = _first(row, fields.question), _first(row, fields.answer)
    for found, wanted in ((question, fields.question), (answer, fields.answer)):
        if found is None:
            raise UserError(
                f"{where}: row {index} has no {' or '.join(repr(n) for n in wanted)} column; "
                f"its columns are {', '.join(repr(c) for c in row) or '(none)'}."
            )
    assert question is not None and answer is not None
    gold: Any = answer[1]
    if fields.boxed_answer:
        gold = last_boxed(str(gold))
        if gold is None:
            raise UserError(f"{where}: row {index}: no \\boxed{{}} answer in '{answer[0]}'.")
    found_id = _first(row, fields.ids)
    return Problem(
        id=str(found_id[1]).strip() if found_id else str(index),
        question=str(question[1]).strip(),
        answer=gold_text(gold),
        metadata={k: row[k] for k in METADATA_FIELDS if row.get(k) not in (None, "")},
    )
