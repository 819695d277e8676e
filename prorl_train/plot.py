"""`prorl-train plot RUN`: the run's training-dynamics figure (`prorl_eval.analysis.dynamics`).

Example:
    >>> plot_run("runs/t")  # doctest: +SKIP
    PosixPath('runs/t/dynamics.png')
"""

from __future__ import annotations

from pathlib import Path

from prorl_eval.analysis.dynamics import METRICS_FILE, plot_dynamics, read_metrics
from prorl_eval.errors import UserError


def plot_run(run: str | Path, out: str | Path | None = None) -> Path:
    """Draw `run`'s metrics into a PNG (default `<run>/dynamics.png`); returns its path."""
    run = Path(run)
    rows = read_metrics(run / METRICS_FILE)
    if not rows:
        raise UserError(f"{run} holds no metrics.jsonl rows; is it a prorl-train run folder?")
    path = Path(out) if out else run / "dynamics.png"
    plot_dynamics(rows, f"training dynamics: {run.name}").savefig(path, dpi=110)
    return path
