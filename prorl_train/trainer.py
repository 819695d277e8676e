"""The ProRL training loop: rollouts → rewards → updates → validation → resets → checkpoints.

    prorl-train --preset cpu-smoke --out runs/t            # a few minutes on 2 CPU cores
    prorl-train --preset cpu-smoke --out runs/t --resume   # continue after a crash or Ctrl-C
    prorl-train --preset prorl-paper --out runs/p --set data.data_dir=/data

One step: draw `batch_size` prompts from the data mix, sample `rollout.n` responses each on the
live policy, reward them with the tasks' verifiers, drop uninformative groups and refill
(dynamic sampling), then take `batch_size / mini_batch_size` AdamW steps on the decoupled-clip
GRPO loss with a k3 KL penalty to the reference (`update.py`). Every `val.every` steps the policy
is validated with the eval harness; resets fire on schedule, on a `RESET` file or on a validation
plateau (`resets.py`). Metrics are logged every step, checkpoints written every `save_every`.

Exact resume: every random choice is derived from (seed, step, ...) — rollout sampling seeds, the
data order, mini-batch shuffles — and the checkpoint holds everything else that changes (weights,
reference, optimizer, data cursor, reset history, plateau state, RNG states, metrics). On CPU a
resumed run therefore reproduces the uninterrupted run's metrics exactly (timings aside).

Ctrl-C: during rollouts the step is abandoned (nothing has changed the weights yet) and the state
of the last finished step is saved; during an update the step finishes first. A second Ctrl-C
aborts at once, keeping the last checkpoint. Either way the exit code is 130.

Several processes (`torchrun --nproc_per_node N -m prorl_train ...`, `distributed.py`): every rank
holds the same step data (rollouts are generated in rank-independent chunks and gathered), the
old/reference log-prob passes and the update's micro-batches are split over the ranks, and the
optimizer step is torch AdamW on summed gradients (deepspeed.zero_stage 0) or DeepSpeed ZeRO 1-3
(`deepspeed_engine.py`); the losses and updates equal the single-process run's up to float
rounding. Rank 0 alone writes metrics, TensorBoard, config.yaml, resets.jsonl and checkpoints
(every rank adds its DeepSpeed partition), runs validation (on the rollout engine every rank
generates its share; with HF `generate` the others wait) and decides resets, which it
broadcasts; a Ctrl-C seen by any rank stops every rank after the step (a launcher such as
torchrun may instead end the workers at once: `--resume` then continues from the last checkpoint).

Departures from the paper (ProRL, Liu et al. 2025, built on verl): with the HF backend rollouts
use `generate` on the training weights (no weight sync, no inference/training mismatch); with
zero_stage 0 weights stay in float32 with bfloat16 autocast on GPU (ZeRO runs train in bf16 with
fp32 master weights); no FSDP/sequence packing.
"""

from __future__ import annotations

import contextlib
import signal
import time
from pathlib import Path
from typing import TYPE_CHECKING, Any

from prorl_eval.errors import UserError
from prorl_train import checkpoint as ckpt
from prorl_train import distributed as dist
from prorl_train.config import TrainConfig, config_to_yaml
from prorl_train.metrics import MetricsLogger, rollout_metrics, wandb_run
from prorl_train.policy_models import autocast, load_models

if TYPE_CHECKING:
    from prorl_train.rollout import Rollouts

# Settings that may change on --resume without being reported as a change of recipe.
RESUMABLE_CHANGES = (
    "out", "steps", "save_every", "keep_last", "keep_every", "tensorboard",
    "logging.wandb", "logging.wandb_project", "logging.wandb_name", "logging.wandb_mode",
)  # fmt: skip


class TrainingInterrupted(Exception):
    """Ctrl-C: the run stopped; `checkpoint` is the newest checkpoint on disk (or None)."""

    def __init__(self, checkpoint: Path | None) -> None:
        super().__init__(f"interrupted; latest checkpoint: {checkpoint}")
        self.checkpoint = checkpoint


class StopFlag:
    """SIGINT handler: the first Ctrl-C asks to stop after the step (or aborts a rollout phase,
    which is safe to redo); a second one raises KeyboardInterrupt at once."""

    def __init__(self) -> None:
        self.requested = False
        self.abortable = False

    def __call__(self, signum: int, frame: Any) -> None:
        if self.requested or self.abortable:
            self.requested = True
            raise KeyboardInterrupt
        self.requested = True


class NullLogger:
    """The metrics logger of ranks other than 0: returns the row, writes nothing."""

    note = ""

    def log(self, step: int, values: dict[str, Any]) -> dict[str, Any]:
        return {"step": step, **values}

    def close(self) -> None:
        pass


