"""Multiple-choice STEM tasks (GPQA-Diamond) and the generic multiple-choice machinery behind them.

A multiple-choice benchmark is a dataset whose rows hold a question, the correct answer's text and
some distractors. `MultipleChoiceTask` shuffles the options of each problem with a recorded seed,
shows them as `A) … B) …`, asks for `Answer: X` on the last line, and scores the letter it can
extract (see `extract_choice`). Adding another benchmark is one `MCDatasetSpec` entry in
`MC_DATASETS`, no new code.

Shuffling: the order of a problem's options is a pure function of (task seed, problem id),
computed from SHA-256 hashes, so it does not depend on the Python version, on row order or on
`--limit`, and a base and an RL run with the same seed see identical prompts. The seed is part
of the task version.

Data: `<data_dir>/stem/<name>.jsonl` (or `.csv`) with the hub's field names when it exists,
else the hub (`Idavidrein/gpqa`, config `gpqa_diamond`, split `train`; gated, so it needs the
user's Hugging Face token). GPQA's authors ask that it not be published in plain text: never commit
its questions.

Example:
    >>> extract_choice("Option B fails the units check.\\nAnswer: C", ["1", "2", "3", "4"])[0]
    'C'
"""

from __future__ import annotations

import hashlib
import re
from collections.abc import Sequence
from dataclasses import dataclass
from functools import partial
from pathlib import Path
from typing import Any

from prorl_eval.errors import UserError
from prorl_eval.tasks.base import Problem, Score, Task, strip_reasoning
from prorl_eval.tasks.datafiles import check_columns, load_hub_rows, read_table
from prorl_eval.tasks.entries import TaskEntry
from prorl_eval.tasks.options import TaskOptions

LETTERS = "ABCDEFGHIJKLMNOPQRSTUVWXYZ"
MC_VERSION = "mc-v1"  # bump when the prompt, the shuffle or the extraction changes


@dataclass(frozen=True)
class MCDatasetSpec:
    """Where a multiple-choice benchmark lives and which fields hold what."""

    name: str
    hub_id: str
    hub_config: str | None
    hub_split: str
    question_field: str
    correct_field: str
    distractor_fields: tuple[str, ...]
    id_field: str | None = None  # None: the row index is the problem id
    gated: bool = False
    domain: str = "stem"
    local_name: str = ""  # file stem under <data_dir>/stem/, default `name`
    size: int | None = None  # problems in the standard release (None: not known)

    @property
    def num_choices(self) -> int:
        return 1 + len(self.distractor_fields)


GPQA_DIAMOND = MCDatasetSpec(
    name="gpqa_diamond",
    hub_id="Idavidrein/gpqa",
    hub_config="gpqa_diamond",
    hub_split="train",
    question_field="Question",
    correct_field="Correct Answer",
    distractor_fields=("Incorrect Answer 1", "Incorrect Answer 2", "Incorrect Answer 3"),
    id_field="Record ID",
    gated=True,
    size=198,
)

# task name -> dataset spec; a new multiple-choice benchmark is one more entry here
MC_DATASETS: dict[str, MCDatasetSpec] = {GPQA_DIAMOND.name: GPQA_DIAMOND}


# ----------------------------------------------------------------------------- extraction

_BOXED = re.compile(r"\\boxed\s*\{")
_LATEX_WRAP = re.compile(r"\\(?:text|textbf|mathrm|mathbf|textit)\s*\{([^{}]*)\}")
# An explicit answer statement: "Answer: C", "the final answer is (C)", "correct option is C".
_STATEMENT = (
    r"(?:\banswer\s*(?:is|would\s+be|should\s+be|must\s+be|will\s+be|:|=)"
    r"|\b(?:correct|best|right)\s+(?:option|choice)"
    r"|\bi\s+(?:choose|pick|select)|\bgo(?:ing)?\s+with)"
    r"\s*(?:is\b)?\s*[:=]?\s*(?:(?:option|choice|letter)\s*)?"
)


