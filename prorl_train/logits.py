"""Response-token log-probs without materialising the whole (B, R, V) logits tensor.

Why: a float32 logits tensor is B x R x V x 4 bytes. At ProRL's lengths (16k response tokens) and
a 152k vocabulary (Qwen2) that is ~10 GB for ONE sequence, and autograd keeps it for the backward
pass, so a long-CoT update runs out of memory in the vocabulary projection, not in the transformer.

How: run the decoder once for its last hidden states (B, R, H), then project to the vocabulary in
chunks of `chunk_tokens` response positions. Each chunk's logits become log-probs (and entropies
when asked) and are dropped; under autograd each chunk is wrapped in activation checkpointing, so
the backward pass recomputes one chunk's logits at a time. Peak logits memory is then
chunk_tokens x V floats instead of B x R x V, for the price of a second vocabulary projection in
the backward pass (small next to the transformer). Results equal the unchunked computation up to
float rounding (tested).

When the micro-batch has at most `chunk_tokens` response positions (or chunking is off, 0), the
plain path runs: one forward with `logits_to_keep`, which is what short-response runs want.

Shared prompts: the n responses of a GRPO group share one prompt, which is most of each row
when responses are short. With `share_prompts` each distinct prompt runs once with the key/value
cache on, the cache is expanded to its group's rows and the responses run on top of it; the
response hidden states then take the same (chunked or one-shot) projection. Same maths as the
packed rows, including gradients (they flow back through the expanded cache); tested against it.

Models: any Hugging Face causal LM whose output projection is `get_output_embeddings()` applied to
`get_decoder()`'s last hidden state (Llama, Qwen2/3, Mistral, Phi-3, SmolLM, ...). A final-logit
soft-cap (Gemma 2) is applied when the config names one.

Example:
    >>> logp_BR, ent_BR = response_logprobs(  # doctest: +SKIP
    ...     model, ids_BL, attn_BL, pos_BL, targets_BR, temperature=1.2, chunk_tokens=4096)
"""

from __future__ import annotations

from typing import Any

import torch
from torch import Tensor
from torch.utils.checkpoint import checkpoint

from prorl_eval.inference.hf_common import unwrap_model as unwrap
from prorl_train.losses import entropy_from_logits, token_logprobs


def project(model: Any, hidden_NH: Tensor, temperature: float) -> Tensor:
    """Vocabulary logits (N, V) in float32 for hidden states (N, H), divided by temperature."""
    hf = unwrap(model)
    logits_NV = hf.get_output_embeddings()(hidden_NH).float()
    cap = getattr(hf.config, "final_logit_softcapping", None)
    if cap:
        logits_NV = torch.tanh(logits_NV / cap) * cap
    return logits_NV / temperature


def _chunk_logprobs(model: Any, hidden_NH: Tensor, targets_N: Tensor, temperature: float) -> Tensor:
    logits_1NV = project(model, hidden_NH, temperature).unsqueeze(0)
    return token_logprobs(logits_1NV, targets_N.unsqueeze(0)).squeeze(0)


def _chunk_logprobs_entropy(
    model: Any, hidden_NH: Tensor, targets_N: Tensor, temperature: float
) -> tuple[Tensor, Tensor]:
    """Log-probs and entropies (N,) of one chunk, both with gradients (an entropy bonus)."""
    logits_1NV = project(model, hidden_NH, temperature).unsqueeze(0)
    logp_N = token_logprobs(logits_1NV, targets_N.unsqueeze(0)).squeeze(0)
    return logp_N, entropy_from_logits(logits_1NV).squeeze(0)


def prompt_cache(model: Any) -> Any | None:
    """An empty key/value cache that prompt sharing can expand, or None where it cannot work.

    None when gradient checkpointing is on in training mode (Hugging Face then turns the cache
    off) or when a layer keeps anything but the plain full-attention cache (sliding-window,
    hybrid or recurrent layers, which `reorder_cache` plus a tail forward may not reproduce).
    """
    from prorl_eval.inference.prefix import shareable_cache

    hf = unwrap(model)
    if hf.training and getattr(hf, "is_gradient_checkpointing", False):
        return None
    return shareable_cache(hf)


