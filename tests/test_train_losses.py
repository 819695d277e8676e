"""Tests for prorl_train.losses: loop references, gradients, clip-higher and the KL estimators."""

from __future__ import annotations

import doctest
import math

import pytest
import torch

from prorl_train import losses
from prorl_train.losses import (
    AGGREGATIONS,
    K3_MAX,
    KL_ESTIMATORS,
    entropy_from_logits,
    kl_penalty,
    policy_loss,
    token_logprobs,
)

# --------------------------------------------------------------------------- loop references


def _aggregate_loop(loss: list[list[float]], mask: list[list[bool]], how: str) -> float:
    """Reduce per-token losses over valid tokens with plain loops."""
    rows = [[v for v, m in zip(r, mr, strict=True) if m] for r, mr in zip(loss, mask, strict=True)]
    rows = [r for r in rows if r]  # sequences without valid tokens do not count
    if not rows:
        return 0.0
    if how == "token-mean":
        return sum(sum(r) for r in rows) / sum(len(r) for r in rows)
    if how == "seq-mean-token-mean":
        return sum(sum(r) / len(r) for r in rows) / len(rows)
    assert how == "seq-mean-token-sum"
    return sum(sum(r) for r in rows) / len(rows)


def _token_weights_loop(mask: list[list[bool]], how: str) -> list[list[float]]:
    """d(aggregate) / d(loss_bt) for each token: the weight each valid token gets."""
    lengths = [sum(r) for r in mask]
    n_seq = sum(1 for n in lengths if n)
    weights = []
    for r, n in zip(mask, lengths, strict=True):
        w = {
            "token-mean": 1 / max(sum(lengths), 1),
            "seq-mean-token-mean": 1 / (max(n, 1) * max(n_seq, 1)),
            "seq-mean-token-sum": 1 / max(n_seq, 1),
        }[how]
        weights.append([w if m else 0.0 for m in r])
    return weights


def _policy_loss_loop(logp, old, adv, mask, clip_low, clip_high, how):
    """Per-token clipped surrogate, its gradient w.r.t. logp, and the clip statistics."""
    weights = _token_weights_loop(mask, how)
    loss, grad = [], []
    n_low = n_high = n_valid = 0
    ratios = []
    for b in range(len(logp)):
        row_loss, row_grad = [], []
        for t in range(len(logp[b])):
            if not mask[b][t]:
                row_loss.append(0.0)
                row_grad.append(0.0)
                continue
            a = adv[b]
            r = math.exp(max(-20.0, min(20.0, logp[b][t] - old[b][t])))
            clipped = min(max(r, 1 - clip_low), 1 + clip_high)
            row_loss.append(max(-a * r, -a * clipped))
            # the unclipped branch is active (gradient -a * r) unless clipping binds
            active = (a > 0 and r <= 1 + clip_high) or (a < 0 and r >= 1 - clip_low)
            row_grad.append(-a * r * weights[b][t] if active else 0.0)
            n_valid += 1
            n_low += r < 1 - clip_low and a < 0
            n_high += r > 1 + clip_high and a > 0
            ratios.append(r)
        loss.append(row_loss)
        grad.append(row_grad)
    stats = {
        "clip_frac_low": n_low / n_valid,
        "clip_frac_high": n_high / n_valid,
        "ratio_mean": sum(ratios) / len(ratios),
        "ratio_max": max(ratios),
        "ratio_min": min(ratios),
    }
    return _aggregate_loop(loss, mask, how), grad, stats


def _random_inputs(seed: int):
    """Right-padded batch (one row fully padded), NaN in padding, ratios spread over all regions."""
    g = torch.Generator().manual_seed(seed)
    B, T = 5, 7
    lengths = torch.randint(1, T + 1, (B,), generator=g)
    lengths[seed % B] = 0
    mask = torch.arange(T)[None, :] < lengths[:, None]
    old = -torch.rand(B, T, generator=g, dtype=torch.float64) * 4
    logp = old + torch.randn(B, T, generator=g, dtype=torch.float64) * 0.4
    adv = torch.randn(B, generator=g, dtype=torch.float64)
    adv[(seed + 1) % B] = 0.0
    logp = torch.where(mask, logp, torch.full_like(logp, math.nan))
    return logp, old, adv, mask


# ------------------------------------------------------------------------------ policy loss