def _letter_group(letters: str) -> str:
    """A choice letter: any case inside brackets, uppercase before a non-letter, or lowercase
    before punctuation/end (so the article in "the answer is a bit tricky" is not a choice).
    The case-sensitive branches stay so inside a case-insensitive statement pattern."""
    up, low = letters, letters.lower()
    return (
        rf"(?:[(\[]\s*(?P<b>[{up}{low}])\s*[)\]]"
        rf"|(?-i:(?P<u>[{up}]))(?![A-Za-z0-9'’])"
        rf"|(?-i:(?P<l>[{low}]))(?=\s*(?:[.)\],;:!?]|$)))"
    )


def _found(match: re.Match[str]) -> str:
    return (match.group("b") or match.group("u") or match.group("l")).upper()


def _normalise(text: str) -> str:
    """Lowercase, drop TeX dollars/markdown emphasis, collapse spaces, trim end punctuation."""
    text = _LATEX_WRAP.sub(r"\1", text.replace("$", "").replace("*", ""))
    return " ".join(text.lower().split()).strip(" .;:!")


def _boxed_contents(text: str) -> list[tuple[int, str]]:
    """(position, content) of every balanced `\\boxed{…}` in the text."""
    found = []
    for match in _BOXED.finditer(text):
        depth, start = 1, match.end()
        for j in range(start, len(text)):
            depth += {"{": 1, "}": -1}.get(text[j], 0)
            if depth == 0:
                found.append((match.start(), text[start:j]))
                break
    return found


def _boxed_choice(content: str, letters: str, choices: Sequence[str]) -> str | None:
    """The letter a boxed answer names: `C`, `(C)`, `\\text{C}`, `C) text`, or an option's text."""
    inner = _normalise(content)
    match = re.fullmatch(rf"\(?([{letters.lower()}])\)?(?:[).:]\s*.*)?", inner)
    if match:
        return match.group(1).upper()
    for index, choice in enumerate(choices):
        if inner and inner == _normalise(choice):
            return letters[index]
    return None


def _last_statement(text: str, letters: str, choices: Sequence[str]) -> tuple[str, str] | None:
    """The last explicit answer (a statement or a \\boxed{}) by position, with how it was said."""
    best: tuple[int, str, str] | None = None
    pattern = re.compile(_STATEMENT + _letter_group(letters), flags=re.IGNORECASE)
    # "**Answer:** C", "Answer: **C**" and "Answer: $C$" all read as "Answer: C"
    plain = text.replace("*", "").replace("$", "")
    for match in pattern.finditer(plain):
        best = max(best or (-1, "", ""), (match.start(), _found(match), "answer statement"))
    for pos, content in _boxed_contents(plain):
        letter = _boxed_choice(content, letters, choices)
        if letter is not None:
            best = max(best or (-1, "", ""), (pos, letter, "\\boxed{}"))
    return (best[1], best[2]) if best else None


def _last_line_choice(text: str, letters: str) -> str | None:
    """A formatted letter on the last non-empty line: `C`, `(c)`, `C)`, `**C**`, `C. text`."""
    lines = [line.strip() for line in text.replace("*", "").splitlines() if line.strip()]
    if not lines:
        return None
    line, up, low = lines[-1], letters, letters.lower()
    bare = re.fullmatch(rf"[(\[]?([{up}{low}])[)\].:]?", line)
    if bare:
        return bare.group(1).upper()
    lead = re.match(rf"([{up}])[.:)]\s|([{low}])\)\s", line)
    marks = [(m.start(), m.group(1)) for m in re.finditer(rf"\(([{up}{low}])\)", line)]
    marks += [(m.start(), m.group(1)) for m in re.finditer(rf"(?<![A-Za-z])([{up}])\)", line)]
    if lead:
        marks.append((0, lead.group(1) or lead.group(2)))
    return max(marks)[1].upper() if marks else None


def _trailing_letter(text: str, letters: str) -> str | None:
    """An uppercase letter ending the response ("Therefore, C."); tried after option texts since
    units end lines too ("It is 0.5 A")."""
    match = re.search(rf"(?<![A-Za-z0-9])([{letters}])[.!]?$", text.replace("*", "").rstrip())
    return match.group(1) if match else None


