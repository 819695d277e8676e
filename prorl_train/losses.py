"""Policy loss with decoupled clipping, KL-to-reference penalties and token statistics.

What
----
Shapes: ``B`` sequences, ``T`` token positions, ``V`` vocabulary. ``mask_BT`` marks the valid
(response) tokens; it is read as boolean (nonzero = valid), and padded positions never reach the
result even if they hold NaN or inf.

* :func:`policy_loss` -- the PPO surrogate with DAPO's decoupled ("clip-higher") range::

      ratio_t = exp(logp_t - old_logp_t)
      loss_t  = -min(ratio_t * A, clip(ratio_t, 1 - eps_low, 1 + eps_high) * A)

  aggregated over valid tokens by an entry of :data:`AGGREGATIONS`.
* :data:`AGGREGATIONS` -- loss reductions, with ``n_b`` the valid tokens of row ``b`` and only
  rows with ``n_b > 0`` counted as sequences::

      token-mean            sum_{b,t} l / sum_b n_b                 (DAPO, ProRL)
      seq-mean-token-mean   mean_b (sum_t l / n_b)                  (GRPO paper)
      seq-mean-token-sum    mean_b (sum_t l)                        (Dr. GRPO up to a constant)

* :data:`KL_ESTIMATORS` -- per-token estimators of KL(pi || pi_ref) from tokens sampled from pi
  (Schulman, "Approximating KL divergence"), with ``d = ref_logp - logp``::

      k1 = -d                 unbiased, high variance, can be negative
      k2 = d^2 / 2            biased (exact to second order), >= 0
      k3 = e^d - d - 1        unbiased, low variance, >= 0; clamped to <= 10 as verl's low_var_kl

* :func:`kl_penalty` -- an aggregated KL estimate; the caller multiplies it by beta (beta = 0
  disables the term) and adds it to the policy loss, as ProRL and GRPO do (a loss term, not a
  reward shaping term).
* :func:`token_logprobs` and :func:`entropy_from_logits` -- per-token log-probabilities and
  entropies from logits (computed in float32).

Papers and departures
---------------------
* Clip-higher: DAPO (Yu et al., 2025) decouples eps_low / eps_high (0.2 / 0.28); ProRL uses
  0.2 / 0.4, our defaults. With A > 0 the gradient vanishes once ratio > 1 + eps_high, so a
  larger eps_high lets unlikely tokens with positive advantage grow further per update.
* :data:`POLICY_LOSSES` -- the per-token surrogate, for ablations (``loss.policy_loss``)::

      ppo    max(-A r, -A clip(r))                  (above; ProRL, DAPO, GRPO)
             with dual clip c > 1 (Ye et al., 2020; ``loss.clip_ratio_c``), A < 0 tokens are
             capped at -c A: ``min(max(-A r, -A clip(r)), -c A)``
      gspo   the same with the sequence ratio s_b = exp(mean_t log r_t) in place of r_t, as
             GSPO-token (Zheng et al., 2025): value s_b, gradient s_b * grad log pi_t; GSPO's
             clip ranges are ~3e-4 / 4e-4, not PPO's
      cispo  -sg(clip(r, 1 - eps_low, 1 + eps_high)) * A * log pi_t  (MiniMax-M1, 2025): the
             importance weight is clipped and detached, so every token keeps a gradient;
             MiniMax uses no lower bound (set loss.clip_low close to 1)
* Neither DAPO nor ProRL uses dual clip; it is off (``clip_ratio_c = 0``) by default.
* The log-ratio is clamped to [-20, 20] before ``exp`` only to avoid overflow (verl does the
  same); such a token's gradient is then zero, which also the clipping would mostly give.
* As a *loss* (gradient through the sampled log-probs only, samples held fixed), the expected
  gradients differ from the estimated values: k1 gives zero expected gradient, k2 gives the
  exact gradient of KL(pi || pi_ref), k3 gives the gradient of the reverse KL(pi_ref || pi)
  (Tang & Munos, 2025). k3 is the default: it is verl's "low_var_kl", the usual KL loss of
  the verl GRPO recipes that ProRL builds on (value clamp included).
* token-mean over a micro-batch is not token-mean over the full batch: for exact DAPO
  token-level averaging under gradient accumulation, weight each micro-batch loss by its valid
  token count over the batch's total.

Example
-------
>>> import torch
>>> logp = torch.log(torch.tensor([[0.5, 0.25]]))
>>> loss, stats = policy_loss(logp, logp, torch.tensor([1.0]), torch.tensor([[1, 0]]))
>>> float(loss), stats["ratio_mean"]
(-1.0, 1.0)
"""

from __future__ import annotations

from collections.abc import Callable

import torch
from torch import Tensor

