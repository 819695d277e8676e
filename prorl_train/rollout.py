"""Rollouts: draw prompts, sample n responses each on the live policy, score them, filter groups.

Prompts are rendered with the shared `render_prompt` (chat template, system prompt) exactly as
`prorl-eval` renders them, and every response is scored by its task's verifier through the shared
`Scorer`: the reward *is* the eval score. Overlong (truncated) responses are kept as scored,
scored 0 (`overlong: zero`), kept out of the loss (`overlong: mask`), or, with `overlong: soft`,
charged DAPO's length penalty over the last `overlong_buffer` tokens of the budget (correctness
stays the verifier's). With dynamic sampling,
groups without learning signal are dropped and new prompts are drawn for at most
`max_extra_rounds` extra rounds to refill the batch (DAPO; `batch_filling.py`).

The engine is an interface (`RolloutEngine`) so a vLLM engine with in-place weight sync can replace
`HFRolloutEngine`, which calls `generate` on the policy itself (no copy, no sync needed).

Example:
    >>> engine = HFRolloutEngine(policy, tokenizer, batch_size=16)  # doctest: +SKIP
    >>> kept, generated, stats = collect_rollouts(  # doctest: +SKIP
    ...     engine, mix, scorer, tokenizer, cfg, step=1)
"""

from __future__ import annotations

import time
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, Protocol

from prorl_eval.inference.base import Completion, SamplingConfig, render_prompt
from prorl_eval.inference.hf_common import eos_token_ids, pad_token_id
from prorl_eval.scoring import ScoreJob, Scorer
from prorl_eval.seeds import derive_seed
from prorl_train.data import DataMix, PromptItem

if TYPE_CHECKING:
    from prorl_train.config import RolloutConfig, TrainConfig


class RolloutEngine(Protocol):
    """A generator on the current policy weights (prompt token ids in, `Completion`s out) that
    the trainer keeps in step with the policy through `before_update` and `sync_weights`.

    `sample` takes one seed per call (not per prompt) because the distributed wrapper
    (`distributed.ShardedEngine`) splits a call into seeded chunks of prompts."""

    def sample(
        self, prompts: list[list[int]], n: int, seed: int, sampling: SamplingConfig
    ) -> list[list[Completion]]:
        """n completions for each prompt (token ids), reproducible for a given seed and weights."""
        ...

    def before_update(self) -> None:
        """Called after a step's rollouts, before its update (a colocated engine sleeps here)."""
        ...

    def sync_weights(self, policy: Any) -> None:
        """Make the engine sample from `policy`'s current weights (a no-op for HF)."""
        ...


class HFRolloutEngine:
    """`model.generate` on the live policy, prompts left-padded, n copies of each per batch."""

    def __init__(self, model: Any, tokenizer: Any, batch_size: int = 64) -> None:
        self.model = model
        self.tokenizer = tokenizer
        self.batch_size = max(1, batch_size)
        self.pad_id = pad_token_id(tokenizer)
        self.eos_ids = set(eos_token_ids(model, tokenizer))

    def before_update(self) -> None:
        pass

    def sync_weights(self, policy: Any) -> None:
        self.model = policy

    def sample(
        self, prompts: list[list[int]], n: int, seed: int, sampling: SamplingConfig
    ) -> list[list[Completion]]:
        rows = [ids for ids in prompts for _ in range(n)]
        samples: list[Completion] = []
        was_training = self.model.training
        self.model.eval()
        try:
            for start in range(0, len(rows), self.batch_size):
                chunk = rows[start : start + self.batch_size]
                samples.extend(self._generate(chunk, sampling, derive_seed(seed, start)))
        finally:
            self.model.train(was_training)
        return [samples[i * n : (i + 1) * n] for i in range(len(prompts))]

    def _generate(
        self, rows: list[list[int]], sampling: SamplingConfig, seed: int
    ) -> list[Completion]:
        from prorl_eval.inference.hf import completion_of, generate_left_padded

        new_tokens = generate_left_padded(
            self.model, rows, sampling, seed, self.pad_id, self.eos_ids
        )
        return [
            completion_of(self.tokenizer, tokens, self.eos_ids, len(ids))
            for tokens, ids in zip(new_tokens, rows, strict=True)
        ]


@dataclass
class Rollouts:
    """A step's training sequences (one entry per response), grouped by prompt."""

    prompt_ids: list[list[int]] = field(default_factory=list)
    response_ids: list[list[int]] = field(default_factory=list)
    rewards: list[float] = field(default_factory=list)
    correct: list[bool] = field(default_factory=list)
    truncated: list[bool] = field(default_factory=list)
    loss_mask: list[bool] = field(default_factory=list)  # False: excluded from the loss
    group_ids: list[int] = field(default_factory=list)
    tasks: list[str] = field(default_factory=list)
    domains: list[str] = field(default_factory=list)
    texts: list[str] = field(default_factory=list)
    # The engine's log-prob of each response token (vLLM), else None: the rollout/trainer gap
    rollout_logprobs: list[tuple[float, ...] | None] = field(default_factory=list)

    def __len__(self) -> int:
        return len(self.rewards)

    def extend(self, other: Rollouts, keep: list[bool] | None = None) -> None:
        """Append `other`'s sequences (only those with keep[i] when given)."""
        for name in self.__dataclass_fields__:
            mine, theirs = getattr(self, name), getattr(other, name)
            mine.extend(v for i, v in enumerate(theirs) if keep is None or keep[i])

    @property
    def num_groups(self) -> int:
        return len(set(self.group_ids))


