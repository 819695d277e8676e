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


# the shape of the small decoders these tests build from scratch
TINY_SHAPE = {
    "vocab_size": 300,
    "hidden_size": 64,
    "intermediate_size": 96,
    "num_hidden_layers": 2,
    "num_attention_heads": 2,
    "num_key_value_heads": 1,
    "head_dim": 32,
}


def tiny_llama(tied: bool, softcap: float | None = None):
    from transformers import LlamaConfig, LlamaForCausalLM

    config = LlamaConfig(**TINY_SHAPE, tie_word_embeddings=tied)
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


def grouped_batch(prompts=(5, 2, 7), responses=((4, 1, 6), (3, 3), (2, 5, 1)), vocab=300):
    """Groups of rows with one prompt each (lengths differ: left padding) and responses of
    different lengths (right padding), laid out as update.pack does; also the group sizes."""
    g = torch.Generator().manual_seed(3)
    rows = []
    for p_len, r_lens in zip(prompts, responses, strict=True):
        prompt = torch.randint(1, vocab, (p_len,), generator=g).tolist()
        rows += [(prompt, torch.randint(1, vocab, (n,), generator=g).tolist()) for n in r_lens]
    width_p = max(len(p) for p, _ in rows)
    width_r = max(len(r) for _, r in rows)
    ids_BL = torch.zeros((len(rows), width_p + width_r), dtype=torch.long)
    attention_BL = torch.zeros_like(ids_BL)
    for b, (prompt, response) in enumerate(rows):
        ids_BL[b, width_p - len(prompt) : width_p] = torch.tensor(prompt)
        ids_BL[b, width_p : width_p + len(response)] = torch.tensor(response)
        attention_BL[b, width_p - len(prompt) : width_p + len(response)] = 1
    positions_BL = (attention_BL.cumsum(-1) - 1).clamp(min=0)
    return ids_BL, attention_BL, positions_BL, ids_BL[:, width_p:], attention_BL[:, width_p:].bool()


def count_decoder_tokens(model):
    """A list that collects how many positions each embedding lookup (decoder forward) sees."""
    seen: list[int] = []
    model.get_input_embeddings().register_forward_hook(lambda m, a, out: seen.append(a[0].numel()))
    return seen


def run_with_grads(model, inputs, chunk_tokens, share, weights_BR):
    model.zero_grad()
    logp_BR, ent_BR = response_logprobs(
        model, *inputs, 1.3, chunk_tokens, entropy=True, share_prompts=share
    )
    (logp_BR * weights_BR).sum().backward()
    return logp_BR.detach(), ent_BR, {n: p.grad.clone() for n, p in model.named_parameters()}


@pytest.mark.parametrize("tied", [True, False])
@pytest.mark.parametrize("chunk_tokens", [0, 5, 1000])
def test_shared_prompts_equal_the_packed_rows_with_gradients(tied, chunk_tokens):
    model = tiny_llama(tied)
    ids_BL, attention_BL, positions_BL, targets_BR, mask_BR = grouped_batch()
    inputs = (ids_BL, attention_BL, positions_BL, targets_BR)
    weights_BR = torch.rand(targets_BR.shape, generator=torch.Generator().manual_seed(4)) * mask_BR
    seen = count_decoder_tokens(model)

    want_BR, want_ent_BR, want_grads = run_with_grads(model, inputs, 0, False, weights_BR)
    assert seen == [ids_BL.numel()]  # the packed rows: B x (P + R)
    seen.clear()
    got_BR, ent_BR, grads = run_with_grads(model, inputs, chunk_tokens, True, weights_BR)

    width_p, width_r = ids_BL.shape[1] - targets_BR.shape[1], targets_BR.shape[1]
    assert seen == [3 * width_p, 8 * width_r]  # 3 distinct prompts once, then 8 responses
    torch.testing.assert_close(got_BR[mask_BR], want_BR[mask_BR], atol=1e-5, rtol=1e-5)
    torch.testing.assert_close(ent_BR[mask_BR], want_ent_BR[mask_BR], atol=1e-5, rtol=1e-5)
    for name, grad in grads.items():
        torch.testing.assert_close(grad, want_grads[name], atol=1e-6, rtol=1e-4)
    assert any(g.abs().sum() > 0 for g in grads.values())


def test_distinct_prompts_take_the_same_calls_and_give_the_packed_results():
    """Without a repeated prompt the shared path runs G = B prompts (as many positions as the
    packed rows) rather than switching path on the contents, and still equals the packed rows;
    under checkpointing in training mode the rows run whole."""
    model = tiny_llama(tied=True)
    seen = count_decoder_tokens(model)
    distinct = grouped_batch(prompts=(5, 2, 7), responses=((4,), (3,), (2,)))[:4]
    with torch.no_grad():
        want_BR, _ = one_shot(model, *distinct, 1.0)
        seen.clear()
        got_BR, _ = response_logprobs(model, *distinct, 1.0, share_prompts=True)
    width_r = distinct[3].shape[1]
    assert seen == [distinct[0].numel() - 3 * width_r, 3 * width_r]
    torch.testing.assert_close(got_BR, want_BR, atol=1e-5, rtol=1e-5)

    grouped = grouped_batch()[:4]
    model.gradient_checkpointing_enable()
    model.train()  # Hugging Face turns the cache off here, so the rows must run whole
    seen.clear()
    got_BR, _ = response_logprobs(model, *grouped, 1.0, share_prompts=True)
    got_BR.sum().backward()
    assert seen[0] == grouped[0].numel()
    model.eval()  # checkpointing only applies in training mode: sharing is back on
    seen.clear()
    with torch.no_grad():
        response_logprobs(model, *grouped, 1.0, share_prompts=True)
    assert len(seen) == 2


def test_sliding_window_models_fall_back_to_whole_rows():
    from transformers import MistralConfig, MistralForCausalLM

    from prorl_train.logits import prompt_cache

    config = MistralConfig(**TINY_SHAPE, sliding_window=4)
    torch.manual_seed(0)
    model = MistralForCausalLM(config).float().eval()
    assert prompt_cache(model) is None
    assert prompt_cache(tiny_llama(tied=True).eval()) is not None
    seen = count_decoder_tokens(model)
    inputs = grouped_batch()[:4]
    with torch.no_grad():
        want_BR, _ = one_shot(model, *inputs, 1.0)
        seen.clear()
        got_BR, _ = response_logprobs(model, *inputs, 1.0, share_prompts=True)
    assert seen == [inputs[0].numel()]
    torch.testing.assert_close(got_BR, want_BR, atol=1e-5, rtol=1e-5)
