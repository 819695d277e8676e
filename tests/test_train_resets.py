"""Resets: the plateau detector, the three triggers, what a reset does, and resets inside a run."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import torch

from prorl_train.config import ResetConfig, load_config
from prorl_train.resets import PlateauDetector, ResetManager

FIXTURES = Path(__file__).parent / "fixtures" / "train"
# reward 1 when the response starts with a space (~65% of tokens): a random tiny model gets mixed
# groups, so updates move the policy
VOWEL = (
    f"custom:{FIXTURES}/capital_start.jsonl?prompt=prompt&answer=loose&verifier=regex&id=id"
    "&instruction=none"
)


@pytest.fixture(autouse=True, scope="module")
def _one_thread():
    before = torch.get_num_threads()
    torch.set_num_threads(1)  # tiny models: threads only add contention
    yield
    torch.set_num_threads(before)


@pytest.mark.parametrize(
    ("values", "patience", "min_delta", "fires"),
    [
        ([0.5, 0.6, 0.6, 0.55], 2, 0.0, [3]),  # stagnation, then degradation
        ([0.1, 0.2, 0.3, 0.4, 0.5], 1, 0.0, []),  # steady improvement never fires
        ([0.5, 0.4, 0.3, 0.2], 1, 0.0, [1, 2, 3]),  # restarts from the current value
        ([0.5, 0.4, 0.3, 0.2], 2, 0.0, [2]),
        ([0.5, 0.505, 0.51, 0.515], 2, 0.01, [2]),  # gains below min_delta count as none
        ([0.5, 0.52, 0.54, 0.56], 2, 0.01, []),
        ([0.3, 0.3, 0.3, 0.3, 0.3, 0.3], 3, 0.0, [3]),  # the first value sets the baseline
    ],
)
def test_plateau_detector(values, patience, min_delta, fires):
    detector = PlateauDetector(patience, min_delta)
    assert [i for i, v in enumerate(values) if detector.update(v)] == fires


def test_plateau_state_round_trips():
    a = PlateauDetector(3)
    for v in (0.4, 0.5, 0.45):
        a.update(v)
    b = PlateauDetector(3)
    b.load_state_dict(json.loads(json.dumps(a.state_dict())))
    assert [a.update(v) for v in (0.3, 0.2)] == [b.update(v) for v in (0.3, 0.2)] == [False, True]


def test_schedule_and_file_triggers(tmp_path):
    manager = ResetManager(ResetConfig(every=3), tmp_path)
    assert [s for s in range(1, 10) if manager.triggers(s, None)[0]] == [3, 6, 9]
    (tmp_path / "RESET").write_text("entropy collapsed\n")
    fired, detail = manager.triggers(4, None)
    assert fired == ["file"] and detail == {"note": "entropy collapsed"}
    assert not (tmp_path / "RESET").exists()
    assert (tmp_path / "RESET.consumed-4").read_text() == "entropy collapsed\n"
    assert manager.triggers(5, None)[0] == []  # consumed: fires once
    (tmp_path / "RESET").touch()
    assert manager.triggers(6, None)[0] == ["schedule", "file"]
    off = ResetManager(ResetConfig(file_trigger=""), tmp_path)
    (tmp_path / "RESET").touch()
    assert off.triggers(1, None)[0] == []


def test_plateau_trigger_needs_the_watched_metric(tmp_path):
    manager = ResetManager(ResetConfig(on_plateau=True, patience=1, metric="val/reward"), tmp_path)
    assert manager.triggers(1, {"val/reward": 0.5})[0] == []
    assert manager.triggers(2, None)[0] == []  # no validation this step: no update
    assert manager.triggers(3, {"val/pass@1": 0.1})[0] == []  # not the watched metric
    fired, detail = manager.triggers(4, {"val/reward": 0.4})
    assert fired == ["plateau"]
    assert detail == {"metric": "val/reward", "value": 0.4, "best": 0.5}


def test_a_reset_copies_the_policy_and_clears_the_optimizer(tiny_model_dir, tmp_path):
    from transformers import AutoModelForCausalLM

    policy = AutoModelForCausalLM.from_pretrained(tiny_model_dir, dtype=torch.float32)
    reference = AutoModelForCausalLM.from_pretrained(tiny_model_dir, dtype=torch.float32)
    optimizer = torch.optim.AdamW(policy.parameters(), lr=1e-2)
    loss = policy(torch.tensor([[1, 2, 3]])).logits.square().mean()
    loss.backward()
    optimizer.step()
    assert len(optimizer.state) > 0
    ref_state = reference.state_dict()
    assert any(not torch.equal(v, ref_state[k]) for k, v in policy.state_dict().items())
    manager = ResetManager(ResetConfig(), tmp_path)
    event = manager.apply(7, ["file"], {"note": "x"}, policy, reference, optimizer)
    assert event.reset == ["reference", "optimizer"]
    for key, value in policy.state_dict().items():
        assert torch.equal(value, reference.state_dict()[key])
    assert len(optimizer.state) == 0
    # the reference is a copy, not an alias
    with torch.no_grad():
        next(policy.parameters()).add_(1.0)
    assert not torch.equal(next(policy.parameters()), next(reference.parameters()))
    # the optimizer works again from fresh moments
    policy(torch.tensor([[1, 2]])).logits.mean().backward()
    optimizer.step()
    assert all(int(s["step"]) == 1 for s in optimizer.state.values())
    rows = [json.loads(line) for line in (tmp_path / "resets.jsonl").read_text().splitlines()]
    assert rows[0]["step"] == 7 and rows[0]["triggers"] == ["file"]
    assert rows[0]["reset"] == ["reference", "optimizer"] and rows[0]["detail"] == {"note": "x"}
    # without a reference (kl_beta = 0) only the optimizer is reset
    assert manager.apply(8, ["schedule"], {}, policy, None, optimizer).reset == ["optimizer"]


def small_run(tmp_path, model_dir, *overrides: str):
    return load_config(
        None,
        overrides=[
            f"model.name={model_dir}",
            "model.cpu_threads=1",
            f"data.mix={{'{VOWEL}': 1.0}}",
            "batch_size=2",
            "rollout.n=2",
            "rollout.length_schedule=[[1,2]]",
            "rollout.dynamic_sampling=false",
            "rollout.overlong=keep",
            "rollout.temperature=1.0",
            "loss.mini_batch_size=2",
            "loss.kl_beta=0.01",
            "optim.lr=1e-3",
            "save_every=100",
            "tensorboard=false",
            *overrides,
        ],
        out=str(tmp_path / "run"),
    )


def test_plateau_and_file_resets_inside_a_run(tmp_path, tiny_model_dir, monkeypatch):
    """A constructed validation curve (0.5, 0.6, 0.6, 0.55) plateaus at the 4th validation."""
    import prorl_train.validation as validation
    from prorl_train.trainer import Trainer

    curve = iter([0.5, 0.6, 0.6, 0.55, 0.7])
    calls = []

    def fake_validation(policy, tokenizer, cfg, step):
        calls.append(step)
        return {"val/pass@1": next(curve), "val/reward": 0.0}

    monkeypatch.setattr(validation, "run_validation", fake_validation)
    cfg = small_run(
        tmp_path,
        tiny_model_dir,
        "steps=8",
        "val.every=2",
        "resets.on_plateau=true",
        "resets.patience=2",
    )
    trainer = Trainer(cfg)
    run_dir = Path(cfg.out)
    seen = []

    def on_step(row):
        seen.append(row)
        if row["step"] == 2:
            (run_dir / "RESET").write_text("by hand")
        if row["step"] in (3, 8):
            for key, value in trainer.models.policy.state_dict().items():
                assert torch.equal(value, trainer.models.reference.state_dict()[key])
            assert len(trainer.models.optimizer.state) == 0

    trainer.run(on_step=on_step)
    assert calls == [2, 4, 6, 8]
    events = [json.loads(line) for line in (run_dir / "resets.jsonl").read_text().splitlines()]
    assert [(e["step"], e["triggers"]) for e in events] == [(3, ["file"]), (8, ["plateau"])]
    assert events[0]["detail"] == {"note": "by hand"}
    assert events[1]["detail"] == {"metric": "val/pass@1", "value": 0.55, "best": 0.6}
    assert [r.get("reset/event", 0) for r in seen] == [0, 0, 1, 0, 0, 0, 0, 1]
    assert [r["reset/count"] for r in seen] == [0, 0, 1, 1, 1, 1, 1, 2]
    # between resets the policy drifts from the reference again
    assert any(0 < row["reward/mean"] < 1 for row in seen)
    assert seen[3]["actor/kl_ref"] <= 1e-6  # the first update after the reset starts at the ref
    assert seen[4]["actor/kl_ref"] > 0
    # the reference now differs from the base model, so the checkpoint keeps it
    assert (run_dir / "checkpoint-8" / "reference" / "config.json").is_file()
