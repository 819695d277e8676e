"""`prorl-eval` as a user types it: real runs on the embedded model, errors, kill -9 and resume."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
from conftest import run_cli

from prorl_eval.inference.vllm import vllm_available
from prorl_eval.schema import read_samples

QUICK = ["--limit", "2", "--n", "2", "--k", "1,2", "--max-new-tokens", "16"]


def assert_one_line_error(result: subprocess.CompletedProcess, fragment: str) -> None:
    assert result.returncode == 2, result.stderr
    lines = [line for line in result.stderr.splitlines() if line.strip()]
    assert len(lines) == 1, result.stderr
    assert lines[0].startswith("error:") and fragment in lines[0]
    assert "Traceback" not in result.stderr


def write_samples(path: Path, rows: list[dict]) -> None:
    path.write_text("".join(json.dumps(r) + "\n" for r in rows))


@pytest.fixture
def sample_file(tmp_path):
    rows = [
        {"task": "t", "problem_id": str(p), "sample_idx": i, "score": float(i < p)}
        for p in range(4)
        for i in range(4)
    ]
    path = tmp_path / "samples.jsonl"
    write_samples(path, rows)
    return path


def test_recompute_from_a_samples_file(tmp_path, sample_file):
    result = run_cli(
        "pass-at-k", "--samples", str(sample_file), "--k", "1,4", "--out", str(tmp_path / "o")
    )
    assert result.returncode == 0, result.stderr
    data = json.loads((tmp_path / "o" / "results.json").read_text())
    summary = data["tasks"]["t"]
    # problems solve 0, 1, 2, 3 of 4 samples: pass@1 = mean(c/n), pass@4 = share with c > 0
    assert summary["pass_at_k"]["1"] == pytest.approx((0 + 1 + 2 + 3) / 16)
    assert summary["pass_at_k"]["4"] == pytest.approx(3 / 4)
    assert summary["num_problems"] == 4 and summary["n"] == 4
    assert "pass@4" in result.stdout and "0.750" in result.stdout


@pytest.mark.parametrize(
    ("args", "fragment"),
    [
        (["--tasks", "gym:not_a_dataset"], "unknown Reasoning Gym dataset"),
        (["--tasks", "mystery"], "unknown task 'mystery'"),
        (["--model", "not-an-alias"], "unknown model 'not-an-alias'"),
        (["--model", "./missing-model-folder"], "model folder missing-model-folder does not exist"),
        (["--k", "0"], "--k values must be >= 1"),
        (["--k", "1,x"], "--k takes comma-separated integers"),
        (["--n", "4", "--k", "8"], "k=8 exceeds --n 4"),
        (["--limit", "0"], "--limit must be a positive"),
        (["--backend", "tgi"], "unknown backend 'tgi'"),
        (["--backend", "openai"], "--backend openai needs --base-url"),
        (["--backend", "hf", "--tensor-parallel-size", "2"], "--tensor-parallel-size needs"),
        (["--base-url", "http://127.0.0.1:9/v1"], "--base-url needs --backend openai"),
        (
            [
                "--backend",
                "openai",
                "--base-url",
                "http://127.0.0.1:9/v1",
                "--data-parallel-size",
                "2",
            ],
            "configure them on the server",
        ),
    ],
)
def test_bad_input_is_one_line_and_exit_2(tmp_path, args, fragment):
    result = run_cli("pass-at-k", "--out", str(tmp_path / "run"), *args)
    assert_one_line_error(result, fragment)
    assert not (tmp_path / "run" / "samples.jsonl").exists()


def test_malformed_jsonl_names_the_line(tmp_path, sample_file):
    text = sample_file.read_text().splitlines()
    text[2] = '{"task": "t", "problem_id": "0", '
    sample_file.write_text("\n".join(text) + "\n")
    result = run_cli("pass-at-k", "--samples", str(sample_file), "--out", str(tmp_path / "o"))
    assert_one_line_error(result, "samples.jsonl:3: malformed JSON")


def test_k_above_the_samples_per_problem_is_refused(tmp_path, sample_file):
    result = run_cli(
        "pass-at-k", "--samples", str(sample_file), "--k", "8", "--out", str(tmp_path / "o")
    )
    assert_one_line_error(result, "k=8 exceeds the samples per problem of t (smallest n=4)")


def test_unwritable_output_folder(tmp_path, sample_file):
    blocker = tmp_path / "a-file"
    blocker.write_text("keep me")
    result = run_cli("pass-at-k", "--samples", str(sample_file), "--out", str(blocker / "sub"))
    assert_one_line_error(result, "cannot write to output folder")
    assert blocker.read_text() == "keep me"


@pytest.mark.slow
def test_end_to_end_on_the_embedded_model_with_hf(tmp_path, embedded_model_path):
    out = tmp_path / "run"
    result = run_cli("pass-at-k", "--backend", "hf", "--out", str(out), *QUICK)
    assert result.returncode == 0, result.stderr
    rows = read_samples(out / "samples.jsonl")
    # The default tasks are the three starter sets: 3 tasks x 2 problems x 2 samples.
    assert len(rows) == 3 * 2 * 2
    assert {r["model"] for r in rows} == {"smollm2-135m-instruct"}
    assert all(r["backend"] == "hf" and 1 <= r["num_tokens"] <= 16 for r in rows)
    results = json.loads((out / "results.json").read_text())
    starters = {"starter:capitals", "starter:sums", "starter:products"}
    assert set(results["tasks"]) == starters
    assert "starter:products" in result.stdout and "pass@2" in result.stdout

    # Re-running the finished command generates nothing and gives the same numbers.
    again = run_cli("pass-at-k", "--backend", "hf", "--out", str(out), *QUICK)
    assert again.returncode == 0
    assert len(read_samples(out / "samples.jsonl")) == 12
    assert json.loads((out / "results.json").read_text())["tasks"] == results["tasks"]

    # Other sampling settings are refused, and the folder is left as it was.
    before = (out / "samples.jsonl").read_bytes()
    clash = run_cli(
        "pass-at-k", "--backend", "hf", "--out", str(out), *QUICK, "--temperature", "1.0"
    )
    assert_one_line_error(clash, "different sampling settings")
    assert (out / "samples.jsonl").read_bytes() == before


@pytest.mark.slow
@pytest.mark.vllm
@pytest.mark.skipif(not vllm_available(), reason="vLLM is not installed")
def test_end_to_end_on_the_embedded_model_with_vllm(tmp_path, embedded_model_path):
    out = tmp_path / "run"
    result = run_cli(
        "pass-at-k", "--backend", "vllm", "--out", str(out), *QUICK, "--tasks", "gym:leg_counting"
    )
    assert result.returncode == 0, result.stderr
    rows = read_samples(out / "samples.jsonl")
    assert len(rows) == 2 * 2 and {r["backend"] for r in rows} == {"vllm"}
    assert all(1 <= r["num_tokens"] <= 16 for r in rows)


@pytest.mark.slow
def test_kill_9_then_resume(tmp_path, embedded_model_path):
    """A hard kill mid-run loses nothing already scored; re-running completes without duplicates."""
    out = tmp_path / "run"
    args = [
        "pass-at-k",
        "--backend",
        "hf",
        "--out",
        str(out),
        "--tasks",
        "gym:leg_counting",
        "--limit",
        "6",
        "--n",
        "4",
        "--k",
        "1,4",
        "--max-new-tokens",
        "24",
        "--batch-size",
        "4",
    ]
    env = {**os.environ, "PYTHONUNBUFFERED": "1"}
    proc = subprocess.Popen(
        [sys.executable, "-m", "prorl_eval.cli", *args],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
        env=env,
    )
    samples = out / "samples.jsonl"
    deadline = time.time() + 240
    while time.time() < deadline:
        if samples.exists() and samples.read_text().count("\n") >= 8:
            break
        if proc.poll() is not None:
            pytest.fail("the run finished before it could be killed")
        time.sleep(0.2)
    proc.send_signal(signal.SIGKILL)
    proc.wait()
    kept = read_samples(samples)
    assert 8 <= len(kept) < 24
    before = samples.read_text()

    result = run_cli(*args)
    assert result.returncode == 0, result.stderr
    rows = read_samples(samples)  # refuses duplicates
    assert len(rows) == 24
    assert samples.read_text().startswith(before)
    assert {(r["problem_id"], r["sample_idx"]) for r in rows} == {
        (str(p), i) for p in range(6) for i in range(4)
    }
