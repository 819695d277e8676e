"""Custom tasks: any JSONL/JSON/CSV file or hub dataset, a prompt column, an answer column and a
verifier picked by name, all from the command line.

Syntax (one `--tasks` entry; values may be %-encoded, keys are listed in `CUSTOM_KEYS`):

    custom:<source>?prompt=<column>&answer=<column>[&verifier=<name>][&id=<column>]
                    [&split=<split>][&config=<hub config>][&choices=<N>][&instruction=none|<text>]
                    [&domain=<domain>]

- `<source>` is a local file when it ends in `.jsonl`, `.json` (a list of objects) or `.csv`,
  otherwise a hub dataset id (`owner/name`, loaded lazily with `datasets`; `split` defaults to
  `test`).
- `verifier` (default `exact`), see `VERIFIERS`:
  `exact` normalised exact match of the extracted final answer (numbers compared as numbers),
  `contains` the normalised gold appears in the response on word boundaries,
  `regex` the gold column holds a regular expression that must match (re.search) the response,
  `math` the math verifier `prorl_eval.tasks.math_answer.verify_math`,
  `number` the math verifier, and the extracted answer must be a number (an integer, a decimal or
  a fraction of integers): an unevaluated expression such as `11 + 17` scores 0 even though
  math-verify finds it equal to 28. For arithmetic questions, where restating the question would
  otherwise be credited as its answer (a policy under RL learns to do exactly that). Its miss:
  "The answer to 0 + 4 is 4." scores 0 too, since math-verify extracts `0 + 4` as the answer.
  `multiple_choice` (alias `letter`) the gold is a letter among the first `choices` (default 4)
  and the response's answer letter is extracted as for GPQA.
- `instruction`: by default the verifier's answer-format instruction is appended to the prompt;
  `instruction=none` sends the prompt as is, any other text is appended instead.
- `domain` (default `custom`): the domain the task is reported under (`math`, `logic`, ...), so
  your own sets join the benchmarks of their field in tables and domain averages.
- The gold may be a list (any element counts) for `exact` and `contains`.
- `<think>` traces are removed before every check. A gold column value of `null` is refused.
- The task name is `custom:` + the argument as typed; the version records the verifier and the
  file's SHA-256 (or the hub id, config and split), so a changed file is a new task version.
- A comma cannot appear in the argument (it separates `--tasks` entries); %-encode it as `%2C`.

Example:
    >>> cfg = parse_custom_argument("someone/qa?prompt=question&answer=answer&verifier=contains")
    >>> cfg.is_local, cfg.prompt, cfg.answer, cfg.verifier
    (False, 'question', 'answer', 'contains')
"""

from __future__ import annotations

import dataclasses
import hashlib
import importlib
import re
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any
from urllib.parse import parse_qsl

from prorl_eval.errors import UserError
from prorl_eval.tasks.base import Problem, Score, Task, last_answer_line, strip_reasoning
from prorl_eval.tasks.datafiles import check_columns, load_hub_rows, read_table
from prorl_eval.tasks.entries import Family
from prorl_eval.tasks.options import TaskOptions
from prorl_eval.tasks.stem import LETTERS, score_choice

# v3: the last-line fallback skips an unfinished numbered-list item (tasks.base.last_answer_line).
CUSTOM_VERSION = "custom-v3"
LOCAL_SUFFIXES = (".jsonl", ".json", ".csv")
_HUB_ID = re.compile(r"[\w.-]+(?:/[\w.-]+)?")


