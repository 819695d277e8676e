"""The sections of the trainer's configuration: one frozen dataclass per `config.py` section
(model, data, rollout, loss, optim, val, resets, deepspeed, logging), each field with its help
text and each section with the `validate()` that checks its own values.

`config.TrainConfig` nests them and checks what spans sections; `config` re-exports them, so
`from prorl_train.config import RolloutConfig` keeps working.
"""

from __future__ import annotations

from dataclasses import dataclass, field

from prorl_eval.errors import UserError
from prorl_eval.models import DEFAULT_MODEL
from prorl_train.config_fields import check_choice as _check_choice
from prorl_train.config_fields import setting as _f
from prorl_train.config_rollout import (  # noqa: F401  (re-exported)
    ROLLOUT_BACKENDS,
    SHORT_BATCH_POLICIES,
    VLLM_MODES,
    RolloutConfig,
)

# Procedural problems: evaluation uses data seed 0 by default, validation 1, training 2.
TRAIN_DATA_SEED = 2


@dataclass(frozen=True)
class ModelConfig:
    """Which model to train and where it runs."""

    name: str = _f(DEFAULT_MODEL, "Model to start from: alias, local folder, checkpoint or hub id.")
    dtype: str = _f("auto", "auto (float32 on CPU, bfloat16 on GPU), float32 or bfloat16.")
    device: str = _f("auto", "auto (cuda if available), cpu or cuda[:i].")
    gradient_checkpointing: bool = _f(False, "Recompute activations in backward to save memory.")
    cpu_threads: int = _f(
        0, "torch CPU threads (0: torch's default; 1 is fastest for tiny models)."
    )
    logits_chunk_tokens: int = _f(
        4096,
        "Response positions per vocabulary-projection chunk in the update (0: one shot); "
        "bounds logits memory for long responses.",
    )
    share_prompt_prefix: bool = _f(
        True,
        "Run each distinct prompt of a micro-batch once and the group's responses on its cached "
        "keys/values (same results, less work); off: every row runs prompt + response. Skipped "
        "automatically under gradient checkpointing and for sliding-window/hybrid caches.",
    )

    def validate(self) -> None:
        if self.cpu_threads < 0 or self.logits_chunk_tokens < 0:
            raise UserError(
                "model.cpu_threads and model.logits_chunk_tokens must be >= 0 "
                f"(got {self.cpu_threads}, {self.logits_chunk_tokens})."
            )
        if self.dtype not in ("auto", "float32", "bfloat16", "float16"):
            raise UserError(
                f"model.dtype must be auto, float32, bfloat16 or float16 (got {self.dtype})."
            )


@dataclass(frozen=True)
class DataConfig:
    """The training prompts: registry tasks (or suites) mixed by weight."""

    mix: dict[str, float] = field(
        default_factory=lambda: {"gym:basic_arithmetic": 1.0},
        metadata={
            "help": "Task or suite name -> weight; a suite's weight is split over its tasks."
        },
    )
    limit: int | None = _f(None, "Problems per task (None: the task's default / all).")
    data_seed: int = _f(
        TRAIN_DATA_SEED,
        "Seed for procedural problems (Reasoning Gym) and choice shuffling; the default keeps "
        "training puzzles apart from evaluation's (prorl-eval --data-seed 0) and validation's "
        "(val.data_seed 1).",
    )
    data_dir: str | None = _f(None, "Offline benchmark copies (like shared/data); None: the hub.")
    holdout: str = _f(
        "auto",
        "Evaluation problems never trained on: a --tasks value whose problems (built with "
        "holdout_seed and holdout_limit) leave the training pool when a training prompt is "
        "identical; 'auto': the mix's procedural (Reasoning Gym) tasks; 'none': keep all.",
    )
    holdout_seed: int = _f(0, "Data seed of the holdout problems (prorl-eval's --data-seed).")
    holdout_limit: int | None = _f(
        None, "Problems per holdout task (prorl-eval's --limit; None: the task's default)."
    )
    decontaminate: str = _f(
        "drop",
        "Start-up check of training problems shared with the validation, holdout and "
        "decontaminate_tasks problems (same normalised text, or a shared decontaminate_ngram-word "
        "run): drop (remove them and train on), keep (count only) or off (no check).",
    )
    max_contaminated_share: float = _f(
        0.01,
        "Refuse to start when a (non-procedural) training task shares more than this share of "
        "its problems with validation/evaluation problems, even with drop: it is probably a test "
        "set; 1.0 never refuses.",
    )
    decontaminate_ngram: int = _f(
        13, "Word n-gram length of the overlap rule (13 as GPT-3/lm-eval; 0: exact text only)."
    )
    decontaminate_tasks: str = _f(
        "",
        "Evaluation tasks/suites to decontaminate against besides validation and the holdout "
        "(a --tasks value, e.g. math,code,stem,ifeval; suite members that cannot load are "
        "skipped).",
    )

    def validate(self) -> None:
        if not self.mix:
            raise UserError("data.mix is empty; name at least one task with a positive weight.")
        bad = {k: v for k, v in self.mix.items() if not v > 0}
        if bad:
            raise UserError(f"data.mix weights must be positive (got {bad}).")
        if self.limit is not None and self.limit <= 0:
            raise UserError(f"data.limit must be positive (got {self.limit}).")
        if self.holdout_limit is not None and self.holdout_limit <= 0:
            raise UserError(f"data.holdout_limit must be positive (got {self.holdout_limit}).")
        if not self.holdout.strip():
            raise UserError("data.holdout is empty; use 'auto', 'none' or a --tasks value.")
        if self.decontaminate not in ("drop", "keep", "off"):
            raise UserError(
                f"data.decontaminate must be drop, keep or off (got {self.decontaminate!r})."
            )
        if not 0.0 <= self.max_contaminated_share <= 1.0:
            raise UserError(
                "data.max_contaminated_share must be between 0 and 1 "
                f"(got {self.max_contaminated_share}); 1.0 never refuses."
            )
        if self.decontaminate_ngram < 0:
            raise UserError(
                f"data.decontaminate_ngram must be >= 0 (got {self.decontaminate_ngram}); "
                "0 compares exact text only."
            )


