"""Problem fingerprints: proof that two rows with the same (task, problem_id) saw the same problem.

Every sample row records ``problem_fingerprint``, the first 16 hex digits of the SHA-256 of the
problem's prompt (the user message the task builds) and its gold answer. Runs are compared problem
by problem through their ids, so an id that names another problem in another process, another
library version or another dataset revision would corrupt every comparison without a sign. Before
rows of several sources are compared (a resumed run and its folder, a run and the problems a scorer
rebuilds, the base and the RL runs of an analysis), their fingerprints are compared; rows written
before fingerprints existed (no field, or an empty one) are not checked.

A disagreement is a :class:`ProblemMismatch` (a `UserError`, so the CLI prints one line and exits
2) unless the caller allows it, in which case it becomes a warning with the same counts.

Example:
    >>> problem_fingerprint("What is 2 + 2?", "4") == problem_fingerprint("What is 2 + 2?", "4")
    True
    >>> problem_fingerprint("What is 2 + 2?", "4") == problem_fingerprint("What is 2 + 3?", "4")
    False
"""

from __future__ import annotations

import hashlib
import json
import warnings
from collections import Counter
from collections.abc import Iterable, Mapping
from typing import Any

from prorl_eval.errors import UserError, UserNotice

FIELD = "problem_fingerprint"
ALLOW_FLAG = "--allow-problem-mismatch"
ProblemKey = tuple[str, str]


class ProblemMismatch(UserError):
    """Rows with the same (task, problem_id) were made from different problems."""


class ProblemMismatchWarning(UserNotice):
    """A problem mismatch the caller chose to go on with."""


def problem_fingerprint(prompt: str, answer: Any) -> str:
    """16 hex digits of SHA-256 over the prompt and the gold answer (JSON, keys sorted)."""
    payload = json.dumps(
        {"prompt": prompt, "answer": answer}, sort_keys=True, ensure_ascii=False, default=str
    )
    return hashlib.sha256(payload.encode("utf-8")).hexdigest()[:16]


def prompt_hash(prompt: str) -> str:
    """16 hex digits of SHA-256 over a prompt alone (training/evaluation overlap is by prompt)."""
    return hashlib.sha256(prompt.encode("utf-8")).hexdigest()[:16]


def task_fingerprint(task: Any, problem: Any) -> str:
    """The fingerprint of a registry task's problem, as the runner records it."""
    return problem_fingerprint(task.prompt(problem), problem.answer)


def collect(rows: Iterable[Mapping[str, Any]]) -> tuple[dict[ProblemKey, str], set[ProblemKey]]:
    """({(task, problem_id): fingerprint}, keys whose rows disagree among themselves).

    Rows without a fingerprint are skipped; for a conflicting key the first fingerprint is kept.
    """
    seen: dict[ProblemKey, str] = {}
    conflicts: set[ProblemKey] = set()
    for row in rows:
        value = row.get(FIELD)
        if not isinstance(value, str) or not value:
            continue
        key = (str(row["task"]), str(row["problem_id"]))
        first = seen.setdefault(key, value)
        if first != value:
            conflicts.add(key)
    return seen, conflicts


def differing(reference: Mapping[ProblemKey, str], other: Mapping[ProblemKey, str]) -> set:
    """Keys present in both mappings whose fingerprints differ."""
    return {key for key in reference.keys() & other.keys() if reference[key] != other[key]}


def describe(keys: Iterable[ProblemKey], compared: int) -> str:
    """'12 of 60 problems (gym:knight_swap 3, gym:word_ladder 9; e.g. gym:knight_swap #2)'."""
    keys = sorted(keys)
    per_task = Counter(task for task, _ in keys)
    tasks = ", ".join(f"{task} {count}" for task, count in sorted(per_task.items()))
    first_task, first_id = keys[0]
    return f"{len(keys)} of {compared} problems ({tasks}; e.g. {first_task} #{first_id})"


def report_mismatch(
    keys: set[ProblemKey], compared: int, what: str, *, allow: bool, fix: str | None = None
) -> str | None:
    """Raise ProblemMismatch for `keys` (or warn, and return the message, when `allow`).

    `what` says which sources disagree, e.g. "runs base and step-10"; `fix` replaces the default
    advice (regenerate, or pass --allow-problem-mismatch).
    """
    if not keys:
        return None
    message = (
        f"{what} disagree on the problem behind {describe(keys, compared)}: the same id names "
        "different problems (a dataset or library changed, or the data seed differs)"
    )
    if not allow:
        fix = fix or (
            f"regenerate one side with the same data, or pass {ALLOW_FLAG} to compare them anyway"
        )
        raise ProblemMismatch(f"{message}; {fix}.")
    warnings.warn(f"{message}; compared anyway ({ALLOW_FLAG}).", ProblemMismatchWarning, 2)
    return message


def check_rows(
    rows: Iterable[Mapping[str, Any]], where: str, *, allow: bool = False
) -> dict[ProblemKey, str]:
    """Fingerprints of one source's rows; its own disagreements reported (see `report_mismatch`)."""
    seen, conflicts = collect(rows)
    report_mismatch(conflicts, len(seen), f"rows of {where}", allow=allow)
    return seen


def check_sources(
    sources: Mapping[str, Mapping[ProblemKey, str]], *, allow: bool = False
) -> list[str]:
    """Compare the fingerprints of several labelled sources with the first one.

    Returns the warnings (when `allow`); raises ProblemMismatch otherwise.
    """
    labels = list(sources)
    messages = []
    for label in labels[1:]:
        keys = differing(sources[labels[0]], sources[label])
        shared = len(sources[labels[0]].keys() & sources[label].keys())
        message = report_mismatch(keys, shared, f"runs {labels[0]} and {label}", allow=allow)
        if message:
            messages.append(message)
    return messages
