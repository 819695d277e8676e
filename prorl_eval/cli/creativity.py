"""`prorl-eval creativity ...`: build a local corpus index, then score responses' creativity index.

    prorl-eval creativity index-build --input corpus/ --text-field text --out idx/
    prorl-eval creativity index-build --hf-dataset allenai/c4 --hf-config en --max-docs 100000 \\
        --out idx/
    prorl-eval creativity score --samples runs/x --corpus idx/ --out runs/x/creativity

`score` writes ``creativity.jsonl`` and ``creativity.csv`` (one row per response: task,
problem_id, sample_idx, model, num_words, creativity_index, coverage per L) and
``creativity_summary.json`` (per model and task: mean index with a 95% bootstrap CI over problems,
mean coverage per L), and prints the summary as a table. See
:mod:`prorl_eval.analysis.creativity` for the definition and its departures from the paper.

The functions here are typer commands (``make_app`` registers them) over
:mod:`prorl_eval.analysis.creativity_io`; the CLI turns a UserError
into a one-line message and exit code 2.
"""

from __future__ import annotations

import itertools
import time
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Any

import typer
from rich.console import Console
from rich.table import Table

from prorl_eval.analysis.creativity_io import (
    SUMMARY_JSON,
    corpus_documents,
    open_corpus,
    read_rows,
    score_rows,
    write_rows,
)
from prorl_eval.errors import UserError

if TYPE_CHECKING:
    from prorl_eval.analysis.creativity import CreativityConfig


def index_build_command(
    out: Annotated[Path, typer.Option(help="Index folder to create (new or empty).")],
    inputs: Annotated[
        list[Path] | None,
        typer.Option(
            "--input",
            help="Corpus file or folder (.txt: blank-line-separated documents; .jsonl/.json: "
            "JSON lines or a JSON array of objects; .gz ok). Repeat for several.",
        ),
    ] = None,
    hf_dataset: Annotated[
        str | None,
        typer.Option(help="Hugging Face dataset id (streamed), or a save_to_disk folder."),
    ] = None,
    hf_config: Annotated[str | None, typer.Option(help="Config of --hf-dataset.")] = None,
    hf_split: Annotated[str, typer.Option(help="Split of --hf-dataset.")] = "train",
    text_field: Annotated[str, typer.Option(help="Field holding the text in JSON rows.")] = "text",
    max_docs: Annotated[
        int | None, typer.Option(help="Index at most this many documents (default: all).")
    ] = None,
    lowercase: Annotated[
        bool, typer.Option(help="Lowercase words (the paper matches case-sensitively).")
    ] = False,
    mem_gb: Annotated[
        int | None,
        typer.Option(help="Memory for the suffix-array build, GiB (default: half free)."),
    ] = None,
    workers: Annotated[
        int, typer.Option(help="Tokenizer processes (tokenizing is the slow step; try #cores).")
    ] = 1,
) -> None:
    """Build a local word n-gram index of a reference corpus for the creativity index."""
    from rich.progress import Progress, TextColumn, TimeElapsedColumn

    from prorl_eval.analysis.ngram_index import build_index

    _check_build_options(inputs, hf_dataset, max_docs, workers)
    documents, sources = corpus_documents(inputs, hf_dataset, hf_config, hf_split, text_field)
    documents = itertools.islice(documents, max_docs)
    columns = (
        TextColumn("tokenizing"),
        TextColumn("{task.completed:,} words"),
        TimeElapsedColumn(),
    )
    with Progress(*columns, console=Console(stderr=True)) as bar:
        task_id = bar.add_task("tokenizing", total=None)
        stats = build_index(
            documents,
            out,
            lowercase=lowercase,
            mem_gb=mem_gb,
            workers=workers,
            sources=sources,
            progress=lambda words: bar.advance(task_id, words),
        )
    _print_build_stats(stats, out)


def _check_build_options(inputs, hf_dataset, max_docs, workers) -> None:
    """One corpus source, and positive counts."""
    if bool(inputs) == (hf_dataset is not None):
        raise UserError("give either --input (one or more) or --hf-dataset, not both or neither.")
    if max_docs is not None and max_docs <= 0:
        raise UserError(f"--max-docs must be positive (got {max_docs}).")
    if workers <= 0:
        raise UserError(f"--workers must be positive (got {workers}).")


