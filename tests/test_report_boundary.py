"""The boundary report of a training run: a sweep folder in, the paper's view out.

The sweep folder is written as `prorl-eval sweep` writes it (sweep.json, one run folder per model,
overlap.json, a training run with metrics.jsonl and resets.jsonl); the samples are synthetic, with
per-problem counts chosen so that every section has something to show and can be checked by hand.
"""

from __future__ import annotations

import json
import re
from pathlib import Path

import pytest

from prorl_eval.cli.report import report_command
from prorl_eval.errors import UserError
from prorl_eval.fingerprints import problem_fingerprint
from prorl_eval.results import summarize

N = 8
CUSTOM = "custom:data/capitals.jsonl?prompt=question&answer=answer&verifier=contains"
# task -> per-problem correct counts of each model (same problems, N samples each)
COUNTS = {
    "base": {"gym:a": [0, 0, 4, 8], "gym:b": [0, 2, 2], CUSTOM: [8, 8, 0]},
    "step-10": {"gym:a": [1, 0, 5, 8], "gym:b": [0, 3, 4], CUSTOM: [8, 8, 0]},
    "step-20": {"gym:a": [3, 2, 7, 8], "gym:b": [0, 5, 4], CUSTOM: [8, 7, 0]},
}
STEPS = {"base": 0, "step-10": 10, "step-20": 20}
SAMPLING = {"temperature": 0.6, "top_p": 0.95, "max_new_tokens": 32, "seed": 0}


def write_model_run(folder: Path, label: str, sampling=SAMPLING) -> None:
    folder.mkdir(parents=True)
    rows = []
    for task, counts in COUNTS[label].items():
        for pid, c in enumerate(counts):
            prompt = f"Question {pid} of {task}?"
            for i in range(N):
                correct = i < c
                rows.append(
                    {
                        "task": task,
                        "problem_id": str(pid),
                        "sample_idx": i,
                        "score": float(correct),
                        "correct": correct,
                        "model": label,
                        "prompt": prompt,
                        "gold_answer": f"gold-{task}-{pid}",
                        "response": f"{label} answer {i} to {pid}: {'right' if correct else 'x'}",
                        "problem_fingerprint": problem_fingerprint(prompt, f"gold-{pid}"),
                    }
                )
    (folder / "samples.jsonl").write_text("".join(json.dumps(r) + "\n" for r in rows))
    results = {
        "tasks": summarize(rows, [1, 2, 4, 8], resamples=200, seed=0),
        "model": label,
        "n": N,
        "ks": [1, 2, 4, 8],
        "bootstrap": {"resamples": 200, "seed": 0},
    }
    (folder / "results.json").write_text(json.dumps(results))
    manifest = {
        "model": {"model": label},
        "sampling": sampling,
        "tasks": {task: {} for task in COUNTS[label]},
    }
    (folder / "run.json").write_text(json.dumps(manifest))


@pytest.fixture
def sweep(tmp_path) -> Path:
    train = tmp_path / "train"
    train.mkdir()
    (train / "config.yaml").write_text(
        "steps: 20\nbatch_size: 4\nrollout: {n: 4}\nmodel: {name: tiny}\n"
        "data: {mix: {gym:a: 1.0}, data_seed: 2}\n"
    )
    metrics = [
        {"step": s, "reward/mean": 0.1 * s, "actor/entropy": 1.0 - 0.01 * s, "actor/kl_ref": 0.001}
        | ({"reset/event": 1} if s == 15 else {})
        for s in range(1, 21)
    ]
    (train / "metrics.jsonl").write_text("".join(json.dumps(m) + "\n" for m in metrics))
    event = {"step": 15, "triggers": ["schedule"], "reset": ["reference", "optimizer"]}
    (train / "resets.jsonl").write_text(json.dumps(event) + "\n")
    out = tmp_path / "eval"
    for label in COUNTS:
        write_model_run(out / label, label)
    entries = [{"label": label, "step": STEPS[label], "model": label} for label in COUNTS]
    (out / "sweep.json").write_text(
        json.dumps({"training_run": str(train), "base": "tiny", "settings": {}, "entries": entries})
    )
    overlap = {
        "in_training": 0,
        "problems": 10,
        "held_out": {"gym:a": 4},
        "holdout": {"spec": "auto"},
    }
    (out / "overlap.json").write_text(json.dumps(overlap))
    return out


