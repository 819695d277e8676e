"""Benchmark the Hugging Face backend's batching: prompts in file order vs sorted by length.

The HF backend left-pads every row of a batch to the batch's longest prompt, so a batch that mixes
a 60-token prompt with a 900-token one computes 900 positions for both. The eval runner now orders
pending work by prompt length for backends that pad (`runner.order_work`, `inference.base.
length_order`); this script measures what that saves on one workload, in one run:

* **file order**: the requests as `plan_work` lists them (task by task, problem by problem);
* **length-sorted**: the same requests, shortest prompt first, as the runner now sends them.

Each side goes through the same `HFGenerator` (the embedded SmolLM2-135M-Instruct, float32) with the
same batch size and token budget. Reported per side: padded prompt tokens (rows x each batch's
longest prompt, summed over the packed batches), real prompt tokens, their ratio, the number of
`model.generate` batches, and the wall time of `generate`. Greedy decoding (the default here) makes
both sides' completions identical, which the script checks, so they provably did the same work.

Default workload: the `logic` suite (Reasoning Gym tasks), `--limit 1`, `--n 1`,
`--max-new-tokens 1`, batch size 64: the prompt-dominated case where padding costs the most.
`--max-requests K` keeps the first K requests (a quick check that the script runs).

Run: ``.venv/bin/python benchmarks/bench_hf_batching.py [--tasks logic] [--limit 1] [--n 1]
[--max-new-tokens 1] [--batch-size 64] [--max-requests K] [--json PATH]`` (a few minutes on 2 CPU
cores with the defaults, most of it the file-order side).
"""

from __future__ import annotations

import argparse
import json
import platform
import sys
import time
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))  # run from a checkout

from prorl_eval.inference import GenerationRequest, SamplingConfig
from prorl_eval.inference.base import length_order
from prorl_eval.inference.hf import DEFAULT_MAX_BATCH_TOKENS
from prorl_eval.models import embedded_model_dir
from prorl_eval.seeds import derive_seed


def make_requests(tasks: str, limit: int, n: int, seed: int) -> list[GenerationRequest]:
    """One request per problem, in plan order, seeded as the runner seeds them."""
    from prorl_eval.tasks.registry import TaskOptions, resolve_available_tasks

    resolved, _ = resolve_available_tasks(tasks, TaskOptions(limit=limit))
    return [
        GenerationRequest(
            task.prompt(problem), n, derive_seed(seed, task.name, problem.id, list(range(n)))
        )
        for task in resolved
        for problem in task.load()
    ]


def padding(gen: Any, requests: list[GenerationRequest], sampling: SamplingConfig) -> dict:
    """Padded and real prompt tokens of the batches `gen` packs these requests into."""
    lengths = gen.prompt_lengths(requests, sampling)
    batches = gen._batches(requests, lengths)
    padded = sum(
        sum(count for _, count in batch) * max(lengths[i] for i, _ in batch) for batch in batches
    )
    real = sum(length * r.n for length, r in zip(lengths, requests, strict=True))
    return {"batches": len(batches), "padded_tokens": padded, "real_tokens": real}


def measure(gen: Any, requests: list[GenerationRequest], sampling: SamplingConfig) -> dict:
    row = padding(gen, requests, sampling)
    started = time.perf_counter()
    outputs = gen.generate(requests, sampling)
    row["wall_s"] = time.perf_counter() - started
    row["padded_over_real"] = row["padded_tokens"] / row["real_tokens"]
    row["outputs"] = outputs
    return row


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--tasks", default="logic")
    parser.add_argument("--limit", type=int, default=1)
    parser.add_argument("--n", type=int, default=1)
    parser.add_argument("--max-new-tokens", type=int, default=1)
    parser.add_argument("--batch-size", type=int, default=64)
    parser.add_argument("--max-batch-tokens", type=int, default=DEFAULT_MAX_BATCH_TOKENS)
    parser.add_argument("--max-requests", type=int, default=None, help="keep the first K")
    parser.add_argument("--json", type=Path, metavar="PATH", help="also write the numbers here")
    args = parser.parse_args(argv)

    import torch

    from prorl_eval.inference.hf import HFGenerator

    sampling = SamplingConfig(temperature=0.0, max_new_tokens=args.max_new_tokens, seed=0)
    requests = make_requests(args.tasks, args.limit, args.n, sampling.seed)[: args.max_requests]
    path = embedded_model_dir()
    gen = HFGenerator(
        str(path),
        dtype="float32",
        batch_size=args.batch_size,
        max_batch_tokens=args.max_batch_tokens,
    )
    order = length_order(gen, requests, sampling) or list(range(len(requests)))
    file_order = measure(gen, requests, sampling)
    by_length = measure(gen, [requests[i] for i in order], sampling)
    back = {i: out for i, out in zip(order, by_length.pop("outputs"), strict=True)}
    if [back[i] for i in range(len(requests))] != file_order.pop("outputs"):
        raise AssertionError("file order and length-sorted completions differ")

    print(
        f"\nHF batching, {path.name}, tasks={args.tasks} limit={args.limit}: {len(requests)} "
        f"requests x n={args.n}, {args.max_new_tokens} new token(s), batch {args.batch_size}, "
        f"budget {args.max_batch_tokens} padded tokens, {torch.get_num_threads()} threads\n"
    )
    print("| order | batches | padded prompt tokens | real prompt tokens | padded/real | wall s |")
    print("|---|---:|---:|---:|---:|---:|")
    for name, row in (("file order", file_order), ("length-sorted", by_length)):
        print(
            f"| {name} | {row['batches']} | {row['padded_tokens']:,} | {row['real_tokens']:,} | "
            f"{row['padded_over_real']:.2f}x | {row['wall_s']:.1f} |"
        )
    saved = file_order["padded_tokens"] / by_length["padded_tokens"]
    speedup = file_order["wall_s"] / by_length["wall_s"]
    print(f"\nfile order / length-sorted: {saved:.2f}x padded tokens, {speedup:.2f}x wall time")
    if args.json is not None:
        payload = {
            "settings": vars(args) | {"json": str(args.json)},
            "requests": len(requests),
            "file_order": file_order,
            "length_sorted": by_length,
            "padded_ratio": saved,
            "wall_ratio": speedup,
            "python": platform.python_version(),
            "torch": torch.__version__,
        }
        args.json.write_text(json.dumps(payload, indent=2) + "\n")
    gen.close()
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
