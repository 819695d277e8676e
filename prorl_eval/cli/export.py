"""`prorl-eval export RUN --format lm-eval|lighteval --out DIR`: a run folder in the results
layout of lm-eval or lighteval (:mod:`prorl_eval.export`), for their dashboards and scripts."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer


def export_command(
    run: Annotated[Path, typer.Argument(help="A run folder written by pass-at-k.")],
    format: Annotated[str, typer.Option("--format", help="lm-eval or lighteval.")],
    out: Annotated[Path, typer.Option(help="Folder to write the exported files under.")],
) -> None:
    """Write a run's results and sample logs in lm-eval's or lighteval's schema."""
    from rich.console import Console

    from prorl_eval.export import export_run

    files = export_run(run, format, out)
    console = Console(stderr=True)
    for path in files:
        console.print(f"wrote {path}", highlight=False, soft_wrap=True)