def _print_build_stats(stats: Any, out: Path) -> None:
    table = Table(title=f"n-gram index {out}")
    for name in ("documents", "words", "vocabulary", "tokenize s", "encode s", "suffix array s"):
        table.add_column(name, justify="right")
    table.add_row(
        f"{stats.num_docs:,}",
        f"{stats.num_words:,}",
        f"{stats.vocab_size:,}",
        f"{stats.tokenize_s:.1f}",
        f"{stats.encode_s:.1f}",
        f"{stats.suffix_array_s:.1f}",
    )
    Console().print(table)


# The infini-gram API options of `creativity score` (`--corpus api:<index>`).
Match = Annotated[
    str,
    typer.Option(
        help="api: words (spans as text) or tokens (spans tokenized with --tokenizer, as the "
        "reference implementation)."
    ),
]
TokenizerOption = Annotated[
    str | None,
    typer.Option("--tokenizer", help="api, --match tokens: hub id or folder (Llama-2's)."),
]
ApiUrl = Annotated[str | None, typer.Option(help="api: the API's URL.")]
ApiCache = Annotated[
    Path | None,
    typer.Option(help="api: answer cache file (default ~/.cache/prorl/infini-gram.sqlite)."),
]
ApiConcurrency = Annotated[int, typer.Option(help="api: requests in flight.")]
ApiRate = Annotated[float, typer.Option(help="api: requests per second at most.")]
ApiRetries = Annotated[int, typer.Option(help="api: retries of a failed request.")]


Samples = Annotated[str, typer.Option(help="Run folder or samples JSONL file to score.")]
Corpus = Annotated[
    str,
    typer.Option(
        help="Index folder built by `prorl-eval creativity index-build`, or api:<index> for the "
        "infini-gram API (e.g. api:v4_dolma-v1_7_llama, api:v4_rpj_llama_s4)."
    ),
]
Out = Annotated[
    Path, typer.Option(help="Output folder: creativity.jsonl/.csv and creativity_summary.json.")
]
MinL = Annotated[int, typer.Option(help="Shortest span length L counted (paper: 5).")]
MaxL = Annotated[int, typer.Option(help="Longest span length L counted (paper: 12).")]
StripThink = Annotated[bool, typer.Option(help="Score only the text outside <think>…</think>.")]


def creativity_command(
    samples: Samples,
    corpus: Corpus,
    out: Out,
    min_l: MinL = 5,
    max_l: MaxL = 12,
    strip_think: StripThink = False,
    bootstrap: Annotated[int, typer.Option(help="Bootstrap resamples for the 95% CIs.")] = 1000,
    match: Match = "words",
    tokenizer: TokenizerOption = None,
    api_url: ApiUrl = None,
    api_cache: ApiCache = None,
    api_concurrency: ApiConcurrency = 8,
    api_rate: ApiRate = 10.0,
    api_retries: ApiRetries = 5,
) -> None:
    """Creativity index (Lu et al., 2024) of every response against a local corpus index or the
    infini-gram API."""
    from prorl_eval.analysis.creativity import CreativityConfig, summarize_creativity
    from prorl_eval.jsonio import ensure_writable_dir, write_json_atomic
    from prorl_eval.passk import DEFAULT_BOOTSTRAP_SEED

    try:
        config = CreativityConfig(min_l=min_l, max_l=max_l).validate()
    except ValueError as exc:
        raise UserError(f"--min-l/--max-l: {exc}.") from None
    if bootstrap <= 0:
        raise UserError(f"--bootstrap must be positive (got {bootstrap}).")
    corpus = str(corpus)
    cache = api_cache or Path.home() / ".cache" / "prorl" / "infini-gram.sqlite"
    index, described = open_corpus(
        corpus, api_url=api_url, api_cache=cache, concurrency=api_concurrency, rate=api_rate,
        retries=api_retries, match=match, tokenizer=tokenizer,
    )  # fmt: skip
    rows = read_rows(samples)
    folder = ensure_writable_dir(out)
    started = time.perf_counter()
    console = Console(stderr=True)
    workers = api_concurrency if corpus.startswith("api:") else 1
    records = _score_with_progress(rows, index, config, strip_think, workers, console)
    elapsed = time.perf_counter() - started
    write_rows(folder, records, config.lengths)
    summary = summarize_creativity(records, resamples=bootstrap, seed=DEFAULT_BOOTSTRAP_SEED)
    write_json_atomic(
        folder / SUMMARY_JSON,
        {
            "groups": summary,
            "min_l": min_l,
            "max_l": max_l,
            "strip_think": strip_think,
            "samples": str(samples),
            **described,
            "bootstrap": {"resamples": bootstrap, "seed": DEFAULT_BOOTSTRAP_SEED},
            "score_s": elapsed,
        },
    )
    print_creativity_table(summary, config, Console())
    console.print(f"per-response rows and summary written to {folder}")


