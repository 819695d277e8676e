"""Named starting points for a run: `--preset prorl-paper`, `prorl-mini` or `cpu-smoke`.

A preset is a partial config (nested dicts with the same keys as `config.TrainConfig`); a YAML file
and `--set` overrides are applied on top of it.

- `prorl-paper`: the ProRL paper's 1.5B recipe (Liu et al., 2025, "ProRL: Prolonged Reinforcement
  Learning Expands Reasoning Boundaries"): DeepSeek-R1-Distill-Qwen-1.5B, 256 prompts x 16 samples
  at T=1.2, mini-batches of 64 prompts (4 updates per step), lr 2e-6, clip 0.2/0.4, KL beta 1e-4
  (k3), token-mean loss, dynamic sampling, an 8k response budget raised to 16k for the last
  ~200 steps, periodic hard resets of the reference policy and optimizer, and a blended
  validation set (AIME24, GPQA-diamond, IFEval, Reasoning Gym graph_color; the paper also used
  Codeforces, which the registry lacks).
  Training data (not the test set): the paper's 136k-problem mix in its domain proportions,
  from public training sets by hub id (`prorl_eval.tasks.train_sources`): math 40k
  (`train:deepscaler`, DeepScaleR-Preview), code 24k (`train:eurus-code`, the stdin/stdout code
  rows of Eurus-2-RL-Data), STEM 25k (`train:sciq`, SciQ), logic 37k (the `logic` suite: Reasoning
  Gym at the training data seed 2, apart from evaluation's 0 and validation's 1) and instruction
  following 10k (`train:rlvr-ifeval`, RLVR-IFeval). Departures: the paper's STEM set was SCP-116K,
  which has no short verifiable answer (it would need a judge model), so SciQ's multiple choice
  stands in; its logic set was its own Reasoning Gym selection. At start the decontamination check
  drops training problems shared with validation, the holdout (Reasoning Gym at seed 0) and the
  math, code, STEM and IFEval benchmarks (`data.decontaminate_tasks`), and refuses a source that
  shares more than 1% of its problems.
  Lengths: truncated responses are masked (`overlong: mask`, DAPO's overlong filtering). The
  paper takes DAPO's clip-higher and dynamic sampling and sets the budget (8k, then 16k) but
  describes no length-based reward shaping; masking leaves a long, unfinished chain of thought
  out of the loss instead of scoring it as a wrong answer, so the budget bounds the length
  without teaching the model to stop early, which a prolonged run that lengthens its reasoning
  needs. DAPO's soft punishment (`overlong: soft`, e.g. a 1024-token buffer) is the alternative
  when responses crowd the budget. Dynamic sampling judges each task's groups by its own rule
  (`filter_criterion: auto`: reward spread for the partial-credit code and Reasoning Gym
  rewards, accuracy elsewhere), refills short batches for up to 3 rounds and otherwise trains
  on what it kept, with a warning (`rollout/groups_short`). No rollout correction is on (the
  paper describes none); with bf16 vLLM rollouts watch `rollout_gap/*` and consider
  `loss.rollout_correction=token_truncate`.
  The paper reset at hand-picked points when validation degraded; here every 250 steps plus an
  automatic reset on a validation plateau. Checkpoints every 50 steps; the last 3 and every
  500th are kept, so `prorl-eval sweep` can compare intermediate and final models. Rollouts run
  on vLLM with in-place weight sync and the update on DeepSpeed ZeRO-2
  (`pip install "prorl[vllm,deepspeed]"`; launch recipes in docs/scaling.md); the paper's verl
  setup did the same with FSDP.
- `prorl-mini`: the ProRL recipe in miniature on 2 CPU cores (scripts/reproduce_miniature.sh,
  docs/miniature.md): the embedded SmolLM2-135M-Instruct on four tasks of three domains where it
  has some signal (`miniature_tasks("train")`: the starter sets' train splits and one-digit
  `gym:chain_sum`), 30 steps of 8 prompts x 8 samples of at most 24 tokens at T=1.0, clip
  0.2/0.4, KL beta 1e-4, dynamic sampling, a reset of the reference and optimizer every 15 steps,
  and milestone checkpoints at steps 15 and 30 (keep_every) for the sweep. About 17 minutes.
- `cpu-smoke`: the embedded SmolLM2-135M-Instruct learning to answer "Name a <thing>." prompts
  in one word (a `custom:` regex task whose data ships in `prorl_train/smoke/`), 4 prompts x 4
  samples of at most 12 tokens per step, 10 steps: a few minutes on 2 CPU cores, with
  validation, a scheduled reset and checkpoints exercised. The one-word share starts near 20%;
  the registry's benchmark tasks are too hard for a 135M model to move in minutes.

Example:
    >>> preset_dict("cpu-smoke")["rollout"]["n"]
    4
"""

from __future__ import annotations

import copy
from pathlib import Path
from typing import Any

from prorl_eval.errors import UserError
from prorl_train.config_sections import TRAIN_DATA_SEED

