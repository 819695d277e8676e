"""maj@k curves (k = 1..n) per run and task, from the samples' extracted answers.

Each value is the mean over a task's problems of `prorl_eval.voting.maj_at_k_values` (exact over
k-subsets; the same rules as results.json's `maj_at_k`). Tasks whose rows hold no extracted answer
(code, IFEval, rows written before schema 3) have no curve. The pass@k curves' plots draw these
as dashed lines beside pass@k (`plot_passk_curves(..., maj=...)`).

Example:
    >>> import pandas as pd
    >>> rows = pd.DataFrame({"task": ["t"] * 3, "problem_id": ["0"] * 3, "sample_idx": [0, 1, 2],
    ...                      "extracted_answer": ["4", "4", "5"], "correct": [True, True, False]})
    >>> maj_curves({"base": rows}).maj_at_k.round(4).tolist()
    [0.6667, 1.0, 1.0]
"""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path
from typing import Any

from prorl_eval.voting import has_answers, maj_at_k_values

MAJ_COLUMNS = ("run", "task", "k", "maj_at_k", "num_problems")


def maj_curves(samples: Mapping[str, Any], *, max_k: int | None = None) -> Any:
    """``{label: samples frame}`` (columns task, problem_id, sample_idx, extracted_answer, and
    correct or score/threshold) -> DataFrame of :data:`MAJ_COLUMNS`."""
    import numpy as np
    import pandas as pd

    records = []
    for run, frame in samples.items():
        if "extracted_answer" not in frame.columns:
            continue
        frame = frame.sort_values(["task", "problem_id", "sample_idx"], kind="stable")
        correct = _correct(frame)
        for task, part in frame.assign(_ok=correct).groupby("task", sort=False):
            problems = [g for _, g in part.groupby("problem_id", sort=False)]
            answers = [[_text(a) for a in g["extracted_answer"]] for g in problems]
            if not any(has_answers(a) for a in answers):
                continue
            top = min(len(a) for a in answers)
            top = min(top, max_k) if max_k else top
            ks = list(range(1, top + 1))
            pairs = zip(answers, problems, strict=True)
            values = np.array([maj_at_k_values(a, g["_ok"].tolist(), ks) for a, g in pairs])
            for k, mean in zip(ks, values.mean(axis=0), strict=True):
                records.append((str(run), str(task), k, float(mean), len(problems)))
    return pd.DataFrame(records, columns=list(MAJ_COLUMNS))


def _text(value: Any) -> str | None:
    """An extracted answer, or None for a missing one (pandas gives NaN for null)."""
    return value if isinstance(value, str) else None


def _correct(frame: Any) -> list[float]:
    if "correct" in frame.columns and frame["correct"].notna().all():
        return [float(bool(v)) for v in frame["correct"]]
    threshold = frame["threshold"] if "threshold" in frame.columns else 1.0
    return [float(v) for v in (frame["score"] >= threshold)]


def maj_curves_of_paths(paths: Mapping[str, str | Path | None], max_k: int | None = None) -> Any:
    """`maj_curves` of runs given by folder or samples file ({label: path}; None is skipped)."""
    from prorl_eval.results import load_samples

    frames = {label: load_samples(path) for label, path in paths.items() if path is not None}
    return maj_curves(frames, max_k=max_k)
