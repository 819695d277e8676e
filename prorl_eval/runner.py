"""The eval loop: problems × n samples → generate → score → append to samples.jsonl → results.

`run_pass_at_k` is what `prorl-eval pass-at-k` calls. It opens the run folder (refusing mismatched
settings), works out which (task, problem_id, sample_idx) rows are missing, loads the model only if
something is missing, generates the n samples of each prompt together in batches, scores each
response with its task's verifier, and appends the rows the moment they are scored. Re-running the
same command after an interruption therefore generates only what is missing.

Each request gets a seed derived from (run seed, task, problem id, sample indices), so a resumed
request never replays the random stream of the samples it is completing.

Scale-out settings (`tensor_parallel_size`, `data_parallel_size`, or the `openai` backend with a
server URL) change where samples are generated, not what they are: they are recorded in run.json's
`generation` list but do not decide whether a folder can be resumed. For the `openai` backend the
served model name joins the model identity, since it, not the local tokenizer, names the weights.

Example:
    >>> results = run_pass_at_k(EvalConfig(tasks="gym:leg_counting", limit=5, n=4, out="runs/x"))
    ... # doctest: +SKIP
"""

from __future__ import annotations

import datetime as dt
import time
from collections import deque
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from typing import Any

from prorl_eval.checkpoints import ModelRef, resolve_model
from prorl_eval.errors import UserError
from prorl_eval.fingerprints import task_fingerprint
from prorl_eval.inference import GenerationRequest, Generator, SamplingConfig, make_generator
from prorl_eval.inference import choose_backend as resolve_backend
from prorl_eval.inference.base import length_order
from prorl_eval.inference.hf import DEFAULT_MAX_BATCH_TOKENS
from prorl_eval.inference.openai_server import DEFAULT_CONCURRENCY
from prorl_eval.inference.parallel import gpu_slices, visible_gpus
from prorl_eval.models import DEFAULT_MODEL
from prorl_eval.passk import DEFAULT_BOOTSTRAP_RESAMPLES, DEFAULT_BOOTSTRAP_SEED
from prorl_eval.results import summarize
from prorl_eval.runstore import RunStore
from prorl_eval.schema import SampleRow, sample_key
from prorl_eval.scoring import ScoreJob, Scorer
from prorl_eval.seeds import derive_seed
from prorl_eval.tasks.base import Problem, Task, answer_text
from prorl_eval.tasks.registry import DEFAULT_TASKS, TaskOptions, resolve_available_tasks

GeneratorFactory = Callable[[str, ModelRef], Generator]