def rollout_sampling(cfg: TrainConfig, step: int) -> SamplingConfig:
    """The sampling settings of a training step (the length schedule picks the budget)."""
    r = cfg.rollout
    return SamplingConfig(
        temperature=r.temperature,
        top_p=r.top_p,
        max_new_tokens=r.max_new_tokens(step),
        seed=cfg.seed,
        chat_template=r.chat_template,
        system_prompt=r.system_prompt,
    )


def generate_and_score(
    engine: RolloutEngine,
    items: list[PromptItem],
    scorer: Scorer,
    tokenizer: Any,
    sampling: SamplingConfig,
    n: int,
    seed: int,
    rollout: RolloutConfig,
    timing: dict[str, float],
) -> Rollouts:
    """n responses per prompt item, decoded and scored by the tasks' verifiers; truncated ones
    handled as `rollout.overlong` says."""
    prompts = [render_prompt(tokenizer, item.prompt, sampling) for item in items]
    started = time.perf_counter()
    samples = engine.sample(prompts, n, seed, sampling)
    timing["rollout_s"] += time.perf_counter() - started
    out = Rollouts()
    jobs = []
    for item, ids, group in zip(items, prompts, samples, strict=True):
        for sample in group:
            text = sample.text
            jobs.append(ScoreJob(item.task.name, item.problem.id, text))
            out.prompt_ids.append(ids)
            out.response_ids.append(list(sample.token_ids))
            out.truncated.append(sample.truncated)
            out.group_ids.append(item.index)
            out.tasks.append(item.task.name)
            out.domains.append(item.task.domain)
            out.texts.append(text)
            out.rollout_logprobs.append(sample.logprobs)
    started = time.perf_counter()
    scores = scorer.score(jobs)
    timing["score_s"] += time.perf_counter() - started
    thresholds = [item.task.threshold for item in items for _ in range(n)]
    policy = rollout.overlong
    rows = zip(scores, out.truncated, thresholds, out.response_ids, strict=True)
    for score, truncated, threshold, response in rows:
        reward = 0.0 if truncated and policy == "zero" else score.value
        out.correct.append(reward >= threshold)
        if policy == "soft":  # correctness stays the verifier's; the reward pays for length
            length = sampling.max_new_tokens if truncated else len(response)  # cut: the budget
            reward += soft_overlong_penalty(
                length,
                sampling.max_new_tokens,
                rollout.overlong_buffer,
                rollout.overlong_penalty,
            )
        out.rewards.append(reward)
        out.loss_mask.append(not (truncated and policy == "mask"))
    return out


def soft_overlong_penalty(length: int, max_len: int, buffer: int, factor: float) -> float:
    """DAPO's soft overlong punishment (Yu et al., 2025, eq. 13): 0 up to `max_len - buffer`
    tokens, then falling linearly to `-factor` at `max_len`, and `-factor` beyond it.

    >>> [soft_overlong_penalty(n, 100, 20, 1.0) for n in (80, 90, 100)]
    [0.0, -0.5, -1.0]
    """
    free = max_len - buffer
    if length <= free:
        return 0.0
    if length > max_len:
        return -factor
    return (free - length) / buffer * factor


def collect_rollouts(
    engine: RolloutEngine,
    mix: DataMix,
    scorer: Scorer,
    tokenizer: Any,
    cfg: TrainConfig,
    step: int,
) -> tuple[Rollouts, Rollouts, dict[str, float]]:
    """Fill a step's batch: returns (kept sequences, every generated sequence, stats).

    Without dynamic sampling everything generated is kept. With it, rounds of new prompts refill
    the batch (`batch_filling.BatchFiller`: how many each round draws, which groups it keeps,
    what happens when the rounds run out).
    """
    from prorl_train.batch_filling import BatchFiller

    r = cfg.rollout
    sampling = rollout_sampling(cfg, step)
    timing = {"rollout_s": 0.0, "score_s": 0.0}
    filler = BatchFiller(cfg.batch_size, r)
    generated = Rollouts()
    while (count := filler.next_draw()) > 0:
        items = mix.draw(count)
        seed = derive_seed(cfg.seed, "rollout", step, filler.rounds)
        batch = generate_and_score(engine, items, scorer, tokenizer, sampling, r.n, seed, r, timing)
        generated.extend(batch)
        filler.add(batch, {item.task.name: item.task.partial_credit for item in items})
    stats = filler.finish(step)
    stats.update(
        {
            "rollout/max_new_tokens": float(sampling.max_new_tokens),
            "time/rollout_s": timing["rollout_s"],
            "time/score_s": timing["score_s"],
        }
    )
    return filler.kept, generated, stats
