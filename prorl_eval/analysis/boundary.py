"""Base vs RL reasoning boundary: per-problem pass@1 / pass@k, exclusive solves, task regimes.

What
----
:func:`compare_boundary` takes the per-problem counts (``task, problem_id, n, c``) of a base model
and of one or more RL checkpoints, in training order (e.g. step500, step1000, final), and reports:

- ``problems``: per run (base and each checkpoint) and problem: ``n``, ``c``, pass@1 (= c/n) and
  the unbiased pass@k (:func:`prorl_eval.passk.pass_at_k`, default k = 128).
- ``tasks``: per checkpoint and task, the mean over problems of pass@1 and pass@k for base and RL,
  their gains (RL − base), and the exclusive solves:
  ``rl_only_solved`` = problems the base never solves (c = 0 in all its samples) but the checkpoint
  solves at least once, with ``rl_only_pass_at_1`` = the checkpoint's mean pass@1 on them (how
  often it finds the new solutions); and the reverse, ``base_only_solved`` (base c > 0, RL c = 0)
  with ``base_only_pass_at_1`` = the base's mean pass@1 on them. ``NaN`` when the set is empty.
- ``exclusive``: the problems behind those counts, one row each.
- ``regimes``: each task's regime (below).
- ``dropped``: how many problems of each run and task were left out of the comparison.

Only problems present in the base **and every** checkpoint are compared (so every checkpoint is
measured on the same set); a task missing from any run is dropped whole. A k above the smallest
per-problem sample count of any compared run is refused with a :class:`UserError` that names the
largest usable k.

Regimes
-------
ProRL (Liu et al., 2025, "ProRL: Prolonged Reinforcement Learning Expands Reasoning Boundaries",
§ on pass@k trends) sorts tasks into three groups by how pass@128 moves under RL: *diminished*
(the boundary shrinks or does not grow, while pass@1 may still rise: typical of math, where the
base is already strong), *plateau* (RL lifts pass@1 and pass@k, but the pass@k gain is reached
early: the final checkpoint adds little over an intermediate one) and *sustained* (pass@k keeps
improving with longer training: typical of code and the logic puzzles). The paper classifies by
inspecting curves; here the rules are explicit. With ``g_j`` = pass@k gain of checkpoint j over
the base (j = 1..m, in the given order), ``h`` = the last checkpoint's pass@1 gain, ``δ`` =
``delta`` (default 0.02, i.e. 2 points) and ``γ`` = ``growth_delta`` (default δ):

1. ``g_m < −δ`` → **diminished** (the boundary narrowed).
2. ``g_m > δ`` and, with m ≥ 2 checkpoints, ``g_m − max(g_1..g_{m−1}) > γ`` → **sustained**
   (with one checkpoint, ``g_1 > δ`` alone is sustained: nothing shows a saturation).
3. ``g_m > δ`` otherwise (m ≥ 2, the final gain within γ of an earlier checkpoint's best)
   → **plateau** (gain saturated).
4. ``|g_m| ≤ δ`` and ``h > δ`` → **plateau** (pass@1 improves, the boundary does not move).
5. ``|g_m| ≤ δ`` and ``h ≤ δ`` → **diminished**, reason "unchanged" (nothing moved; the paper's
   diminished group covers boundaries that shrank or did not grow).

The ``reason`` column says which rule fired, with the numbers. δ is an absolute difference of
mean pass@k; on a 30-problem task one problem is 0.033, so pick δ above the noise you accept
(the bootstrap bands of :mod:`prorl_eval.analysis.curves` show it).

Example:
    >>> import pandas as pd
    >>> base = pd.DataFrame({"task": ["t"] * 2, "problem_id": ["0", "1"], "n": [4, 4], "c": [0, 2]})
    >>> rl = pd.DataFrame({"task": ["t"] * 2, "problem_id": ["0", "1"], "n": [4, 4], "c": [1, 4]})
    >>> report = compare_boundary(base, {"rl": rl}, k=4)
    >>> report.tasks[["rl_only_solved", "rl_only_pass_at_1", "gain_pass_at_k"]].values.tolist()
    [[1.0, 0.25, 0.5]]
    >>> report.regimes.regime.tolist()
    ['sustained']
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

import numpy as np

from prorl_eval.analysis.inputs import display_name
from prorl_eval.errors import UserError
from prorl_eval.passk import pass_at_k

__all__ = [
    "BASE_LABEL",
    "BoundaryReport",
    "align_problems",
    "classify_regimes",
    "compare_boundary",
    "exclusive_problems",
    "plot_boundary",
    "problem_table",
    "task_table",
]

BASE_LABEL = "base"
DEFAULT_K = 128
DEFAULT_DELTA = 0.02
_KEY = ["task", "problem_id"]


@dataclass(frozen=True)
class BoundaryReport:
    """Everything :func:`compare_boundary` computes; each field is a DataFrame (module doc)."""

    problems: Any
    tasks: Any
    exclusive: Any
    regimes: Any
    dropped: Any


def align_problems(runs: Mapping[str, Any]) -> tuple[dict[str, Any], Any]:
    """Keep the (task, problem_id) pairs present in every run; report what each run lost.

    Returns:
        ``({label: counts restricted and sorted}, dropped)`` where ``dropped`` has one row per
        run and task: ``run, task, num_problems, num_compared, num_dropped``.
    """
    import pandas as pd

    runs = {label: counts.reset_index(drop=True) for label, counts in runs.items()}
    keys = None
    for label, counts in runs.items():
        if counts.duplicated(_KEY).any():
            raise ValueError(f"run {label!r} has repeated (task, problem_id) rows")
        these = set(zip(counts["task"].astype(str), counts["problem_id"].astype(str), strict=True))
        keys = these if keys is None else keys & these
    keys = keys or set()
    aligned, rows = {}, []
    for label, counts in runs.items():
        pairs = zip(counts["task"].astype(str), counts["problem_id"].astype(str), strict=True)
        keep = np.fromiter((pair in keys for pair in pairs), dtype=bool, count=len(counts))
        aligned[label] = counts[keep].sort_values(_KEY, kind="stable").reset_index(drop=True)
        for task, group in counts.groupby("task", sort=True):
            kept = int(keep[group.index.to_numpy()].sum())
            rows.append(
                {
                    "run": label,
                    "task": str(task),
                    "num_problems": len(group),
                    "num_compared": kept,
                    "num_dropped": len(group) - kept,
                }
            )
    columns = ["run", "task", "num_problems", "num_compared", "num_dropped"]
    return aligned, pd.DataFrame(rows, columns=columns)


def _check_k(aligned: Mapping[str, Any], k: int) -> None:
    if k < 1:
        raise UserError(f"--k must be >= 1 (got {k}).")
    for label, counts in aligned.items():
        for task, group in counts.groupby("task", sort=True):
            n_min = int(group["n"].min())
            if n_min < k:
                raise UserError(
                    f"k={k} exceeds the samples per problem of run {label} on {task} (smallest "
                    f"n={n_min}); use --k {n_min} or less, or generate more samples (--n {k})."
                )


def problem_table(aligned: Mapping[str, Any], k: int) -> Any:
    """Long table: ``run, task, problem_id, n, c, pass_at_1, pass_at_k`` for every aligned run."""
    import pandas as pd

    parts = []
    for label, counts in aligned.items():
        part = counts[[*_KEY, "n", "c"]].copy()
        part.insert(0, "run", label)
        n, c = part["n"].to_numpy(np.int64), part["c"].to_numpy(np.int64)
        part["pass_at_1"] = c / n  # the unbiased pass@1, exactly
        part["pass_at_k"] = pass_at_k(n, c, k)
        parts.append(part)
    return pd.concat(parts, ignore_index=True)


def _exclusive_mask(base: Any, rl: Any) -> tuple[np.ndarray, np.ndarray]:
    """(rl_only, base_only) boolean masks over aligned rows."""
    base_c, rl_c = base["c"].to_numpy(), rl["c"].to_numpy()
    return (base_c == 0) & (rl_c > 0), (base_c > 0) & (rl_c == 0)


def task_table(problems: Any, checkpoints: list[str]) -> Any:
    """Per checkpoint and task: base/RL pass@1 and pass@k, gains, exclusive solves (module doc)."""
    import pandas as pd

    base = problems[problems["run"] == BASE_LABEL].reset_index(drop=True)
    rows = []
    for label in checkpoints:
        rl = problems[problems["run"] == label].reset_index(drop=True)
        rl_only, base_only = _exclusive_mask(base, rl)
        for task in sorted(base["task"].unique()):
            t = (base["task"] == task).to_numpy()
            b, r = base[t], rl[t]
            row = {"checkpoint": label, "task": task, "num_problems": int(t.sum())}
            row["base_pass_at_1"] = float(b["pass_at_1"].mean())
            row["base_pass_at_k"] = float(b["pass_at_k"].mean())
            row["rl_pass_at_1"] = float(r["pass_at_1"].mean())
            row["rl_pass_at_k"] = float(r["pass_at_k"].mean())
            row["gain_pass_at_1"] = row["rl_pass_at_1"] - row["base_pass_at_1"]
            row["gain_pass_at_k"] = row["rl_pass_at_k"] - row["base_pass_at_k"]
            row["base_unsolved"] = int((b["c"] == 0).sum())
            row["rl_unsolved"] = int((r["c"] == 0).sum())
            row["rl_only_solved"] = int((rl_only & t).sum())
            row["rl_only_pass_at_1"] = _mean_or_nan(rl["pass_at_1"][rl_only & t])
            row["base_only_solved"] = int((base_only & t).sum())
            row["base_only_pass_at_1"] = _mean_or_nan(base["pass_at_1"][base_only & t])
            rows.append(row)
    return pd.DataFrame(rows)


def _mean_or_nan(values: Any) -> float:
    return float(values.mean()) if len(values) else float("nan")


def exclusive_problems(problems: Any, checkpoints: list[str]) -> Any:
    """One row per problem solved by only one side: ``checkpoint, task, problem_id, side``
    (``rl_only`` / ``base_only``), base and RL ``n``, ``c`` and pass@1."""
    import pandas as pd

    base = problems[problems["run"] == BASE_LABEL].reset_index(drop=True)
    parts = []
    for label in checkpoints:  # checkpoints stay in training order
        rl = problems[problems["run"] == label].reset_index(drop=True)
        rl_only, base_only = _exclusive_mask(base, rl)
        keep = rl_only | base_only
        part = pd.DataFrame(
            {
                "checkpoint": label,
                "task": base["task"][keep],
                "problem_id": base["problem_id"][keep],
                "side": np.where(rl_only, "rl_only", "base_only")[keep],
                "base_n": base["n"][keep],
                "base_c": base["c"][keep],
                "base_pass_at_1": base["pass_at_1"][keep],
                "rl_n": rl["n"][keep],
                "rl_c": rl["c"][keep],
                "rl_pass_at_1": rl["pass_at_1"][keep],
            }
        )
        parts.append(part.sort_values(["task", "side", "problem_id"], kind="stable"))
    return pd.concat(parts, ignore_index=True)


def _regime(gains_k: list[float], gain_1: float, delta: float, growth: float) -> tuple[str, str]:
    """(regime, reason) for one task from its ordered pass@k gains and final pass@1 gain."""
    final = gains_k[-1]
    if final < -delta:
        return "diminished", f"pass@k fell {-final:.3f} > δ={delta:g} below the base"
    if final > delta:
        if len(gains_k) == 1:
            return "sustained", f"pass@k gain {final:.3f} > δ={delta:g}"
        best = max(gains_k[:-1])
        if final - best > growth:
            return "sustained", f"pass@k gain grew {best:.3f} → {final:.3f} (> γ={growth:g})"
        return "plateau", f"pass@k gain {final:.3f} within γ={growth:g} of earlier {best:.3f}"
    if gain_1 > delta:
        return "plateau", f"pass@1 +{gain_1:.3f} but pass@k gain {final:.3f} within δ={delta:g}"
    return "diminished", f"unchanged: pass@1 {gain_1:+.3f}, pass@k {final:+.3f} within δ={delta:g}"


def classify_regimes(
    tasks: Any, checkpoints: list[str], *, delta: float = DEFAULT_DELTA, growth_delta=None
) -> Any:
    """Each task's regime (diminished / plateau / sustained) by the module doc's rules.

    Args:
        tasks: :func:`task_table` output.
        checkpoints: the checkpoint labels in training order (the last is "final").
        delta: δ, the smallest pass@k (or pass@1) change that counts.
        growth_delta: γ, the smallest growth of the pass@k gain past an earlier checkpoint's
            that counts as "still growing" (default δ).
    """
    import pandas as pd

    if delta < 0 or (growth_delta is not None and growth_delta < 0):
        raise UserError(f"--delta and --growth-delta must be >= 0 (got {delta}, {growth_delta}).")
    growth = delta if growth_delta is None else growth_delta
    rows = []
    for task in sorted(tasks["task"].unique()):
        by_ckpt = tasks[tasks["task"] == task].set_index("checkpoint").loc[checkpoints]
        gains_k = by_ckpt["gain_pass_at_k"].astype(float).tolist()
        final = by_ckpt.iloc[-1]
        regime, reason = _regime(gains_k, float(final["gain_pass_at_1"]), delta, growth)
        rows.append(
            {
                "task": task,
                "regime": regime,
                "reason": reason,
                "final_checkpoint": checkpoints[-1],
                "base_pass_at_1": float(final["base_pass_at_1"]),
                "base_pass_at_k": float(final["base_pass_at_k"]),
                "final_pass_at_1": float(final["rl_pass_at_1"]),
                "final_pass_at_k": float(final["rl_pass_at_k"]),
                "gain_pass_at_1": float(final["gain_pass_at_1"]),
                "gain_pass_at_k": gains_k[-1],
                "best_earlier_gain_pass_at_k": max(gains_k[:-1]) if len(gains_k) > 1 else np.nan,
            }
        )
    return pd.DataFrame(rows)


def compare_boundary(
    base: Any,
    checkpoints: Mapping[str, Any],
    *,
    k: int = DEFAULT_K,
    delta: float = DEFAULT_DELTA,
    growth_delta: float | None = None,
) -> BoundaryReport:
    """Compare a base model's per-problem counts with RL checkpoints' (see the module doc).

    Args:
        base: counts frame (``task, problem_id, n, c``) of the base model.
        checkpoints: ``{label: counts}`` of the RL checkpoints in training order.
        k: the large k of the boundary (pass@k); refused if any compared problem has n < k.
        delta, growth_delta: regime thresholds δ and γ.
    """
    if not checkpoints:
        raise UserError("no RL run given; pass at least one --rl RUN_OR_SAMPLES.")
    if BASE_LABEL in checkpoints:
        raise UserError(
            f"the label '{BASE_LABEL}' is reserved for the base run; rename the RL run."
        )
    labels = list(checkpoints)
    aligned, dropped = align_problems({BASE_LABEL: base, **checkpoints})
    if aligned[BASE_LABEL].empty:
        raise UserError(
            "the base and RL runs share no (task, problem_id); evaluate them on the same tasks "
            "and problems (same --tasks, --limit and --data-seed)."
        )
    _check_k(aligned, k)
    problems = problem_table(aligned, k)
    tasks = task_table(problems, labels)
    return BoundaryReport(
        problems=problems,
        tasks=tasks,
        exclusive=exclusive_problems(problems, labels),
        regimes=classify_regimes(tasks, labels, delta=delta, growth_delta=growth_delta),
        dropped=dropped,
    )


def plot_boundary(tasks: Any, k: int) -> Any:
    """Grouped bars per task: pass@k of the base and each checkpoint (light), pass@1 (dark).

    Returns a ``matplotlib.figure.Figure`` (no pyplot, no display).
    """
    from matplotlib.figure import Figure

    names = sorted(tasks["task"].unique())
    checkpoints = list(dict.fromkeys(tasks["checkpoint"]))
    first = tasks[tasks["checkpoint"] == checkpoints[0]].set_index("task").loc[names]
    series = [(BASE_LABEL, first["base_pass_at_1"], first["base_pass_at_k"])]
    for label in checkpoints:
        part = tasks[tasks["checkpoint"] == label].set_index("task").loc[names]
        series.append((label, part["rl_pass_at_1"], part["rl_pass_at_k"]))
    width = 0.8 / len(series)
    x = np.arange(len(names))
    fig = Figure(figsize=(max(7.0, 1.3 * len(names) + 3.0), 5.0), layout="constrained")
    ax = fig.subplots()
    for i, (label, p1, pk) in enumerate(series):
        pos = x - 0.4 + width * (i + 0.5)
        ax.bar(pos, pk, width, color=f"C{i % 10}", alpha=0.35, label=f"{label} pass@{k}")
        ax.bar(pos, p1, width * 0.5, color=f"C{i % 10}", label=f"{label} pass@1")
    ax.set_xticks(x, [display_name(n) for n in names], rotation=30, ha="right", fontsize=8)
    ax.set_ylim(0, 1.05)
    ax.set_ylabel("mean over problems")
    # The title goes on the figure and the legend below the axes, so neither can cover or clip
    # the other whatever the number of tasks and checkpoints.
    fig.suptitle(f"Reasoning boundary: pass@1 (narrow bars) and pass@{k} (wide bars)")
    fig.legend(fontsize=7, loc="outside lower center", ncols=min(len(series), 4))
    ax.grid(axis="y", alpha=0.3)
    return fig
