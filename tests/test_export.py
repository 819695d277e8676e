"""`prorl-eval export`: a run folder in lm-eval's and lighteval's results layouts, read back with
those tools' own helpers (lm-eval's `make_table` and file-name parsers, lighteval's
`make_results_table`, the details parquet through `datasets` as lighteval loads it)."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
from conftest import ScriptedGenerator, run_cli

from prorl_eval.errors import UserError
from prorl_eval.export import export_run
from prorl_eval.runner import EvalConfig, run_pass_at_k
from prorl_eval.tasks.registry import TaskOptions, resolve_tasks

TASKS = "gym:leg_counting,gym:basic_arithmetic"


@pytest.fixture(scope="module")
def run_folder(tmp_path_factory):
    out = tmp_path_factory.mktemp("export") / "run"
    tasks = resolve_tasks(TASKS, TaskOptions(limit=3))
    answers = {t.prompt(p): str(p.answer) for t in tasks for p in t.load()}
    config = EvalConfig(out=str(out), tasks=TASKS, n=4, ks=(1, 2, 4), limit=3, batch_size=8)
    run_pass_at_k(config, generator_factory=lambda b, m: ScriptedGenerator(answers))
    return out


def per_problem_pass1(run: Path, task: str) -> np.ndarray:
    rows = [json.loads(line) for line in (run / "samples.jsonl").read_text().splitlines()]
    by: dict[str, list[bool]] = {}
    for row in rows:
        if row["task"] == task:
            by.setdefault(row["problem_id"], []).append(row["correct"])
    return np.array([np.mean(v) for v in by.values()])


def test_lm_eval_layout_reads_back_with_lm_eval_helpers(run_folder, tmp_path):
    from lm_eval.utils import (
        get_file_task_name,
        get_results_filenames,
        get_sample_results_filenames,
        make_table,
    )

    files = [str(p) for p in export_run(run_folder, "lm-eval", tmp_path)]
    (results_file,) = get_results_filenames(files)
    samples_files = get_sample_results_filenames(files)
    assert sorted(get_file_task_name(Path(f).name) for f in samples_files) == [
        "gym__basic_arithmetic", "gym__leg_counting",
    ]  # fmt: skip
    document = json.loads(Path(results_file).read_text())
    ours = json.loads((run_folder / "results.json").read_text())["tasks"]
    table = make_table(document)
    for task, summary in ours.items():
        entry = document["results"][task]
        for k in ("1", "2", "4"):
            assert entry[f"pass@{k},none"] == pytest.approx(summary["pass_at_k"][k])
            assert entry[f"maj@{k},none"] == pytest.approx(summary["maj_at_k"][k])
        values = per_problem_pass1(run_folder, task)
        se = values.std(ddof=1) / np.sqrt(values.size)
        assert entry["pass@1_stderr,none"] == pytest.approx(se)
        assert f"|{task}|" in table.replace(" ", "")
    sample = json.loads(Path(samples_files[0]).read_text().splitlines()[0])
    assert {"doc_id", "doc", "target", "arguments", "resps", "filtered_resps", "metrics"} <= set(
        sample
    )
    assert len(sample["resps"]) == 4 and sample["metrics"][0] == "pass@1"


def test_lighteval_layout_reads_back_with_lighteval_helpers(run_folder, tmp_path):
    import datasets
    from lighteval.utils.utils import make_results_table

    files = export_run(run_folder, "lighteval", tmp_path)
    results = next(p for p in files if p.suffix == ".json")
    assert results.parent == tmp_path / "results" / "smollm2-135m-instruct"
    document = json.loads(results.read_text())
    assert set(document) == {"config_general", "results", "versions", "config_tasks",
                             "summary_tasks", "summary_general"}  # fmt: skip
    table = make_results_table(document)
    assert "gym:leg_counting:0" in table and "all" in table
    ours = json.loads((run_folder / "results.json").read_text())["tasks"]
    both = [document["results"][f"{t}:0"]["pass@2"] for t in ours]
    assert document["results"]["all"]["pass@2"] == pytest.approx(np.mean(both))
    parquet = [str(p) for p in files if p.suffix == ".parquet"]
    details = datasets.load_dataset("parquet", data_files={"latest": parquet[0]}, split="latest")
    assert set(details.column_names) == {"doc", "model_response", "metric"}
    assert len(details) == 3 and len(json.loads(details[0]["model_response"])["text"]) == 4


def test_bad_export_requests(run_folder, tmp_path):
    with pytest.raises(UserError, match="unknown export format 'helm'"):
        export_run(run_folder, "helm", tmp_path)
    with pytest.raises(UserError, match="not a run folder"):
        export_run(tmp_path, "lm-eval", tmp_path / "x")
    with pytest.raises(UserError, match="must differ from the run folder"):
        export_run(run_folder, "lm-eval", run_folder)
    done = run_cli("export", str(run_folder), "--format", "helm", "--out", str(tmp_path / "o"))
    lines = [line for line in done.stderr.splitlines() if line.strip()]
    assert done.returncode == 2 and lines == [
        "error: unknown export format 'helm'; use one of lm-eval, lighteval."
    ]