@dataclass(frozen=True)
class EvalConfig:
    """Everything `prorl-eval pass-at-k` needs to generate and score a run."""

    out: str
    model: str = DEFAULT_MODEL
    tasks: str = DEFAULT_TASKS
    n: int = 16
    ks: tuple[int, ...] = (1, 2, 4, 8, 16)
    limit: int | None = None
    data_seed: int = 0
    data_dir: str | None = None
    score_workers: int = 0
    backend: str = "auto"
    sampling: SamplingConfig = field(default_factory=SamplingConfig)
    batch_size: int = 64
    max_batch_tokens: int = DEFAULT_MAX_BATCH_TOKENS
    dtype: str = "auto"
    max_model_len: int | None = None
    bootstrap_resamples: int = DEFAULT_BOOTSTRAP_RESAMPLES
    bootstrap_seed: int = DEFAULT_BOOTSTRAP_SEED
    tensor_parallel_size: int = 1
    data_parallel_size: int = 1
    base_url: str | None = None
    served_model: str | None = None
    api_key: str | None = None
    concurrency: int = DEFAULT_CONCURRENCY
    by: tuple[str, ...] = ()  # problem tags results break down by (`--by level,subject`)
    require_maj: bool = False  # `--maj`: maj@k must be computable for every task

    def validate(self) -> None:
        if self.n <= 0:
            raise UserError(f"--n must be a positive number of samples (got {self.n}).")
        too_big = [k for k in self.ks if k > self.n]
        if too_big:
            raise UserError(f"k={too_big[0]} exceeds --n {self.n}; use k <= n or raise --n.")
        if self.batch_size <= 0:
            raise UserError(f"--batch-size must be positive (got {self.batch_size}).")
        if self.max_batch_tokens <= 0:
            raise UserError(f"--max-batch-tokens must be positive (got {self.max_batch_tokens}).")
        for flag, value in (
            ("--tensor-parallel-size", self.tensor_parallel_size),
            ("--data-parallel-size", self.data_parallel_size),
            ("--concurrency", self.concurrency),
        ):
            if value < 1:
                raise UserError(f"{flag} must be at least 1 (got {value}).")
        self.sampling.validate()

    def validate_backend(self, backend: str) -> None:
        """Refuse options that make no sense for the resolved backend."""
        if backend == "openai":
            if not self.base_url:
                raise UserError("--backend openai needs --base-url, e.g. http://localhost:8000/v1.")
            if self.tensor_parallel_size > 1 or self.data_parallel_size > 1:
                raise UserError(
                    "--tensor-parallel-size and --data-parallel-size set up local engines; with "
                    "--backend openai configure them on the server (or run more servers) and "
                    "raise --concurrency."
                )
            return
        for flag, value in (("--base-url", self.base_url), ("--served-model", self.served_model)):
            if value is not None:
                raise UserError(f"{flag} needs --backend openai (got --backend {backend}).")
        if backend == "hf" and self.tensor_parallel_size > 1:
            raise UserError(
                "--tensor-parallel-size needs --backend vllm; the hf backend scales with "
                "--data-parallel-size."
            )
        if self.tensor_parallel_size > 1 or self.data_parallel_size > 1:
            gpus = visible_gpus()
            if gpus:
                gpu_slices(gpus, self.tensor_parallel_size, self.data_parallel_size)
            elif self.tensor_parallel_size > 1:
                raise UserError(
                    f"--tensor-parallel-size {self.tensor_parallel_size} needs GPUs and none "
                    "are visible; use --data-parallel-size to use more CPU cores."
                )

    def generation(self, backend: str) -> dict[str, Any]:
        """Where this command generates: recorded in run.json, never compared on resume."""
        if backend == "openai":
            return {"backend": backend, "base_url": self.base_url}
        return {
            "backend": backend,
            "tensor_parallel_size": self.tensor_parallel_size,
            "data_parallel_size": self.data_parallel_size,
        }


@dataclass
class WorkItem:
    """A problem and the sample indices it still lacks."""

    task: Task
    problem: Problem
    missing: list[int]


def plan_work(tasks: list[Task], n: int, done: set[tuple[str, str, int]]) -> list[WorkItem]:
    """List every problem with missing sample indices (0..n-1 not yet in the run folder)."""
    items = []
    for task in tasks:
        problems = task.load()
        if not problems:
            raise UserError(f"task {task.name} has no problems; check its data or --limit.")
        for problem in problems:
            missing = [i for i in range(n) if (task.name, problem.id, i) not in done]
            if missing:
                items.append(WorkItem(task, problem, missing))
    return items


def request_for(config: EvalConfig, item: WorkItem) -> GenerationRequest:
    """The request of a work item: its prompt, its missing samples, their seed."""
    seed = derive_seed(config.sampling.seed, item.task.name, item.problem.id, item.missing)
    return GenerationRequest(prompt=item.task.prompt(item.problem), n=len(item.missing), seed=seed)


def order_work(config: EvalConfig, generator: Generator, items: list[WorkItem]) -> list[WorkItem]:
    """The work in the order to generate it: shortest prompt first for a backend that pads
    prompts to a batch's longest (`length_order`), so each chunk, and each batch inside it, holds
    prompts of about one length; as planned otherwise. Rows are keyed by (task, problem, sample),
    so the order changes neither what is written nor what a resume finds missing."""
    requests = [request_for(config, item) for item in items]
    order = length_order(generator, requests, config.sampling)
    return items if order is None else [items[i] for i in order]


def chunk_work(items: list[WorkItem], sequences_per_call: int) -> Iterator[list[WorkItem]]:
    """Group work items so each generate call carries about `sequences_per_call` sequences."""
    chunk: list[WorkItem] = []
    size = 0
    for item in items:
        chunk.append(item)
        size += len(item.missing)
        if size >= sequences_per_call:
            yield chunk
            chunk, size = [], 0
    if chunk:
        yield chunk


def _settings(
    config: EvalConfig, model: ModelRef, tasks: list[Task], backend: str, served: str | None
) -> dict[str, Any]:
    identity = dict(model.identity)
    if served is not None:
        identity["served_model"] = served
    return {
        "model": identity,
        "sampling": config.sampling.to_dict(),
        "tasks": {task.name: task.describe() for task in tasks},
        "generation": config.generation(backend),
    }