__all__ = [
    "AGGREGATIONS",
    "K3_MAX",
    "KL_ESTIMATORS",
    "LOG_RATIO_LIMIT",
    "POLICY_LOSSES",
    "entropy_from_logits",
    "kl_penalty",
    "policy_loss",
    "token_logprobs",
]

LOG_RATIO_LIMIT = 20.0  # |log pi/pi_old| and |log pi_ref/pi| are clamped here before exp
K3_MAX = 10.0  # upper clamp of the k3 value, as verl's low_var_kl

Aggregation = Callable[[Tensor, Tensor], Tensor]  # (loss_BT, mask_BT) -> scalar
KLEstimator = Callable[[Tensor, Tensor], Tensor]  # (logp_BT, ref_logp_BT) -> kl_BT


# ------------------------------------------------------------------------------ aggregation


def _row_sums(loss_BT: Tensor, mask_BT: Tensor) -> tuple[Tensor, Tensor]:
    """Per-row sum of valid losses and per-row valid-token count, both (B,)."""
    valid_BT = mask_BT.bool()
    sum_B = torch.where(valid_BT, loss_BT, torch.zeros_like(loss_BT)).sum(-1)
    return sum_B, valid_BT.sum(-1).to(loss_BT.dtype)


def _token_mean(loss_BT: Tensor, mask_BT: Tensor) -> Tensor:
    """Mean over all valid tokens of the batch; 0 when there are none."""
    sum_B, n_B = _row_sums(loss_BT, mask_BT)
    return sum_B.sum() / n_B.sum().clamp(min=1)


def _seq_mean_token_mean(loss_BT: Tensor, mask_BT: Tensor) -> Tensor:
    """Mean over non-empty rows of each row's mean over its valid tokens."""
    sum_B, n_B = _row_sums(loss_BT, mask_BT)
    nonempty_B = n_B > 0
    per_row_B = sum_B / n_B.clamp(min=1)
    return per_row_B[nonempty_B].sum() / nonempty_B.sum().clamp(min=1)


def _seq_mean_token_sum(loss_BT: Tensor, mask_BT: Tensor) -> Tensor:
    """Mean over non-empty rows of each row's sum over its valid tokens."""
    sum_B, n_B = _row_sums(loss_BT, mask_BT)
    nonempty_B = n_B > 0
    return sum_B[nonempty_B].sum() / nonempty_B.sum().clamp(min=1)


AGGREGATIONS: dict[str, Aggregation] = {
    "token-mean": _token_mean,
    "seq-mean-token-mean": _seq_mean_token_mean,
    "seq-mean-token-sum": _seq_mean_token_sum,
}


def _lookup(table: dict, name: str, what: str) -> Callable:
    if name not in table:
        raise ValueError(f"unknown {what} {name!r}; known: {', '.join(sorted(table))}")
    return table[name]


def _check_bt(name: str, x: Tensor, ref: Tensor) -> None:
    if x.shape != ref.shape or x.dim() != 2:
        raise ValueError(
            f"{name} must have shape (B, T) = {tuple(ref.shape)}, got {tuple(x.shape)}"
        )


# ------------------------------------------------------------------------------ policy loss


def _ppo(logp_BT, old_BT, adv_BT, mask_BT, clip_low, clip_high, clip_ratio_c):
    """PPO's clipped surrogate with decoupled ranges; dual clip when ``clip_ratio_c > 0``."""
    log_ratio_BT = (logp_BT - old_BT).clamp(-LOG_RATIO_LIMIT, LOG_RATIO_LIMIT)
    ratio_BT = torch.exp(log_ratio_BT)
    clipped_BT = ratio_BT.clamp(1.0 - clip_low, 1.0 + clip_high)
    loss_BT = torch.maximum(-adv_BT * ratio_BT, -adv_BT * clipped_BT)
    if clip_ratio_c > 0:
        capped_BT = torch.minimum(loss_BT, -adv_BT * clip_ratio_c)
        loss_BT = torch.where(adv_BT < 0, capped_BT, loss_BT)
    return loss_BT, log_ratio_BT


def _gspo(logp_BT, old_BT, adv_BT, mask_BT, clip_low, clip_high, clip_ratio_c):
    """GSPO-token: the clipped surrogate on ``sg(s_b) * pi_t / sg(pi_t)``."""
    valid_BT = mask_BT.bool()
    diff_BT = torch.where(valid_BT, logp_BT - old_BT, torch.zeros_like(logp_BT))
    n_B = valid_BT.sum(-1).clamp(min=1).to(logp_BT.dtype)
    seq_log_ratio_B = (diff_BT.sum(-1) / n_B).clamp(-LOG_RATIO_LIMIT, LOG_RATIO_LIMIT)
    log_ratio_BT = seq_log_ratio_B.detach()[:, None] + logp_BT - logp_BT.detach()
    ratio_BT = torch.exp(log_ratio_BT)
    clipped_BT = ratio_BT.clamp(1.0 - clip_low, 1.0 + clip_high)
    loss_BT = torch.maximum(-adv_BT * ratio_BT, -adv_BT * clipped_BT)
    return loss_BT, seq_log_ratio_B.detach()[:, None].expand_as(logp_BT)