@dataclass(frozen=True)
class CustomConfig:
    """A custom task: where the data is, which columns to read, and how to verify."""

    source: str  # a local .jsonl/.json/.csv path or a hub dataset id
    prompt: str  # column holding the prompt
    answer: str  # column holding the gold answer
    verifier: str = "exact"  # a key of VERIFIERS
    id: str | None = None  # column holding problem ids (default: the row index)
    split: str | None = None  # hub split (default "test")
    config: str | None = None  # hub config name
    choices: int = 4  # number of options for multiple_choice/letter
    instruction: str | None = None  # None: the verifier's default; "none": nothing appended
    domain: str = "custom"  # the domain reported in tables and averages
    limit: int | None = None  # at most this many problems (from --limit)

    @property
    def is_local(self) -> bool:
        return self.source.lower().endswith(LOCAL_SUFFIXES)

    def validate(self, columns: Sequence[str] | None = None) -> None:
        """Refuse unknown verifiers, missing files, bad options and (given `columns`) missing
        prompt/answer/id columns, each with a message naming the fix."""
        if self.verifier not in VERIFIERS:
            raise UserError(
                f"unknown custom verifier '{self.verifier}'; choose one of "
                f"{', '.join(sorted(VERIFIERS))}."
            )
        if self.is_local and not Path(self.source).expanduser().is_file():
            raise UserError(f"custom task data file {self.source} does not exist.")
        if not self.is_local and not _HUB_ID.fullmatch(self.source):
            raise UserError(
                f"custom task source '{self.source}' is neither a {'/'.join(LOCAL_SUFFIXES)} "
                "file nor a hub dataset id (owner/name)."
            )
        if not 2 <= self.choices <= len(LETTERS):
            raise UserError(f"custom task: choices must be between 2 and 26 (got {self.choices}).")
        if self.limit is not None and self.limit <= 0:
            raise UserError("custom task would have no problems: --limit must be > 0.")
        if not re.fullmatch(r"[a-z][a-z0-9_-]*", self.domain):
            raise UserError(
                f"custom task: domain must be a lowercase name such as math (got {self.domain!r})."
            )
        if self.verifier in MATH_VERIFIERS:
            _math_verifier()
        if columns is not None:
            needed = [self.prompt, self.answer] + ([self.id] if self.id else [])
            check_columns(columns, needed, f"custom task {self.source}")


CUSTOM_KEYS = (
    "prompt",
    "answer",
    "verifier",
    "id",
    "split",
    "config",
    "choices",
    "instruction",
    "domain",
)


def parse_custom_argument(argument: str, limit: int | None = None) -> CustomConfig:
    """Parse `<source>?key=value&...` into a CustomConfig (validated, without reading data)."""
    source, sep, query = argument.partition("?")
    if not source or not sep:
        raise UserError(
            f"custom task '{argument}' needs a source and options, e.g. "
            "custom:data.jsonl?prompt=question&answer=answer&verifier=exact."
        )
    values: dict[str, Any] = {}
    for key, value in parse_qsl(query, keep_blank_values=True, strict_parsing=False):
        if key not in CUSTOM_KEYS:
            raise UserError(
                f"custom task: unknown option '{key}'; known options: {', '.join(CUSTOM_KEYS)}."
            )
        if key in values:
            raise UserError(f"custom task: option '{key}' is given twice.")
        values[key] = value
    missing = [k for k in ("prompt", "answer") if not values.get(k)]
    if missing:
        raise UserError(f"custom task '{argument}' needs {' and '.join(missing)}=<column>.")
    if "choices" in values:
        try:
            values["choices"] = int(values["choices"])
        except ValueError:
            raise UserError(
                f"custom task: choices must be a number (got {values['choices']!r})."
            ) from None
    if "verifier" in values:
        values["verifier"] = values["verifier"].strip().lower()
    config = CustomConfig(source=source, limit=limit, **values)
    config.validate()
    return config


# ----------------------------------------------------------------------------- verifiers

_ANSWER_LINE = re.compile(r"(?:final\s+)?answer\s*(?:is\b|:)\s*(.+?)\s*$", re.I | re.M)
_LATEX_WRAP = re.compile(r"\\(?:text|textbf|mathrm)\s*\{([^{}]*)\}")


def normalise_answer(text: Any) -> str:
    """Casefold, drop markdown/TeX wrappers and surrounding quotes/punctuation, collapse spaces."""
    text = _LATEX_WRAP.sub(r"\1", str(text)).replace("*", "").replace("$", "")
    text = " ".join(text.casefold().split())
    return text.strip(" .,;:!?\"'`")


def extract_final_answer(response: str) -> tuple[str, str]:
    """(answer, how): the last `\\boxed{}`, else the last `Answer: …` line, else the last line."""
    from prorl_eval.tasks.gym import _last_boxed

    text = strip_reasoning(response)
    boxed = _last_boxed(text)
    if boxed is not None:
        return boxed, "\\boxed{}"
    stated = _ANSWER_LINE.findall(text.replace("*", ""))
    if stated:
        return stated[-1], "answer line"
    return last_answer_line(text), "last line"


def _golds(gold: Any) -> list[str]:
    return [str(g) for g in gold] if isinstance(gold, (list, tuple)) else [str(gold)]


def _same(answer: str, gold: str) -> bool:
    a, g = normalise_answer(answer), normalise_answer(gold)
    if a == g:
        return True
    try:
        return float(a.replace(",", "")) == float(g.replace(",", ""))
    except ValueError:
        return False


