"""Training sets for `prorl-train`, one per ProRL domain, scored by the harness's own verifiers.

The evaluation benchmarks (`math500`, `gpqa_diamond`, `ifeval`, ...) are test sets; these tasks
are the public training sets that RL recipes train on instead, each read in its hub row format and
turned into the `Problem`s of the benchmark family whose verifier it shares:

- `train:deepscaler`: agentica-org/DeepScaleR-Preview-Dataset (train), math-verify as `math500`;
- `train:eurus-code`: the code rows of PRIME-RL/Eurus-2-RL-Data (train), the sandbox's
  stdin/stdout tests as `code:<...>`;
- `train:sciq`: allenai/sciq (train), the multiple-choice letter as `gpqa_diamond`;
- `train:rlvr-ifeval`: allenai/RLVR-IFeval (train), lm-eval's IFEval checkers as `ifeval`.

Logic puzzles need no training file: the Reasoning Gym tasks (`gym:<dataset>`, the `logic` suite)
generate their training problems from the training data seed (`data.data_seed`, 2), apart from
evaluation's (0) and validation's (1).

Row formats:

- DeepScaleR: `problem`, `answer` (and a worked `solution`, unused). Id: the row index.
- Eurus-2-RL-Data: `prompt` (a chat list; the last user turn is the statement, with Eurus's own
  "Write Python code ..." request replaced by the harness's stdin/stdout instruction), `ability`
  (`code` rows only: the set also holds maths), `reward_model` {`style`, `ground_truth`: a JSON
  string of `{"inputs": [...], "outputs": [...]}`}, `data_source`, `extra_info` {`index`}. Id:
  `<data_source>-<index>`. Rows with call-based tests (`fn_name`) are skipped and counted.
- SciQ: `question`, `correct_answer`, `distractor1..3` (and `support`, unused). Chosen for STEM
  because the paper's SCP-116K has no short verifiable answer (its rows hold `problem`,
  `matched_solution` and model solutions, which need a judge model); SciQ's four options are
  verified exactly. Options are shuffled by (data seed, id) as GPQA's are.
- RLVR-IFeval: `messages` (the user turn is the prompt), `ground_truth` (a JSON string naming one
  open-instruct constraint function, `func_name`, and its arguments), `constraint_type`,
  `constraint`. Each function maps onto one or two of lm-eval's IFEval instructions with their
  kwargs (`IFEVAL_MAP`; "exactly N" is "at least N" and "less than N+1"); rows whose constraint
  has no IFEval checker are skipped and counted.

Data: with `data_dir` (`--data-dir`, `data.data_dir`), the offline copy
`<data_dir>/train/<file>.jsonl` in the hub's row format (a missing file is a UserError, never a
silent download); otherwise `datasets.load_dataset(hub_id, split=...)`. A row without a field its
source needs is a UserError naming the source, the row and the field.

Example:
    >>> task = build_train_task("train:deepscaler", TaskOptions(data_dir="tests/fixtures"))
    >>> task.score("so \\\\boxed{5}", task.load()[0]).value  # doctest: +SKIP
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Callable
from dataclasses import dataclass
from functools import partial
from pathlib import Path
from typing import Any

from prorl_eval.errors import UserError
from prorl_eval.tasks.base import Problem, Score, Task
from prorl_eval.tasks.code_stdio import STDIO_INSTRUCTION, StdioConfig, StdioTask, parse_tests
from prorl_eval.tasks.datafiles import load_hub_rows, read_jsonl
from prorl_eval.tasks.entries import TaskEntry
from prorl_eval.tasks.ifeval import score_ifeval
from prorl_eval.tasks.math_answer import gold_text, scorer_version, verify_math
from prorl_eval.tasks.math_tasks import MATH_INSTRUCTION
from prorl_eval.tasks.options import TaskOptions
from prorl_eval.tasks.stem import (
    LETTERS,
    MC_VERSION,
    MCDatasetSpec,
    MultipleChoiceConfig,
    MultipleChoiceTask,
    shuffle_order,
)
from prorl_eval.tasks.train_ifeval import MissingArgument, ifeval_instructions

TRAIN_VERSION = "train-v1"
# Eurus-2-RL-Data's own request at the end of each code statement (replaced by STDIO_INSTRUCTION).
EURUS_CODE_SUFFIX = "Write Python code to solve the problem."


@dataclass(frozen=True)
class TrainSource:
    """One training set: task name, domain, hub id and split, offline file, size, verifier."""

    name: str
    domain: str
    hub_id: str
    split: str
    local_file: str  # under <data_dir>/train/
    size: str  # rows in the release (those the task uses may be fewer)
    verifier: str


class TrainSourceTask(Task):
    """A training set read by hub id or from `<data_dir>/train/`; subclasses turn rows into
    problems (`to_problem`, None to skip a row) and score with their benchmark's verifier."""

    spec: TrainSource

    def __init__(self, options: TaskOptions) -> None:
        if options.limit is not None and options.limit <= 0:
            raise UserError(f"{self.spec.name} would have no problems: --limit must be > 0.")
        self.options = options
        self.skipped = 0  # rows `load` left out (not this task's kind), counted for the source
        self.name = self.spec.name
        self.domain = self.spec.domain
        self.path = self._local_path()
        if self.path is None:
            self.source = f"hub:{self.spec.hub_id} ({self.spec.split})"
            origin = f"hub:{self.spec.hub_id}@{self.spec.split}"
        else:
            self.source = str(self.path)
            digest = hashlib.sha256(self.path.read_bytes()).hexdigest()[:12]
            origin = f"local:train/{self.spec.local_file}#sha256={digest}"
        self.version = f"{TRAIN_VERSION};{origin};{self.scorer()}"

    def _local_path(self) -> Path | None:
        if self.options.data_dir is None:
            return None
        path = Path(self.options.data_dir).expanduser() / "train" / self.spec.local_file
        if not path.is_file():
            raise UserError(
                f"{self.spec.name}: offline data file {path} does not exist. Put a copy of "
                f"{self.spec.hub_id} ({self.spec.split}) there in the hub's row format, or unset "
                "--data-dir / data.data_dir to load it from the Hugging Face hub."
            )
        return path

    def scorer(self) -> str:
        """What scores the problems, for the task version."""
        return ""

    def rows(self) -> list[dict[str, Any]]:
        if self.path is not None:
            return read_jsonl(self.path)
        return load_hub_rows(self.spec.hub_id, self.spec.split)

    def load(self) -> list[Problem]:
        problems, skipped, seen = [], 0, set()
        for index, row in enumerate(self.rows()):
            problem = self.to_problem(row, index)
            if problem is None:
                skipped += 1
                continue
            if problem.id in seen:
                raise UserError(f"{self.name}: problem id {problem.id!r} repeats in {self.source}.")
            seen.add(problem.id)
            problems.append(problem)
        self.skipped = skipped
        if not problems:
            raise UserError(f"{self.name}: {self.source} holds no usable rows.")
        return problems[: self.options.limit] if self.options.limit is not None else problems

    def to_problem(self, row: dict[str, Any], index: int) -> Problem | None:
        raise NotImplementedError

    def field(self, row: dict[str, Any], index: int, *path: str) -> Any:
        """`row[path[0]][path[1]]...`; a missing or null field is a UserError naming it."""
        value: Any = row
        for depth, key in enumerate(path):
            if not isinstance(value, dict) or value.get(key) in (None, ""):
                name = ".".join(path[: depth + 1])
                raise UserError(
                    f"{self.name}: {self.source} row {index} has no {name!r} field; "
                    f"a {self.spec.hub_id} row needs it."
                )
            value = value[key]
        return value


