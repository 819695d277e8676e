"""The task registry: task names on the command line → Task objects.

The registry is explicit tables, not an import side effect:

- `named_tasks()` — fixed benchmarks by stable name (`aime24`, `humaneval`, `ifeval`, ...);
- `FAMILIES` — a prefix and an argument: `gym:<dataset>`, `code:<hub id or file>`,
  `custom:<file or hub id>?...`;
- `SUITES` — names that expand to several tasks (`math`, `code`, `logic`, `prorl-paper`, ...).

Every builder receives the shared loading options (`TaskOptions`). Family modules are imported only
when one of their tasks is built, so `import prorl_eval` stays light.

Example:
    >>> tasks = resolve_tasks("gym:basic_arithmetic", TaskOptions(limit=3))  # doctest: +SKIP
    >>> [t.name for t in tasks]  # doctest: +SKIP
    ['gym:basic_arithmetic']
"""

from __future__ import annotations

import os
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

from prorl_eval.errors import UserError
from prorl_eval.tasks.base import Task

# The README's first command: the starter sets, on which the embedded model is sometimes right.
DEFAULT_TASKS = "starter"
GYM_DEFAULT_TASKS = "gym:basic_arithmetic,gym:spell_backward"


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
        if self.data_dir is not None and not Path(self.data_dir).is_dir():
            raise UserError(
                f"data directory {self.data_dir} does not exist; pass --data-dir (or set "
                "PRORL_DATA_DIR) to a folder laid out like shared/data (math/, ifeval/, ...)."
            )


def data_dir_from(option: str | None) -> str | None:
    """`--data-dir` if given, else `$PRORL_DATA_DIR`, else None (load from the hub)."""
    return option or os.environ.get("PRORL_DATA_DIR") or None


@dataclass(frozen=True)
class TaskEntry:
    """One catalogue line of `prorl-eval tasks`, with the builder of the task it describes."""

    name: str
    domain: str
    verifier: str
    source: str
    size: str
    build: Callable[[TaskOptions], Task]


@dataclass(frozen=True)
class Family:
    """A `prefix:<argument>` task family."""

    prefix: str
    domain: str
    verifier: str
    usage: str
    build: Callable[[str, TaskOptions], Task]


def _gym(argument: str, options: TaskOptions) -> Task:
    from prorl_eval.tasks.gym import DEFAULT_GYM_LIMIT, GymConfig, GymTask, parse_gym_argument

    dataset, params = parse_gym_argument(argument)
    limit = options.limit if options.limit is not None else DEFAULT_GYM_LIMIT
    return GymTask(GymConfig(dataset=dataset, limit=limit, seed=options.seed, params=params))


def _custom(argument: str, options: TaskOptions) -> Task:
    from prorl_eval.tasks.custom import build_custom_task

    return build_custom_task(argument, options)


def _starter(argument: str, options: TaskOptions) -> Task:
    from prorl_eval.tasks.starter import build_starter_task

    return build_starter_task(argument, options)


def _stdio(argument: str, options: TaskOptions) -> Task:
    from prorl_eval.tasks.code_stdio import build_stdio_task

    return build_stdio_task(argument, options)


FAMILIES: dict[str, Family] = {
    "gym": Family(
        "gym",
        "logic",
        "reasoning-gym score_answer",
        "gym:<dataset>[?<config field>=<value>&...] (see the list)",
        _gym,
    ),
    "code": Family(
        "code",
        "code",
        "sandbox: stdin/stdout (fraction of tests passed)",
        "code:<hub id, e.g. codeparrot/apps> or code:<file.jsonl[.gz]>",
        _stdio,
    ),
    "starter": Family(
        "starter",
        "knowledge / math",
        "contains | math | exact",
        "starter:<capitals|sums|products>[-train] (held-out split; -train: the training split)",
        _starter,
    ),
    "custom": Family(
        "custom",
        "custom",
        "exact | contains | regex | math | multiple_choice",
        "custom:<file.jsonl|.csv or hub id>?prompt=<col>&answer=<col>&verifier=<name>[&id=<col>]",
        _custom,
    ),
}

# Sizes of the fixed benchmarks (problems in the standard release).
_SIZES = {
    "aime24": "30",
    "aime25": "30",
    "amc23": "40",
    "math500": "500",
    "minerva": "272",
    "olympiadbench": "675",
    "humaneval": "164",
    "humaneval_plus": "164",
    "mbpp_plus": "378",
    "gpqa_diamond": "198",
    "ifeval": "541",
}


def named_tasks() -> dict[str, TaskEntry]:
    """Fixed benchmarks by stable name (scripts depend on these names)."""
    from prorl_eval.tasks import code, ifeval, math_tasks, stem

    entries: dict[str, TaskEntry] = {}
    for name, spec in math_tasks.MATH_TASKS.items():
        entries[name] = TaskEntry(
            name,
            "math",
            "math-verify",
            f"hub {spec.hub_id} or <data_dir>/math/{spec.local_file}",
            _SIZES.get(name, "?"),
            lambda options, n=name: math_tasks.build_math_task(n, options),
        )
    for table, build in (
        (code.CODE_TASKS, lambda n: lambda options: code.build_code_task(n, options)),
        (stem.STEM_TASKS, lambda n: lambda options: stem.build_stem_task(n, options)),
        (ifeval.IFEVAL_TASKS, lambda n: lambda options: ifeval.build_ifeval_task(options)),
    ):
        for name, info in table.items():
            entries[name] = TaskEntry(
                name,
                info["domain"],
                info["verifier"],
                info["source"],
                _SIZES.get(name, "?"),
                build(name),
            )
    return entries


