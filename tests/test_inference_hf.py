"""The Hugging Face backend on a tiny random model and on the embedded model."""

from __future__ import annotations

import pytest

from prorl_eval.errors import UserError
from prorl_eval.inference import GenerationRequest, SamplingConfig, choose_backend, render_prompt
from prorl_eval.inference.hf import HFGenerator


@pytest.fixture(scope="module")
def tiny(tiny_model_dir):
    return HFGenerator(str(tiny_model_dir), batch_size=64)


REQUESTS = [GenerationRequest("What is 2 + 2?", n=3, seed=11), GenerationRequest("Hi", n=2, seed=5)]


def test_each_request_gets_its_n_completions(tiny):
    sampling = SamplingConfig(max_new_tokens=8)
    out = tiny.generate(REQUESTS, sampling)
    assert [len(c) for c in out] == [3, 2]
    for completions in out:
        for c in completions:
            assert 1 <= c.num_tokens <= 8
            assert c.finish_reason in {"stop", "length"}
            assert c.finish_reason == "stop" or c.num_tokens == 8
            assert c.prompt_tokens > 0


def test_sampling_is_reproducible_and_seed_dependent(tiny):
    sampling = SamplingConfig(temperature=1.0, top_p=1.0, max_new_tokens=12)
    first = tiny.generate(REQUESTS, sampling)
    again = tiny.generate(REQUESTS, sampling)
    assert [[c.text for c in cs] for cs in first] == [[c.text for c in cs] for cs in again]
    other = tiny.generate([GenerationRequest("What is 2 + 2?", n=3, seed=12)], sampling)
    assert [c.text for c in other[0]] != [c.text for c in first[0]]
    # A random model at T=1 gives n different samples of one prompt.
    assert len({c.text for c in first[0]}) > 1


def test_greedy_output_does_not_depend_on_batch_packing(tiny_model_dir, tiny):
    sampling = SamplingConfig(temperature=0.0, max_new_tokens=10)
    packed = tiny.generate(REQUESTS, sampling)
    one_by_one = HFGenerator(str(tiny_model_dir), batch_size=1).generate(REQUESTS, sampling)
    assert [[c.text for c in cs] for cs in packed] == [[c.text for c in cs] for cs in one_by_one]
    assert len({c.text for c in packed[0]}) == 1  # greedy: all n samples are equal


def test_batches_split_large_n(tiny_model_dir):
    gen = HFGenerator(str(tiny_model_dir), batch_size=4)
    requests = [GenerationRequest("a", 6, 0), GenerationRequest("b", 3, 0)]
    assert gen._batches(requests, [5, 5]) == [
        [(0, 4)],
        [(0, 2), (1, 2)],
        [(1, 1)],
    ]
    out = gen.generate([GenerationRequest("a", 6, 0)], SamplingConfig(max_new_tokens=4))
    assert len(out[0]) == 6


def test_prompt_rendering_with_and_without_chat_template(tiny):
    tok = tiny.tokenizer
    chat = tok.decode(render_prompt(tok, "Q?", SamplingConfig(system_prompt="Be brief.")))
    assert "<|im_start|>system\nBe brief.<|im_end|>" in chat
    assert chat.rstrip().endswith("<|im_start|>assistant")
    plain = tok.decode(render_prompt(tok, "Q?", SamplingConfig(chat_template=False)))
    assert plain == "Q?"


def test_backend_choice():
    assert choose_backend("hf") == "hf"
    assert choose_backend("auto") == "hf"  # no GPU here
    with pytest.raises(UserError, match="unknown backend"):
        choose_backend("tgi")


@pytest.mark.slow
def test_embedded_model_answers_with_its_chat_template(embedded_model_path):
    gen = HFGenerator(str(embedded_model_path))
    out = gen.generate(
        [GenerationRequest("What is the capital of France?", n=2, seed=0)],
        SamplingConfig(temperature=0.0, max_new_tokens=24),
    )
    assert "Paris" in out[0][0].text