# ----------------------------------------------------------------------------- math


class DeepScaleRTask(TrainSourceTask):
    """DeepScaleR-Preview's 40k competition problems, scored by math-verify like `math500`."""

    spec = TrainSource(
        "train:deepscaler", "math", "agentica-org/DeepScaleR-Preview-Dataset", "train",
        "deepscaler.jsonl", "40315", "math-verify",
    )  # fmt: skip

    def scorer(self) -> str:
        return scorer_version()

    def to_problem(self, row: dict[str, Any], index: int) -> Problem:
        question = str(self.field(row, index, "problem")).strip()
        return Problem(str(index), question, gold_text(self.field(row, index, "answer")))

    def prompt(self, problem: Problem) -> str:
        return f"{problem.question}\n{MATH_INSTRUCTION}"

    def score(self, response: str, problem: Problem) -> Score:
        return verify_math(response, problem.answer)


# ----------------------------------------------------------------------------- code


def _last_user_turn(messages: Any) -> str | None:
    """The content of the last user message of a chat list, or None."""
    if not isinstance(messages, list):
        return None
    turns = [m.get("content") for m in messages if isinstance(m, dict) and m.get("role") == "user"]
    return str(turns[-1]) if turns and turns[-1] else None


class EurusCodeTask(TrainSourceTask):
    """The code rows of Eurus-2-RL-Data (APPS, TACO, CodeContests, Codeforces statements with
    stdin/stdout tests), scored in the sandbox by `StdioTask.score` (fraction of tests passed)."""

    spec = TrainSource(
        "train:eurus-code", "code", "PRIME-RL/Eurus-2-RL-Data", "train", "eurus_code.jsonl",
        "?", "sandbox: stdin/stdout (fraction of tests passed)",
    )  # fmt: skip
    extracts_answers = False
    partial_credit = True

    def __init__(self, options: TaskOptions) -> None:
        super().__init__(options)
        self._stdio = StdioTask(StdioConfig(source=str(self.path or self.spec.hub_id)))

    def scorer(self) -> str:
        from prorl_eval.sandbox import SANDBOX_VERSION

        return SANDBOX_VERSION

    def to_problem(self, row: dict[str, Any], index: int) -> Problem | None:
        if self.field(row, index, "ability") != "code":
            return None
        statement = _last_user_turn(self.field(row, index, "prompt"))
        if statement is None:
            raise UserError(f"{self.name}: {self.source} row {index}: 'prompt' has no user turn.")
        statement = statement.split(EURUS_CODE_SUFFIX)[0].strip()
        truth = self.field(row, index, "reward_model", "ground_truth")
        try:
            tests = parse_tests(truth)
        except (ValueError, KeyError, TypeError) as exc:
            raise UserError(
                f"{self.name}: {self.source} row {index}: cannot read tests in "
                f"'reward_model.ground_truth': {exc}"
            ) from None
        if not tests:  # call-based (fn_name) or no tests: not a stdin/stdout problem
            return None
        info = row.get("extra_info") or {}
        ident = f"{row.get('data_source', 'eurus')}-{info.get('index', index)}"
        return Problem(ident, statement, tests, {"tests": len(tests)})

    def prompt(self, problem: Problem) -> str:
        return f"{problem.question}\n\n{STDIO_INSTRUCTION}"

    def score(self, response: str, problem: Problem) -> Score:
        return self._stdio.score(response, problem)


