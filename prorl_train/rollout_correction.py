"""The rollout/trainer mismatch: how far the rollout engine's sampling distribution is from the
trainer's, and truncated importance sampling (TIS) to correct for it (pure torch).

Why
---
Rollouts come from vLLM (other kernels, another dtype, top-p renormalisation), the update from
the trainer's forward pass, so the tokens are sampled from ``pi_rollout`` while the PPO ratio is
taken against the trainer's ``pi_old``. The gap grows with bf16 and with long responses (Yao et
al., 2025, "Your Efficient RL Framework Secretly Brings You Off-Policy RL Training"); left alone
it biases the gradient. The correction reweights every token's loss by ``pi_old / pi_rollout``,
truncated or masked so a few extreme tokens cannot dominate.

What
----
Per response, with ``d_t = old_logp_t - rollout_logp_t`` (trainer minus engine, both at the
rollout temperature; vLLM returns ``processed_logprobs``)::

    token_truncate      w_t = min(e^{d_t}, cap)                   TIS (Yao et al.), TRL, verl
    token_mask          w_t = e^{d_t} if e^{d_t} <= cap else 0    TRL's token_mask
    sequence_truncate   w_t = min(e^{sum_t d_t}, cap)             one weight per response
    sequence_mask       w_t = e^{sum_t d_t} if <= cap else 0      TRL's sequence_mask

The weight is a constant (no gradient) that multiplies each token's policy loss before the
loss aggregation; the KL term is not reweighted. Sequence weights are products over the whole
response: for thousands of tokens they are 0 or huge for almost every response, so the token
modes are the usual choice at ProRL lengths. The default cap, 2, is the TIS paper's and verl's
``rollout_is_threshold``.

:func:`gap_stats` describes the mismatch whether or not a correction is on (``rollout_gap/``
metrics): mean ``|d|``, a k3 estimate of KL(pi_rollout || pi_old) from the rollout's own tokens
(``mean(e^d - 1 - d)``), the largest token ratio, and the share of tokens whose ratio is above
``cap`` or below ``1 / cap``.

Example
-------
>>> import torch
>>> old, rollout = torch.log(torch.tensor([0.5, 0.1])), torch.log(torch.tensor([0.2, 0.2]))
>>> weights, capped = importance_weights(old, rollout, "token_truncate", 2.0)
>>> weights.tolist(), capped.tolist()
([2.0, 0.5], [True, False])
"""

from __future__ import annotations

from collections.abc import Callable

import torch
from torch import Tensor

__all__ = ["CORRECTIONS", "gap_stats", "importance_weights"]

# |log ratio| is clamped here before exp, only against overflow
LOG_RATIO_LIMIT = 20.0


def _ratio(d_T: Tensor, level: str) -> Tensor:
    """The token ratios e^{d_t}, or the response's ratio e^{sum d} on every token."""
    log_ratio_T = d_T if level == "token" else d_T.sum().expand_as(d_T)
    return torch.exp(log_ratio_T.clamp(max=LOG_RATIO_LIMIT))


def _truncate(ratio_T: Tensor, cap: float) -> Tensor:
    return ratio_T.clamp(max=cap)


def _mask(ratio_T: Tensor, cap: float) -> Tensor:
    return torch.where(ratio_T <= cap, ratio_T, torch.zeros_like(ratio_T))


# name -> (level of the ratio, what happens past the cap)
CORRECTIONS: dict[str, tuple[str, Callable[[Tensor, float], Tensor]]] = {
    "token_truncate": ("token", _truncate),
    "token_mask": ("token", _mask),
    "sequence_truncate": ("sequence", _truncate),
    "sequence_mask": ("sequence", _mask),
}


def importance_weights(
    old_T: Tensor, rollout_T: Tensor, mode: str, cap: float
) -> tuple[Tensor, Tensor]:
    """Per-token weights (T,) of one response for correction `mode` (module docstring), and
    which tokens the cap changed (T,) bool."""
    if mode not in CORRECTIONS:
        raise ValueError(f"unknown rollout correction {mode!r}; known: {', '.join(CORRECTIONS)}")
    if old_T.shape != rollout_T.shape:
        raise ValueError(
            f"trainer and rollout log-probs differ in length ({old_T.shape[0]} vs "
            f"{rollout_T.shape[0]} tokens): the engine's log-probs must cover the response"
        )
    level, past_cap = CORRECTIONS[mode]
    ratio_T = _ratio(old_T.detach().double() - rollout_T.detach().double(), level)
    return past_cap(ratio_T, cap).to(torch.float32), ratio_T > cap


@torch.no_grad()
def gap_stats(old: list[Tensor], rollout: list[Tensor], cap: float) -> dict[str, float]:
    """The `rollout_gap/` metrics over every token of the responses (module docstring)."""
    if not old:
        return {}
    d_N = torch.cat([o.double() for o in old]) - torch.cat([r.double() for r in rollout])
    if d_N.numel() == 0:
        return {}
    ratio_N = torch.exp(d_N.clamp(-LOG_RATIO_LIMIT, LOG_RATIO_LIMIT))
    outside = (ratio_N > cap) | (ratio_N < 1.0 / cap)
    return {
        "rollout_gap/abs_logprob_diff_mean": float(d_N.abs().mean()),
        "rollout_gap/kl_k3": float((torch.expm1(d_N) - d_N).mean()),
        "rollout_gap/ratio_max": float(ratio_N.max()),
        "rollout_gap/tokens_outside_cap_share": float(outside.double().mean()),
    }
