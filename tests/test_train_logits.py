"""Chunked response log-probs equal the one-shot computation, and keep no full logits tensor."""

from __future__ import annotations

import pytest
import torch

from prorl_train.logits import response_logprobs


@pytest.fixture(autouse=True, scope="module")
def _one_thread():
    before = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(before)


def tiny_llama(tied: bool, softcap: float | None = None):
    from transformers import LlamaConfig, LlamaForCausalLM

    config = LlamaConfig(
        vocab_size=300,
        hidden_size=64,
        intermediate_size=96,
        num_hidden_layers=2,
        num_attention_heads=2,
        num_key_value_heads=1,
        head_dim=32,
        tie_word_embeddings=tied,
    )
    torch.manual_seed(0)
    model = LlamaForCausalLM(config).float()
    if softcap:
        model.config.final_logit_softcapping = softcap
    return model


def batch(rows: int = 3, prompt: int = 5, response: int = 9):
    """Left-padded prompts then right-padded responses, as update.pack lays them out."""
    g = torch.Generator().manual_seed(1)
    ids_BL = torch.randint(1, 300, (rows, prompt + response), generator=g)
    attention_BL = torch.ones_like(ids_BL)
    attention_BL[0, :2] = 0  # a shorter prompt
    attention_BL[1, -3:] = 0  # a shorter response
    positions_BL = (attention_BL.cumsum(-1) - 1).clamp(min=0)
    return ids_BL, attention_BL, positions_BL, ids_BL[:, prompt:]


def one_shot(model, ids_BL, attention_BL, positions_BL, targets_BR, temperature):
    """The reference: full logits, log-softmax, gather (soft-cap as Gemma 2 defines it)."""
    logits_BLV = model(
        input_ids=ids_BL, attention_mask=attention_BL, position_ids=positions_BL
    ).logits.float()
    cap = getattr(model.config, "final_logit_softcapping", None)
    if cap:
        logits_BLV = torch.tanh(logits_BLV / cap) * cap
    width_r = targets_BR.shape[1]
    logp_BRV = (logits_BLV[:, -(width_r + 1) : -1] / temperature).log_softmax(-1)
    ent_BR = -(logp_BRV.exp() * logp_BRV).sum(-1)
    return logp_BRV.gather(-1, targets_BR[..., None])[..., 0], ent_BR


@pytest.mark.parametrize("tied", [True, False])
@pytest.mark.parametrize("chunk_tokens", [0, 1, 7, 27, 1000])
def test_chunked_logprobs_and_gradients_equal_the_one_shot_computation(tied, chunk_tokens):
    model = tiny_llama(tied)
    ids_BL, attention_BL, positions_BL, targets_BR = batch()
    weights_BR = torch.rand(targets_BR.shape, generator=torch.Generator().manual_seed(2))

    want_BR, want_ent_BR = one_shot(model, ids_BL, attention_BL, positions_BL, targets_BR, 1.2)
    (want_BR * weights_BR).sum().backward()
    want_grads = {n: p.grad.clone() for n, p in model.named_parameters()}
    model.zero_grad()

    got_BR, ent_BR = response_logprobs(
        model, ids_BL, attention_BL, positions_BL, targets_BR, 1.2, chunk_tokens, entropy=True
    )
    (got_BR * weights_BR).sum().backward()
    torch.testing.assert_close(got_BR, want_BR, atol=1e-5, rtol=1e-5)
    torch.testing.assert_close(ent_BR, want_ent_BR.detach(), atol=1e-5, rtol=1e-5)
    for name, param in model.named_parameters():
        torch.testing.assert_close(param.grad, want_grads[name], atol=1e-5, rtol=1e-4)


def test_soft_capped_logits_are_capped_in_chunks_too():
    model = tiny_llama(tied=True, softcap=0.5)  # tight enough to change every distribution
    ids_BL, attention_BL, positions_BL, targets_BR = batch()
    with torch.no_grad():
        want_BR, _ = one_shot(model, ids_BL, attention_BL, positions_BL, targets_BR, 1.0)
        got_BR, _ = response_logprobs(
            model, ids_BL, attention_BL, positions_BL, targets_BR, 1.0, chunk_tokens=4
        )
        model.config.final_logit_softcapping = None
        uncapped_BR, _ = one_shot(model, ids_BL, attention_BL, positions_BL, targets_BR, 1.0)
    torch.testing.assert_close(got_BR, want_BR, atol=1e-5, rtol=1e-5)
    assert not torch.allclose(got_BR, uncapped_BR, atol=1e-3)


def largest_saved_logits(fn, vocab: int) -> int:
    """Run fn under autograd; the numel of the biggest vocabulary-wide tensor kept for backward."""
    sizes: list[int] = [0]

    def pack(t):
        if t.dim() >= 2 and t.shape[-1] == vocab:
            sizes.append(t.numel())
        return t

    with torch.autograd.graph.saved_tensors_hooks(pack, lambda t: t):
        fn()
    return max(sizes)


def test_chunking_keeps_no_full_vocabulary_tensor_for_backward():
    model = tiny_llama(tied=True)
    ids_BL, attention_BL, positions_BL, targets_BR = batch(rows=4, response=40)
    vocab = model.config.vocab_size
    full = targets_BR.numel() * vocab

    def run(chunk):
        def fn():
            logp_BR, _ = response_logprobs(
                model, ids_BL, attention_BL, positions_BL, targets_BR, 1.0, chunk
            )
            logp_BR.sum().backward()

        return fn

    assert largest_saved_logits(run(0), vocab) >= full  # one-shot: (B, R, V) logits are kept
    assert largest_saved_logits(run(16), vocab) <= 16 * vocab  # chunked: one chunk at most
