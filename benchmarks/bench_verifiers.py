"""Scoring throughput of every verifier, and the scoring share of a real eval's wall time.

Part 1 — samples/s per verifier, inline (one process) and through `Scorer` with one worker
process per core, on realistic responses: MATH-500 (math-verify; half correct), HumanEval (the
sandbox; the canonical solutions), IFEval (lm-eval's checkers; generic answers), GPQA-style
multiple choice (synthetic questions) and Reasoning Gym (basic_arithmetic).

Part 2 — the scoring share of a full eval: `prorl-eval pass-at-k` on the embedded model over
math500, ifeval and humaneval (small limits), reading results.json's timing: the seconds scoring
held up generation plus the seconds spent waiting for scores after generating, over the run's wall
time.
Goal: <= 5 %.

    .venv/bin/python benchmarks/bench_verifiers.py [--data-dir ../shared/data] [--samples 200]
        [--skip-eval] [--json PATH]
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))  # run from a checkout

from prorl_eval.scoring import ScoreJob, Scorer, default_workers
from prorl_eval.tasks.registry import TaskOptions, build_task

ROOT = Path(__file__).resolve().parents[1]


def math_jobs(task, count):
    jobs = []
    for i, problem in enumerate(task.load()[:count]):
        answer = problem.answer if i % 2 == 0 else "wrong"
        text = f"Let me think step by step about this.\nSo the final answer is \\boxed{{{answer}}}."
        jobs.append(ScoreJob(task.name, problem.id, text))
    return jobs


def humaneval_jobs(task, count):
    return [
        ScoreJob(
            task.name,
            p.id,
            "```python\n" + p.metadata["prompt"] + p.metadata["canonical"] + "\n```",
        )
        for p in task.load()[:count]
    ]


def ifeval_jobs(task, count):
    text = "Here is my answer.\n\nIt has two paragraphs, written plainly, without formatting."
    return [ScoreJob(task.name, p.id, text) for p in task.load()[:count]]


def gym_jobs(task, count):
    return [ScoreJob(task.name, p.id, f"<answer>{p.answer}</answer>") for p in task.load()[:count]]


def choice_jobs(task, count):
    jobs = [
        ScoreJob(task.name, p.id, f"Thinking it over.\nAnswer: {p.answer}") for p in task.load()
    ]
    return (jobs * (count // len(jobs) + 1))[:count]


def measure(name, options, make_jobs, count, workers):
    task = build_task(name, options)
    jobs = make_jobs(task, count)
    rows = {"verifier": name, "samples": len(jobs)}
    for label, n_workers in (("inline", 0), (f"{workers} procs", workers)):
        with Scorer(
            {name: options}, workers=n_workers, tasks={name: task} if n_workers == 0 else None
        ) as scorer:
            scorer.score(jobs)  # warm up: every worker starts, imports and loads its tasks
            started = time.perf_counter()
            scores = scorer.score(jobs)
            elapsed = time.perf_counter() - started
        rows[label] = len(jobs) / elapsed
        rows["mean_score"] = sum(s.value for s in scores) / len(scores)
    return rows


def eval_share(data_dir: str) -> dict:
    with tempfile.TemporaryDirectory() as tmp:
        out = Path(tmp) / "run"
        command = [
            sys.executable,
            "-m",
            "prorl_eval.cli",
            "pass-at-k",
            "--tasks",
            "math500,ifeval,humaneval",
            "--data-dir",
            data_dir,
            "--limit",
            "6",
            "--n",
            "4",
            "--k",
            "1,4",
            "--max-new-tokens",
            "256",
            "--backend",
            "vllm" if _has_vllm() else "hf",
            "--out",
            str(out),
        ]
        started = time.perf_counter()
        subprocess.run(command, cwd=ROOT, check=True, capture_output=True)
        wall = time.perf_counter() - started
        timing = json.loads((out / "results.json").read_text())["timing"]
    scoring = timing["score_submit_s"] + timing["score_wait_s"]
    return {"wall_s": wall, **timing, "scoring_share": scoring / wall}


def _has_vllm() -> bool:
    import importlib.util

    return importlib.util.find_spec("vllm") is not None


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--data-dir", default=str(ROOT.parent / "shared" / "data"))
    parser.add_argument("--samples", type=int, default=200)
    parser.add_argument("--skip-eval", action="store_true")
    parser.add_argument("--json", type=Path)
    args = parser.parse_args()
    workers = default_workers()
    data = TaskOptions(data_dir=args.data_dir)
    fixtures = ROOT / "tests" / "fixtures" / "stem"
    cases = [
        ("math500", data, math_jobs),
        ("humaneval", TaskOptions(), humaneval_jobs),
        ("ifeval", data, ifeval_jobs),
        ("gpqa_diamond", TaskOptions(data_dir=str(fixtures.parent)), choice_jobs),
        ("gym:basic_arithmetic", TaskOptions(limit=args.samples), gym_jobs),
    ]
    rows = []
    for name, options, make in cases:
        rows.append(measure(name, options, make, args.samples, workers))
    print(f"verifier throughput, samples/s, {os.cpu_count()} cores")
    print(f"| verifier | samples | inline | {workers} procs | mean score |")
    print("|---|---:|---:|---:|---:|")
    for r in rows:
        pool = r[f"{workers} procs"]
        cells = f"{r['inline']:.1f} | {pool:.1f} | {r['mean_score']:.2f}"
        print(f"| {r['verifier']} | {r['samples']} | {cells} |")
    result = {"throughput": rows}
    if not args.skip_eval:
        share = eval_share(args.data_dir)
        result["eval"] = share
        print(
            f"\nscoring share of a full eval (math500+ifeval+humaneval, embedded model): "
            f"{share['scoring_share']:.1%} of {share['wall_s']:.1f} s wall "
            f"(generate {share['generate_s']:.1f} s, scoring blocked "
            f"{share['score_submit_s']:.2f} s, waited {share['score_wait_s']:.2f} s) "
            "-> goal <= 5 %: "
            f"{'met' if share['scoring_share'] <= 0.05 else 'NOT met'}"
        )
    if args.json:
        args.json.write_text(json.dumps(result, indent=2))


if __name__ == "__main__":
    main()
