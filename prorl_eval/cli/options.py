"""The generation options `pass-at-k` and `sweep` share, and running an eval behind a progress bar.

Each option is declared once here (type, default and help); both commands take them by name, and
`make_eval_config` turns the values into the runner's `EvalConfig`, so a sweep evaluates every
checkpoint exactly as `pass-at-k` would.
"""

from __future__ import annotations

from pathlib import Path
from typing import Annotated, Any

import typer

from prorl_eval.errors import UserError
from prorl_eval.inference.hf import DEFAULT_MAX_BATCH_TOKENS as DEFAULT_MAX_BATCH_TOKENS

Tasks = Annotated[str, typer.Option(help="Comma-separated task names, e.g. gym:basic_arithmetic.")]
N = Annotated[int, typer.Option(help="Samples per problem.")]
Ks = Annotated[
    str | None, typer.Option(help="Comma-separated k values (default: powers of 2 up to n).")
]
Limit = Annotated[int | None, typer.Option(help="Problems per task (Reasoning Gym default: 50).")]
DataSeed = Annotated[int, typer.Option(help="Seed for procedural problems and choice shuffling.")]
DataDir = Annotated[
    str | None,
    typer.Option(help="Offline benchmark copies (like shared/data); default $PRORL_DATA_DIR."),
]
ScoreWorkers = Annotated[
    int | None, typer.Option(help="Scoring processes (default: one per core; 0 = inline).")
]
Backend = Annotated[
    str,
    typer.Option(
        help="auto (vLLM if importable with a GPU), hf, vllm, or openai (an OpenAI-compatible "
        "server at --base-url; --model then only supplies the tokenizer)."
    ),
]
TensorParallel = Annotated[int, typer.Option(help="vLLM: GPUs per engine (tensor parallel).")]
DataParallel = Annotated[
    int,
    typer.Option(
        help="hf/vllm: engines in separate processes, each on its own tensor-parallel-size "
        "GPUs (TP x DP <= visible GPUs); requests are split among them."
    ),
]
Temperature = Annotated[float, typer.Option(help="Sampling temperature (0 = greedy).")]
TopP = Annotated[float, typer.Option(help="Nucleus sampling threshold.")]
MaxNewTokens = Annotated[int, typer.Option(help="Response token budget.")]
Seed = Annotated[int, typer.Option(help="Sampling seed (per-request seeds derive from it).")]
ChatTemplate = Annotated[bool, typer.Option(help="Wrap prompts in the model's chat template.")]
SystemPrompt = Annotated[str | None, typer.Option(help="System prompt to prepend.")]
BatchSize = Annotated[int, typer.Option(help="Sequences per generate call.")]
MaxBatchTokens = Annotated[
    int,
    typer.Option(
        help="hf: at most this many padded prompt tokens per batch (rows x its longest prompt)."
    ),
]
Dtype = Annotated[str, typer.Option(help="auto, float32, bfloat16 or float16.")]
MaxModelLen = Annotated[
    int | None, typer.Option(help="vLLM context length (default: the model's).")
]
Bootstrap = Annotated[int, typer.Option(help="Bootstrap resamples for the 95% CIs.")]
BaseUrl = Annotated[
    str | None, typer.Option(help="openai: the server's API root, e.g. http://host:8000/v1.")
]
ServedModel = Annotated[
    str | None,
    typer.Option(help="openai: the model name the server uses (default: its only model)."),
]
ApiKey = Annotated[
    str | None,
    typer.Option(help="openai: API key (default: $OPENAI_API_KEY); never written to disk."),
]
Concurrency = Annotated[
    int, typer.Option(help="openai: requests in flight at once (each is n samples).")
]
AllowMismatch = Annotated[
    bool,
    typer.Option(
        help="Go on (warning with counts) when runs record different problems for the same task "
        "and problem id (problem fingerprints); by default that is an error."
    ),
]
SamplesFile = Annotated[
    Path | None,
    typer.Option(help="Recompute pass@k from this samples JSONL instead of generating."),
]
AllowMismatchSamples = Annotated[
    bool,
    typer.Option(
        help="With --samples: go on (warning with counts) when rows of one problem id record "
        "different problem fingerprints. A resumed run never mixes problems."
    ),
]
By = Annotated[
    str | None,
    typer.Option(
        help="Also break each task's results down by these problem tags, e.g. level,subject "
        "(MATH-500), difficulty (LiveCodeBench), category (Reasoning Gym)."
    ),
]
Maj = Annotated[
    bool,
    typer.Option(
        "--maj",
        help="Require maj@k for every task (it is reported anyway where the verifier extracts "
        "answers); a task without answers to vote on is an error.",
    ),
]
Wandb = Annotated[
    bool,
    typer.Option(
        "--wandb",
        help="Also log the results to Weights & Biases (WANDB_MODE=offline writes them under "
        "--out/wandb/ without network).",
    ),
]
WandbProject = Annotated[str, typer.Option(help="W&B project for --wandb.")]

