"""Score responses with the registry's verifiers, in parallel across cores.

The eval runner and `prorl-eval score` both go through `Scorer`. With `workers=0` it scores in the
calling process; otherwise a pool of worker processes each rebuilds the tasks it needs from their
names and loading options (tasks hold loaded datasets and are not shipped between processes) and
scores jobs in chunks. Worker processes are started with `spawn`, which is safe when the parent
already holds a model, CUDA context or vLLM engine.

Verifier time limits live in the verifiers themselves (math-verify's timeout, the code sandbox's
limits); the pool only spreads the work.

Example:
    >>> scorer = Scorer({"gym:leg_counting": TaskOptions(limit=5)}, workers=2)   # doctest: +SKIP
    >>> scorer.score([ScoreJob("gym:leg_counting", "0", "<answer>4</answer>")])  # doctest: +SKIP
"""

from __future__ import annotations

import os
from concurrent.futures import Future, ProcessPoolExecutor
from dataclasses import dataclass
from typing import Any

from prorl_eval.errors import UserError
from prorl_eval.tasks.base import Problem, Score, Task
from prorl_eval.tasks.registry import TaskOptions, build_task


@dataclass(frozen=True)
class ScoreJob:
    """Score `response` for problem `problem_id` of task `task`."""

    task: str
    problem_id: str
    response: str


class TaskCache:
    """Tasks built on first use, with their problems indexed by id."""

    def __init__(self, specs: dict[str, TaskOptions], tasks: dict[str, Task] | None = None):
        self.specs = specs
        self.tasks: dict[str, Task] = dict(tasks or {})
        self.problems: dict[str, dict[str, Problem]] = {}

    def problem(self, task_name: str, problem_id: str) -> tuple[Task, Problem]:
        if task_name not in self.tasks:
            if task_name not in self.specs:
                raise UserError(f"no loading options for task {task_name}.")
            self.tasks[task_name] = build_task(task_name, self.specs[task_name])
        task = self.tasks[task_name]
        if task_name not in self.problems:
            self.problems[task_name] = {p.id: p for p in task.load()}
        problems = self.problems[task_name]
        if problem_id not in problems:
            raise UserError(
                f"task {task_name} has no problem '{problem_id}' (it has {len(problems)}); check "
                "the task's --data-dir / --limit / --data-seed."
            )
        return task, problems[problem_id]

    def score(self, job: ScoreJob) -> Score:
        task, problem = self.problem(job.task, job.problem_id)
        return task.score(job.response, problem)


_WORKER_CACHE: TaskCache | None = None


def _init_worker(specs: dict[str, TaskOptions]) -> None:
    global _WORKER_CACHE
    os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")
    _WORKER_CACHE = TaskCache(specs)


def _score_in_worker(jobs: list[ScoreJob]) -> list[Score]:
    assert _WORKER_CACHE is not None
    return [_WORKER_CACHE.score(job) for job in jobs]


def default_workers() -> int:
    """One scoring process per core."""
    return os.cpu_count() or 1


class Scorer:
    """Scores jobs in this process (`workers=0`) or in a pool of `workers` processes."""

    def __init__(
        self,
        specs: dict[str, TaskOptions],
        *,
        workers: int = 0,
        tasks: dict[str, Task] | None = None,
    ) -> None:
        self.local = TaskCache(specs, tasks)
        self.workers = workers
        self._pool: ProcessPoolExecutor | None = None
        if workers > 0:
            import multiprocessing

            self._pool = ProcessPoolExecutor(
                max_workers=workers,
                mp_context=multiprocessing.get_context("spawn"),
                initializer=_init_worker,
                initargs=(specs,),
            )

    def submit(self, jobs: list[ScoreJob]) -> Future[list[Score]]:
        """Start scoring `jobs`; the future's result lists their scores in order."""
        if self._pool is None:
            done: Future[list[Score]] = Future()
            try:
                done.set_result([self.local.score(job) for job in jobs])
            except BaseException as exc:  # surfaced by .result(), like a pool's future
                done.set_exception(exc)
            return done
        chunk = max(1, -(-len(jobs) // (self.workers * 4)))
        parts = [
            self._pool.submit(_score_in_worker, jobs[i : i + chunk])
            for i in range(0, len(jobs), chunk)
        ]
        return _gather(parts)

    def score(self, jobs: list[ScoreJob]) -> list[Score]:
        return self.submit(jobs).result()

    def close(self) -> None:
        if self._pool is not None:
            self._pool.shutdown(cancel_futures=True)
            self._pool = None

    def __enter__(self) -> Scorer:
        return self

    def __exit__(self, *exc: Any) -> None:
        self.close()


def _gather(parts: list[Future[list[Score]]]) -> Future[list[Score]]:
    """One future that resolves to the concatenated results of `parts`, in order."""
    combined: Future[list[Score]] = Future()
    remaining = [len(parts)]

    def on_done(_: Future[list[Score]]) -> None:
        remaining[0] -= 1
        if remaining[0] == 0 and not combined.done():
            errors = [p.exception() for p in parts if p.exception() is not None]
            if errors:
                combined.set_exception(errors[0])
            else:
                combined.set_result([score for part in parts for score in part.result()])

    if not parts:
        combined.set_result([])
    for part in parts:
        part.add_done_callback(on_done)
    return combined
