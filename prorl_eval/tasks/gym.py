"""Reasoning Gym tasks: procedurally generated logic and arithmetic puzzles, scored continuously.

`gym:<dataset>` builds `limit` problems of a Reasoning Gym dataset with a fixed data seed (so base
and RL runs see the same puzzles), asks for the answer inside `<answer></answer>` tags, and scores
with the dataset's own `score_answer` (a value in [0, 1]; partial credit where the dataset
gives it).

Five datasets (graph_color, propositional_logic, rubiks_cube, boxnet, rush_hour) have no single
answer: their scorer checks a response for validity, so their own `answer` (None) scores 0. For the
first three the example solution in the entry's metadata is the reference answer (it scores 1.0);
boxnet and rush_hour have none (`Problem.answer` is None) and are scored by validity alone.

Answer extraction, in order: the last `<answer>…</answer>` block, else the last `\\boxed{…}`, else
the last non-empty line of the response; the reason says which one was used.

Example:
    >>> task = GymTask(GymConfig("basic_arithmetic", limit=5, seed=0))    # doctest: +SKIP
    >>> task.score("<answer>4</answer>", task.load()[0]).value  # doctest: +SKIP
"""

from __future__ import annotations

import json
import re
from dataclasses import dataclass
from importlib import metadata
from typing import Any

from prorl_eval.errors import UserError
from prorl_eval.tasks.base import Problem, Score, Task, strip_reasoning

DEFAULT_GYM_LIMIT = 50
ANSWER_INSTRUCTION = (
    "Think step by step, then give only the final answer inside <answer></answer> tags, "
    "for example <answer>42</answer>."
)
_ANSWER = re.compile(r"<answer>\s?(.*?)\s?</answer>", flags=re.DOTALL)


# Datasets whose entries carry no single answer (`answer` is None): their `score_answer` checks a
# response for validity (a legal colouring, a solving move sequence, ...), so scoring model output
# works, but the entry's own answer scores 0. Three ship an example solution in their metadata,
# which we use as the reference answer; boxnet and rush_hour have none.
REFERENCE_IN_METADATA = {
    "graph_color": "possible_answer",
    "propositional_logic": "example_answer",
    "rubiks_cube": "example_correct_answer",
}
NO_REFERENCE_ANSWER = ("boxnet", "rush_hour")
# Needs a list of member datasets to be useful; mixes are offered as suites instead.
_EXCLUDED = ("composite",)


def gym_dataset_names() -> list[str]:
    """Every Reasoning Gym dataset usable as a task by name."""
    from reasoning_gym.factory import DATASETS

    return sorted(name for name in DATASETS if name not in _EXCLUDED)


def gym_categories() -> dict[str, list[str]]:
    """Reasoning Gym's own grouping of its datasets (arithmetic, algorithmic, games, ...)."""
    from reasoning_gym.factory import DATASETS

    groups: dict[str, list[str]] = {}
    for name in gym_dataset_names():
        category = DATASETS[name][0].__module__.split(".")[1]
        groups.setdefault(category, []).append(name)
    return groups


def reference_answer(dataset: str, entry: dict[str, Any]) -> str | None:
    """The answer to show as gold: the entry's own, else the example solution in its metadata."""
    if entry.get("answer") is not None:
        return str(entry["answer"])
    key = REFERENCE_IN_METADATA.get(dataset)
    if key is None or entry.get("metadata", {}).get(key) is None:
        return None
    value = entry["metadata"][key]
    return value if isinstance(value, str) else json.dumps(value)


@dataclass(frozen=True)
class GymConfig:
    """Which Reasoning Gym dataset, how many problems, and the seed that generates them."""

    dataset: str
    limit: int = DEFAULT_GYM_LIMIT
    seed: int = 0

    def validate(self) -> None:
        names = gym_dataset_names()
        if self.dataset not in names:
            import difflib

            close = difflib.get_close_matches(self.dataset, names, n=3)
            hint = f" Did you mean {', '.join('gym:' + c for c in close)}?" if close else ""
            raise UserError(
                f"unknown Reasoning Gym dataset '{self.dataset}'.{hint} "
                "Run `prorl-eval tasks` to list them."
            )
        if self.limit <= 0:
            raise UserError(f"gym:{self.dataset} would have no problems: --limit must be > 0.")


def _extract(response: str) -> tuple[str, str]:
    """Return (answer, how it was found)."""
    text = strip_reasoning(response)
    tagged = _ANSWER.findall(text)
    if tagged:
        return tagged[-1].strip(), "<answer> tag"
    boxed = _last_boxed(text)
    if boxed is not None:
        return boxed, "\\boxed{}"
    lines = [line.strip() for line in text.strip().splitlines() if line.strip()]
    return (lines[-1] if lines else ""), "last line (no <answer> tag)"


def _last_boxed(text: str) -> str | None:
    start = text.rfind("\\boxed{")
    if start < 0:
        return None
    depth, i = 0, start + len("\\boxed{") - 1
    for j in range(i, len(text)):
        if text[j] == "{":
            depth += 1
        elif text[j] == "}":
            depth -= 1
            if depth == 0:
                return text[i + 1 : j].strip()
    return None


class GymTask(Task):
    """One Reasoning Gym dataset as a registry task."""

    domain = "logic"

    def __init__(self, config: GymConfig) -> None:
        config.validate()
        self.config = config
        self.name = f"gym:{config.dataset}"
        version = metadata.version("reasoning-gym")
        # The size is not part of the version: item i depends only on (seed, i), so a run can grow.
        self.version = f"reasoning-gym=={version};seed={config.seed}"
        self.source = "reasoning-gym (generated offline)"
        self._dataset: Any = None

    @property
    def dataset(self) -> Any:
        if self._dataset is None:
            import reasoning_gym

            self._dataset = reasoning_gym.create_dataset(
                self.config.dataset, size=self.config.limit, seed=self.config.seed
            )
        return self._dataset

    def load(self) -> list[Problem]:
        problems = []
        for index in range(len(self.dataset)):
            entry = self.dataset[index]
            problems.append(
                Problem(
                    id=str(index),
                    question=entry["question"],
                    answer=reference_answer(self.config.dataset, entry),
                    metadata={"entry": entry},
                )
            )
        return problems

    def prompt(self, problem: Problem) -> str:
        return f"{problem.question}\n\n{ANSWER_INSTRUCTION}"

    def score(self, response: str, problem: Problem) -> Score:
        answer, how = _extract(response)
        if not answer:
            return Score(0.0, "empty response")
        entry = problem.metadata.get("entry") or {"answer": problem.answer, "metadata": {}}
        try:
            value = float(self.dataset.score_answer(answer, entry))
        except Exception as exc:  # a scorer crash on odd output is a wrong answer, not a halt
            return Score(0.0, f"scorer error on {how} answer: {type(exc).__name__}")
        value = min(1.0, max(0.0, value))
        shown = answer if len(answer) <= 60 else answer[:57] + "..."
        return Score(value, f"{how} answer {shown!r} scored {value:g} by {self.name}")
