"""Periodic validation of the live policy, scored exactly as `prorl-eval pass-at-k` scores.

Every `val.every` steps the policy answers a fixed blended validation set: `val.tasks` (default:
the tasks of `data.mix`), `val.limit` problems each, `val.n` samples per problem, generated with
the same sampling seed each time (common random numbers, so changes reflect the weights). It is
run through `prorl_eval.runner.run_pass_at_k`, so rows land in `<run>/val/step-<N>/samples.jsonl`
+ `results.json` in the eval harness's own format, scored by the same verifiers. Where it
generates is `val.backend` (`ValConfig.on_engine`):

- on the rollout engine (`auto` with `rollout.backend=vllm`, `engine`, `vllm`): the engine already
  holds the synced weights; `EngineGenerator` (`engine_generator.py`) makes it the runner's
  generator, and with several processes every rank generates its share of the validation set;
- `hf` (`auto` with `rollout.backend=hf`): `HFGenerator` wraps the live policy; rank 0 alone
  validates while the other ranks wait.

The blended metrics are unweighted means over the validation tasks:

    val/pass@1   mean over tasks of pass@1        val/reward   mean over tasks of the mean score

plus `val/<task>/pass@1` per task. Reasoning Gym problems use `val.data_seed` (default 1; the
training mix uses 2, evaluation 0), so procedural validation problems are not training problems.
The trainer logs `time/val_s` and `time/val_share` (validation's share of that step's wall time);
the plateau detector (`resets.py`) reads these metrics and generates nothing itself.

Example:
    >>> metrics = run_validation(policy, tokenizer, cfg, step=10)  # doctest: +SKIP
    >>> metrics["val/pass@1"]  # doctest: +SKIP
"""

from __future__ import annotations

import shutil
from pathlib import Path
from typing import TYPE_CHECKING, Any

from prorl_eval.inference.base import SamplingConfig

if TYPE_CHECKING:
    from prorl_train.config import TrainConfig


def val_tasks(cfg: TrainConfig) -> str:
    """The validation task list: `val.tasks`, else the training mix's names."""
    return cfg.val.tasks or ",".join(cfg.data.mix)


def val_dir(run_dir: str | Path, step: int) -> Path:
    return Path(run_dir) / "val" / f"step-{step}"


def eval_config(cfg: TrainConfig, step: int, backend: str, batch_size: int) -> Any:
    """The eval harness's settings for the validation at `step` (the same sampling seed every
    time), generating on `backend` in calls of about `batch_size` sequences."""
    from prorl_eval.runner import EvalConfig

    sampling = SamplingConfig(
        temperature=cfg.val.temperature,
        top_p=cfg.val.top_p,
        max_new_tokens=cfg.val.max_new_tokens or cfg.rollout.max_new_tokens(step),
        seed=cfg.val.seed,
        chat_template=cfg.rollout.chat_template,
        system_prompt=cfg.rollout.system_prompt,
    )
    return EvalConfig(
        out=str(val_dir(cfg.out, step)),
        model=cfg.model.name,
        tasks=val_tasks(cfg),
        n=cfg.val.n,
        ks=(1,),
        limit=cfg.val.limit,
        data_seed=cfg.val.data_seed,
        data_dir=cfg.data.data_dir,
        score_workers=cfg.rollout.score_workers,
        backend=backend,
        sampling=sampling,
        batch_size=batch_size,
        bootstrap_resamples=200,
    )


def run_validation(policy: Any, tokenizer: Any, cfg: TrainConfig, step: int) -> dict[str, float]:
    """Validate the policy at `step` with HF `generate` (rank 0 alone); the `val/...` metrics."""
    from prorl_eval.inference.hf import HFGenerator
    from prorl_eval.runner import run_pass_at_k

    config = eval_config(cfg, step, "hf", cfg.rollout.generate_batch_size)

    def factory(backend: str, model: Any) -> HFGenerator:
        return HFGenerator(
            model.path or cfg.model.name,
            model=policy,
            tokenizer=tokenizer,
            batch_size=cfg.rollout.generate_batch_size,
        )

    was_training = policy.training
    try:
        results = run_pass_at_k(config, generator_factory=factory)
    finally:
        policy.train(was_training)
    return blend(results["tasks"])


def run_engine_validation(
    engine: Any, tokenizer: Any, cfg: TrainConfig, step: int
) -> dict[str, float]:
    """Validate at `step` on the rollout engine (`engine_generator.py`); the `val/...` metrics on
    every rank. Collective: every rank calls it and generates its share; rank 0 writes the rows.

    Calls carry `rollout.generate_batch_size` sequences per rank, so each rank gets about
    `rollout.n / val.n` of the sharded engine's chunks per call."""
    from prorl_eval.runner import run_pass_at_k
    from prorl_train import distributed as dist
    from prorl_train.engine_generator import EngineGenerator, follow, kept_asleep, lead

    backend = cfg.rollout.backend
    config = eval_config(cfg, step, backend, cfg.rollout.generate_batch_size * dist.world_size())

    def validate(sampler: Any) -> dict[str, float]:
        generator = EngineGenerator(sampler, tokenizer, backend)
        results = run_pass_at_k(config, generator_factory=lambda backend, model: generator)
        return blend(results["tasks"])

    with kept_asleep(engine):
        return lead(engine, validate) if dist.is_main() else follow(engine)


def blend(tasks: dict[str, dict[str, Any]]) -> dict[str, float]:
    """Blended and per-task validation metrics from a results.json `tasks` block."""
    if not tasks:
        return {}
    out: dict[str, float] = {}
    for name, summary in tasks.items():
        out[f"val/{name}/pass@1"] = float(summary["pass_at_k"]["1"])
        out[f"val/{name}/reward"] = float(summary["mean_score"])
    out["val/pass@1"] = sum(float(s["pass_at_k"]["1"]) for s in tasks.values()) / len(tasks)
    out["val/reward"] = sum(float(s["mean_score"]) for s in tasks.values()) / len(tasks)
    return out


def drop_after(run_dir: str | Path, step: int) -> None:
    """Remove validation folders of steps after `step` (a resumed run redoes them)."""
    root = Path(run_dir) / "val"
    if not root.is_dir():
        return
    for path in root.glob("step-*"):
        suffix = path.name.removeprefix("step-")
        if suffix.isdigit() and int(suffix) > step:
            shutil.rmtree(path, ignore_errors=True)