@dataclass(frozen=True)
class LossConfig:
    """The policy objective (pure maths in advantages.py / losses.py).

    Dr. GRPO (Liu et al., 2025) is the combination advantage=grpo_no_std with
    aggregation=seq-mean-token-sum: no std scaling, and a per-sequence token sum (Dr. GRPO divides
    it by a constant, the generation budget, which only rescales the learning rate)."""

    advantage: str = _f("grpo", "Advantage estimator: grpo, grpo_no_std, rloo or reinforce_pp.")
    policy_loss: str = _f("ppo", "Surrogate: ppo (clipped), gspo (sequence ratio) or cispo.")
    clip_low: float = _f(0.2, "Lower clip range: ratio >= 1 - clip_low.")
    clip_high: float = _f(0.4, "Upper clip range (clip-higher): ratio <= 1 + clip_high.")
    clip_ratio_c: float = _f(0.0, "Dual clip (ppo): cap A < 0 tokens at -c A; 0 off, else > 1.")
    kl_beta: float = _f(1e-4, "KL penalty weight; 0 loads no reference model.")
    kl_estimator: str = _f("k3", "KL estimator: k1, k2 or k3.")
    aggregation: str = _f("token-mean", "Loss aggregation: token-mean, seq-mean-token-mean, ...")
    mini_batch_size: int = _f(64, "Prompts per optimizer update (batch/mini-batch updates a step).")
    micro_batch_size: int = _f(8, "Sequences per forward/backward (gradient accumulation).")
    epochs: int = _f(1, "Passes over each step's rollouts.")
    entropy_coef: float = _f(
        0.0,
        "Entropy bonus: subtract coef x the token entropy (aggregated as the loss) from the loss; "
        "0 off (ProRL, DAPO); verl's entropy_coeff.",
    )
    rollout_correction: str = _f(
        "none",
        "vllm rollouts: reweight each token's loss by pi_old / pi_rollout (truncated importance "
        "sampling): none, token_truncate, token_mask, sequence_truncate or sequence_mask.",
    )
    rollout_correction_cap: float = _f(
        2.0, "The importance weight's cap (> 1); the rollout_gap/ metrics count tokens past it."
    )

    def validate(self) -> None:
        from prorl_train.advantages import ADVANTAGE_ESTIMATORS
        from prorl_train.losses import AGGREGATIONS, KL_ESTIMATORS, POLICY_LOSSES
        from prorl_train.rollout_correction import CORRECTIONS

        _check_choice("loss.advantage", self.advantage, ADVANTAGE_ESTIMATORS)
        _check_choice("loss.kl_estimator", self.kl_estimator, KL_ESTIMATORS)
        _check_choice("loss.aggregation", self.aggregation, AGGREGATIONS)
        _check_choice("loss.policy_loss", self.policy_loss, POLICY_LOSSES)
        if self.clip_ratio_c and (self.clip_ratio_c <= 1 or self.policy_loss != "ppo"):
            raise UserError(
                f"loss.clip_ratio_c (dual clip) must be 0 or > 1 and needs loss.policy_loss=ppo "
                f"(got {self.clip_ratio_c}, {self.policy_loss})."
            )
        if not 0 <= self.clip_low < 1 or self.clip_high < 0:
            raise UserError(
                f"need 0 <= loss.clip_low < 1 and loss.clip_high >= 0 "
                f"(got {self.clip_low}, {self.clip_high})."
            )
        if self.kl_beta < 0 or self.entropy_coef < 0:
            raise UserError(
                f"loss.kl_beta and loss.entropy_coef must be >= 0 "
                f"(got {self.kl_beta}, {self.entropy_coef})."
            )
        if min(self.mini_batch_size, self.micro_batch_size, self.epochs) <= 0:
            raise UserError("loss.mini_batch_size, micro_batch_size and epochs must be positive.")
        _check_choice(
            "loss.rollout_correction", self.rollout_correction, {"none": "", **CORRECTIONS}
        )
        if not self.rollout_correction_cap > 1:
            raise UserError(
                f"loss.rollout_correction_cap must be > 1 (got {self.rollout_correction_cap}); "
                "the TIS paper and verl use 2."
            )


