"""Whole `prorl-train` runs over two processes (torchrun, gloo on CPU) against one process:
ZeRO-2 metrics equal the one-process run's and survive a resume; ZeRO-3 generates, validates,
resets, saves whole weights and resumes. The update-level checks are in test_train_deepspeed.py.
"""

from __future__ import annotations

import os
import subprocess
import sys

import pytest
import torch

pytest.importorskip("deepspeed")

from conftest import make_config, settings, torchrun

pytestmark = pytest.mark.slow  # every test here spawns training processes


def test_two_process_zero2_run_matches_one_process_and_resumes(
    tmp_path,
    peaked_model_dir,
):
    """4 steps with 2 processes (ZeRO-2), then --resume to 6, against 6 steps in one process:
    the same metrics (validation at 2, 4 and 6 included), files written once.

    Without resets: the first update after a reset of both the reference and the optimizer
    amplifies float rounding (fresh Adam moments normalise the near-zero KL gradient), so even
    one process with another micro-batch size departs there; the reset itself is checked above.
    """
    import yaml

    from prorl_train.metrics import read_metrics
    from prorl_train.trainer import train

    data = settings(peaked_model_dir, steps=6, tensorboard=True)
    data["resets"] = {"every": 0}
    single_cfg = make_config(tmp_path, data, tmp_path / "single")[1]
    train(single_cfg)
    single = read_metrics(tmp_path / "single" / "metrics.jsonl")

    config = tmp_path / "two.yaml"
    config.write_text(yaml.safe_dump({**data, "deepspeed": {"zero_stage": 2}}))
    out = tmp_path / "two"
    launch = ["-m", "prorl_train", "--config", str(config), "--out", str(out)]
    first = torchrun(*launch, "--steps", "4")
    assert first.stderr.count("step 1/4") == 1  # status lines come from rank 0 only
    assert [row["step"] for row in read_metrics(out / "metrics.jsonl")] == [1, 2, 3, 4]
    ds_files = sorted(p.name for p in (out / "checkpoint-4" / "deepspeed" / "state").iterdir())
    assert [n for n in ds_files if "optim_states" in n] == [
        "zero_pp_rank_0_mp_rank_00_optim_states.pt",
        "zero_pp_rank_1_mp_rank_00_optim_states.pt",
    ]
    assert (out / "checkpoint-4" / "policy" / "config.json").is_file()
    torchrun(*launch, "--resume")
    rows = read_metrics(out / "metrics.jsonl")
    assert [row["step"] for row in rows] == [1, 2, 3, 4, 5, 6]
    assert (out / "config.yaml").is_file() and not list(out.glob(".checkpoint-*"))
    assert len(list((out / "tb").iterdir())) == 2  # one event file per launch, from rank 0
    assert_same_rows(rows, single)
    # one process without a launcher: DeepSpeed gets a process group of one
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    alone = subprocess.run(
        [sys.executable, *launch[:-1], str(tmp_path / "alone"), "--steps", "2"],
        capture_output=True,
        text=True,
        env=env,
        timeout=600,
    )
    assert alone.returncode == 0, alone.stderr[-4000:]
    assert_same_rows(read_metrics(tmp_path / "alone" / "metrics.jsonl"), single[:2])


def test_two_process_zero3_run_generates_validates_resets_and_saves_whole_weights(
    tmp_path,
    peaked_model_dir,
):
    """ZeRO-3 (the embedding matrix partitioned): rollouts and rank-0 validation on gathered
    weights, a reset at step 2, and a checkpoint holding whole policy and reference weights;
    the two steps match the one-process run, and the run resumes from that checkpoint (both
    models rebuilt partitioned from its folders, the optimizer partitions restored)."""
    import yaml
    from safetensors.torch import load_file

    from prorl_train.metrics import read_metrics
    from prorl_train.trainer import train

    data = settings(peaked_model_dir, steps=2, save_every=2)
    data["resets"] = {"every": 0}
    train(make_config(tmp_path, data, tmp_path / "single")[1])
    single = read_metrics(tmp_path / "single" / "metrics.jsonl")
    config = tmp_path / "three.yaml"
    data["resets"] = {"every": 2}
    config.write_text(yaml.safe_dump({**data, "deepspeed": {"zero_stage": 3}}))
    out = tmp_path / "three"
    launch = ["-m", "prorl_train", "--config", str(config), "--out", str(out)]
    torchrun(*launch)
    rows = read_metrics(out / "metrics.jsonl")
    assert [row.get("reset/event", 0) for row in rows] == [0, 1]
    assert_same_rows(rows, single, skip=("reset/",))
    base = load_file(peaked_model_dir / "model.safetensors")
    policy = load_file(out / "checkpoint-2" / "policy" / "model.safetensors")
    reference = load_file(out / "checkpoint-2" / "reference" / "model.safetensors")
    assert {k: v.shape for k, v in policy.items()} == {k: v.shape for k, v in base.items()}
    assert all(torch.equal(v, reference[k]) for k, v in policy.items())
    assert any(not torch.equal(v, base[k]) for k, v in policy.items())
    resumed = torchrun(*launch, "--resume", "--steps", "3")
    assert "resumed from" in resumed.stderr
    rows = read_metrics(out / "metrics.jsonl")
    assert [row["step"] for row in rows] == [1, 2, 3]
    # step 3's KL is to the reference reset at step 2 (read back from the checkpoint), far
    # below step 2's KL to the base model
    assert rows[2]["actor/kl_ref"] < rows[1]["actor/kl_ref"] / 4


def assert_same_rows(rows: list[dict], expected: list[dict], skip: tuple = ()) -> None:
    """Equal metrics rows (floats within rounding, timings and `skip` prefixes aside)."""
    for mine, theirs in zip(rows, expected, strict=True):
        ignore = ("time/", *skip)
        assert {k for k in mine if not k.startswith(ignore)} == {
            k for k in theirs if not k.startswith(ignore)
        }
        for key, value in theirs.items():
            if key.startswith(ignore):
                continue
            if isinstance(value, float):
                assert mine[key] == pytest.approx(value, rel=1e-3, abs=1e-6), (mine["step"], key)
            else:
                assert mine[key] == value, (mine["step"], key)