def distinct_prompts(input_ids_BL: Tensor, attention_BL: Tensor, width_p: int) -> Tensor:
    """For each row, the index of its prompt among the distinct prompts (first-seen order).

    Two rows share a prompt when their first `width_p` columns hold the same tokens at the same
    (unpadded) places, i.e. when the packed prompts are identical.
    """
    key_BP = torch.where(attention_BL[:, :width_p].bool(), input_ids_BL[:, :width_p], -1).cpu()
    index: dict[tuple[int, ...], int] = {}
    return torch.tensor([index.setdefault(tuple(row), len(index)) for row in key_BP.tolist()])


def _run(model: Any, chunked: bool, keep: int, **inputs: Any) -> Tensor:
    """The last `keep` positions' logits (one-shot projection) or hidden states (chunked).

    Logits come from the model's own forward (for DeepSpeed the engine's, so its hooks fire);
    hidden states from its decoder, to be projected in chunks.
    """
    if chunked:
        return unwrap(model).get_decoder()(**inputs).last_hidden_state[:, -keep:]
    return model(**inputs, logits_to_keep=keep).logits


def _shared_prefix(
    model: Any,
    cache: Any,
    row_of_B: Tensor,
    input_ids_BL: Tensor,
    attention_BL: Tensor,
    position_ids_BL: Tensor,
    width_r: int,
    chunked: bool,
) -> Tensor:
    """Logits or hidden states (B, R, ...) predicting the responses, each prompt run once.

    The distinct prompts (G rows) run with the cache on; the cache is expanded to the B rows
    (`reorder_cache`, an index_select, so gradients flow back into the prompts' keys/values) and
    the responses run on top of it. The decoder sees G x P + B x R positions, not B x (P + R).
    """
    width_p = input_ids_BL.shape[1] - width_r
    row_of_B = row_of_B.to(input_ids_BL.device)
    firsts_G = torch.tensor(
        [row_of_B.tolist().index(g) for g in range(int(row_of_B.max()) + 1)],
        device=input_ids_BL.device,
    )
    head_G1 = _run(
        model,
        chunked,
        1,
        input_ids=input_ids_BL[firsts_G, :width_p],
        attention_mask=attention_BL[firsts_G, :width_p],
        position_ids=position_ids_BL[firsts_G, :width_p],
        past_key_values=cache,
        use_cache=True,
    )
    cache.reorder_cache(row_of_B)  # (G, ...) -> (B, ...)
    tail_BR = _run(
        model,
        chunked,
        width_r,
        input_ids=input_ids_BL[:, width_p:],
        attention_mask=attention_BL,
        position_ids=position_ids_BL[:, width_p:],
        past_key_values=cache,
        use_cache=True,
    )
    return torch.cat([head_G1[row_of_B], tail_BR[:, :-1]], dim=1)


def _shared_prompt_outputs(
    model: Any,
    input_ids_BL: Tensor,
    attention_BL: Tensor,
    position_ids_BL: Tensor,
    width_r: int,
    chunked: bool,
) -> Tensor | None:
    """`_shared_prefix`'s outputs when every row's prompt ends unpadded and the model's cache can
    be shared (`prompt_cache`), else None (the caller then runs every row whole)."""
    width_p = input_ids_BL.shape[1] - width_r
    if width_p <= 0 or not bool(attention_BL[:, width_p - 1].all()):
        return None
    cache = prompt_cache(model)
    if cache is None:
        return None
    row_of_B = distinct_prompts(input_ids_BL, attention_BL, width_p)
    return _shared_prefix(
        model, cache, row_of_B, input_ids_BL, attention_BL, position_ids_BL, width_r, chunked
    )


