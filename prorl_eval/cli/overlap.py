"""`prorl-eval overlap RUN --tasks ...`: count the evaluation prompts a training run trained on
(:mod:`prorl_eval.analysis.overlap`), print them as a table and optionally write them as JSON."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

from prorl_eval.analysis.overlap import read_training_prompts, run_overlap


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
