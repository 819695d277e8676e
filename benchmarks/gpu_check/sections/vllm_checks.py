"""The vLLM sections (they skip where vLLM does not import).

`vllm_eval`: prorl's `VLLMGenerator.generate` against raw `vllm.LLM.generate` on the same
engine, prompts, seeds and sampling, interleaved, medians; the two must produce the same tokens.
The ratio is the eval layer's cost on this GPU.

`vllm_rollout`: the trainer's `VLLMRolloutEngine` beside an HF policy, as `rollout.backend=vllm`
sets it up on one GPU: sampling throughput, `sync_weights` time, sleep and wake (the colocated
engine frees its memory for the update), and the rollout/trainer log-prob gap
(`rollout_correction.gap_stats`) of the sampled tokens. The gap is then measured again after the
policy's weights are perturbed (the engine is stale: a large gap) and after a sync (back to
the first gap): a check that the sync moves the weights.
"""

from __future__ import annotations

import time
from typing import Any

from benchmarks.gpu_check.common import Options, Skip, median, require, synchronize

TEMPERATURE, TOP_P = 0.6, 0.95  # the paper's evaluation sampling


def model_path(opts: Options) -> str:
    """The folder of `--model` (default: the embedded model); Skip when it cannot be had."""
    from prorl_eval.errors import UserError

    try:
        from prorl_eval.checkpoints import resolve_model
        from prorl_eval.models import DEFAULT_MODEL

        return resolve_model(opts.model or DEFAULT_MODEL).path
    except UserError as exc:
        raise Skip(f"no model to serve: {exc}") from None


def prompts(count: int) -> list[str]:
    return [f"What is {17 + i} + {25 + 3 * i}? Answer with the number." for i in range(count)]


def eval_settings(opts: Options) -> dict[str, int]:
    if opts.dry_run:
        return {"prompts": 4, "n": 2, "max_tokens": 8, "repeats": 1}
    return {"prompts": 64, "n": 8, "max_tokens": 256, "repeats": 3}


def run_eval(opts: Options) -> dict[str, Any]:
    require("vllm")
    from vllm import SamplingParams

    from prorl_eval.inference.base import GenerationRequest, SamplingConfig, render_prompt
    from prorl_eval.inference.vllm import VLLMGenerator

    s = eval_settings(opts)
    path = model_path(opts)
    start = time.perf_counter()
    # bf16 on the GPU, as evaluations serve (the embedded model's folder says float32)
    dtype = "auto" if opts.dry_run else "bfloat16"
    generator = VLLMGenerator(path, dtype=dtype, gpu_memory_utilization=0.5)
    startup = time.perf_counter() - start
    sampling = SamplingConfig(temperature=TEMPERATURE, top_p=TOP_P, max_new_tokens=s["max_tokens"])
    requests = [GenerationRequest(p, n=s["n"], seed=i) for i, p in enumerate(prompts(s["prompts"]))]
    rendered = [
        {"prompt_token_ids": render_prompt(generator.tokenizer, r.prompt, sampling)}
        for r in requests
    ]
    params = [
        SamplingParams(
            n=r.n, temperature=TEMPERATURE, top_p=TOP_P, max_tokens=s["max_tokens"], seed=r.seed
        )
        for r in requests
    ]

    def ours() -> list[tuple[int, ...]]:
        return [c.token_ids for group in generator.generate(requests, sampling) for c in group]

    def raw() -> list[tuple[int, ...]]:
        outputs = generator.llm.generate(rendered, params, use_tqdm=False)
        return [
            tuple(c.token_ids) for o in outputs for c in sorted(o.outputs, key=lambda c: c.index)
        ]

    same = ours() == raw()  # also the warm-up of both
    times: dict[str, list[float]] = {"ours": [], "raw": []}
    tokens = 0
    for _ in range(s["repeats"]):
        for side, fn in (("raw", raw), ("ours", ours)):
            begin = time.perf_counter()
            out = fn()
            times[side].append(time.perf_counter() - begin)
            tokens = sum(len(t) for t in out)
    generator.close()
    raw_s, ours_s = median(times["raw"]), median(times["ours"])
    return {
        "model": path,
        "requests": f"{s['prompts']} prompts x n={s['n']}, <= {s['max_tokens']} new tokens",
        "engine_start_s": startup,
        "raw_s": raw_s,
        "ours_s": ours_s,
        "ours_over_raw": ours_s / raw_s,
        "generated_tokens": tokens,
        "ours_tokens_per_s": tokens / ours_s,
        "same_tokens": same,
    }


def rollout_settings(opts: Options) -> dict[str, int]:
    if opts.dry_run:
        return {"prompts": 2, "n": 2, "max_tokens": 8, "syncs": 2}
    return {"prompts": 32, "n": 8, "max_tokens": 256, "syncs": 3}