@pytest.mark.parametrize("how", sorted(AGGREGATIONS))
@pytest.mark.parametrize(("clip_low", "clip_high"), [(0.2, 0.4), (0.2, 0.2), (0.1, 0.28)])
def test_policy_loss_matches_loop_reference(how, clip_low, clip_high):
    for seed in range(6):
        logp, old, adv, mask = _random_inputs(seed)
        logp.requires_grad_(True)
        loss, stats = policy_loss(
            logp, old, adv, mask, clip_low=clip_low, clip_high=clip_high, aggregation=how
        )
        loss.backward()
        ref_loss, ref_grad, ref_stats = _policy_loss_loop(
            logp.tolist(), old.tolist(), adv.tolist(), mask.tolist(), clip_low, clip_high, how
        )
        assert loss.item() == pytest.approx(ref_loss, rel=1e-9, abs=1e-12)
        torch.testing.assert_close(logp.grad, torch.tensor(ref_grad, dtype=torch.float64))
        for key, value in ref_stats.items():
            assert stats[key] == pytest.approx(value, rel=1e-9), key
        assert stats["clip_frac"] == pytest.approx(stats["clip_frac_low"] + stats["clip_frac_high"])
        assert stats["tokens"] == mask.sum().item()


def test_random_inputs_exercise_every_clip_region():
    """The agreement test above is only meaningful if its inputs hit all branches."""
    totals = {"clip_frac_low": 0.0, "clip_frac_high": 0.0}
    for seed in range(6):
        logp, old, adv, mask = _random_inputs(seed)
        _, stats = policy_loss(logp, old, adv, mask, clip_low=0.2, clip_high=0.2)
        for key in totals:
            totals[key] += stats[key]
    assert totals["clip_frac_low"] > 0 and totals["clip_frac_high"] > 0


@pytest.mark.parametrize("how", sorted(AGGREGATIONS))
def test_aggregations_match_loop_and_ignore_padding(how):
    g = torch.Generator().manual_seed(1)
    loss = torch.randn(4, 6, generator=g, dtype=torch.float64)
    mask = torch.tensor([[1, 1, 1, 0, 0, 0], [1] * 6, [0] * 6, [1, 0, 0, 0, 0, 0]])
    garbage = torch.where(mask.bool(), loss, torch.full_like(loss, math.inf))
    got = AGGREGATIONS[how](garbage, mask)
    assert got.item() == pytest.approx(_aggregate_loop(loss.tolist(), mask.bool().tolist(), how))
    assert AGGREGATIONS[how](loss, torch.zeros_like(mask)).item() == 0.0


def test_gradient_pushes_up_positive_advantage_tokens():
    old = torch.log(torch.tensor([[0.5, 0.1, 0.3], [0.2, 0.6, 0.9]]))
    logp = old.clone().requires_grad_(True)
    adv = torch.tensor([1.0, -2.0])
    mask = torch.tensor([[1, 1, 0], [1, 1, 1]])
    loss, _ = policy_loss(logp, old, adv, mask)
    loss.backward()
    # at ratio 1 the token-mean gradient is exactly -A / N: descent raises logp iff A > 0
    expected = -adv[:, None] * mask / mask.sum()
    torch.testing.assert_close(logp.grad, expected)
    stepped = logp.detach() - 0.1 * logp.grad
    assert torch.all(stepped[0, :2] > old[0, :2]) and torch.all(stepped[1] < old[1])
    assert stepped[0, 2] == old[0, 2]


def _ratio_grads(ratios, adv, clip_low, clip_high):
    old = torch.zeros(1, len(ratios), dtype=torch.float64)
    logp = torch.log(torch.tensor([ratios], dtype=torch.float64)).requires_grad_(True)
    loss, stats = policy_loss(
        logp, old, torch.tensor([adv]), torch.ones_like(old), clip_low=clip_low,
        clip_high=clip_high,
    )  # fmt: skip
    loss.backward()
    return logp.grad[0], stats


