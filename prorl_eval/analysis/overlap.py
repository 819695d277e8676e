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
from typing import Annotated, Any

import typer

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


def overlap_command(
    run: Annotated[Path, typer.Argument(help="A prorl-train run folder (train_prompts.json).")],
    tasks: Annotated[str, typer.Option(help="Evaluation tasks, as for pass-at-k.")],
    limit: Annotated[int | None, typer.Option(help="Problems per task, as for pass-at-k.")] = None,
    data_seed: Annotated[int, typer.Option(help="Data seed, as for pass-at-k.")] = 0,
    data_dir: Annotated[
        str | None, typer.Option(help="Offline benchmark copies; default $PRORL_DATA_DIR.")
    ] = None,
    out: Annotated[Path | None, typer.Option(help="Also write the counts to this JSON.")] = None,
) -> None:
    """Count the evaluation prompts a training run trained on (identical prompts)."""
    from rich.console import Console
    from rich.table import Table

    from prorl_eval.jsonio import write_json_atomic
    from prorl_eval.tasks.registry import TaskOptions, data_dir_from, resolve_tasks

    manifest = read_training_prompts(run)  # refuse a wrong folder before building any task
    options = TaskOptions(limit=limit, seed=data_seed, data_dir=data_dir_from(data_dir))
    result = run_overlap(run, resolve_tasks(tasks, options), manifest)
    table = Table(title=f"evaluation prompts seen in training ({run})")
    for name in ("task", "problems", "in training", "training tasks"):
        table.add_column(name, justify="left" if name in ("task", "training tasks") else "right")
    for row in result["tasks"]:
        owners = ", ".join(row["training_tasks"]) or "-"
        table.add_row(row["task"], str(row["problems"]), str(row["in_training"]), owners)
    Console().print(table)
    if out is not None:
        write_json_atomic(out, result)