# The options that make the runner's SamplingConfig.
SAMPLING_FIELDS = (
    *("temperature", "top_p", "max_new_tokens", "seed"),
    *("chat_template", "system_prompt"),
)
# The options both commands take under these keyword names (pass-at-k adds the openai ones).
SHARED = (
    *("tasks", "n", "limit", "data_seed", "data_dir", "score_workers", "backend"),
    *("tensor_parallel_size", "data_parallel_size"),
    *SAMPLING_FIELDS,
    *("batch_size", "max_batch_tokens", "dtype", "max_model_len", "bootstrap"),
)
OPENAI = ("base_url", "served_model", "api_key", "concurrency")


def pick(values: dict[str, Any], names: tuple[str, ...] = SHARED) -> dict[str, Any]:
    """The shared options out of a command's keyword values (`pick(locals())` in a command)."""
    return {name: values[name] for name in names if name in values}


def make_eval_config(out: str | Path, model: str, ks: str | None, **options: Any) -> Any:
    """An `EvalConfig` from the command-line values (`ks` as typed; default powers of 2 up to n).

    `options` are the keyword names of the shared options above (and the openai ones of
    pass-at-k); sampling options go into the `SamplingConfig`.
    """
    from prorl_eval.inference import SamplingConfig
    from prorl_eval.results import default_ks, parse_ks
    from prorl_eval.runner import EvalConfig
    from prorl_eval.scoring import default_workers
    from prorl_eval.tasks.registry import data_dir_from

    bootstrap = options.pop("bootstrap")
    if bootstrap <= 0:
        raise UserError(f"--bootstrap must be positive (got {bootstrap}).")
    sampling = SamplingConfig(**{name: options.pop(name) for name in SAMPLING_FIELDS})
    workers = options.pop("score_workers")
    return EvalConfig(
        out=str(out),
        model=model,
        ks=tuple(parse_ks(ks)) if ks else tuple(default_ks(options["n"])),
        data_dir=data_dir_from(options.pop("data_dir")),
        score_workers=default_workers() if workers is None else workers,
        sampling=sampling,
        bootstrap_resamples=bootstrap,
        **options,
    )


class RunInterrupted(Exception):
    """Ctrl-C during generation: every row written so far is complete and kept."""


def run_with_progress(config: Any, console: Any, label: str = "") -> dict[str, Any]:
    """`run_pass_at_k(config)` behind a rich progress bar of samples; Ctrl-C → RunInterrupted."""
    from rich.progress import (
        BarColumn,
        MofNCompleteColumn,
        Progress,
        TextColumn,
        TimeElapsedColumn,
        TimeRemainingColumn,
    )

    from prorl_eval.runner import run_pass_at_k

    columns = (
        TextColumn("[bold]{task.description}"),
        BarColumn(),
        MofNCompleteColumn(),
        TextColumn("samples"),
        TimeElapsedColumn(),
        TimeRemainingColumn(),
    )
    prefix = f"{label} " if label else ""
    with Progress(*columns, console=console, transient=False) as bar:
        task_id = None

        def progress(advance: int, total: int, description: str) -> None:
            nonlocal task_id
            if task_id is None:
                task_id = bar.add_task(prefix + description, total=total)
            bar.update(task_id, advance=advance, description=prefix + description)

        try:
            return run_pass_at_k(config, progress=progress)
        except KeyboardInterrupt:
            raise RunInterrupted() from None