# ----------------------------------------------------------------------------- STEM

SCIQ = MCDatasetSpec(
    name="train:sciq",
    hub_id="allenai/sciq",
    hub_config=None,
    hub_split="train",
    question_field="question",
    correct_field="correct_answer",
    distractor_fields=("distractor1", "distractor2", "distractor3"),
    size=11679,
)


class SciQTask(TrainSourceTask):
    """SciQ's 11.7k four-option science questions, shown and scored exactly as GPQA-Diamond."""

    spec = TrainSource(
        "train:sciq", "stem", SCIQ.hub_id, SCIQ.hub_split, "sciq.jsonl", str(SCIQ.size),
        "multiple-choice letter (options shuffled by seed)",
    )  # fmt: skip

    def __init__(self, options: TaskOptions) -> None:
        super().__init__(options)
        self._choice = MultipleChoiceTask(MultipleChoiceConfig(spec=SCIQ, seed=options.seed))

    def scorer(self) -> str:
        return f"{MC_VERSION};seed={self.options.seed}"

    def to_problem(self, row: dict[str, Any], index: int) -> Problem:
        question = str(self.field(row, index, SCIQ.question_field)).strip()
        fields = (SCIQ.correct_field, *SCIQ.distractor_fields)
        options = [str(self.field(row, index, name)).strip() for name in fields]
        order = shuffle_order(self.options.seed, str(index), len(options))
        choices = [options[i] for i in order]
        metadata = {"choices": choices, "correct_text": options[0]}
        return Problem(str(index), question, LETTERS[order.index(0)], metadata)

    def prompt(self, problem: Problem) -> str:
        return self._choice.prompt(problem)

    def score(self, response: str, problem: Problem) -> Score:
        return self._choice.score(response, problem)