def test_repeated_prompts_share_one_prefill_and_give_the_same_tokens(tiny, monkeypatch):
    """Each distinct prompt runs once; the n rows continue from copies of its cache and sample
    exactly what full per-row prefills give (greedy and seeded sampling)."""
    import torch

    from prorl_eval.inference import hf, prefix

    tok = tiny.tokenizer
    sampling = SamplingConfig(max_new_tokens=10)
    prompts = [render_prompt(tok, text, sampling) for text in ("What is 2 + 2?", "Hi", "A b c d")]
    rows = [prompts[0]] * 4 + [prompts[1]] * 3 + [prompts[2]]
    seen_rows = []
    hook = tiny.model.get_input_embeddings().register_forward_hook(
        lambda module, args, out: seen_rows.append(tuple(args[0].shape))
    )
    try:
        outputs = {}
        for mode in ("shared", "full"):
            if mode == "full":
                monkeypatch.setattr(prefix, "prefilled_cache", lambda *a, **k: None)
            seen_rows.clear()
            for temperature in (0.0, 1.0):
                config = SamplingConfig(temperature=temperature, top_p=1.0, max_new_tokens=10)
                outputs[mode, temperature] = hf.generate_left_padded(
                    tiny.model, rows, config, 7, tiny.pad_id, tiny.eos_ids
                )
            outputs[mode, "first forward"] = seen_rows[0]
    finally:
        hook.remove()
    width = max(len(r) for r in rows)
    assert outputs["shared", "first forward"] == (3, width - 1)  # 3 distinct prompts, once each
    assert outputs["full", "first forward"] == (len(rows), width)
    assert outputs["shared", 0.0] == outputs["full", 0.0]
    assert outputs["shared", 1.0] == outputs["full", 1.0]
    assert torch.tensor(outputs["shared", 1.0]).shape[0] == len(rows)


def test_batches_respect_the_padded_token_budget(tiny_model_dir):
    """rows x the batch's longest prompt never exceeds max_batch_tokens; a prompt longer than the
    budget still gets a batch of its own."""
    import random

    gen = HFGenerator(str(tiny_model_dir), batch_size=8, max_batch_tokens=100)
    rng = random.Random(0)
    requests = [GenerationRequest(str(i), rng.randint(1, 5), 0) for i in range(40)]
    lengths = [rng.randint(3, 60) for _ in requests] + [150]
    requests.append(GenerationRequest("long", 3, 0))
    batches = gen._batches(requests, lengths)
    taken = [0] * len(requests)
    for batch in batches:
        rows = sum(count for _, count in batch)
        width = max(lengths[i] for i, _ in batch)
        assert rows <= 8
        assert rows * width <= 100 or rows == 1
        for i, count in batch:
            taken[i] += count
    assert taken == [r.n for r in requests]  # every sample once, in request order
    assert batches[-3:] == [[(40, 1)], [(40, 1)], [(40, 1)]]
    flat = [i for batch in batches for i, count in batch for _ in range(count)]
    assert flat == sorted(flat)


def test_length_sorted_order_keeps_each_requests_greedy_completions(tiny_model_dir):
    """Ordering requests by prompt length (as the runner does for hf) packs other batches, but
    greedy completions of a request are the same in either order; sampled ones are reproducible
    for the same order (they are seeded per packed batch)."""
    from prorl_eval.inference.base import length_order

    gen = HFGenerator(str(tiny_model_dir), batch_size=4)
    questions = ["Hi", "What is the capital of a large country?", "2+2?", "Name a colour", "Go"]
    requests = [GenerationRequest(q, n=2, seed=i) for i, q in enumerate(questions)]
    greedy = SamplingConfig(temperature=0.0, max_new_tokens=6)
    order = length_order(gen, requests, greedy)
    lengths = gen.prompt_lengths(requests, greedy)
    assert [lengths[i] for i in order] == sorted(lengths) and order != list(range(5))
    file_order = gen.generate(requests, greedy)
    in_sorted = gen.generate([requests[i] for i in order], greedy)
    by_request = {i: out for i, out in zip(order, in_sorted, strict=True)}
    assert [by_request[i] for i in range(5)] == file_order
    sampled = SamplingConfig(temperature=1.0, top_p=1.0, max_new_tokens=6)
    sorted_requests = [requests[i] for i in order]
    assert gen.generate(sorted_requests, sampled) == gen.generate(sorted_requests, sampled)


def test_prompt_ids_in_a_request_are_used_as_given(tiny):
    sampling = SamplingConfig(temperature=0.0, max_new_tokens=5)
    ids = render_prompt(tiny.tokenizer, "What is 2 + 2?", sampling)
    rendered = tiny.generate([GenerationRequest("What is 2 + 2?", 1, 0)], sampling)
    given = tiny.generate([GenerationRequest("ignored", 1, 0, prompt_ids=tuple(ids))], sampling)
    assert given == rendered
    completion = given[0][0]
    assert completion.prompt_tokens == len(ids)
    assert len(completion.token_ids) == completion.num_tokens
    assert completion.truncated == (completion.finish_reason == "length")
