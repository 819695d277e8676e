"""The training loop end to end on CPU: it learns a trivial verifiable task, and a run killed
(kill -9, during training or in the middle of a checkpoint save) or stopped with Ctrl-C resumes to
exactly the metrics of an uninterrupted run.

The model is the 2-layer random Llama of `tiny_model_dir` given a pretrained-like prior: the
embeddings of the 16 single-letter tokens A..P point along the hidden state that precedes the
response, so ~90% of first tokens are one of those letters. The task (`capital_start.jsonl`,
a `custom:` regex task: reward 1 when the response starts with A, B or C) then starts near
3/16 and RL can raise it by moving mass among the letters.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
import torch
import yaml
from conftest import CAPS, make_config, settings

pytestmark = pytest.mark.slow  # every test here spawns training processes


@pytest.fixture(autouse=True, scope="module")
def _restore_threads():
    before = torch.get_num_threads()
    yield
    torch.set_num_threads(before)


def read_rows(run: Path) -> list[dict]:
    from prorl_train.metrics import read_metrics

    return read_metrics(run / "metrics.jsonl")


def without_timing(rows: list[dict]) -> list[dict]:
    return [{k: v for k, v in row.items() if not k.startswith("time/")} for row in rows]


def test_it_learns_the_task(tmp_path, peaked_model_dir):
    from transformers import AutoModelForCausalLM

    from prorl_train.trainer import train

    data = settings(peaked_model_dir, steps=14, save_every=100, keep_every=0)
    data["val"] = {"every": 0}
    data["resets"] = {"every": 0}
    _, cfg = make_config(tmp_path, data, tmp_path / "learn")
    started = time.perf_counter()
    summary = train(cfg)
    elapsed = time.perf_counter() - started
    rows = read_rows(tmp_path / "learn")
    rewards = [row["reward/mean"] for row in rows]
    assert len(rows) == 14 and summary["step"] == 14
    assert sum(rewards[:2]) / 2 < 0.3, rewards  # starts near 3/16
    assert sum(rewards[-2:]) / 2 > 0.75, rewards  # ends high
    assert rows[-1]["actor/entropy"] < rows[0]["actor/entropy"]
    before = AutoModelForCausalLM.from_pretrained(peaked_model_dir, dtype=torch.float32)
    after = AutoModelForCausalLM.from_pretrained(summary["checkpoint"] + "/policy")
    changed = [
        k for k, v in after.state_dict().items() if not torch.equal(v, before.state_dict()[k])
    ]
    assert len(changed) > 5
    print(f"14 steps in {elapsed:.1f}s; rewards {[round(r, 2) for r in rewards]}")


@pytest.fixture(scope="module")
def straight_run(tmp_path_factory, peaked_model_dir):
    """The uninterrupted reference run and its settings. It runs through the CLI in a fresh
    process like the interrupted runs it is compared with: the test process has run other
    engines and may hold state that changes float rounding."""
    folder = tmp_path_factory.mktemp("straight")
    data = settings(peaked_model_dir)
    config, _ = make_config(folder, data, folder / "run")
    done = cli(config, folder / "run")
    _, err = done.communicate(timeout=300)
    assert done.returncode == 0, err
    return data, read_rows(folder / "run"), folder / "run"


def test_weights_live_in_aligned_memory_whether_loaded_from_the_base_or_a_checkpoint(
    tmp_path, straight_run
):
    """Safetensors maps tensors at header-dependent offsets; MKL's float32 GEMM rounds
    differently by alignment on some CPUs, so a resumed run could drift from the straight one
    in the last bits unless every weight is copied into PyTorch's 64-byte-aligned memory."""
    from prorl_train.checkpoint import read_state
    from prorl_train.policy_models import load_models

    data, _, run = straight_run
    _, cfg = make_config(tmp_path, data, tmp_path / "aligned")
    checkpoint = run / "checkpoint-4"
    for source, state in ((None, {}), (checkpoint, read_state(checkpoint))):
        models = load_models(cfg, source, state)
        for model in (models.policy, models.reference):
            offsets = {p.data_ptr() % 64 for p in model.parameters()}
            assert offsets == {0}, (source, offsets)
        policy = models.policy
        assert policy.get_output_embeddings().weight is policy.get_input_embeddings().weight


def test_the_reference_run_exercises_validation_resets_and_checkpoints(straight_run):
    _, rows, run = straight_run
    assert [row["step"] for row in rows] == [1, 2, 3, 4, 5, 6]
    assert [("val/pass@1" in row) for row in rows] == [False, True, False, True, False, True]
    assert [row.get("reset/event", 0) for row in rows] == [0, 0, 0, 1, 0, 0]
    assert sorted(p.name for p in run.glob("checkpoint-*")) == [
        "checkpoint-2",
        "checkpoint-4",
        "checkpoint-6",
    ]
    assert (run / "val" / "step-2" / "results.json").is_file()
    manifest = json.loads((run / "train_prompts.json").read_text())
    assert len(manifest["tasks"][CAPS]) == 8  # the 8 prompts of capital_start.jsonl, hashed
    for key in (
        "reward/mean",
        "reward/custom",
        "reward/accuracy",
        "actor/entropy",
        "actor/kl_ref",
        "actor/clip_frac_low",
        "actor/clip_frac_high",
        "actor/ratio_mean",
        "actor/grad_norm",
        "actor/lr",
        "rollout/response_len_mean",
        "rollout/response_len_max",
        "rollout/truncated_share",
        "rollout/filtered_share",
        "time/rollout_s",
        "time/score_s",
        "time/update_s",
    ):
        assert key in rows[0], key


