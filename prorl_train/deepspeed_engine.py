"""The policy's optimizer step, plain torch or DeepSpeed ZeRO, behind one small interface.

`update.py` drives a *stepper*: `set_lr`, `backward(loss, boundary)` once per micro-batch (the
loss already weighted so the micro-batch losses sum to the whole mini-batch's loss), `step()` once
per mini-batch (returns the pre-clip gradient norm), `reset_state()` for optimizer resets, and
`model`, the thing forward passes call. Two steppers:

- `TorchStepper` (deepspeed.zero_stage=0): torch AdamW on the full model in every process; with
  several processes the gradients are summed over ranks before clipping (each rank holds a share
  of the micro-batches), so the update equals the single-process one.
- `DeepSpeedStepper` (stages 1-3): `deepspeed.initialize` with our AdamW (torch's, or DeepSpeed's
  CPU Adam when the optimizer state is offloaded). DeepSpeed averages gradients over ranks and, by
  default, divides by its accumulation steps; we disable the latter (`scale_wrt_gas=False`, the
  boundary set by hand, as mini-batches hold varying numbers of micro-batches) and multiply each
  loss by the world size, so the averaged gradient is again the single-process mini-batch gradient.

What lives where (per GPU, P = parameter count, W = ranks): stage 0 keeps weights, gradients and
Adam state (2 x fp32) everywhere; stage 1 splits the fp32 master weights and Adam moments
(12P/W bytes with bf16) while bf16 weights (2P) and gradients (2P) stay whole; stage 2 also
splits the gradients; stage 3 also splits the bf16 weights, gathered layer by layer in forward and
backward (and whole for generation, `generation_weights`). `offload_optimizer` moves the
partitioned master weights and moments to CPU RAM and steps there; `offload_params` (stage 3)
moves the partitioned bf16 weights too.

The frozen reference is a plain module under stages 0-2 (bf16 on GPU) and, under stage 3, its own
`deepspeed.initialize` without an optimizer, so its weights are partitioned like the policy's.
Under stage 3 both are built partitioned from the start (`partitioned_loading`): no rank ever
materialises a whole model, so host memory at start-up does not grow with the number of ranks.

Example:
    >>> stepper = make_stepper(cfg, policy, device="cpu")  # doctest: +SKIP
    >>> stepper.backward(loss, boundary=True); norm = stepper.step()  # doctest: +SKIP
"""

from __future__ import annotations

import contextlib
from collections.abc import Iterator
from pathlib import Path
from typing import TYPE_CHECKING, Any

from prorl_train import distributed as dist

if TYPE_CHECKING:
    from prorl_train.config import TrainConfig

DS_CHECKPOINT_DIR = "deepspeed"  # inside a checkpoint folder
DS_TAG = "state"


def adamw(cfg: TrainConfig, params: Any, cpu_adam: bool = False) -> Any:
    """The run's AdamW (DeepSpeed's CPU Adam, same maths, when the state lives on the CPU).

    torch's AdamW runs fused (one kernel over all tensors, ~4x faster than its per-tensor loop
    on CPU) when every parameter is a floating-point tensor on a device with fused kernels.
    """
    import torch
    from torch.utils._foreach_utils import _get_fused_kernels_supported_devices

    o = cfg.optim
    kwargs = {"lr": o.lr, "betas": (o.beta1, o.beta2), "eps": o.eps, "weight_decay": o.weight_decay}
    if cpu_adam:
        from deepspeed.ops.adam import DeepSpeedCPUAdam

        return DeepSpeedCPUAdam(params, adamw_mode=True, **kwargs)
    params = list(params)
    devices = set(_get_fused_kernels_supported_devices())
    fused = bool(params) and all(
        isinstance(p, torch.Tensor) and p.device.type in devices and p.is_floating_point()
        for p in params
    )
    return torch.optim.AdamW(params, **kwargs, fused=fused or None)


def uses_bf16(cfg: TrainConfig, device: str) -> bool:
    """DeepSpeed trains in bf16 on GPU (model.dtype auto or bfloat16), in fp32 otherwise."""
    return device.startswith("cuda") and cfg.model.dtype in ("auto", "bfloat16")


