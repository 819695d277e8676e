"""CLI commands of the reasoning-boundary analyses: `curves`, `boundary`, `correlate`.

Each command reads run folders or samples JSONL files (RUN_OR_SAMPLES), computes with the pure
functions of :mod:`prorl_eval.analysis`, writes every table as CSV and JSON (a list of row
objects, NaN as null) and every figure as PNG into ``--out``, records its inputs and options in
``--out/analysis-<command>.json``, and prints a summary table.

    prorl-eval curves runs/base runs/rl --labels base,rl --out analysis/curves
    prorl-eval boundary --base runs/base --rl runs/step500 --rl runs/step1000 --k 128 \\
        --out analysis/boundary
    prorl-eval correlate --base runs/base --rl runs/final --k 128 \\
        --creativity creativity.csv --out analysis/correlation

Bad input (a missing file, k above the samples per problem, an unwritable --out) raises
:class:`prorl_eval.errors.UserError`, which the CLI prints as one line (exit code 2).
"""

from __future__ import annotations

import datetime as dt
import math
from pathlib import Path
from typing import Annotated, Any

import typer

from prorl_eval.cli import options as opt
from prorl_eval.errors import UserError

RUNS_HELP = "Run folders or samples JSONL files (RUN_OR_SAMPLES)."
OUT_HELP = "Folder for the CSV/JSON tables and PNG figures (created if missing)."
BOOTSTRAP_HELP = "Bootstrap resamples for the confidence intervals."
SEED_HELP = "Seed of the bootstrap resampling."
LEVEL_HELP = "Confidence level of the bootstrap intervals."


# ------------------------------------------------------------------------------- helpers


def _check_bootstrap(bootstrap: int, level: float) -> None:
    if bootstrap < 1:
        raise UserError(f"--bootstrap must be >= 1 (got {bootstrap}).")
    if not 0.0 < level < 1.0:
        raise UserError(f"--level must be between 0 and 1, e.g. 0.95 (got {level}).")


def _load_runs(paths: list[str], labels: list[str], allow_mismatch: bool) -> dict[str, Any]:
    """Per-problem counts of each run; their shared problem ids must name the same problems."""
    from prorl_eval.analysis.inputs import load_counts_by_run

    return load_counts_by_run(
        dict(zip(labels, paths, strict=True)), allow_problem_mismatch=allow_mismatch
    )


def _json_safe(value: Any) -> Any:
    if isinstance(value, float) and not math.isfinite(value):
        return None
    if hasattr(value, "item") and not isinstance(value, (list, dict, str)):
        return _json_safe(value.item())
    return value


def _write_table(frame: Any, folder: Path, stem: str) -> list[str]:
    """frame -> stem.csv and stem.json (list of row objects, NaN as null)."""
    from prorl_eval.jsonio import write_json_atomic

    frame.to_csv(folder / f"{stem}.csv", index=False)
    records = [
        {key: _json_safe(value) for key, value in row.items()}
        for row in frame.to_dict(orient="records")
    ]
    write_json_atomic(folder / f"{stem}.json", records)
    return [f"{stem}.csv", f"{stem}.json"]


def _write_figure(fig: Any, folder: Path, name: str) -> str:
    fig.savefig(folder / name, dpi=120)
    return name


def _write_manifest(folder: Path, command: str, inputs: dict, options: dict, files: list) -> None:
    from prorl_eval.jsonio import write_json_atomic

    write_json_atomic(
        folder / f"analysis-{command}.json",
        {
            "command": command,
            "inputs": inputs,
            "options": {key: _json_safe(value) for key, value in options.items()},
            "files": files,
            "written": dt.datetime.now(dt.timezone.utc).isoformat(timespec="seconds"),
        },
    )