def test_the_boundary_report_of_a_sweep(sweep, tmp_path):
    out = tmp_path / "report"
    report_command([str(sweep)], out)
    md = (out / "report.md").read_text()
    # the paper's tables: pass@1 and pass@k at the largest k, base and every checkpoint
    assert "## pass@1 by domain" in md and "## pass@8 by domain" in md
    assert "| Benchmark | Problems | base | step-10 | step-20 |" in md
    for section in (
        "## Training run",
        "## Reasoning boundary",
        "## Problems only RL solves",
        "## Base pass@8 vs RL gain",
        "## Training dynamics",
    ):
        assert section in md, section
    assert "Overlap: 0 of 10 evaluation prompts" in md and "removed 4 training problems" in md
    # regimes with the rule that fired: gym:a gains pass@8 0.25 then 0.5 (sustained)
    regime_a = next(
        line for line in md.splitlines() if line.startswith("| gym:a |") and "→" in line
    )
    assert "sustained" in regime_a and "grew" in regime_a
    # problems only RL solves: gym:a #0 (step-10 1/8, step-20 3/8) and #1 (step-20 2/8)
    titles = re.findall(r"^### (.*)$", md, flags=re.M)
    assert "gym:a #0: base 0/8; step-10 1/8, step-20 3/8" in titles
    assert "gym:a #1: base 0/8; step-20 2/8" in titles
    assert "2 problem(s) that the base never solved" in md
    block = md[md.index("### gym:a #0") :]
    assert "Question 0 of gym:a?" in block and "gold-gym:a-0" in block
    assert "step-20 answer 0 to 0: right" in block  # the latest checkpoint's first correct one
    # custom tasks get short names everywhere
    assert "custom:capitals" in md and "capitals.jsonl?prompt" not in md
    figures = sorted(p.name for p in (out / "figures").glob("*.png"))
    assert figures == [
        "boundary.png",
        "correlation.png",
        "dynamics.png",
        "passk_by_step.png",
        "passk_curves_domain.png",
        "passk_curves_task.png",
    ]
    html = (out / "report.html").read_text()
    assert html.count("<img") == 6 and "<script" not in html
    assert "gold-gym:a-0" in html and html.count('<table class="results"') == 2 * 2
    tex = (out / "tables.tex").read_text()
    assert "sustained" in tex and "custom:capitals" in tex


def test_report_of_runs_sampled_differently_is_refused(sweep, tmp_path):
    import shutil

    run = sweep / "step-20"
    manifest = json.loads((run / "run.json").read_text())
    manifest["sampling"]["temperature"] = 1.0
    (run / "run.json").write_text(json.dumps(manifest))
    with pytest.raises(UserError, match=r"runs base and step-20 differ in sampling \(temperature"):
        report_command([str(sweep)], tmp_path / "r")
    shutil.rmtree(tmp_path / "r", ignore_errors=True)


@pytest.mark.parametrize(
    ("extra", "fragment"),
    [
        (["other"], "is a sweep folder; report it alone"),
        ([], "holds 1 evaluated model"),
    ],
)
def test_sweep_refusals(sweep, tmp_path, extra, fragment):
    if not extra:
        manifest = json.loads((sweep / "sweep.json").read_text())
        manifest["entries"] = manifest["entries"][:1]
        (sweep / "sweep.json").write_text(json.dumps(manifest))
    runs = [str(sweep), *(str(tmp_path / e) for e in extra)]
    with pytest.raises(UserError, match=re.escape(fragment)):
        report_command(runs, tmp_path / "r")
    assert not (tmp_path / "r").exists()


def test_tables_group_tasks_by_the_domain_their_runs_recorded(sweep, tmp_path):
    for label in COUNTS:
        path = sweep / label / "run.json"
        manifest = json.loads(path.read_text())
        manifest["tasks"][CUSTOM] = {"name": CUSTOM, "domain": "math"}
        path.write_text(json.dumps(manifest))
    report_command([str(sweep)], tmp_path / "r")
    md = (tmp_path / "r" / "report.md").read_text()
    math = md[md.index("### Math") : md.index("### Logic puzzles")]
    assert "custom:capitals" in math and "gym:a" not in math
