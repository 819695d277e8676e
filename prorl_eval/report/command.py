"""`prorl-eval report`: a paper-style report of run folders as Markdown, HTML and LaTeX.

    prorl-eval report runs/base runs/step500 runs/final --labels base,step500,final \\
        --base runs/base --out reports/prorl

For every RUN (a folder with results.json, and samples.jsonl for the figures) it writes into
``--out``:

- ``report.md`` / ``report.html`` / ``tables.tex``: per-domain tables of mean pass@k (``--k``,
  default 1) ± the 95% CI half-width in percent, best per row in bold, an average row per domain
  (see :mod:`prorl_eval.report.tables`); the HTML page is self-contained (figures inlined).
- ``figures/passk_curves_task.png`` and ``passk_curves_domain.png``: pass@k for every k up to n
  with bootstrap bands (:mod:`prorl_eval.analysis.curves`).
- With ``--base RUN``: the other runs are RL checkpoints in training order; the report adds
  ``figures/boundary.png`` (pass@1 and pass@k_max per task, :func:`plot_boundary`) and
  ``figures/correlation.png`` (per task: base pass@k_max vs the final checkpoint's pass@k_max
  gain, the ProRL "weaker start, larger gain" plot), where ``k_max`` is the smallest per-problem
  sample count of the runs. The base may be one of the RUNs or an extra folder (then it is the
  first column).

A run without samples (no samples.jsonl, no readable ``source_samples``) still gets its table
column; the figures and the average row's CI then leave it out, and the report's Notes say so.
Bad input (no results.json, the k missing from a run, an unwritable --out) raises
:class:`UserError`.
"""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass
from pathlib import Path
from typing import Annotated, Any

import typer

from prorl_eval.errors import UserError

RUNS_HELP = "Run folders written by `prorl-eval pass-at-k` (results.json, samples.jsonl)."
FIGURE_DPI = 110


@dataclass
class LoadedRun:
    """One run folder: its results frame, per-problem counts (None without samples), metadata."""

    label: str
    path: Path
    results: Any
    counts: Any | None
    samples: Path | None


def _samples_path(folder: Path, meta: dict[str, Any]) -> Path | None:
    """The folder's samples.jsonl, else the results' ``source_samples`` when it exists."""
    from prorl_eval.runstore import SAMPLES_FILE

    if (folder / SAMPLES_FILE).is_file():
        return folder / SAMPLES_FILE
    source = meta.get("source_samples")
    if source and Path(source).is_file():
        return Path(source)
    return None


def load_run(path: str | Path, label: str) -> LoadedRun:
    """Read a run folder; UserError when it is not a folder or lacks results.json."""
    from prorl_eval.analysis.inputs import load_counts
    from prorl_eval.results import load_results
    from prorl_eval.runstore import RESULTS_FILE

    folder = Path(path)
    if not folder.is_dir():
        raise UserError(f"run folder {folder} does not exist; pass folders written by pass-at-k.")
    if not (folder / RESULTS_FILE).is_file():
        raise UserError(
            f"run folder {folder} has no {RESULTS_FILE}; compute it with "
            f"`prorl-eval pass-at-k --samples {folder}/samples.jsonl --out {folder}`."
        )
    results = load_results(folder)
    samples = _samples_path(folder, results.attrs.get("run", {}))
    counts = load_counts(samples) if samples is not None else None
    return LoadedRun(label, folder, results, counts, samples)


def _resolve_labels(
    runs: list[str], labels: str | None, base: str | None
) -> tuple[list[str], list[str], str | None]:
    """(paths, labels, base label): an extra --base folder becomes the first column."""
    from prorl_eval.analysis.inputs import default_label, run_labels

    if not runs:
        raise UserError("no RUN given; pass one or more run folders.")
    names = run_labels(runs, labels)
    if base is None:
        return list(runs), names, None
    resolved = [Path(r).resolve() for r in runs]
    if Path(base).resolve() in resolved:
        return list(runs), names, names[resolved.index(Path(base).resolve())]
    name, copy = default_label(base), 2
    while name in names:
        name = f"{default_label(base)}#{copy}"
        copy += 1
    return [base, *runs], [name, *names], name


