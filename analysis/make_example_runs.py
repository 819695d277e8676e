"""The runs the notebook analyses: the `prorl-mini` experiment, full or shortened.

The notebook reads a `prorl-eval sweep` folder: the base model and the checkpoints of a training run
evaluated on the same held-out problems. `scripts/reproduce_miniature.sh` writes the full one
(`runs/prorl-mini/eval`, ~40 minutes on 2 cores). When it is absent, `sweep_folder()` makes a
shortened one with the same commands: 4 training steps of the `prorl-mini` preset with a milestone
checkpoint every 2 steps, evaluated at n = 4 on 4 problems per task (a few minutes; the numbers
then show the tools at work, not a finding). Every stage resumes, so running it again does nothing.

    .venv/bin/python analysis/make_example_runs.py       # prints the sweep folder it uses
"""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
FULL = ROOT / "runs" / "prorl-mini" / "eval"
SHORT = ROOT / "runs" / "prorl-mini-short"
SHORT_TRAINING = [
    "--set", "steps=4", "--set", "save_every=2", "--set", "keep_every=2", "--set", "batch_size=4",
    "--set", "loss.mini_batch_size=4", "--set", "val.every=2", "--set", "val.limit=4",
    "--set", "resets.every=2",
]  # fmt: skip
SHORT_EVAL = ["--limit", "4", "--n", "4", "--max-new-tokens", "24", "--backend", "hf"]


def _run(*command: str) -> None:
    done = subprocess.run(command, cwd=ROOT, capture_output=True, text=True)
    if done.returncode != 0:
        raise RuntimeError(f"{' '.join(command)} failed:\n{done.stderr[-3000:]}")


def eval_tasks() -> str:
    from prorl_train.presets import miniature_tasks

    return ",".join(miniature_tasks("eval"))


def sweep_folder() -> Path:
    """The full experiment's sweep folder when it exists, else the shortened one (made now)."""
    if (FULL / "sweep.json").is_file():
        return FULL
    train, out = SHORT / "train", SHORT / "eval"
    resume = ["--resume"] if (train / "config.yaml").is_file() else []
    bin_dir = Path(sys.executable).parent
    _run(str(bin_dir / "prorl-train"), "--preset", "prorl-mini", "--out", str(train),
         *SHORT_TRAINING, *resume)  # fmt: skip
    _run(str(bin_dir / "prorl-eval"), "sweep", str(train), "--out", str(out),
         "--tasks", eval_tasks(), *SHORT_EVAL)  # fmt: skip
    return out


if __name__ == "__main__":
    print(sweep_folder())
