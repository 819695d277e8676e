"""`prorl-train`: train a reasoning model with the ProRL recipe, and plot a run's dynamics.

    prorl-train --preset cpu-smoke --out runs/t                 # minutes on 2 CPU cores
    prorl-train --preset cpu-smoke --out runs/t --resume        # continue (exact on CPU)
    prorl-train --preset cpu-smoke --out runs/v --rollout-backend vllm  # rollouts on vLLM
    prorl-train --preset prorl-paper --out runs/p --config my.yaml --set optim.lr=1e-6
    prorl-train show-config --preset prorl-paper [--fields]     # the resolved settings / help
    prorl-train plot runs/t                                     # runs/t/dynamics.png

Settings are layered: preset ← `--config` YAML ← `--set key.sub=value` ← the explicit options
(`--steps`, `--seed`, `--model`, `--rollout-backend`). Bad input prints one line and exits 2;
Ctrl-C saves a checkpoint and exits 130 (`--resume` continues); `touch <out>/RESET` asks for a
reset at the next step end.
"""

from __future__ import annotations

import os
import sys
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Any

import typer
from rich.console import Console

from prorl_eval.errors import UserError

if TYPE_CHECKING:
    from prorl_train.config import TrainConfig

app = typer.Typer(
    name="prorl-train",
    help=(
        "Train a reasoning model with the ProRL recipe: GRPO + decoupled clipping, dynamic "
        "sampling, KL to a reference policy with hard resets, verifier rewards."
    ),
    pretty_exceptions_enable=False,
    add_completion=False,
)
err_console = Console(stderr=True)
out_console = Console()

SetOption = Annotated[
    list[str] | None,
    typer.Option("--set", help="Override a setting: --set optim.lr=1e-5 (repeatable)."),
]
PresetOption = Annotated[
    str | None, typer.Option(help="Starting settings: prorl-paper, prorl-mini or cpu-smoke.")
]
ConfigOption = Annotated[Path | None, typer.Option("--config", help="YAML file of settings.")]


def _quiet_libraries() -> None:
    os.environ.setdefault("TRANSFORMERS_VERBOSITY", "error")
    os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")
    os.environ.setdefault("HF_HUB_DISABLE_PROGRESS_BARS", "1")
    os.environ.setdefault("TQDM_DISABLE", "1")


@app.callback(invoke_without_command=True)
def train_command(
    ctx: typer.Context,
    out: Annotated[Path | None, typer.Option(help="Run folder (checkpoints, metrics).")] = None,
    preset: PresetOption = None,
    config: ConfigOption = None,
    set_: SetOption = None,
    resume: Annotated[bool, typer.Option(help="Continue from the newest checkpoint.")] = False,
    steps: Annotated[int | None, typer.Option(help="Training steps (overrides).")] = None,
    seed: Annotated[int | None, typer.Option(help="Run seed (overrides).")] = None,
    model: Annotated[str | None, typer.Option(help="Model to train (overrides).")] = None,
    rollout_backend: Annotated[
        str | None,
        typer.Option(
            "--rollout-backend",
            help="Rollout engine: hf (generate on the live policy) or vllm (a vLLM engine whose "
            "weights are synced in place after every update); same as --set rollout.backend=...",
        ),
    ] = None,
) -> None:
    """Train (the default command): see the options, or `prorl-train show-config --fields`."""
    if ctx.invoked_subcommand is not None:
        return
    if out is None:
        if preset is None and config is None and not set_:
            typer.echo(ctx.get_help())
            raise typer.Exit(0)
        raise UserError("no run folder: pass --out DIR.")
    from prorl_train.config import load_config

    overrides = list(set_ or [])
    if model is not None:
        overrides.append(f"model.name={model}")
    if rollout_backend is not None:
        overrides.append(f"rollout.backend={rollout_backend}")
    cfg = load_config(preset, config, overrides, out=str(out), steps=steps, seed=seed)
    cfg.validate()
    _run_training(cfg, resume)