def policy_logprobs(policy: Any, prompt: list[int], tokens: tuple[int, ...], device: str) -> Any:
    """The policy's log-probs of `tokens` after `prompt` at temperature 1, computed as the trainer
    computes pi_old (`logits.response_logprobs` under its bf16 autocast on GPU)."""
    import torch

    from prorl_train.config import load_config
    from prorl_train.logits import response_logprobs
    from prorl_train.policy_models import autocast

    cfg = load_config(None, None, ["model.dtype=bfloat16"])
    ids = torch.tensor([list(prompt) + list(tokens)], device=device)
    positions = torch.arange(ids.shape[1], device=device)[None]
    with torch.no_grad(), autocast(cfg, device):
        logp, _ = response_logprobs(
            policy, ids, torch.ones_like(ids), positions, ids[:, len(prompt) :], temperature=1.0
        )
    return logp[0].float().cpu()


def measured_gap(engine: Any, policy: Any, ids: list[list[int]], s: dict, device: str) -> dict:
    """Sample with the engine and compare its log-probs with the policy's."""
    import torch

    from prorl_eval.inference.base import SamplingConfig
    from prorl_train.rollout_correction import gap_stats

    sampling = SamplingConfig(temperature=1.0, top_p=1.0, max_new_tokens=s["max_tokens"])
    groups = engine.sample(ids, s["n"], seed=0, sampling=sampling)
    old, rollout = [], []
    for prompt, group in zip(ids, groups, strict=True):
        for c in group:
            if c.logprobs is None:
                raise RuntimeError("the engine returned no log-probs")
            old.append(policy_logprobs(policy, prompt, c.token_ids, device))
            rollout.append(torch.tensor(c.logprobs))
    return gap_stats(old, rollout, cap=2.0)


def run_rollout(opts: Options) -> dict[str, Any]:
    require("vllm")
    import torch
    from transformers import AutoModelForCausalLM, AutoTokenizer

    from prorl_train.vllm_rollout import VLLMRolloutEngine

    s = rollout_settings(opts)
    path = model_path(opts)
    device = opts.device
    tokenizer = AutoTokenizer.from_pretrained(path)
    policy = AutoModelForCausalLM.from_pretrained(path, dtype=torch.float32).to(device).eval()
    start = time.perf_counter()
    engine = VLLMRolloutEngine(
        path,
        policy,
        tokenizer,
        mode="colocate",
        gpu_memory_utilization=0.3,
        dtype="float32" if opts.dry_run else "bfloat16",
    )
    metrics: dict[str, Any] = {"model": path, "engine_start_s": time.perf_counter() - start}
    ids = [tokenizer(p)["input_ids"] for p in prompts(s["prompts"])]
    begin = time.perf_counter()
    gap = measured_gap(engine, policy, ids, s, device)
    metrics["sample_and_gap_s"] = time.perf_counter() - begin
    metrics.update({f"gap_{k.split('/')[-1]}": v for k, v in gap.items()})

    syncs, sleeps = [], []
    for _ in range(s["syncs"]):
        begin = time.perf_counter()
        engine.before_update()  # sleep, where sleep mode is on
        synchronize(device)
        sleeps.append(time.perf_counter() - begin)
        begin = time.perf_counter()
        engine.sync_weights(policy)  # wake, load the weights, wake the KV cache
        synchronize(device)
        syncs.append(time.perf_counter() - begin)
    metrics["sleep_mode"] = engine.sleep_enabled
    metrics["sleep_s"] = median(sleeps) if engine.sleep_enabled else "n/a (sleep mode off)"
    metrics["sync_weights_s"] = median(syncs)
    metrics["parameters_synced_m"] = sum(p.numel() for p in policy.parameters()) / 1e6

    with torch.no_grad():  # a stale engine: perturb the policy, measure, then sync
        generator = torch.Generator(device=device).manual_seed(0)
        for p in policy.parameters():
            p.add_(torch.randn(p.shape, generator=generator, device=device) * 0.02)
    stale = measured_gap(engine, policy, ids, s, device)
    engine.sync_weights(policy)
    synced = measured_gap(engine, policy, ids, s, device)
    engine.close()
    key = "rollout_gap/abs_logprob_diff_mean"
    metrics["stale_gap_abs_logprob_diff_mean"] = stale[key]
    metrics["synced_gap_abs_logprob_diff_mean"] = synced[key]
    if not synced[key] < stale[key]:
        raise RuntimeError(
            f"sync_weights did not bring the engine to the policy: gap {synced[key]:.3g} after "
            f"the sync, {stale[key]:.3g} before"
        )
    return metrics
