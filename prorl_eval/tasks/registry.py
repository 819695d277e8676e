"""The task registry: task names on the command line → Task objects.

The registry is an explicit table, not an import side effect. A name is either a family prefix and
an argument (`gym:basic_arithmetic`) or a suite that expands to several names. Families take the
shared loading options (`limit`, `seed`) from `TaskOptions`.

Example:
    >>> tasks = resolve_tasks("gym:basic_arithmetic", TaskOptions(limit=3))  # doctest: +SKIP
    >>> [t.name for t in tasks]  # doctest: +SKIP
    ['gym:basic_arithmetic']
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

from prorl_eval.errors import UserError
from prorl_eval.tasks.base import Task
from prorl_eval.tasks.gym import DEFAULT_GYM_LIMIT, GymConfig, GymTask, gym_dataset_names

DEFAULT_TASKS = "gym:basic_arithmetic,gym:spell_backward"


@dataclass(frozen=True)
class TaskOptions:
    """Loading options shared by every task: how many problems, the data seed, and where offline
    copies of benchmark data live (`--data-dir` or `$PRORL_DATA_DIR`; None means the hub)."""

    limit: int | None = None
    seed: int = 0
    data_dir: str | None = None

    def validate(self) -> None:
        if self.limit is not None and self.limit <= 0:
            raise UserError(f"--limit must be a positive number of problems (got {self.limit}).")


def _gym(argument: str, options: TaskOptions) -> Task:
    limit = options.limit if options.limit is not None else DEFAULT_GYM_LIMIT
    return GymTask(GymConfig(dataset=argument, limit=limit, seed=options.seed))


# family prefix -> builder(argument after the colon, options)
FAMILIES: dict[str, Callable[[str, TaskOptions], Task]] = {
    "gym": _gym,
}

# suite name -> the task names it expands to
SUITES: dict[str, tuple[str, ...]] = {
    "gym-default": tuple(DEFAULT_TASKS.split(",")),
}


def list_task_names() -> list[str]:
    """Every concrete task name the registry can build."""
    return [f"gym:{name}" for name in gym_dataset_names()]


def expand_names(spec: str) -> list[str]:
    """Split a comma-separated `--tasks` value and expand suites (order kept, repeats dropped)."""
    names: list[str] = []
    for raw in spec.split(","):
        name = raw.strip()
        if not name:
            continue
        for item in SUITES.get(name, (name,)):
            if item not in names:
                names.append(item)
    if not names:
        raise UserError("--tasks is empty; name at least one task (see `prorl-eval tasks`).")
    return names


def build_task(name: str, options: TaskOptions) -> Task:
    """Build one task by name; an unknown name is a UserError listing what exists."""
    family, sep, argument = name.partition(":")
    if not sep or family not in FAMILIES or not argument:
        known = ", ".join(f"{f}:<name>" for f in FAMILIES) + ", " + ", ".join(SUITES)
        raise UserError(f"unknown task '{name}'; known tasks: {known} (see `prorl-eval tasks`).")
    return FAMILIES[family](argument, options)


def resolve_tasks(spec: str, options: TaskOptions) -> list[Task]:
    """Build every task named in a `--tasks` value."""
    options.validate()
    return [build_task(name, options) for name in expand_names(spec)]