# `prorl-train` whose save of step 4 pauses after rng.pt, before the state file and the rename,
# so a test can kill it mid-save.
PAUSE_IN_SAVE_4 = """
import runpy, time
from prorl_train import checkpoint
write = checkpoint.write_json_atomic
def paused(path, *args, **kwargs):
    if path.name == checkpoint.STATE_FILE and path.parent.name == ".checkpoint-4.tmp":
        time.sleep(60)
    return write(path, *args, **kwargs)
checkpoint.write_json_atomic = paused
runpy.run_module("prorl_train.cli", run_name="__main__", alter_sys=True)
"""


def cli(config: Path, out: Path, *extra: str, driver: str | None = None) -> subprocess.Popen:
    environ = {**os.environ, "PYTHONUNBUFFERED": "1", "OMP_NUM_THREADS": "1"}
    start = ["-c", driver] if driver else ["-m", "prorl_train.cli"]
    command = [sys.executable, *start, "--config", str(config), "--out", str(out)]
    return subprocess.Popen(
        [*command, *extra],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        env=environ,
    )


def wait_for(condition, proc: subprocess.Popen, timeout: float = 120) -> None:
    deadline = time.monotonic() + timeout
    while not condition():
        if proc.poll() is not None:
            raise AssertionError(f"exited early ({proc.returncode}): {proc.stderr.read()}")
        if time.monotonic() > deadline:
            proc.kill()
            raise AssertionError("timed out waiting")
        time.sleep(0.05)


def resume_and_compare(config: Path, out: Path, straight_rows: list[dict]) -> str:
    done = cli(config, out, "--resume")
    _, err = done.communicate(timeout=300)
    assert done.returncode == 0, err
    assert without_timing(read_rows(out)) == without_timing(straight_rows)
    assert list(out.glob(".checkpoint-*")) == []
    return err


def test_kill_9_mid_training_then_resume_matches(tmp_path, straight_run):
    data, straight_rows, _ = straight_run
    config = tmp_path / "c.yaml"
    config.write_text(yaml.safe_dump(data))
    out = tmp_path / "run"
    proc = cli(config, out)
    wait_for(lambda: len(read_rows(out)) >= 3, proc)  # step 3 logged; checkpoint-2 on disk
    proc.send_signal(signal.SIGKILL)
    proc.wait()
    assert (out / "checkpoint-2").is_dir()
    err = resume_and_compare(config, out, straight_rows)
    assert "resumed from" in err


def test_kill_9_during_a_checkpoint_save_then_resume_matches(tmp_path, straight_run):
    data, straight_rows, _ = straight_run
    config = tmp_path / "c.yaml"
    config.write_text(yaml.safe_dump(data))
    out = tmp_path / "run"
    proc = cli(config, out, driver=PAUSE_IN_SAVE_4)
    wait_for(lambda: (out / ".checkpoint-4.tmp" / "rng.pt").is_file(), proc)
    proc.send_signal(signal.SIGKILL)
    proc.wait()
    # the half-written checkpoint is not a checkpoint; the previous one is intact
    from prorl_train.checkpoint import latest_checkpoint, read_state

    assert latest_checkpoint(out) == out / "checkpoint-2"
    assert read_state(out / "checkpoint-2")["step"] == 2
    assert len(read_rows(out)) == 4  # step 4 was logged before its save began
    resume_and_compare(config, out, straight_rows)


def test_ctrl_c_saves_and_exits_130_then_resume_matches(tmp_path, straight_run):
    data, straight_rows, _ = straight_run
    config = tmp_path / "c.yaml"
    config.write_text(yaml.safe_dump(data))
    out = tmp_path / "run"
    proc = cli(config, out)
    wait_for(lambda: len(read_rows(out)) >= 1, proc)
    proc.send_signal(signal.SIGINT)
    _, err = proc.communicate(timeout=120)
    assert proc.returncode == 130, err
    assert "interrupted" in err and "Traceback" not in err
    from prorl_train.checkpoint import latest_checkpoint, read_state

    saved = latest_checkpoint(out)
    assert saved is not None
    step = read_state(saved)["step"]
    assert step >= 1 and len(read_rows(out)) == step  # the checkpoint holds every logged row
    resume_and_compare(config, out, straight_rows)


def test_user_errors_are_one_line_exit_2(tmp_path, straight_run, capsys):
    from prorl_train.cli import main

    _, _, run = straight_run
    assert main(["--preset", "cpu-smoke", "--out", str(tmp_path / "x"), "--set", "rollout.n=1"])
    assert capsys.readouterr().err.count("\n") == 1
    code = main(["--preset", "cpu-smoke", "--out", str(run)])  # a run is already there
    err = capsys.readouterr().err
    assert code == 2 and "--resume" in err and err.startswith("error:")
    assert main(["--preset", "nope", "--out", str(tmp_path / "y")]) == 2
    assert "unknown preset" in capsys.readouterr().err
