"""`prorl-eval`: measure what a model can solve, with pass@k up to large k.

    prorl-eval pass-at-k --model smollm2-135m-instruct --tasks gym:basic_arithmetic \\
        --n 16 --k 1,2,4,8,16 --out runs/x
    prorl-eval pass-at-k --samples runs/x/samples.jsonl --k 1,4,16 --out runs/x-recomputed
    prorl-eval pass-at-k --model Qwen/Qwen2.5-Math-1.5B --backend vllm --data-parallel-size 8 ...
    prorl-eval pass-at-k --model Qwen/Qwen2.5-Math-1.5B --backend openai \\
        --base-url http://gpu-host:8000/v1 --concurrency 64 ...

Bad input prints one line and exits with code 2; Ctrl-C keeps every scored row and exits with 130
(re-run the same command to resume).
"""

from __future__ import annotations

import os
import sys
from pathlib import Path
from typing import Annotated, Any

import typer
from rich.console import Console
from rich.table import Table

from prorl_eval.cli import options as opt
from prorl_eval.cli.options import RunInterrupted
from prorl_eval.errors import UserError, print_user_warnings
from prorl_eval.models import DEFAULT_MODEL
from prorl_eval.tasks.registry import DEFAULT_TASKS

app = typer.Typer(
    name="prorl-eval",
    help="Measure reasoning boundaries: sample n responses per problem, verify, report pass@k.",
    no_args_is_help=True,
    pretty_exceptions_enable=False,
    add_completion=False,
)
out_console = Console()
err_console = Console(stderr=True)


@app.callback()
def _root() -> None:
    """Measure reasoning boundaries: sample n responses per problem, verify them, report pass@k."""


def _quiet_libraries() -> None:
    os.environ.setdefault("TRANSFORMERS_VERBOSITY", "error")
    os.environ.setdefault("VLLM_LOGGING_LEVEL", "WARNING")
    os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")
    os.environ.setdefault("HF_HUB_DISABLE_PROGRESS_BARS", "1")


@app.command("pass-at-k")
def pass_at_k_command(
    out: Annotated[Path, typer.Option(help="Run folder: samples.jsonl, run.json, results.json.")],
    model: Annotated[
        str, typer.Option(help="Alias, local model folder, or hub id (org/name[@revision]).")
    ] = DEFAULT_MODEL,
    tasks: opt.Tasks = DEFAULT_TASKS,
    n: opt.N = 16,
    k: opt.Ks = None,
    limit: opt.Limit = None,
    data_seed: opt.DataSeed = 0,
    data_dir: opt.DataDir = None,
    score_workers: opt.ScoreWorkers = None,
    backend: opt.Backend = "auto",
    tensor_parallel_size: opt.TensorParallel = 1,
    data_parallel_size: opt.DataParallel = 1,
    base_url: opt.BaseUrl = None,
    served_model: opt.ServedModel = None,
    api_key: opt.ApiKey = None,
    concurrency: opt.Concurrency = 64,
    temperature: opt.Temperature = 0.6,
    top_p: opt.TopP = 0.95,
    max_new_tokens: opt.MaxNewTokens = 1024,
    seed: opt.Seed = 0,
    chat_template: opt.ChatTemplate = True,
    system_prompt: opt.SystemPrompt = None,
    batch_size: opt.BatchSize = 64,
    max_batch_tokens: opt.MaxBatchTokens = opt.DEFAULT_MAX_BATCH_TOKENS,
    dtype: opt.Dtype = "auto",
    max_model_len: opt.MaxModelLen = None,
    samples: opt.SamplesFile = None,
    bootstrap: opt.Bootstrap = 1000,
    allow_problem_mismatch: opt.AllowMismatchSamples = False,
    by: opt.By = None,
    maj: opt.Maj = False,
    wandb: opt.Wandb = False,
    wandb_project: opt.WandbProject = "prorl",
) -> None:
    """Generate n samples per problem, score them, and report unbiased pass@k with 95% CIs
    (and avg@k, maj@k, lengths and breakdowns in results.json)."""
    import dataclasses

    from prorl_eval.results import parse_by, parse_ks

    fields = parse_by(by)
    if wandb:  # before any work: a missing package is a one-line error, not a lost run
        from prorl_eval.wandb_logging import require_wandb

        require_wandb("--wandb")
    if samples is not None:
        if bootstrap <= 0:
            raise UserError(f"--bootstrap must be positive (got {bootstrap}).")
        ks = tuple(parse_ks(k)) if k else None
        results = _recompute(samples, ks, out, bootstrap, allow_problem_mismatch, fields, maj)
    else:
        options = opt.pick(locals(), opt.SHARED + opt.OPENAI)
        config = opt.make_eval_config(out, model, k, **options)
        config = dataclasses.replace(config, by=fields, require_maj=maj)
        results = opt.run_with_progress(config, err_console)
    _show_results(results, out, wandb_project if wandb else None)


