"""The rollout engine seen as the eval harness's `Generator`, for validation on the engine.

With `rollout.backend=vllm` the rollout engine already holds the policy's synced weights, so
validation generates there instead of running transformers' `generate` on the policy: the eval
runner (`prorl_eval.runner.run_pass_at_k`) drives an `EngineGenerator`, which renders each
request's prompt with the shared `request_prompt_ids` and hands the prompts to
`RolloutEngine.sample`. The rows, their scoring and results.json are therefore the harness's own.

Seeds: the engine takes one seed per `sample` call and derives each prompt's seed from it and the
prompt's position (`VLLMRolloutEngine`; `distributed.ShardedEngine` first splits the call into
seeded chunks). The call's seed is derived from the harness's request seeds, so the same
validation set gives the same seeds at every validation (common random numbers) and on any
number of ranks. A row's recorded `request_seed` is the harness's seed of its request; the engine
sampled it with a seed derived from that one and its call-mates' (one call per run of requests
asking for equally many samples).

Several processes: rank 0 runs the eval runner (it alone writes files) through `Leader`, which
announces every `sample` call to the other ranks before taking part in it; they wait in
`follow`, join each call with their own engine (each rank generates its chunks of the sharded
engine, as in rollouts) and receive the metrics when rank 0 is done.

Colocated engines: `sample` wakes a sleeping vLLM engine itself; `kept_asleep` puts an engine that
was asleep before validation back to sleep afterwards, so the trainer finds it as it left it.

Example:
    >>> generator = EngineGenerator(engine, tokenizer, backend="vllm")  # doctest: +SKIP
    >>> results = run_pass_at_k(config, generator_factory=lambda b, m: generator)  # doctest: +SKIP
"""

from __future__ import annotations

import contextlib
from collections.abc import Callable, Iterator
from typing import Any, TypeVar

from prorl_eval.inference.base import (
    Completion,
    GenerationRequest,
    SamplingConfig,
    request_prompt_ids,
)
from prorl_eval.seeds import derive_seed
from prorl_train import distributed as dist

T = TypeVar("T")


class EngineGenerator:
    """A `prorl_eval` generator on a `RolloutEngine`; closing it leaves the engine running (the
    trainer owns it)."""

    def __init__(self, engine: Any, tokenizer: Any, backend: str = "vllm") -> None:
        self.engine = engine
        self.tokenizer = tokenizer
        self.backend = backend
        self.calls = 0

    def generate(
        self, requests: list[GenerationRequest], sampling: SamplingConfig
    ) -> list[list[Completion]]:
        """Each request's `n` completions, in order: one `sample` call per run of consecutive
        requests with the same `n` (a resumed folder may ask some problems for fewer)."""
        out: list[list[Completion]] = []
        for run in runs_of_equal_n(requests):
            prompts = [request_prompt_ids(self.tokenizer, r, sampling) for r in run]
            groups = self.engine.sample(prompts, run[0].n, call_seed(run), sampling)
            self.calls += 1
            out.extend(groups)
        return out

    def close(self) -> None:
        """Nothing to release: the engine stays with the trainer."""


def runs_of_equal_n(requests: list[GenerationRequest]) -> list[list[GenerationRequest]]:
    """`requests` cut into maximal runs of consecutive requests asking for the same `n`."""
    runs: list[list[GenerationRequest]] = []
    for request in requests:
        if runs and runs[-1][0].n == request.n:
            runs[-1].append(request)
        else:
            runs.append([request])
    return runs


def call_seed(requests: list[GenerationRequest]) -> int:
    """The engine seed of one `sample` call: derived from its requests' seeds, in order."""
    return derive_seed(0, "engine-call", *(r.seed for r in requests))


@contextlib.contextmanager
def kept_asleep(engine: Any) -> Iterator[None]:
    """Inside the block the engine may wake (its `sample` wakes it); if it was asleep before,
    it is put back to sleep (`before_update`) afterwards. Engines without sleep are untouched."""
    was_asleep = bool(getattr(engine, "asleep", False))
    try:
        yield
    finally:
        if was_asleep and not getattr(engine, "asleep", False):
            engine.before_update()


# --------------------------------------------------------------------- several processes


class Leader:
    """Rank 0's engine during a validation: every `sample` call is first broadcast to the other
    ranks (waiting in `follow`), then run collectively."""

    def __init__(self, engine: Any) -> None:
        self.engine = engine

    def sample(
        self, prompts: list[list[int]], n: int, seed: int, sampling: SamplingConfig
    ) -> list[list[Completion]]:
        dist.broadcast_object(("sample", prompts, n, seed, sampling))
        return self.engine.sample(prompts, n, seed, sampling)


def lead(engine: Any, work: Callable[[Any], T]) -> T:
    """Rank 0: `work(leader_engine)`, then release the followers with its result (None when it
    failed, which makes them fail too instead of waiting forever)."""
    result = None
    try:
        result = work(Leader(engine) if dist.world_size() > 1 else engine)
    finally:
        if dist.world_size() > 1:
            dist.broadcast_object(("done", result))
    return result


def follow(engine: Any) -> Any:
    """Ranks other than 0: join every `sample` call rank 0 announces; return its result."""
    while True:
        kind, *args = dist.broadcast_object(None)
        if kind == "sample":
            engine.sample(*args)
        elif args[0] is None:
            raise RuntimeError("validation failed on rank 0 (its error is in its log)")
        else:
            return args[0]
