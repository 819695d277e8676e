"""`prorl-eval sweep`: the base and every checkpoint of a training run, resumable, watchable.

The training run is a folder laid out as prorl-train writes it (config.yaml, checkpoint-N/ with
policy/ and trainer_state.json, train_prompts.json), its checkpoints copies of the tiny random
model with one weight perturbed, so each evaluates to other samples.
"""

from __future__ import annotations

import json
import os
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
import yaml

from prorl_eval.cli import main
from prorl_eval.schema import read_samples

TASKS = "gym:leg_counting,gym:basic_arithmetic"
EVAL = ["--tasks", TASKS, "--limit", "3", "--n", "2", "--max-new-tokens", "2", "--backend", "hf"]
EVAL += ["--score-workers", "0", "--bootstrap", "50"]


def add_checkpoint(run: Path, step: int, base: Path, trained_from: str | None = None) -> Path:
    import torch
    from safetensors.torch import load_file, save_file

    folder = run / f"checkpoint-{step}"
    shutil.copytree(base, folder / "policy")
    weights = load_file(folder / "policy" / "model.safetensors")
    name = next(iter(weights))
    weights[name] = weights[name] + 0.01 * step * torch.ones_like(weights[name])
    save_file(weights, folder / "policy" / "model.safetensors", metadata={"format": "pt"})
    state = {"step": step, "config": {"model": {"name": trained_from or str(base)}}}
    (folder / "trainer_state.json").write_text(json.dumps(state))
    return folder


@pytest.fixture
def training_run(tmp_path, tiny_model_dir):
    from prorl_eval.tasks.registry import TaskOptions
    from prorl_train.data import DataMix

    run = tmp_path / "train"
    run.mkdir()
    config = {"steps": 4, "save_every": 2, "model": {"name": str(tiny_model_dir)}}
    (run / "config.yaml").write_text(yaml.safe_dump(config))
    # trained on the first 2 leg_counting problems of the evaluation's seed: overlap 2
    DataMix({"gym:leg_counting": 1.0}, TaskOptions(limit=2, seed=0), 0).write_prompts_manifest(run)
    add_checkpoint(run, 2, tiny_model_dir)
    add_checkpoint(run, 4, tiny_model_dir)
    return run


def sweep_args(run: Path, out: Path, *extra: str) -> list[str]:
    return ["sweep", str(run), "--out", str(out), *EVAL, *extra]


def test_a_sweep_evaluates_the_base_and_every_checkpoint_alike(
    training_run, tmp_path, capsys, tiny_model_dir
):
    out = tmp_path / "eval"
    assert main(sweep_args(training_run, out)) == 0
    manifest = json.loads((out / "sweep.json").read_text())
    assert [e["label"] for e in manifest["entries"]] == ["base", "step-2", "step-4"]
    assert [e["step"] for e in manifest["entries"]] == [0, 2, 4]
    prompts, sampling, responses = set(), set(), []
    for label in ("base", "step-2", "step-4"):
        rows = read_samples(out / label / "samples.jsonl")
        assert len(rows) == 2 * 3 * 2
        prompts.add(
            tuple(sorted((r["task"], r["problem_id"], r["problem_fingerprint"]) for r in rows))
        )
        sampling.add(json.dumps(rows[0]["sampling"], sort_keys=True))
        responses.append([r["response"] for r in rows])
        assert (out / label / "results.json").is_file()
    assert len(prompts) == 1 and len(sampling) == 1  # identical problems and sampling
    models = [
        json.loads((out / label / "run.json").read_text())["model"]["model"]
        for label in ("base", "step-2")
    ]
    assert models == [str(tiny_model_dir.resolve()), str((training_run / "checkpoint-2").resolve())]
    overlap = json.loads((out / "overlap.json").read_text())
    assert overlap["in_training"] == 2 and overlap["problems"] == 6
    printed = capsys.readouterr()
    assert "step-4" in printed.out and "overlap: 2 of 6" in printed.err


def test_selected_steps_and_a_rerun_that_adds_one(training_run, tmp_path):
    out = tmp_path / "eval"
    assert main(sweep_args(training_run, out, "--steps", "last")) == 0
    before = (out / "step-4" / "samples.jsonl").read_bytes()
    assert not (out / "step-2").exists()
    assert main(sweep_args(training_run, out, "--steps", "2,last")) == 0
    assert (out / "step-4" / "samples.jsonl").read_bytes() == before  # nothing redone
    labels = [e["label"] for e in json.loads((out / "sweep.json").read_text())["entries"]]
    assert labels == ["base", "step-2", "step-4"]


