"""Rollouts on a vLLM engine that receives the policy's weights in place after every update.

The engine is built by the eval harness's `VLLMGenerator` (one engine construction for both
tools) from the folder the policy was loaded from, once per run. After each optimizer update
`sync_weights` streams the policy's parameters, in Hugging Face naming, through
`llm.collective_rpc("reload_weights", kwargs={"weights_iterator": ...})`: vLLM's own loaders
fuse them (q/k/v -> qkv_proj, gate/up -> gate_up_proj), convert them to the engine's dtype and
write them into the engine's existing tensors. Nothing is read from disk after the start.

Two details make the engine sample exactly what the policy would:
- Tied embeddings: vLLM does not load `lm_head.weight` for a tied model (it shares the
  embedding), but on CPU the head also keeps a kernel-format copy made when weights were first
  processed; the sync re-processes the head so that copy follows the new embedding.
- Prefix caching: KV blocks cached for a prompt prefix were computed with the old weights, so the
  prefix cache is cleared after every sync.

Placement (`rollout.vllm_mode`):
- `colocate` (default): the engine shares the trainer's device. On GPU it is built with
  `enable_sleep_mode=True`; `before_update` puts it to sleep (level 1: weights offloaded to host
  memory, KV cache freed) so the update has the memory, and `sync_weights` wakes the weights, loads
  the new ones, then wakes the KV cache. On CPU vLLM has no sleep mode (its CPU worker ignores
  sleep/wake), so the engine simply stays resident; its KV cache is the fixed
  `VLLM_CPU_KVCACHE_SPACE` GiB.
- `separate` (GPU only): the engine owns `cuda:0 .. cuda:tp-1` (vLLM always takes the first visible
  GPUs) and the trainer must run on another one (`model.device=cuda:<tp>`). No sleeping. With
  tensor parallelism > 1 the engine's workers are separate processes, so the weights travel to
  them by value as host copies (simple, but slow for large models; a NCCL broadcast would be the
  faster route); with one GPU they are handed over in-process and copied device to device.

The engine core always runs in the trainer's process (`VLLM_ENABLE_V1_MULTIPROCESSING=0`), which is
what lets a weights iterator be passed to it at all.

Example:
    >>> engine = VLLMRolloutEngine(model_path, policy, tokenizer)  # doctest: +SKIP
    >>> groups = engine.sample([[1, 2, 3]], 4, 0, SamplingConfig())  # doctest: +SKIP
    >>> engine.before_update(); optimizer.step(); engine.sync_weights(policy)  # doctest: +SKIP
"""

from __future__ import annotations

import contextlib
import dataclasses
import logging
import os
from collections.abc import Callable, Iterator
from typing import Any

from prorl_eval.inference.base import Completion, SamplingConfig
from prorl_eval.inference.hf_common import eos_token_ids, unwrap_model
from prorl_eval.seeds import derive_seed


def _tied_head(model: Any) -> Any:
    """The model's LM head when it shares the input embedding's weight (else None)."""
    head = getattr(model, "lm_head", None)
    embed = getattr(getattr(model, "model", None), "embed_tokens", None)
    tied = head is not None and embed is not None and getattr(head, "weight", None) is not None
    return head if tied and head.weight is embed.weight else None


def _has_tied_head(worker: Any) -> bool:
    """Worker-side: whether the engine's LM head is tied to its embedding."""
    return _tied_head(worker.model_runner.get_model()) is not None


def _refresh_tied_head(worker: Any) -> None:
    """Worker-side: re-process a tied LM head so any kernel-format copy follows the embedding."""
    head = _tied_head(worker.model_runner.get_model())
    if head is not None and getattr(head, "quant_method", None) is not None:
        head.quant_method.process_weights_after_loading(head)


def _engine_device(worker: Any) -> str:
    """Worker-side: the device the engine's weights live on."""
    return str(next(worker.model_runner.get_model().parameters()).device)


