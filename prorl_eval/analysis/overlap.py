"""Training/evaluation overlap: how many evaluation prompts a training run trained on.

A `prorl-train` run writes `train_prompts.json`: per training task, the SHA-256 prefixes of every
prompt in its pool (after the holdout removed the evaluation problems it names). An evaluation
prompt overlaps when its hash is among them, whichever training task holds it, so a problem that
is both in `math500` and in a custom training file counts too.

    prorl-eval overlap runs/t --tasks gym:leg_counting,math500 --data-dir ../shared/data

Example:
    >>> manifest = {"tasks": {"gym:a": [prompt_hash("What is 2+2?")]}}
    >>> overlap_rows(manifest, {"gym:a": ["What is 2+2?", "What is 3+3?"]})[0]["in_training"]
    1
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from prorl_eval.errors import UserError
from prorl_eval.fingerprints import prompt_hash

PROMPTS_FILE = "train_prompts.json"


def read_training_prompts(run_dir: str | Path) -> dict[str, Any]:
    """A training run's `train_prompts.json`; UserError when the folder has none."""
    from prorl_eval.jsonio import read_json

    path = Path(run_dir) / PROMPTS_FILE
    if not path.is_file():
        raise UserError(
            f"{run_dir} has no {PROMPTS_FILE}; point at a prorl-train run folder (runs written "
            "before this file existed can be resumed once with --resume to write it)."
        )
    return read_json(path, "training prompts file")


def overlap_rows(manifest: dict[str, Any], prompts: dict[str, list[str]]) -> list[dict[str, Any]]:
    """Per evaluation task: its problems, how many of their prompts training saw, and which
    training tasks held them (``prompts`` maps each evaluation task to its prompts)."""
    owners: dict[str, list[str]] = {}
    for task, hashes in manifest.get("tasks", {}).items():
        for value in hashes:
            owners.setdefault(value, []).append(task)
    rows = []
    for task, texts in prompts.items():
        hits = [owners[h] for h in map(prompt_hash, texts) if h in owners]
        rows.append(
            {
                "task": task,
                "problems": len(texts),
                "in_training": len(hits),
                "training_tasks": sorted({owner for found in hits for owner in found}),
            }
        )
    return rows


def task_prompts(tasks: list[Any]) -> dict[str, list[str]]:
    """{task name: the prompt of each problem} of registry tasks."""
    return {task.name: [task.prompt(problem) for problem in task.load()] for task in tasks}


def run_overlap(run_dir: str | Path, tasks: list[Any], manifest: dict | None = None) -> dict:
    """The overlap of a training run with evaluation tasks, as `overlap.json` records it."""
    manifest = manifest if manifest is not None else read_training_prompts(run_dir)
    rows = overlap_rows(manifest, task_prompts(tasks))
    return {
        "training_run": str(run_dir),
        "tasks": rows,
        "in_training": sum(row["in_training"] for row in rows),
        "problems": sum(row["problems"] for row in rows),
        "held_out": manifest.get("held_out", {}),
        "holdout": manifest.get("holdout", {}),
    }