def _score_with_progress(
    rows: list[Any], index: Any, config: Any, strip_think: bool, workers: int, console: Console
) -> list[dict[str, Any]]:
    from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn

    with Progress(TextColumn("scoring"), BarColumn(), MofNCompleteColumn(), console=console) as bar:
        task_id = bar.add_task("scoring", total=len(rows))
        return score_rows(
            rows, index, config, strip_think=strip_think, progress=lambda: bar.advance(task_id),
            workers=workers,
        )  # fmt: skip


def print_creativity_table(
    summary: list[dict[str, Any]], config: CreativityConfig, console: Console
) -> None:
    """One row per (model, task) and per model: mean index [95% CI], coverage at min_l, max_l."""
    table = Table(title="creativity index (Lu et al. 2024; 95% bootstrap CI over problems)")
    for name in ("model", "task"):
        table.add_column(name, style="bold")
    for name in ("responses", "scored", "words", "creativity", f"cov@{config.min_l}"):
        table.add_column(name, justify="right")
    table.add_column(f"cov@{config.max_l}", justify="right")
    for group in summary:
        index = group["creativity_index"]
        cell = (
            "—"
            if index is None
            else f"{index:.3f} \\[{group['ci95'][0]:.2f},{group['ci95'][1]:.2f}]"
        )
        coverage = group["coverage"]
        table.add_row(
            group["model"] or "(unnamed)",
            group["task"],
            str(group["num_responses"]),
            str(group["num_scored"]),
            f"{group['mean_words']:.0f}",
            cell,
            *(
                f"{coverage[str(length)]:.3f}" if str(length) in coverage else "—"
                for length in (config.min_l, config.max_l)
            ),
        )
    console.print(table)


def make_app() -> typer.Typer:
    """The `creativity` sub-app: `creativity --samples S --corpus IDX --out DIR` scores directly;
    `creativity index-build` builds the index and `creativity score` is the scoring command."""
    app = typer.Typer(
        help="Creativity index against a local reference-corpus index or the infini-gram API."
    )

    @app.callback(invoke_without_command=True)
    def creativity(
        ctx: typer.Context,
        samples: Annotated[str | None, typer.Option(help="Run folder or samples JSONL.")] = None,
        corpus: Annotated[
            str | None, typer.Option(help="Index folder (index-build) or api:<index>.")
        ] = None,
        out: Annotated[Path | None, typer.Option(help="Output folder.")] = None,
        min_l: Annotated[int, typer.Option(help="Shortest span length L counted.")] = 5,
        max_l: Annotated[int, typer.Option(help="Longest span length L counted.")] = 12,
        strip_think: Annotated[bool, typer.Option(help="Ignore <think>…</think> text.")] = False,
        bootstrap: Annotated[int, typer.Option(help="Bootstrap resamples for CIs.")] = 1000,
    ) -> None:
        """Creativity index (Lu et al., 2024) of responses against a local corpus index."""
        if ctx.invoked_subcommand is not None:
            return
        if samples is None or corpus is None or out is None:
            raise UserError(
                "prorl-eval creativity needs --samples, --corpus and --out (build the corpus "
                "index first with `prorl-eval creativity index-build`)."
            )
        creativity_command(samples, corpus, out, min_l, max_l, strip_think, bootstrap)

    app.command("index-build")(index_build_command)
    app.command("score")(creativity_command)
    return app