class VLLMRolloutEngine:
    """A `RolloutEngine` on a vLLM `LLM`, kept in step with the policy by in-place weight loads."""

    def __init__(
        self,
        model_path: str,
        policy: Any,
        tokenizer: Any,
        *,
        mode: str = "colocate",
        gpu_memory_utilization: float = 0.3,
        tensor_parallel_size: int = 1,
        max_model_len: int | None = None,
        dtype: str = "auto",
    ) -> None:
        import torch

        from prorl_eval.inference.vllm import VLLMGenerator

        on_gpu = torch.cuda.is_available()
        self.sleep_enabled = on_gpu and mode == "colocate" and _sleep_mode_available()
        # The trainer hands weights to the engine in-process; a separate engine-core process
        # could not receive a weights iterator.
        os.environ["VLLM_ENABLE_V1_MULTIPROCESSING"] = "0"
        # Log-probs after temperature and top-p: the distribution the tokens were drawn from,
        # which the trainer compares with its own (`rollout_correction.py`).
        engine_kwargs: dict[str, Any] = {"logprobs_mode": "processed_logprobs"}
        if self.sleep_enabled:
            engine_kwargs["enable_sleep_mode"] = True
        self.generator = VLLMGenerator(
            model_path,
            dtype=dtype,
            max_model_len=max_model_len,
            gpu_memory_utilization=gpu_memory_utilization,
            tensor_parallel_size=tensor_parallel_size,
            engine_kwargs=engine_kwargs,
        )
        self.llm = self.generator.llm
        self.mode = mode
        self.in_process = tensor_parallel_size == 1
        self.engine_dtype = self.llm.llm_engine.model_config.dtype
        self.engine_device = self.llm.collective_rpc(_engine_device)[0]
        self.tokenizer = tokenizer
        self.eos_ids = eos_token_ids(policy, tokenizer)
        self.tied_head = bool(self.llm.collective_rpc(_has_tied_head)[0])
        self.asleep = False
        self.syncs = 0

    # --------------------------------------------------------------------------- sampling

    def sample(
        self, prompts: list[list[int]], n: int, seed: int, sampling: SamplingConfig
    ) -> list[list[Completion]]:
        """n completions per prompt; prompt i is seeded with derive_seed(seed, i).

        Temperature 0 is greedy (vLLM allows n=1 only there, so a greedy group is n requests).
        A sample's token ids end with the stop token when one ended it (as `HFRolloutEngine`'s do);
        `truncated` means the budget ran out first.
        """
        import torch
        from vllm import SamplingParams

        self._wake()
        greedy = sampling.temperature <= 0
        requests, params = [], []
        for i, ids in enumerate(prompts):
            copies = n if greedy else 1
            for _ in range(copies):
                requests.append({"prompt_token_ids": list(ids)})
                params.append(
                    SamplingParams(
                        n=1 if greedy else n,
                        temperature=max(sampling.temperature, 0.0),
                        top_p=1.0 if greedy else sampling.top_p,
                        max_tokens=sampling.max_new_tokens,
                        seed=derive_seed(seed, i),
                        stop_token_ids=self.eos_ids,
                        logprobs=0,  # the sampled token's own log-prob only
                    )
                )
        # The trainer may hold a CUDA autocast context; the engine runs in its own dtype.
        no_autocast = (
            torch.autocast("cuda", enabled=False)
            if torch.cuda.is_available()
            else contextlib.nullcontext()
        )
        with no_autocast:
            outputs = self.llm.generate(requests, params, use_tqdm=False)
        flat = [
            self._completion(c, len(request["prompt_token_ids"]))
            for output, request in zip(outputs, requests, strict=True)
            for c in sorted(output.outputs, key=lambda c: c.index)
        ]
        return [flat[i * n : (i + 1) * n] for i in range(len(prompts))]

    def _completion(self, output: Any, prompt_tokens: int) -> Completion:
        """A `Completion` as `HFRolloutEngine` builds it: text decoded by the policy's tokenizer
        without the stop token, truncated exactly when vLLM ran out of budget; with the engine's
        log-prob of each of its tokens."""
        from prorl_eval.inference.hf import completion_of

        tokens = list(output.token_ids)
        made = completion_of(self.tokenizer, tokens, set(self.eos_ids), prompt_tokens)
        finish = "length" if output.finish_reason == "length" else "stop"
        logprobs = None
        if output.logprobs is not None:
            steps = zip(output.logprobs, tokens, strict=False)
            logprobs = tuple(float(step[t].logprob) for step, t in steps)[: len(made.token_ids)]
        return dataclasses.replace(made, finish_reason=finish, logprobs=logprobs)

    # ------------------------------------------------------------------------ weight sync

    def before_update(self) -> None:
        """Colocated on GPU: sleep (weights to host memory, KV cache freed) for the update."""
        if self.sleep_enabled and not self.asleep:
            self.llm.sleep(level=1)
            self.asleep = True

    def sync_weights(self, policy: Any) -> None:
        """Load `policy`'s current parameters into the running engine, in place."""
        import torch

        if self.asleep:
            self.llm.wake_up(tags=["weights"])
        with torch.no_grad(), _quiet_expected_reload_warnings(self.tied_head):
            weights: Any = self._weights(unwrap_model(policy))
            if not self.in_process:  # worker processes: the weights cross by value
                weights = list(weights)
            self.llm.collective_rpc("reload_weights", kwargs={"weights_iterator": weights})
        if self.tied_head:
            self.llm.collective_rpc(_refresh_tied_head)
        if self.asleep:
            self.llm.wake_up(tags=["kv_cache"])
            self.asleep = False
        with _dropped(PREFIX_CACHE_LOGGER, _is_prefix_cache_reset_line):
            self.llm.reset_prefix_cache()
        self.syncs += 1

    def _weights(self, model: Any) -> Iterator[tuple[str, Any]]:
        """(name, tensor) in Hugging Face naming, in the engine's dtype and on its device
        (host copies when the engine's workers are other processes). A tied output head is
        absent here, as in a saved checkpoint: the engine shares it with the embedding."""
        device = self.engine_device if self.in_process else "cpu"
        for name, param in model.named_parameters():
            yield name, param.detach().to(device=device, dtype=self.engine_dtype)

    def _wake(self) -> None:
        if self.asleep:
            self.llm.wake_up()
            self.asleep = False

    def close(self) -> None:
        """Free the engine (its KV cache and weights)."""
        self.generator.close()
        self.llm = None


