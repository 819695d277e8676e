"""The trainer's config: layering (preset ← YAML ← --set), types, validation errors, presets."""

from __future__ import annotations

import pytest

from prorl_eval.errors import UserError
from prorl_eval.inference.vllm import vllm_available
from prorl_train.config import SECTIONS, TrainConfig, config_to_yaml, field_help, load_config
from prorl_train.dictconfig import parse_override
from prorl_train.presets import PRESETS


def test_every_field_has_help_text():
    rows = field_help()
    assert len(rows) > 50
    missing = [name for name, _, text in rows if not text.strip()]
    assert missing == []
    names = [name for name, _, _ in rows]
    assert "optim.lr" in names and "rollout.length_schedule" in names


def _validate_preset(cfg: TrainConfig) -> None:
    """Validate a preset; where vLLM is not installed (the GPU set checked on CPU), a preset that
    rolls out on vLLM must be refused for exactly that reason."""
    if cfg.rollout.backend == "vllm" and not vllm_available():
        with pytest.raises(UserError, match=r"rollout.backend=vllm needs vLLM"):
            cfg.validate()
    else:
        cfg.validate()


def test_paper_preset_holds_the_papers_settings():
    cfg = load_config("prorl-paper", out="runs/p")
    _validate_preset(cfg)
    assert (cfg.rollout.n, cfg.rollout.temperature, cfg.batch_size) == (16, 1.2, 256)
    assert cfg.batch_size // cfg.loss.mini_batch_size == 4  # 4 updates per step
    assert cfg.optim.lr == 2e-6
    assert (cfg.loss.clip_low, cfg.loss.clip_high) == (0.2, 0.4)
    assert (cfg.loss.kl_beta, cfg.loss.kl_estimator, cfg.loss.aggregation) == (
        1e-4,
        "k3",
        "token-mean",
    )
    assert cfg.rollout.dynamic_sampling is True
    assert cfg.resets.every > 0
    # milestones survive pruning: an intermediate and the final checkpoint to compare
    assert cfg.keep_every == 500 and cfg.steps % cfg.keep_every == 0
    # 8k budget, then 16k for the last ~200 steps
    assert cfg.rollout.max_new_tokens(1) == 8192
    assert cfg.rollout.max_new_tokens(cfg.steps - 201) == 8192
    assert cfg.rollout.max_new_tokens(cfg.steps) == 16384


@pytest.mark.parametrize("name", sorted(PRESETS))
def test_presets_validate(name):
    _validate_preset(load_config(name, out="runs/x"))


@pytest.mark.parametrize(
    ("override", "getter", "expected"),
    [
        ("optim.lr=1e-5", lambda c: c.optim.lr, 1e-5),  # YAML reads 1e-5 as a string
        ("optim.lr=3", lambda c: c.optim.lr, 3.0),  # int → float
        ("steps=7", lambda c: c.steps, 7),
        ("tensorboard=false", lambda c: c.tensorboard, False),
        ("val.limit=null", lambda c: c.val.limit, None),
        ("val.limit=5", lambda c: c.val.limit, 5),
        ("model.name=./some/folder", lambda c: c.model.name, "./some/folder"),
        ("rollout.system_prompt=Be brief.", lambda c: c.rollout.system_prompt, "Be brief."),
        (
            "rollout.length_schedule=[[1,64],[5,128]]",
            lambda c: c.rollout.length_schedule,
            [[1, 64], [5, 128]],
        ),
        (
            "data.mix={gym:leg_counting: 2}",
            lambda c: c.data.mix,
            {"gym:leg_counting": 2.0},
        ),
        # a key inside a dict field is added to it (the preset's task stays)
        (
            "data.mix.gym:leg_counting=0.5",
            lambda c: c.data.mix,
            {**PRESETS["cpu-smoke"]["data"]["mix"], "gym:leg_counting": 0.5},
        ),
        # dots inside the task name belong to the key
        (
            "data.mix.custom:a.jsonl?prompt=p&answer=a=1",
            lambda c: c.data.mix["custom:a.jsonl?prompt=p&answer=a"],
            1.0,
        ),
    ],
)
def test_overrides(override, getter, expected):
    cfg = load_config("cpu-smoke", overrides=[override], out="runs/x")
    assert getter(cfg) == expected


