"""`prorl-eval report`: a paper-style report of run folders as Markdown, HTML and LaTeX.

    prorl-eval report runs/t/eval --out reports/t            # a `prorl-eval sweep` folder
    prorl-eval report runs/base runs/step500 runs/final --labels base,step500,final \\
        --base runs/base --out reports/prorl

For every RUN (a folder with results.json, and samples.jsonl for the figures) it writes into
``--out``:

- ``report.md`` / ``report.html`` / ``tables.tex``: per-domain tables of mean pass@k ± the 95% CI
  half-width in percent for each k of ``--k`` (default 1, and with a base also the largest k the
  runs share), best per row in bold, an average row per domain
  (:mod:`prorl_eval.report.tables`); the HTML page is self-contained (figures inlined).
- ``figures/passk_curves_task.png`` and ``passk_curves_domain.png``: pass@k for every k up to n
  with bootstrap bands (:mod:`prorl_eval.analysis.curves`).
- With a base (``--base RUN``, or a sweep folder): the other runs are RL checkpoints in training
  order, and the report adds the boundary sections of :mod:`prorl_eval.report.boundary` (regimes
  with the rule that fired, the problems only RL solves with one solution each, base pass@k vs
  gain, the creativity index with ``--corpus``). A sweep folder also brings pass@k against
  training step, the run's training dynamics and its training/evaluation overlap.

The runs of a boundary report must share their problems (fingerprints; ``--allow-problem-mismatch``
warns instead), their tasks and their sampling settings. A run without samples (no samples.jsonl,
no readable ``source_samples``) still gets its table column; the figures and the average row's CI
then leave it out, and the report's Notes say so. Bad input (no results.json, a k missing from a
run, an unwritable --out) raises :class:`UserError`.
"""

from __future__ import annotations

import datetime as dt
from pathlib import Path
from typing import Annotated, Any

import typer

from prorl_eval import eval_options as opt
from prorl_eval.errors import UserError
from prorl_eval.report.loading import (
    LoadedRun,
    SweepInfo,
    check_comparable,
    consistency_notes,
    expand_sweep,
    load_runs,
    shown_path,
)

RUNS_HELP = (
    "Run folders written by `prorl-eval pass-at-k` (results.json, samples.jsonl), or one "
    "`prorl-eval sweep` folder."
)
OutOption = Annotated[
    Path, typer.Option(help="Folder for report.md, report.html, tables.tex and figures/.")
]
LabelsOption = Annotated[
    str | None,
    typer.Option(help="Comma-separated column labels, one per RUN (default: folder names)."),
]
KsOption = Annotated[
    str | None,
    typer.Option(
        help="The k of pass@k in the tables, comma-separated (default 1, and with a base also "
        "the largest k every run has); every run's results must have them."
    ),
]
BaseOption = Annotated[
    str | None,
    typer.Option(
        help="Base model's run folder; the other runs are RL checkpoints in training order "
        "(adds the boundary sections). A sweep folder names its own base."
    ),
]
CorpusOption = Annotated[
    Path | None,
    typer.Option(help="Corpus index (`prorl-eval creativity index-build`): adds creativity."),
]
DeltaOption = Annotated[
    float, typer.Option(help="Regimes: smallest pass@k / pass@1 change that counts.")
]
GrowthDeltaOption = Annotated[
    float | None, typer.Option(help="Regimes: growth that counts as sustained (--delta).")
]
FIGURE_DPI = 110


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
    from prorl_eval.report.boundary import save_figure
    from prorl_eval.report.tables import domain_sort_key, report_order

    counts = {run.label: run.counts for run in runs if run.counts is not None}
    if not counts:
        return []
    curves = passk_curves(counts, domains=domains)
    band = "shaded: 95% bootstrap CI over problems"
    order = {
        "task": report_order(curves.loc[curves["scope"] == "task", "group"], domains),
        "domain": sorted(
            set(curves.loc[curves["scope"] == "domain", "group"]), key=domain_sort_key
        ),
    }
    figures = [
        save_figure(
            plot_passk_curves(curves, scope, groups=order[scope]),
            folder,
            f"passk_curves_{scope}.png",
            f"pass@k curves per {scope}",
            f"Unbiased pass@k for k = 1..n (log2 axis) per {scope} ({band})."
            + (" A domain is the unweighted mean of its tasks." if scope == "domain" else ""),
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
    sections = []
    if base is not None:
        sections, more = _boundary(runs, base, ks, figures_dir, sweep, corpus, delta, growth_delta)
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


def report_command(
    runs: Annotated[list[str], typer.Argument(help=RUNS_HELP, metavar="RUN...")],
    out: OutOption,
    labels: LabelsOption = None,
    k: KsOption = None,
    base: BaseOption = None,
    corpus: CorpusOption = None,
    delta: DeltaOption = 0.02,
    growth_delta: GrowthDeltaOption = None,
    title: Annotated[str, typer.Option(help="The report's heading.")] = "",
    allow_problem_mismatch: opt.AllowMismatch = False,
) -> None:
    """Paper-style report of run folders or a sweep: pass@k tables, figures, the boundary."""
    from rich.console import Console

    from prorl_eval.jsonio import ensure_writable_dir
    from prorl_eval.report.render import write_report

    sweep = expand_sweep(runs)
    if sweep is not None:
        paths, names, base_label, info = sweep
        if base is not None or labels is not None:
            raise UserError("a sweep folder names its own runs and base; drop --base/--labels.")
    else:
        paths, names, base_label = _resolve_labels(runs, labels, base)
        info = None
    _check_base(names, base_label)
    if corpus is not None and base_label is None:
        raise UserError("--corpus adds the creativity of a boundary report; pass --base too.")
    if delta < 0 or (growth_delta is not None and growth_delta < 0):
        raise UserError(f"--delta and --growth-delta must be >= 0 (got {delta}, {growth_delta}).")
    loaded = load_runs(paths, names, allow_problem_mismatch)
    if base_label is not None:
        check_comparable(loaded)
    ks = parse_report_ks(k, loaded, base_label is not None)
    folder = ensure_writable_dir(out)
    figures_dir = ensure_writable_dir(folder / "figures")
    heading = title or (f"Reasoning boundary of {shown_path(info.training_run)}" if info else "")
    data = build_report(
        loaded,
        ks,
        base_label,
        figures_dir,
        sweep=info,
        corpus=corpus,
        delta=delta,
        growth_delta=growth_delta,
        title=heading,
    )
    written = write_report(data, folder)
    console = Console(stderr=True)
    for note in data.notes:
        console.print(f"note: {note}", highlight=False, soft_wrap=True)
    files = ", ".join(p.name for p in written.values())
    console.print(
        f"report written to {folder}: {files} and {len(data.all_figures)} figure(s) in figures/",
        highlight=False,
        soft_wrap=True,
    )