def _print_table(title: str, columns: list[str], rows: list[list[str]]) -> None:
    from rich.console import Console
    from rich.markup import escape
    from rich.measure import Measurement
    from rich.table import Table

    console = Console()
    table = Table(title=title)
    for i, name in enumerate(columns):
        table.add_column(name, justify="left" if i == 0 else "right", no_wrap=True)
    for row in rows:
        table.add_row(*(escape(cell) for cell in row))  # task names are text, not markup
    if not console.is_terminal:  # redirected output: widen rather than truncate columns
        needed = Measurement.get(console, console.options.update_width(1000), table).maximum
        console.width = max(console.width, needed)
    console.print(table)


def _note(message: str) -> None:
    from rich.console import Console

    Console(stderr=True).print(message, highlight=False, soft_wrap=True)


def _fmt(value: float, ci: tuple[float, float] | None = None) -> str:
    if value is None or (isinstance(value, float) and math.isnan(value)):
        return "-"
    text = f"{value:.3f}"
    return f"{text} [{ci[0]:.2f},{ci[1]:.2f}]" if ci is not None else text


def _read_domains(path: Path | None) -> dict[str, str] | None:
    from prorl_eval.jsonio import read_json

    if path is None:
        return None
    data = read_json(path, "domains file")
    if not isinstance(data, dict) or not all(
        isinstance(k, str) and isinstance(v, str) for k, v in data.items()
    ):
        raise UserError(
            f"{path} must be a JSON object of task name or family -> domain, "
            'e.g. {"aime24": "math", "gym": "logic"}.'
        )
    return data


# -------------------------------------------------------------------------------- curves


def curves_command(
    runs: Annotated[list[str], typer.Argument(help=RUNS_HELP, metavar="RUN_OR_SAMPLES...")],
    out: Annotated[Path, typer.Option(help=OUT_HELP)],
    labels: Annotated[
        str | None, typer.Option(help="Comma-separated run labels (default: folder/file names).")
    ] = None,
    max_k: Annotated[
        int | None, typer.Option(help="Largest k (default: the smallest samples per problem).")
    ] = None,
    domains: Annotated[
        Path | None,
        typer.Option(help="JSON object mapping task names or families to domains (extra)."),
    ] = None,
    bootstrap: Annotated[int, typer.Option(help=BOOTSTRAP_HELP)] = 1000,
    seed: Annotated[int, typer.Option(help=SEED_HELP)] = 0,
    level: Annotated[float, typer.Option(help=LEVEL_HELP)] = 0.95,
    allow_problem_mismatch: opt.AllowMismatch = False,
) -> None:
    """pass@k for every k = 1..n per task, domain and overall, with bootstrap bands and plots;
    maj@k per task where the samples hold extracted answers (maj_curves.csv, dashed lines)."""
    from prorl_eval.analysis.curves import passk_curves, plot_passk_curves
    from prorl_eval.analysis.inputs import recorded_domains, run_labels
    from prorl_eval.analysis.majority import maj_curves_of_paths
    from prorl_eval.jsonio import ensure_writable_dir

    _check_bootstrap(bootstrap, level)
    if max_k is not None and max_k < 1:
        raise UserError(f"--max-k must be >= 1 (got {max_k}).")
    names = run_labels(runs, labels)
    domain_map = {**recorded_domains(runs), **(_read_domains(domains) or {})}
    folder = ensure_writable_dir(out)
    counts = _load_runs(runs, names, allow_problem_mismatch)
    curves = passk_curves(
        counts, domains=domain_map, max_k=max_k, resamples=bootstrap, seed=seed, level=level
    )
    files = _write_table(curves, folder, "passk_curves")
    maj = maj_curves_of_paths(dict(zip(names, runs, strict=True)), max_k=max_k)
    if len(maj):
        files += _write_table(maj, folder, "maj_curves")
    for scope in ("task", "domain", "overall"):
        fig = plot_passk_curves(curves, scope, maj=maj)
        files.append(_write_figure(fig, folder, f"passk_curves_{scope}.png"))
    _write_manifest(
        folder,
        "curves",
        dict(zip(names, runs, strict=True)),
        {"max_k": max_k, "domains": domain_map, "bootstrap": bootstrap, "seed": seed},
        files,
    )
    _print_curves(curves, level)
    _note(f"curves written to {folder}")


