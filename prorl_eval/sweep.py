"""Evaluate a training run: the base model and its checkpoints, on identical problems and sampling.

    prorl-eval sweep runs/t --tasks gym:leg_counting,math500 --n 128 --out runs/t/eval
    prorl-eval sweep runs/t --steps 500,1000,last --watch ...   # while training goes on

Each evaluated model gets an ordinary run folder under ``--out`` (``base/``, ``step-500/``, ...)
written by the same runner as `prorl-eval pass-at-k`, so each resumes on its own: kill the sweep
and run it again, and finished folders are read, half-done ones completed, nothing duplicated.
``--out/sweep.json`` records the training run, the base model and the settings; a later sweep
into the same folder must repeat them (more checkpoints may be added). ``--out/overlap.json``
counts the evaluation prompts the run trained on (from its ``train_prompts.json``).

With ``--watch`` the sweep waits for new checkpoints until the run's last step is evaluated;
a checkpoint deleted by ``keep_last`` before its turn is reported and skipped (``keep_every``
keeps milestones for this).

Bad input is a UserError: a folder that is no training run, no checkpoints (without --watch),
checkpoints trained from another base model, steps that do not exist, other settings than the
folder's, an unwritable ``--out``.
"""

from __future__ import annotations

import datetime as dt
import time
from collections.abc import Callable
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Annotated, Any

import typer

from prorl_eval import eval_options as opt
from prorl_eval.checkpoints import STATE_FILE, resolve_model, training_checkpoints
from prorl_eval.errors import UserError
from prorl_eval.jsonio import ensure_writable_dir, read_json, write_json_atomic

SWEEP_FILE = "sweep.json"
OVERLAP_FILE = "overlap.json"
BASE = "base"


@dataclass(frozen=True)
class Entry:
    """One model of the sweep: its label (``base`` or ``step-N``), step (0 for the base) and
    what ``--model`` receives."""

    label: str
    step: int
    model: str


def step_label(step: int) -> str:
    return f"step-{step}"


def training_config(run_dir: Path) -> dict[str, Any]:
    """The run's resolved config.yaml; UserError when the folder is no prorl-train run."""
    import yaml

    path = run_dir / "config.yaml"
    if not run_dir.is_dir() or not path.is_file():
        raise UserError(
            f"{run_dir} is not a prorl-train run folder (no config.yaml); pass the --out of a "
            "training run."
        )
    return yaml.safe_load(path.read_text(encoding="utf-8")) or {}


def model_identity(spec: str) -> str:
    """What decides whether two model specs name the same model (alias, resolved path, hub id)."""
    ref = resolve_model(spec, materialize=False)
    return f"{ref.name}@{ref.revision}" if ref.revision else ref.name


def check_base(checkpoints: list[tuple[int, Path]], base: str) -> None:
    """Every checkpoint must have been trained from `base` (its trainer_state's model.name)."""
    wanted = model_identity(base)
    for step, path in checkpoints:
        trained = read_json(path / STATE_FILE, "trainer state").get("config", {}).get("model", {})
        name = trained.get("name")
        if name is not None and model_identity(str(name)) != wanted:
            raise UserError(
                f"{path} was trained from {name}, not from --base {base}; pass the run's own "
                f"base model (checkpoint step {step})."
            )


def parse_steps(spec: str) -> set[int | str] | None:
    """``--steps``: None for ``all``, else the set of step numbers and ``"last"``."""
    if spec.strip() == "all":
        return None
    steps: set[int | str] = set()
    for part in (p.strip() for p in spec.split(",")):
        if part == "last":
            steps.add(part)
        elif part:
            try:
                steps.add(int(part))
            except ValueError:
                raise UserError(
                    f"--steps takes 'all' or numbers and 'last' (got '{part}')."
                ) from None
    if not steps:
        raise UserError("--steps is empty; pass 'all' or e.g. 500,1000,last.")
    return steps


def targets(requested: set | None, found: list[int], final_step: int, watch: bool) -> list[int]:
    """The checkpoint steps to evaluate now, ascending: every one found for ``all``; else the
    requested ones found, with ``last`` the newest (under --watch: the run's final step)."""
    if requested is None:
        return sorted(found)
    wanted = {step for step in requested if isinstance(step, int)}
    if "last" in requested and found:
        wanted.add(final_step if watch else max(found))
    return sorted(wanted & set(found))


def sweep_settings(config: Any) -> dict[str, Any]:
    """The evaluation settings every model of a sweep shares (compared on re-runs)."""
    return {
        "tasks": config.tasks,
        "n": config.n,
        "ks": list(config.ks),
        "limit": config.limit,
        "data_seed": config.data_seed,
        "sampling": config.sampling.to_dict(),
    }