def config_changes(old: dict[str, Any], new: dict[str, Any], prefix: str = "") -> list[str]:
    """'key: old -> new' for every setting that differs (nested sections flattened)."""
    changes = []
    for key in sorted(set(old) | set(new)):
        a, b = old.get(key), new.get(key)
        if isinstance(a, dict) and isinstance(b, dict) and key not in ("mix",):
            changes.extend(config_changes(a, b, f"{prefix}{key}."))
        elif a != b and f"{prefix}{key}" not in RESUMABLE_CHANGES:
            changes.append(f"{prefix}{key}: {a!r} -> {b!r}")
    return changes


def check_layout(state: dict[str, Any], cfg: TrainConfig) -> None:
    """UserError when a checkpoint's optimizer state cannot be read by this run's layout: ZeRO
    partitions need the same stage and number of processes; stage 0 needs stage 0."""
    old_stage = int(state.get("config", {}).get("deepspeed", {}).get("zero_stage", 0))
    old_world = int(state.get("world_size", 1))
    stage, world = cfg.deepspeed.zero_stage, dist.world_size()
    if (old_stage > 0) != (stage > 0) or (stage > 0 and (old_stage, old_world) != (stage, world)):
        raise UserError(
            f"the checkpoint was written with deepspeed.zero_stage={old_stage} on {old_world} "
            f"process(es); resume with the same (now zero_stage={stage}, {world} process(es))."
        )


def prepare_run_dir(cfg: TrainConfig, resume: bool) -> tuple[Path | None, dict[str, Any]]:
    """Check the run folder; on resume find the newest checkpoint and its state."""
    from prorl_eval.jsonio import ensure_writable_dir

    run_dir = ensure_writable_dir(cfg.out)
    dist.barrier()  # every rank looks before rank 0 writes anything
    found = ckpt.latest_checkpoint(run_dir)
    if not resume:
        if found is not None or (run_dir / "metrics.jsonl").exists():
            raise UserError(
                f"{run_dir} already holds a run; pass --resume to continue it, or choose "
                "another --out."
            )
        return None, {}
    if dist.is_main():
        ckpt.remove_stale(run_dir)
    if found is None:
        return None, {}
    return found, ckpt.read_state(found)