def test_clip_higher_keeps_the_gradient_for_ratios_between_1_2_and_1_4():
    ratios = [1.1, 1.21, 1.3, 1.39, 1.45, 1.8]
    grad_high, stats_high = _ratio_grads(ratios, 1.0, 0.2, 0.4)
    grad_sym, stats_sym = _ratio_grads(ratios, 1.0, 0.2, 0.2)
    assert (grad_high != 0).tolist() == [True, True, True, True, False, False]
    assert (grad_sym != 0).tolist() == [True, False, False, False, False, False]
    assert torch.all(grad_high[:4] < 0)  # descent still raises these tokens' probability
    assert stats_high["clip_frac_high"] == pytest.approx(2 / 6)
    assert stats_sym["clip_frac_high"] == pytest.approx(5 / 6)


def test_clip_low_is_unchanged_by_clip_higher():
    # A < 0: below 1 - eps_low the (pessimistic) clipped branch binds in both settings; above 1
    # the unclipped branch is always the pessimistic one, so it keeps its gradient.
    ratios = [0.7, 0.79, 0.85, 1.3, 1.6]
    for clip_high in (0.2, 0.4):
        grad, stats = _ratio_grads(ratios, -1.0, 0.2, clip_high)
        assert (grad != 0).tolist() == [False, False, True, True, True]
        assert torch.all(grad[2:] > 0)
        assert stats["clip_frac_low"] == pytest.approx(2 / 5)
        assert stats["clip_frac_high"] == 0.0


def _train_toy_policy(clip_high: float, steps: int = 100, lr: float = 0.05) -> tuple[float, float]:
    """PPO epochs on one fixed batch of a 6-token categorical policy.

    The batch holds the rare token 0 (p = 0.02) with advantage +1 and two common tokens with
    advantage 0. Returns (p_old, p_new) of the rare token.
    """
    logits = torch.tensor([-2.0, 1.5, 1.4, 1.2, 1.0, 0.8], dtype=torch.float64)
    logits[0] = math.log(0.02 / 0.98) + torch.logsumexp(logits[1:], 0)  # p(token 0) = 0.02
    tokens = torch.tensor([[0, 1, 2]])
    adv = torch.tensor([1.0, 0.0, 0.0])  # one row per sampled token
    old = torch.log_softmax(logits, 0)[tokens].reshape(3, 1).detach()
    theta = logits.clone().requires_grad_(True)
    opt = torch.optim.SGD([theta], lr=lr)
    for _ in range(steps):
        logp = torch.log_softmax(theta, 0)[tokens].reshape(3, 1)
        loss, _ = policy_loss(logp, old, adv, torch.ones(3, 1), clip_low=0.2, clip_high=clip_high)
        opt.zero_grad()
        loss.backward()
        opt.step()
    return old[0, 0].exp().item(), torch.softmax(theta.detach(), 0)[0].item()


def test_clip_higher_lets_a_rare_positive_token_rise_further():
    p_old, p_sym = _train_toy_policy(clip_high=0.2)
    _, p_high = _train_toy_policy(clip_high=0.4)
    assert p_old == pytest.approx(0.02)
    # each run stops where its clip binds (plus at most one step's overshoot)
    assert 1.2 <= p_sym / p_old < 1.25
    assert 1.4 <= p_high / p_old < 1.45
    assert (p_high - p_old) > 1.8 * (p_sym - p_old)


def test_empty_mask_gives_zero_loss_and_zero_stats():
    logp = torch.randn(2, 3, requires_grad=True)
    loss, stats = policy_loss(logp, logp.detach(), torch.ones(2), torch.zeros(2, 3))
    loss.backward()
    assert loss.item() == 0.0 and torch.equal(logp.grad, torch.zeros(2, 3))
    assert set(stats.values()) == {0.0}


def test_per_token_advantages_are_accepted():
    logp, old, adv, mask = _random_inputs(0)
    a, _ = policy_loss(logp, old, adv, mask)
    b, _ = policy_loss(logp, old, adv[:, None].expand_as(logp), mask)
    assert a.item() == b.item()


@pytest.mark.parametrize(
    ("args", "kwargs", "message"),
    [
        ((torch.zeros(2, 3), torch.zeros(2, 4), torch.zeros(2), torch.ones(2, 3)), {}, "old_logp"),
        ((torch.zeros(2, 3), torch.zeros(2, 3), torch.zeros(3), torch.ones(2, 3)), {}, "advant"),
        ((torch.zeros(2, 3), torch.zeros(2, 3), torch.zeros(2), torch.ones(3)), {}, "mask"),
        ((torch.zeros(2, 3),) * 2 + (torch.zeros(2), torch.ones(2, 3)), {"clip_low": 1.0}, "0 <"),
        ((torch.zeros(1, 1),) * 2 + (torch.zeros(1), torch.ones(1, 1)), {"aggregation": "x"}, "x"),
    ],
)
def test_policy_loss_rejects_bad_inputs(args, kwargs, message):
    with pytest.raises(ValueError, match=message):
        policy_loss(*args, **kwargs)


