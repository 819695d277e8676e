"""Samples → per-problem success counts, the input every reasoning-boundary analysis starts from.

What
----
An analysis never looks at responses, only at how many samples each problem got (``n``) and how
many of them were correct (``c``). :func:`problem_counts` turns a samples frame (as returned by
:func:`prorl_eval.load_samples`) into one row per (task, problem_id) with ``n``, ``c`` and the mean
verifier score. :func:`load_counts` does the same from a run folder or a samples JSONL file, and
:func:`run_labels` names runs for tables and legends.

Why
---
Counting once, up front, keeps the analyses pure: they take a small frame of integers and never do
I/O, so they are cheap to test against hand-computed numbers.

Example:
    >>> import pandas as pd
    >>> samples = pd.DataFrame({"task": ["t"] * 3, "problem_id": ["0", "0", "1"],
    ...                         "sample_idx": [0, 1, 0], "correct": [True, False, False],
    ...                         "score": [1.0, 0.0, 0.0]})
    >>> problem_counts(samples)[["task", "problem_id", "n", "c"]].values.tolist()
    [['t', '0', 2, 1], ['t', '1', 1, 0]]
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

from prorl_eval.errors import UserError

COUNT_COLUMNS = ("task", "problem_id", "n", "c", "mean_score")


def problem_counts(samples: Any) -> Any:
    """One row per (task, problem_id): ``n`` samples, ``c`` correct ones, ``mean_score``.

    Args:
        samples: DataFrame with at least ``task``, ``problem_id`` and ``correct`` (``score`` is
            optional; without it ``mean_score`` is the fraction correct).

    Returns:
        DataFrame with columns :data:`COUNT_COLUMNS`, sorted by task then problem_id.
    """
    import pandas as pd

    missing = [col for col in ("task", "problem_id", "correct") if col not in samples.columns]
    if missing:
        raise ValueError(f"samples frame lacks column(s) {', '.join(missing)}")
    frame = pd.DataFrame(
        {
            "task": samples["task"].astype(str),
            "problem_id": samples["problem_id"].astype(str),
            "correct": samples["correct"].astype(bool).astype("int64"),
            "score": samples["score"] if "score" in samples.columns else samples["correct"],
        }
    )
    grouped = frame.groupby(["task", "problem_id"], sort=True)
    out = grouped.agg(
        n=("correct", "size"), c=("correct", "sum"), mean_score=("score", "mean")
    ).reset_index()
    out["n"] = out["n"].astype("int64")
    out["c"] = out["c"].astype("int64")
    out["mean_score"] = out["mean_score"].astype(float)
    return out[list(COUNT_COLUMNS)]


def load_counts(path: str | Path, *, allow_problem_mismatch: bool = False) -> Any:
    """Per-problem counts of a run folder (its samples.jsonl) or a samples JSONL file.

    Raises:
        UserError: the path does not exist, holds no rows, or mixes samples of several models
            (pass@k of a mixture measures no model).
        ProblemMismatch: rows of one problem id record different problems (see
            :mod:`prorl_eval.fingerprints`), unless ``allow_problem_mismatch``.
    """
    return _counts_of(_read_run_samples(path, allow_problem_mismatch), path)


def load_counts_by_run(
    paths: Mapping[str, str | Path], *, allow_problem_mismatch: bool = False
) -> dict[str, Any]:
    """``{label: per-problem counts}`` of several runs that must share their problems.

    Every problem id the runs share must name the same problem in each (the first run is the
    reference); a disagreement raises ProblemMismatch, or warns when ``allow_problem_mismatch``.
    """
    from prorl_eval.fingerprints import check_sources, collect

    samples = {
        label: _read_run_samples(path, allow_problem_mismatch) for label, path in paths.items()
    }
    fingerprints = {label: collect(_fingerprint_rows(frame))[0] for label, frame in samples.items()}
    check_sources(fingerprints, allow=allow_problem_mismatch)
    return {label: _counts_of(frame, paths[label]) for label, frame in samples.items()}


def _read_run_samples(path: str | Path, allow_problem_mismatch: bool) -> Any:
    from prorl_eval.results import load_samples

    samples = load_samples(path, allow_problem_mismatch=allow_problem_mismatch)
    if samples.empty:
        raise UserError(f"{path} holds no sample rows; pass a run folder or a samples JSONL file.")
    return samples


def _fingerprint_rows(samples: Any) -> list[dict[str, Any]]:
    from prorl_eval.fingerprints import FIELD

    if FIELD not in samples.columns:
        return []
    return samples[["task", "problem_id", FIELD]].to_dict(orient="records")


def _counts_of(samples: Any, path: str | Path) -> Any:
    if "model" in samples.columns:
        models = sorted({str(m) for m in samples["model"].dropna() if str(m)})
        if len(models) > 1:
            raise UserError(
                f"{path} mixes samples of {len(models)} models ({', '.join(models)}); "
                "split it into one file per model."
            )
    return problem_counts(samples)


def recorded_domains(paths: Sequence[str | Path]) -> dict[str, str]:
    """``{task: domain}`` as the runs' run.json recorded them (a run folder, or the folder of a
    run's samples.jsonl); tasks of runs without run.json are left out, so the analyses fall back
    to the task catalogue's domain (:func:`prorl_eval.analysis.curves.task_domain`).

    A custom task's ``domain=`` option and every registry task's own domain reach the analyses
    this way, without a table kept here."""
    from prorl_eval.jsonio import read_json
    from prorl_eval.runstore import MANIFEST_FILE

    found: dict[str, str] = {}
    for path in paths:
        folder = Path(path) if Path(path).is_dir() else Path(path).parent
        if not (folder / MANIFEST_FILE).is_file():
            continue
        tasks = read_json(folder / MANIFEST_FILE, "run manifest").get("tasks", {})
        for name, described in tasks.items():
            if isinstance(described, dict) and isinstance(described.get("domain"), str):
                found[str(name)] = described["domain"]
    return found


def default_label(path: str | Path) -> str:
    """A run's display name: the folder's name, or the file's stem (its folder's name for a run
    folder's samples.jsonl)."""
    path = Path(path)
    if path.is_dir():
        return path.resolve().name or str(path)
    if path.name == "samples.jsonl" and path.parent.name:
        return path.resolve().parent.name
    return path.stem or str(path)


