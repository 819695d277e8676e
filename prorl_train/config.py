"""The trainer's one configuration: nested frozen dataclasses, every field with help text.

A run's settings are layered: the dataclass defaults, then a preset (`presets.py`), then a YAML
file (`--config`), then `--set section.field=value` overrides. `load_config` merges the layers as
plain dicts and builds the dataclasses once, checking names (with a did-you-mean hint) and types;
`TrainConfig.validate()` then checks values. Every problem is a one-line `UserError`.

Override values are read as YAML scalars (`--set optim.lr=1e-5`, `--set rollout.length_schedule=
[[0,64],[10,128]]`); a path that reaches into a dict field sets one key
(`--set data.mix.gym:basic_arithmetic=0.5`).

Example:
    >>> cfg = load_config("cpu-smoke", overrides=["steps=3", "optim.lr=1e-5"])
    >>> cfg.steps, cfg.optim.lr
    (3, 1e-05)
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from prorl_eval.errors import UserError
from prorl_train.config_sections import (
    TRAIN_DATA_SEED,
    DataConfig,
    DeepSpeedConfig,
    LoggingConfig,
    LossConfig,
    ModelConfig,
    OptimConfig,
    ResetConfig,
    RolloutConfig,
    ValConfig,
    _f,
)
from prorl_train.dictconfig import apply_override, build, fields_help, merge, read_yaml

__all__ = [
    "TRAIN_DATA_SEED", "DataConfig", "DeepSpeedConfig", "LoggingConfig", "LossConfig",
    "ModelConfig", "OptimConfig", "ResetConfig", "RolloutConfig", "TrainConfig", "ValConfig",
    "config_to_yaml", "field_help", "load_config",
]  # fmt: skip


@dataclass(frozen=True)
class TrainConfig:
    """Everything one `prorl-train` run needs."""

    out: str = _f("", "Run folder: checkpoints, metrics.jsonl, resets.jsonl, TensorBoard events.")
    seed: int = _f(0, "Run seed: rollouts, data order and mini-batch shuffles derive from it.")
    steps: int = _f(100, "Training steps (one rollout batch and its updates each).")
    batch_size: int = _f(256, "Prompts per step (after dynamic-sampling refills when possible).")
    save_every: int = _f(50, "Checkpoint every this many steps (and at the end).")
    keep_last: int = _f(3, "Checkpoints kept (older ones are deleted after a save).")
    keep_every: int = _f(
        0,
        "Milestones: checkpoints whose step is a multiple of this are never deleted (0: none; "
        "a multiple of save_every), for comparing intermediate and final checkpoints.",
    )
    tensorboard: bool = _f(True, "Also write TensorBoard event files under <out>/tb.")
    model: ModelConfig = field(default_factory=ModelConfig, metadata={"help": "The model."})
    data: DataConfig = field(default_factory=DataConfig, metadata={"help": "Training prompts."})
    rollout: RolloutConfig = field(default_factory=RolloutConfig, metadata={"help": "Rollouts."})
    loss: LossConfig = field(default_factory=LossConfig, metadata={"help": "The objective."})
    optim: OptimConfig = field(default_factory=OptimConfig, metadata={"help": "The optimizer."})
    val: ValConfig = field(default_factory=ValConfig, metadata={"help": "Validation."})
    resets: ResetConfig = field(default_factory=ResetConfig, metadata={"help": "Resets."})
    deepspeed: DeepSpeedConfig = field(
        default_factory=DeepSpeedConfig, metadata={"help": "ZeRO data parallelism."}
    )
    logging: LoggingConfig = field(
        default_factory=LoggingConfig, metadata={"help": "Weights & Biases logging."}
    )

    def validate(self) -> None:
        """Check every value; UserError naming the field and the fix."""
        if not self.out:
            raise UserError("no run folder: pass --out DIR.")
        if self.steps <= 0 or self.batch_size <= 0 or self.save_every <= 0 or self.keep_last <= 0:
            raise UserError("steps, batch_size, save_every and keep_last must be positive.")
        if self.keep_every < 0 or (self.keep_every and self.keep_every % self.save_every):
            raise UserError(
                f"keep_every ({self.keep_every}) must be 0 or a multiple of save_every "
                f"({self.save_every}): milestones are checkpoints that pruning keeps."
            )
        if self.loss.mini_batch_size > self.batch_size:
            raise UserError(
                f"loss.mini_batch_size ({self.loss.mini_batch_size}) exceeds batch_size "
                f"({self.batch_size})."
            )
        if self.loss.rollout_correction != "none" and self.rollout.backend != "vllm":
            raise UserError(
                f"loss.rollout_correction={self.loss.rollout_correction} needs "
                "rollout.backend=vllm: hf rollouts sample from the trainer's own weights, so "
                "there is no gap to correct (set loss.rollout_correction=none)."
            )
        if self.resets.on_plateau and not self.val.every:
            raise UserError("resets.on_plateau needs validation: set val.every > 0.")
        for section in (self.model, self.data, self.rollout, self.loss, self.optim, self.val):
            section.validate()
        self.val.on_engine(self.rollout)  # val.backend against rollout.backend
        self.resets.validate()
        self.deepspeed.validate()
        self.logging.validate()
        if self.deepspeed.zero_stage and self.model.dtype == "float16":
            raise UserError(
                "DeepSpeed runs train in bfloat16 (GPU) or float32; set model.dtype=auto, "
                "bfloat16 or float32."
            )

    def to_dict(self) -> dict[str, Any]:
        return dataclasses.asdict(self)


# ------------------------------------------------------------------------------ layering


# Config sections: nested dataclasses, merged key by key (a dict-valued field such as data.mix is
# replaced whole, or updated one key at a time by `--set data.mix.<task>=w`).
SECTIONS = frozenset(
    {"model", "data", "rollout", "loss", "optim", "val", "resets", "deepspeed", "logging"}
)


def load_config(
    preset: str | None = None,
    config_file: str | Path | None = None,
    overrides: list[str] | tuple[str, ...] = (),
    **top_level: Any,
) -> TrainConfig:
    """Defaults ← preset ← YAML file ← `--set` overrides ← explicit top-level values (`out=`).

    The result is built and type-checked but not validated (call `.validate()`).
    """
    from prorl_train.presets import preset_dict

    merged = TrainConfig().to_dict()
    if preset:
        merged = merge(merged, preset_dict(preset), SECTIONS)
    if config_file:
        merged = merge(merged, read_yaml(config_file), SECTIONS)
    for text in overrides:
        merged = apply_override(merged, text, SECTIONS)
    merged = merge(merged, {k: v for k, v in top_level.items() if v is not None}, SECTIONS)
    return build(TrainConfig, merged)


def config_to_yaml(config: TrainConfig) -> str:
    """The resolved config as YAML (written to <out>/config.yaml, shown by `show-config`)."""
    import yaml

    return yaml.safe_dump(config.to_dict(), sort_keys=False)


def field_help(cls: type = TrainConfig) -> list[tuple[str, str, str]]:
    """(dotted name, default, help) for every field, for `prorl-train show-config --fields`."""
    return fields_help(cls)
