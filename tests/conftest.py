"""Shared fixtures and helpers: the embedded model, a tiny random model, a scripted fake generator,
the shared data folder, synthetic run folders for the report tests, and the trainer tests' task,
tiny-model runs, random rollouts and torchrun launcher."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING

import pytest

from prorl_eval.inference.base import Completion, GenerationRequest, SamplingConfig
from prorl_eval.results import summarize

if TYPE_CHECKING:
    from prorl_train.rollout import Rollouts

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


def run_cli(*args: str, timeout: int = 300) -> subprocess.CompletedProcess:
    """`python -m prorl_eval.cli ARGS` in a fresh process (unbuffered), its output captured."""
    env = {**os.environ, "PYTHONUNBUFFERED": "1"}
    return subprocess.run(
        [sys.executable, "-m", "prorl_eval.cli", *args],
        capture_output=True,
        text=True,
        timeout=timeout,
        env=env,
    )


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


# ----------------------------------------------------------------------------- training helpers

FIXTURES = Path(__file__).parent / "fixtures" / "train"
# A `custom:` regex task: reward 1 for a reply starting with A, B or C.
CAPS = (
    f"custom:{FIXTURES}/capital_start.jsonl?prompt=prompt&answer=pattern&verifier=regex&id=id"
    "&instruction=none"
)


@pytest.fixture(scope="module")
def peaked_model_dir(tiny_model_dir, tmp_path_factory):
    """The tiny Llama with a prior for CAPS: the embeddings of the letters A..P point along the
    hidden state before the response, so most first tokens are one of those letters."""
    import torch
    from transformers import AutoModelForCausalLM, AutoTokenizer

    from prorl_eval.inference.base import SamplingConfig, render_prompt

    model = AutoModelForCausalLM.from_pretrained(tiny_model_dir, dtype=torch.float32)
    tok = AutoTokenizer.from_pretrained(tiny_model_dir)
    ids = torch.tensor([render_prompt(tok, "Say something.", SamplingConfig())])
    with torch.no_grad():
        h = model(ids, output_hidden_states=True).hidden_states[-1][0, -1]
        g = torch.Generator().manual_seed(0)
        emb = model.get_input_embeddings().weight
        for letter in "ABCDEFGHIJKLMNOP":
            token = tok.convert_tokens_to_ids(letter)
            emb[token] = 1.28 * h / h.norm() + 0.02 * torch.randn(h.shape, generator=g)
    out = tmp_path_factory.mktemp("peaked")
    model.save_pretrained(out)
    tok.save_pretrained(out)
    return out


def settings(model_dir: Path, **top) -> dict:
    """A run that takes ~1 s a step on one core."""
    return {
        "steps": 6,
        "batch_size": 8,
        "save_every": 2,
        "keep_last": 1,
        "keep_every": 2,  # milestones: every checkpoint stays despite keep_last 1
        "seed": 0,
        "tensorboard": False,
        "model": {"name": str(model_dir), "device": "cpu", "dtype": "float32", "cpu_threads": 1},
        "data": {"mix": {CAPS: 1.0}},
        "rollout": {
            "n": 8,
            "temperature": 1.0,
            "length_schedule": [[1, 1]],
            "overlong": "keep",
            "max_extra_rounds": 1,
        },
        "loss": {"kl_beta": 0.001, "mini_batch_size": 2, "micro_batch_size": 16},
        "optim": {"lr": 1e-3},
        "val": {"every": 2, "limit": 4, "n": 2, "temperature": 1.0},
        "resets": {"every": 4},
        **top,
    }


def make_config(tmp_path: Path, data: dict, out: Path):
    """`data` written as a YAML file beside the run; (the file, the config loaded from it)."""
    import yaml

    from prorl_train.config import load_config

    path = tmp_path / f"{out.name}.yaml"
    path.write_text(yaml.safe_dump(data))
    return path, load_config(None, path, out=str(out))


def alternating_reward(group: int, j: int) -> float:
    return float((j + group) % 2)


def make_rollouts(
    groups: int = 3,
    n: int = 4,
    seed: int = 0,
    reward: Callable[[int, int], float] = alternating_reward,
    masked: tuple[tuple[int, int], ...] = (),
) -> Rollouts:
    """Random prompts/responses of varied lengths; response j of group g gets `reward(g, j)`
    (by default mixed within each group) and is left out of the loss when (g, j) is `masked`."""
    import torch

    from prorl_train.rollout import Rollouts

    g = torch.Generator().manual_seed(seed)
    r = Rollouts()
    for group in range(groups):
        prompt = torch.randint(5, 1000, (int(torch.randint(2, 7, (1,), generator=g)),), generator=g)
        for j in range(n):
            length = int(torch.randint(1, 6, (1,), generator=g))
            r.prompt_ids.append(prompt.tolist())
            r.response_ids.append(torch.randint(5, 1000, (length,), generator=g).tolist())
            r.rewards.append(reward(group, j))
            r.correct.append(bool(r.rewards[-1]))
            r.truncated.append(False)
            r.loss_mask.append((group, j) not in masked)
            r.group_ids.append(100 + group)
            r.tasks.append("t")
            r.domains.append("d")
            r.texts.append("")
    return r


def recording_optimizer(params):
    """An SGD with lr 0 whose `seen` lists the gradients of each step it was asked to take (the
    update tests compare them with a hand-written loss's)."""
    import torch

    class RecordingOptimizer(torch.optim.SGD):
        def __init__(self, params):
            super().__init__(params, lr=0.0)
            self.seen: list[list[torch.Tensor | None]] = []

        def step(self, closure=None):
            params = [p for group in self.param_groups for p in group["params"]]
            self.seen.append([p.grad.clone() if p.grad is not None else None for p in params])

    return RecordingOptimizer(params)


def torchrun(*args: str, timeout: float = 600) -> subprocess.CompletedProcess:
    """`python -m torch.distributed.run` with 2 processes on this machine; fails the test unless
    every process exits 0."""
    env = {**os.environ, "OMP_NUM_THREADS": "1", "PYTHONUNBUFFERED": "1"}
    command = [sys.executable, "-m", "torch.distributed.run", "--nproc_per_node", "2"]
    command += ["--master_port", str(29400 + os.getpid() % 500), *args]
    done = subprocess.run(command, capture_output=True, text=True, env=env, timeout=timeout)
    assert done.returncode == 0, done.stderr[-4000:]
    return done


# ------------------------------------------------------------------ vLLM engines


def logprob_gap(engine, model, ids: list[int]) -> float:
    """Largest |log p| difference between a vLLM rollout engine and `model` over the tokens of
    `ids` (the engine's prompt log-probs against the model's own forward pass)."""
    import torch
    from vllm import SamplingParams

    params = SamplingParams(max_tokens=1, temperature=0.0, prompt_logprobs=0)
    out = engine.llm.generate([{"prompt_token_ids": ids}], params, use_tqdm=False)[0]
    got = torch.tensor(
        [d[t].logprob for d, t in zip(out.prompt_logprobs[1:], ids[1:], strict=True)]
    )
    with torch.no_grad():
        logp = torch.log_softmax(model(torch.tensor([ids])).logits[0, :-1].float(), -1)
    want = logp.gather(1, torch.tensor(ids[1:])[:, None])[:, 0]
    return float((got - want).abs().max())


# ------------------------------------------------ W&B offline runs, read back


def read_wandb_run(folder: Path) -> dict:
    """The records of the one W&B offline run under `folder/wandb/` (its `run-<id>.wandb` file:
    a LevelDB-style log of 32 KiB blocks after a 7-byte `:W&B` header, each record a 7-byte header
    (crc, length, type) and a protobuf `Record`): its id, name, history rows and summary."""
    import json
    import struct

    from wandb.proto import wandb_internal_pb2 as pb

    (path,) = sorted(folder.glob("wandb/offline-run-*/run-*.wandb"))[-1:]
    data = path.read_bytes()
    assert data[:4] == b":W&B", path
    pos, block, chunks = 7, 32768, []
    run: dict = {"history": [], "summary": {}, "id": None, "name": None}
    while pos + 7 <= len(data):
        left = block - pos % block
        _crc, length, kind = struct.unpack("<IHB", data[pos : pos + 7])
        if left < 7 or (length == 0 and kind == 0):
            pos += left
            continue
        chunks.append(data[pos + 7 : pos + 7 + length])
        pos += 7 + length
        if kind not in (1, 4):  # FIRST / MIDDLE chunks wait for the LAST one
            continue
        record = pb.Record()
        record.ParseFromString(b"".join(chunks))
        chunks = []
        which = record.WhichOneof("record_type")
        if which == "run":
            run["id"], run["name"] = record.run.run_id, record.run.display_name
        elif which == "history":
            items = {i.key or "/".join(i.nested_key): json.loads(i.value_json)
                     for i in record.history.item}  # fmt: skip
            run["history"].append(items)
        elif which == "summary":
            for item in record.summary.update:
                run["summary"][item.key or "/".join(item.nested_key)] = json.loads(item.value_json)
    return run