def run_labels(
    paths: Sequence[str | Path], labels: str | None, option: str = "--labels"
) -> list[str]:
    """Labels for ``paths``: the comma-separated ``labels`` if given, else :func:`default_label`.

    Default labels that collide get ``#2``, ``#3`` suffixes; explicit labels must be distinct and
    as many as the paths.
    """
    if labels is not None:
        names = [part.strip() for part in labels.split(",")]
        if len(names) != len(paths) or not all(names):
            raise UserError(
                f"{option} has {len(names)} label(s) for {len(paths)} run(s); "
                "give one non-empty comma-separated label per run, in order."
            )
        if len(set(names)) != len(names):
            raise UserError(f"{option} repeats a label ({labels}); give each run its own label.")
        return names
    names: list[str] = []
    for path in paths:
        name = base = default_label(path)
        copy = 2
        while name in names:
            name = f"{base}#{copy}"
            copy += 1
        names.append(name)
    return names


def display_name(task: str, width: int = 40) -> str:
    """A short label for figures: `custom:` tasks by their file or dataset name, long names cut.

    >>> display_name("custom:data/capitals.jsonl?prompt=q&answer=a")
    'custom:capitals'
    """
    if task.startswith("custom:"):
        source = task[len("custom:") :].split("?", 1)[0]
        stem = source.rstrip("/").rsplit("/", 1)[-1]
        for suffix in (".jsonl", ".json", ".csv"):
            stem = stem.removesuffix(suffix)
        task = f"custom:{stem}"
    return task if len(task) <= width else task[: width - 1] + "…"