def _show_results(results: dict[str, Any], out: Path, wandb_project: str | None) -> None:
    """The table, the skipped tasks, where results went, and the W&B run when asked for."""
    print_results_table(results, out_console)
    for name, reason in results.get("skipped_tasks", {}).items():
        err_console.print(f"[yellow]skipped {name}[/]: {reason}", highlight=False)
    err_console.print(f"results written to {Path(out) / 'results.json'}")
    if wandb_project is not None:
        from prorl_eval.wandb_logging import log_eval_results

        where = log_eval_results(results, Path(out), wandb_project)
        err_console.print(f"W&B run written to {where}", highlight=False)


def _recompute(
    samples: Path,
    ks: tuple[int, ...] | None,
    out: Path,
    bootstrap: int,
    allow_problem_mismatch: bool = False,
    by: tuple[str, ...] = (),
    require_maj: bool = False,
) -> dict[str, Any]:
    """pass@k from an existing samples file; without --k, powers of 2 up to the smallest n."""
    from collections import Counter

    from prorl_eval.fingerprints import check_rows
    from prorl_eval.jsonio import ensure_writable_dir, write_json_atomic
    from prorl_eval.passk import DEFAULT_BOOTSTRAP_SEED
    from prorl_eval.results import default_ks, summarize
    from prorl_eval.schema import read_samples

    folder = ensure_writable_dir(out)
    rows = read_samples(samples)
    if not rows:
        raise UserError(f"{samples} holds no sample rows.")
    check_rows(rows, str(samples), allow=allow_problem_mismatch)
    if ks is None:
        per_problem = Counter((row["task"], row["problem_id"]) for row in rows)
        ks = tuple(default_ks(min(per_problem.values())))
    summary = summarize(
        rows, list(ks), by=by, require_maj=require_maj, resamples=bootstrap,
        seed=DEFAULT_BOOTSTRAP_SEED,
    )  # fmt: skip
    results = {
        "tasks": summary,
        "ks": list(ks),
        "source_samples": str(samples),
        "models": sorted({str(r.get("model", "")) for r in rows}),
        "bootstrap": {"resamples": bootstrap, "seed": DEFAULT_BOOTSTRAP_SEED},
    }
    write_json_atomic(folder / "results.json", results)
    return results


@app.command("tasks")
def tasks_command() -> None:
    """List every registry task with its domain, size, verifier and data source, and the suites."""
    from prorl_eval.tasks.registry import catalogue, families, suites

    table = Table(title="prorl-eval tasks")
    for name in ("task", "domain", "size", "verifier", "source"):
        table.add_column(name)
    for entry in catalogue():
        table.add_row(entry.name, entry.domain, entry.size, entry.verifier, entry.source)
    print_table(table, out_console)
    for family in families().values():
        out_console.print(f"family [bold]{family.prefix}:[/]  {family.usage}")
    for suite, members in suites().items():
        shown = ", ".join(members[:6]) + (
            f", ... ({len(members)} tasks)" if len(members) > 6 else ""
        )
        out_console.print(f"suite [bold]{suite}[/]: {shown}")


