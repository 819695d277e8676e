"""Checkpoints: atomic writes, a crash mid-save, pruning, RNG round trips, eval-loadable policy."""

from __future__ import annotations

import json
import random

import numpy as np
import pytest
import torch

from prorl_eval.checkpoints import resolve_model
from prorl_train import checkpoint as ckpt
from prorl_train.deepspeed_engine import TorchStepper


@pytest.fixture(scope="module")
def parts(tiny_model_dir):
    from transformers import AutoModelForCausalLM, AutoTokenizer

    policy = AutoModelForCausalLM.from_pretrained(tiny_model_dir, dtype=torch.float32)
    tokenizer = AutoTokenizer.from_pretrained(tiny_model_dir)
    optimizer = torch.optim.AdamW(policy.parameters(), lr=1e-3)
    policy(torch.tensor([[1, 2, 3]])).logits.mean().backward()
    optimizer.step()
    return policy, tokenizer, optimizer


def save(run_dir, step, parts, keep_last=3, reference=None, keep_every=0):
    """A checkpoint written as the trainer writes one: begin, the optimizer's stepper, the models,
    finish."""
    policy, tokenizer, optimizer = parts
    tmp = ckpt.begin_checkpoint(run_dir, step)
    TorchStepper(policy, optimizer, grad_clip=1.0).save(tmp)
    ckpt.write_models(tmp, policy=policy, tokenizer=tokenizer, reference=reference)
    state = {"data": {"drawn_total": step}}
    return ckpt.finish_checkpoint(run_dir, step, tmp, state, keep_last, keep_every)


def test_a_checkpoint_is_complete_and_evaluable(tmp_path, parts):
    from transformers import AutoModelForCausalLM

    (tmp_path / "metrics.jsonl").write_text('{"step": 1}\n')
    path = save(tmp_path, 5, parts)
    assert path == tmp_path / "checkpoint-5"
    assert ckpt.read_state(path) == {"data": {"drawn_total": 5}, "step": 5}
    assert (path / "metrics.jsonl").read_text() == '{"step": 1}\n'
    assert not (path / "reference").exists()
    assert list(tmp_path.glob(".checkpoint-*")) == []
    ref = resolve_model(str(path))  # `prorl-eval pass-at-k --model <checkpoint>` works
    assert ref.source == "checkpoint" and ref.path.endswith("policy")
    loaded = AutoModelForCausalLM.from_pretrained(ref.path, dtype=torch.float32)
    for key, value in parts[0].state_dict().items():
        assert torch.equal(value, loaded.state_dict()[key])
    fresh = torch.optim.AdamW(loaded.parameters(), lr=1e-3)
    TorchStepper(loaded, fresh, grad_clip=1.0).load(path)
    state = parts[2].state_dict()["state"]
    for index, moments in fresh.state_dict()["state"].items():
        assert torch.equal(moments["exp_avg"], state[index]["exp_avg"])


def test_a_crash_mid_save_keeps_the_previous_checkpoint(tmp_path, parts, monkeypatch):
    save(tmp_path, 2, parts)

    def crash(*args, **kwargs):
        raise OSError("disk full")

    monkeypatch.setattr(ckpt, "write_json_atomic", crash)
    with pytest.raises(OSError):
        save(tmp_path, 4, parts)
    assert ckpt.latest_checkpoint(tmp_path) == tmp_path / "checkpoint-2"
    assert not (tmp_path / "checkpoint-4").exists()
    assert ckpt.remove_stale(tmp_path) == [tmp_path / ".checkpoint-4.tmp"]
    assert list(tmp_path.glob(".checkpoint-*")) == []
    assert ckpt.read_state(tmp_path / "checkpoint-2")["step"] == 2


def test_incomplete_folders_are_not_checkpoints(tmp_path, parts):
    save(tmp_path, 1, parts)
    (tmp_path / "checkpoint-9").mkdir()  # no trainer_state.json: not complete
    (tmp_path / "checkpoint-x").mkdir()
    assert ckpt.checkpoint_dirs(tmp_path) == [(1, tmp_path / "checkpoint-1")]
    with pytest.raises(Exception, match="not a complete"):
        ckpt.read_state(tmp_path / "checkpoint-9")


def test_keep_last_prunes_oldest_and_resave_replaces(tmp_path, parts):
    for step in (1, 2, 10, 11):  # 10 sorts after 2 numerically, not as text
        save(tmp_path, step, parts, keep_last=2)
    assert [s for s, _ in ckpt.checkpoint_dirs(tmp_path)] == [10, 11]
    save(tmp_path, 11, parts, keep_last=2)
    assert [s for s, _ in ckpt.checkpoint_dirs(tmp_path)] == [10, 11]
    assert list(tmp_path.glob(".checkpoint-*")) == []


def test_milestones_survive_pruning(tmp_path, parts):
    for step in range(1, 11):
        save(tmp_path, step, parts, keep_last=2, keep_every=4)
    assert [s for s, _ in ckpt.checkpoint_dirs(tmp_path)] == [4, 8, 9, 10]
    save(tmp_path, 12, parts, keep_last=1, keep_every=4)
    assert [s for s, _ in ckpt.checkpoint_dirs(tmp_path)] == [4, 8, 12]


def test_reference_is_saved_when_given(tmp_path, parts):
    path = save(tmp_path, 3, parts, reference=parts[0])
    assert (path / "reference" / "config.json").is_file()


def test_rng_state_round_trip(tmp_path, parts):
    random.seed(1)
    np.random.seed(2)
    torch.manual_seed(3)
    path = save(tmp_path, 1, parts)
    first = (random.random(), float(np.random.rand()), float(torch.rand(1)))
    random.seed(99)
    np.random.seed(99)
    torch.manual_seed(99)
    ckpt.load_rng(path)
    assert (random.random(), float(np.random.rand()), float(torch.rand(1))) == first


def test_restore_metrics_drops_rows_after_the_checkpoint(tmp_path, parts):
    rows = [{"step": s} for s in (1, 2)]
    (tmp_path / "metrics.jsonl").write_text("".join(json.dumps(r) + "\n" for r in rows))
    path = save(tmp_path, 2, parts)
    with open(tmp_path / "metrics.jsonl", "a") as fh:
        fh.write('{"step": 3}\n{"step": 4, "half')
    ckpt.restore_metrics(path, tmp_path)
    assert (tmp_path / "metrics.jsonl").read_text().splitlines() == ['{"step": 1}', '{"step": 2}']
