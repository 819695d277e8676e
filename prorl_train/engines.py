"""Pick the rollout engine a run asks for (`rollout.backend`).

`hf` samples with `generate` on the live policy (nothing to sync); `vllm` runs a vLLM engine that
receives the policy's new weights in place after every update (`vllm_rollout.py`).

Example:
    >>> engine = make_rollout_engine(cfg, policy, tokenizer, model_path)  # doctest: +SKIP
"""

from __future__ import annotations

from typing import Any

from prorl_train.rollout import HFRolloutEngine, RolloutEngine


def make_rollout_engine(cfg: Any, policy: Any, tokenizer: Any, model_path: str) -> RolloutEngine:
    """The engine for `cfg.rollout.backend`; `model_path` is where the policy was loaded from."""
    if cfg.rollout.backend == "vllm":
        raise NotImplementedError("the vllm rollout backend is being wired in")
    return HFRolloutEngine(policy, tokenizer, cfg.rollout.generate_batch_size)
