"""The models of a run: the policy, its tokenizer, the frozen reference and the optimizer stepper.

`load_models` builds them from the base model or a checkpoint: the policy in float32 (ZeRO-3:
built partitioned), the reference (only when `loss.kl_beta > 0`) in the compute dtype, and the
stepper for `deepspeed.zero_stage` (`deepspeed_engine.make_stepper`). Every CPU weight is copied
into freshly allocated memory so a resumed run multiplies exactly as the uninterrupted one
(`own_aligned_memory`). `autocast` is the mixed-precision context of rollouts and updates.

Example:
    >>> models = load_models(cfg, checkpoint=None, state={})  # doctest: +SKIP
"""

from __future__ import annotations

import contextlib
import itertools
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from prorl_train import distributed as dist
from prorl_train.config import TrainConfig
from prorl_train.stepper import OptimizerStepper


@dataclass
class Models:
    """What a run trains with; `reference_is_base` turns False once a reset copied the policy."""

    policy: Any  # the Hugging Face model (under ZeRO-3 its weights are partitioned)
    tokenizer: Any
    reference: Any  # None when kl_beta == 0; a DeepSpeed inference engine under ZeRO-3
    optimizer: Any  # the torch (or ZeRO) optimizer inside `stepper`
    stepper: OptimizerStepper  # deepspeed_engine.TorchStepper or DeepSpeedStepper
    base_path: str
    source_path: str  # where the policy weights were loaded from (base model or checkpoint)
    reference_is_base: bool = True
    notes: list[str] = field(default_factory=list)


def autocast(cfg: TrainConfig, device: str) -> Any:
    """bfloat16/float16 autocast on GPU when model.dtype asks for it; a no-op on CPU/float32."""
    import torch

    dtype = cfg.model.dtype
    if not device.startswith("cuda") or dtype == "float32":
        return contextlib.nullcontext()
    return torch.autocast("cuda", dtype=torch.float16 if dtype == "float16" else torch.bfloat16)


def load_models(
    cfg: TrainConfig, checkpoint: Path | None, state: dict[str, Any], device: str | None = None
) -> Models:
    """Policy (float32 weights), tokenizer, reference (frozen, only if kl_beta > 0), and the
    optimizer stepper (AdamW, or DeepSpeed ZeRO around policy and AdamW). `device`: this
    process's device in a multi-process run (else from model.device)."""
    import torch
    from transformers import AutoModelForCausalLM, AutoTokenizer

    from prorl_eval.checkpoints import resolve_model
    from prorl_eval.inference.hf import pick_device, pick_dtype
    from prorl_train.deepspeed_engine import make_stepper, partitioned_loading, wrap_reference

    ref = resolve_model(cfg.model.name)
    device = device if device and dist.world_size() > 1 else pick_device(cfg.model.device)
    if cfg.model.cpu_threads:
        torch.set_num_threads(cfg.model.cpu_threads)
    source = str(checkpoint / "policy") if checkpoint else ref.path
    revision = None if checkpoint else ref.revision
    tokenizer = AutoTokenizer.from_pretrained(source, revision=revision)
    with partitioned_loading(cfg, device):
        policy = AutoModelForCausalLM.from_pretrained(
            source, revision=revision, dtype=torch.float32
        )
    place(policy, device)
    if cfg.model.gradient_checkpointing:
        policy.gradient_checkpointing_enable()
    reference, is_base = None, state.get("reference", "base") == "base"
    if cfg.loss.kl_beta > 0:  # frozen: kept in the compute dtype (bfloat16 on GPU)
        ref_source = ref.path if is_base else str(checkpoint / "reference")
        with partitioned_loading(cfg, device, train=False):
            reference = AutoModelForCausalLM.from_pretrained(
                ref_source,
                revision=ref.revision if is_base else None,
                dtype=pick_dtype(cfg.model.dtype, device),
            )
        place(reference, device).eval().requires_grad_(False)
    stepper = make_stepper(cfg, policy, device)
    reference = wrap_reference(cfg, reference, device)
    return Models(
        policy, tokenizer, reference, stepper.optimizer, stepper, ref.path, source, is_base
    )


def place(model: Any, device: str) -> Any:
    """`model` on `device` in freshly allocated memory; a ZeRO-3 model built partitioned is
    left where DeepSpeed put its shards."""
    from prorl_train.deepspeed_engine import is_partitioned

    if is_partitioned(model):
        return model
    return own_aligned_memory(model.to(device))


def own_aligned_memory(model: Any) -> Any:
    """Move every CPU weight still backed by the memory-mapped checkpoint file into fresh memory.

    Safetensors stores tensors at 8-byte offsets that depend on the file's header, and MKL's
    float32 GEMM takes alignment-dependent paths on some CPUs; a run resumed from a checkpoint
    (another file, other offsets) could then round differently from the uninterrupted run.
    PyTorch's allocator aligns every tensor to 64 bytes, so weights copied into it multiply the
    same way in every process. GPU weights are already copies (`.to(device)`)."""
    for tensor in itertools.chain(model.parameters(), model.buffers()):
        if tensor.device.type == "cpu" and tensor.data_ptr() % 64:
            tensor.data = tensor.data.clone()
    return model
