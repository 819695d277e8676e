"""What every caller of a Hugging Face model needs, written once: its padding id, the ids that end
a response, where a generated response ends, and the model under a training wrapper.

The eval backend (`hf.py`), the trainer's rollout engines (`prorl_train/rollout.py`,
`vllm_rollout.py`), its log-prob passes (`logits.py`) and its DeepSpeed wrapper
(`deepspeed_engine.py`) all import these, so they stop on the same ids and cut responses the same
way.

Example:
    >>> cut_at_eos([5, 7, 2, 0, 0], {2})
    ([5, 7, 2], True)
    >>> cut_at_eos([5, 7], {2})
    ([5, 7], False)
"""

from __future__ import annotations

from typing import Any


def pad_token_id(tokenizer: Any) -> int:
    """The tokenizer's padding id, else its end-of-sequence id (models without a pad token)."""
    pad = tokenizer.pad_token_id
    return tokenizer.eos_token_id if pad is None else pad


def eos_token_ids(model: Any, tokenizer: Any) -> list[int]:
    """The ids that end a response, sorted: the model's generation config (one id or a list),
    else the tokenizer's end-of-sequence id."""
    eos = getattr(getattr(unwrap_model(model), "generation_config", None), "eos_token_id", None)
    eos = tokenizer.eos_token_id if eos is None else eos
    return sorted(set(eos if isinstance(eos, list) else [eos]))


def cut_at_eos(tokens: list[int], eos_ids: set[int] | list[int]) -> tuple[list[int], bool]:
    """(the response up to and including its first stop token, whether one was found).

    Generated rows of a batch run to the batch's longest, so anything after the first stop token
    (padding, or tokens sampled after the end) is not part of the response.
    """
    stops = eos_ids if isinstance(eos_ids, set) else set(eos_ids)
    for end, token in enumerate(tokens):
        if token in stops:
            return list(tokens[: end + 1]), True
    return list(tokens), False


def unwrap_model(model: Any) -> Any:
    """The bare model under DeepSpeed / DDP (`.module`) and `torch.compile` (`._orig_mod`)
    wrappers, at any depth, so parameter names and methods are the checkpoint's; the model itself
    when it is not wrapped."""
    for attr in ("module", "_orig_mod"):
        while hasattr(model, attr) and hasattr(getattr(model, attr), "named_parameters"):
            model = getattr(model, attr)
    return model