def _option_text_choice(text: str, letters: str, choices: Sequence[str]) -> str | None:
    """The option whose text the response ends with (the longest, on a word boundary)."""
    tail = _normalise(text)
    best: tuple[int, str] | None = None
    for index, choice in enumerate(choices):
        option = _normalise(choice)
        if not option or not tail.endswith(option):
            continue
        before = tail[: len(tail) - len(option)]
        if before and before[-1].isalnum() and option[0].isalnum():
            continue
        best = max(best or (-1, ""), (len(option), letters[index]))
    return best[1] if best else None


def extract_choice(response: str, choices: Sequence[str]) -> tuple[str | None, str]:
    """The answer letter a response gives for these options, and how it was found.

    Reasoning traces (`<think>…</think>`) are removed first. In order of trust: the last explicit
    statement (`Answer: C`, `the answer is (C)`, `correct option is C`, `\\boxed{C}`), then a
    formatted letter on the last line (`C`, `(c)`, `C)`, `**C**`), then the option whose exact text
    ends the response, then an uppercase letter ending it (`Therefore, C.`). Returns (None, why)
    when nothing qualifies.
    """
    letters = LETTERS[: len(choices)]
    text = strip_reasoning(response).strip()
    if not text:
        return None, "no answer: empty response after removing <think> trace"
    stated = _last_statement(text, letters, choices)
    if stated is not None:
        return stated
    line = _last_line_choice(text, letters)
    if line is not None:
        return line, "letter on the last line"
    option = _option_text_choice(text, letters, choices)
    if option is not None:
        return option, "ends with the option's text"
    trailing = _trailing_letter(text, letters)
    if trailing is not None:
        return trailing, "letter ending the response"
    return None, f"no answer letter ({', '.join(letters)}) found"


def score_choice(response: str, correct: str, choices: Sequence[str]) -> Score:
    """1.0 when the extracted letter is `correct`, else 0.0, with the reason."""
    letter, how = extract_choice(response, choices)
    if letter is None:
        return Score(0.0, how, extraction="none found")
    verdict = "correct" if letter == correct else f"wrong, correct is {correct}"
    return Score(
        float(letter == correct), f"{how}: {letter} ({verdict})", {"choice": letter},
        answer=letter, extraction=how,
    )  # fmt: skip


# ----------------------------------------------------------------------------- the task


def shuffle_order(seed: int, problem_id: str, count: int) -> list[int]:
    """A permutation of range(count): option i goes to position order.index(i).

    Each original index gets the key SHA-256(seed, id, index) and the indices are sorted by key,
    a uniform random permutation that depends only on (seed, problem id).
    """

    def key(index: int) -> str:
        return hashlib.sha256(f"{seed}\x1f{problem_id}\x1f{index}".encode()).hexdigest()

    return sorted(range(count), key=key)


@dataclass(frozen=True)
class MultipleChoiceConfig:
    """A multiple-choice benchmark: its spec, the shuffle seed, how many problems, where data is."""

    spec: MCDatasetSpec
    seed: int = 0
    limit: int | None = None
    data_dir: str | None = None

    def validate(self) -> None:
        if not 2 <= self.spec.num_choices <= len(LETTERS):
            raise UserError(f"{self.spec.name}: needs 2 to 26 options per question.")
        if self.limit is not None and self.limit <= 0:
            raise UserError(f"{self.spec.name} would have no problems: --limit must be > 0.")

    def local_file(self) -> Path | None:
        """The offline copy under <data_dir>/stem/, if one exists (.jsonl preferred to .csv)."""
        if self.data_dir is None:
            return None
        stem = Path(self.data_dir).expanduser() / "stem" / (self.spec.local_name or self.spec.name)
        for suffix in (".jsonl", ".csv"):
            if stem.with_suffix(suffix).is_file():
                return stem.with_suffix(suffix)
        return None


INSTRUCTION = (
    "Answer the following multiple choice question. Think step by step, then give your final "
    'answer on the last line in the form "Answer: X", where X is one of {letters}.'
)