def verify_exact(response: str, gold: Any, config: CustomConfig) -> Score:
    """Normalised exact match of the extracted final answer against any gold."""
    answer, how = extract_final_answer(response)
    if not answer.strip():
        return Score(0.0, "no answer found", extraction="none found")
    shown = answer if len(answer) <= 60 else answer[:57] + "..."
    found = {"answer": answer, "extraction": how}
    for gold_text in _golds(gold):
        if _same(answer, gold_text):
            return Score(1.0, f"{how} answer {shown!r} matches {gold_text!r}", **found)
    return Score(0.0, f"{how} answer {shown!r} does not match {_golds(gold)!r}"[:200], **found)


def verify_contains(response: str, gold: Any, config: CustomConfig) -> Score:
    """The normalised gold occurs in the normalised response, not inside a longer word/number."""
    text = normalise_answer(strip_reasoning(response))
    for gold_text in _golds(gold):
        needle = normalise_answer(gold_text)
        if needle and re.search(rf"(?<!\w){re.escape(needle)}(?!\w)", text):
            return Score(1.0, f"response contains {gold_text!r}", extraction="substring search")
    why = f"response does not contain {_golds(gold)!r}"[:200]
    return Score(0.0, why, extraction="substring search")


def verify_regex(response: str, gold: Any, config: CustomConfig) -> Score:
    """The gold regular expression matches somewhere in the response (re.search)."""
    match = re.search(str(gold), strip_reasoning(response))
    if match:
        why = f"regex {str(gold)!r} matched {match.group(0)[:60]!r}"
        return Score(1.0, why, answer=match.group(0), extraction="regex search")
    return Score(0.0, f"regex {str(gold)!r} did not match", extraction="regex search")


def verify_letter(response: str, gold: Any, config: CustomConfig) -> Score:
    """The extracted answer letter equals the gold letter (options' texts are not known)."""
    return score_choice(response, _gold_letter(gold), [""] * config.choices)


def verify_math(response: str, gold: Any, config: CustomConfig) -> Score:
    """The project's math verifier (`math_answer.verify_math`, default time limit)."""
    return _math_verifier().verify_math(response, gold)


# A number as math-verify writes an extracted answer: sign, digits (thousands commas allowed), an
# optional decimal part, or a fraction of integers (a/b or \frac{a}{b}).
_NUMBER = re.compile(
    r"[-+]?(?:\d{1,3}(?:,\d{3})+|\d+)(?:\.\d+)?|[-+]?\.\d+|[-+]?\d+/\d+"
    r"|[-+]?\\d?frac\{\d+\}\{\d+\}"
)


def is_number_literal(answer: str) -> bool:
    r"""Whether an extracted answer is a number rather than an expression to evaluate.

    >>> is_number_literal("28"), is_number_literal("-0.5"), is_number_literal("\\frac{3}{4}")
    (True, True, True)
    >>> is_number_literal("11 + 17"), is_number_literal("7 \\times 12"), is_number_literal("2^{10}")
    (False, False, False)
    """
    text = re.sub(r"\s+|\$|\\[,!;: ]", "", answer)
    return _NUMBER.fullmatch(text) is not None


def verify_number(response: str, gold: Any, config: CustomConfig) -> Score:
    """`verify_math`, crediting only an answer that is a number (see the module docstring)."""
    score = verify_math(response, gold, config)
    if score.value <= 0 or score.answer is None or is_number_literal(score.answer):
        return score
    return dataclasses.replace(
        score,
        value=0.0,
        reason=f"extracted '{score.answer}' is an expression, not a number (verifier=number); "
        f"it equals the gold '{gold}' but does not evaluate it",
    )


def _math_verifier() -> Any:
    """The `math_answer` module, imported lazily (it pulls in math-verify and sympy)."""
    try:
        module = importlib.import_module("prorl_eval.tasks.math_answer")
        module.verify_math  # noqa: B018 - fail here, not at the first score
        return module
    except (ImportError, AttributeError):
        raise UserError(
            "the math verifier (prorl_eval.tasks.math_answer.verify_math) is not available in "
            "this installation; use another verifier."
        ) from None


def _gold_letter(gold: Any) -> str:
    return str(gold).strip().strip("()").strip().upper()


@dataclass(frozen=True)
class CustomVerifier:
    """A named verifier: the check and the answer-format instruction appended to prompts."""

    check: Callable[[str, Any, CustomConfig], Score]
    instruction: str


_FINAL_LINE = 'Give your final answer on the last line in the form "Answer: <answer>".'
VERIFIERS: dict[str, CustomVerifier] = {
    "exact": CustomVerifier(verify_exact, _FINAL_LINE),
    "contains": CustomVerifier(verify_contains, ""),
    "regex": CustomVerifier(verify_regex, ""),
    "math": CustomVerifier(
        verify_math, "Please reason step by step, and put your final answer within \\boxed{}."
    ),
    "number": CustomVerifier(
        verify_number, "Please reason step by step, and put your final answer within \\boxed{}."
    ),
    "multiple_choice": CustomVerifier(
        verify_letter, 'Give your final answer on the last line in the form "Answer: X".'
    ),
}
VERIFIERS["letter"] = VERIFIERS["multiple_choice"]
MATH_VERIFIERS = ("math", "number")  # the verifiers that need math-verify