class Trainer:
    """One training run; build with a validated config, then call `run()`."""

    def __init__(self, cfg: TrainConfig, *, resume: bool = False) -> None:
        from prorl_eval.scoring import Scorer
        from prorl_eval.tasks.registry import TaskOptions
        from prorl_train.data import DataMix, Holdout
        from prorl_train.decontamination import decontaminate, summary_line
        from prorl_train.engines import make_rollout_engine
        from prorl_train.resets import ResetManager

        cfg.validate()
        self.cfg = cfg
        self.run_dir = Path(cfg.out)
        device = dist.init_distributed(cfg.model.device, cfg.deepspeed.zero_stage > 0)
        self.checkpoint, state = prepare_run_dir(cfg, resume)
        dist.barrier()
        self.notes: list[str] = []
        options = TaskOptions(
            limit=cfg.data.limit, seed=cfg.data.data_seed, data_dir=cfg.data.data_dir
        )
        holdout = Holdout(cfg.data.holdout, cfg.data.holdout_seed, cfg.data.holdout_limit)
        self.mix = DataMix(cfg.data.mix, options, cfg.seed, holdout)
        self.notes.append(summary_line(decontaminate(self.mix, cfg)))  # before any model loads
        self.models = load_models(cfg, self.checkpoint, state, device)
        self.engine = dist.ShardedEngine(
            make_rollout_engine(
                cfg, self.models.policy, self.models.tokenizer, self.models.source_path
            ),
            chunk_prompts=cfg.rollout.generate_batch_size // cfg.rollout.n,
        )
        self.scorer = dist.ShardedScorer(
            Scorer(
                {name: options for name in self.mix.names},
                workers=cfg.rollout.score_workers,
                tasks=self.mix.tasks,
            )
        )
        self.resets = ResetManager(cfg.resets, self.run_dir)
        self.step = 0
        self.saved_step = 0
        self._restore(state)
        self.logger = (
            MetricsLogger(self.run_dir, cfg.tensorboard, wandb=wandb_run(cfg, self.run_dir))
            if dist.is_main()
            else NullLogger()
        )
        if self.logger.note:
            self.notes.append(self.logger.note)
        self.stop = StopFlag()

    def _restore(self, state: dict[str, Any]) -> None:
        """Fresh run: seed and write config.yaml. Resume: load every piece of saved state."""
        import torch

        from prorl_train.validation import drop_after

        main = dist.is_main()
        if main:
            (self.run_dir / "config.yaml").write_text(config_to_yaml(self.cfg), encoding="utf-8")
            self.mix.write_prompts_manifest(self.run_dir)
        if self.checkpoint is None:
            torch.manual_seed(self.cfg.seed)
            if main:
                for stale in ("metrics.jsonl", "resets.jsonl"):
                    (self.run_dir / stale).unlink(missing_ok=True)
                drop_after(self.run_dir, 0)
            return
        changes = config_changes(state.get("config", {}), self.cfg.to_dict())
        if changes:
            self.notes.append("settings changed since the checkpoint: " + "; ".join(changes))
        check_layout(state, self.cfg)
        self.models.stepper.load(self.checkpoint)
        ckpt.load_rng(self.checkpoint)
        if main:
            ckpt.restore_metrics(self.checkpoint, self.run_dir)
        self.mix.load_state_dict(state["data"])
        self.resets.load_state_dict(state["resets"])
        self.step = self.saved_step = int(state["step"])
        if main:
            drop_after(self.run_dir, self.step)
        self.notes.append(f"resumed from {self.checkpoint} (step {self.step})")

    # ------------------------------------------------------------------------------ the loop

    def run(self, on_step: Any = None) -> dict[str, Any]:
        """Train to `cfg.steps`; `on_step(row)` is called after every step. Returns a summary."""
        previous = None
        with contextlib.suppress(ValueError):  # not the main thread: no Ctrl-C handling
            previous = signal.signal(signal.SIGINT, self.stop)
        try:
            while self.step < self.cfg.steps:
                row = self._step_or_interrupt(self.step + 1)
                if on_step is not None:
                    on_step(row)
                if self.stop_agreed():
                    raise TrainingInterrupted(self.save())
            final = self.save()
        finally:
            if previous is not None:
                signal.signal(signal.SIGINT, previous)
            self.close()
        return {"step": self.step, "checkpoint": str(final), "notes": self.notes}

    def stop_agreed(self) -> bool:
        """Whether to stop after this step: a Ctrl-C on any rank stops every rank."""
        if dist.world_size() == 1:
            return self.stop.requested
        self.stop.requested = any(dist.all_gather_object(self.stop.requested))
        return self.stop.requested

    def _step_or_interrupt(self, step: int) -> dict[str, Any]:
        """Run one step; a Ctrl-C in its rollout phase rolls the data cursor back and saves."""
        cursor = self.mix.state_dict()
        try:
            return self.train_step(step)
        except KeyboardInterrupt:
            if self.stop.abortable:
                self.mix.load_state_dict(cursor)
                self.stop.abortable = False
                raise TrainingInterrupted(self.save()) from None
            raise TrainingInterrupted(ckpt.latest_checkpoint(self.run_dir)) from None

    def train_step(self, step: int) -> dict[str, Any]:
        """One full step of the algorithm; returns the metrics row it logged."""
        from prorl_train.update import rollout_advantages

        started = time.perf_counter()
        kept, stats = self._collect_and_filter(step)
        advantages_B = rollout_advantages(kept, self.cfg.loss.advantage)
        update_started = time.perf_counter()
        stats.update(self._update(kept, advantages_B, step))
        self._sync_weights()
        stats["time/update_s"] = time.perf_counter() - update_started
        self.step = step
        validation = self._validate_if_due(step)
        stats.update(validation)
        stats.update(self._reset_if_triggered(step, validation))
        stats["time/step_s"] = time.perf_counter() - started
        if "time/val_s" in stats:  # validation's share of this step's wall time
            stats["time/val_share"] = stats["time/val_s"] / stats["time/step_s"]
        row = self.logger.log(step, stats)  # before the save: the checkpoint holds this row
        self._save_if_due(step)
        return row

    def _policy_device(self) -> str:
        return str(next(self.models.policy.parameters()).device)

    def _collect_and_filter(self, step: int) -> tuple[Rollouts, dict[str, Any]]:
        """The step's batch: rollouts sampled on the live policy, scored by the verifiers, and
        (dynamic sampling) uninformative groups dropped and refilled. Returns the kept sequences
        and the rollout metrics (the reward metrics count every generated sequence). A Ctrl-C
        here abandons the step; afterwards the rollout engine frees its memory for the update."""
        from prorl_train.deepspeed_engine import generation_weights
        from prorl_train.rollout import collect_rollouts

        m = self.models
        self.stop.abortable = True
        with autocast(self.cfg, self._policy_device()), generation_weights(m.stepper):
            kept, generated, stats = collect_rollouts(
                self.engine, self.mix, self.scorer, m.tokenizer, self.cfg, step
            )
        self.stop.abortable = False
        self.engine.before_update()  # a colocated vLLM engine frees its memory for the update
        stats.update(rollout_metrics(generated))
        return kept, stats

    def _update(self, kept: Rollouts, advantages_B: Any, step: int) -> dict[str, float]:
        """The step's optimizer updates on `kept` (`update.py`); the actor metrics."""
        from prorl_train.update import optimise

        m = self.models
        pad_id = m.tokenizer.pad_token_id or 0
        with autocast(self.cfg, self._policy_device()):
            return optimise(
                m.stepper.model, m.reference, m.stepper, kept, advantages_B, self.cfg, step, pad_id
            )

    def _sync_weights(self) -> None:
        """Hand the updated weights to the rollout engine (a no-op for HF; vLLM reloads)."""
        from prorl_train.deepspeed_engine import gathered

        with gathered(self.models.policy):  # ZeRO-3: whole weights while the engine copies them
            self.engine.sync_weights(self.models.policy)

    def _validate_if_due(self, step: int) -> dict[str, Any]:
        """The `val/...` metrics and `time/val_s` when `val.every` says so, else {}. On the
        rollout engine (`val.backend`) every rank generates its share and rank 0 writes; with
        HF `generate` rank 0 validates and the other ranks wait for its metrics."""
        from prorl_train.deepspeed_engine import generation_weights
        from prorl_train.validation import run_engine_validation, run_validation

        if not (self.cfg.val.every and step % self.cfg.val.every == 0):
            return {}
        m = self.models
        started = time.perf_counter()
        val = None
        with autocast(self.cfg, self._policy_device()), generation_weights(m.stepper):
            if self.cfg.val.on_engine(self.cfg.rollout):
                val = run_engine_validation(self.engine, m.tokenizer, self.cfg, step)
            else:
                if dist.is_main():  # the other ranks wait in the broadcast below
                    val = run_validation(m.policy, m.tokenizer, self.cfg, step)
                val = dist.broadcast_object(val)
        return {**val, "time/val_s": time.perf_counter() - started}

    def _reset_if_triggered(self, step: int, validation: dict[str, Any]) -> dict[str, Any]:
        """Reset the reference and optimizer when a trigger fires (`resets.py`); the `reset/...`
        metrics. Rank 0 decides (the RESET file and the plateau detector are its own), every
        rank applies."""
        m = self.models
        decision = None
        if dist.is_main():
            decision = (*self.resets.triggers(step, validation), self.resets.plateau.state_dict())
        triggers, detail, plateau = dist.broadcast_object(decision)
        self.resets.plateau.load_state_dict(plateau)
        out: dict[str, Any] = {}
        if triggers:
            event = self.resets.apply(step, triggers, detail, m.policy, m.reference, m.stepper)
            if "reference" in event.reset:
                m.reference_is_base = False
            out["reset/event"] = 1
            out["reset/triggers"] = "+".join(triggers)
        out["reset/count"] = len(self.resets.history)
        return out

    # ------------------------------------------------------------------------- checkpoints

    def _save_if_due(self, step: int) -> None:
        """Checkpoint every `save_every` steps and after the last step."""
        if step % self.cfg.save_every == 0 or step == self.cfg.steps:
            self.save()

    def save(self) -> Path | None:
        """Checkpoint the state after `self.step` (skipped when already saved or at step 0)."""
        if self.step == 0:
            return None
        if self.step == self.saved_step and self.checkpoint_path(self.step).is_dir():
            return self.checkpoint_path(self.step)
        from prorl_train.deepspeed_engine import gathered, hf_module

        m = self.models
        state = {
            "data": self.mix.state_dict(),
            "resets": self.resets.state_dict(),
            "reference": "base" if m.reference_is_base else "saved",
            "config": self.cfg.to_dict(),
            "world_size": dist.world_size(),
        }
        main = dist.is_main()
        tmp = ckpt.begin_checkpoint(self.run_dir, self.step) if main else None
        tmp = Path(dist.broadcast_object(str(tmp)))
        m.stepper.save(tmp)  # optimizer.pt, or every rank's DeepSpeed partition
        reference = None if m.reference_is_base else m.reference
        with gathered(m.policy), gathered(reference):  # ZeRO-3: whole weights for rank 0
            if main:
                ckpt.write_models(
                    tmp, policy=m.policy, tokenizer=m.tokenizer, reference=hf_module(reference)
                )
        dist.barrier()
        path = self.checkpoint_path(self.step)
        if main:
            path = ckpt.finish_checkpoint(
                self.run_dir, self.step, tmp, state, self.cfg.keep_last, self.cfg.keep_every
            )
        dist.barrier()
        self.saved_step = self.step
        return path

    def checkpoint_path(self, step: int) -> Path:
        return self.run_dir / f"checkpoint-{step}"

    def close(self) -> None:
        self.logger.close()
        self.scorer.close()
        close_engine = getattr(self.engine, "close", None)
        if close_engine is not None:  # a vLLM engine shuts down before the process group goes
            close_engine()


def train(cfg: TrainConfig, *, resume: bool = False, on_step: Any = None) -> dict[str, Any]:
    """Build a Trainer and run it: the library entry point behind `prorl-train`."""
    trainer = Trainer(cfg, resume=resume)
    return trainer.run(on_step=on_step)
