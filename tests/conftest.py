"""Shared fixtures and helpers: the embedded model, a tiny random model, a scripted fake generator,
the shared data folder, and synthetic run folders for the report tests."""

from __future__ import annotations

import json
import os
from dataclasses import dataclass, field
from pathlib import Path

import pytest

from prorl_eval.inference.base import Completion, GenerationRequest, SamplingConfig
from prorl_eval.results import summarize

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


# ------------------------------------------------ synthetic run folders for the report tests

REPORT_N = 8
REPORT_KS = [1, 2, 4, 8]
REPORT_RESAMPLES = 400
REPORT_SEED = 3

# Per run: task -> per-problem correct counts (each problem has REPORT_N samples).
REPORT_RUNS = {
    "base": {
        "aime24": [0, 1, 2, 8, 3],
        "math500": [4, 4, 8, 0, 2, 6],
        "humaneval": [0, 0, 1, 2],
        "gpqa_diamond": [2, 2, 2, 2],
        "gym:basic_arithmetic": [0, 0, 0, 1, 1],
        "gym:chain_sum": [1, 2, 3, 4],
        "gym:spell_backward": [8, 8, 4, 0],
    },
    "step500": {
        "aime24": [1, 2, 2, 8, 3],
        "math500": [5, 4, 8, 0, 3, 6],
        "humaneval": [0, 1, 2, 3],
        "gpqa_diamond": [2, 3, 2, 2],
        "gym:basic_arithmetic": [0, 2, 1, 3, 1],
        "gym:chain_sum": [2, 2, 3, 4],
        "gym:spell_backward": [8, 8, 6, 0],
    },
    "final": {  # no gym:spell_backward: left out of the logic average
        "aime24": [2, 2, 2, 8, 3],
        "math500": [5, 4, 8, 0, 3, 6],  # equal to step500: a tie, both bold
        "humaneval": [1, 2, 4, 5],
        "gpqa_diamond": [1, 1, 1, 1],
        "gym:basic_arithmetic": [1, 2, 3, 3, 3],
        "gym:chain_sum": [4, 4, 4, 4],
    },
}


def report_sample_rows(spec: dict[str, list[int]], model: str) -> list[dict]:
    rows = []
    for task, counts in spec.items():
        for pid, c in enumerate(counts):
            for i in range(REPORT_N):
                score = float(i < c)
                rows.append(
                    {
                        "task": task,
                        "problem_id": str(pid),
                        "sample_idx": i,
                        "score": score,
                        "correct": bool(score),
                        "model": model,
                    }
                )
    return rows


def write_report_run(
    folder: Path, spec: dict[str, list[int]], ks=REPORT_KS, samples: bool = True
) -> Path:
    folder.mkdir(parents=True)
    rows = report_sample_rows(spec, model=f"model-{folder.name}")
    if samples:
        (folder / "samples.jsonl").write_text("".join(json.dumps(r) + "\n" for r in rows))
    results = {
        "tasks": summarize(rows, ks, resamples=REPORT_RESAMPLES, seed=REPORT_SEED),
        "model": f"model-{folder.name}",
        "n": REPORT_N,
        "ks": ks,
        "bootstrap": {"resamples": REPORT_RESAMPLES, "seed": REPORT_SEED},
    }
    (folder / "results.json").write_text(json.dumps(results))
    return folder


@dataclass
class LengthSortingGenerator(ScriptedGenerator):
    """A scripted backend that, like `hf`, asks for its work by prompt length (`prompt_lengths`:
    here the prompt's characters)."""

    def prompt_lengths(self, requests: list[GenerationRequest], sampling: SamplingConfig):
        return [len(request.prompt) for request in requests]