def served_model_name(config: EvalConfig) -> str:
    """The server's name for the model (asking the server when --served-model is not given)."""
    if config.served_model is not None:
        return config.served_model
    from prorl_eval.inference.openai_server import CompletionsClient, resolve_served_model

    client = CompletionsClient(config.base_url or "", api_key=config.api_key)
    return resolve_served_model(client, None)


def default_generator_factory(config: EvalConfig, served: str | None = None) -> GeneratorFactory:
    def factory(backend: str, model: ModelRef) -> Generator:
        if not model.path:
            model = resolve_model(config.model)
        return make_generator(
            backend,
            model.path,
            revision=model.revision,
            batch_size=config.batch_size,
            max_batch_tokens=config.max_batch_tokens,
            dtype=config.dtype,
            max_model_len=config.max_model_len,
            tensor_parallel_size=config.tensor_parallel_size,
            data_parallel_size=config.data_parallel_size,
            base_url=config.base_url,
            served_model=served or config.served_model,
            api_key=config.api_key,
            concurrency=config.concurrency,
            in_process=False,  # vLLM on CPU: its engine core in a child process is ~3x faster
        )

    return factory


def sequences_per_call(config: EvalConfig, backend: str) -> int:
    """Sequences per generate call: enough to keep every engine, or every server slot, busy."""
    if backend == "openai":
        return max(512, config.batch_size, 4 * config.concurrency * config.n)
    per_engine = config.batch_size if backend == "hf" else max(512, config.batch_size)
    return per_engine * config.data_parallel_size


def run_pass_at_k(
    config: EvalConfig,
    *,
    generator_factory: GeneratorFactory | None = None,
    progress: Any = None,
) -> dict[str, Any]:
    """Generate the missing samples of a run, score them, and return (and write) results.json.

    `progress` is an optional callable `(advance: int, total: int, description: str)`.
    """
    config.validate()
    options = TaskOptions(limit=config.limit, seed=config.data_seed, data_dir=config.data_dir)
    tasks, skipped = resolve_available_tasks(config.tasks, options)
    check_metrics(tasks, config.by, config.require_maj)
    model = resolve_model(config.model, materialize=False)
    backend = resolve_backend(config.backend)
    config.validate_backend(backend)
    served = served_model_name(config) if backend == "openai" else None
    store = RunStore.open(config.out, _settings(config, model, tasks, backend, served))
    store.check_problems({(t.name, p.id): task_fingerprint(t, p) for t in tasks for p in t.load()})
    work = plan_work(tasks, config.n, store.done)
    # generate_s: inside generate calls; score_submit_s: scoring time spent blocking generation
    # (in-process scoring); score_wait_s: time spent waiting for pool results after generating.
    timing = {"generate_s": 0.0, "score_submit_s": 0.0, "score_wait_s": 0.0}
    if work:
        factory = generator_factory or default_generator_factory(config, served)
        generator = factory(backend, model)
        scorer = Scorer(
            {task.name: options for task in tasks},
            workers=config.score_workers,
            tasks={task.name: task for task in tasks},
        )
        try:
            _generate_and_score(
                config, model, backend, generator, scorer, store, work, timing, progress
            )
        finally:
            scorer.close()
            generator.close()
    results = finish_run(config, model, backend, tasks, store, timing, skipped)
    return results


