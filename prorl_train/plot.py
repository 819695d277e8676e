"""Paper-style training-dynamics figures from a run's metrics.jsonl (`prorl-train plot RUN`).

One PNG with a panel per signal the ProRL paper tracks — training reward (overall and per domain),
validation pass@1, policy entropy, KL to the reference, response length, clip fractions, the
filtered-group share and the gradient norm — over training steps, with every reset drawn as a
dashed vertical line (the paper's figures mark its reset points the same way). Panels whose
metrics the run did not log are left out.

Example:
    >>> plot_run("runs/t")  # doctest: +SKIP
    PosixPath('runs/t/dynamics.png')
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from prorl_eval.errors import UserError
from prorl_train.metrics import read_metrics

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
_NOT_DOMAINS = ("reward/mean", "reward/accuracy")


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


def plot_run(run: str | Path, out: str | Path | None = None) -> Path:
    """Draw `run`'s metrics into a PNG (default `<run>/dynamics.png`); returns its path."""
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure

    run = Path(run)
    rows = read_metrics(run / "metrics.jsonl")
    if not rows:
        raise UserError(f"{run} holds no metrics.jsonl rows; is it a prorl-train run folder?")
    panels = [(t, panel_keys(rows, keys), y) for t, keys, y in PANELS]
    panels = [p for p in panels if p[1]]
    cols = 2
    nrows = (len(panels) + cols - 1) // cols
    fig = Figure(figsize=(11, 3.0 * nrows), constrained_layout=True)
    FigureCanvasAgg(fig)
    resets = reset_steps(rows)
    for i, (title, keys, ylabel) in enumerate(panels):
        ax = fig.add_subplot(nrows, cols, i + 1)
        for key in keys:
            steps, values = series(rows, key)
            ax.plot(steps, values, marker="o" if len(steps) < 30 else None, ms=3, label=key)
        for j, step in enumerate(resets):
            ax.axvline(step, color="grey", ls="--", lw=1, label="reset" if j == 0 else None)
        ax.set_title(title)
        ax.set_xlabel("step")
        ax.set_ylabel(ylabel)
        ax.grid(alpha=0.3)
        ax.legend(fontsize=7)
    fig.suptitle(f"training dynamics: {run.name}")
    path = Path(out) if out else run / "dynamics.png"
    fig.savefig(path, dpi=110)
    return path
