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

from pathlib import Path
from typing import Annotated

import typer

from prorl_eval.cli import options as opt
from prorl_eval.errors import UserError
from prorl_eval.report.build import build_report, parse_report_ks
from prorl_eval.report.loading import (
    check_comparable,
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
