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

from prorl_train.losses import entropy_from_logits, token_logprobs


def unwrap(model: Any) -> Any:
    """The Hugging Face model inside a DeepSpeed/DDP wrapper (or the model itself)."""
    return getattr(model, "module", model)


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


def response_logprobs(
    model: Any,
    input_ids_BL: Tensor,
    attention_BL: Tensor,
    position_ids_BL: Tensor,
    targets_BR: Tensor,
    temperature: float,
    chunk_tokens: int = 0,
    entropy: bool = False,
) -> tuple[Tensor, Tensor | None]:
    """Log-probs (B, R) of `targets_BR` (the last R tokens of each row) and optional entropies.

    The rows hold prompt then response; position t's logits predict token t + 1, so the response
    tokens are predicted by positions L - R - 1 ... L - 2. Entropies are computed without
    gradients and returned on the CPU.
    """
    width_r = targets_BR.shape[1]
    device = input_ids_BL.device
    batch = input_ids_BL.shape[0]
    if chunk_tokens <= 0 or batch * width_r <= chunk_tokens:
        out = model(
            input_ids=input_ids_BL,
            attention_mask=attention_BL,
            position_ids=position_ids_BL,
            logits_to_keep=width_r + 1,
            use_cache=False,
        )
        logits_BRV = out.logits[:, :-1].float() / temperature
        logp_BR = token_logprobs(logits_BRV, targets_BR.to(device))
        ent_BR = None
        if entropy:
            with torch.no_grad():
                ent_BR = entropy_from_logits(logits_BRV.detach()).cpu()
        return logp_BR, ent_BR

    hidden_BLH = (
        unwrap(model)
        .get_decoder()(
            input_ids=input_ids_BL,
            attention_mask=attention_BL,
            position_ids=position_ids_BL,
            use_cache=False,
        )
        .last_hidden_state
    )
    hidden_NH = hidden_BLH[:, -(width_r + 1) : -1].reshape(batch * width_r, -1)
    targets_N = targets_BR.to(device).reshape(-1)
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
