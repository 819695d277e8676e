"""The start-up decontamination check: exact and 13-gram counts, drop/keep/off, the threshold."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from prorl_eval.errors import UserError
from prorl_eval.tasks.registry import TaskOptions
from prorl_train.config import DataConfig, TrainConfig, ValConfig
from prorl_train.data import DataMix, Holdout
from prorl_train.decontamination import (
    COMMON_NGRAM,
    ReferenceIndex,
    decontaminate,
    normalise,
    summary_line,
    word_ngrams,
)

FIXTURES = Path(__file__).parent / "fixtures"
# A fixture evaluation task sharing deepscaler.jsonl's row 1 (same text after normalisation) and
# a 13-word run of its row 2; its third problem is unrelated.
EVAL = (
    f"custom:{FIXTURES}/train/eval_overlap.jsonl?prompt=question&answer=answer&verifier=math"
    "&id=id&domain=math"
)


def _config(**data) -> TrainConfig:
    data = {"mix": {"train:deepscaler": 1.0}, "data_dir": str(FIXTURES), **data}
    return TrainConfig(data=DataConfig(**data), val=ValConfig(every=0))


def _mix(cfg: TrainConfig) -> DataMix:
    options = TaskOptions(seed=cfg.data.data_seed, data_dir=cfg.data.data_dir)
    return DataMix(cfg.data.mix, options, seed=0, holdout=Holdout(cfg.data.holdout))


def _rows(name: str) -> list[dict]:
    lines = (FIXTURES / "train" / name).read_text().splitlines()
    return [json.loads(line) for line in lines if line.strip()]


def test_brute_force_counts_on_the_fixture_overlap():
    """Check the index against a direct pairwise comparison of every training/eval pair."""
    train = [row["problem"] for row in _rows("deepscaler.jsonl")]
    evals = [row["question"] for row in _rows("eval_overlap.jsonl")]
    exact, ngram = ReferenceIndex.build({"eval": evals}, n=13).shared(train, procedural=False)
    brute_exact = {i for i, t in enumerate(train) if normalise(t) in map(normalise, evals)}
    brute_ngram = {
        i
        for i, t in enumerate(train)
        if i not in brute_exact
        and any(word_ngrams(normalise(t), 13) & word_ngrams(normalise(e), 13) for e in evals)
    }
    assert set(exact) == brute_exact == {1}
    assert set(ngram) == brute_ngram == {2}


def test_template_ngrams_and_procedural_tasks_count_only_real_repeats():
    template = "your entire response should be in english and in all lowercase letters no capitals"
    evals = [f"Write a limerick about cats. {template}"]
    train = [f"Describe topic number {i}. {template}" for i in range(COMMON_NGRAM + 1)]
    train.append("Write a limerick about cats, please, and make it rhyme with hats somehow today")
    index = ReferenceIndex.build({"ifeval": evals}, n=13)
    assert index.shared(train, procedural=False) == ({}, {})  # template runs are ignored
    leaked = "write a limerick about cats your entire response should be in english and"
    assert index.shared([*train, leaked], procedural=False)[1] == {len(train): "ifeval"}
    assert index.shared([*train, leaked], procedural=True) == ({}, {})  # exact repeats only


def test_drop_removes_exactly_the_shared_problems_and_records_them(tmp_path):
    cfg = _config(decontaminate_tasks=EVAL, max_contaminated_share=1.0)
    mix = _mix(cfg)
    report = decontaminate(mix, cfg)
    task = report["tasks"]["train:deepscaler"]
    assert (task["problems"], task["exact"], task["ngram"]) == (5, 1, 1)
    assert sorted(task["examples"]) == ["1", "2"]
    assert [p.id for p in mix.problems["train:deepscaler"]] == ["0", "3", "4"]
    assert report["references"] == {EVAL: 3}
    line = summary_line(report)
    assert "2 of 5 training problems shared" in line and "dropped" in line
    mix.write_prompts_manifest(tmp_path)
    manifest = json.loads((tmp_path / "train_prompts.json").read_text())
    assert manifest["decontamination"]["shared"] == 2
    assert len(manifest["tasks"]["train:deepscaler"]) == 3


def test_keep_counts_without_dropping_and_off_skips():
    cfg = _config(decontaminate_tasks=EVAL, max_contaminated_share=1.0, decontaminate="keep")
    mix = _mix(cfg)
    assert decontaminate(mix, cfg)["shared"] == 2
    assert len(mix.problems["train:deepscaler"]) == 5
    cfg = _config(decontaminate_tasks=EVAL, decontaminate="off")
    assert decontaminate(_mix(cfg), cfg) == {"mode": "off"}


def test_exact_only_when_the_ngram_rule_is_off():
    cfg = _config(decontaminate_tasks=EVAL, max_contaminated_share=1.0, decontaminate_ngram=0)
    task = decontaminate(_mix(cfg), cfg)["tasks"]["train:deepscaler"]
    assert (task["exact"], task["ngram"]) == (1, 0)


def test_above_the_threshold_is_one_line_naming_the_setting():
    cfg = _config(decontaminate_tasks=EVAL)  # 2 of 5 = 40% > the default 1%
    with pytest.raises(UserError) as caught:
        decontaminate(_mix(cfg), cfg)
    message = str(caught.value)
    assert "\n" not in message
    assert "train:deepscaler shares 2 of its 5 problems (40.0%)" in message
    assert "data.max_contaminated_share=0.01" in message and "data.decontaminate=off" in message
    cfg = _config(decontaminate_tasks=EVAL, max_contaminated_share=0.4)  # 40% is not above 40%
    assert decontaminate(_mix(cfg), cfg)["shared"] == 2


def test_validation_tasks_are_references_and_the_mix_itself_is_not():
    cfg = TrainConfig(
        data=DataConfig(mix={EVAL: 1.0}, max_contaminated_share=0.0),
        val=ValConfig(every=5, tasks=""),  # validation on the training task itself
    )
    report = decontaminate(_mix(cfg), cfg)
    assert report["references"] == {} and "no validation or evaluation task" in summary_line(report)
    cfg = _config(max_contaminated_share=1.0)
    cfg = TrainConfig(data=cfg.data, val=ValConfig(every=5, tasks=EVAL, limit=1))
    assert decontaminate(_mix(cfg), cfg)["shared"] == 1  # the first eval problem only: exact


def test_gym_training_seed_repeats_are_counted_against_validation_and_holdout():
    cfg = TrainConfig(
        data=DataConfig(mix={"gym:leg_counting": 1.0}, limit=60, data_seed=0, holdout="none"),
        val=ValConfig(every=5, tasks="gym:leg_counting", limit=10, data_seed=0),
    )
    mix = _mix(cfg)
    report = decontaminate(mix, cfg)  # procedural: never refused, only dropped
    assert report["tasks"]["gym:leg_counting"]["exact"] >= 10  # the same seed: the same problems
    assert report["tasks"]["gym:leg_counting"]["ngram"] == 0


def test_bad_settings_are_one_line_errors():
    for bad, match in (
        ({"decontaminate": "maybe"}, "data.decontaminate must be drop, keep or off"),
        ({"max_contaminated_share": 1.5}, "data.max_contaminated_share must be between 0 and 1"),
        ({"decontaminate_ngram": -1}, "data.decontaminate_ngram must be >= 0"),
    ):
        with pytest.raises(UserError, match=match):
            DataConfig(**bad).validate()