def _print_curves(curves: Any, level: float) -> None:
    rows = []
    for (run, scope, group), part in curves.groupby(["run", "scope", "group"], sort=False):
        first, last = part.iloc[0], part.iloc[-1]
        rows.append(
            [
                f"{run}  {group}" if scope == "task" else f"{run}  [{scope}] {group}",
                str(int(last["num_problems"])),
                str(int(last["k"])),
                _fmt(first["pass_at_k"], (first["ci_low"], first["ci_high"])),
                _fmt(last["pass_at_k"], (last["ci_low"], last["ci_high"])),
            ]
        )
    title = f"pass@k curves ({level:.0%} bootstrap CI over problems)"
    _print_table(title, ["run  group", "problems", "max k", "pass@1", "pass@max k"], rows)


# ------------------------------------------------------------------------------ boundary


def boundary_command(
    base: Annotated[str, typer.Option(help="Base model: run folder or samples JSONL.")],
    rl: Annotated[
        list[str],
        typer.Option(help="RL checkpoint run folder or samples JSONL; repeat, in training order."),
    ],
    out: Annotated[Path, typer.Option(help=OUT_HELP)],
    k: Annotated[int, typer.Option(help="The large k of the boundary (pass@k).")] = 128,
    delta: Annotated[
        float, typer.Option(help="Smallest pass@k / pass@1 change that counts (regimes).")
    ] = 0.02,
    growth_delta: Annotated[
        float | None,
        typer.Option(
            help="Growth of the pass@k gain past earlier checkpoints that counts "
            "as sustained (default: --delta)."
        ),
    ] = None,
    labels: Annotated[
        str | None,
        typer.Option(help="Comma-separated labels of the --rl runs (default: folder names)."),
    ] = None,
    allow_problem_mismatch: opt.AllowMismatch = False,
) -> None:
    """Base vs RL checkpoints: pass@1/pass@k per problem and task, exclusive solves, regimes."""
    from prorl_eval.analysis.boundary import BASE_LABEL, compare_boundary, plot_boundary
    from prorl_eval.analysis.inputs import run_labels
    from prorl_eval.jsonio import ensure_writable_dir

    if k < 1:
        raise UserError(f"--k must be >= 1 (got {k}).")
    if delta < 0 or (growth_delta is not None and growth_delta < 0):
        raise UserError(f"--delta and --growth-delta must be >= 0 (got {delta}, {growth_delta}).")
    names = run_labels(rl, labels)
    if BASE_LABEL in names:
        raise UserError(
            f"an RL run is labelled '{BASE_LABEL}'; give it another name with --labels."
        )
    folder = ensure_writable_dir(out)
    counts = _load_runs([base, *rl], [BASE_LABEL, *names], allow_problem_mismatch)
    base_counts = counts.pop(BASE_LABEL)
    report = compare_boundary(base_counts, counts, k=k, delta=delta, growth_delta=growth_delta)
    files = []
    for stem in ("problems", "tasks", "exclusive", "regimes", "dropped"):
        files += _write_table(getattr(report, stem), folder, f"boundary_{stem}")
    files.append(_write_figure(plot_boundary(report.tasks, k), folder, "boundary.png"))
    inputs = {BASE_LABEL: base, **dict(zip(names, rl, strict=True))}
    options = {"k": k, "delta": delta, "growth_delta": growth_delta}
    _write_manifest(folder, "boundary", inputs, options, files)
    _print_boundary(report, k)
    _note_dropped(report.dropped)
    _note(f"boundary tables written to {folder}")


def _note_dropped(dropped: Any) -> None:
    """One stderr line per run and task that lost problems to the alignment."""
    for row in dropped[dropped["num_dropped"] > 0].itertuples():
        _note(
            f"{row.run} {row.task}: {row.num_dropped} of {row.num_problems} problems not in "
            "every run, left out"
        )