def open_sweep(out: Path, run_dir: Path, base: str, settings: dict[str, Any]) -> dict[str, Any]:
    """Read or create ``sweep.json``; a folder made for another run, base or settings is refused."""
    folder = ensure_writable_dir(out)
    path = folder / SWEEP_FILE
    wanted = {"training_run": str(run_dir.resolve()), "base": base, "settings": settings}
    if path.is_file():
        recorded = read_json(path, "sweep manifest")
        for key, value in wanted.items():
            if recorded.get(key) != value:
                raise UserError(
                    f"{out} holds a sweep with another {key.replace('_', ' ')} "
                    f"({recorded.get(key)!r}, now {value!r}); repeat its settings to resume it, "
                    "or use a new --out."
                )
        return recorded
    manifest = {
        **wanted,
        "created": dt.datetime.now(dt.timezone.utc).isoformat(timespec="seconds"),
        "entries": [],
    }
    write_json_atomic(path, manifest)
    return manifest


def record_entry(out: Path, manifest: dict[str, Any], entry: Entry) -> None:
    """Add an evaluated model to ``sweep.json`` (once), in step order."""
    entries = [e for e in manifest["entries"] if e["label"] != entry.label]
    entries.append({"label": entry.label, "step": entry.step, "model": entry.model})
    manifest["entries"] = sorted(entries, key=lambda e: e["step"])
    write_json_atomic(out / SWEEP_FILE, manifest)


@dataclass
class Sweep:
    """The state of one `prorl-eval sweep` command."""

    run_dir: Path
    out: Path
    base: str
    steps: str
    config: Any  # the EvalConfig every model shares (its `out` and `model` are replaced)
    watch: bool = False
    poll_s: float = 60.0

    def run(self, evaluate: Callable[[Any, str], Any], say: Callable[[str], None]) -> dict:
        """Evaluate the base and the selected checkpoints; returns ``sweep.json``'s content.

        ``evaluate(config, label)`` runs one model (`run_pass_at_k` behind a progress bar)."""
        train_cfg = training_config(self.run_dir)
        final_step = int(train_cfg.get("steps", 0))
        requested = parse_steps(self.steps)
        found = training_checkpoints(self.run_dir)
        if not found and not self.watch:
            raise UserError(
                f"{self.run_dir} has no checkpoints yet; wait for the first save, or pass "
                "--watch to evaluate them as training writes them."
            )
        self._check_requested(requested, [step for step, _ in found])
        check_base(found, self.base)
        manifest = open_sweep(self.out, self.run_dir, self.base, sweep_settings(self.config))
        self._overlap(say)
        self._evaluate(Entry(BASE, 0, self.base), manifest, evaluate)
        evaluated: set[int] = set()
        while True:
            found = training_checkpoints(self.run_dir)
            check_base(found, self.base)
            paths = dict(found)
            for step in targets(requested, list(paths), final_step, self.watch):
                if step not in evaluated:
                    entry = Entry(step_label(step), step, str(paths[step]))
                    self._evaluate(entry, manifest, evaluate)
                    evaluated.add(step)
            finished = max(paths, default=0) >= final_step
            if finished or not self.watch:
                self._note_missed(manifest, evaluated, train_cfg, say)
                return manifest
            newest = max(paths, default=0)
            say(f"waiting for checkpoints of {self.run_dir} (newest step {newest} of {final_step})")
            time.sleep(self.poll_s)

    def _check_requested(self, requested: set | None, found: list[int]) -> None:
        if requested is None or self.watch:
            return
        absent = sorted(s for s in requested if isinstance(s, int) and s not in found)
        if absent:
            raise UserError(
                f"step {absent[0]} is not a checkpoint of {self.run_dir} (it has "
                f"{', '.join(map(str, found))}); pick among them, or pass --watch to wait for it."
            )

    def _note_missed(self, manifest, evaluated: set[int], train_cfg: dict, say) -> None:
        """Record the checkpoints training saved but pruned before this sweep evaluated them."""
        save_every = int(train_cfg.get("save_every") or 0)
        newest = max(evaluated, default=0)
        requested = parse_steps(self.steps)
        expected = set(range(save_every, newest + 1, save_every)) if save_every else set()
        if requested is not None:
            expected &= {step for step in requested if isinstance(step, int)}
        missed = sorted(expected - evaluated)
        if not missed:
            return
        note = (
            f"checkpoint step(s) {', '.join(map(str, missed))} were deleted (keep_last) before "
            "they could be evaluated; set keep_every in training to keep milestones"
        )
        say(f"note: {note}")
        manifest["notes"] = sorted(set(manifest.get("notes", [])) | {note})
        write_json_atomic(self.out / SWEEP_FILE, manifest)

    def _evaluate(self, entry: Entry, manifest: dict[str, Any], evaluate: Callable) -> None:
        config = replace(self.config, out=str(self.out / entry.label), model=entry.model)
        evaluate(config, entry.label)
        record_entry(self.out, manifest, entry)

    def _overlap(self, say: Callable[[str], None]) -> None:
        """Write overlap.json: the evaluation prompts the run trained on."""
        from prorl_eval.analysis.overlap import PROMPTS_FILE, run_overlap
        from prorl_eval.tasks.registry import TaskOptions, resolve_available_tasks

        if not (self.run_dir / PROMPTS_FILE).is_file():
            say(f"note: {self.run_dir} has no {PROMPTS_FILE}; the overlap is not counted")
            return
        options = TaskOptions(
            limit=self.config.limit, seed=self.config.data_seed, data_dir=self.config.data_dir
        )
        tasks, _ = resolve_available_tasks(self.config.tasks, options)
        result = run_overlap(self.run_dir, tasks)
        write_json_atomic(self.out / OVERLAP_FILE, result)
        say(
            f"overlap: {result['in_training']} of {result['problems']} evaluation prompts "
            "appear in the run's training pool"
        )


