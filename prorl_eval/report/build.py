"""A report's content from loaded runs: the k values, the pass@k curve figures, the tables and
the boundary sections, as one `ReportData` that `render` writes as Markdown, HTML and LaTeX.

`prorl-eval report` (:mod:`prorl_eval.cli.report`) loads the runs, checks them and calls
:func:`build_report`; a notebook can call it the same way.
"""

from __future__ import annotations

import datetime as dt
from pathlib import Path
from typing import Any

from prorl_eval.errors import UserError
from prorl_eval.report.loading import (
    LoadedRun,
    SweepInfo,
    consistency_notes,
    shown_path,
)

FIGURE_DPI = 110


def curve_figures(
    runs: list[LoadedRun],
    folder: Path,
    steps: dict[str, int] | None,
    ks: list[int],
    domains: dict[str, str] | None = None,
) -> list[Any]:
    """pass@k curves per task and per domain of every run with counts; with training steps
    (a sweep), also pass@k against step for the k of the tables."""
    from prorl_eval.analysis.curves import passk_curves, plot_passk_by_step, plot_passk_curves
    from prorl_eval.analysis.majority import maj_curves_of_paths
    from prorl_eval.report.boundary import save_figure
    from prorl_eval.report.tables import domain_sort_key, report_order

    counts = {run.label: run.counts for run in runs if run.counts is not None}
    if not counts:
        return []
    curves = passk_curves(counts, domains=domains)
    maj = maj_curves_of_paths({run.label: run.samples for run in runs if run.label in counts})
    dashed = " Dashed: maj@k (majority vote of k samples)." if len(maj) else ""
    band = "shaded: 95% bootstrap CI over problems"
    order = {
        "task": report_order(curves.loc[curves["scope"] == "task", "group"], domains),
        "domain": sorted(
            set(curves.loc[curves["scope"] == "domain", "group"]), key=domain_sort_key
        ),
    }
    figures = [
        save_figure(
            plot_passk_curves(curves, scope, groups=order[scope], maj=maj),
            folder,
            f"passk_curves_{scope}.png",
            f"pass@k curves per {scope}",
            f"Unbiased pass@k for k = 1..n (log2 axis) per {scope} ({band})."
            + (" A domain is the unweighted mean of its tasks." if scope == "domain" else "")
            + (dashed if scope == "task" else ""),
        )
        for scope in ("task", "domain")
    ]
    stepped = {label: step for label, step in (steps or {}).items() if label in counts}
    if len(stepped) >= 2:
        figures.append(
            save_figure(
                plot_passk_by_step(curves, stepped, ks, groups=order["task"]),
                folder,
                "passk_by_step.png",
                "pass@k against training step",
                f"Per task: pass@{' and pass@'.join(map(str, ks))} of the base (step 0) and each "
                f"checkpoint against its training step ({band}).",
            )
        )
    return figures


def parse_report_ks(spec: Any, runs: list[LoadedRun], boundary: bool) -> list[int]:
    """The k of each table set: ``--k`` as given, else 1 (and, with a base, the largest k every
    run's results have)."""
    from prorl_eval.results import parse_ks

    if spec is not None:
        ks = parse_ks(str(spec)) if str(spec).strip() else []
        if not ks or min(ks) < 1:
            raise UserError(f"--k must be >= 1 (got {spec}).")
        return ks
    if not boundary:
        return [1]
    shared = set.intersection(*(set(run.results["k"].astype(int)) for run in runs))
    return sorted({1, max(shared)}) if shared else [1]


def build_report(
    runs: list[LoadedRun],
    ks: list[int],
    base: str | None,
    figures_dir: Path,
    *,
    sweep: SweepInfo | None = None,
    corpus: Path | None = None,
    delta: float = 0.02,
    growth_delta: float | None = None,
    title: str = "",
) -> Any:
    """Tables, figures, sections and notes of loaded runs -> :class:`ReportData`."""
    from prorl_eval.analysis.inputs import recorded_domains
    from prorl_eval.report.extras import extra_sections
    from prorl_eval.report.render import ReportData
    from prorl_eval.report.tables import build_tables, cell_table

    notes = [note for run in runs for note in consistency_notes(run, ks[0])]
    domains = recorded_domains([run.path for run in runs])
    table_sets = []
    for k in ks:
        cells = cell_table({run.label: run.results for run in runs}, k, domains=domains)
        tables = build_tables(
            cells,
            counts={run.label: run.counts for run in runs},
            bootstrap={r.label: r.results.attrs.get("run", {}).get("bootstrap", {}) for r in runs},
        )
        table_sets.append((k, tuple(tables)))
    figures = curve_figures(runs, figures_dir, sweep.steps if sweep else None, ks, domains)
    sections = extra_sections(runs)
    if base is not None:
        found, more = _boundary(runs, base, ks, figures_dir, sweep, corpus, delta, growth_delta)
        sections += found
        notes += more
    return ReportData(
        k=ks[0],
        runs=tuple(_run_info(run) for run in runs),
        tables=table_sets[0][1],
        more_tables=tuple(table_sets[1:]),
        figures=tuple(figures),
        sections=tuple(sections),
        notes=tuple(notes),
        generated=dt.datetime.now(dt.timezone.utc).strftime("%Y-%m-%d %H:%M UTC"),
        base=base,
        title=title,
    )


def _boundary(runs, base, ks, figures_dir, sweep, corpus, delta, growth_delta):
    """(sections, notes) of the boundary part, at the largest k of the tables."""
    from prorl_eval.report.boundary import BoundaryInputs, boundary_sections

    rl = [run for run in runs if run.label != base]
    usable = [run for run in runs if run.counts is not None]
    if len(usable) < len(runs):
        return [], ["Boundary sections skipped: a run has no usable samples."]
    k = min(max(ks), *(int(run.counts["n"].min()) for run in usable))
    inputs = BoundaryInputs(
        base=base,
        checkpoints=tuple(run.label for run in rl),
        counts={run.label: run.counts for run in runs},
        samples={run.label: run.samples for run in runs},
        k=k,
        steps=sweep.steps if sweep else None,
        training_run=sweep.training_run if sweep else None,
        overlap=sweep.overlap if sweep else None,
        corpus=corpus,
        delta=delta,
        growth_delta=growth_delta,
    )
    return boundary_sections(inputs, figures_dir), []


def _run_info(run: LoadedRun) -> Any:
    from prorl_eval.report.render import RunInfo

    meta = run.results.attrs.get("run", {})
    model = meta.get("model") or ", ".join(m for m in meta.get("models", []) if m) or "?"
    ks = meta.get("ks") or sorted(set(run.results["k"].astype(int)))
    return RunInfo(
        label=run.label,
        path=str(run.path),
        model=shown_path(model) if Path(str(model)).is_dir() else str(model),
        n=int(run.results["n"].min()),
        ks=tuple(int(k) for k in ks),
        num_tasks=int(run.results["task"].nunique()),
        samples=None if run.samples is None else str(run.samples),
    )