def _print_boundary(report: Any, k: int) -> None:
    final = report.regimes["final_checkpoint"].iloc[0]
    tasks = report.tasks[report.tasks["checkpoint"] == final].set_index("task")
    rows = []
    for row in report.regimes.itertuples():
        t = tasks.loc[row.task]
        rows.append(
            [
                row.task,
                str(int(t["num_problems"])),
                f"{_fmt(row.base_pass_at_1)} → {_fmt(row.final_pass_at_1)}",
                f"{_fmt(row.base_pass_at_k)} → {_fmt(row.final_pass_at_k)}",
                f"{int(t['rl_only_solved'])} ({_fmt(t['rl_only_pass_at_1'])})",
                f"{int(t['base_only_solved'])} ({_fmt(t['base_only_pass_at_1'])})",
                row.regime,
            ]
        )
    columns = [
        "task",
        "problems",
        "pass@1 base → RL",
        f"pass@{k} base → RL",
        "RL-only (RL pass@1)",
        "base-only (base pass@1)",
        "regime",
    ]
    _print_table(f"Reasoning boundary: base vs {final}", columns, rows)


# ----------------------------------------------------------------------------- correlate


def _read_creativity(path: Path) -> Any:
    """A creativity table: ``prorl-eval creativity score``'s folder or creativity_summary.json,
    its per-response creativity.csv / .jsonl, or a per-task CSV / JSON (rows, or {task: value})."""
    import pandas as pd

    from prorl_eval.jsonio import read_json

    if path.is_dir():
        path = path / "creativity_summary.json"
    if not path.is_file():
        raise UserError(
            f"creativity file {path} does not exist; pass a CSV or JSON per-task table."
        )
    try:
        if path.suffix == ".csv":
            return pd.read_csv(path)
        if path.suffix == ".jsonl":
            return pd.read_json(path, lines=True)
    except (ValueError, pd.errors.ParserError) as exc:
        raise UserError(f"cannot read {path} ({exc}); pass a CSV, JSON or JSONL table.") from None
    data = read_json(path, "creativity file")
    if isinstance(data, dict) and isinstance(data.get("groups"), list):  # creativity summary
        frame = pd.DataFrame(data["groups"])
        return frame[frame["task"] != "all"] if "task" in frame.columns else frame
    if isinstance(data, dict) and all(isinstance(v, (int, float)) for v in data.values()):
        return pd.DataFrame({"task": list(data), "creativity_index": list(data.values())})
    if isinstance(data, list) and all(isinstance(row, dict) for row in data):
        return pd.DataFrame(data)
    raise UserError(
        f"{path} must hold a list of rows with 'task' and a creativity column, "
        "or an object {task: creativity}."
    )