@app.command("score")
def score_command(
    samples: Annotated[Path, typer.Option(help="JSONL rows with task, problem_id, response.")],
    out: Annotated[Path, typer.Option(help="Where to write the re-scored rows (JSONL).")],
    data_dir: Annotated[
        str | None,
        typer.Option(help="Offline benchmark copies (like shared/data); default $PRORL_DATA_DIR."),
    ] = None,
    data_seed: Annotated[
        int, typer.Option(help="Seed the samples' procedural problems were made with.")
    ] = 0,
    workers: Annotated[
        int | None, typer.Option(help="Scoring processes (default: one per core; 0 = inline).")
    ] = None,
    overwrite: Annotated[bool, typer.Option(help="Replace --out if it exists.")] = False,
    allow_problem_mismatch: opt.AllowMismatch = False,
) -> None:
    """Re-score samples with the registry's verifiers (keeps every other field of each row)."""
    from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn

    from prorl_eval.rescore import rescore_file
    from prorl_eval.scoring import default_workers
    from prorl_eval.tasks.registry import data_dir_from

    with Progress(
        TextColumn("scoring"), BarColumn(), MofNCompleteColumn(), console=err_console
    ) as bar:
        task_id = bar.add_task("scoring", total=None)

        def progress(done: int, total: int) -> None:
            bar.update(task_id, completed=done, total=total)

        summary = rescore_file(
            samples,
            out,
            data_dir=data_dir_from(data_dir),
            seed=data_seed,
            workers=default_workers() if workers is None else workers,
            overwrite=overwrite,
            allow_problem_mismatch=allow_problem_mismatch,
            progress=progress,
        )
    table = Table(title=f"re-scored {samples} -> {out}")
    for name in ("task", "rows", "mean score"):
        table.add_column(name)
    for name, info in summary.items():
        table.add_row(name, str(info["rows"]), f"{info['mean_score']:.3f}")
    out_console.print(table)


def print_results_table(results: dict[str, Any], console: Console) -> None:
    """A pass@k table: one row per task, one column per k, CI below each value."""
    tasks = results["tasks"]
    ks = [str(k) for k in results["ks"]]
    table = Table(
        title="pass@k (unbiased estimator; 95% bootstrap CI over problems; maj@k below it)"
    )
    table.add_column("task", style="bold", no_wrap=True)
    for name in ("problems", "n", "score"):
        table.add_column(name, justify="right", no_wrap=True)
    for k in ks:
        table.add_column(f"pass@{k}", justify="right", no_wrap=True)
    for name, summary in tasks.items():
        cells = []
        for k in ks:
            low, high = summary["pass_at_k_ci95"][k]
            cells.append(f"{summary['pass_at_k'][k]:.3f}\n[dim]\\[{low:.2f},{high:.2f}][/dim]")
        table.add_row(
            name,
            str(summary["num_problems"]),
            str(summary["n"]),
            f"{summary['mean_score']:.3f}",
            *cells,
        )
        if "maj_at_k" in summary:  # majority voting over the same samples, below pass@k
            votes = [f"[dim]maj {summary['maj_at_k'][k]:.3f}[/dim]" for k in ks]
            table.add_row("", "", "", "", *votes)
    print_table(table, console)


def print_table(table: Table, console: Console) -> None:
    """Print a table; when output is redirected, widen the console rather than wrap columns."""
    if not console.is_terminal:
        from rich.measure import Measurement

        needed = Measurement.get(console, console.options.update_width(1000), table).maximum
        console.width = max(console.width, needed)
    console.print(table)


def _attach_analysis_commands() -> None:
    """The analysis commands live in prorl_eval.analysis; their heavy imports stay lazy."""
    from prorl_eval.cli.analysis import boundary_command, correlate_command, curves_command

    app.command("curves")(curves_command)
    app.command("boundary")(boundary_command)
    app.command("correlate")(correlate_command)

    from prorl_eval.cli.overlap import overlap_command

    app.command("overlap")(overlap_command)

    from prorl_eval.cli.sweep import sweep_command

    app.command("sweep")(sweep_command)

    from prorl_eval.cli.export import export_command

    app.command("export")(export_command)

    from prorl_eval.cli.creativity import make_app as creativity_app
    from prorl_eval.cli.report import report_command

    app.add_typer(creativity_app(), name="creativity")

    app.command("report")(report_command)


_attach_analysis_commands()


def _print_warning(line: str) -> None:
    err_console.print(f"[yellow]warning:[/] {line}", highlight=False, soft_wrap=True)


def main(argv: list[str] | None = None) -> int:
    """Console-script entry point: runs the app, turning UserError into a one-line exit 2."""
    _quiet_libraries()
    print_user_warnings(_print_warning)
    try:
        app(args=argv, prog_name="prorl-eval")
    except SystemExit as exc:
        return exc.code if isinstance(exc.code, int) else (0 if exc.code is None else 1)
    except UserError as exc:
        err_console.print(f"[bold red]error:[/] {exc}", highlight=False, soft_wrap=True)
        return 2
    except RunInterrupted:
        err_console.print(
            "interrupted: every scored sample is saved; re-run the same command to resume."
        )
        return 130
    return 0


if __name__ == "__main__":
    sys.exit(main())
