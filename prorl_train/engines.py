"""Pick the rollout engine a run asks for (`rollout.backend`).

`hf` samples with `generate` on the live policy (nothing to sync); `vllm` runs a vLLM engine that
receives the policy's new weights in place after every update (`vllm_rollout.py`), placed beside
the trainer (`rollout.vllm_mode=colocate`) or on GPUs of its own (`separate`).

Example:
    >>> engine = make_rollout_engine(cfg, policy, tokenizer, model_path)  # doctest: +SKIP
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from prorl_eval.errors import UserError
from prorl_train.rollout import HFRolloutEngine, RolloutEngine

if TYPE_CHECKING:
    from prorl_train.config import TrainConfig


def make_rollout_engine(
    cfg: TrainConfig, policy: Any, tokenizer: Any, model_path: str
) -> RolloutEngine:
    """The engine for `cfg.rollout.backend`; `model_path` is where the policy was loaded from
    (the vLLM engine starts from those weights, which are the policy's at that moment)."""
    r = cfg.rollout
    if r.backend != "vllm":
        return HFRolloutEngine(policy, tokenizer, r.generate_batch_size)
    try:
        import vllm  # noqa: F401
    except ImportError as exc:
        raise UserError(
            f"rollout.backend=vllm: vLLM does not import ({exc}); reinstall it, or use "
            "rollout.backend=hf."
        ) from None
    if r.vllm_mode == "separate":
        from prorl_train.distributed import world_size

        if world_size() > 1:  # every rank's engine would claim the same first GPUs
            raise UserError(
                "rollout.vllm_mode=separate runs in a single process; with several processes "
                "use rollout.vllm_mode=colocate (one engine per GPU)."
            )
        check_separate_placement(r.vllm_tensor_parallel_size, _device_of(policy))
    from prorl_train.vllm_rollout import VLLMRolloutEngine

    return VLLMRolloutEngine(
        model_path,
        policy,
        tokenizer,
        mode=r.vllm_mode,
        gpu_memory_utilization=r.vllm_gpu_memory_utilization,
        tensor_parallel_size=r.vllm_tensor_parallel_size,
        max_model_len=r.vllm_max_model_len,
        dtype=cfg.model.dtype,
    )


def check_separate_placement(tensor_parallel_size: int, policy_device: str) -> None:
    """`separate` mode: vLLM takes the first `tensor_parallel_size` visible GPUs, so the trainer
    must sit on a later one. UserError naming the fix otherwise."""
    import torch

    gpus = torch.cuda.device_count() if torch.cuda.is_available() else 0
    tp = tensor_parallel_size
    if gpus < tp + 1:
        raise UserError(
            f"rollout.vllm_mode=separate needs {tp + 1} GPUs ({tp} for the engine, 1 for the "
            f"trainer) but {gpus} are visible; use rollout.vllm_mode=colocate."
        )
    index = int(policy_device.split(":")[1]) if policy_device.startswith("cuda:") else 0
    if not policy_device.startswith("cuda") or index < tp:
        raise UserError(
            f"rollout.vllm_mode=separate gives cuda:0..cuda:{tp - 1} to the engine; the policy "
            f"is on {policy_device}: set model.device=cuda:{tp}."
        )


def _device_of(policy: Any) -> str:
    return str(next(policy.parameters()).device)
