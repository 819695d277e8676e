"""The policy update of one step: old/reference log-probs, advantages, mini-batch AdamW updates.

Per step: (1) one advantage per response from its group's rewards (`rollout_advantages`, which
the trainer calls and passes in); (2) the rollout policy's log-probs ("old") and the reference's,
without gradients, with the entropy of the rollout policy (`update_context`); (3) the prompt
groups are shuffled and split into mini-batches of `mini_batch_size` prompts, one optimizer step
each (so `batch_size / mini_batch_size` updates per epoch), gradients accumulated over
micro-batches of `micro_batch_size` sequences; (4) the loss is the decoupled-clip PPO surrogate
plus `kl_beta` times the KL estimate to the reference (`losses.py`).

Log-probs are taken from logits divided by the rollout temperature, so the "old" policy is the
distribution the responses were actually sampled from (as verl does); the ProRL paper does not say.
Micro-batch losses are weighted so the mini-batch loss equals the aggregation over the whole
mini-batch (token-mean: by tokens, the sequence means: by sequences).

The optimizer is driven through a stepper (`stepper.OptimizerStepper`); with several processes
the sharded passes are merged with `distributed.gather_shards`.

Example:
    >>> advantages_B = rollout_advantages(rollouts, cfg.loss.advantage)  # doctest: +SKIP
    >>> stats = optimise(  # doctest: +SKIP
    ...     policy, reference, stepper, rollouts, advantages_B, cfg, step=1, pad_id=0)
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

import torch
from torch import Tensor

from prorl_eval.seeds import derive_seed
from prorl_train import distributed as dist
from prorl_train.rollout import Rollouts
from prorl_train.stepper import OptimizerStepper

if TYPE_CHECKING:
    from prorl_train.config import TrainConfig


@dataclass
class Packed:
    """Prompts left-padded to width P, responses right-padded to width R, back to back.

    Only the last R + 1 positions need logits (those predicting response tokens), so the
    vocabulary projection never runs over the prompt.
    """

    input_ids_BL: Tensor  # L = P + R
    attention_BL: Tensor
    position_ids_BL: Tensor
    targets_BR: Tensor  # the response tokens (pad where the response ended)
    mask_BR: Tensor  # bool: a real response token


def pack(rollouts: Rollouts, indices: list[int], pad_id: int) -> Packed:
    """Pack sequences `indices` of `rollouts` into tensors (see `Packed`)."""
    width_p = max(len(rollouts.prompt_ids[i]) for i in indices)
    width_r = max(len(rollouts.response_ids[i]) for i in indices)
    input_ids = torch.full((len(indices), width_p + width_r), pad_id, dtype=torch.long)
    attention = torch.zeros_like(input_ids)
    for b, i in enumerate(indices):
        prompt, response = rollouts.prompt_ids[i], rollouts.response_ids[i]
        input_ids[b, width_p - len(prompt) : width_p] = torch.tensor(prompt, dtype=torch.long)
        input_ids[b, width_p : width_p + len(response)] = torch.tensor(response, dtype=torch.long)
        attention[b, width_p - len(prompt) : width_p + len(response)] = 1
    positions = (attention.cumsum(-1) - 1).clamp(min=0)  # as generate numbers left-padded rows
    return Packed(
        input_ids, attention, positions, input_ids[:, width_p:], attention[:, width_p:].bool()
    )


def forward_logprobs(
    model: Any,
    packed: Packed,
    temperature: float,
    entropy: bool = False,
    chunk_tokens: int = 0,
    share_prompts: bool = False,
    entropy_grad: bool = False,
) -> tuple[Tensor, Tensor | None]:
    """Per-token log-probs (B, R) of the response tokens at `temperature`, and entropies
    (`entropy_grad`: with gradients, for an entropy bonus).

    With `chunk_tokens` > 0 the vocabulary projection runs in chunks of that many response
    positions (`logits.py`), so long responses never hold a (B, R, V) logits tensor. With
    `share_prompts` rows with the same prompt run it once (`logits.py`), where that applies.
    """
    from prorl_train.logits import response_logprobs

    device = next(model.parameters()).device
    return response_logprobs(
        model,
        packed.input_ids_BL.to(device),
        packed.attention_BL.to(device),
        packed.position_ids_BL.to(device),
        packed.targets_BR.to(device),
        temperature,
        chunk_tokens,
        entropy,
        share_prompts,
        entropy_grad,
    )


def micro_batches(indices: list[int], size: int) -> list[list[int]]:
    return [indices[i : i + size] for i in range(0, len(indices), size)]


def share_prompts(cfg: TrainConfig) -> bool:
    """Whether forwards run each repeated prompt of a micro-batch once (`logits.py`).

    The choice is the same for every micro-batch and every rank (never by a micro-batch's
    contents), so under ZeRO-3 all ranks make the same forward calls, each of which gathers the
    partitioned weights collectively, and a multi-process run computes what one process does.
    """
    return bool(cfg.model.share_prompt_prefix)


def logits_chunk_tokens(model: Any, cfg: TrainConfig) -> int:
    """`model.logits_chunk_tokens`, or 0 (one-shot projection) for a ZeRO-3 partitioned model.

    Under ZeRO-3 every call of the output layer gathers its weight collectively, so all ranks must
    make the same number of calls; the number of chunks depends on each rank's response lengths,
    so partitioned models project in one shot.
    """
    from prorl_train.deepspeed_engine import is_partitioned

    return 0 if is_partitioned(model) else cfg.model.logits_chunk_tokens


@torch.no_grad()
def score_sequences(
    model: Any,
    rollouts: Rollouts,
    indices: list[int],
    cfg: TrainConfig,
    pad_id: int,
    entropy: bool,
) -> tuple[dict[int, Tensor], float]:
    """Response-token log-probs per sequence under `model`, and the mean token entropy.

    With several processes each rank scores every W-th micro-batch (padded with repeats of the
    first, so ZeRO-3's collective forwards line up) and the results are gathered; the micro-batches
    and the order of the entropy sum are those of the single-process run.
    """
    chunks = micro_batches(indices, cfg.loss.micro_batch_size)
    share = share_prompts(cfg)
    chunk_tokens = logits_chunk_tokens(model, cfg)
    mine: dict[int, tuple[dict[int, Tensor], float, int]] = {}
    for entry in dist.round_robin(chunks):
        k, chunk = entry if entry is not None else (-1, chunks[0])
        packed = pack(rollouts, chunk, pad_id)
        logp_BT, ent_BT = forward_logprobs(
            model, packed, cfg.rollout.temperature, entropy, chunk_tokens, share
        )
        if k < 0:
            continue
        logp_BT = logp_BT.detach().cpu()
        per_seq = {i: logp_BT[b][packed.mask_BR[b]] for b, i in enumerate(chunk)}
        ent = float(ent_BT[packed.mask_BR].sum()) if ent_BT is not None else 0.0
        mine[k] = (per_seq, ent, int(packed.mask_BR.sum()))
    out: dict[int, Tensor] = {}
    ent_sum, tokens = 0.0, 0
    for per_seq, ent, count in dist.gather_shards(mine, len(chunks)):
        out.update(per_seq)
        ent_sum += ent
        tokens += count
    return out, (ent_sum / tokens if tokens and entropy else 0.0)


def scatter(per_seq: dict[int, Tensor], chunk: list[int], mask_BT: Tensor) -> Tensor:
    """Per-sequence response values laid out on a packed batch's (B, T) grid."""
    grid_BT = torch.zeros(mask_BT.shape, dtype=torch.float32)
    grid_BT[mask_BT] = torch.cat([per_seq[i] for i in chunk])
    return grid_BT


def minibatch_groups(
    rollouts: Rollouts, indices: list[int], size: int, seed: int
) -> list[list[int]]:
    """Shuffle prompt groups (seeded); split their sequences into mini-batches of about `size`
    groups: groups / size mini-batches, rounded to the nearest whole number (halves up, at
    least one), whose sizes differ by at most one group. A short batch of 130 groups at size 64
    gives 65 + 65, not 64 + 64 + 2 (an Adam step on 2 prompts)."""
    by_group: dict[int, list[int]] = {}
    for i in indices:
        by_group.setdefault(rollouts.group_ids[i], []).append(i)
    keys = sorted(by_group)
    generator = torch.Generator().manual_seed(seed)
    order = [keys[j] for j in torch.randperm(len(keys), generator=generator).tolist()]
    count = max(1, (2 * len(order) + size) // (2 * size))
    bounds = [len(order) * k // count for k in range(count + 1)]
    return [
        [i for g in order[bounds[k] : bounds[k + 1]] for i in by_group[g]] for k in range(count)
    ]


@dataclass(frozen=True)
class UpdateContext:
    """What every micro-batch loss of a step compares the live policy against.

    Computed once per step, before its first optimizer step: `old` and `ref` map a sequence index
    to its response-token log-probs under the rollout policy and the reference (`ref` is None
    without a KL penalty); `advantages_B` holds one advantage per sequence of the step's batch;
    `is_weights` the rollout correction's per-token weights (`rollout_correction.py`).
    """

    old: dict[int, Tensor]
    ref: dict[int, Tensor] | None
    advantages_B: Tensor
    # Truncated importance weights pi_old / pi_rollout per response token (None: no correction)
    is_weights: dict[int, Tensor] | None = None


def rollout_advantages(rollouts: Rollouts, estimator: str) -> Tensor:
    """One advantage per sequence (B,) from its prompt group's rewards (`advantages.py`)."""
    from prorl_train.advantages import compute_advantages

    rewards_B = torch.tensor(rollouts.rewards, dtype=torch.float32)
    group_ids_B = torch.tensor(rollouts.group_ids, dtype=torch.long)
    return compute_advantages(rewards_B, group_ids_B, estimator=estimator)


class StatsSum:
    """Token-weighted sums of the loss statistics over micro-batches."""

    def __init__(self) -> None:
        self.sums: dict[str, float] = {}
        self.tokens = 0.0
        self.ratio_max = float("-inf")
        self.ratio_min = float("inf")

    def add(self, stats: dict[str, float], extra: dict[str, float]) -> None:
        n = stats["tokens"]
        self.tokens += n
        for key in ("clip_frac_low", "clip_frac_high", "ratio_mean", "approx_kl"):
            self.sums[key] = self.sums.get(key, 0.0) + stats[key] * n
        for key, value in extra.items():
            self.sums[key] = self.sums.get(key, 0.0) + value * n
        if n:
            self.ratio_max = max(self.ratio_max, stats["ratio_max"])
            self.ratio_min = min(self.ratio_min, stats["ratio_min"])

    def result(self) -> dict[str, float]:
        out = {f"actor/{k}": v / self.tokens if self.tokens else 0.0 for k, v in self.sums.items()}
        out["actor/ratio_max"] = self.ratio_max if self.tokens else 0.0
        out["actor/ratio_min"] = self.ratio_min if self.tokens else 0.0
        return out


def micro_loss(
    policy: Any,
    rollouts: Rollouts,
    chunk: list[int],
    ctx: UpdateContext,
    cfg: TrainConfig,
    pad_id: int,
    share: bool = False,
) -> tuple[Tensor, dict[str, float], dict[str, float], Tensor]:
    """Loss of one micro-batch (unweighted), its stats, and its mask (`share`: share prompts)."""
    from prorl_train.losses import KL_ESTIMATORS, kl_penalty, policy_loss

    packed = pack(rollouts, chunk, pad_id)
    bonus = cfg.loss.entropy_coef > 0
    logp_BT, ent_BT = forward_logprobs(
        policy,
        packed,
        cfg.rollout.temperature,
        chunk_tokens=logits_chunk_tokens(policy, cfg),
        share_prompts=share,
        entropy_grad=bonus,
    )
    device = logp_BT.device
    mask_BT = packed.mask_BR.to(device)
    old_BT = scatter(ctx.old, chunk, packed.mask_BR).to(device)
    adv_B = ctx.advantages_B[chunk].to(device)
    weights_BT = None
    if ctx.is_weights is not None:
        weights_BT = scatter(ctx.is_weights, chunk, packed.mask_BR).to(device)
    loss, stats = policy_loss(
        logp_BT,
        old_BT,
        adv_B,
        mask_BT,
        clip_low=cfg.loss.clip_low,
        clip_high=cfg.loss.clip_high,
        aggregation=cfg.loss.aggregation,
        kind=cfg.loss.policy_loss,
        clip_ratio_c=cfg.loss.clip_ratio_c,
        token_weights_BT=weights_BT,
    )
    extra = {"pg_loss": float(loss.detach())}
    if bonus:  # maximise entropy: subtract it, aggregated as the policy loss is
        from prorl_train.losses import AGGREGATIONS

        entropy = AGGREGATIONS[cfg.loss.aggregation](ent_BT, mask_BT)
        loss = loss - cfg.loss.entropy_coef * entropy
        extra["entropy_bonus"] = float(entropy.detach())
    if ctx.ref is not None:
        ref_BT = scatter(ctx.ref, chunk, packed.mask_BR).to(device)
        kl = kl_penalty(
            logp_BT,
            ref_BT,
            mask_BT,
            estimator=cfg.loss.kl_estimator,
            aggregation=cfg.loss.aggregation,
        )
        loss = loss + cfg.loss.kl_beta * kl
        with torch.no_grad():
            k3 = KL_ESTIMATORS["k3"](logp_BT.detach(), ref_BT)[mask_BT].mean()
        extra.update(kl_loss=float(kl.detach()), kl_ref=float(k3))
    return loss, stats, extra, packed.mask_BR


def micro_weight(aggregation: str, mask_BT: Tensor, total_tokens: int, total_rows: int) -> float:
    """Weight of a micro-batch loss so the weighted sum is the mini-batch aggregate."""
    if aggregation == "token-mean":
        return int(mask_BT.sum()) / total_tokens
    return int((mask_BT.sum(-1) > 0).sum()) / total_rows


def as_stepper(policy: Any, optimizer: Any, cfg: TrainConfig) -> OptimizerStepper:
    """`optimizer` as a stepper: a stepper as it is, a torch optimizer inside a `TorchStepper`."""
    from prorl_train.deepspeed_engine import TorchStepper

    if isinstance(optimizer, OptimizerStepper):
        return optimizer
    return TorchStepper(policy, optimizer, cfg.optim.grad_clip)


def update_minibatch(
    policy: Any,
    optimizer: Any,
    rollouts: Rollouts,
    mb: list[int],
    ctx: UpdateContext,
    cfg: TrainConfig,
    pad_id: int,
) -> tuple[float, list[tuple[dict[str, float], dict[str, float]]]]:
    """Accumulate gradients over the micro-batches of `mb`, clip, step; (grad norm, stats).

    `optimizer` is a torch optimizer or a stepper. With several processes rank r takes
    micro-batches r, r + W, ...; every rank runs the same number of backward calls (zero-weight
    repeats pad the short ones) and the stats are gathered back into micro-batch order.
    """
    stepper = as_stepper(policy, optimizer, cfg)
    total_tokens = sum(len(rollouts.response_ids[i]) for i in mb)
    stepper.zero_grad()
    chunks = micro_batches(mb, cfg.loss.micro_batch_size)
    mine = dist.round_robin(chunks)
    share = share_prompts(cfg)
    collected: dict[int, tuple[dict[str, float], dict[str, float]]] = {}
    for j, entry in enumerate(mine):
        k, chunk = entry if entry is not None else (-1, chunks[0])
        loss, stats, extra, mask_BT = micro_loss(
            stepper.model, rollouts, chunk, ctx, cfg, pad_id, share
        )
        weight = micro_weight(cfg.loss.aggregation, mask_BT, total_tokens, len(mb)) if k >= 0 else 0
        stepper.backward(loss * weight, boundary=j == len(mine) - 1)
        if k >= 0:
            collected[k] = (stats, extra)
    grad_norm = stepper.step()
    return grad_norm, dist.gather_shards(collected, len(chunks))


def update_context(
    model: Any,
    reference: Any,
    rollouts: Rollouts,
    indices: list[int],
    advantages_B: Tensor,
    cfg: TrainConfig,
    pad_id: int,
) -> tuple[UpdateContext, float, dict[str, float]]:
    """The step's old and reference log-probs of sequences `indices`, with the advantages and
    the rollout correction's weights; the rollout policy's mean token entropy; the
    `rollout_gap/` metrics (none for engines that return no log-probs)."""
    old, entropy = score_sequences(model, rollouts, indices, cfg, pad_id, entropy=True)
    ref = None
    if reference is not None and cfg.loss.kl_beta > 0:
        ref, _ = score_sequences(reference, rollouts, indices, cfg, pad_id, entropy=False)
    weights, gap = rollout_gap(rollouts, indices, old, cfg)
    return UpdateContext(old, ref, advantages_B, weights), entropy, gap


def rollout_gap(
    rollouts: Rollouts, indices: list[int], old: dict[int, Tensor], cfg: TrainConfig
) -> tuple[dict[int, Tensor] | None, dict[str, float]]:
    """The rollout correction's weights (None when off) and the `rollout_gap/` metrics, from
    the engine's log-probs of the responses; (None, {}) when the engine returned none (HF)."""
    from prorl_train.rollout_correction import gap_stats, importance_weights

    engine = rollouts.rollout_logprobs
    if len(engine) != len(rollouts) or any(engine[i] is None for i in indices):
        return None, {}
    rollout = {i: torch.tensor(engine[i], dtype=torch.float32) for i in indices}
    loss = cfg.loss
    cap = loss.rollout_correction_cap
    stats = gap_stats([old[i] for i in indices], [rollout[i] for i in indices], cap)
    if loss.rollout_correction == "none":
        return None, stats
    weights, capped = {}, []
    for i in indices:
        weights[i], capped_T = importance_weights(old[i], rollout[i], loss.rollout_correction, cap)
        capped.append(capped_T)
    flat, capped_N = torch.cat(list(weights.values())), torch.cat(capped)
    if flat.numel():
        stats["rollout_gap/is_weight_mean"] = float(flat.mean())
        stats["rollout_gap/is_capped_share"] = float(capped_N.double().mean())
    return weights, stats


def optimise(
    policy: Any,
    reference: Any,
    optimizer: Any,
    rollouts: Rollouts,
    advantages_B: Tensor,
    cfg: TrainConfig,
    step: int,
    pad_id: int,
) -> dict[str, float]:
    """All of a step's updates on `rollouts` (`advantages_B`: `rollout_advantages`, one per
    sequence); returns the actor statistics of the step."""
    indices = [i for i in range(len(rollouts)) if rollouts.loss_mask[i]]
    if not indices:
        return {"actor/updates": 0.0}
    stepper = as_stepper(policy, optimizer, cfg)
    stepper.model.train()
    ctx, entropy, gap = update_context(
        stepper.model, reference, rollouts, indices, advantages_B, cfg, pad_id
    )
    stepper.set_lr(cfg.optim.lr_at(step))
    totals, norms = StatsSum(), []
    for epoch in range(cfg.loss.epochs):
        seed = derive_seed(cfg.seed, "minibatch", step, epoch)
        for mb in minibatch_groups(rollouts, indices, cfg.loss.mini_batch_size, seed):
            norm, collected = update_minibatch(
                stepper.model, stepper, rollouts, mb, ctx, cfg, pad_id
            )
            norms.append(norm)
            for stats, extra in collected:
                totals.add(stats, extra)
    out = totals.result()
    out.update(
        {
            "actor/entropy": entropy,
            "actor/grad_norm": sum(norms) / len(norms),
            "actor/grad_norm_max": max(norms),
            "actor/updates": float(len(norms)),
            "actor/lr": cfg.optim.lr_at(step),
            "actor/advantage_abs_mean": float(advantages_B[indices].abs().mean()),
            **gap,
        }
    )
    return out
