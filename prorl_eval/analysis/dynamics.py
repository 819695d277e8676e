"""Training dynamics from a prorl-train run's metrics.jsonl: the paper's panels, resets marked.

A panel per signal the ProRL paper tracks — training reward (overall and per domain), validation
pass@1, policy entropy, KL to the reference, response length, clip fractions, the filtered-group
share and the gradient norm — over training steps, with every reset drawn as a dashed vertical line
(the paper's figures mark its reset points the same way). Panels whose metrics the run did not log
are left out. `prorl-train plot RUN` draws all of them; the boundary report draws
:data:`REPORT_PANELS`.

The metrics file is the trainer's contract (one JSON object per step, ``{"step": N, "group/name":
value, ...}``, ``reset/event`` set on the steps that reset); reading it needs nothing from the
trainer package.

Example:
    >>> rows = [{"step": 1, "reward/mean": 0.1}, {"step": 2, "reward/mean": 0.3, "reset/event": 1}]
    >>> series(rows, "reward/mean"), reset_steps(rows)
    (([1, 2], [0.1, 0.3]), [2])
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from pathlib import Path
from typing import Any

METRICS_FILE = "metrics.jsonl"

# (panel title, metric keys or a key prefix ending in "/*", y label)
PANELS: list[tuple[str, list[str], str]] = [
    ("training reward", ["reward/mean", "reward/*"], "reward"),
    ("validation", ["val/pass@1", "val/reward"], "score"),
    ("policy entropy", ["actor/entropy"], "nats / token"),
    ("KL to reference", ["actor/kl_ref"], "k3"),
    ("response length", ["rollout/response_len_mean", "rollout/response_len_max"], "tokens"),
    ("clip fractions", ["actor/clip_frac_low", "actor/clip_frac_high"], "share of tokens"),
    ("dynamic sampling", ["rollout/filtered_share", "rollout/truncated_share"], "share"),
    ("gradient norm", ["actor/grad_norm"], "L2 norm"),
]
REPORT_PANELS = [p for p in PANELS if p[0] in (
    "training reward", "validation", "policy entropy", "KL to reference", "response length"
)]  # fmt: skip
_NOT_DOMAINS = ("reward/mean", "reward/accuracy")


def read_metrics(path: str | Path) -> list[dict[str, Any]]:
    """The rows of a metrics.jsonl file (a truncated last line, from a crash, is skipped)."""
    path = Path(path)
    if not path.is_file():
        return []
    rows = []
    for line in path.read_text(encoding="utf-8").splitlines():
        try:
            rows.append(json.loads(line))
        except json.JSONDecodeError:
            continue
    return rows


def series(rows: list[dict[str, Any]], key: str) -> tuple[list[int], list[float]]:
    """(steps, values) of one metric, skipping rows that lack it."""
    points = [(row["step"], row[key]) for row in rows if isinstance(row.get(key), (int, float))]
    return [s for s, _ in points], [float(v) for _, v in points]


def panel_keys(rows: list[dict[str, Any]], keys: list[str]) -> list[str]:
    """Expand `prefix/*` patterns to the logged keys (per-domain rewards) and drop absent ones."""
    present = {key for row in rows for key in row}
    out: list[str] = []
    for key in keys:
        if key.endswith("/*"):
            prefix = key[:-1]
            matches = sorted(k for k in present if k.startswith(prefix) and k.count("/") == 1)
            out.extend(k for k in matches if k not in _NOT_DOMAINS and k not in out)
        elif key in present and key not in out:
            out.append(key)
    return out


def reset_steps(rows: list[dict[str, Any]]) -> list[int]:
    return [row["step"] for row in rows if row.get("reset/event")]


def plot_dynamics(
    rows: list[dict[str, Any]],
    title: str,
    panels: Sequence[tuple[str, list[str], str]] = PANELS,
    cols: int = 2,
) -> Any:
    """A ``matplotlib.figure.Figure`` with one panel per signal present in ``rows``."""
    from matplotlib.figure import Figure

    chosen = [(t, panel_keys(rows, keys), y) for t, keys, y in panels]
    chosen = [p for p in chosen if p[1]]
    nrows = max(1, (len(chosen) + cols - 1) // cols)
    fig = Figure(figsize=(11, 3.0 * nrows + 0.6), layout="constrained")
    resets = reset_steps(rows)
    for i, (panel, keys, ylabel) in enumerate(chosen):
        ax = fig.add_subplot(nrows, cols, i + 1)
        for key in keys:
            steps, values = series(rows, key)
            ax.plot(steps, values, marker="o" if len(steps) < 30 else None, ms=3, label=key)
        for j, step in enumerate(resets):
            ax.axvline(step, color="grey", ls="--", lw=1, label="reset" if j == 0 else None)
        ax.set_title(panel)
        ax.set_xlabel("step")
        ax.set_ylabel(ylabel)
        ax.grid(alpha=0.3)
        ax.legend(fontsize=7)
    fig.suptitle(title)
    return fig