def test_layers_apply_in_order(tmp_path):
    path = tmp_path / "c.yaml"
    path.write_text("steps: 11\noptim:\n  lr: 0.5\nrollout:\n  n: 6\n")
    cfg = load_config("cpu-smoke", path, ["optim.lr=0.25"], out="o", seed=9)
    assert cfg.steps == 11  # file over preset
    assert cfg.optim.lr == 0.25  # --set over file
    assert cfg.rollout.n == 6
    assert cfg.rollout.temperature == PRESETS["cpu-smoke"]["rollout"]["temperature"]  # kept
    assert cfg.seed == 9 and cfg.out == "o"  # explicit options last
    assert cfg.model.name == "smollm2-135m-instruct"


def test_yaml_round_trip(tmp_path):
    cfg = load_config("prorl-paper", overrides=["val.limit=null"], out="runs/p")
    path = tmp_path / "dump.yaml"
    path.write_text(config_to_yaml(cfg))
    assert load_config(None, path) == cfg


@pytest.mark.parametrize(
    ("overrides", "fragment"),
    [
        (["optim.lrr=1"], "Did you mean 'lr'"),
        (["optimiser.lr=1"], "unknown config key 'optimiser'"),
        (["steps=abc"], "steps='abc' is not a valid int"),
        (["steps=1.5"], "not a valid int"),
        (["tensorboard=maybe"], "not a valid bool"),
        (["optim=3"], "must be a mapping"),
        (["nonsense"], "--set expects key=value"),
        (["rollout.length_schedule=[[1,2,3]]"], "length_schedule must be"),
    ],
)
def test_bad_overrides_are_one_line_user_errors(overrides, fragment):
    with pytest.raises(UserError, match=None) as info:
        load_config("cpu-smoke", overrides=overrides, out="o").validate()
    assert fragment in str(info.value)
    assert "\n" not in str(info.value)


@pytest.mark.parametrize(
    ("overrides", "fragment"),
    [
        (["rollout.n=1"], "rollout.n must be >= 2"),
        (["loss.clip_low=1.0"], "clip_low"),
        (["loss.kl_beta=-1"], "kl_beta"),
        (["loss.advantage=ppo"], "loss.advantage 'ppo' is unknown"),
        (["loss.kl_estimator=k9"], "k9"),
        (["loss.aggregation=sum"], "aggregation"),
        (["rollout.length_schedule=[[0,64]]"], "must start at 1"),
        (["rollout.length_schedule=[[1,64],[1,128]]"], "increase"),
        (["rollout.length_schedule=[[1,0]]"], "budgets must be positive"),
        (["rollout.overlong=drop"], "overlong"),
        (["rollout.backend=tgi"], "rollout.backend 'tgi' is unknown"),
        (["loss.mini_batch_size=8", "batch_size=4"], "exceeds batch_size"),
        (["resets.on_plateau=true", "val.every=0"], "needs validation"),
        (["resets.metric=loss"], "resets.metric"),
        (["data.mix={}"], "data.mix is empty"),
        (["data.mix={gym:x: 0}"], "must be positive"),
        (["rollout.filter_criterion=entropy"], "filter_criterion"),
        (["model.dtype=int8"], "model.dtype"),
        (["save_every=2", "keep_every=3"], "keep_every (3) must be 0 or a multiple of save_every"),
    ],
)
def test_invalid_values(overrides, fragment):
    with pytest.raises(UserError) as info:
        load_config("cpu-smoke", overrides=overrides, out="o").validate()
    assert fragment in str(info.value)