@pytest.mark.parametrize(
    ("setup", "extra", "fragment"),
    [
        ("no-checkpoints", [], "has no checkpoints yet"),
        ("other-base", [], "was trained from"),
        ("no-run", [], "is not a prorl-train run folder"),
        ("ok", ["--steps", "3"], "step 3 is not a checkpoint"),
        ("ok", ["--steps", "two"], "--steps takes 'all' or numbers"),
    ],
)
def test_bad_input_is_one_line_exit_2(training_run, tmp_path, capsys, setup, extra, fragment):
    run = training_run
    if setup == "no-checkpoints":
        for path in run.glob("checkpoint-*"):
            shutil.rmtree(path)
    elif setup == "other-base":
        state = run / "checkpoint-4" / "trainer_state.json"
        state.write_text(json.dumps({"step": 4, "config": {"model": {"name": "org/other"}}}))
    elif setup == "no-run":
        run = tmp_path / "nothing"
        run.mkdir()
    out = tmp_path / "eval"
    capsys.readouterr()
    assert main(sweep_args(run, out, *extra)) == 2
    err = capsys.readouterr().err.strip()
    assert len(err.splitlines()) == 1 and fragment in err, err


def test_a_sweep_folder_keeps_its_settings(training_run, tmp_path, capsys):
    out = tmp_path / "eval"
    assert main(sweep_args(training_run, out, "--steps", "2")) == 0
    before = (out / "sweep.json").read_bytes()
    capsys.readouterr()
    assert main(sweep_args(training_run, out, "--temperature", "1.0")) == 2
    assert "holds a sweep with another settings" in capsys.readouterr().err
    assert (out / "sweep.json").read_bytes() == before


def test_an_unwritable_out_is_refused(training_run, tmp_path, capsys):
    blocker = tmp_path / "file"
    blocker.write_text("not a folder")
    assert main(sweep_args(training_run, blocker / "eval")) == 2
    assert "cannot write to output folder" in capsys.readouterr().err
    assert blocker.read_text() == "not a folder"


def _cli(args: list[str]) -> subprocess.Popen:
    command = [sys.executable, "-m", "prorl_eval.cli", *args]
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    return subprocess.Popen(command, stdout=subprocess.PIPE, stderr=subprocess.PIPE, env=env)


def _rows(path: Path) -> int:
    return len(path.read_text().splitlines()) if path.is_file() else 0


@pytest.mark.slow
def test_kill_9_then_rerun_duplicates_nothing_and_redoes_nothing(training_run, tmp_path):
    out = tmp_path / "eval"
    args = sweep_args(training_run, out, "--batch-size", "2")
    args[args.index("--limit") + 1] = "12"
    proc = _cli(args)
    deadline = time.monotonic() + 240
    while _rows(out / "step-2" / "samples.jsonl") < 4:
        assert proc.poll() is None, proc.stderr.read().decode()[-2000:]
        assert time.monotonic() < deadline
        time.sleep(0.02)
    proc.send_signal(signal.SIGKILL)
    proc.wait()
    base_before = (out / "base" / "samples.jsonl").read_bytes()
    partial = _rows(out / "step-2" / "samples.jsonl")
    assert 0 < partial < 2 * 12 * 2
    done = _cli(args)
    _, err = done.communicate(timeout=300)
    assert done.returncode == 0, err.decode()[-2000:]
    assert (out / "base" / "samples.jsonl").read_bytes() == base_before  # not redone
    for label in ("base", "step-2", "step-4"):
        rows = read_samples(out / label / "samples.jsonl")  # refuses duplicate keys
        assert len(rows) == 2 * 12 * 2
    missing = 2 * 12 * 2 - partial
    assert f"{missing}/{missing} samples" in err.decode()  # step-2 generated only what it lacked


@pytest.mark.slow
def test_watch_picks_up_checkpoints_as_training_writes_them(training_run, tmp_path, tiny_model_dir):
    shutil.rmtree(training_run / "checkpoint-4")
    out = tmp_path / "eval"
    proc = _cli(sweep_args(training_run, out, "--watch", "--poll", "0.2"))
    deadline = time.monotonic() + 240
    while not (out / "step-2" / "results.json").is_file():
        assert proc.poll() is None, proc.stderr.read().decode()[-2000:]
        assert time.monotonic() < deadline
        time.sleep(0.1)
    time.sleep(0.5)
    assert proc.poll() is None  # still waiting for step 4, the run's last
    add_checkpoint(training_run, 4, tiny_model_dir)
    _, err = proc.communicate(timeout=240)
    assert proc.returncode == 0, err.decode()[-2000:]
    labels = [e["label"] for e in json.loads((out / "sweep.json").read_text())["entries"]]
    assert labels == ["base", "step-2", "step-4"]
    assert "waiting for checkpoints" in err.decode()