def _status_line(row: dict[str, Any], total: int) -> str:
    """The one-line summary printed after each step."""

    def get(key: str, fmt: str) -> str:
        value = row.get(key)
        return format(value, fmt) if isinstance(value, (int, float)) else "-"

    parts = [
        f"step {row['step']}/{total}",
        f"reward {get('reward/mean', '.3f')}",
        f"acc {get('reward/accuracy', '.3f')}",
        f"ent {get('actor/entropy', '.3f')}",
        f"kl {get('actor/kl_ref', '.2e')}",
        f"len {get('rollout/response_len_mean', '.0f')}",
        f"filtered {get('rollout/filtered_share', '.2f')}",
        f"{get('time/step_s', '.1f')}s",
    ]
    if row.get("rollout/groups_short"):
        kept, wanted = row.get("rollout/groups_kept", 0), row.get("rollout/groups_requested", 0)
        parts.append(f"[yellow]short batch {kept:.0f}/{wanted:.0f} groups[/]")
    if "val/pass@1" in row:
        parts.append(f"val@1 {get('val/pass@1', '.3f')}")
    if row.get("reset/event"):
        parts.append(f"[bold yellow]reset ({row.get('reset/triggers')})[/]")
    return "  ".join(parts)


def _run_training(cfg: TrainConfig, resume: bool) -> None:
    from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn

    from prorl_train.trainer import Trainer, prepare_run_dir

    found, _ = prepare_run_dir(cfg, resume)  # refuse a bad run folder before loading anything
    if resume and found is None:  # job scripts pass --resume on their first launch too
        err_console.print(
            f"--resume: no checkpoint in {cfg.out} yet; starting a new run there.", soft_wrap=True
        )
    err_console.print(f"loading {cfg.model.name} and {len(cfg.data.mix)} task source(s) ...")
    trainer = Trainer(cfg, resume=resume)
    for note in trainer.notes:
        err_console.print(f"[dim]{note}[/]", soft_wrap=True)
    columns = (TextColumn("[bold]training"), BarColumn(), MofNCompleteColumn(), TimeElapsedColumn())
    with Progress(*columns, console=err_console, transient=True) as bar:
        task_id = bar.add_task("training", total=cfg.steps, completed=trainer.step)

        def on_step(row: dict[str, Any]) -> None:
            bar.console.print(_status_line(row, cfg.steps), highlight=False, soft_wrap=True)
            bar.update(task_id, completed=row["step"])

        summary = trainer.run(on_step=on_step)
    err_console.print(f"done: step {summary['step']}, checkpoint {summary['checkpoint']}")


@app.command("show-config")
def show_config_command(
    preset: PresetOption = None,
    config: ConfigOption = None,
    set_: SetOption = None,
    fields: Annotated[bool, typer.Option(help="List every setting with its help text.")] = False,
) -> None:
    """Print the resolved settings as YAML (or, with --fields, every setting and its meaning)."""
    from prorl_train.config import config_to_yaml, field_help, load_config

    if fields:
        for name, default, text in field_help():
            out_console.print(f"[bold]{name}[/] = {default}\n    {text}", highlight=False)
        return
    cfg = load_config(preset, config, list(set_ or []))
    typer.echo(config_to_yaml(cfg), nl=False)


@app.command("plot")
def plot_command(
    run: Annotated[Path, typer.Argument(help="Run folder holding metrics.jsonl.")],
    out: Annotated[Path | None, typer.Option(help="PNG path (default RUN/dynamics.png).")] = None,
) -> None:
    """Draw the run's training dynamics (reward, validation, entropy, KL, length, clipping)."""
    from prorl_train.plot import plot_run

    path = plot_run(run, out)
    err_console.print(f"figure written to {path}")


def main(argv: list[str] | None = None) -> int:
    """Console-script entry point: UserError → one line, exit 2; Ctrl-C → exit 130."""
    from prorl_train.trainer import TrainingInterrupted

    _quiet_libraries()
    try:
        app(args=argv, prog_name="prorl-train")
    except SystemExit as exc:
        return exc.code if isinstance(exc.code, int) else (0 if exc.code is None else 1)
    except UserError as exc:
        err_console.print(f"[bold red]error:[/] {exc}", highlight=False, soft_wrap=True)
        return 2
    except TrainingInterrupted as exc:
        where = exc.checkpoint or "none yet"
        err_console.print(f"interrupted: latest checkpoint {where}; rerun with --resume.")
        return 130
    except KeyboardInterrupt:
        err_console.print("interrupted before training started.")
        return 130
    return 0


if __name__ == "__main__":
    sys.exit(main())
