"""Weights & Biases logging in offline mode (files, no network), read back from the run file."""

from __future__ import annotations

import json
import sys
from dataclasses import replace

import pytest
from conftest import make_config, read_wandb_run, run_cli, settings

from prorl_eval.errors import UserError


@pytest.fixture(autouse=True)
def offline(monkeypatch):
    monkeypatch.setenv("WANDB_MODE", "offline")
    monkeypatch.setenv("WANDB_SILENT", "true")


def test_eval_results_go_to_a_wandb_run(tmp_path):
    rows = [
        {"task": "t", "problem_id": str(p), "sample_idx": i, "score": float(i <= p),
         "correct": i <= p, "extracted_answer": str(i <= p), "finish_reason": "stop",
         "num_tokens": 10}
        for p in range(3) for i in range(4)
    ]  # fmt: skip
    samples = tmp_path / "samples.jsonl"
    samples.write_text("".join(json.dumps(r) + "\n" for r in rows))
    out = tmp_path / "scored"
    done = run_cli("pass-at-k", "--samples", str(samples), "--k", "1,4", "--out", str(out),
                   "--wandb", "--wandb-project", "tests")  # fmt: skip
    assert done.returncode == 0, done.stderr
    results = json.loads((out / "results.json").read_text())["tasks"]["t"]
    run = read_wandb_run(out)
    assert run["name"] == "scored"
    for k in ("1", "4"):
        assert run["summary"][f"t/pass@{k}"] == pytest.approx(results["pass_at_k"][k])
        assert run["summary"][f"t/maj@{k}"] == pytest.approx(results["maj_at_k"][k])
    assert run["summary"]["t/pass@4_ci_low"] == pytest.approx(results["pass_at_k_ci95"]["4"][0])
    assert run["summary"]["t/truncated_share"] == 0.0


def test_training_rows_go_to_wandb_at_their_step_and_a_resume_continues_the_run(
    tmp_path, peaked_model_dir
):
    from prorl_train.metrics import read_metrics
    from prorl_train.trainer import train

    data = settings(peaked_model_dir, steps=2, save_every=2)
    data["logging"] = {"wandb": True, "wandb_project": "tests", "wandb_mode": "offline"}
    out = tmp_path / "run"
    train(make_config(tmp_path, data, out)[1])
    rows = read_metrics(out / "metrics.jsonl")
    run = read_wandb_run(out)
    assert run["name"] == "run" and (out / "wandb_run_id").read_text().strip() == run["id"]
    assert [h["_step"] for h in run["history"]] == [1, 2]
    for logged, row in zip(run["history"], rows, strict=True):
        assert logged["reward/mean"] == pytest.approx(row["reward/mean"])
        assert logged["actor/kl_ref"] == pytest.approx(row["actor/kl_ref"])
    config = make_config(tmp_path, {**data, "steps": 3}, out)[1]
    train(config, resume=True)
    resumed = read_wandb_run(out)  # the newest offline run file: the same W&B run id
    assert resumed["id"] == run["id"] and [h["_step"] for h in resumed["history"]] == [3]


def test_bad_wandb_settings_are_one_line_errors(monkeypatch):
    from prorl_train.config import LoggingConfig

    with pytest.raises(UserError, match=r"logging\.wandb_mode must be online, offline or disabled"):
        LoggingConfig(wandb_mode="cloud").validate()
    monkeypatch.setitem(sys.modules, "wandb", None)  # as if it were not installed
    with pytest.raises(UserError, match=r"logging.wandb needs Weights & Biases: pip install wandb"):
        replace(LoggingConfig(), wandb=True).validate()