def _gym_suites() -> dict[str, tuple[str, ...]]:
    from prorl_eval.tasks.gym import gym_categories

    groups = gym_categories()
    suites = {
        f"gym-{category}": tuple(f"gym:{n}" for n in names) for category, names in groups.items()
    }
    suites["logic"] = tuple(f"gym:{n}" for names in groups.values() for n in names)
    return suites


def suites() -> dict[str, tuple[str, ...]]:
    """Suite name → the task names it expands to."""
    from prorl_eval.tasks import code, math_tasks, stem
    from prorl_eval.tasks.starter import STARTER_SETS

    table: dict[str, tuple[str, ...]] = {"gym-default": tuple(GYM_DEFAULT_TASKS.split(","))}
    table["starter"] = tuple(f"starter:{name}" for name in STARTER_SETS)
    table["math"] = tuple(math_tasks.MATH_TASKS)
    table["code"] = tuple(code.CODE_TASKS)
    table["stem"] = tuple(stem.STEM_TASKS)
    table["ifeval"] = ("ifeval",)
    table.update(_gym_suites())
    table["prorl-paper"] = (
        *table["math"],
        *table["code"],
        *table["stem"],
        "ifeval",
        *table["logic"],
    )
    return table


def catalogue() -> list[TaskEntry]:
    """Every concrete task, for `prorl-eval tasks`."""
    from prorl_eval.tasks.gym import DEFAULT_GYM_LIMIT, gym_dataset_names
    from prorl_eval.tasks.starter import STARTER_SETS, build_starter_task

    entries = list(named_tasks().values())
    for name, spec in STARTER_SETS.items():
        for suffix, size in (("", "16"), ("-train", "train split")):
            entries.append(
                TaskEntry(
                    f"starter:{name}{suffix}",
                    spec["domain"],
                    spec["verifier"],
                    "prorl starter set (bundled)",
                    size,
                    lambda options, a=f"{name}{suffix}": build_starter_task(a, options),
                )
            )
    gym = FAMILIES["gym"]
    for dataset in gym_dataset_names():
        entries.append(
            TaskEntry(
                f"gym:{dataset}",
                gym.domain,
                gym.verifier,
                "reasoning-gym (generated offline)",
                f"--limit (default {DEFAULT_GYM_LIMIT})",
                lambda options, d=dataset: _gym(d, options),
            )
        )
    return entries


def list_task_names() -> list[str]:
    """Every concrete task name the registry lists."""
    return [entry.name for entry in catalogue()]


def expand_names(spec: str) -> list[str]:
    """Split a comma-separated `--tasks` value and expand suites (order kept, repeats dropped)."""
    table = suites()
    names: list[str] = []
    for raw in spec.split(","):
        name = raw.strip()
        if not name:
            continue
        for item in table.get(name, (name,)):
            if item not in names:
                names.append(item)
    if not names:
        raise UserError("--tasks is empty; name at least one task (see `prorl-eval tasks`).")
    return names


def build_task(name: str, options: TaskOptions) -> Task:
    """Build one task by name; an unknown name is a UserError listing what exists."""
    named = named_tasks()
    if name in named:
        return named[name].build(options)
    family, sep, argument = name.partition(":")
    if sep and family in FAMILIES and argument:
        return FAMILIES[family].build(argument, options)
    import difflib

    known = [*named, *suites(), *(f"{f}:" for f in FAMILIES)]
    close = difflib.get_close_matches(name, known, n=3)
    hint = f" Did you mean {', '.join(close)}?" if close else ""
    raise UserError(
        f"unknown task '{name}'.{hint} Run `prorl-eval tasks` to list tasks and suites."
    )


def resolve_tasks(spec: str, options: TaskOptions) -> list[Task]:
    """Build every task named in a `--tasks` value."""
    options.validate()
    return [build_task(name, options) for name in expand_names(spec)]


def resolve_available_tasks(spec: str, options: TaskOptions) -> tuple[list[Task], dict[str, str]]:
    """Build and load the tasks of a `--tasks` value, skipping suite members whose data cannot be
    loaded here (e.g. `code` offline without HumanEval+ data); a task named explicitly must load.

    Returns the tasks and {skipped task: the reason}.
    """
    options.validate()
    explicit = {raw.strip() for raw in spec.split(",")}
    tasks, skipped = [], {}
    for name in expand_names(spec):
        try:
            task = build_task(name, options)
            task.load()
        except UserError as exc:
            if name in explicit:
                raise
            skipped[name] = str(exc)
            continue
        tasks.append(task)
    if not tasks:
        raise UserError(f"no task of '{spec}' could be loaded: {next(iter(skipped.values()))}")
    return tasks, skipped
