"""What a task module declares about its tasks: one `TaskEntry` per concrete task and one
`Family` per `prefix:<argument>` family.

Each task module states a task's name, domain, verifier, data source, size and builder once, in
its own `catalogue_entries()` (and `FAMILY`); `registry` only joins those lists. Like
`options`, this module sits below the task modules, so declaring needs no registry import.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

from prorl_eval.tasks.base import Task
from prorl_eval.tasks.options import TaskOptions


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
    """A `prefix:<argument>` task family: what `prorl-eval tasks` says of it, and its builder."""

    prefix: str
    domain: str
    verifier: str
    usage: str
    build: Callable[[str, TaskOptions], Task]