def correlate_command(
    base: Annotated[str, typer.Option(help="Base model: run folder or samples JSONL.")],
    rl: Annotated[str, typer.Option(help="RL model: run folder or samples JSONL.")],
    out: Annotated[Path, typer.Option(help=OUT_HELP)],
    k: Annotated[int, typer.Option(help="k of the base pass@k on the x axis.")] = 128,
    gain: Annotated[str, typer.Option(help="RL gain on the y axis: pass@1 or pass@k.")] = "pass@1",
    creativity: Annotated[
        Path | None,
        typer.Option(
            help="Creativity of the RL model: a `creativity score` folder or its files, "
            "or a per-task CSV/JSON with a task column."
        ),
    ] = None,
    creativity_column: Annotated[
        str, typer.Option(help="Column of the creativity table to correlate with the gain.")
    ] = "creativity_index",
    bootstrap: Annotated[int, typer.Option(help=BOOTSTRAP_HELP)] = 1000,
    seed: Annotated[int, typer.Option(help=SEED_HELP)] = 0,
    level: Annotated[float, typer.Option(help=LEVEL_HELP)] = 0.95,
    allow_problem_mismatch: opt.AllowMismatch = False,
) -> None:
    """Per task: base pass@k (and creativity) vs RL gain; Pearson, Spearman, fit, bootstrap CIs."""
    from prorl_eval.analysis.boundary import BASE_LABEL, compare_boundary
    from prorl_eval.analysis.correlation import GAIN_COLUMNS, correlation_points
    from prorl_eval.analysis.inputs import run_labels
    from prorl_eval.jsonio import ensure_writable_dir

    _check_bootstrap(bootstrap, level)
    if gain not in GAIN_COLUMNS:
        raise UserError(f"--gain must be pass@1 or pass@k (got {gain!r}).")
    if k < 1:
        raise UserError(f"--k must be >= 1 (got {k}).")
    folder = ensure_writable_dir(out)
    table = _read_creativity(creativity) if creativity is not None else None
    label = run_labels([rl], None)[0]
    label = label if label != BASE_LABEL else "rl"
    counts = _load_runs([base, rl], [BASE_LABEL, label], allow_problem_mismatch)
    report = compare_boundary(counts[BASE_LABEL], {label: counts[label]}, k=k)
    _note_dropped(report.dropped)
    points = correlation_points(report.tasks, table, creativity_column=creativity_column)
    y = GAIN_COLUMNS[gain]
    pairs = [("base_pass_at_k", f"base pass@{k}")]
    if table is not None:
        pairs.append((creativity_column, creativity_column.replace("_", " ")))
    gain_label = f"RL gain in pass@{k}" if gain == "pass@k" else "RL gain in pass@1"
    stats_rows, files = _correlate_pairs(
        points, pairs, y, gain_label, folder, bootstrap, seed, level
    )
    files = _write_table(points, folder, "correlation_points") + files
    import pandas as pd

    stats = pd.DataFrame(stats_rows)
    files += _write_table(stats, folder, "correlation_stats")
    inputs = {"base": base, label: rl, "creativity": str(creativity) if creativity else None}
    options = {"k": k, "gain": gain, "bootstrap": bootstrap, "seed": seed, "level": level}
    _write_manifest(folder, "correlate", inputs, options, files)
    _print_correlation(stats)
    _note(f"correlation tables written to {folder}")


def _correlate_pairs(points, pairs, y, y_label, folder, bootstrap, seed, level):
    """Correlate each (x column, x label) with y; returns (stats rows, written figures)."""
    from prorl_eval.analysis.correlation import correlate, plot_correlation

    rows, files = [], []
    for x, x_label in pairs:
        data = points[["task", x, y]].dropna()
        if x != "base_pass_at_k" and len(data) < len(points):
            _note(f"{len(points) - len(data)} task(s) have no {x}; left out of that correlation")
        stats = correlate(data[x], data[y], resamples=bootstrap, seed=seed, level=level)
        rows.append({"x": x, "y": y, **_flatten(stats)})
        fig = plot_correlation(data, x, y, stats, axis_labels=(x_label, y_label))
        name = "base" if x == "base_pass_at_k" else "creativity"
        files.append(_write_figure(fig, folder, f"correlation_{name}.png"))
    return rows, files


def _flatten(stats: dict[str, Any]) -> dict[str, Any]:
    flat = {}
    for key, value in stats.items():
        if isinstance(value, list):
            flat[f"{key}_low"], flat[f"{key}_high"] = value
        else:
            flat[key] = value
    return flat


def _print_correlation(stats: Any) -> None:
    rows = []
    for row in stats.itertuples():
        rows.append(
            [
                f"{row.x} vs {row.y}",
                str(row.num_points),
                f"{row.slope:+.3f} [{row.slope_ci_low:+.2f},{row.slope_ci_high:+.2f}]",
                f"{row.pearson_r:+.3f} [{row.pearson_r_ci_low:+.2f},{row.pearson_r_ci_high:+.2f}]",
                f"{row.pearson_p:.3g}",
                f"{row.spearman_rho:+.3f} "
                f"[{row.spearman_rho_ci_low:+.2f},{row.spearman_rho_ci_high:+.2f}]",
                f"{row.spearman_p:.3g}",
            ]
        )
    columns = ["x vs y", "tasks", "slope", "Pearson r", "p", "Spearman ρ", "p"]
    _print_table("Per-task correlation (bootstrap CI over tasks)", columns, rows)
