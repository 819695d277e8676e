"""Reading the runs of a report: results, samples and per-problem counts, and sweep folders.

:func:`load_runs` reads each run folder (results.json, and the samples it was computed from) and
the per-problem counts of all of them at once, so problem fingerprints are compared across runs;
:func:`expand_sweep` turns a `prorl-eval sweep` folder into its runs in training order;
:func:`check_comparable` refuses a boundary comparison of runs sampled differently.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

from prorl_eval.errors import UserError


@dataclass(frozen=True)
class SweepInfo:
    """What a sweep folder adds: each run's training step, the training run and its overlap."""

    steps: dict[str, int]
    training_run: Path
    overlap: dict[str, Any] | None


@dataclass
class LoadedRun:
    """One run folder: its results frame, per-problem counts (None without samples), metadata."""

    label: str
    path: Path
    results: Any
    counts: Any | None
    samples: Path | None


def shown_path(path: str | Path) -> str:
    """`path` as a reader of the report wants it: relative to the working folder when inside it
    (a committed report names `runs/x/checkpoint-40`, not the author's home), else unchanged."""
    try:
        return str(Path(path).resolve().relative_to(Path.cwd().resolve()))
    except (ValueError, OSError):
        return str(path)


def _samples_path(folder: Path, meta: dict[str, Any]) -> Path | None:
    """The folder's samples.jsonl, else the results' ``source_samples`` when it exists."""
    from prorl_eval.runstore import SAMPLES_FILE

    if (folder / SAMPLES_FILE).is_file():
        return folder / SAMPLES_FILE
    source = meta.get("source_samples")
    if source and Path(source).is_file():
        return Path(source)
    return None


def load_run(path: str | Path, label: str, *, counts: bool = True) -> LoadedRun:
    """Read a run folder; UserError when it is not a folder or lacks results.json.

    With ``counts=False`` the per-problem counts are left for :func:`load_runs` to read."""
    from prorl_eval.analysis.inputs import load_counts
    from prorl_eval.results import load_results
    from prorl_eval.runstore import RESULTS_FILE

    folder = Path(path)
    if not folder.is_dir():
        raise UserError(f"run folder {folder} does not exist; pass folders written by pass-at-k.")
    if not (folder / RESULTS_FILE).is_file():
        raise UserError(
            f"run folder {folder} has no {RESULTS_FILE}; compute it with "
            f"`prorl-eval pass-at-k --samples {folder}/samples.jsonl --out {folder}`."
        )
    results = load_results(folder)
    samples = _samples_path(folder, results.attrs.get("run", {}))
    loaded = load_counts(samples) if samples is not None and counts else None
    return LoadedRun(label, folder, results, loaded, samples)


def load_runs(paths: list[str], names: list[str], allow_mismatch: bool) -> list[LoadedRun]:
    """Read every run; their per-problem counts must agree on what each problem id names."""
    from prorl_eval.analysis.inputs import load_counts_by_run

    runs = [load_run(p, n, counts=False) for p, n in zip(paths, names, strict=True)]
    with_samples = {run.label: run.samples for run in runs if run.samples is not None}
    counts = load_counts_by_run(with_samples, allow_problem_mismatch=allow_mismatch)
    for run in runs:
        run.counts = counts.get(run.label)
    return runs


def expand_sweep(runs: list[str]) -> tuple[list[str], list[str], str, SweepInfo] | None:
    """(paths, labels, base label, sweep info) when RUN is one `prorl-eval sweep` folder."""
    from prorl_eval.jsonio import read_json
    from prorl_eval.sweep import OVERLAP_FILE, read_sweep

    sweeps = [run for run in runs if read_sweep(run) is not None]
    if not sweeps:
        return None
    if len(runs) > 1:
        raise UserError(
            f"{sweeps[0]} is a sweep folder; report it alone (it holds the base and every "
            "checkpoint), or pass its run folders one by one."
        )
    manifest = read_sweep(runs[0]) or {}
    entries = manifest.get("entries", [])
    if len(entries) < 2:
        raise UserError(
            f"sweep folder {runs[0]} holds {len(entries)} evaluated model(s); run "
            "`prorl-eval sweep` until the base and at least one checkpoint are evaluated."
        )
    folder = Path(runs[0])
    overlap_path = folder / OVERLAP_FILE
    info = SweepInfo(
        steps={e["label"]: int(e["step"]) for e in entries},
        training_run=Path(manifest["training_run"]),
        overlap=read_json(overlap_path, "overlap file") if overlap_path.is_file() else None,
    )
    paths = [str(folder / e["label"]) for e in entries]
    return paths, [e["label"] for e in entries], entries[0]["label"], info


def check_comparable(runs: list[LoadedRun]) -> None:
    """A boundary comparison needs every run sampled alike, on the same tasks (run.json)."""
    from prorl_eval.jsonio import read_json
    from prorl_eval.runstore import MANIFEST_FILE, describe_difference

    manifests = {
        run.label: read_json(run.path / MANIFEST_FILE, "run manifest")
        for run in runs
        if (run.path / MANIFEST_FILE).is_file()
    }
    if len(manifests) < 2:
        return
    first, *others = manifests
    for label in others:
        for section in ("sampling", "tasks"):
            a = manifests[first].get(section, {})
            b = manifests[label].get(section, {})
            if section == "tasks":
                a, b = sorted(a), sorted(b)
                diff = None if a == b else f"tasks {a} there, {b} here"
            else:
                diff = describe_difference(a, b)
            if diff:
                raise UserError(
                    f"runs {first} and {label} differ in {section} ({diff}); a boundary "
                    "comparison needs identical problems and sampling: evaluate them with the "
                    "same --tasks and sampling options (prorl-eval sweep does)."
                )


def consistency_notes(run: LoadedRun, k: int) -> list[str]:
    """Notes where samples.jsonl and results.json disagree; the counts are then dropped."""
    from prorl_eval.passk import pass_at_k

    if run.counts is None:
        return [
            f"Run {run.label}: no samples.jsonl found, so it is left out of the figures "
            "and its average rows have no CI."
        ]
    at_k = run.results[run.results["k"] == k].set_index("task")["pass_at_k"]
    for task, expected in at_k.items():
        rows = run.counts[run.counts["task"] == task]
        if rows.empty or int(rows["n"].min()) < k:
            got = "no samples"
        else:
            value = float(pass_at_k(rows["n"].to_numpy(), rows["c"].to_numpy(), k).mean())
            if abs(value - float(expected)) <= 1e-9:
                continue
            got = f"pass@{k} {value:.4f} vs {float(expected):.4f}"
        run.counts = None
        return [
            f"Run {run.label}: samples ({run.samples}) and results.json disagree on {task} "
            f"({got}); the tables show results.json and the figures leave this run out. "
            "Recompute results.json with `prorl-eval pass-at-k --samples`."
        ]
    return []
