"""Outcome-reward advantage estimators for GRPO-family training (pure torch).

What
----
Each sampled response ``i`` of a prompt gets one scalar reward ``r_i`` from the verifier; the
responses of one prompt form a *group* (``group_ids_B`` holds the same id for all of them). An
estimator turns the rewards into one advantage per response, which the caller broadcasts over
the response's tokens::

    grpo          A_i = (r_i - mean_g) / (std_g + eps)          (GRPO, DAPO, ProRL)
    grpo_no_std   A_i =  r_i - mean_g                           (Dr. GRPO)
    rloo          A_i =  r_i - mean_{j in g, j != i} r_j = n_g / (n_g - 1) (r_i - mean_g)
                                                                (RLOO, Ahmadian et al., 2024)
    reinforce_pp  c_i =  r_i - mean_g;  A_i = (c_i - mean_B(c)) / (std_B(c) + eps)

where ``mean_g`` / ``std_g`` are taken over the group of ``i`` and ``mean_B`` / ``std_B`` over
the whole batch. Standard deviations are the unbiased (Bessel-corrected) ones, as ``torch.std``
computes them and verl's GRPO estimator uses.

Papers and departures
---------------------
* GRPO (DeepSeekMath) and DAPO define the group-normalised advantage; ProRL (Liu et al., 2025)
  uses it unchanged. We add ``eps`` to the std, like verl.
* ``reinforce_pp`` is the REINFORCE++-baseline form (Hu et al., 2025) that the ProRL v2 write-up
  describes: subtract the group mean, then normalise by the *global* batch std. Subtracting the
  batch mean again is a no-op in exact arithmetic (each group's centred rewards sum to zero) and
  only removes rounding noise. verl whitens over *tokens* (long responses weigh more); we whiten
  over sequences, since the advantage is a per-sequence scalar here.
* Groups whose rewards are all equal (including single-response groups) get advantage exactly 0.
  verl instead gives a single-response group mean 0 / std 1, i.e. ``A = r``; we treat one
  response as no comparison at all. The zero is enforced explicitly (group max == group min):
  rounding in the group mean (``(0.1 + 0.1 + 0.1) / 3 != 0.1``) would otherwise leave a
  deviation of one ulp, which ``eps = 0`` divides by a zero or equally tiny std (inf or O(1)).

Example
-------
>>> import torch
>>> compute_advantages(torch.tensor([1.0, 0.0, 1.0, 1.0]), torch.tensor([7, 7, 3, 3]))
tensor([ 0.7071, -0.7071,  0.0000,  0.0000])
"""

from __future__ import annotations

from collections.abc import Callable, Sequence

import torch
from torch import Tensor

__all__ = [
    "ADVANTAGE_ESTIMATORS",
    "compute_advantages",
    "group_index",
    "group_stats",
]

# (rewards_B float64, group_B contiguous ids, num_groups, eps) -> advantages_B float64
AdvantageFn = Callable[[Tensor, Tensor, int, float], Tensor]


def group_index(group_ids_B: Tensor | Sequence[int]) -> tuple[Tensor, int]:
    """Map arbitrary integer group ids to contiguous ids ``0 .. G-1``.

    Returns ``(group_B, G)``: ``group_B[i]`` is the rank of ``group_ids_B[i]`` among the sorted
    distinct ids, so ids need not be contiguous, sorted or adjacent in the batch.
    """
    ids_B = torch.as_tensor(group_ids_B)
    if ids_B.dim() != 1:
        raise ValueError(f"group ids must be 1-D (B,), got shape {tuple(ids_B.shape)}")
    if ids_B.is_floating_point() or ids_B.is_complex():
        raise ValueError(f"group ids must be integers, got dtype {ids_B.dtype}")
    uniq_G, group_B = torch.unique(ids_B, return_inverse=True)
    return group_B, int(uniq_G.numel())


def group_stats(rewards_B: Tensor, group_B: Tensor, num_groups: int) -> dict[str, Tensor]:
    """Per-group count, mean, unbiased std and whether all rewards are equal.

    Returns tensors of shape (G,): ``count``, ``mean``, ``std`` (``sqrt(sum (r - mean)^2 /
    max(n - 1, 1))``, so 0 for one response) and ``constant`` (bool: group max == group min).
    """
    zeros_G = rewards_B.new_zeros(num_groups)
    count_G = zeros_G.index_add(0, group_B, torch.ones_like(rewards_B))
    mean_G = zeros_G.index_add(0, group_B, rewards_B) / count_G
    dev_B = rewards_B - mean_G[group_B]
    sq_G = zeros_G.index_add(0, group_B, dev_B * dev_B)
    std_G = torch.sqrt(sq_G / (count_G - 1).clamp(min=1))
    max_G = rewards_B.new_full((num_groups,), -torch.inf).scatter_reduce(
        0, group_B, rewards_B, reduce="amax"
    )
    min_G = rewards_B.new_full((num_groups,), torch.inf).scatter_reduce(
        0, group_B, rewards_B, reduce="amin"
    )
    return {"count": count_G, "mean": mean_G, "std": std_G, "constant": max_G == min_G}


