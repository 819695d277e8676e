"""Weights & Biases logging for eval and training runs (the optional `wandb` extra).

W&B's own settings apply: `WANDB_MODE=offline` writes the run under `<folder>/wandb/` without
network (what the tests use), `WANDB_API_KEY` / `wandb login` for online runs, `WANDB_ENTITY` for
the team. prorl adds the project, the run name (the run folder's name unless given), the folder.

- Eval (`prorl-eval pass-at-k --wandb`): one W&B run per command; its summary holds
  `<task>/pass@<k>` (with `_ci_low` / `_ci_high`), `<task>/maj@<k>`, `<task>/mean_score`,
  `<task>/mean_response_tokens` and `<task>/truncated_share`, and a `results` table with one row
  per (task, k).
- Training (`logging.wandb: true`): every metrics.jsonl row is logged at its step, beside
  TensorBoard; the W&B run id is kept in `<run>/wandb_run_id`, so `--resume` continues the same
  W&B run.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from prorl_eval.errors import UserError

WANDB_REQUIREMENT = "wandb==0.31.0"
MODES = ("", "online", "offline", "disabled")
RUN_ID_FILE = "wandb_run_id"


def require_wandb(setting: str) -> Any:
    """The `wandb` module, or a one-line error naming the setting that asked for it."""
    try:
        import wandb
    except ImportError:
        raise UserError(
            f"{setting} needs Weights & Biases: pip install {WANDB_REQUIREMENT} (or the prorl "
            "extra: pip install -e '.[wandb]')."
        ) from None
    return wandb


def check_mode(mode: str, setting: str) -> None:
    if mode not in MODES:
        raise UserError(f"{setting} must be online, offline or disabled (got {mode!r}).")


def start_run(
    folder: Path,
    *,
    project: str,
    name: str = "",
    mode: str = "",
    config: dict[str, Any] | None = None,
    resumable: bool = False,
    setting: str = "--wandb",
) -> Any:
    """A W&B run writing under `folder`; with `resumable`, the id in `folder/wandb_run_id` is
    reused (a resumed training run continues its W&B run) or written there."""
    wandb = require_wandb(setting)
    folder.mkdir(parents=True, exist_ok=True)
    id_file = folder / RUN_ID_FILE
    run_id = id_file.read_text().strip() if resumable and id_file.is_file() else None
    run = wandb.init(
        project=project,
        name=name or folder.resolve().name,
        dir=str(folder),
        config=config or {},
        mode=mode or None,
        id=run_id,
        resume="allow" if resumable else None,
        reinit="finish_previous",
    )
    if resumable and run_id is None:
        id_file.write_text(f"{run.id}\n")
    return run


def numeric(values: dict[str, Any]) -> dict[str, float]:
    """The int/float values of a metrics row (W&B plots numbers; None and text are left out)."""
    return {
        key: float(value)
        for key, value in values.items()
        if isinstance(value, (int, float)) and not isinstance(value, bool)
    }


def eval_summary(results: dict[str, Any]) -> tuple[dict[str, float], list[list[Any]]]:
    """(summary values, results-table rows) of a results.json document."""
    summary: dict[str, float] = {}
    table = []
    for task, metrics in results["tasks"].items():
        for key in ("mean_score", "mean_response_tokens", "truncated_share"):
            if key in metrics:
                summary[f"{task}/{key}"] = float(metrics[key])
        for k, value in metrics["pass_at_k"].items():
            low, high = metrics["pass_at_k_ci95"][k]
            summary.update({f"{task}/pass@{k}": value, f"{task}/pass@{k}_ci_low": low,
                            f"{task}/pass@{k}_ci_high": high})  # fmt: skip
            maj = metrics.get("maj_at_k", {}).get(k)
            if maj is not None:
                summary[f"{task}/maj@{k}"] = maj
            table.append([task, int(k), value, low, high, maj])
    return summary, table


def log_eval_results(results: dict[str, Any], folder: Path, project: str, name: str = "") -> str:
    """Log a pass-at-k command's results as one W&B run; returns the run's folder."""
    wandb = require_wandb("--wandb")
    config = {key: results.get(key) for key in ("model", "backend", "sampling", "n", "ks", "limit",
                                                 "data_seed", "source_samples")}  # fmt: skip
    config["tasks"] = sorted(results["tasks"])
    run = start_run(folder, project=project, name=name, config=config)
    summary, rows = eval_summary(results)
    for key, value in summary.items():
        run.summary[key] = value
    columns = ["task", "k", "pass_at_k", "ci_low", "ci_high", "maj_at_k"]
    run.log({"results": wandb.Table(columns=columns, data=rows)})
    where = str(Path(run.dir).parent)  # run.dir is its files/ folder
    run.finish()
    return where