def test_missing_out_file_and_preset():
    with pytest.raises(UserError, match="--out"):
        load_config("cpu-smoke").validate()
    with pytest.raises(UserError, match="unknown preset 'fast'"):
        load_config("fast")
    with pytest.raises(UserError, match="does not exist"):
        load_config(None, "/no/such/file.yaml")


def test_bad_yaml_file(tmp_path):
    path = tmp_path / "bad.yaml"
    path.write_text("steps: [1,\n")
    with pytest.raises(UserError, match="not valid YAML"):
        load_config(None, path)
    path.write_text("- a\n- b\n")
    with pytest.raises(UserError, match="mapping"):
        load_config(None, path)


@pytest.mark.parametrize(
    ("schedule", "step", "expected"),
    [
        ([[1, 64]], 1, 64),
        ([[1, 64]], 1000, 64),
        ([[1, 64], [5, 128]], 4, 64),
        ([[1, 64], [5, 128]], 5, 128),
        ([[1, 64], [5, 128], [9, 32]], 8, 128),
        ([[1, 64], [5, 128], [9, 32]], 9, 32),
    ],
)
def test_length_schedule(schedule, step, expected):
    cfg = load_config(None, overrides=[f"rollout.length_schedule={schedule}"], out="o")
    assert cfg.rollout.max_new_tokens(step) == expected


@pytest.mark.parametrize(
    ("warmup", "step", "expected"),
    [(0, 1, 1.0), (0, 50, 1.0), (4, 1, 0.25), (4, 2, 0.5), (4, 4, 1.0), (4, 5, 1.0)],
)
def test_warmup(warmup, step, expected):
    cfg = load_config(None, overrides=[f"optim.warmup_steps={warmup}", "optim.lr=1"], out="o")
    assert cfg.optim.lr_at(step) == pytest.approx(expected)


def test_parse_override_nesting():
    assert parse_override("a.b=3", SECTIONS) == {"a": {"b": 3}}
    assert parse_override("data.mix.gym:x.y=2", SECTIONS) == {"data": {"mix": {"gym:x.y": 2}}}
    assert parse_override("out=", SECTIONS) == {"out": ""}


def test_defaults_are_independent_copies():
    a, b = TrainConfig(), TrainConfig()
    a.data.mix["x"] = 1.0
    assert "x" not in b.data.mix


def test_resume_reports_changed_settings_but_not_harmless_ones():
    from prorl_train.trainer import config_changes

    old = load_config("cpu-smoke", out="a").to_dict()
    same_recipe = load_config("cpu-smoke", overrides=["steps=50", "keep_last=9"], out="b")
    assert config_changes(old, same_recipe.to_dict()) == []
    new = load_config("cpu-smoke", overrides=["optim.lr=1e-6", "data.mix={x: 1}"], out="a")
    changes = config_changes(old, new.to_dict())
    assert len(changes) == 2
    assert any(c.startswith("optim.lr: 3e-06 -> 1e-06") for c in changes)
    assert any(c.startswith("data.mix:") for c in changes)


def test_resume_without_a_checkpoint_says_it_starts_a_new_run(tmp_path, capsys, monkeypatch):
    """A job script's first launch passes --resume too: it starts a new run, saying so in one
    line before the model loads (here the model load is where the test stops)."""
    from prorl_train import trainer
    from prorl_train.cli import main

    def stop(*args, **kwargs):
        raise UserError("model load reached")

    monkeypatch.setattr(trainer.Trainer, "__init__", stop)
    out = tmp_path / "run"
    assert main(["--preset", "cpu-smoke", "--out", str(out), "--resume"]) == 2
    err = capsys.readouterr().err
    assert f"--resume: no checkpoint in {out} yet; starting a new run there." in err
    assert err.index("--resume: no checkpoint") < err.index("model load reached")
    assert main(["--preset", "cpu-smoke", "--out", str(tmp_path / "fresh")]) == 2
    assert "no checkpoint" not in capsys.readouterr().err
