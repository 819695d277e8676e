"""A short `prorl-train` run on the GPU: the `cpu-smoke` recipe moved to CUDA in bf16.

It runs the command a user runs (`python -m prorl_train`), in its own process, into
`<out>/prorl_run/`, then reads the run's `metrics.jsonl`: the steps completed, the median step
time and its rollout/update split, and the last reward. `--model` trains another model than the
embedded one. With vLLM installed, `prorl_run_vllm` repeats the run with vLLM rollouts
(`rollout.backend=vllm`, weights synced after every update).
"""

from __future__ import annotations

import json
import os
import statistics
import subprocess
import sys
from pathlib import Path
from typing import Any

from benchmarks.gpu_check.common import Options, Skip, require

# prorl's own runtime dependencies that a bare GPU image tends to lack.
PRORL_IMPORTS = ("typer", "rich", "yaml", "math_verify", "reasoning_gym", "datasets")


def command(opts: Options, out: Path, backend: str) -> list[str]:
    steps = 2 if opts.dry_run else 4
    overrides = [
        f"model.device={opts.device}",
        f"model.dtype={'float32' if opts.dry_run else 'bfloat16'}",
        "model.cpu_threads=1" if opts.dry_run else "model.cpu_threads=0",
        "val.every=0",  # validation is measured by the eval sections
        "save_every=100",  # one checkpoint, at the end
        "tensorboard=false",
    ]
    if opts.model:
        overrides.append(f"model.name={opts.model}")
    cmd = [sys.executable, "-m", "prorl_train", "--preset", "cpu-smoke", "--out", str(out)]
    cmd += ["--steps", str(steps), "--rollout-backend", backend]
    for item in overrides:
        cmd += ["--set", item]
    return cmd


def summary(metrics_file: Path) -> dict[str, Any]:
    rows = [json.loads(line) for line in metrics_file.read_text().splitlines() if line.strip()]
    if not rows:
        raise RuntimeError(f"{metrics_file} holds no step")

    def med(key: str) -> float | str:
        values = [r[key] for r in rows if isinstance(r.get(key), (int, float))]
        return statistics.median(values) if values else "absent"

    return {
        "steps": rows[-1]["step"],
        "step_s_median": med("time/step_s"),
        "rollout_s_median": med("time/rollout_s"),
        "update_s_median": med("time/update_s"),
        "reward_last": rows[-1].get("reward/mean", "absent"),
    }


def run_backend(opts: Options, backend: str) -> dict[str, Any]:
    require(*PRORL_IMPORTS)
    if backend == "vllm":
        require("vllm")
    out = Path(opts.work_dir) / f"prorl_run_{backend}"
    if (out / "metrics.jsonl").exists():
        raise Skip(f"{out} already holds a run; pass another --out")
    env = {**os.environ, "PYTHONUNBUFFERED": "1"}
    root = str(Path(__file__).resolve().parents[3])  # the checkout, importable without install
    env["PYTHONPATH"] = os.pathsep.join(filter(None, [root, env.get("PYTHONPATH")]))
    done = subprocess.run(
        command(opts, out, backend), env=env, capture_output=True, text=True, check=False
    )
    (Path(opts.work_dir) / f"prorl_run_{backend}.log").write_text(done.stdout + done.stderr)
    if done.returncode != 0:
        lines = [line for line in done.stderr.splitlines() if line.strip()]
        raise RuntimeError(f"prorl-train exited {done.returncode}: {lines[-1] if lines else ''}")
    return {"backend": backend, **summary(out / "metrics.jsonl")}


def run(opts: Options) -> dict[str, Any]:
    return run_backend(opts, "hf")


def run_vllm(opts: Options) -> dict[str, Any]:
    return run_backend(opts, "vllm")
