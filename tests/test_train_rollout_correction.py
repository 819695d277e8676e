"""The rollout/trainer gap and truncated importance sampling (`prorl_train/rollout_correction.py`):
the weights and gap metrics against plain loops, and an update with the correction on against the
loss written out by hand."""

from __future__ import annotations

import math

import pytest
import torch
from conftest import make_rollouts, recording_optimizer

from prorl_eval.errors import UserError
from prorl_train.config import load_config
from prorl_train.rollout_correction import gap_stats, importance_weights
from prorl_train.update import pack, update_context, update_minibatch
from tests.oracles import ppo_loss_loop

MODES = ["token_truncate", "token_mask", "sequence_truncate", "sequence_mask"]


def loop_weights(old: list[float], rollout: list[float], mode: str, cap: float) -> list[float]:
    """The module docstring's table, one token at a time."""
    if mode.startswith("token"):
        ratios = [math.exp(o - r) for o, r in zip(old, rollout, strict=True)]
    else:
        ratios = [math.exp(sum(old) - sum(rollout))] * len(old)
    if mode.endswith("truncate"):
        return [min(x, cap) for x in ratios]
    return [x if x <= cap else 0.0 for x in ratios]


@pytest.mark.parametrize("mode", MODES)
def test_weights_match_a_plain_loop(mode):
    g = torch.Generator().manual_seed(3)
    for length in (1, 4, 9):
        old = torch.randn(length, generator=g, dtype=torch.float64) - 2
        rollout = old + 0.6 * torch.randn(length, generator=g, dtype=torch.float64)
        weights, capped = importance_weights(old, rollout, mode, 2.0)
        want = loop_weights(old.tolist(), rollout.tolist(), mode, 2.0)
        assert weights.tolist() == pytest.approx(want, rel=1e-6)
        assert weights.dtype == torch.float32 and weights.shape == (length,)
        raw = loop_weights(old.tolist(), rollout.tolist(), mode.split("_")[0] + "_truncate", 1e30)
        assert capped.tolist() == [x > 2.0 for x in raw]


def test_mismatched_lengths_are_refused():
    with pytest.raises(ValueError, match="differ in length"):
        importance_weights(torch.zeros(3), torch.zeros(2), "token_truncate", 2.0)


def test_gap_stats_match_brute_force():
    old = [torch.tensor([-1.0, -2.0]), torch.tensor([-0.5])]
    rollout = [torch.tensor([-1.5, -0.5]), torch.tensor([-0.5])]
    d = [0.5, -1.5, 0.0]
    stats = gap_stats(old, rollout, cap=2.0)
    assert stats["rollout_gap/abs_logprob_diff_mean"] == pytest.approx(2.0 / 3)
    assert stats["rollout_gap/kl_k3"] == pytest.approx(sum(math.exp(x) - 1 - x for x in d) / 3)
    assert stats["rollout_gap/ratio_max"] == pytest.approx(math.exp(0.5))
    assert stats["rollout_gap/tokens_outside_cap_share"] == pytest.approx(1 / 3)  # e^-1.5 < 1/2
    assert gap_stats([], [], 2.0) == {}


@pytest.fixture(scope="module")
def model(tiny_model_dir):
    from transformers import AutoModelForCausalLM

    torch.manual_seed(0)
    return AutoModelForCausalLM.from_pretrained(tiny_model_dir, dtype=torch.float32)


def perturbed(rollouts, model, shift: float):
    """`rollouts` with engine log-probs = the model's own minus a token-varying shift, as a
    rollout engine whose distribution drifted from the trainer's would return them."""
    with torch.no_grad():
        for i in range(len(rollouts)):
            seq = torch.tensor([rollouts.prompt_ids[i] + rollouts.response_ids[i]])
            start = len(rollouts.prompt_ids[i]) - 1
            logp = model(seq).logits[0, :-1].log_softmax(-1)[start:]
            own = logp.gather(-1, seq[0, start + 1 :, None])[:, 0]
            drift = shift * torch.linspace(-1.0, 2.0, len(own))
            rollouts.rollout_logprobs.append(tuple((own - drift).tolist()))
    return rollouts


@pytest.mark.parametrize("mode", ["token_truncate", "sequence_mask", "none"])
def test_the_corrected_update_equals_the_hand_formula(model, tmp_path, mode):
    r = perturbed(make_rollouts(groups=2, n=3), model, shift=0.4)
    indices = list(range(len(r)))
    adv = torch.linspace(-1, 1.5, len(r))
    cfg = load_config(
        None,
        overrides=[
            f"loss.rollout_correction={mode}",
            "loss.kl_beta=0",
            "loss.micro_batch_size=2",
            "optim.grad_clip=0",
            "rollout.temperature=1.0",
            "model.share_prompt_prefix=false",
        ],
        out=str(tmp_path),
    )
    ctx, _, gap = update_context(model, None, r, indices, adv, cfg, pad_id=0)
    assert gap["rollout_gap/abs_logprob_diff_mean"] > 0.1
    assert (ctx.is_weights is None) == (mode == "none")
    opt = recording_optimizer(model.parameters())
    update_minibatch(model, opt, r, indices, ctx, cfg, pad_id=0)

    def weights_of(i, old):
        if mode == "none":
            return torch.ones_like(old)
        engine = torch.tensor(r.rollout_logprobs[i])
        return torch.tensor(loop_weights(old.tolist(), engine.tolist(), mode, 2.0))

    model.zero_grad()
    ppo_loss_loop(model, r, indices, adv, weights_of).backward()
    for got, param in zip(opt.seen[0], model.parameters(), strict=True):
        if param.grad is None:
            assert got is None or not got.any()
            continue
        torch.testing.assert_close(got, param.grad, atol=2e-6, rtol=1e-4)
    model.zero_grad()
    assert pack(r, indices, 0).mask_BR.sum() == sum(len(x) for x in r.rollout_logprobs)


def test_the_gap_is_measured_without_a_correction_and_absent_without_engine_logprobs(
    model, tmp_path
):
    cfg = load_config(
        None, overrides=["loss.kl_beta=0", "rollout.temperature=1.0"], out=str(tmp_path)
    )
    plain = make_rollouts(groups=2, n=2)
    indices = list(range(len(plain)))
    adv = torch.zeros(len(plain))
    assert update_context(model, None, plain, indices, adv, cfg, pad_id=0)[2] == {}
    same = perturbed(make_rollouts(groups=2, n=2), model, shift=0.0)
    _, _, gap = update_context(model, None, same, indices, adv, cfg, pad_id=0)
    assert gap["rollout_gap/abs_logprob_diff_mean"] < 1e-5
    assert gap["rollout_gap/ratio_max"] == pytest.approx(1.0, abs=1e-5)


@pytest.mark.parametrize(
    ("overrides", "match"),
    [
        (["loss.rollout_correction=token_truncate"], "needs rollout.backend=vllm"),
        (["loss.rollout_correction=tis"], "loss.rollout_correction"),
        (["loss.rollout_correction_cap=1"], "rollout_correction_cap must be > 1"),
    ],
)
def test_contradicting_settings_are_one_line_errors(tmp_path, overrides, match):
    with pytest.raises(UserError, match=match):
        load_config(None, overrides=overrides, out=str(tmp_path)).validate()