CUSTOM_TASKS: dict[str, dict[str, str]] = {
    "custom:<file or hub id>?prompt=<col>&answer=<col>&verifier=<name>": {
        "domain": "custom",
        "verifier": " | ".join(sorted(VERIFIERS)),
        "source": "a local .jsonl/.json/.csv file or a hub dataset id",
    }
}


# ----------------------------------------------------------------------------- the task


class CustomTask(Task):
    """A dataset + a verifier from the command line, with no Python."""

    domain = "custom"

    def __init__(self, name: str, config: CustomConfig) -> None:
        config.validate()
        self.name = name
        self.config = config
        self.domain = config.domain
        self._verifier = VERIFIERS[config.verifier]
        self.extracts_answers = config.verifier != "contains"  # a substring search extracts none
        if config.is_local:
            digest = hashlib.sha256(Path(config.source).expanduser().read_bytes()).hexdigest()
            where = f"sha256={digest[:16]}"
            self.source = config.source
        else:
            where = f"hub={config.source}:{config.config or 'default'}:{config.split or 'test'}"
            self.source = f"hub:{config.source}"
        self.version = f"{CUSTOM_VERSION};verifier={config.verifier};{where}"
        if config.verifier in MATH_VERIFIERS:
            self.version += f";{_math_verifier().scorer_version()}"

    def _rows(self) -> list[dict[str, Any]]:
        cfg = self.config
        if cfg.is_local:
            return read_table(Path(cfg.source).expanduser())
        return load_hub_rows(cfg.source, cfg.split or "test", config=cfg.config)

    def load(self) -> list[Problem]:
        rows = self._rows()
        if not rows:
            raise UserError(f"custom task {self.source} holds no rows.")
        self.config.validate(columns=list(rows[0].keys()))
        problems, seen = [], set()
        for index, row in enumerate(rows[: self.config.limit]):
            problem = self._problem(index, row)
            if problem.id in seen:
                raise UserError(f"custom task {self.source}: id {problem.id!r} appears twice.")
            seen.add(problem.id)
            problems.append(problem)
        return problems

    def _problem(self, index: int, row: dict[str, Any]) -> Problem:
        cfg = self.config
        where = f"custom task {self.source}, row {index}"
        prompt, gold = row.get(cfg.prompt), row.get(cfg.answer)
        if not isinstance(prompt, str) or not prompt.strip():
            raise UserError(f"{where}: column '{cfg.prompt}' is empty or not text.")
        if gold is None or gold == "":
            raise UserError(f"{where}: column '{cfg.answer}' is empty.")
        if cfg.verifier == "regex":
            try:
                re.compile(str(gold))
            except re.error as exc:
                raise UserError(f"{where}: invalid regular expression {gold!r} ({exc}).") from None
        if cfg.verifier in ("multiple_choice", "letter"):
            letter = _gold_letter(gold)
            if len(letter) != 1 or letter not in LETTERS[: cfg.choices]:
                raise UserError(
                    f"{where}: gold {gold!r} is not one of the letters "
                    f"{LETTERS[: cfg.choices]} (set choices=<N> for more options)."
                )
        problem_id = str(row[cfg.id]) if cfg.id else str(index)
        return Problem(id=problem_id, question=prompt, answer=gold)

    def prompt(self, problem: Problem) -> str:
        instruction = self.config.instruction
        if instruction is None:
            instruction = self._verifier.instruction
        elif instruction.strip().lower() == "none":
            instruction = ""
        return f"{problem.question}\n\n{instruction}" if instruction else problem.question

    def score(self, response: str, problem: Problem) -> Score:
        return self._verifier.check(response, problem.answer, self.config)


def build_custom_task(argument: str, options: TaskOptions) -> CustomTask:
    """Registry builder for `custom:<argument>` (of the options, `limit` applies)."""
    config = parse_custom_argument(argument, limit=options.limit)
    return CustomTask(f"custom:{argument}", config)


FAMILY = Family(
    prefix="custom",
    domain=CustomTask.domain,
    verifier="exact | contains | regex | math | number | multiple_choice",
    usage="custom:<file.jsonl|.csv or hub id>?prompt=<col>&answer=<col>&verifier=<name>[&id=<col>]",
    build=build_custom_task,
)