def _centred(rewards_B: Tensor, group_B: Tensor, num_groups: int) -> tuple[Tensor, Tensor]:
    """``(r - group mean, group std)`` per response; exactly 0 deviation in constant groups."""
    stats = group_stats(rewards_B, group_B, num_groups)
    dev_B = rewards_B - stats["mean"][group_B]
    dev_B = torch.where(stats["constant"][group_B], torch.zeros_like(dev_B), dev_B)
    return dev_B, stats["std"][group_B]


def _safe_div(num: Tensor, den: Tensor) -> Tensor:
    """``num / den``, where a zero ``den`` (only with ``eps = 0``, and then ``num = 0``) gives 0."""
    return num / torch.where(den > 0, den, torch.ones_like(den))


def _grpo(rewards_B: Tensor, group_B: Tensor, num_groups: int, eps: float) -> Tensor:
    """GRPO: ``(r - mean_g) / (std_g + eps)``."""
    dev_B, std_B = _centred(rewards_B, group_B, num_groups)
    return _safe_div(dev_B, std_B + eps)


def _grpo_no_std(rewards_B: Tensor, group_B: Tensor, num_groups: int, eps: float) -> Tensor:
    """Dr. GRPO: ``r - mean_g`` (no std scaling, so easy/hard prompts are not up-weighted)."""
    dev_B, _ = _centred(rewards_B, group_B, num_groups)
    return dev_B


def _rloo(rewards_B: Tensor, group_B: Tensor, num_groups: int, eps: float) -> Tensor:
    """RLOO: each response's reward minus the mean of the other responses of its group."""
    dev_B, _ = _centred(rewards_B, group_B, num_groups)
    count_B = group_stats(rewards_B, group_B, num_groups)["count"][group_B]
    return torch.where(count_B > 1, dev_B * count_B / (count_B - 1).clamp(min=1), 0.0 * dev_B)


def _reinforce_pp(rewards_B: Tensor, group_B: Tensor, num_groups: int, eps: float) -> Tensor:
    """REINFORCE++-baseline: group-centre, then whiten with the batch mean and unbiased std."""
    dev_B, _ = _centred(rewards_B, group_B, num_groups)
    centred_B = dev_B - dev_B.mean()
    n = dev_B.numel()
    std = torch.sqrt((centred_B * centred_B).sum() / max(n - 1, 1))
    return _safe_div(centred_B, std + eps)


ADVANTAGE_ESTIMATORS: dict[str, AdvantageFn] = {
    "grpo": _grpo,
    "grpo_no_std": _grpo_no_std,
    "rloo": _rloo,
    "reinforce_pp": _reinforce_pp,
}


def grouped_rewards(rewards_B: Tensor, group_ids_B: Tensor) -> tuple[Tensor, Tensor, int]:
    """Check a (B,) reward vector against its group ids; return (rewards, group index, G)."""
    rewards_B = torch.as_tensor(rewards_B).detach()
    if rewards_B.dim() != 1:
        raise ValueError(f"rewards must be 1-D (B,), got shape {tuple(rewards_B.shape)}")
    group_B, num_groups = group_index(group_ids_B)
    if group_B.numel() != rewards_B.numel():
        raise ValueError(f"{rewards_B.numel()} rewards but {group_B.numel()} group ids")
    return rewards_B, group_B, num_groups


def compute_advantages(
    rewards_B: Tensor,
    group_ids_B: Tensor,
    *,
    estimator: str = "grpo",
    eps: float = 1e-6,
) -> Tensor:
    """One advantage per response, shape (B,), from rewards and prompt-group ids.

    ``estimator`` names an entry of :data:`ADVANTAGE_ESTIMATORS` (see the module docstring for
    the formulas). The arithmetic runs in float64 (B is small) and the result has the rewards'
    floating dtype (float32 for integer or bool rewards) and device. The result carries no
    gradient: advantages are constants in the policy loss.
    """
    if estimator not in ADVANTAGE_ESTIMATORS:
        known = ", ".join(sorted(ADVANTAGE_ESTIMATORS))
        raise ValueError(f"unknown advantage estimator {estimator!r}; known: {known}")
    rewards_B, group_B, num_groups = grouped_rewards(rewards_B, group_ids_B)
    out_dtype = rewards_B.dtype if rewards_B.is_floating_point() else torch.float32
    r64_B = rewards_B.to(torch.float64)
    if not torch.isfinite(r64_B).all():
        raise ValueError("rewards must be finite")
    if r64_B.numel() == 0:
        return rewards_B.new_zeros(0, dtype=out_dtype)
    group_B = group_B.to(r64_B.device)
    adv_B = ADVANTAGE_ESTIMATORS[estimator](r64_B, group_B, num_groups, float(eps))
    return adv_B.to(out_dtype)