def _cispo(logp_BT, old_BT, adv_BT, mask_BT, clip_low, clip_high, clip_ratio_c):
    """CISPO: REINFORCE weighted by the clipped, detached importance ratio."""
    log_ratio_BT = (logp_BT - old_BT).clamp(-LOG_RATIO_LIMIT, LOG_RATIO_LIMIT)
    weight_BT = torch.exp(log_ratio_BT).clamp(1.0 - clip_low, 1.0 + clip_high).detach()
    return -weight_BT * adv_BT * logp_BT, log_ratio_BT


# (logp, old_logp (detached), advantages (B, T), mask, clip_low, clip_high, clip_ratio_c) ->
# (per-token loss, the log-ratio the statistics describe)
POLICY_LOSSES: dict[str, Callable[..., tuple[Tensor, Tensor]]] = {
    "ppo": _ppo,
    "gspo": _gspo,
    "cispo": _cispo,
}


def policy_loss(
    logp_BT: Tensor,
    old_logp_BT: Tensor,
    advantages_B: Tensor,
    mask_BT: Tensor,
    *,
    clip_low: float = 0.2,
    clip_high: float = 0.4,
    aggregation: str = "token-mean",
    kind: str = "ppo",
    clip_ratio_c: float = 0.0,
    token_weights_BT: Tensor | None = None,
) -> tuple[Tensor, dict[str, float]]:
    """Clipped policy-gradient loss with decoupled clip range; returns ``(loss, stats)``.

    ``loss_t = -min(r_t A, clip(r_t, 1 - clip_low, 1 + clip_high) A)``, ``r_t = e^(logp -
    old_logp)``, aggregated over valid tokens (see :data:`AGGREGATIONS`). ``advantages_B`` is
    (B,) and broadcast over tokens; a (B, T) tensor of per-token advantages is accepted too.
    ``old_logp_BT`` and the advantages are treated as constants (detached).
    ``token_weights_BT`` (detached) multiplies each token's loss before the aggregation: the
    rollout correction's importance weights (`rollout_correction.py`).

    Stats (floats, over valid tokens; all 0 when there are none): ``clip_frac_low`` (r < 1 -
    clip_low and A < 0: clipped below, no gradient), ``clip_frac_high`` (r > 1 + clip_high and
    A > 0), ``clip_frac`` (their sum), ``ratio_mean``, ``ratio_max``, ``ratio_min``,
    ``approx_kl`` (mean of ``r - 1 - log r``, the k3 estimate of KL(pi_old || pi)) and
    ``tokens`` (the number of valid tokens).
    """
    aggregate = _lookup(AGGREGATIONS, aggregation, "aggregation")
    surrogate = _lookup(POLICY_LOSSES, kind, "policy loss")
    if clip_low < 0 or clip_low >= 1 or clip_high < 0:
        raise ValueError(f"need 0 <= clip_low < 1 and clip_high >= 0, got {clip_low}, {clip_high}")
    if clip_ratio_c and (clip_ratio_c <= 1 or kind != "ppo"):
        raise ValueError(f"dual clip needs ppo and clip_ratio_c > 1 (got {kind}, {clip_ratio_c})")
    _check_bt("old_logp_BT", old_logp_BT, logp_BT)
    _check_bt("mask_BT", mask_BT, logp_BT)
    adv_BT = advantages_B.detach().to(logp_BT.dtype)
    if adv_BT.dim() == 1 and adv_BT.shape[0] == logp_BT.shape[0]:
        adv_BT = adv_BT[:, None].expand_as(logp_BT)
    _check_bt("advantages (B,) or (B, T)", adv_BT, logp_BT)

    loss_BT, log_ratio_BT = surrogate(
        logp_BT, old_logp_BT.detach(), adv_BT, mask_BT, clip_low, clip_high, clip_ratio_c
    )
    if token_weights_BT is not None:
        _check_bt("token_weights_BT", token_weights_BT, logp_BT)
        loss_BT = loss_BT * token_weights_BT.detach().to(loss_BT.dtype)
    loss = aggregate(loss_BT, mask_BT)
    stats = _policy_stats(log_ratio_BT.detach(), adv_BT, mask_BT.bool(), clip_low, clip_high)
    return loss, stats


