"""Training checkpoints, written atomically, and the run folder's resume state.

A checkpoint is a folder `<run>/checkpoint-<step>/`:

    policy/               the policy as a Hugging Face folder (save_pretrained + tokenizer), so
                          `prorl-eval pass-at-k --model <run>/checkpoint-<step>` evaluates it
    reference/            the reference model, only once a reset has made it differ from the base
                          model (before that the base model is the reference and is reloaded)
    optimizer.pt          AdamW state_dict (deepspeed.zero_stage 0)
    deepspeed/            ZeRO runs: DeepSpeed's own checkpoint (`save_checkpoint`): the fp32
                          master weights and Adam moments, one partition file per rank; resume
                          needs the same zero_stage and number of processes
    rng.pt                python, numpy and torch (and CUDA) RNG states
    metrics.jsonl         the run's metrics rows up to this step (restored on resume)
    trainer_state.json    step, data cursor, reset history and plateau state, config; written last

It is written into `.checkpoint-<step>.tmp/`, every file fsynced, then renamed into place, so a
crash mid-save leaves the previous checkpoints intact; stale `.tmp` folders are removed on resume.
With several processes rank 0 writes everything but the DeepSpeed partitions, which every rank
writes itself (so the run folder must be on a file system all processes share).
After a successful save only the newest `keep_last` checkpoints are kept, plus the milestones: every
checkpoint whose step is a multiple of `keep_every` (when > 0) is never pruned, so the base →
intermediate → final comparison of a long run still has its intermediate checkpoints.

Example:
    >>> latest_checkpoint("runs/t")  # doctest: +SKIP
    PosixPath('runs/t/checkpoint-8')
"""

from __future__ import annotations

import os
import shutil
from pathlib import Path
from typing import Any

from prorl_eval.checkpoints import STATE_FILE, training_checkpoints
from prorl_eval.errors import UserError
from prorl_eval.jsonio import read_json, write_json_atomic


def checkpoint_dirs(run_dir: str | Path) -> list[tuple[int, Path]]:
    """Complete checkpoints of a run folder as (step, path), oldest first."""
    return training_checkpoints(run_dir)


def latest_checkpoint(run_dir: str | Path) -> Path | None:
    found = checkpoint_dirs(run_dir)
    return found[-1][1] if found else None


def remove_stale(run_dir: str | Path) -> list[Path]:
    """Delete half-written `.checkpoint-*.tmp` folders left by a crash mid-save."""
    stale = sorted(Path(run_dir).glob(".checkpoint-*.tmp"))
    for path in stale:
        shutil.rmtree(path, ignore_errors=True)
    return stale


def rng_state() -> dict[str, Any]:
    import random

    import numpy as np
    import torch

    state = {
        "python": random.getstate(),
        "numpy": np.random.get_state(),
        "torch": torch.get_rng_state(),
    }
    if torch.cuda.is_available():
        state["cuda"] = torch.cuda.get_rng_state_all()
    return state


def set_rng_state(state: dict[str, Any]) -> None:
    import random

    import numpy as np
    import torch

    random.setstate(state["python"])
    np.random.set_state(state["numpy"])
    torch.set_rng_state(state["torch"])
    if "cuda" in state and torch.cuda.is_available():
        torch.cuda.set_rng_state_all(state["cuda"])


def _fsync_tree(folder: Path) -> None:
    for path in sorted(folder.rglob("*")):
        if path.is_file():
            with open(path, "rb") as fh:
                os.fsync(fh.fileno())
    fd = os.open(folder, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def begin_checkpoint(run_dir: str | Path, step: int) -> Path:
    """A fresh, empty `.checkpoint-<step>.tmp/` folder to write a checkpoint into."""
    tmp = Path(run_dir) / f".checkpoint-{step}.tmp"
    shutil.rmtree(tmp, ignore_errors=True)
    tmp.mkdir(parents=True)
    return tmp


def write_models(tmp: Path, *, policy: Any, tokenizer: Any, reference: Any) -> None:
    """policy/ (with the tokenizer: an eval-loadable model folder) and reference/ when given."""
    policy.save_pretrained(tmp / "policy")
    tokenizer.save_pretrained(tmp / "policy")
    if reference is not None:
        reference.save_pretrained(tmp / "reference")


def finish_checkpoint(
    run_dir: str | Path,
    step: int,
    tmp: Path,
    state: dict[str, Any],
    keep_last: int,
    keep_every: int = 0,
) -> Path:
    """Add metrics, RNG and the state file to `tmp`, fsync, rename into place, prune."""
    import torch

    run_dir = Path(run_dir)
    final = run_dir / f"checkpoint-{step}"
    metrics = run_dir / "metrics.jsonl"
    if metrics.is_file():
        shutil.copyfile(metrics, tmp / "metrics.jsonl")
    torch.save(rng_state(), tmp / "rng.pt")
    write_json_atomic(tmp / STATE_FILE, {**state, "step": step})
    _fsync_tree(tmp)
    if final.exists():  # re-saving a step (e.g. the final step after a resume)
        old = run_dir / f".checkpoint-{step}.old.tmp"
        os.replace(final, old)
        os.replace(tmp, final)
        shutil.rmtree(old, ignore_errors=True)
    else:
        os.replace(tmp, final)
    prune(run_dir, keep_last, keep_every)
    return final


def is_milestone(step: int, keep_every: int) -> bool:
    """Whether checkpoint `step` is a milestone that pruning keeps (`keep_every` > 0)."""
    return keep_every > 0 and step % keep_every == 0


def prune(run_dir: str | Path, keep_last: int, keep_every: int = 0) -> list[Path]:
    """Delete all but the newest `keep_last` complete checkpoints and the milestones."""
    found = checkpoint_dirs(run_dir)
    older = found[:-keep_last] if keep_last > 0 else []
    doomed = [path for step, path in older if not is_milestone(step, keep_every)]
    for path in doomed:
        shutil.rmtree(path, ignore_errors=True)
    return doomed


def read_state(checkpoint: str | Path) -> dict[str, Any]:
    """A checkpoint's trainer_state.json; UserError when it is not a complete checkpoint."""
    path = Path(checkpoint) / STATE_FILE
    if not path.is_file():
        raise UserError(f"{checkpoint} is not a complete prorl-train checkpoint.")
    return read_json(path, "trainer state")


def load_rng(checkpoint: str | Path) -> None:
    import torch

    set_rng_state(torch.load(Path(checkpoint) / "rng.pt", weights_only=False))


def restore_metrics(checkpoint: str | Path, run_dir: str | Path) -> None:
    """Put the checkpoint's metrics rows back as the run's metrics.jsonl (drops later rows)."""
    source = Path(checkpoint) / "metrics.jsonl"
    target = Path(run_dir) / "metrics.jsonl"
    if source.is_file():
        shutil.copyfile(source, target)
    else:
        target.unlink(missing_ok=True)
