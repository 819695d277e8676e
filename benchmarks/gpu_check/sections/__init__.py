"""The sections of the GPU check, in the order they run.

Each entry names the function that runs it (module:function, imported in the section's own
process), the packages it needs beyond torch and transformers (for the `--list` view; the section
checks them itself), and its time cap on a GPU in seconds (a dry run's is the same).
"""

from __future__ import annotations

import dataclasses


@dataclasses.dataclass(frozen=True)
class Section:
    name: str
    target: str  # "module:function" under benchmarks.gpu_check.sections
    needs: str
    cap_s: int
    about: str


SECTIONS: tuple[Section, ...] = (
    Section("env", "env:run", "-", 60, "torch, CUDA, the GPU and the optional packages"),
    Section("hf_generate", "hf_generate:run", "-", 120, "HF generate tokens/s, 1.5B shape, bf16"),
    Section("train_step", "train_step:run", "-", 150, "bf16 step, torch AdamW: tokens/s, MFU"),
    Section("train_step_zero2", "train_step:run_zero2", "deepspeed", 150, "the step under ZeRO-2"),
    Section("prorl_run", "prorl_run:run", "prorl's dependencies", 150, "a short prorl-train run"),
    Section("vllm_eval", "vllm_checks:run_eval", "vllm", 180, "VLLMGenerator vs raw vLLM"),
    Section(
        "vllm_rollout",
        "vllm_checks:run_rollout",
        "vllm",
        180,
        "weight sync, sleep/wake, rollout log-prob gap",
    ),
    Section(
        "prorl_run_vllm", "prorl_run:run_vllm", "vllm", 180, "the prorl-train run, vLLM rollouts"
    ),
)

BY_NAME = {s.name: s for s in SECTIONS}