# --------------------------------------------------------------------------------------- KL


def _kl_loop(logp: float, ref: float, name: str) -> float:
    d = ref - logp
    if name == "k1":
        return -d
    if name == "k2":
        return 0.5 * d * d
    d = max(-20.0, min(20.0, d))
    return min(math.exp(d) - d - 1, K3_MAX)


@pytest.mark.parametrize("name", sorted(KL_ESTIMATORS))
@pytest.mark.parametrize("how", sorted(AGGREGATIONS))
def test_kl_estimators_match_loop_reference(name, how):
    logp, _, _, mask = _random_inputs(2)
    ref = -torch.rand(logp.shape, generator=torch.Generator().manual_seed(9), dtype=torch.float64)
    ref = ref * 6  # differences up to ~6 nats, so k3's upper clamp is exercised too
    values = KL_ESTIMATORS[name](logp, ref)
    for b in range(logp.shape[0]):
        for t in range(logp.shape[1]):
            if mask[b, t]:
                expected = _kl_loop(logp[b, t].item(), ref[b, t].item(), name)
                assert values[b, t].item() == pytest.approx(expected, rel=1e-9, abs=1e-12)
    loop_kl = [
        [_kl_loop(logp[b, t].item(), ref[b, t].item(), name) for t in range(logp.shape[1])]
        for b in range(logp.shape[0])
    ]  # padded positions hold NaN here; the aggregation must never read them
    got = kl_penalty(logp, ref, mask, estimator=name, aggregation=how)
    assert got.item() == pytest.approx(_aggregate_loop(loop_kl, mask.tolist(), how), rel=1e-9)


def _close_categoricals():
    """Two 5-way categoricals close enough that k3 never reaches its clamp."""
    pi = torch.tensor([0.4, 0.25, 0.15, 0.12, 0.08], dtype=torch.float64)
    ref = torch.tensor([0.3, 0.3, 0.2, 0.1, 0.1], dtype=torch.float64)
    return pi, ref


def test_kl_estimators_match_the_analytic_kl_in_expectation():
    pi, ref = _close_categoricals()
    kl = (pi * (pi / ref).log()).sum().item()
    logp_V, ref_V = pi.log()[None], ref.log()[None]
    # exact expectation over the sampled token x ~ pi
    exact = {n: (pi * KL_ESTIMATORS[n](logp_V, ref_V)[0]).sum().item() for n in KL_ESTIMATORS}
    assert exact["k1"] == pytest.approx(kl, rel=1e-12)
    assert exact["k3"] == pytest.approx(kl, rel=1e-12)
    assert exact["k2"] == pytest.approx(kl, rel=0.1)  # biased, exact to second order only
    # Monte Carlo: the sample means of tokens drawn from pi land within 4 standard errors
    g = torch.Generator().manual_seed(0)
    x_N = torch.multinomial(pi, 200_000, replacement=True, generator=g)
    for name in ("k1", "k3"):
        k_N = KL_ESTIMATORS[name](pi.log()[x_N][None], ref.log()[x_N][None])[0]
        stderr = k_N.std().item() / math.sqrt(k_N.numel())
        assert abs(k_N.mean().item() - kl) < 4 * stderr, name
    k2_N = KL_ESTIMATORS["k2"](pi.log()[x_N][None], ref.log()[x_N][None])[0]
    assert k2_N.mean().item() == pytest.approx(kl, rel=0.1)
    # and k3 is the low-variance one
    k1_N = KL_ESTIMATORS["k1"](pi.log()[x_N][None], ref.log()[x_N][None])[0]
    k3_N = KL_ESTIMATORS["k3"](pi.log()[x_N][None], ref.log()[x_N][None])[0]
    assert k3_N.var() < k1_N.var() / 5