# ----------------------------------------------------------------------------- IFEval


class RLVRIFEvalTask(TrainSourceTask):
    """RLVR-IFeval's prompts with one verifiable constraint each, checked by lm-eval's IFEval
    checkers (`score_ifeval`, prompt-level strict) after mapping the constraint onto them."""

    spec = TrainSource(
        "train:rlvr-ifeval", "ifeval", "allenai/RLVR-IFeval", "train", "rlvr_ifeval.jsonl",
        "14973", "lm-eval IFEval checkers (prompt-level strict)",
    )  # fmt: skip
    extracts_answers = False

    def scorer(self) -> str:
        from importlib import metadata

        return f"lm-eval=={metadata.version('lm_eval')}"

    def to_problem(self, row: dict[str, Any], index: int) -> Problem | None:
        prompt = _last_user_turn(self.field(row, index, "messages"))
        if prompt is None:
            raise UserError(f"{self.name}: {self.source} row {index}: 'messages' has no user turn.")
        truth = self.field(row, index, "ground_truth")
        try:
            constraint = json.loads(truth) if isinstance(truth, str) else dict(truth)
        except (ValueError, TypeError):
            raise UserError(
                f"{self.name}: {self.source} row {index}: 'ground_truth' is not a JSON object."
            ) from None
        if not constraint.get("func_name"):
            raise UserError(
                f"{self.name}: {self.source} row {index} has no 'ground_truth.func_name' field; "
                f"a {self.spec.hub_id} row needs it."
            )
        try:
            mapped = ifeval_instructions(constraint)
        except MissingArgument as exc:
            raise UserError(
                f"{self.name}: {self.source} row {index} has no 'ground_truth.{exc.args[0]}' "
                f"field; its constraint {constraint['func_name']} needs it."
            ) from None
        if mapped is None:
            return None
        ids, kwargs = mapped
        metadata = {"instruction_id_list": ids, "kwargs": kwargs}
        return Problem(str(index), prompt.strip(), None, metadata)

    def prompt(self, problem: Problem) -> str:
        return problem.question

    def score(self, response: str, problem: Problem) -> Score:
        return score_ifeval(response, problem)


# ----------------------------------------------------------------------------- catalogue

TRAIN_TASKS: dict[str, Callable[[TaskOptions], TrainSourceTask]] = {
    cls.spec.name: cls for cls in (DeepScaleRTask, EurusCodeTask, SciQTask, RLVRIFEvalTask)
}


def build_train_task(name: str, options: TaskOptions) -> TrainSourceTask:
    """Registry builder for `train:deepscaler`, `train:eurus-code`, `train:sciq`,
    `train:rlvr-ifeval` (of the options, `limit`, `seed` (SciQ's shuffle) and `data_dir`)."""
    return TRAIN_TASKS[name](options)


def catalogue_entries() -> list[TaskEntry]:
    """The training sets as the registry lists them."""
    entries = []
    for name, cls in TRAIN_TASKS.items():
        spec = cls.spec  # type: ignore[attr-defined]
        source = f"hub {spec.hub_id} ({spec.split}) or <data_dir>/train/{spec.local_file}"
        build = partial(build_train_task, name)
        entries.append(TaskEntry(name, spec.domain, spec.verifier, source, spec.size, build))
    return entries