@dataclass(frozen=True)
class OptimConfig:
    """AdamW and its schedule."""

    lr: float = _f(2e-6, "Learning rate (constant after warmup; ProRL: 2e-6).")
    warmup_steps: int = _f(0, "Linear warmup steps.")
    weight_decay: float = _f(0.01, "AdamW weight decay.")
    beta1: float = _f(0.9, "AdamW beta1.")
    beta2: float = _f(0.999, "AdamW beta2.")
    eps: float = _f(1e-8, "AdamW epsilon.")
    grad_clip: float = _f(1.0, "Clip the global gradient norm to this (0: no clipping).")

    def validate(self) -> None:
        if self.lr <= 0 or self.warmup_steps < 0 or self.grad_clip < 0 or self.weight_decay < 0:
            raise UserError(
                "optim.lr must be > 0 and optim.warmup_steps, grad_clip, weight_decay >= 0."
            )
        if not (0 <= self.beta1 < 1 and 0 <= self.beta2 < 1 and self.eps > 0):
            raise UserError("optim.beta1/beta2 must be in [0, 1) and optim.eps > 0.")

    def lr_at(self, step: int) -> float:
        """Learning rate of `step` (1-based): linear warmup, then constant."""
        if self.warmup_steps and step <= self.warmup_steps:
            return self.lr * step / self.warmup_steps
        return self.lr


@dataclass(frozen=True)
class ValConfig:
    """Periodic validation, scored by the same code as `prorl-eval pass-at-k`."""

    every: int = _f(0, "Validate every this many steps (0: never).")
    tasks: str = _f("", "Comma-separated validation tasks/suites ('': the data.mix tasks).")
    limit: int | None = _f(16, "Problems per validation task.")
    data_seed: int = _f(1, "Data seed of validation problems (procedural tasks: unseen ones).")
    n: int = _f(1, "Samples per validation problem (pass@1 = mean correctness).")
    temperature: float = _f(0.6, "Validation sampling temperature (0: greedy).")
    top_p: float = _f(0.95, "Validation nucleus threshold.")
    max_new_tokens: int | None = _f(None, "Validation budget (None: the rollout budget).")
    seed: int = _f(0, "Validation sampling seed (the same every time: common random numbers).")
    backend: str = _f(
        "auto",
        "Where validation generates: auto (the rollout engine when rollout.backend=vllm, else "
        "hf), hf (transformers generate on the live policy, rank 0 alone), engine (the rollout "
        "engine, every rank its share) or vllm (engine, insisting on rollout.backend=vllm).",
    )

    def validate(self) -> None:
        if self.every < 0 or self.n <= 0 or (self.limit is not None and self.limit <= 0):
            raise UserError("val.every must be >= 0, val.n and val.limit positive.")
        if self.max_new_tokens is not None and self.max_new_tokens <= 0:
            raise UserError("val.max_new_tokens must be positive.")
        if self.backend not in ("auto", "hf", "engine", "vllm"):
            raise UserError(
                f"val.backend '{self.backend}' is unknown; choose one of auto, engine, hf, vllm."
            )

    def on_engine(self, rollout: RolloutConfig) -> bool:
        """Whether validation generates on the rollout engine (else HF `generate` on the policy);
        UserError when `val.backend` contradicts the rollout settings. Checked by
        `TrainConfig.validate`, so before any model loads."""
        if self.backend == "vllm" and rollout.backend != "vllm":
            raise UserError(
                f"val.backend=vllm validates on the rollout engine, but rollout.backend="
                f"{rollout.backend}; set val.backend=auto or hf, or rollout.backend=vllm."
            )
        engine = self.backend in ("engine", "vllm") or (
            self.backend == "auto" and rollout.backend == "vllm"
        )
        budget = self.max_new_tokens or max(tokens for _, tokens in rollout.length_schedule)
        limit = rollout.vllm_max_model_len
        if self.every and engine and rollout.backend == "vllm" and limit and budget >= limit:
            raise UserError(
                f"the validation budget ({budget} tokens: val.max_new_tokens, else the largest "
                f"rollout budget) leaves no room for a prompt in rollout.vllm_max_model_len "
                f"({limit}); lower val.max_new_tokens or raise rollout.vllm_max_model_len."
            )
        return engine


