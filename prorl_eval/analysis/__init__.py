"""Reasoning-boundary analyses over sample files: pass@k curves, base vs RL, correlations.

Every function here is pure (frames and arrays in, frames, dicts and matplotlib figures out); the
CLI commands in :mod:`prorl_eval.cli.analysis` load the runs and write the files.

- :mod:`~prorl_eval.analysis.inputs`: samples → per-problem ``(n, c)`` counts.
- :mod:`~prorl_eval.analysis.curves`: pass@k for k = 1..n per task / domain / overall, with
  bootstrap bands; log2-k plots.
- :mod:`~prorl_eval.analysis.boundary`: base vs RL checkpoints per problem and task, problems
  solved by one side only, diminished / plateau / sustained regimes.
- :mod:`~prorl_eval.analysis.correlation`: base pass@k (or creativity) vs RL gain across tasks,
  Pearson / Spearman with p-values and bootstrap CIs.

Example:
    >>> from prorl_eval.analysis import load_counts, passk_curves        # doctest: +SKIP
    >>> curves = passk_curves({"base": load_counts("runs/base")})         # doctest: +SKIP
"""

from prorl_eval.analysis.boundary import BoundaryReport, classify_regimes, compare_boundary
from prorl_eval.analysis.correlation import correlate, correlation_points
from prorl_eval.analysis.curves import passk_curves, task_domain
from prorl_eval.analysis.inputs import load_counts, problem_counts, run_labels

__all__ = [
    "BoundaryReport",
    "classify_regimes",
    "compare_boundary",
    "correlate",
    "correlation_points",
    "load_counts",
    "passk_curves",
    "problem_counts",
    "run_labels",
    "task_domain",
]