PRORL_PAPER: dict[str, Any] = {
    "steps": 2000,
    "batch_size": 256,
    "save_every": 50,
    "keep_last": 3,
    # Milestones for the paper's intermediate-vs-final comparison: steps 500, 1000, 1500, 2000
    # survive keep_last pruning.
    "keep_every": 500,
    "model": {
        "name": "deepseek-ai/DeepSeek-R1-Distill-Qwen-1.5B",
        "dtype": "auto",
        "gradient_checkpointing": True,
    },
    "data": {
        # The paper's 136k problems by domain (thousands; normalised): math 40, code 24, STEM 25,
        # logic 37 (Reasoning Gym, split evenly over its datasets), instruction following 10.
        "mix": {
            "train:deepscaler": 40,
            "train:eurus-code": 24,
            "train:sciq": 25,
            "logic": 37,
            "train:rlvr-ifeval": 10,
        },
        "data_seed": TRAIN_DATA_SEED,
        "decontaminate_tasks": "math,code,stem,ifeval",
    },
    "rollout": {
        "n": 16,
        "temperature": 1.2,
        "top_p": 1.0,
        "length_schedule": [[1, 8192], [1800, 16384]],
        "overlong": "mask",
        "dynamic_sampling": True,
        "max_extra_rounds": 3,
        # 32 prompts x 16 samples per chunk: 8 chunks, one per rank on 8 GPUs (docs/scaling.md)
        "generate_batch_size": 512,
        "score_workers": 8,
        "backend": "vllm",
        "vllm_gpu_memory_utilization": 0.4,
    },
    "loss": {
        "advantage": "grpo",
        "clip_low": 0.2,
        "clip_high": 0.4,
        "kl_beta": 1e-4,
        "kl_estimator": "k3",
        "aggregation": "token-mean",
        "mini_batch_size": 64,
        # 16k-token responses: the vocabulary projection runs in chunks (model.logits_chunk_tokens),
        # activations are recomputed (gradient checkpointing), so 2 sequences fit per micro-batch
        "micro_batch_size": 2,
    },
    "optim": {"lr": 2e-6, "warmup_steps": 0, "weight_decay": 0.01, "grad_clip": 1.0},
    "val": {
        "every": 25,
        "tasks": "aime24,gpqa_diamond,ifeval,gym:graph_color",
        "limit": 64,
        "n": 4,
        "temperature": 0.6,
        "top_p": 0.95,
    },
    "resets": {"every": 250, "on_plateau": True, "patience": 4, "min_delta": 0.005},
    "deepspeed": {"zero_stage": 2},
}

# 16 "Name a <thing>. Answer with one word." prompts, verified by the registry's custom regex
# verifier: reward 1 when the whole response is one word. The embedded model starts near 20%.
SMOKE_TASK = (
    f"custom:{Path(__file__).parent / 'smoke' / 'one_word.jsonl'}"
    "?prompt=question&answer=pattern&verifier=regex&id=id&instruction=none"
)

CPU_SMOKE: dict[str, Any] = {
    "steps": 10,
    "batch_size": 4,
    "save_every": 5,
    "keep_last": 2,
    "tensorboard": True,
    "model": {
        "name": "smollm2-135m-instruct",
        "dtype": "float32",
        "device": "cpu",
        # one thread: on a busy 2-core machine a second thread mostly waits (10x slower here)
        "cpu_threads": 1,
    },
    "data": {"mix": {SMOKE_TASK: 1.0}},
    "rollout": {
        "n": 4,
        "temperature": 0.7,
        "top_p": 1.0,
        "length_schedule": [[1, 12]],
        "overlong": "keep",
        "dynamic_sampling": True,
        "max_extra_rounds": 1,
        "generate_batch_size": 16,
    },
    "loss": {"kl_beta": 1e-4, "mini_batch_size": 2, "micro_batch_size": 8},
    "optim": {"lr": 3e-6, "grad_clip": 1.0},
    "val": {"every": 5, "limit": 16, "n": 1, "temperature": 0.0},
    "resets": {"every": 8},
}

# The gym task of the miniature: a ± b with one-digit numbers (procedural: trains on data seed 2).
MINI_CHAIN_SUM = "gym:chain_sum?max_digits=1&max_terms=2"


def miniature_tasks(split: str) -> list[str]:
    """The `prorl-mini` recipe's four tasks: the starter sets' `train` or `eval` split and the
    gym task (one name for both: its training problems come from another data seed)."""
    suffix = "-train" if split == "train" else ""
    return [
        *(f"starter:{name}{suffix}" for name in ("capitals", "sums", "products")),
        MINI_CHAIN_SUM,
    ]


PRORL_MINI: dict[str, Any] = {
    "steps": 30,
    "batch_size": 8,
    "save_every": 5,
    "keep_last": 1,
    "keep_every": 15,
    "tensorboard": False,
    "model": {"name": "smollm2-135m-instruct", "dtype": "float32", "device": "cpu"},
    "data": {"mix": dict.fromkeys(miniature_tasks("train"), 0.25), "limit": 400},
    "rollout": {
        "n": 8,
        "temperature": 1.0,
        "top_p": 1.0,
        "length_schedule": [[1, 24]],
        "overlong": "keep",
        "dynamic_sampling": True,
        "max_extra_rounds": 1,
        "generate_batch_size": 64,
    },
    "loss": {
        "clip_low": 0.2,
        "clip_high": 0.4,
        "kl_beta": 1e-4,
        "mini_batch_size": 4,
        "micro_batch_size": 32,
    },
    "optim": {"lr": 2e-5, "grad_clip": 1.0},
    "val": {"every": 5, "limit": 8, "n": 1, "temperature": 0.0},
    "resets": {"every": 15},
}

PRESETS: dict[str, dict[str, Any]] = {
    "prorl-paper": PRORL_PAPER,
    "cpu-smoke": CPU_SMOKE,
    "prorl-mini": PRORL_MINI,
}


def preset_dict(name: str) -> dict[str, Any]:
    """A copy of preset `name`; UserError listing the presets when unknown."""
    if name not in PRESETS:
        raise UserError(f"unknown preset '{name}'; choose one of {', '.join(sorted(PRESETS))}.")
    return copy.deepcopy(PRESETS[name])
