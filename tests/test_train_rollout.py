"""Rollouts: sampling on the live policy, verifier rewards, overlong handling, dynamic sampling."""

from __future__ import annotations

import math
from pathlib import Path

import pytest
import torch

from prorl_eval.inference.base import SamplingConfig, render_prompt
from prorl_eval.inference.hf import completion_of
from prorl_eval.scoring import Scorer
from prorl_eval.tasks.registry import TaskOptions
from prorl_train.config import load_config
from prorl_train.data import DataMix
from prorl_train.rollout import HFRolloutEngine, collect_rollouts, generate_and_score

FIXTURES = Path(__file__).parent / "fixtures" / "train"
CAPS = (
    f"custom:{FIXTURES}/capital_start.jsonl?prompt=prompt&answer=pattern&verifier=regex&id=id"
    "&instruction=none"
)


@pytest.fixture(autouse=True, scope="module")
def _one_thread():
    before = torch.get_num_threads()
    torch.set_num_threads(1)  # tiny models: a second thread only adds contention
    yield
    torch.set_num_threads(before)


@pytest.fixture(scope="module")
def tokenizer(tiny_model_dir):
    from transformers import AutoTokenizer

    return AutoTokenizer.from_pretrained(tiny_model_dir)


@pytest.fixture(scope="module")
def engine(tiny_model_dir, tokenizer):
    import torch
    from transformers import AutoModelForCausalLM

    model = AutoModelForCausalLM.from_pretrained(tiny_model_dir, dtype=torch.float32)
    return HFRolloutEngine(model, tokenizer, batch_size=5)


def test_hf_engine_samples_n_per_prompt_reproducibly(engine, tokenizer):
    sampling = SamplingConfig(temperature=1.0, top_p=1.0, max_new_tokens=6)
    prompts = [render_prompt(tokenizer, p, sampling) for p in ("Hi", "What is 2+2?", "Go")]
    first = engine.sample(prompts, 3, seed=11, sampling=sampling)
    assert [len(group) for group in first] == [3, 3, 3]
    assert first == engine.sample(prompts, 3, seed=11, sampling=sampling)
    assert first != engine.sample(prompts, 3, seed=12, sampling=sampling)
    for group in first:
        for sample in group:
            assert 1 <= len(sample.token_ids) <= 6
            ends_with_eos = sample.token_ids[-1] in engine.eos_ids
            assert sample.truncated == (not ends_with_eos)
            assert sample.truncated == (len(sample.token_ids) == 6) or ends_with_eos
            assert not any(t in engine.eos_ids for t in sample.token_ids[:-1])
    for mode in (True, False):  # sampling runs in eval mode and restores the caller's mode
        engine.model.train(mode)
        engine.sample(prompts[:1], 1, seed=0, sampling=sampling)
        assert engine.model.training is mode


class ScriptedEngine:
    """Answers by prompt: 'right' (every sample starts with A), 'wrong', or 'mixed' (half)."""

    def __init__(self, tokenizer, plan: dict[str, str], truncate: bool = False) -> None:
        self.tokenizer = tokenizer
        self.plan = plan
        self.truncate = truncate
        self.calls: list[int] = []
        self.eos = tokenizer.eos_token_id

    def sync_weights(self, policy) -> None:
        pass

    def sample(self, prompts, n, seed, sampling):
        self.calls.append(len(prompts))
        out = []
        for ids in prompts:
            text = self.tokenizer.decode(ids)
            kind = next(v for k, v in self.plan.items() if k in text)
            group = []
            for j in range(n):
                good = kind == "right" or (kind == "mixed" and j % 2 == 0)
                tokens = self.tokenizer("Apple" if good else "zebra", add_special_tokens=False)
                ids_out = list(tokens["input_ids"])
                if not self.truncate:
                    ids_out.append(self.eos)
                group.append(completion_of(self.tokenizer, ids_out, {self.eos}))
            out.append(group)
        return out


PLAN = {
    "Say something.": "right",
    "Write a word.": "wrong",
    "Name a thing.": "mixed",
    "Give me a word.": "mixed",
    "Speak.": "right",
    "Answer now.": "mixed",
    "Reply briefly.": "wrong",
    "One word please.": "mixed",
}


def cfg_for(tmp_path, *overrides: str):
    return load_config(
        None,
        overrides=[
            f"data.mix={{'{CAPS}': 1.0}}",
            "batch_size=3",
            "rollout.n=4",
            "rollout.length_schedule=[[1,8]]",
            *overrides,
        ],
        out=str(tmp_path),
    )


def run_collect(tokenizer, cfg, truncate=False):
    mix = DataMix(cfg.data.mix, TaskOptions(), cfg.seed)
    engine = ScriptedEngine(tokenizer, PLAN, truncate)
    with Scorer({mix.names[0]: TaskOptions()}, tasks=mix.tasks) as scorer:
        kept, generated, stats = collect_rollouts(engine, mix, scorer, tokenizer, cfg, step=1)
    return mix, engine, kept, generated, stats


