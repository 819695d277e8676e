"""Hugging Face `generate` throughput of the 1.5B shape in bf16 (greedy, fixed lengths).

Every row generates exactly `new_tokens` (min_new_tokens = max_new_tokens, no eos), so
tokens/s is rows x new tokens over wall time: the decode speed that the `hf` eval backend and
`rollout.backend=hf` get on this GPU, for a batch of one and a full batch.
"""

from __future__ import annotations

from typing import Any

from benchmarks.gpu_check.common import Options, median, random_qwen2, shape, timed


def settings(opts: Options) -> dict[str, Any]:
    if opts.dry_run:
        return {"prompt_tokens": 8, "batches": {1: 4, 4: 4}, "repeats": 1}
    return {"prompt_tokens": 128, "batches": {1: 128, 32: 256}, "repeats": 2}


def run(opts: Options) -> dict[str, Any]:
    import torch

    name, fields = shape(opts)
    s = settings(opts)
    dtype = torch.float32 if opts.dry_run else torch.bfloat16
    model = random_qwen2(fields, dtype, opts.device).eval()
    metrics: dict[str, Any] = {"model": name, "dtype": str(dtype).removeprefix("torch.")}
    generator = torch.Generator().manual_seed(0)
    for rows, new_tokens in s["batches"].items():
        ids = torch.randint(
            2, fields["vocab_size"], (rows, s["prompt_tokens"]), generator=generator
        )
        ids = ids.to(opts.device)

        def generate(ids=ids, new_tokens=new_tokens) -> None:
            with torch.no_grad():
                out = model.generate(
                    input_ids=ids,
                    attention_mask=torch.ones_like(ids),
                    max_new_tokens=new_tokens,
                    min_new_tokens=new_tokens,
                    do_sample=False,
                    pad_token_id=0,
                )
            assert out.shape[1] == ids.shape[1] + new_tokens

        seconds = median(timed(generate, opts.device, repeats=s["repeats"], warmup=1))
        metrics[f"batch{rows}_new_tokens"] = new_tokens
        metrics[f"batch{rows}_s"] = seconds
        metrics[f"batch{rows}_tokens_per_s"] = rows * new_tokens / seconds
    return metrics