def response_logprobs(
    model: Any,
    input_ids_BL: Tensor,
    attention_BL: Tensor,
    position_ids_BL: Tensor,
    targets_BR: Tensor,
    temperature: float,
    chunk_tokens: int = 0,
    entropy: bool = False,
    share_prompts: bool = False,
    entropy_grad: bool = False,
) -> tuple[Tensor, Tensor | None]:
    """Log-probs (B, R) of `targets_BR` (the last R tokens of each row) and optional entropies.

    The rows hold prompt then response; position t's logits predict token t + 1, so the response
    tokens are predicted by positions L - R - 1 ... L - 2. Entropies are computed without
    gradients and returned on the CPU; with `entropy_grad` (an entropy bonus in the loss) they
    keep their gradients and stay on the device. With `share_prompts`, rows with identical
    prompts run their prompt once (`_shared_prefix`) where the model's cache allows it
    (`prompt_cache`); otherwise, and without it, every row runs whole. A micro-batch without a
    repeated prompt takes the shared path too (G = B: as many positions as the packed rows), so
    the forward calls never depend on the contents: ZeRO-3 ranks, each holding other
    micro-batches, must make the same calls, and a multi-process run must compute what one
    process does.
    """
    width_r = targets_BR.shape[1]
    targets_BR = targets_BR.to(input_ids_BL.device)
    chunked = 0 < chunk_tokens < input_ids_BL.shape[0] * width_r
    inputs = (input_ids_BL, attention_BL, position_ids_BL)
    out_BR = _shared_prompt_outputs(model, *inputs, width_r, chunked) if share_prompts else None
    if out_BR is None:
        out_BR = _run(
            model,
            chunked,
            width_r + 1,
            input_ids=input_ids_BL,
            attention_mask=attention_BL,
            position_ids=position_ids_BL,
            use_cache=False,
        )[:, :-1]
    if chunked and entropy_grad:
        return _chunked_with_entropy_grad(model, out_BR, targets_BR, temperature, chunk_tokens)
    if chunked:
        return _chunked_logprobs(model, out_BR, targets_BR, temperature, chunk_tokens, entropy)
    logits_BRV = out_BR.float() / temperature
    logp_BR = token_logprobs(logits_BRV, targets_BR)
    if entropy_grad:
        return logp_BR, entropy_from_logits(logits_BRV)
    ent_BR = None
    if entropy:
        with torch.no_grad():
            ent_BR = entropy_from_logits(logits_BRV.detach()).cpu()
    return logp_BR, ent_BR


def _chunked_with_entropy_grad(
    model: Any, hidden_BRH: Tensor, targets_BR: Tensor, temperature: float, chunk_tokens: int
) -> tuple[Tensor, Tensor]:
    """Chunked log-probs and entropies, both with gradients; each chunk checkpointed, so the
    backward pass recomputes one chunk's logits at a time."""
    batch, width_r = targets_BR.shape
    hidden_NH = hidden_BRH.reshape(batch * width_r, -1)
    targets_N = targets_BR.reshape(-1)
    grad = torch.is_grad_enabled() and hidden_NH.requires_grad
    logp_parts, ent_parts = [], []
    for start in range(0, hidden_NH.shape[0], chunk_tokens):
        args = (
            model,
            hidden_NH[start : start + chunk_tokens],
            targets_N[start : start + chunk_tokens],
        )
        if grad:
            logp_C, ent_C = checkpoint(
                _chunk_logprobs_entropy, *args, temperature, use_reentrant=False
            )
        else:
            logp_C, ent_C = _chunk_logprobs_entropy(*args, temperature)
        logp_parts.append(logp_C)
        ent_parts.append(ent_C)
    shape = (batch, width_r)
    return torch.cat(logp_parts).reshape(shape), torch.cat(ent_parts).reshape(shape)


def _chunked_logprobs(
    model: Any,
    hidden_BRH: Tensor,
    targets_BR: Tensor,
    temperature: float,
    chunk_tokens: int,
    entropy: bool,
) -> tuple[Tensor, Tensor | None]:
    """Log-probs (and entropies) from hidden states, projected `chunk_tokens` positions at once."""
    batch, width_r = targets_BR.shape
    hidden_NH = hidden_BRH.reshape(batch * width_r, -1)
    targets_N = targets_BR.reshape(-1)
    grad = torch.is_grad_enabled() and hidden_NH.requires_grad
    logp_parts, ent_parts = [], []
    for start in range(0, hidden_NH.shape[0], chunk_tokens):
        h_CH = hidden_NH[start : start + chunk_tokens]
        t_C = targets_N[start : start + chunk_tokens]
        if grad:  # keep no chunk's logits for backward: recompute them there
            logp_C = checkpoint(_chunk_logprobs, model, h_CH, t_C, temperature, use_reentrant=False)
        else:
            logp_C = _chunk_logprobs(model, h_CH, t_C, temperature)
        logp_parts.append(logp_C)
        if entropy:
            with torch.no_grad():
                logits_1CV = project(model, h_CH.detach(), temperature).unsqueeze(0)
                ent_parts.append(entropy_from_logits(logits_1CV).squeeze(0).cpu())
    logp_BR = torch.cat(logp_parts).reshape(batch, width_r)
    ent_BR = torch.cat(ent_parts).reshape(batch, width_r) if entropy else None
    return logp_BR, ent_BR