@dataclass(frozen=True)
class ResetConfig:
    """Reference-policy and optimizer resets (ProRL's hard resets)."""

    every: int = _f(0, "Reset every this many steps (0: no schedule).")
    file_trigger: str = _f("RESET", "Reset when this file appears in the run folder ('': off).")
    on_plateau: bool = _f(False, "Reset when validation stops improving (needs val.every).")
    metric: str = _f("val/pass@1", "Validation metric watched for plateaus (val/pass@1, ...).")
    patience: int = _f(3, "Validations without improvement before a plateau reset.")
    min_delta: float = _f(0.0, "Improvement smaller than this counts as none.")
    reference: bool = _f(True, "A reset copies the policy into the reference.")
    optimizer: bool = _f(True, "A reset clears the optimizer state (Adam moments).")

    def validate(self) -> None:
        if self.every < 0 or self.patience <= 0 or self.min_delta < 0:
            raise UserError("resets.every >= 0, resets.patience > 0, resets.min_delta >= 0.")
        if self.metric not in ("val/pass@1", "val/reward"):
            raise UserError(f"resets.metric must be val/pass@1 or val/reward ({self.metric}).")


@dataclass(frozen=True)
class DeepSpeedConfig:
    """Multi-process data parallelism with DeepSpeed ZeRO (launch with torchrun or deepspeed)."""

    zero_stage: int = _f(
        0,
        "0: plain torch AdamW (gradients all-reduced when several processes run); 1: ZeRO "
        "partitions the optimizer state, 2: also the gradients, 3: also the weights.",
    )
    offload_optimizer: bool = _f(
        False, "Keep the optimizer state on the CPU and step there (ZeRO stage >= 1)."
    )
    offload_params: bool = _f(False, "Keep the partitioned weights on the CPU (ZeRO stage 3).")

    def validate(self) -> None:
        import importlib.util

        if self.zero_stage not in (0, 1, 2, 3):
            raise UserError(f"deepspeed.zero_stage must be 0, 1, 2 or 3 (got {self.zero_stage}).")
        if self.offload_params and self.zero_stage != 3:
            raise UserError("deepspeed.offload_params needs deepspeed.zero_stage=3.")
        if self.offload_optimizer and self.zero_stage == 0:
            raise UserError("deepspeed.offload_optimizer needs deepspeed.zero_stage >= 1.")
        if self.zero_stage and importlib.util.find_spec("deepspeed") is None:
            raise UserError(
                f"deepspeed.zero_stage={self.zero_stage} needs DeepSpeed: "
                "pip install -c constraints.txt deepspeed==0.19.8 (or set deepspeed.zero_stage=0)."
            )


@dataclass(frozen=True)
class LoggingConfig:
    """Where metrics go besides metrics.jsonl and TensorBoard: Weights & Biases (optional)."""

    wandb: bool = _f(False, "Also log every metrics row to Weights & Biases (the wandb extra).")
    wandb_project: str = _f("prorl", "W&B project.")
    wandb_name: str = _f("", "W&B run name ('': the run folder's name).")
    wandb_mode: str = _f("", "online, offline (files under <out>/wandb) or disabled; '': W&B's.")

    def validate(self) -> None:
        from prorl_eval.wandb_logging import check_mode, require_wandb

        check_mode(self.wandb_mode, "logging.wandb_mode")
        if self.wandb:
            require_wandb("logging.wandb")