RELOAD_LOGGER = "vllm.model_executor.model_loader.reload.layerwise"
PREFIX_CACHE_LOGGER = "vllm.v1.core.block_pool"


class _Drop(logging.Filter):
    """Drops the records for which `unwanted(record)` is true."""

    def __init__(self, unwanted: Callable[[logging.LogRecord], bool]) -> None:
        super().__init__()
        self.unwanted = unwanted

    def filter(self, record: logging.LogRecord) -> bool:
        return not self.unwanted(record)


@contextlib.contextmanager
def _dropped(logger_name: str, unwanted: Callable[[logging.LogRecord], bool]) -> Iterator[None]:
    """Inside the block, logger `logger_name` drops the records `unwanted` picks."""
    logger = logging.getLogger(logger_name)
    drop = _Drop(unwanted)
    logger.addFilter(drop)
    try:
        yield
    finally:
        logger.removeFilter(drop)


def _is_prefix_cache_reset_line(record: logging.LogRecord) -> bool:
    """vLLM's INFO line for every prefix-cache reset: once per sync, it would crowd the
    trainer's one status line per step."""
    return record.levelno <= logging.INFO and "reset prefix cache" in str(record.msg)


def _quiet_expected_reload_warnings(tied_head: bool) -> contextlib.AbstractContextManager:
    """Drops vLLM's "<layer>: Failed to load weights" for layers that have nothing to load from
    a policy: the rotary embedding (a computed cache) and a tied LM head (it is the embedding).
    A miss anywhere else still shows."""
    layers = ("RotaryEmbedding", "ParallelLMHead") if tied_head else ("RotaryEmbedding",)

    def expected(record: logging.LogRecord) -> bool:
        args = record.args if isinstance(record.args, tuple) else ()
        return "Failed to load weights" in str(record.msg) and args[:1] in [
            (name,) for name in layers
        ]

    return _dropped(RELOAD_LOGGER, expected)


def _sleep_mode_available() -> bool:
    from vllm.platforms import current_platform

    return current_platform.is_sleep_mode_available()
