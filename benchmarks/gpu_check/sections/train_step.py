"""One bf16 training step of the 1.5B shape through prorl's own steppers: tokens/s and MFU.

The step is what `update.py` does per mini-batch, on random tokens: for each micro-batch the
response log-probs (`logits.response_logprobs`, the vocabulary projected in chunks of
`model.logits_chunk_tokens` as the trainer does) and a backward pass, then the stepper's
clipped AdamW step. Weights, dtypes and the optimizer are set up as `policy_models.load_models`
sets them up:

- `train_step` (deepspeed.zero_stage=0): float32 weights, bfloat16 autocast, torch's fused AdamW;
- `train_step_zero2` (zero_stage=2): DeepSpeed ZeRO-2 in bf16 with float32 master weights, in a
  one-process group (what a single-GPU run of `prorl-train` starts).

MFU counts the model's FLOPs (`common.train_step_flops`) over the data sheet's dense bf16 peak.
"""

from __future__ import annotations

from typing import Any

from benchmarks.gpu_check.common import (
    Options,
    device_name,
    median,
    mfu,
    peak_flops,
    peak_memory_gib,
    random_qwen2,
    require,
    shape,
    timed,
    train_step_flops,
)


def settings(opts: Options) -> dict[str, int]:
    """Rows per micro-batch, micro-batches per step, prompt and response lengths, repeats."""
    if opts.dry_run:
        return {"rows": 2, "micro_batches": 2, "prompt": 8, "response": 24, "repeats": 2}
    return {"rows": 4, "micro_batches": 4, "prompt": 256, "response": 768, "repeats": 3}


def run_stage(opts: Options, zero_stage: int) -> dict[str, Any]:
    import torch

    from prorl_train import distributed
    from prorl_train.config import load_config
    from prorl_train.deepspeed_engine import make_stepper
    from prorl_train.logits import response_logprobs
    from prorl_train.policy_models import autocast

    if zero_stage:
        require("deepspeed")
    s = settings(opts)
    cfg = load_config(
        None,
        None,
        [
            f"deepspeed.zero_stage={zero_stage}",
            "model.dtype=bfloat16",
            f"model.device={opts.device}",
            f"loss.micro_batch_size={s['rows']}",
            "optim.lr=1e-6",
        ],
    )
    name, fields = shape(opts)
    if zero_stage:
        distributed.init_distributed(opts.device, one_process_group=True)
    policy = random_qwen2(fields, torch.float32, opts.device)
    stepper = make_stepper(cfg, policy, opts.device)
    length = s["prompt"] + s["response"]
    generator = torch.Generator().manual_seed(0)
    batches = [
        torch.randint(2, fields["vocab_size"], (s["rows"], length), generator=generator).to(
            opts.device
        )
        for _ in range(s["micro_batches"])
    ]
    attention = torch.ones_like(batches[0])
    positions = torch.arange(length, device=opts.device).expand(s["rows"], length)

    def step() -> None:
        for i, ids in enumerate(batches):
            with autocast(cfg, opts.device):
                logp, _ = response_logprobs(
                    stepper.model,
                    ids,
                    attention,
                    positions,
                    ids[:, s["prompt"] :],
                    temperature=1.0,
                    chunk_tokens=cfg.model.logits_chunk_tokens,
                )
            loss = -logp.float().mean() / len(batches)
            stepper.backward(loss, boundary=i == len(batches) - 1)
        stepper.step()

    seconds = median(timed(step, opts.device, repeats=s["repeats"], warmup=1))
    rows = s["rows"] * s["micro_batches"]
    flops = train_step_flops(policy, rows, length, head_positions=s["response"] + 1)
    peak = peak_flops(device_name(opts.device), opts.peak_tflops)
    utilisation = mfu(flops, seconds, peak)
    if zero_stage:
        distributed.destroy()
    return {
        "model": name,
        "parameters_b": sum(p.numel() for p in policy.parameters()) / 1e9,
        "tokens_per_step": rows * length,
        "step_s": seconds,
        "tokens_per_s": rows * length / seconds,
        "model_tflops_per_s": flops / seconds / 1e12,
        "mfu": utilisation if utilisation is not None else "unknown peak",
        "peak_memory_gib": peak_memory_gib(opts.device) or "n/a (CPU)",
    }


def run(opts: Options) -> dict[str, Any]:
    return run_stage(opts, zero_stage=0)


def run_zero2(opts: Options) -> dict[str, Any]:
    return run_stage(opts, zero_stage=2)
