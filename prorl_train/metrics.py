"""Per-step metrics: one JSON row per step in `<run>/metrics.jsonl`, and TensorBoard scalars.

Each row is `{"step": N, "<group>/<name>": value, ...}`, appended, flushed and fsynced when the step
ends, so the file is the run's history even after a kill -9 (a half-written last line is dropped
on read). Groups: `reward/` (mean per domain and overall, accuracy), `rollout/` (lengths, truncated
and filtered shares, rounds), `actor/` (entropy, KL to the reference, clip fractions, ratio stats,
grad norm, learning rate), `val/` (validation), `reset/` (events) and `time/` (seconds per phase).

TensorBoard event files go to `<run>/tb/` when `tensorboard` is importable (torch's SummaryWriter
needs it); without it only metrics.jsonl is written and a note says so once. With
`logging.wandb`, each row's numbers also go to a Weights & Biases run at the row's step
(`prorl_eval.wandb_logging`; its id is kept in the run folder, so a resume continues it).

Example:
    >>> rows = read_metrics("runs/t/metrics.jsonl")  # doctest: +SKIP
    >>> rows[-1]["reward/mean"]  # doctest: +SKIP
"""

from __future__ import annotations

import json
import math
import os
from pathlib import Path
from typing import Any

# The file has one reader, shared with the reports: re-exported here for the trainer.
from prorl_eval.analysis.dynamics import read_metrics as read_metrics


def rollout_metrics(batch: Any) -> dict[str, float]:
    """Reward per domain and overall, accuracy, response lengths and truncated share.

    `batch` is every sequence generated in the step (a `rollout.Rollouts`), before filtering.
    """
    n = len(batch)
    if n == 0:
        return {}
    out: dict[str, float] = {
        "reward/mean": sum(batch.rewards) / n,
        "reward/accuracy": sum(batch.correct) / n,
    }
    by_domain: dict[str, list[float]] = {}
    for domain, reward in zip(batch.domains, batch.rewards, strict=True):
        by_domain.setdefault(domain, []).append(reward)
    for domain, values in sorted(by_domain.items()):
        out[f"reward/{domain}"] = sum(values) / len(values)
    lengths = [len(ids) for ids in batch.response_ids]
    out["rollout/response_len_mean"] = sum(lengths) / n
    out["rollout/response_len_max"] = float(max(lengths))
    out["rollout/truncated_share"] = sum(batch.truncated) / n
    out["rollout/samples"] = float(n)
    return out


class MetricsLogger:
    """Appends step rows to metrics.jsonl and mirrors numeric values to TensorBoard."""

    def __init__(self, run_dir: str | Path, tensorboard: bool = True, wandb: Any = None) -> None:
        self.path = Path(run_dir) / "metrics.jsonl"
        self.writer = None
        self.wandb = wandb  # a W&B run, or None
        self.note = ""
        if tensorboard:
            try:
                from torch.utils.tensorboard import SummaryWriter

                self.writer = SummaryWriter(log_dir=str(Path(run_dir) / "tb"))
            except ImportError:
                self.note = (
                    "tensorboard is not installed: metrics go to metrics.jsonl only "
                    "(pip install tensorboard for event files)."
                )

    def log(self, step: int, values: dict[str, Any]) -> dict[str, Any]:
        """Write one row (rounded floats, NaN/inf as null) and return it."""
        row: dict[str, Any] = {"step": step}
        for key, value in values.items():
            row[key] = _clean(value)
        with open(self.path, "a", encoding="utf-8") as fh:
            fh.write(json.dumps(row) + "\n")
            fh.flush()
            os.fsync(fh.fileno())
        if self.writer is not None:
            for key, value in row.items():
                if key != "step" and isinstance(value, (int, float)) and value is not None:
                    self.writer.add_scalar(key, value, step)
            self.writer.flush()
        if self.wandb is not None:
            from prorl_eval.wandb_logging import numeric

            self.wandb.log(numeric({k: v for k, v in row.items() if k != "step"}), step=step)
        return row

    def close(self) -> None:
        if self.writer is not None:
            self.writer.close()
            self.writer = None
        if self.wandb is not None:
            self.wandb.finish()
            self.wandb = None


def wandb_run(cfg: Any, run_dir: str | Path) -> Any:
    """The W&B run of a training run (None unless `logging.wandb`), resumed by the id in the run
    folder when there is one; its config is the resolved training config."""
    if not cfg.logging.wandb:
        return None
    from prorl_eval.wandb_logging import start_run

    return start_run(
        Path(run_dir), project=cfg.logging.wandb_project, name=cfg.logging.wandb_name,
        mode=cfg.logging.wandb_mode, config=cfg.to_dict(), resumable=True,
        setting="logging.wandb",
    )  # fmt: skip


def _clean(value: Any) -> Any:
    if isinstance(value, bool):
        return int(value)
    if isinstance(value, float):
        return None if not math.isfinite(value) else round(value, 8)
    return value
