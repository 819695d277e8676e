"""Hugging Face transformers backend (CPU or GPU, always available).

Requests are packed, in the order given, into left-padded batches of at most `batch_size` rows and
at most `max_batch_tokens` padded prompt tokens (rows x the batch's longest prompt): each prompt is
repeated `n` times inside the batch, so the n samples of a prompt are generated together, and
several short prompts share one `generate` call. Every row of a batch is padded to its longest
prompt, so the caller orders requests by prompt length (`prompt_lengths`; the eval runner sorts its
pending work with it) to keep long and short prompts apart.

Sampling is seeded per packed batch (`torch.manual_seed` of a seed derived from the batch's first
request and its size), so sampled completions depend on how requests were packed; greedy ones do
not.
"""

from __future__ import annotations

from typing import Any

from prorl_eval.inference.base import (
    Completion,
    GenerationRequest,
    SamplingConfig,
    request_prompt_ids,
)
from prorl_eval.inference.hf_common import cut_at_eos, eos_token_ids, pad_token_id

DEFAULT_MAX_BATCH_TOKENS = 65536  # 64 rows of 1,024-token prompts


def pick_device(device: str = "auto") -> str:
    import torch

    if device != "auto":
        return device
    return "cuda" if torch.cuda.is_available() else "cpu"


def pick_dtype(dtype: str, device: str) -> Any:
    import torch

    if dtype == "auto":
        return torch.bfloat16 if device.startswith("cuda") else torch.float32
    return {"float32": torch.float32, "bfloat16": torch.bfloat16, "float16": torch.float16}[dtype]


class HFGenerator:
    """Generate with `transformers` `model.generate`, batched across prompts and samples."""

    backend = "hf"

    def __init__(
        self,
        model_path: str,
        *,
        revision: str | None = None,
        device: str = "auto",
        dtype: str = "auto",
        batch_size: int = 64,
        max_batch_tokens: int = DEFAULT_MAX_BATCH_TOKENS,
        model: Any = None,
        tokenizer: Any = None,
    ) -> None:
        from transformers import AutoModelForCausalLM, AutoTokenizer

        self.device = pick_device(device)
        self.batch_size = max(1, batch_size)
        self.max_batch_tokens = max(1, max_batch_tokens)
        self.tokenizer = tokenizer or AutoTokenizer.from_pretrained(model_path, revision=revision)
        if model is None:
            model = AutoModelForCausalLM.from_pretrained(
                model_path, revision=revision, dtype=pick_dtype(dtype, self.device)
            )
            model.to(self.device)
        self.model = model.eval()
        self.pad_id = pad_token_id(self.tokenizer)
        self.eos_ids = set(eos_token_ids(self.model, self.tokenizer))

    def prompt_lengths(
        self, requests: list[GenerationRequest], sampling: SamplingConfig
    ) -> list[int]:
        """Each request's prompt length in tokens, so callers can order work by it."""
        return [len(request_prompt_ids(self.tokenizer, r, sampling)) for r in requests]

    def generate(
        self, requests: list[GenerationRequest], sampling: SamplingConfig
    ) -> list[list[Completion]]:
        prompts = [request_prompt_ids(self.tokenizer, r, sampling) for r in requests]
        results: list[list[Completion]] = [[] for _ in requests]
        for batch in self._batches(requests, [len(ids) for ids in prompts]):
            # batch: list of (request index, number of samples from it in this batch)
            rows = [prompts[i] for i, count in batch for _ in range(count)]
            seed = requests[batch[0][0]].seed + sum(c for _, c in batch) * 7919
            texts = self._generate_rows(rows, sampling, seed)
            pos = 0
            for i, count in batch:
                results[i].extend(texts[pos : pos + count])
                pos += count
        return results

    def _batches(
        self, requests: list[GenerationRequest], lengths: list[int]
    ) -> list[list[tuple[int, int]]]:
        """Pack requests, in order, into batches of (request index, rows from it): at most
        batch_size rows and max_batch_tokens padded prompt tokens each (a batch always takes at
        least one row), splitting a large n across batches if needed."""
        batches: list[list[tuple[int, int]]] = []
        current: list[tuple[int, int]] = []
        rows = width = 0
        for i, request in enumerate(requests):
            left = request.n
            while left > 0:
                wider = max(width, lengths[i])
                fit = min(self.batch_size - rows, self.max_batch_tokens // wider - rows)
                if fit <= 0 and rows:
                    batches.append(current)
                    current, rows, width = [], 0, 0
                    continue
                take = min(left, max(fit, 1))
                current.append((i, take))
                left -= take
                rows += take
                width = wider
        if current:
            batches.append(current)
        return batches

    def _generate_rows(
        self, rows: list[list[int]], sampling: SamplingConfig, seed: int
    ) -> list[Completion]:
        new_tokens = generate_left_padded(
            self.model, rows, sampling, seed, self.pad_id, self.eos_ids
        )
        pairs = zip(new_tokens, rows, strict=True)
        return [
            completion_of(self.tokenizer, tokens, self.eos_ids, len(ids)) for tokens, ids in pairs
        ]

    def close(self) -> None:
        self.model = None


def completion_of(
    tokenizer: Any, tokens: list[int], eos_ids: set[int], prompt_tokens: int = 0
) -> Completion:
    """The `Completion` of one generated row: cut after its first stop token, the text decoded
    without the stop token (and without special tokens), "length" when no stop token came."""
    response, stopped = cut_at_eos(tokens, eos_ids)
    text = tokenizer.decode(response[:-1] if stopped else response, skip_special_tokens=True)
    finish = "stop" if stopped else "length"
    return Completion(text, len(response), finish, prompt_tokens, tuple(response))


def generate_left_padded(
    model: Any,
    rows: list[list[int]],
    sampling: SamplingConfig,
    seed: int,
    pad_id: int,
    eos_ids: set[int],
) -> list[list[int]]:
    """`model.generate` on one batch of prompts (token ids), left-padded so every row's new
    tokens start at the same position; sampled under `torch.manual_seed(seed)` (greedy at
    temperature 0, plain temperature / top-p otherwise: no top-k). Each row's new tokens, up to
    the batch's longest (an EOS and the padding after it included).

    Rows repeating a prompt (the n samples of a request) share its prefill
    (`prefix.prefilled_cache`): each distinct prompt runs once."""
    import torch

    from prorl_eval.inference.prefix import prefilled_cache

    width = max(len(r) for r in rows)
    input_ids = torch.full((len(rows), width), pad_id, dtype=torch.long)  # (B, T)
    attention = torch.zeros((len(rows), width), dtype=torch.long)  # (B, T)
    for b, ids in enumerate(rows):
        input_ids[b, width - len(ids) :] = torch.tensor(ids, dtype=torch.long)
        attention[b, width - len(ids) :] = 1
    kwargs: dict[str, Any] = {"do_sample": sampling.temperature > 0}
    if sampling.temperature > 0:
        kwargs.update(temperature=sampling.temperature, top_p=sampling.top_p, top_k=0)
    input_ids, attention = input_ids.to(model.device), attention.to(model.device)
    torch.manual_seed(seed)
    with torch.inference_mode():
        cache = prefilled_cache(model, input_ids, attention, rows)
        if cache is not None:
            kwargs["past_key_values"] = cache
        out = model.generate(
            input_ids=input_ids,
            attention_mask=attention,
            max_new_tokens=sampling.max_new_tokens,
            pad_token_id=pad_id,
            eos_token_id=sorted(eos_ids),
            **kwargs,
        )
    return out[:, width:].tolist()  # (B, new)