def ds_config(cfg: TrainConfig, device: str, *, train: bool = True) -> dict[str, Any]:
    """The DeepSpeed config dict for the run's settings (`train=False`: the frozen reference)."""
    d = cfg.deepspeed
    on_gpu = device.startswith("cuda")
    zero: dict[str, Any] = {"stage": d.zero_stage, "overlap_comm": on_gpu}
    if d.zero_stage >= 2:
        zero["contiguous_gradients"] = True
    if d.offload_optimizer and train:
        zero["offload_optimizer"] = {"device": "cpu", "pin_memory": on_gpu}
    if d.offload_params:
        zero["offload_param"] = {"device": "cpu", "pin_memory": on_gpu}
    micro = cfg.loss.micro_batch_size
    return {
        # batch sizes only feed DeepSpeed's own bookkeeping: we drive accumulation ourselves
        "train_micro_batch_size_per_gpu": micro,
        "gradient_accumulation_steps": 1,
        "train_batch_size": micro * dist.world_size(),
        "gradient_clipping": float(cfg.optim.grad_clip),
        "bf16": {"enabled": uses_bf16(cfg, device)},
        "zero_optimization": zero,
        "zero_allow_untested_optimizer": True,
        "steps_per_print": 2**31,
        "wall_clock_breakdown": False,
    }


def _sum_grads_over_ranks(params: list[Any]) -> None:
    """All-reduce (sum) the gradients of `params` in one flat buffer."""
    import torch

    grads = [p.grad for p in params if p.grad is not None]
    if not grads or dist.world_size() == 1:
        return
    flat = torch.cat([g.reshape(-1) for g in grads])
    dist.all_reduce_sum_(flat)
    offset = 0
    for g in grads:
        g.copy_(flat[offset : offset + g.numel()].view_as(g))
        offset += g.numel()


class TorchStepper:
    """torch AdamW on the whole model (gradients summed over ranks in a multi-process run)."""

    def __init__(self, model: Any, optimizer: Any, grad_clip: float) -> None:
        self.model = model
        self.optimizer = optimizer
        self.grad_clip = grad_clip

    def set_lr(self, lr: float) -> None:
        for group in self.optimizer.param_groups:
            group["lr"] = lr

    def zero_grad(self) -> None:
        self.optimizer.zero_grad(set_to_none=True)

    def backward(self, loss: Any, boundary: bool) -> None:
        loss.backward()

    def step(self) -> float:
        import torch

        params = [p for group in self.optimizer.param_groups for p in group["params"]]
        _sum_grads_over_ranks(params)
        max_norm = self.grad_clip if self.grad_clip > 0 else float("inf")
        grad_norm = torch.nn.utils.clip_grad_norm_(params, max_norm)
        self.optimizer.step()
        self.optimizer.zero_grad(set_to_none=True)
        return float(grad_norm)

    def reset_state(self) -> None:
        self.optimizer.state.clear()

    def save(self, folder: Path) -> None:
        """optimizer.pt (the state is the same on every rank: only rank 0 writes)."""
        import torch

        if dist.is_main():
            torch.save(self.optimizer.state_dict(), folder / "optimizer.pt")

    def load(self, checkpoint: Path) -> None:
        import torch

        path = Path(checkpoint) / "optimizer.pt"
        self.optimizer.load_state_dict(torch.load(path, map_location="cpu", weights_only=True))


class DeepSpeedStepper:
    """A DeepSpeed ZeRO engine around the policy and AdamW (see the module docstring)."""

    def __init__(self, cfg: TrainConfig, policy: Any, device: str) -> None:
        import logging

        import deepspeed

        deepspeed.utils.logger.setLevel(logging.WARNING)  # its INFO lines drown the status lines
        d = cfg.deepspeed
        optimizer = adamw(cfg, policy.parameters(), cpu_adam=d.offload_optimizer)
        self.model, self.optimizer, _, _ = deepspeed.initialize(
            model=policy, optimizer=optimizer, config=ds_config(cfg, device)
        )
        self.zero_stage = d.zero_stage

    @property
    def module(self) -> Any:
        """The wrapped Hugging Face model (weights partitioned under stage 3)."""
        return self.model.module

    def set_lr(self, lr: float) -> None:
        for group in self.optimizer.param_groups:
            group["lr"] = lr

    def zero_grad(self) -> None:
        self.model.zero_grad()

    def backward(self, loss: Any, boundary: bool) -> None:
        self.model.set_gradient_accumulation_boundary(boundary)
        self.model.backward(loss * dist.world_size(), scale_wrt_gas=False)

    def step(self) -> float:
        self.model.step()
        norm = self.model.get_global_grad_norm()
        return float(norm) if norm is not None else 0.0

    def reset_state(self) -> None:
        """Forget the Adam moments and step counts of every partition (re-created lazily)."""
        inner = getattr(self.optimizer, "optimizer", self.optimizer)
        inner.state.clear()

    def save(self, folder: Path) -> None:
        """Every rank writes its optimizer partition (collective) under folder/deepspeed/."""
        self.model.save_checkpoint(
            str(folder / DS_CHECKPOINT_DIR), tag=DS_TAG, client_state={}, save_latest=False
        )

    def load(self, checkpoint: Path) -> None:
        """Restore the fp32 master weights and optimizer partitions (same world size and stage)."""
        path, _ = self.model.load_checkpoint(
            str(Path(checkpoint) / DS_CHECKPOINT_DIR),
            tag=DS_TAG,
            load_optimizer_states=True,
            load_lr_scheduler_states=False,
        )
        if path is None:
            from prorl_eval.errors import UserError

            raise UserError(f"{checkpoint} holds no DeepSpeed state; resume with its settings.")