def read_sweep(folder: str | Path) -> dict[str, Any] | None:
    """``sweep.json`` of a folder, or None when it is not a sweep folder."""
    path = Path(folder) / SWEEP_FILE
    return read_json(path, "sweep manifest") if path.is_file() else None


def sweep_command(
    run: Annotated[Path, typer.Argument(help="The prorl-train run folder (its --out).")],
    out: Annotated[Path, typer.Option(help="Sweep folder: one run folder per model, sweep.json.")],
    tasks: opt.Tasks,
    base: Annotated[
        str | None,
        typer.Option(help="The base model (default: the model the run trained from)."),
    ] = None,
    steps: Annotated[
        str, typer.Option(help="Checkpoints to evaluate: all, or steps and 'last' (500,last).")
    ] = "all",
    watch: Annotated[
        bool, typer.Option(help="Wait for new checkpoints until the run's last step is evaluated.")
    ] = False,
    poll: Annotated[float, typer.Option(help="--watch: seconds between looks.")] = 60.0,
    n: opt.N = 16,
    k: opt.Ks = None,
    limit: opt.Limit = None,
    data_seed: opt.DataSeed = 0,
    data_dir: opt.DataDir = None,
    score_workers: opt.ScoreWorkers = None,
    backend: opt.Backend = "auto",
    tensor_parallel_size: opt.TensorParallel = 1,
    data_parallel_size: opt.DataParallel = 1,
    temperature: opt.Temperature = 0.6,
    top_p: opt.TopP = 0.95,
    max_new_tokens: opt.MaxNewTokens = 1024,
    seed: opt.Seed = 0,
    chat_template: opt.ChatTemplate = True,
    system_prompt: opt.SystemPrompt = None,
    batch_size: opt.BatchSize = 64,
    max_batch_tokens: opt.MaxBatchTokens = opt.DEFAULT_MAX_BATCH_TOKENS,
    dtype: opt.Dtype = "auto",
    max_model_len: opt.MaxModelLen = None,
    bootstrap: opt.Bootstrap = 1000,
) -> None:
    """Evaluate a training run's base model and checkpoints with identical problems and sampling."""
    from rich.console import Console

    console = Console(stderr=True)
    if base is None:
        base = str(training_config(run).get("model", {}).get("name") or "")
        if not base:
            raise UserError(f"{run}/config.yaml names no model; pass --base MODEL.")
    if poll <= 0:
        raise UserError(f"--poll must be positive (got {poll}).")
    config = opt.make_eval_config(out, base, k, **opt.pick(locals()))
    config.validate()
    sweep = Sweep(run, out, base, steps, config, watch=watch, poll_s=poll)

    def say(line: str) -> None:
        console.print(line, highlight=False, soft_wrap=True)

    manifest = sweep.run(lambda cfg, label: opt.run_with_progress(cfg, console, label), say)
    print_sweep_table(out, manifest)
    say(f"sweep written to {out}: {', '.join(e['label'] for e in manifest['entries'])}")


def print_sweep_table(out: Path, manifest: dict[str, Any]) -> None:
    """pass@1 and pass@k_max per task (rows) for every evaluated model (columns)."""
    from rich.console import Console
    from rich.table import Table

    from prorl_eval.results import load_results

    frames = {e["label"]: load_results(out / e["label"]) for e in manifest["entries"]}
    k_max = max(manifest["settings"]["ks"])
    table = Table(title=f"pass@1 / pass@{k_max} per checkpoint (95% CI in results.json)")
    table.add_column("task", no_wrap=True)
    for label in frames:
        table.add_column(label, justify="right", no_wrap=True)
    for task in sorted({t for frame in frames.values() for t in frame["task"]}):
        cells = []
        for frame in frames.values():
            rows = frame[frame["task"] == task].set_index("k")["pass_at_k"]
            cells.append(f"{rows.get(1, float('nan')):.3f} / {rows.get(k_max, float('nan')):.3f}")
        table.add_row(task, *cells)
    Console().print(table)
