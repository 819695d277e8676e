"""Hugging Face transformers backend (CPU or GPU, always available).

Requests are packed into batches of at most `batch_size` sequences: each prompt is repeated `n`
times inside the batch (left padding), so the n samples of a prompt are generated together, and
several short prompts share one `generate` call.
"""

from __future__ import annotations

from typing import Any

from prorl_eval.inference.base import Completion, GenerationRequest, SamplingConfig, render_prompt


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
        model: Any = None,
        tokenizer: Any = None,
    ) -> None:
        from transformers import AutoModelForCausalLM, AutoTokenizer

        self.device = pick_device(device)
        self.batch_size = max(1, batch_size)
        self.tokenizer = tokenizer or AutoTokenizer.from_pretrained(model_path, revision=revision)
        if model is None:
            model = AutoModelForCausalLM.from_pretrained(
                model_path, revision=revision, dtype=pick_dtype(dtype, self.device)
            )
            model.to(self.device)
        self.model = model.eval()
        self.pad_id = self.tokenizer.pad_token_id
        if self.pad_id is None:
            self.pad_id = self.tokenizer.eos_token_id
        self.eos_ids = self._eos_ids()

    def _eos_ids(self) -> set[int]:
        ids = self.model.generation_config.eos_token_id
        if ids is None:
            ids = self.tokenizer.eos_token_id
        return set(ids if isinstance(ids, list) else [ids])

    def generate(
        self, requests: list[GenerationRequest], sampling: SamplingConfig
    ) -> list[list[Completion]]:
        prompts = [render_prompt(self.tokenizer, r.prompt, sampling) for r in requests]
        results: list[list[Completion]] = [[] for _ in requests]
        for batch in self._batches(requests):
            # batch: list of (request index, number of samples from it in this batch)
            rows = [prompts[i] for i, count in batch for _ in range(count)]
            seed = requests[batch[0][0]].seed + sum(c for _, c in batch) * 7919
            texts = self._generate_rows(rows, sampling, seed)
            pos = 0
            for i, count in batch:
                results[i].extend(texts[pos : pos + count])
                pos += count
        return results

    def _batches(self, requests: list[GenerationRequest]) -> list[list[tuple[int, int]]]:
        """Split requests into batches of <= batch_size rows, splitting a large n if needed."""
        batches: list[list[tuple[int, int]]] = []
        current: list[tuple[int, int]] = []
        room = self.batch_size
        for i, request in enumerate(requests):
            left = request.n
            while left > 0:
                take = min(left, room)
                current.append((i, take))
                left -= take
                room -= take
                if room == 0:
                    batches.append(current)
                    current, room = [], self.batch_size
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
        return [self._completion(tokens, len(ids)) for tokens, ids in pairs]

    def _completion(self, tokens: list[int], prompt_tokens: int) -> Completion:
        for end, token in enumerate(tokens):
            if token in self.eos_ids:
                text = self.tokenizer.decode(tokens[:end], skip_special_tokens=True)
                return Completion(text, end + 1, "stop", prompt_tokens)
        text = self.tokenizer.decode(tokens, skip_special_tokens=True)
        return Completion(text, len(tokens), "length", prompt_tokens)

    def close(self) -> None:
        self.model = None


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