def make_stepper(cfg: TrainConfig, policy: Any, device: str) -> TorchStepper | DeepSpeedStepper:
    """The stepper for `deepspeed.zero_stage` (0: torch AdamW)."""
    if cfg.deepspeed.zero_stage == 0:
        return TorchStepper(policy, adamw(cfg, policy.parameters()), cfg.optim.grad_clip)
    return DeepSpeedStepper(cfg, policy, device)


def wrap_reference(cfg: TrainConfig, reference: Any, device: str) -> Any:
    """The frozen reference as forward passes need it: itself, or a ZeRO-3 inference engine."""
    if reference is None or cfg.deepspeed.zero_stage != 3:
        return reference
    import deepspeed

    engine, *_ = deepspeed.initialize(model=reference, config=ds_config(cfg, device, train=False))
    engine.eval()
    return engine


@contextlib.contextmanager
def partitioned_loading(cfg: TrainConfig, device: str, *, train: bool = True) -> Iterator[None]:
    """Inside the block, under ZeRO-3, `from_pretrained` builds the model already partitioned.

    Transformers creates the model under `deepspeed.zero.Init` while an `HfDeepSpeedConfig` is
    alive, then copies the checkpoint in layer by layer (rank 0 writes, the others receive their
    shard). Without it every rank would first hold the whole float32 model (28 GB for 7B
    parameters, times 8 ranks on a node). The config is dropped on exit, so later
    `from_pretrained` calls (validation, evaluation) load whole models again. A no-op below
    stage 3."""
    if cfg.deepspeed.zero_stage != 3:
        yield
        return
    import deepspeed
    import torch.distributed
    from transformers.integrations.deepspeed import HfDeepSpeedConfig, unset_hf_deepspeed_config

    if torch.distributed.is_initialized():  # DeepSpeed's view of the group sizes the batch check
        deepspeed.init_distributed(dist_backend=torch.distributed.get_backend(), verbose=False)
    alive = HfDeepSpeedConfig(ds_config(cfg, device, train=train))  # held by a weak reference
    try:
        yield
    finally:
        unset_hf_deepspeed_config()
        del alive


def is_partitioned(model: Any) -> bool:
    """True when `model`'s weights are ZeRO-3 partitioned (each rank holds a shard)."""
    return any(hasattr(p, "ds_id") for p in model.parameters())


@contextlib.contextmanager
def gathered(model: Any, modifier: bool = False) -> Iterator[None]:
    """Full weights of a ZeRO-3 `model` inside the block (collective: every rank enters);
    `modifier=True` keeps rank 0's in-block changes. A no-op for unpartitioned models."""
    if model is None or not is_partitioned(model):
        yield
        return
    import deepspeed

    params = list(model.parameters())
    with deepspeed.zero.GatheredParameters(params, modifier_rank=0 if modifier else None):
        yield


@contextlib.contextmanager
def generation_weights(stepper: Any) -> Iterator[None]:
    """Whole weights for `generate` on every rank (ZeRO-3: gathered once, and every ZeRO-3 hook
    lifted, so ranks can run different numbers of forward passes, or rank 0 alone can validate);
    a no-op otherwise. Collective: every rank enters.

    DeepSpeed's `unwrap_model_for_generation` lifts the per-module hooks but keeps the root's
    start-of-forward hook, which checks with the other ranks at every forward; it is taken off
    here too and put back first in line afterwards.
    """
    if not isinstance(stepper, DeepSpeedStepper) or not is_partitioned(stepper.module):
        yield
        return
    from deepspeed.runtime.zero.stage3 import unwrap_model_for_generation

    offload = stepper.optimizer.parameter_offload
    hooks = offload.module._forward_pre_hooks
    start_hook = hooks.pop(offload.fwd_pre_hook.id, None)
    try:
        with unwrap_model_for_generation(stepper.model):
            yield
    finally:
        if start_hook is not None:
            hooks[offload.fwd_pre_hook.id] = start_hook
            hooks.move_to_end(offload.fwd_pre_hook.id, last=False)


def hf_module(model: Any) -> Any:
    """The Hugging Face model inside a DeepSpeed engine (or the model itself): the shared
    `unwrap_model`, under the name the trainer and resets import."""
    from prorl_eval.inference.hf_common import unwrap_model

    return unwrap_model(model)
