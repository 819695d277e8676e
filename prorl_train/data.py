"""The training prompt stream: registry tasks mixed by weight, drawn deterministically.

Any task the registry can build (`gym:<dataset>`, `math500`, `custom:<file>?...`) and any suite
(`math`, `logic`, ...) is a training source; a suite's weight is split evenly over its tasks. The
reward of a prompt is its task's own verifier (`Task.score`), so training and `prorl-eval` never
disagree on correctness.

Training never sees the evaluation's problems: procedural tasks train on their own data seed
(`data.data_seed`), and the holdout (`data.holdout`) removes from the pool every problem whose
prompt equals one of the evaluation problems it names; at start, `decontamination.decontaminate`
then counts (and by default drops) the training problems whose text repeats, or shares a long word
n-gram with, a validation or evaluation problem. `write_prompts_manifest` records the hashes
of every training prompt in `<run>/train_prompts.json`, so `prorl-eval overlap` and
`prorl-eval sweep` can count how many evaluation prompts training saw.

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
from pathlib import Path
from typing import Any

from prorl_eval.errors import UserError
from prorl_eval.fingerprints import prompt_hash
from prorl_eval.jsonio import write_json_atomic
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


MANIFEST_FILE = "train_prompts.json"


@dataclass(frozen=True)
class Holdout:
    """Evaluation problems kept out of training: a `--tasks` value and how its problems are
    built (`prorl-eval pass-at-k`'s --data-seed and --limit). `spec` may be "auto" (the mix's
    procedural tasks) or "none"."""

    spec: str = "none"
    seed: int = 0
    limit: int | None = None

    def task_names(self, mix_tasks: dict[str, Task]) -> list[str]:
        if self.spec == "none":
            return []
        if self.spec == "auto":
            return [name for name, task in mix_tasks.items() if task.procedural]
        return expand_names(self.spec)

    def prompts(self, mix_tasks: dict[str, Task], data_dir: str | None) -> set[str]:
        """The prompts of every holdout problem."""
        options = TaskOptions(limit=self.limit, seed=self.seed, data_dir=data_dir)
        prompts = set()
        for name in self.task_names(mix_tasks):
            task = build_task(name, options)
            prompts.update(task.prompt(problem) for problem in task.load())
        return prompts


class DataMix:
    """Builds the tasks of a mix, loads their problems (minus the holdout's), and hands out
    prompts in a fixed order."""

    def __init__(
        self,
        mix: dict[str, float],
        options: TaskOptions,
        seed: int,
        holdout: Holdout | None = None,
    ) -> None:
        options.validate()
        self.weights = expand_mix(mix)
        self.names = list(self.weights)
        self.options = options
        self.seed = seed
        self.holdout = holdout or Holdout()
        self.tasks: dict[str, Task] = {name: build_task(name, options) for name in self.names}
        held = self.holdout.prompts(self.tasks, options.data_dir)
        self.problems: dict[str, list[Problem]] = {}
        self.held_out: dict[str, int] = {}
        for name, task in self.tasks.items():
            loaded = task.load()
            problems = [p for p in loaded if task.prompt(p) not in held]
            if not problems:
                why = "all are held out for evaluation (data.holdout)" if loaded else "none load"
                raise UserError(
                    f"training task {name} has no problems: {why}; check its data, data.limit, "
                    "data.data_seed or data.holdout."
                )
            self.problems[name] = problems
            self.held_out[name] = len(loaded) - len(problems)
        self.decontamination: dict[str, Any] | None = None  # set by decontamination.decontaminate
        self.drawn_total = 0
        self.drawn = dict.fromkeys(self.names, 0)
        self._orders: dict[tuple[str, int], list[int]] = {}

    def remove(self, name: str, positions: list[int]) -> None:
        """Take the problems at `positions` of task `name` out of the pool (before drawing)."""
        if not positions:
            return
        drop = set(positions)
        kept = [p for i, p in enumerate(self.problems[name]) if i not in drop]
        if not kept:
            raise UserError(
                f"training task {name} has no problems left: every one is shared with a "
                "validation or evaluation task (data.decontaminate=drop); train on other data."
            )
        self.problems[name] = kept
        self._orders = {k: v for k, v in self._orders.items() if k[0] != name}

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

    def prompts_manifest(self) -> dict[str, Any]:
        """What `train_prompts.json` holds: per task the sorted hashes of its training prompts,
        how many problems the holdout removed, and how the pool was built."""
        return {
            "prompt_hash": "sha256(prompt)[:16]",
            "tasks": {
                name: sorted({prompt_hash(task.prompt(p)) for p in self.problems[name]})
                for name, task in self.tasks.items()
            },
            "held_out": dict(self.held_out),
            "holdout": {
                "spec": self.holdout.spec,
                "tasks": self.holdout.task_names(self.tasks),
                "data_seed": self.holdout.seed,
                "limit": self.holdout.limit,
            },
            "data": {"limit": self.options.limit, "data_seed": self.options.seed},
            "decontamination": self.decontamination,
        }

    def write_prompts_manifest(self, run_dir: str | Path) -> Path:
        """Write `<run_dir>/train_prompts.json` (atomically)."""
        path = Path(run_dir) / MANIFEST_FILE
        write_json_atomic(path, self.prompts_manifest())
        return path