def test_k3_and_k2_are_nonnegative_everywhere():
    g = torch.Generator().manual_seed(3)
    logp = -torch.rand(20_000, generator=g) * 30
    for scale in (1e-8, 1e-4, 0.1, 3.0, 50.0):
        ref = logp + torch.randn(20_000, generator=g) * scale
        for name in ("k2", "k3"):
            assert KL_ESTIMATORS[name](logp[None], ref[None]).min().item() >= 0.0, (name, scale)
    assert KL_ESTIMATORS["k3"](logp[None], (logp + 40)[None]).max().item() == K3_MAX


@pytest.mark.parametrize("name", sorted(KL_ESTIMATORS))
def test_all_estimators_vanish_when_policy_equals_reference(name):
    logp = -torch.rand(3, 8, generator=torch.Generator().manual_seed(4)) * 10
    assert torch.equal(KL_ESTIMATORS[name](logp, logp.clone()), torch.zeros(3, 8))
    assert kl_penalty(logp, logp.clone(), torch.ones(3, 8), estimator=name).item() == 0.0


def test_expected_loss_gradients_of_the_kl_estimators():
    """As losses on fixed samples x ~ pi: k1 has zero expected gradient, k2 that of KL(pi||ref),
    k3 that of the reverse KL(ref||pi) (Tang & Munos, 2025)."""
    pi, ref = _close_categoricals()

    def expected_grad(name):
        theta = pi.log().clone().requires_grad_(True)
        logp_V = torch.log_softmax(theta, 0)
        weight = logp_V.exp().detach()  # sampling distribution, held fixed
        (weight * KL_ESTIMATORS[name](logp_V[None], ref.log()[None])[0]).sum().backward()
        return theta.grad

    def true_grad(reverse: bool):
        theta = pi.log().clone().requires_grad_(True)
        p = torch.softmax(theta, 0)
        kl = (ref * (ref / p).log()).sum() if reverse else (p * (p / ref).log()).sum()
        kl.backward()
        return theta.grad

    torch.testing.assert_close(expected_grad("k1"), torch.zeros(5, dtype=torch.float64))
    torch.testing.assert_close(expected_grad("k2"), true_grad(reverse=False))
    torch.testing.assert_close(expected_grad("k3"), true_grad(reverse=True))


def test_kl_penalty_detaches_the_reference_and_rejects_unknown_names():
    logp = torch.zeros(1, 2, requires_grad=True)
    ref = torch.full((1, 2), -1.0, requires_grad=True)
    kl_penalty(logp, ref, torch.ones(1, 2)).backward()
    assert ref.grad is None and logp.grad is not None
    with pytest.raises(ValueError, match="k4"):
        kl_penalty(logp, ref, torch.ones(1, 2), estimator="k4")


# ------------------------------------------------------------------------- from the logits


def test_token_logprobs_and_entropy_match_loops():
    g = torch.Generator().manual_seed(5)
    logits = torch.randn(2, 3, 7, generator=g, dtype=torch.float64) * 3
    tokens = torch.randint(0, 7, (2, 3), generator=g)
    lp, ent = token_logprobs(logits, tokens), entropy_from_logits(logits)
    for b in range(2):
        for t in range(3):
            row = logits[b, t].tolist()
            z = sum(math.exp(v) for v in row)
            probs = [math.exp(v) / z for v in row]
            assert lp[b, t].item() == pytest.approx(math.log(probs[tokens[b, t]]), rel=1e-12)
            assert ent[b, t].item() == pytest.approx(-sum(p * math.log(p) for p in probs))
    dist = torch.distributions.Categorical(logits=logits)
    torch.testing.assert_close(lp, dist.log_prob(tokens))
    torch.testing.assert_close(ent, dist.entropy())


def test_logits_helpers_upcast_low_precision_and_handle_masked_vocab():
    logits = torch.zeros(1, 2, 4, dtype=torch.bfloat16)
    assert token_logprobs(logits, torch.zeros(1, 2, dtype=torch.long)).dtype == torch.float32
    torch.testing.assert_close(entropy_from_logits(logits), torch.full((1, 2), math.log(4)))
    masked = torch.tensor([[[0.0, 0.0, -math.inf, -math.inf]]], requires_grad=True)
    ent = entropy_from_logits(masked)
    assert ent.item() == pytest.approx(math.log(2))
    (ent.sum() + token_logprobs(masked, torch.tensor([[1]])).sum()).backward()
    assert torch.isfinite(masked.grad).all()


def test_doctest():
    assert doctest.testmod(losses).failed == 0
