"""Shared fixtures: the embedded model, a tiny random model, and a scripted fake generator."""

from __future__ import annotations

import os
from dataclasses import dataclass, field
from pathlib import Path

import pytest

from prorl_eval.inference.base import Completion, GenerationRequest, SamplingConfig

os.environ.setdefault("TRANSFORMERS_VERBOSITY", "error")
os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")


@pytest.fixture(autouse=True)
def _environment_restored():
    """The CLIs' `main` sets library defaults in os.environ (VLLM_LOGGING_LEVEL=WARNING, ...);
    called in-process by a test, they would leak into every later test (a vLLM engine built
    afterwards would log nothing below WARNING). Each test starts from the environment before it."""
    before = dict(os.environ)
    yield
    if os.environ != before:
        os.environ.clear()
        os.environ.update(before)


@pytest.fixture(scope="session")
def embedded_model_path():
    """The embedded SmolLM2-135M-Instruct, converted once into the prorl cache."""
    from prorl_eval.models import embedded_model_dir

    return embedded_model_dir()


def tiny_llama_config(tokenizer, **overrides):
    """A 2-layer Llama config (head_dim 32, which vLLM accepts) sized for `tokenizer`."""
    from transformers import LlamaConfig

    settings = {
        "vocab_size": len(tokenizer),
        "hidden_size": 64,
        "intermediate_size": 128,
        "num_hidden_layers": 2,
        "num_attention_heads": 2,
        "num_key_value_heads": 1,
        "head_dim": 32,
        "max_position_embeddings": 1024,
        "bos_token_id": tokenizer.bos_token_id,
        "eos_token_id": tokenizer.eos_token_id,
        "pad_token_id": tokenizer.pad_token_id,
        "tie_word_embeddings": True,
    }
    return LlamaConfig(**{**settings, **overrides})


@pytest.fixture(scope="session")
def tiny_model_dir(tmp_path_factory, embedded_model_path):
    """A 2-layer random Llama (head_dim 32, which vLLM accepts) with the embedded tokenizer."""
    import torch
    from transformers import AutoTokenizer, LlamaForCausalLM

    out = tmp_path_factory.mktemp("tiny-llama")
    tokenizer = AutoTokenizer.from_pretrained(embedded_model_path)
    config = tiny_llama_config(tokenizer)
    torch.manual_seed(0)
    LlamaForCausalLM(config).save_pretrained(out)
    tokenizer.save_pretrained(out)
    return out


@dataclass
class ScriptedGenerator:
    """A stand-in backend for runner tests: answers correctly for the first `correct_per_prompt`
    samples of each prompt's *original* request (by sample position), wrongly otherwise.

    It records every request so tests can check exactly what was generated.
    """

    answers: dict[str, str]
    correct_fraction: float = 0.5
    fail_on_call: int | None = None
    backend: str = "hf"
    calls: list[list[GenerationRequest]] = field(default_factory=list)
    closed: bool = False

    def generate(
        self, requests: list[GenerationRequest], sampling: SamplingConfig
    ) -> list[list[Completion]]:
        if self.fail_on_call is not None and len(self.calls) + 1 == self.fail_on_call:
            raise KeyboardInterrupt
        self.calls.append(list(requests))
        out = []
        for request in requests:
            answer = self.answers[request.prompt]
            completions = []
            for j in range(request.n):
                good = (request.seed + j) % 100 < self.correct_fraction * 100
                text = f"<answer>{answer if good else 'wrong'}</answer>"
                completions.append(Completion(text, 5, "stop", 10))
            out.append(completions)
        return out

    def close(self) -> None:
        self.closed = True

    @property
    def generated(self) -> int:
        return sum(r.n for call in self.calls for r in call)


def shared_data_dir() -> Path:
    """The offline benchmark copies: $PRORL_DATA_DIR, else ../shared/data beside the checkout."""
    env = os.environ.get("PRORL_DATA_DIR")
    return Path(env) if env else Path(__file__).resolve().parents[2] / "shared" / "data"


@dataclass
class LengthSortingGenerator(ScriptedGenerator):
    """A scripted backend that, like `hf`, asks for its work by prompt length (`prompt_lengths`:
    here the prompt's characters)."""

    def prompt_lengths(self, requests: list[GenerationRequest], sampling: SamplingConfig):
        return [len(request.prompt) for request in requests]
