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


@dataclass(frozen=True)
class Problem:
    """One benchmark item. `id` is the dataset's own id where it has one, else the row index."""

    id: str
    question: str
    answer: Any = None
    metadata: dict[str, Any] = field(default_factory=dict)


@dataclass(frozen=True)
class Score:
    """A verifier's verdict: a value in [0, 1], a short human-readable reason, and optional
    structured details (`extra`, e.g. IFEval's per-instruction results) copied into the row."""

    value: float
    reason: str
    extra: dict[str, Any] = field(default_factory=dict)

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

    @abstractmethod
    def load(self) -> list[Problem]:
        """The task's problems, in a stable order with unique ids."""

    @abstractmethod
    def prompt(self, problem: Problem) -> str:
        """The user message sent to the model for this problem."""

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
