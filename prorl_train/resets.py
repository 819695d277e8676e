"""Hard resets (ProRL): copy the policy into the reference and clear the optimizer state.

A reset is an explicit, logged event. It fires, after a step's update and validation, when any of
these triggers holds (several at once give one reset listing them all):

- `schedule`: `resets.every > 0` and the step is a multiple of it;
- `file`: the file `resets.file_trigger` (default `RESET`) exists in the run folder; it is renamed
  to `RESET.consumed-<step>` so it fires once (`touch runs/x/RESET` while training);
- `plateau`: the watched validation metric (`resets.metric`) has not improved by more than
  `min_delta` over its best for `patience` validations in a row (stagnation or degradation).
  After a plateau reset the detector starts afresh from the current value.

What a reset does: `reference.load_state_dict(policy.state_dict())` (when a reference exists, i.e.
kl_beta > 0) and `optimizer.state.clear()` (Adam moments and step counts re-initialise on the next
step). Each event goes to `<run>/resets.jsonl` and into the step's metrics. With several processes
the trainer decides the triggers on rank 0 and every rank applies the reset (each to its copy or
ZeRO partition); only rank 0 writes resets.jsonl.

Departure from the paper: ProRL reset by hand when validation degraded or stalled; the plateau
trigger automates that judgement, the schedule and file triggers reproduce the manual practice.

Example:
    >>> detector = PlateauDetector(patience=2, min_delta=0.0)
    >>> [detector.update(v) for v in (0.5, 0.6, 0.6, 0.55)]
    [False, False, False, True]
"""

from __future__ import annotations

import json
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

from prorl_train import distributed as dist

if TYPE_CHECKING:
    from prorl_train.config import ResetConfig


@dataclass
class PlateauDetector:
    """Says when a maximised metric has not improved by > min_delta for `patience` updates."""

    patience: int
    min_delta: float = 0.0
    best: float | None = None
    bad: int = 0

    def update(self, value: float) -> bool:
        """Record a new value; True when it completes a plateau (the detector then restarts)."""
        if self.best is None or value > self.best + self.min_delta:
            self.best, self.bad = value, 0
            return False
        self.bad += 1
        if self.bad >= self.patience:
            self.best, self.bad = value, 0
            return True
        return False

    def state_dict(self) -> dict[str, Any]:
        return {"best": self.best, "bad": self.bad}

    def load_state_dict(self, state: dict[str, Any]) -> None:
        self.best, self.bad = state["best"], int(state["bad"])


@dataclass
class ResetEvent:
    """One reset: when, why, and what was reset."""

    step: int
    triggers: list[str]
    reset: list[str]
    detail: dict[str, Any] = field(default_factory=dict)
    time: float = 0.0


class ResetManager:
    """Decides when to reset (schedule, file, plateau), applies resets, and keeps their history."""

    def __init__(self, cfg: ResetConfig, run_dir: str | Path) -> None:
        self.cfg = cfg
        self.run_dir = Path(run_dir)
        self.plateau = PlateauDetector(cfg.patience, cfg.min_delta)
        self.history: list[ResetEvent] = []

    def triggers(self, step: int, val: dict[str, float] | None) -> tuple[list[str], dict]:
        """The triggers that fire after `step` (`val`: this step's validation metrics, if any)."""
        fired, detail = [], {}
        if self.cfg.every and step % self.cfg.every == 0:
            fired.append("schedule")
        note = self._consume_file(step)
        if note is not None:
            fired.append("file")
            if note:
                detail["note"] = note
        if self.cfg.on_plateau and val is not None and self.cfg.metric in val:
            value = val[self.cfg.metric]
            best = self.plateau.best
            if self.plateau.update(value):
                fired.append("plateau")
                detail.update(metric=self.cfg.metric, value=value, best=best)
        return fired, detail

    def _consume_file(self, step: int) -> str | None:
        """The trigger file's text (renamed away) if it exists, else None."""
        if not self.cfg.file_trigger:
            return None
        path = self.run_dir / self.cfg.file_trigger
        if not path.is_file():
            return None
        try:
            note = path.read_text(encoding="utf-8", errors="replace").strip()[:200]
        except OSError:
            note = ""
        path.replace(path.with_name(f"{path.name}.consumed-{step}"))
        return note

    def apply(
        self, step: int, triggers: list[str], detail: dict, policy: Any, reference: Any, optimizer
    ) -> ResetEvent:
        """Reset the reference and/or optimizer, record and log the event."""
        what = []
        if self.cfg.reference and reference is not None:
            reset_reference(policy, reference)
            what.append("reference")
        if self.cfg.optimizer:
            reset_optimizer(optimizer)
            what.append("optimizer")
        event = ResetEvent(step, triggers, what, detail, round(time.time(), 3))
        self.history.append(event)
        if dist.is_main():
            with open(self.run_dir / "resets.jsonl", "a", encoding="utf-8") as fh:
                fh.write(json.dumps(asdict(event)) + "\n")
        return event

    def state_dict(self) -> dict[str, Any]:
        return {"plateau": self.plateau.state_dict(), "history": [asdict(e) for e in self.history]}

    def load_state_dict(self, state: dict[str, Any]) -> None:
        """Restore the detector and history, and rewrite resets.jsonl to match them."""
        self.plateau.load_state_dict(state["plateau"])
        self.history = [ResetEvent(**e) for e in state["history"]]
        lines = "".join(json.dumps(asdict(e)) + "\n" for e in self.history)
        if dist.is_main():
            (self.run_dir / "resets.jsonl").write_text(lines, encoding="utf-8")


def reset_reference(policy: Any, reference: Any) -> None:
    """Hard-copy the policy's weights into the reference model (ZeRO-3: gathered, then each rank
    keeps its shard of the new reference; collective, so every rank calls it)."""
    import torch

    from prorl_train.deepspeed_engine import gathered, hf_module

    with gathered(policy), gathered(reference, modifier=True), torch.no_grad():
        hf_module(reference).load_state_dict(hf_module(policy).state_dict())


def reset_optimizer(optimizer: Any) -> None:
    """Forget the optimizer's per-parameter state (moments, step counts): a torch optimizer, or a
    stepper (`deepspeed_engine`) whose ZeRO partitions each clear their own share."""
    if hasattr(optimizer, "reset_state"):
        optimizer.reset_state()
    else:
        optimizer.state.clear()
