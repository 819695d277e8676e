"""The ablation surrogates (dual-clip PPO, GSPO-token, CISPO) against plain-loop twins written
from their papers' formulas token by token, values and gradients."""

from __future__ import annotations

import math

import pytest
import torch

from prorl_train.losses import POLICY_LOSSES, policy_loss


def loop_loss(logp, old, adv, mask, kind, low, high, c):
    """Token-mean loss built one token at a time from scalar tensors (autograd follows)."""
    total, count = torch.zeros((), dtype=torch.float64), 0
    for b in range(logp.shape[0]):
        valid = [t for t in range(logp.shape[1]) if mask[b, t]]
        seq = sum(float(logp[b, t].detach() - old[b, t]) for t in valid) / max(len(valid), 1)
        for t in valid:
            a, lp = float(adv[b]), logp[b, t]
            if kind == "gspo":  # value s_b, gradient s_b * d log pi_t
                ratio = math.exp(seq) * torch.exp(lp - lp.detach())
            else:
                ratio = torch.exp(lp - float(old[b, t]))
            clipped = torch.clamp(ratio, 1 - low, 1 + high)
            if kind == "cispo":
                term = -clipped.detach() * a * lp
            else:
                term = torch.maximum(-a * ratio, -a * clipped)
                if kind == "ppo" and c and a < 0:
                    term = torch.minimum(term, torch.tensor(-a * c, dtype=torch.float64))
            total = total + term
            count += 1
    return total / max(count, 1)


def batch(seed: int):
    gen = torch.Generator().manual_seed(seed)
    logp = (-torch.rand(3, 5, generator=gen, dtype=torch.float64) * 3).requires_grad_()
    old = logp.detach() + torch.randn(3, 5, generator=gen, dtype=torch.float64) * 0.6
    adv = torch.tensor([1.5, -0.7, -2.0], dtype=torch.float64)
    mask = torch.tensor([[1, 1, 1, 0, 0], [1, 1, 1, 1, 1], [1, 1, 0, 0, 0]])
    return logp, old, adv, mask


@pytest.mark.parametrize(
    ("kind", "low", "high", "c"),
    [("ppo", 0.2, 0.4, 0.0), ("ppo", 0.2, 0.4, 3.0), ("ppo", 0.2, 0.28, 1.5),
     ("gspo", 3e-4, 4e-4, 0.0), ("gspo", 0.2, 0.4, 0.0), ("cispo", 0.99, 0.3, 0.0)],
)  # fmt: skip
@pytest.mark.parametrize("seed", range(4))
def test_surrogates_equal_their_token_loop(kind, low, high, c, seed):
    logp, old, adv, mask = batch(seed)
    loss, stats = policy_loss(logp, old, adv, mask, clip_low=low, clip_high=high, kind=kind,
                              clip_ratio_c=c)  # fmt: skip
    (grad,) = torch.autograd.grad(loss, logp)
    twin_logp = logp.detach().clone().requires_grad_()
    twin = loop_loss(twin_logp, old, adv, mask, kind, low, high, c)
    (twin_grad,) = torch.autograd.grad(twin, twin_logp)
    torch.testing.assert_close(loss, twin)
    torch.testing.assert_close(grad, twin_grad)
    assert grad[~mask.bool()].abs().sum() == 0 and stats["tokens"] == float(mask.sum())


def test_dual_clip_caps_negative_advantage_tokens():
    logp = torch.log(torch.tensor([[0.5]], dtype=torch.float64)).requires_grad_()
    old = torch.log(torch.tensor([[0.1]], dtype=torch.float64))  # ratio 5
    adv, mask = torch.tensor([-1.0], dtype=torch.float64), torch.tensor([[1]])
    plain, _ = policy_loss(logp, old, adv, mask)
    capped, _ = policy_loss(logp, old, adv, mask, clip_ratio_c=3.0)
    assert float(plain.detach()) == pytest.approx(5.0)
    assert float(capped.detach()) == pytest.approx(3.0)
    (grad,) = torch.autograd.grad(capped, logp)
    assert float(grad) == 0.0  # capped: no push on a token far off-policy


def test_gspo_uses_one_ratio_per_sequence_and_cispo_keeps_clipped_gradients():
    logp, old, adv, mask = batch(0)
    _, stats = policy_loss(logp, old, adv, mask, kind="gspo", clip_low=0.2, clip_high=0.4)
    seq = [float(((logp.detach() - old)[b][mask[b].bool()]).mean()) for b in range(3)]
    weights = [int(mask[b].sum()) for b in range(3)]
    expected = sum(math.exp(s) * w for s, w in zip(seq, weights, strict=True)) / sum(weights)
    assert stats["ratio_mean"] == pytest.approx(expected)
    far = torch.log(torch.tensor([[0.9]], dtype=torch.float64)).requires_grad_()
    old_far = torch.log(torch.tensor([[0.1]], dtype=torch.float64))  # ratio 9, A > 0
    for kind, has_gradient in (("ppo", False), ("cispo", True)):
        loss, _ = policy_loss(far, old_far, torch.tensor([1.0], dtype=torch.float64),
                              torch.tensor([[1]]), kind=kind)  # fmt: skip
        (grad,) = torch.autograd.grad(loss, far)
        assert (float(grad) != 0.0) is has_gradient, kind


def test_unknown_or_contradicting_options_are_refused():
    logp, old, adv, mask = batch(0)
    with pytest.raises(ValueError, match="unknown policy loss 'trpo'"):
        policy_loss(logp, old, adv, mask, kind="trpo")
    with pytest.raises(ValueError, match="dual clip needs ppo"):
        policy_loss(logp, old, adv, mask, kind="gspo", clip_ratio_c=3.0)
    assert sorted(POLICY_LOSSES) == ["cispo", "gspo", "ppo"]


def test_config_names_the_setting_and_the_fix():
    from prorl_eval.errors import UserError
    from prorl_train.config import load_config

    for overrides, fragment in (
        (["loss.policy_loss=trpo"], "loss.policy_loss"),
        (["loss.policy_loss=gspo", "loss.clip_ratio_c=3"], "needs loss.policy_loss=ppo"),
        (["loss.clip_ratio_c=0.5"], "must be 0 or > 1"),
    ):
        with pytest.raises(UserError, match=fragment):
            load_config("cpu-smoke", overrides=overrides, out="x").validate()
    ok = load_config("cpu-smoke", overrides=["loss.advantage=rloo", "loss.clip_ratio_c=3"], out="x")
    ok.validate()


@pytest.mark.parametrize(
    "loss",
    [{"policy_loss": "gspo", "clip_low": 3e-4, "clip_high": 4e-4},
     {"policy_loss": "cispo", "clip_low": 0.99, "clip_high": 0.3},
     {"policy_loss": "ppo", "clip_ratio_c": 3.0, "advantage": "rloo"},
     {"advantage": "grpo_no_std", "aggregation": "seq-mean-token-sum"}],  # Dr. GRPO
)  # fmt: skip
def test_each_option_trains_a_step(tmp_path, peaked_model_dir, loss):
    from conftest import make_config, settings

    from prorl_train.metrics import read_metrics
    from prorl_train.trainer import train

    data = settings(peaked_model_dir, steps=1, save_every=1, keep_every=0)
    data["loss"] = {**data.get("loss", {}), **loss}
    train(make_config(tmp_path, data, tmp_path / "run")[1])
    (row,) = read_metrics(tmp_path / "run" / "metrics.jsonl")
    assert math.isfinite(row["actor/pg_loss"]) and row["actor/grad_norm"] > 0
