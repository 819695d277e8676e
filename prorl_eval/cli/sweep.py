"""`prorl-eval sweep`: evaluate a training run's base model and checkpoints alike.

The command builds one `EvalConfig` from the shared options (:mod:`prorl_eval.cli.options`) and
drives :class:`prorl_eval.sweep.Sweep`; the folder layout and the rules are described there.
"""

from __future__ import annotations

from pathlib import Path
from typing import Annotated, Any

import typer

from prorl_eval.cli import options as opt
from prorl_eval.errors import UserError
from prorl_eval.sweep import Sweep, training_config


def sweep_command(
    run: Annotated[Path, typer.Argument(help="The prorl-train run folder (its --out).")],
    out: Annotated[Path, typer.Option(help="Sweep folder: one run folder per model, sweep.json.")],
    tasks: opt.Tasks,
    base: Annotated[
        str | None,
        typer.Option(help="The base model (default: the model the run trained from)."),
    ] = None,
    steps: Annotated[
        str, typer.Option(help="Checkpoints to evaluate: all, or steps and 'last' (500,last).")
    ] = "all",
    watch: Annotated[
        bool, typer.Option(help="Wait for new checkpoints until the run's last step is evaluated.")
    ] = False,
    poll: Annotated[float, typer.Option(help="--watch: seconds between looks.")] = 60.0,
    n: opt.N = 16,
    k: opt.Ks = None,
    limit: opt.Limit = None,
    data_seed: opt.DataSeed = 0,
    data_dir: opt.DataDir = None,
    score_workers: opt.ScoreWorkers = None,
    backend: opt.Backend = "auto",
    tensor_parallel_size: opt.TensorParallel = 1,
    data_parallel_size: opt.DataParallel = 1,
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
    bootstrap: opt.Bootstrap = 1000,
) -> None:
    """Evaluate a training run's base model and checkpoints with identical problems and sampling."""
    from rich.console import Console

    console = Console(stderr=True)
    if base is None:
        base = str(training_config(run).get("model", {}).get("name") or "")
        if not base:
            raise UserError(f"{run}/config.yaml names no model; pass --base MODEL.")
    if poll <= 0:
        raise UserError(f"--poll must be positive (got {poll}).")
    config = opt.make_eval_config(out, base, k, **opt.pick(locals()))
    config.validate()
    sweep = Sweep(run, out, base, steps, config, watch=watch, poll_s=poll)

    def say(line: str) -> None:
        console.print(line, highlight=False, soft_wrap=True)

    manifest = sweep.run(lambda cfg, label: opt.run_with_progress(cfg, console, label), say)
    print_sweep_table(out, manifest)
    say(f"sweep written to {out}: {', '.join(e['label'] for e in manifest['entries'])}")


def print_sweep_table(out: Path, manifest: dict[str, Any]) -> None:
    """pass@1 and pass@k_max per task (rows) for every evaluated model (columns)."""
    from rich.console import Console
    from rich.table import Table

    from prorl_eval.results import load_results

    frames = {e["label"]: load_results(out / e["label"]) for e in manifest["entries"]}
    k_max = max(manifest["settings"]["ks"])
    table = Table(title=f"pass@1 / pass@{k_max} per checkpoint (95% CI in results.json)")
    table.add_column("task", no_wrap=True)
    for label in frames:
        table.add_column(label, justify="right", no_wrap=True)
    for task in sorted({t for frame in frames.values() for t in frame["task"]}):
        cells = []
        for frame in frames.values():
            rows = frame[frame["task"] == task].set_index("k")["pass_at_k"]
            cells.append(f"{rows.get(1, float('nan')):.3f} / {rows.get(k_max, float('nan')):.3f}")
        table.add_row(task, *cells)
    Console().print(table)