def _check_base(names: list[str], base_label: str | None) -> None:
    """--base needs an RL run to compare with, and no RL run may be labelled 'base'."""
    from prorl_eval.analysis.boundary import BASE_LABEL

    if base_label is None:
        return
    rl = [name for name in names if name != base_label]
    if not rl:
        raise UserError("--base needs at least one other RUN (an RL checkpoint) to compare with.")
    if BASE_LABEL in rl:
        raise UserError(
            f"an RL run is labelled '{BASE_LABEL}', which names the --base run; "
            "give it another label with --labels."
        )


def _consistency_notes(run: LoadedRun, k: int) -> list[str]:
    """Notes where samples.jsonl and results.json disagree; the counts are then dropped."""
    from prorl_eval.passk import pass_at_k

    if run.counts is None:
        return [
            f"Run {run.label}: no samples.jsonl found, so it is left out of the figures "
            "and its average rows have no CI."
        ]
    at_k = run.results[run.results["k"] == k].set_index("task")["pass_at_k"]
    for task, expected in at_k.items():
        rows = run.counts[run.counts["task"] == task]
        if rows.empty or int(rows["n"].min()) < k:
            got = "no samples"
        else:
            value = float(pass_at_k(rows["n"].to_numpy(), rows["c"].to_numpy(), k).mean())
            if abs(value - float(expected)) <= 1e-9:
                continue
            got = f"pass@{k} {value:.4f} vs {float(expected):.4f}"
        run.counts = None
        return [
            f"Run {run.label}: samples ({run.samples}) and results.json disagree on {task} "
            f"({got}); the tables show results.json and the figures leave this run out. "
            "Recompute results.json with `prorl-eval pass-at-k --samples`."
        ]
    return []


def _save(fig: Any, folder: Path, name: str, title: str, caption: str) -> Any:
    from prorl_eval.report.render import FigureInfo

    path = folder / name
    fig.savefig(path, dpi=FIGURE_DPI)
    return FigureInfo(path=path, rel=f"figures/{name}", title=title, caption=caption)


def curve_figures(runs: list[LoadedRun], folder: Path) -> list[Any]:
    """pass@k curves per task and per domain of every run with counts."""
    from prorl_eval.analysis.curves import passk_curves, plot_passk_curves
    from prorl_eval.report.tables import domain_sort_key, report_order

    counts = {run.label: run.counts for run in runs if run.counts is not None}
    if not counts:
        return []
    curves = passk_curves(counts)
    band = "shaded: 95% bootstrap CI over problems"
    order = {
        "task": report_order(curves.loc[curves["scope"] == "task", "group"]),
        "domain": sorted(
            set(curves.loc[curves["scope"] == "domain", "group"]), key=domain_sort_key
        ),
    }
    return [
        _save(
            plot_passk_curves(curves, scope, groups=order[scope]),
            folder,
            f"passk_curves_{scope}.png",
            f"pass@k curves per {scope}",
            f"Unbiased pass@k for k = 1..n (log2 axis) per {scope} ({band})."
            + (" A domain is the unweighted mean of its tasks." if scope == "domain" else ""),
        )
        for scope in ("task", "domain")
    ]


def boundary_figures(base: LoadedRun, rl: list[LoadedRun], folder: Path) -> tuple[list, list]:
    """(figures, notes): the boundary bars and the base-pass@k vs RL-gain correlation."""
    from prorl_eval.analysis.boundary import BASE_LABEL, compare_boundary, plot_boundary
    from prorl_eval.analysis.correlation import correlate, correlation_points, plot_correlation

    if base.counts is None or any(run.counts is None for run in rl):
        return [], ["Boundary and correlation figures skipped: a run has no usable samples."]
    k = min(int(run.counts["n"].min()) for run in [base, *rl])
    report = compare_boundary(base.counts, {run.label: run.counts for run in rl}, k=k)
    figures = [
        _save(
            plot_boundary(report.tasks, k),
            folder,
            "boundary.png",
            "Reasoning boundary: base vs RL",
            f"Per task: mean pass@1 (narrow bars) and pass@{k} (wide bars) of the base "
            f"({base.label}, shown as '{BASE_LABEL}') and each RL run, on the problems all share.",
        )
    ]
    final = rl[-1].label
    points = correlation_points(report.tasks[report.tasks["checkpoint"] == final])
    try:
        stats = correlate(points["base_pass_at_k"], points["gain_pass_at_k"])
    except UserError as exc:
        return figures, [f"Correlation figure skipped: {exc}"]
    fig = plot_correlation(
        points, "base_pass_at_k", "gain_pass_at_k", stats,
        axis_labels=(f"base pass@{k}", f"{final} gain in pass@{k}"),
    )  # fmt: skip
    caption = (
        f"One point per task: the base's pass@{k} against the gain of {final} over it in "
        f"pass@{k}, with the least-squares line (ProRL: the weaker the base, the larger the gain)."
    )
    figures.append(_save(fig, folder, "correlation.png", "Base pass@k vs RL gain", caption))
    return figures, []


