"""What a benchmark task is: problems, a prompt per problem, and one verifier.

The verifier, `Task.score(response, problem) -> Score`, is the single source of truth for
correctness: the eval harness calls it and the trainer's reward is it, so the two never disagree.

Example:
    >>> score = Score(1.0, "answer 42 matches")
    >>> score.value
    1.0
"""

from __future__ import annotations

import json
import re
from abc import ABC, abstractmethod
from dataclasses import dataclass, field
from typing import Any

_THINK = re.compile(r"<think>.*?</think>", flags=re.DOTALL)
_BARE_LIST_MARKER = re.compile(r"\(?(\d+)[.)]?")  # a whole line that is only "3." / "3)" / "3"
_LIST_ITEM = re.compile(r"\(?(\d+)[.)]\s")


@dataclass(frozen=True)
class Problem:
    """One benchmark item. `id` is the dataset's own id where it has one, else the row index."""

    id: str
    question: str
    answer: Any = None
    metadata: dict[str, Any] = field(default_factory=dict)


@dataclass(frozen=True)
class Score:
    """A verifier's verdict: a value in [0, 1], a short human-readable reason, optional
    structured details (`extra`, e.g. IFEval's per-instruction results) copied into the row, and
    the answer the verifier extracted and compared (`answer`, as text; None when it found none or
    compares no answer, as code and IFEval) with how it found it (`extraction`). Majority voting
    (maj@k) counts `answer`s."""

    value: float
    reason: str
    extra: dict[str, Any] = field(default_factory=dict)
    answer: str | None = None
    extraction: str = ""

    def __post_init__(self) -> None:
        if not 0.0 <= self.value <= 1.0:
            raise ValueError(f"score {self.value} outside [0, 1]")


class Task(ABC):
    """A registry task: subclasses set name, domain and version, and implement three methods."""

    name: str
    domain: str
    version: str
    threshold: float = 1.0  # a sample is `correct` when score >= threshold
    source: str = ""
    # Problems generated from the data seed (Reasoning Gym): another seed gives other problems,
    # so training can use a seed of its own instead of the evaluation's.
    procedural: bool = False
    # The verifier extracts an answer to compare (Score.answer), so maj@k can vote; code and
    # instruction-following tasks compare none.
    extracts_answers: bool = True
    # Scores between 0 and 1 carry meaning (share of tests passed, Reasoning Gym's partial
    # credit): the trainer's dynamic sampling then keeps a group whose rewards differ even
    # when none of them is correct.
    partial_credit: bool = False

    @abstractmethod
    def load(self) -> list[Problem]:
        """The task's problems, in a stable order with unique ids."""

    @abstractmethod
    def prompt(self, problem: Problem) -> str:
        """The user message sent to the model for this problem."""

    def tags(self, problem: Problem) -> dict[str, str]:
        """The problem's tags that results break down by (`--by level`): MATH-500's level and
        subject, LiveCodeBench's difficulty, Reasoning Gym's category, ...; {} by default."""
        return {}

    @abstractmethod
    def score(self, response: str, problem: Problem) -> Score:
        """Verify a response; must be pure (same inputs, same score)."""

    def summary_metrics(self, rows: list[dict[str, Any]]) -> dict[str, Any]:
        """Task-specific metrics added to this task's entry in results.json (default: none).

        `rows` are the task's sample rows (with `score`, `correct`, `extra`, ...).
        """
        return {}

    def describe(self) -> dict[str, Any]:
        """The fields recorded in a run's manifest to tell whether two runs used the same task."""
        return {"name": self.name, "domain": self.domain, "version": self.version}


def answer_text(answer: Any) -> str | None:
    """A problem's gold answer as a sample row records it: text as is, other values as JSON,
    None when the problem has no single reference answer (code tests, validity-checked puzzles).

    >>> answer_text("4"), answer_text(["a", "b"]), answer_text(None)
    ('4', '["a", "b"]', None)
    """
    if answer is None or isinstance(answer, str):
        return answer
    return json.dumps(answer, ensure_ascii=False, default=str)


def strip_reasoning(response: str) -> str:
    """Remove `<think>…</think>` traces (and an unterminated trailing one) before extraction."""
    text = _THINK.sub("", response)
    if "<think>" in text:
        text = text.split("<think>", 1)[0]
    return text


def last_answer_line(text: str) -> str:
    """The last non-empty line of `text`: the answer of last resort when a response states none.

    An unfinished numbered-list item is skipped. A response cut off after "2. 3 + 4 = 7" then
    "3." (or "3", the cut falling before the dot) ends with the marker of item 3, which is no
    answer, yet it equals a gold answer of 3. The number that continues the list is read as its
    marker even where it was meant as the answer: a last-resort rule should rather miss an answer
    than invent one. A bare "3." after any other line is still an answer.

    >>> last_answer_line("1. 4 - 1 = 3\\n2. 3 + 4 = 7\\n3."), last_answer_line("The sum is\\n3.")
    ('2. 3 + 4 = 7', '3.')
    >>> last_answer_line("1. 4 - 1 = 4\\n2. 42 = 4 * 5\\n3")
    '2. 42 = 4 * 5'
    """
    lines = [line.strip() for line in text.splitlines() if line.strip()]
    if len(lines) >= 2:
        marker, previous = _BARE_LIST_MARKER.fullmatch(lines[-1]), _LIST_ITEM.match(lines[-2])
        if marker and previous and int(marker.group(1)) == int(previous.group(1)) + 1:
            lines.pop()
    return lines[-1] if lines else ""
