"""A task's problems as a pandas frame, for notebooks: show any problem a boundary table names.

Example:
    >>> frame = prorl_eval.load_problems("math500", data_dir="../shared/data")  # doctest: +SKIP
    >>> frame.set_index("problem_id").loc["test/precalculus/807.json", "question"]  # doctest: +SKIP
"""

from __future__ import annotations

from typing import Any

from prorl_eval.tasks.base import answer_text
from prorl_eval.tasks.options import TaskOptions, data_dir_from


def load_problems(
    task: str, *, limit: int | None = None, data_seed: int = 0, data_dir: str | None = None
) -> Any:
    """The problems of one task (any `--tasks` name: `math500`, `gym:basic_arithmetic`,
    `livecodebench:release_v5?...`) as the harness builds them: a DataFrame with task,
    problem_id, question, prompt (the user message sent to the model), gold_answer (as sample rows
    record it), domain, one column per problem tag (`tag.level`, ...) and `metadata` (the task's
    own details; code tests stay out of it).

    `limit`, `data_seed` and `data_dir` mean what `--limit`, `--data-seed` and `--data-dir` mean, so
    the same values give the problems a run saw.
    """
    import pandas as pd

    from prorl_eval.tasks.registry import build_task

    options = TaskOptions(limit=limit, seed=data_seed, data_dir=data_dir_from(data_dir))
    options.validate()
    built = build_task(task, options)
    records = []
    for problem in built.load():
        record = {
            "task": built.name,
            "problem_id": problem.id,
            "question": problem.question,
            "prompt": built.prompt(problem),
            "gold_answer": answer_text(problem.answer) if built.extracts_answers else None,
            "domain": built.domain,
        }
        record.update({f"tag.{k}": v for k, v in built.tags(problem).items()})
        record["metadata"] = {k: v for k, v in problem.metadata.items() if k != "entry"}
        records.append(record)
    return pd.DataFrame(records)