def _generate_and_score(
    config: EvalConfig,
    model: ModelRef,
    backend: str,
    generator: Generator,
    scorer: Scorer,
    store: RunStore,
    work: list[WorkItem],
    timing: dict[str, float],
    progress: Any,
) -> None:
    """Generate chunk after chunk; each chunk is scored (in the scorer's pool when it has one)
    while the next one generates, and its rows are appended as soon as its scores are in."""
    total = sum(len(item.missing) for item in work)
    if progress:
        progress(0, total, "generating")
    pending: deque[tuple[list[WorkItem], list[GenerationRequest], list[Any], Any]] = deque()

    def flush(block: bool) -> None:
        while pending and (block or pending[0][3].done()):
            chunk, requests, outputs, future = pending.popleft()
            started = time.perf_counter()
            scores = iter(future.result())
            timing["score_wait_s"] += time.perf_counter() - started
            rows = []
            for item, request, completions in zip(chunk, requests, outputs, strict=True):
                rows.extend(_rows(config, model, backend, item, request, completions, scores))
            writer.write(rows)
            if progress:
                progress(len(rows), total, chunk[-1].task.name)

    work = order_work(config, generator, work)
    with store.writer() as writer:
        for chunk in chunk_work(work, sequences_per_call(config, backend)):
            requests = [request_for(config, item) for item in chunk]
            started = time.perf_counter()
            outputs = generator.generate(requests, config.sampling)
            timing["generate_s"] += time.perf_counter() - started
            jobs = [
                ScoreJob(item.task.name, item.problem.id, completion.text)
                for item, completions in zip(chunk, outputs, strict=True)
                for completion in completions
            ]
            started = time.perf_counter()
            pending.append((chunk, requests, outputs, scorer.submit(jobs)))
            timing["score_submit_s"] += time.perf_counter() - started
            flush(block=len(pending) > 2)
        flush(block=True)


def _rows(config, model, backend, item, request, completions, scores) -> list[SampleRow]:
    rows = []
    fingerprint = task_fingerprint(item.task, item.problem)
    # code tests are not an answer (and LiveCodeBench's can be megabytes): no gold in the rows
    gold = answer_text(item.problem.answer) if item.task.extracts_answers else None
    for sample_idx, completion in zip(item.missing, completions, strict=True):
        score = next(scores)
        rows.append(
            SampleRow(
                task=item.task.name,
                problem_id=item.problem.id,
                sample_idx=sample_idx,
                score=score.value,
                threshold=item.task.threshold,
                prompt=request.prompt,
                response=completion.text,
                reason=score.reason,
                model=model.name,
                model_revision=model.revision,
                backend=backend,
                sampling={**config.sampling.to_dict(), "request_seed": request.seed},
                num_tokens=completion.num_tokens,
                prompt_tokens=completion.prompt_tokens,
                finish_reason=completion.finish_reason,
                task_version=item.task.version,
                problem_fingerprint=fingerprint,
                gold_answer=gold,
                extracted_answer=score.answer,
                extraction=score.extraction,
                tags=item.task.tags(item.problem),
                extra=score.extra,
            )
        )
    return rows


def check_metrics(tasks: list[Task], by: tuple[str, ...], require_maj: bool) -> None:
    """Before any generation: every `--by` field must be a tag of some task's problems, and with
    `--maj` every task's verifier must extract answers to vote on."""
    if require_maj:
        for task in tasks:
            if not task.extracts_answers:
                raise UserError(
                    f"--maj: {task.name}'s verifier extracts no answer to vote on (code tests, "
                    "IFEval and substring checks compare none); drop --maj or that task."
                )
    if by:
        from prorl_eval.metrics import check_by_fields

        check_by_fields([{"tags": t.tags(p)} for t in tasks for p in t.load()], by)


def finish_run(config, model, backend, tasks, store, timing, skipped=None) -> dict[str, Any]:
    """Summarise this command's tasks and problems from the run folder and write results.json."""
    from prorl_eval.schema import read_samples

    wanted = {(t.name, p.id) for t in tasks for p in t.load()}
    rows = [
        row
        for row in read_samples(store.samples_path)
        if (row["task"], row["problem_id"]) in wanted and sample_key(row)[2] < config.n
    ]
    summaries = summarize(
        rows, list(config.ks), by=config.by, require_maj=config.require_maj,
        resamples=config.bootstrap_resamples, seed=config.bootstrap_seed,
    )  # fmt: skip
    for task in tasks:
        if task.name in summaries:
            task_rows = [row for row in rows if row["task"] == task.name]
            summaries[task.name].update(task.summary_metrics(task_rows))
    results = {
        "tasks": summaries,
        "model": model.name,
        "model_revision": model.revision,
        "backend": backend,
        "sampling": config.sampling.to_dict(),
        "n": config.n,
        "ks": list(config.ks),
        "data_seed": config.data_seed,
        "limit": config.limit,
        "bootstrap": {"resamples": config.bootstrap_resamples, "seed": config.bootstrap_seed},
        "timing": {k: round(v, 3) for k, v in timing.items()},
        "skipped_tasks": skipped or {},
        "samples_file": str(store.samples_path),
        "written": dt.datetime.now(dt.timezone.utc).isoformat(timespec="seconds"),
    }
    store.write_results(results)
    return results