class MultipleChoiceTask(Task):
    """A multiple-choice benchmark with seeded option shuffling and letter scoring."""

    def __init__(self, config: MultipleChoiceConfig) -> None:
        config.validate()
        self.config = config
        self.name = config.spec.name
        self.domain = config.spec.domain
        self.version = f"{MC_VERSION};seed={config.seed}"
        local = config.local_file()
        self.source = str(local) if local else f"hub:{config.spec.hub_id}"

    def load(self) -> list[Problem]:
        rows = self._rows()
        problems, seen = [], set()
        for index, row in enumerate(rows):
            problem = self._problem(index, row)
            if problem.id in seen:
                raise UserError(f"{self.name}: problem id {problem.id!r} appears twice.")
            seen.add(problem.id)
            problems.append(problem)
            if self.config.limit is not None and len(problems) >= self.config.limit:
                break
        return problems

    def _problem(self, index: int, row: dict[str, Any]) -> Problem:
        spec = self.config.spec
        problem_id = str(row[spec.id_field]).strip() if spec.id_field else str(index)
        options = [str(row[spec.correct_field]).strip()]
        options += [str(row[field]).strip() for field in spec.distractor_fields]
        order = shuffle_order(self.config.seed, problem_id, len(options))
        choices = [options[i] for i in order]
        correct = LETTERS[order.index(0)]
        return Problem(
            id=problem_id,
            question=str(row[spec.question_field]).strip(),
            answer=correct,
            metadata={"choices": choices, "correct_text": options[0]},
        )

    def prompt(self, problem: Problem) -> str:
        choices = problem.metadata["choices"]
        letters = LETTERS[: len(choices)]
        shown = "\n".join(
            f"{letter}) {text}" for letter, text in zip(letters, choices, strict=True)
        )
        head = INSTRUCTION.format(letters=", ".join(letters))
        return f"{head}\n\n{problem.question}\n\n{shown}"

    def score(self, response: str, problem: Problem) -> Score:
        return score_choice(response, problem.answer, problem.metadata["choices"])

    def _rows(self) -> list[dict[str, Any]]:
        local = self.config.local_file()
        rows = read_table(local) if local else self._hub_rows()
        if not rows:
            raise UserError(f"{self.source} holds no rows.")
        spec = self.config.spec
        needed = [spec.question_field, spec.correct_field, *spec.distractor_fields]
        needed += [spec.id_field] if spec.id_field else []
        check_columns(rows[0].keys(), needed, self.source)
        return rows

    def _hub_rows(self) -> list[dict[str, Any]]:
        spec = self.config.spec
        return load_hub_rows(spec.hub_id, spec.hub_split, config=spec.hub_config, gated=spec.gated)


# ----------------------------------------------------------------------------- data helpers


def build_stem_task(name: str, options: TaskOptions) -> MultipleChoiceTask:
    """Registry builder for a named multiple-choice task."""
    if name not in MC_DATASETS:
        raise UserError(
            f"unknown multiple-choice task '{name}'; known: {', '.join(sorted(MC_DATASETS))}."
        )
    config = MultipleChoiceConfig(
        spec=MC_DATASETS[name],
        seed=options.seed,
        limit=options.limit,
        data_dir=options.data_dir,
    )
    return MultipleChoiceTask(config)


def _catalogue_entry(spec: MCDatasetSpec) -> TaskEntry:
    """One multiple-choice benchmark's catalogue line (its domain is the spec's)."""
    source = (
        f"hub {spec.hub_id}"
        + (f" ({spec.hub_config}, {spec.hub_split})" if spec.hub_config else "")
        + (", gated" if spec.gated else "")
        + f" or <data_dir>/stem/{spec.local_name or spec.name}.jsonl"
    )
    verifier = "multiple-choice letter (options shuffled by seed)"
    size = "?" if spec.size is None else str(spec.size)
    build = partial(build_stem_task, spec.name)
    return TaskEntry(spec.name, spec.domain, verifier, source, size, build)


def catalogue_entries() -> list[TaskEntry]:
    """The named multiple-choice tasks as the registry lists them, one per `MC_DATASETS` spec."""
    return [_catalogue_entry(spec) for spec in MC_DATASETS.values()]
