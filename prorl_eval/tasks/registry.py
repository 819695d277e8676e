"""The task registry: task names on the command line → Task objects.

The registry keeps no table of its own: each task module declares its tasks once, with
`catalogue_entries()` (one `TaskEntry` per concrete task: name, domain, verifier, data source,
size, builder) and, for a family, `FAMILY` (prefix, domain, verifier, usage, builder). The registry
imports those modules lazily, when a list is asked for, and joins them:

- `named_tasks()` — fixed benchmarks by stable name (`aime24`, `humaneval`, `ifeval`, ...);
- `families()` — a prefix and an argument: `gym:<dataset>`, `code:<hub id or file>`,
  `livecodebench:<release or file>?...`, `starter:<set>`, `custom:<file or hub id>?...`;
- `catalogue()` — every concrete task, as `prorl-eval tasks` lists them (the fixed benchmarks,
  then the starter sets and the Reasoning Gym datasets);
- `suites()` — names that expand to several tasks (`math`, `code`, `logic`, `prorl-paper`, ...).

Every builder receives the shared loading options (`TaskOptions`, from `tasks.options`; re-exported
here for the many callers that import it with the registry). Importing this module imports no task
module, so `import prorl_eval` stays light and no task module depends on the registry.

Example:
    >>> tasks = resolve_tasks("gym:basic_arithmetic", TaskOptions(limit=3))  # doctest: +SKIP
    >>> [t.name for t in tasks]  # doctest: +SKIP
    ['gym:basic_arithmetic']
"""

from __future__ import annotations

import functools
import importlib
from types import ModuleType

from prorl_eval.errors import UserError
from prorl_eval.tasks.base import Task
from prorl_eval.tasks.entries import Family, TaskEntry
from prorl_eval.tasks.options import TaskOptions, data_dir_from

__all__ = [
    "DEFAULT_TASKS",
    "GYM_DEFAULT_TASKS",
    "Family",
    "TaskEntry",
    "TaskOptions",
    "build_task",
    "catalogue",
    "catalogue_domain",
    "catalogue_domains",
    "catalogue_position",
    "data_dir_from",
    "expand_names",
    "families",
    "named_tasks",
    "resolve_available_tasks",
    "resolve_tasks",
    "suites",
]

# The README's first command: the starter sets, on which the embedded model is sometimes right.
DEFAULT_TASKS = "starter"
GYM_DEFAULT_TASKS = "gym:basic_arithmetic,gym:spell_backward"

# Modules under prorl_eval.tasks, in listing order. Fixed benchmarks are built by name; the members
# of a family are listed one by one but built through their family; the last have a family only.
_NAMED_MODULES = ("math_tasks", "code", "stem", "ifeval", "train_sources")
_MEMBER_MODULES = ("starter", "gym")
_FAMILY_MODULES = ("gym", "code_stdio", "code_lcb", "starter", "custom")


def _module(name: str) -> ModuleType:
    return importlib.import_module(f"prorl_eval.tasks.{name}")


def _entries(*modules: str) -> list[TaskEntry]:
    """The catalogue entries the given task modules declare, concatenated in order."""
    return [entry for name in modules for entry in _module(name).catalogue_entries()]


def named_tasks() -> dict[str, TaskEntry]:
    """Fixed benchmarks by stable name (scripts depend on these names)."""
    return {entry.name: entry for entry in _entries(*_NAMED_MODULES)}


def families() -> dict[str, Family]:
    """`prefix:<argument>` families by prefix."""
    declared = (_module(name).FAMILY for name in _FAMILY_MODULES)
    return {family.prefix: family for family in declared}


def catalogue() -> list[TaskEntry]:
    """Every concrete task, for `prorl-eval tasks`: the fixed benchmarks, then family members."""
    return _entries(*_NAMED_MODULES, *_MEMBER_MODULES)


def _names(module: str) -> tuple[str, ...]:
    return tuple(entry.name for entry in _entries(module))


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
    from prorl_eval.tasks.starter import STARTER_SETS

    table: dict[str, tuple[str, ...]] = {"gym-default": tuple(GYM_DEFAULT_TASKS.split(","))}
    table["starter"] = tuple(f"starter:{name}" for name in STARTER_SETS)
    table["math"] = _names("math_tasks")
    table["code"] = _names("code")
    table["stem"] = _names("stem")
    table["ifeval"] = _names("ifeval")
    table.update(_gym_suites())
    table["prorl-paper"] = (
        *table["math"],
        *table["code"],
        *table["stem"],
        *table["ifeval"],
        *table["logic"],
    )
    return table


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
    prefixes = families()
    if sep and family in prefixes and argument:
        return prefixes[family].build(argument, options)
    import difflib

    known = [*named, *suites(), *(f"{f}:" for f in prefixes)]
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


# ----------------------------------------------------------------------------- lookups


@functools.cache
def _listing() -> tuple[TaskEntry, ...]:
    """`catalogue()` once per process, for the lookups below (the list of gym datasets is slow)."""
    return tuple(catalogue())


@functools.cache
def _positions() -> dict[str, int]:
    """{task name: its position in `catalogue()`}."""
    return {entry.name: position for position, entry in enumerate(_listing())}


def _listed_name(name: str) -> str | None:
    """The catalogue entry a task name stands for: itself, else its base name without config
    settings (`gym:chain_sum?max_digits=1`), else the name before ':' (`aime24:hard`)."""
    positions = _positions()
    for candidate in (name, name.partition("?")[0], name.partition(":")[0]):
        if candidate in positions:
            return candidate
    return None


def catalogue_domain(name: str) -> str | None:
    """The domain the catalogue gives a task name (its entry's, else its family's), or None.

    A run records each task's own domain in run.json; this is the fallback for runs without it.

    Example:
        >>> [catalogue_domain(n) for n in ("aime24:hard", "code:apps", "starter:sums", "xyz")]
        ['math', 'code', 'math', None]
    """
    listed = _listed_name(name)
    if listed is not None:
        return _listing()[_positions()[listed]].domain
    family, sep, _ = name.partition(":")
    prefixes = families()
    return prefixes[family].domain if sep and family in prefixes else None


def catalogue_position(name: str) -> int:
    """Where a task comes in catalogue order: its entry's position (as `catalogue_domain` finds
    the entry), else after every entry by its family's position, else after every family."""
    positions = _positions()
    listed = _listed_name(name)
    if listed is not None:
        return positions[listed]
    prefixes = list(families())
    family = name.partition(":")[0] if ":" in name else None
    return len(positions) + (prefixes.index(family) if family in prefixes else len(prefixes))


def catalogue_domains() -> list[str]:
    """Every domain the catalogue names, in order of first appearance (entries, then families)."""
    found = [entry.domain for entry in _listing()] + [f.domain for f in families().values()]
    return list(dict.fromkeys(found))