@torch.no_grad()
def _policy_stats(
    log_ratio_BT: Tensor, adv_BT: Tensor, valid_BT: Tensor, clip_low: float, clip_high: float
) -> dict[str, float]:
    """Clip fractions and ratio statistics over the valid tokens (see :func:`policy_loss`)."""
    n = int(valid_BT.sum())
    if n == 0:
        names = ("clip_frac_low", "clip_frac_high", "clip_frac", "ratio_mean", "ratio_max")
        return dict.fromkeys((*names, "ratio_min", "approx_kl", "tokens"), 0.0)
    log_ratio_N = log_ratio_BT[valid_BT].double()
    ratio_N = torch.exp(log_ratio_N)
    adv_N = adv_BT[valid_BT]
    low = ((ratio_N < 1.0 - clip_low) & (adv_N < 0)).sum().item() / n
    high = ((ratio_N > 1.0 + clip_high) & (adv_N > 0)).sum().item() / n
    approx_kl = (torch.expm1(log_ratio_N) - log_ratio_N).mean()
    return {
        "clip_frac_low": low,
        "clip_frac_high": high,
        "clip_frac": low + high,
        "ratio_mean": ratio_N.mean().item(),
        "ratio_max": ratio_N.max().item(),
        "ratio_min": ratio_N.min().item(),
        "approx_kl": approx_kl.item(),
        "tokens": float(n),
    }


# ------------------------------------------------------------------------------------- KL


def _k1(logp_BT: Tensor, ref_logp_BT: Tensor) -> Tensor:
    """k1 = log pi - log pi_ref."""
    return logp_BT - ref_logp_BT


def _k2(logp_BT: Tensor, ref_logp_BT: Tensor) -> Tensor:
    """k2 = (log pi - log pi_ref)^2 / 2."""
    return 0.5 * (logp_BT - ref_logp_BT).square()


def _k3(logp_BT: Tensor, ref_logp_BT: Tensor) -> Tensor:
    """k3 = e^d - d - 1 with d = log pi_ref - log pi, as ``expm1(d) - d`` in [0, K3_MAX]."""
    d_BT = (ref_logp_BT - logp_BT).clamp(-LOG_RATIO_LIMIT, LOG_RATIO_LIMIT)
    return (torch.expm1(d_BT) - d_BT).clamp(0.0, K3_MAX)


KL_ESTIMATORS: dict[str, KLEstimator] = {"k1": _k1, "k2": _k2, "k3": _k3}


def kl_penalty(
    logp_BT: Tensor,
    ref_logp_BT: Tensor,
    mask_BT: Tensor,
    *,
    estimator: str = "k3",
    aggregation: str = "token-mean",
) -> Tensor:
    """Aggregated per-token KL(pi || pi_ref) estimate, a scalar to be scaled by beta.

    ``KL_ESTIMATORS[estimator](logp, ref_logp)`` reduced with ``AGGREGATIONS[aggregation]``;
    ``ref_logp_BT`` is detached (the reference policy is frozen).
    """
    kl_fn = _lookup(KL_ESTIMATORS, estimator, "KL estimator")
    aggregate = _lookup(AGGREGATIONS, aggregation, "aggregation")
    _check_bt("ref_logp_BT", ref_logp_BT, logp_BT)
    _check_bt("mask_BT", mask_BT, logp_BT)
    return aggregate(kl_fn(logp_BT, ref_logp_BT.detach()), mask_BT)


# ------------------------------------------------------------------------- from the logits


def token_logprobs(logits_BTV: Tensor, tokens_BT: Tensor) -> Tensor:
    """``log softmax(logits)[token]`` per position, (B, T), in float32 or wider.

    Computed as ``logits[token] - logsumexp(logits)`` without materialising the full
    log-softmax. The caller aligns positions (logits at t predict token t + 1).
    """
    if logits_BTV.dim() != 3 or tokens_BT.shape != logits_BTV.shape[:2]:
        raise ValueError(
            f"need logits (B, T, V) and tokens (B, T), got {tuple(logits_BTV.shape)} and "
            f"{tuple(tokens_BT.shape)}"
        )
    logits_BTV = logits_BTV.float() if logits_BTV.dtype.itemsize < 4 else logits_BTV
    picked_BT = logits_BTV.gather(-1, tokens_BT.long().unsqueeze(-1)).squeeze(-1)
    return picked_BT - torch.logsumexp(logits_BTV, dim=-1)


def entropy_from_logits(logits_BTV: Tensor) -> Tensor:
    """Entropy ``-sum_v p_v log p_v`` of ``softmax(logits)`` per position, (B, T).

    Computed in float32 or wider; vocabulary entries with probability 0 (logit -inf) add 0.
    """
    logits_BTV = logits_BTV.float() if logits_BTV.dtype.itemsize < 4 else logits_BTV
    logp_BTV = torch.log_softmax(logits_BTV, dim=-1)
    # 0 * log 0 = 0; fill before multiplying so that no NaN reaches the backward pass either
    finite_logp_BTV = logp_BTV.masked_fill(torch.isneginf(logp_BTV), 0.0)
    return -(logp_BTV.exp() * finite_logp_BTV).sum(-1)
