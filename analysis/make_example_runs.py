"""Make the example runs the notebook analyses: the embedded model on four small question sets.

Two runs stand in for a base model and an RL checkpoint: the same embedded SmolLM2-135M-Instruct
sampled at temperature 0.6 ("base") and 1.0 ("hot"). No training happened between them; they only
give the analyses real, differing sample files to work on. Each run is an ordinary
`prorl-eval pass-at-k` command, so re-running this script resumes or does nothing.

    .venv/bin/python analysis/make_example_runs.py            # writes runs/example-{base,hot}
"""

from __future__ import annotations

import importlib.util
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
QUESTION_SETS = ("capitals", "sums", "legs", "opposites")
RUNS = {"base": 0.6, "hot": 1.0}


def task_names() -> str:
    return ",".join(
        f"custom:analysis/data/{name}.jsonl?prompt=question&answer=answer&verifier=contains&id=id"
        for name in QUESTION_SETS
    )


def make_runs(out_root: Path = ROOT / "runs", n: int = 6, max_new_tokens: int = 40) -> dict:
    """Run (or resume) both example runs; returns {label: run folder}."""
    backend = "vllm" if importlib.util.find_spec("vllm") else "hf"
    folders = {}
    for label, temperature in RUNS.items():
        folder = out_root / f"example-{label}"
        command = [
            sys.executable,
            "-m",
            "prorl_eval.cli",
            "pass-at-k",
            "--tasks",
            task_names(),
            "--n",
            str(n),
            "--max-new-tokens",
            str(max_new_tokens),
            "--temperature",
            str(temperature),
            "--backend",
            backend,
            "--out",
            str(folder),
        ]
        done = subprocess.run(command, cwd=ROOT, capture_output=True, text=True)
        if done.returncode != 0:
            raise RuntimeError(f"{' '.join(command)} failed:\n{done.stderr[-2000:]}")
        folders[label] = folder
    return folders


if __name__ == "__main__":
    for label, folder in make_runs().items():
        print(f"{label}: {folder}")