def build_report(runs: list[LoadedRun], k: int, base: str | None, figures_dir: Path) -> Any:
    """Tables, figures and notes of loaded runs -> :class:`ReportData`."""
    from prorl_eval.report.render import ReportData
    from prorl_eval.report.tables import build_tables, cell_table

    cells = cell_table({run.label: run.results for run in runs}, k)
    notes = [note for run in runs for note in _consistency_notes(run, k)]
    tables = build_tables(
        cells,
        counts={run.label: run.counts for run in runs},
        bootstrap={r.label: r.results.attrs.get("run", {}).get("bootstrap", {}) for r in runs},
    )
    figures = curve_figures(runs, figures_dir)
    if base is not None:
        base_run = next(run for run in runs if run.label == base)
        rl = [run for run in runs if run is not base_run]
        more, extra = boundary_figures(base_run, rl, figures_dir)
        figures, notes = figures + more, notes + extra
    return ReportData(
        k=k,
        runs=tuple(_run_info(run) for run in runs),
        tables=tuple(tables),
        figures=tuple(figures),
        notes=tuple(notes),
        generated=dt.datetime.now(dt.timezone.utc).strftime("%Y-%m-%d %H:%M UTC"),
        base=base,
    )


def _run_info(run: LoadedRun) -> Any:
    from prorl_eval.report.render import RunInfo

    meta = run.results.attrs.get("run", {})
    model = meta.get("model") or ", ".join(m for m in meta.get("models", []) if m) or "?"
    ks = meta.get("ks") or sorted(set(run.results["k"].astype(int)))
    return RunInfo(
        label=run.label,
        path=str(run.path),
        model=str(model),
        n=int(run.results["n"].min()),
        ks=tuple(int(k) for k in ks),
        num_tasks=int(run.results["task"].nunique()),
        samples=None if run.samples is None else str(run.samples),
    )


def report_command(
    runs: Annotated[list[str], typer.Argument(help=RUNS_HELP, metavar="RUN...")],
    out: Annotated[
        Path, typer.Option(help="Folder for report.md, report.html, tables.tex and figures/.")
    ],
    labels: Annotated[
        str | None,
        typer.Option(help="Comma-separated column labels, one per RUN (default: folder names)."),
    ] = None,
    k: Annotated[
        int, typer.Option(help="The k of pass@k in the tables; every run's results must have it.")
    ] = 1,
    base: Annotated[
        str | None,
        typer.Option(
            help="Base model's run folder; the other runs are RL checkpoints in training order "
            "(adds the boundary and correlation figures)."
        ),
    ] = None,
) -> None:
    """Paper-style report of run folders: per-domain pass@k tables and figures (MD, HTML, LaTeX)."""
    from rich.console import Console

    from prorl_eval.jsonio import ensure_writable_dir
    from prorl_eval.report.render import write_report

    if k < 1:
        raise UserError(f"--k must be >= 1 (got {k}).")
    paths, names, base_label = _resolve_labels(runs, labels, base)
    _check_base(names, base_label)
    folder = ensure_writable_dir(out)
    figures_dir = ensure_writable_dir(folder / "figures")
    loaded = [load_run(path, name) for path, name in zip(paths, names, strict=True)]
    data = build_report(loaded, k, base_label, figures_dir)
    written = write_report(data, folder)
    console = Console(stderr=True)
    for note in data.notes:
        console.print(f"note: {note}", highlight=False, soft_wrap=True)
    files = ", ".join(p.name for p in written.values())
    console.print(
        f"report written to {folder}: {files} and {len(data.figures)} figure(s) in figures/",
        highlight=False,
        soft_wrap=True,
    )