def expected_kinds(cfg, count):
    twin = DataMix(cfg.data.mix, TaskOptions(), cfg.seed)
    return [PLAN[item.problem.question] for item in twin.draw(count)]


def test_dynamic_sampling_refills_with_bounded_rounds(tmp_path, tokenizer):
    cfg = cfg_for(tmp_path, "rollout.max_extra_rounds=5")
    mix, engine, kept, generated, stats = run_collect(tokenizer, cfg)
    # simulate the refill by hand on the same stream: round 0 draws the batch, a refill round
    # the missing groups divided by the share of groups kept so far (at least 1/8)
    kinds = expected_kinds(cfg, 40)
    pos, kept_groups, rounds, calls, dropped, informative = 0, 0, 0, [], 0, 0
    while kept_groups < 3 and rounds <= 5:
        need = 3 - kept_groups
        if rounds:
            need = math.ceil(need / max(informative / pos, 1 / 8))
        batch = kinds[pos : pos + need]
        pos += need
        calls.append(need)
        mixed = sum(k == "mixed" for k in batch)
        informative += mixed
        kept_groups += min(mixed, 3 - kept_groups)
        dropped += need - mixed
        rounds += 1
    assert engine.calls == calls
    assert kept.num_groups == kept_groups == 3
    assert len(kept) == 12 and len(generated) == 4 * pos
    assert stats["rollout/rounds"] == rounds
    assert stats["rollout/filtered_share"] == pytest.approx(dropped / pos)
    # every kept group has both outcomes; rewards are the verifier's scores
    for g in set(kept.group_ids):
        rewards = [r for r, gid in zip(kept.rewards, kept.group_ids, strict=True) if gid == g]
        assert sorted(rewards) == [0.0, 0.0, 1.0, 1.0]
    assert mix.state_dict()["drawn_total"] == pos


def test_round_limit_and_no_filtering(tmp_path, tokenizer):
    cfg = cfg_for(tmp_path, "rollout.max_extra_rounds=0")
    _, engine, kept, generated, stats = run_collect(tokenizer, cfg)
    kinds = expected_kinds(cfg, 3)
    assert engine.calls == [3]
    assert kept.num_groups == sum(k == "mixed" for k in kinds)
    cfg = cfg_for(tmp_path, "rollout.dynamic_sampling=false")
    _, engine, kept, generated, stats = run_collect(tokenizer, cfg)
    assert engine.calls == [3] and len(kept) == len(generated) == 12
    assert stats["rollout/filtered_share"] == 0.0


@pytest.mark.parametrize(
    ("overlong", "reward", "in_loss"),
    [("keep", 1.0, True), ("zero", 0.0, True), ("mask", 1.0, False), ("soft", 0.0, True)],
)
def test_overlong_handling(tmp_path, tokenizer, overlong, reward, in_loss):
    """soft: a right answer cut at max_new_tokens keeps correct=True but pays the full DAPO
    penalty (1.0 at the budget), so its reward is 1 - 1 = 0."""
    extra = ["rollout.overlong_buffer=4"] if overlong == "soft" else []
    cfg = cfg_for(tmp_path, f"rollout.overlong={overlong}", *extra)
    mix = DataMix(cfg.data.mix, TaskOptions(), 0)
    items = [i for i in mix.draw(8) if PLAN[i.problem.question] == "right"][:1]
    engine = ScriptedEngine(tokenizer, PLAN, truncate=True)
    timing = {"rollout_s": 0.0, "score_s": 0.0}
    sampling = SamplingConfig(max_new_tokens=8)
    with Scorer({mix.names[0]: TaskOptions()}, tasks=mix.tasks) as scorer:
        out = generate_and_score(
            engine, items, scorer, tokenizer, sampling, 2, 0, cfg.rollout, timing
        )
    assert out.truncated == [True, True]
    assert out.correct == [overlong != "zero"] * 2  # soft keeps the verifier's verdict
    assert out.rewards == [reward, reward]
    assert out.loss_mask == [in_loss, in_loss]
    assert out.texts == ["Apple", "Apple"]
    # the prompt ids are the shared renderer's, so eval and training see the same tokens
    assert out.prompt_ids[0] == render_prompt(tokenizer, items[0].prompt, sampling)


def test_soft_overlong_penalty_ramps_over_the_buffer():
    from prorl_eval.errors import UserError
    from prorl_train.rollout import soft_overlong_penalty

    # DAPO's eq. 13 with L_max = 20 and L_cache = 4: free up to 16 tokens, then -1/4 per token
    assert [soft_overlong_penalty(n, 20, 4, 1.0) for n in (10, 16, 17, 18, 20, 25)] == [
        0.0, 0.0, -0.25, -0.5, -1.0, -1.0,
    ]  # fmt: skip
    assert soft_overlong_penalty(19, 20, 4, 0.5) == -0.375
    for overrides, fragment in (
        (["rollout.overlong=soft"], "needs rollout.overlong_buffer > 0"),
        (["rollout.overlong=soft", "rollout.overlong_buffer=9000"], "below the shortest"),
    ):
        with pytest.raises(UserError, match=fragment):
            load_config("cpu-smoke", overrides=overrides, out="x").validate()
