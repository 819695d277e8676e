"""Run each distinct prompt once: the key/value cache of a prompt shared by its n samples.

The n samples of a prompt (eval's `--n`, a GRPO group) start from the same tokens. Computing the
prompt once and copying its keys and values to the n rows gives the same next-token distributions
as running every row in full, at 1/n of the prompt's cost: with long prompts and short answers the
prompt dominates (a 150-token puzzle and a 32-token answer at n = 32 spend most of a batch's work
on 32 copies of the prompt).

`shareable_cache(model)` is an empty cache that can be expanded row-wise, or None for models whose
layers keep anything but plain full-attention caches (sliding-window, hybrid or recurrent layers,
where an expanded cache plus a tail forward may not reproduce the full forward); callers then run
every row in full. The trainer's log-prob passes (`prorl_train.logits`) share prompts the same way.

Example:
    >>> rows_of_prompts([[1, 2], [1, 2], [3]])
    ([0, 0, 1], [0, 2])
"""

from __future__ import annotations

from typing import Any


def shareable_cache(model: Any) -> Any | None:
    """An empty `DynamicCache` that prompt sharing can expand, or None where it cannot work."""
    from transformers import DynamicCache
    from transformers.cache_utils import DynamicLayer

    try:
        cache = DynamicCache(config=model.config)
    except (AttributeError, KeyError, TypeError, ValueError):
        return None
    if not cache.layers or any(type(layer) is not DynamicLayer for layer in cache.layers):
        return None
    return cache


def rows_of_prompts(rows: list[list[int]]) -> tuple[list[int], list[int]]:
    """(the index of each row's prompt among the distinct ones, the first row of each prompt)."""
    index: dict[tuple[int, ...], int] = {}
    prompt_of_row = [index.setdefault(tuple(row), len(index)) for row in rows]
    firsts = [prompt_of_row.index(g) for g in range(len(index))]
    return prompt_of_row, firsts


def position_ids(attention_BT: Any) -> Any:
    """Positions of left-padded rows as Hugging Face `generate` numbers them (padding at 1)."""
    positions = attention_BT.long().cumsum(-1) - 1
    return positions.masked_fill(attention_BT == 0, 1)


def prefilled_cache(model: Any, input_ids_BT: Any, attention_BT: Any, rows: list[list[int]]):
    """A cache holding every row's prompt but its last token, each distinct prompt computed once
    and copied to its rows; None when no prompt repeats or the model's cache cannot be shared.

    `generate(input_ids_BT, past_key_values=cache)` then runs only the last prompt token of each
    row before sampling, exactly as it would after its own prefill.
    """
    import torch

    prompt_of_row, firsts = rows_of_prompts(rows)
    if len(firsts) == len(rows) or input_ids_BT.shape[1] < 2:
        return None
    cache = shareable_cache(model)
    if cache is None:
        return None
    device = input_ids_BT.device
    first_G = torch.tensor(firsts, device=device)
    head_GT = slice(None), slice(0, input_ids_BT.shape[1] - 1)
    attention_GT = attention_BT[first_G][head_GT]
    model(
        input_ids=input_ids_BT[first_G][head_GT],
        attention_mask=attention_GT,
        position_ids=position_ids(attention_GT),
        past_key_values=cache,
        use_cache=True,
        logits_to_keep=1,
    )
    cache.reorder_cache(torch.tensor(prompt_of_row, device=device))  # (G, ...) -> (B, ...)
    return cache
