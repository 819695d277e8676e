"""The training prompt stream: registry tasks mixed by weight, drawn deterministically.

Any task the registry can build (`gym:<dataset>`, `math500`, `custom:<file>?...`) and any suite
(`math`, `logic`, ...) is a training source; a suite's weight is split evenly over its tasks. The
reward of a prompt is its task's own verifier (`Task.score`), so training and `prorl-eval` never
disagree on correctness.

Drawing is deterministic and resumable from a small JSON cursor:

- the task of draw k is the one furthest behind its share (largest `weight * (k + 1) - drawn`,
  ties to the first listed), so any window of draws follows the weights as closely as integers
  allow (no sampling noise in small batches);
- within a task, problems come in a fresh permutation per epoch, seeded by (seed, task, epoch).

Example:
    >>> mix = DataMix({"gym:basic_arithmetic": 1.0}, TaskOptions(limit=4), seed=0)  # doctest: +SKIP
    >>> [item.problem.id for item in mix.draw(2)]  # doctest: +SKIP
    ['2', '0']
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from prorl_eval.errors import UserError
from prorl_eval.seeds import derive_seed
from prorl_eval.tasks.base import Problem, Task
from prorl_eval.tasks.registry import TaskOptions, build_task, expand_names


@dataclass(frozen=True)
class PromptItem:
    """One drawn prompt: its task, problem, the user message, and its global draw index."""

    task: Task
    problem: Problem
    prompt: str
    index: int


def expand_mix(mix: dict[str, float]) -> dict[str, float]:
    """Task name → normalised weight, suites split evenly over their tasks (weights add up)."""
    weights: dict[str, float] = {}
    for name, weight in mix.items():
        names = expand_names(name)
        for task_name in names:
            weights[task_name] = weights.get(task_name, 0.0) + float(weight) / len(names)
    total = sum(weights.values())
    if not total > 0:
        raise UserError("data.mix has no positive weight.")
    return {name: w / total for name, w in weights.items()}


def pick_task(weights: list[float], drawn: list[int], k: int) -> int:
    """Index of the task furthest behind its share at draw k (0-based); ties to the lowest index."""
    deficits = [w * (k + 1) - d for w, d in zip(weights, drawn, strict=True)]
    return max(range(len(weights)), key=lambda i: (deficits[i], -i))


def epoch_order(seed: int, task: str, epoch: int, size: int) -> list[int]:
    """The problem order of one pass over a task (a seeded permutation of range(size))."""
    import numpy as np

    rng = np.random.default_rng(derive_seed(seed, "data", task, epoch))
    return [int(i) for i in rng.permutation(size)]


class DataMix:
    """Builds the tasks of a mix, loads their problems, and hands out prompts in a fixed order."""

    def __init__(self, mix: dict[str, float], options: TaskOptions, seed: int) -> None:
        options.validate()
        self.weights = expand_mix(mix)
        self.names = list(self.weights)
        self.options = options
        self.seed = seed
        self.tasks: dict[str, Task] = {name: build_task(name, options) for name in self.names}
        self.problems: dict[str, list[Problem]] = {}
        for name, task in self.tasks.items():
            problems = task.load()
            if not problems:
                raise UserError(f"training task {name} has no problems; check its data/limit.")
            self.problems[name] = problems
        self.drawn_total = 0
        self.drawn = dict.fromkeys(self.names, 0)
        self._orders: dict[tuple[str, int], list[int]] = {}

    def draw(self, count: int) -> list[PromptItem]:
        """The next `count` prompts of the stream (advances the cursor)."""
        items = []
        weights = [self.weights[n] for n in self.names]
        for _ in range(count):
            k = self.drawn_total
            name = self.names[pick_task(weights, [self.drawn[n] for n in self.names], k)]
            problem = self._problem(name, self.drawn[name])
            task = self.tasks[name]
            items.append(PromptItem(task, problem, task.prompt(problem), k))
            self.drawn[name] += 1
            self.drawn_total += 1
        return items

    def _problem(self, name: str, i: int) -> Problem:
        problems = self.problems[name]
        epoch, pos = divmod(i, len(problems))
        key = (name, epoch)
        if key not in self._orders:
            self._orders = {k: v for k, v in self._orders.items() if k[0] != name}
            self._orders[key] = epoch_order(self.seed, name, epoch, len(problems))
        return problems[self._orders[key][pos]]

    def state_dict(self) -> dict[str, Any]:
        """The cursor (JSON-serialisable): draws so far, overall and per task."""
        return {"drawn_total": self.drawn_total, "drawn": dict(self.drawn)}

    def load_state_dict(self, state: dict[str, Any]) -> None:
        """Restore a cursor; a checkpoint from a different mix is refused."""
        if sorted(state["drawn"]) != sorted(self.names):
            raise UserError(
                "the checkpoint's data mix has other tasks than this config's data.mix; resume "
                "with the run's own config."
            )
        self.drawn_total = int(state["drawn_total"])
        self.drawn = {name: int(state["drawn"][name]) for name in self.names}

    def domain(self, task_name: str) -> str:
        return self.tasks[task_name].domain
