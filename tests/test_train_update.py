"""The update step: packing and log-probs vs a per-sequence forward, micro-batch weighting,
mini-batch splits, and that zero advantages leave the weights alone."""

from __future__ import annotations

import math

import pytest
import torch
from conftest import make_rollouts, recording_optimizer

from prorl_train.config import load_config
from prorl_train.update import (
    UpdateContext,
    forward_logprobs,
    micro_batches,
    minibatch_groups,
    optimise,
    pack,
    rollout_advantages,
    score_sequences,
    update_minibatch,
)


@pytest.fixture(autouse=True, scope="module")
def _one_thread():
    before = torch.get_num_threads()
    torch.set_num_threads(1)  # tiny models: a second thread only adds contention
    yield
    torch.set_num_threads(before)


@pytest.fixture(scope="module")
def model(tiny_model_dir):
    from transformers import AutoModelForCausalLM

    torch.manual_seed(0)
    return AutoModelForCausalLM.from_pretrained(tiny_model_dir, dtype=torch.float32)


@pytest.mark.parametrize("temperature", [1.0, 0.7])
def test_packed_logprobs_match_a_per_sequence_forward(model, temperature):
    r = make_rollouts()
    indices = list(range(len(r)))
    packed = pack(r, indices, pad_id=0)
    logp_BR, ent_BR = forward_logprobs(model, packed, temperature, entropy=True)
    with torch.no_grad():
        for b, i in enumerate(indices):
            seq = torch.tensor([r.prompt_ids[i] + r.response_ids[i]])
            logits = model(seq).logits[0, :-1] / temperature
            start = len(r.prompt_ids[i]) - 1
            logp = logits.log_softmax(-1)[start:]
            want = logp.gather(-1, seq[0, start + 1 :, None])[:, 0]
            got = logp_BR[b][packed.mask_BR[b]]
            assert torch.allclose(got, want, atol=1e-5)
            want_ent = -(logp.exp() * logp).sum(-1)
            assert torch.allclose(ent_BR[b][packed.mask_BR[b]], want_ent, atol=1e-4)
    assert packed.mask_BR.sum(-1).tolist() == [len(r.response_ids[i]) for i in indices]


@pytest.mark.parametrize("aggregation", ["token-mean", "seq-mean-token-mean", "seq-mean-token-sum"])
@pytest.mark.parametrize("chunk_tokens", [0, 3])
@pytest.mark.parametrize("share", [False, True])
def test_micro_batches_give_the_full_batch_gradient(
    model, tmp_path, aggregation, chunk_tokens, share
):
    """Accumulating weighted micro-batch losses equals one pass over the whole mini-batch of
    packed rows (also with the logits computed in chunks, and with each group's prompt run once
    for the micro-batches that repeat one)."""
    r = make_rollouts(groups=3, n=3)
    mb = list(range(len(r)))
    adv = torch.linspace(-1, 1, len(r))
    with torch.no_grad():
        old = forward_logprobs(model, pack(r, mb, 0), 1.0)[0]
    packed = pack(r, mb, 0)
    old_seq = {i: old[b][packed.mask_BR[b]] - 0.05 * (i % 3) for b, i in enumerate(mb)}
    ctx = UpdateContext(old=old_seq, ref=old_seq, advantages_B=adv)
    grads = []
    runs = ((len(r), 0, False), (len(r), chunk_tokens, share), (2, chunk_tokens, share))
    for micro, chunk, shared in runs:
        cfg = load_config(
            None,
            overrides=[
                f"model.logits_chunk_tokens={chunk}",
                f"model.share_prompt_prefix={str(shared).lower()}",
                f"loss.micro_batch_size={micro}",
                f"loss.aggregation={aggregation}",
                "loss.kl_beta=0.1",
                "optim.grad_clip=0",
                "rollout.temperature=1.0",
            ],
            out=str(tmp_path),
        )
        opt = recording_optimizer(model.parameters())
        update_minibatch(model, opt, r, mb, ctx, cfg, pad_id=0)
        grads.append(opt.seen[0])
    for full, *others in zip(*grads, strict=True):
        for accumulated in others:
            if full is None:
                assert accumulated is None
                continue
            torch.testing.assert_close(accumulated, full, atol=5e-6, rtol=1e-4)
    assert any(g is not None and g.abs().sum() > 0 for g in grads[0])


def test_prompt_sharing_counts_fewer_decoder_positions(model, tmp_path):
    """With sharing on, scoring a batch of groups runs each prompt once per micro-batch."""
    r = make_rollouts(groups=3, n=4)
    indices = list(range(len(r)))
    seen: list[int] = []
    hook = model.get_input_embeddings().register_forward_hook(
        lambda m, a, out: seen.append(a[0].numel())
    )
    scores = []
    try:
        for shared in (False, True):
            cfg = load_config(
                None,
                overrides=[
                    f"model.share_prompt_prefix={str(shared).lower()}",
                    "loss.micro_batch_size=4",
                    "rollout.temperature=1.0",
                ],
                out=str(tmp_path),
            )
            seen.clear()
            scores.append(score_sequences(model, r, indices, cfg, pad_id=0, entropy=True))
            counts = list(seen)
            packed_counts = [pack(r, c, 0).input_ids_BL.numel() for c in micro_batches(indices, 4)]
            if shared:
                assert len(counts) == 6  # prompt, then responses, per micro-batch (one group)
                assert sum(counts) < sum(packed_counts)
            else:
                assert counts == packed_counts
    finally:
        hook.remove()
    (plain, plain_ent), (shared_scores, shared_ent) = scores
    for i in indices:
        torch.testing.assert_close(shared_scores[i], plain[i], atol=1e-5, rtol=1e-5)
    assert shared_ent == pytest.approx(plain_ent, rel=1e-5)


def test_adamw_is_fused_for_float_cpu_parameters_and_matches_the_loop(tmp_path):
    from prorl_train.deepspeed_engine import adamw

    cfg = load_config(
        None, overrides=["optim.lr=1e-2", "optim.weight_decay=0.1"], out=str(tmp_path)
    )
    torch.manual_seed(0)
    start = [torch.randn(5, 3), torch.randn(7)]
    fused_params = [torch.nn.Parameter(t.clone()) for t in start]
    loop_params = [torch.nn.Parameter(t.clone()) for t in start]
    fused = adamw(cfg, iter(fused_params))
    loop = torch.optim.AdamW(
        loop_params,
        lr=1e-2,
        betas=(cfg.optim.beta1, cfg.optim.beta2),
        eps=cfg.optim.eps,
        weight_decay=0.1,
        foreach=False,
    )
    assert fused.param_groups[0]["fused"] is True
    for step in range(3):
        for params, opt in ((fused_params, fused), (loop_params, loop)):
            opt.zero_grad()
            sum(((p * (step + 1)) ** 2).sum() for p in params).backward()
            opt.step()
    for a, b in zip(fused_params, loop_params, strict=True):
        torch.testing.assert_close(a, b, atol=1e-6, rtol=1e-5)
    assert not torch.equal(fused_params[0], start[0])
    half = adamw(cfg, [torch.nn.Parameter(torch.zeros(2)), torch.zeros(2, dtype=torch.long)])
    assert not half.param_groups[0]["fused"]  # a non-float tensor: torch's default path


@pytest.mark.parametrize(
    ("groups", "size", "sizes"),
    [
        (5, 2, [1, 2, 2]),
        (4, 4, [4]),
        (7, 3, [3, 4]),
        (1, 3, [1]),
        (130, 64, [65, 65]),
        (100, 64, [50, 50]),
        (2, 64, [2]),
        (160, 64, [53, 53, 54]),
        (256, 64, [64] * 4),
    ],
)
def test_minibatches_keep_groups_whole_and_equal(groups, size, sizes):
    r = make_rollouts(groups=groups, n=2)
    indices = list(range(len(r)))
    batches = minibatch_groups(r, indices, size, seed=1)
    assert sorted(len({r.group_ids[i] for i in b}) for b in batches) == sizes
    assert sorted(i for b in batches for i in b) == indices
    for batch in batches:
        for i in batch:  # a group's sequences are all in the same mini-batch
            same = [j for j in indices if r.group_ids[j] == r.group_ids[i]]
            assert set(same) <= set(batch)
    assert batches == minibatch_groups(r, indices, size, seed=1)


def advantages(rollouts, cfg):
    return rollout_advantages(rollouts, cfg.loss.advantage)


def snapshot(model):
    return {k: v.detach().clone() for k, v in model.state_dict().items()}


def test_optimise_changes_weights_only_with_signal(tiny_model_dir, tmp_path):
    from transformers import AutoModelForCausalLM

    policy = AutoModelForCausalLM.from_pretrained(tiny_model_dir, dtype=torch.float32)
    cfg = load_config(
        None,
        overrides=[
            "loss.kl_beta=0",
            "optim.weight_decay=0",
            "optim.lr=1e-2",
            "batch_size=3",
            "loss.mini_batch_size=2",
            "loss.epochs=2",
            "rollout.temperature=1.0",
        ],
        out=str(tmp_path),
    )
    before = snapshot(policy)
    flat = make_rollouts(groups=3, n=4)
    flat.rewards = [1.0] * len(flat)  # every group constant: advantage 0
    opt = torch.optim.AdamW(policy.parameters(), lr=1e-2, weight_decay=0.0)
    assert rollout_advantages(flat, cfg.loss.advantage).abs().max() == 0
    stats = optimise(policy, None, opt, flat, advantages(flat, cfg), cfg, step=1, pad_id=0)
    assert stats["actor/updates"] == 4  # 2 epochs x ceil(3 groups / 2)
    assert all(torch.equal(before[k], v) for k, v in policy.state_dict().items())
    mixed = make_rollouts(groups=3, n=4)
    stats = optimise(policy, None, opt, mixed, advantages(mixed, cfg), cfg, step=2, pad_id=0)
    changed = [k for k, v in policy.state_dict().items() if not torch.equal(before[k], v)]
    assert changed
    for key in ("actor/entropy", "actor/clip_frac_low", "actor/clip_frac_high", "actor/grad_norm"):
        assert math.isfinite(stats[key])
    assert stats["actor/ratio_min"] <= stats["actor/ratio_mean"] <= stats["actor/ratio_max"]
    assert stats["actor/lr"] == pytest.approx(1e-2)


def test_masked_sequences_are_left_out(tiny_model_dir, tmp_path):
    from transformers import AutoModelForCausalLM

    policy = AutoModelForCausalLM.from_pretrained(tiny_model_dir, dtype=torch.float32)
    cfg = load_config(None, overrides=["loss.kl_beta=0"], out=str(tmp_path))
    r = make_rollouts(groups=2, n=2)
    r.loss_mask = [False] * len(r)
    opt = torch.optim.AdamW(policy.parameters())
    before = snapshot(policy)
    stats = optimise(policy, None, opt, r, advantages(r, cfg), cfg, step=1, pad_id=0)
    assert stats == {"actor/updates": 0.0}
    assert all(torch.equal(before[k], v) for k, v in policy.state_dict().items())


PROTOCOL_METHODS = ("set_lr", "zero_grad", "backward", "step", "reset_state", "save", "load")


@pytest.mark.parametrize("name", ["TorchStepper", "DeepSpeedStepper"])
def test_both_steppers_have_the_protocols_methods_and_signatures(name):
    import inspect

    import prorl_train.deepspeed_engine as engines
    from prorl_train.stepper import OptimizerStepper

    cls = getattr(engines, name)
    for method in PROTOCOL_METHODS:
        want = inspect.signature(getattr(OptimizerStepper, method))
        got = inspect.signature(getattr(cls, method))
        assert list(got.parameters) == list(want.parameters), (name, method)
    init = inspect.getsource(cls.__init__)
    assert "self.model" in init and "self.optimizer" in init  # the Protocol's two attributes


def test_a_torch_optimizer_is_wrapped_and_a_stepper_passes_through(tmp_path):
    from prorl_train.deepspeed_engine import TorchStepper
    from prorl_train.stepper import OptimizerStepper
    from prorl_train.update import as_stepper

    cfg = load_config(None, overrides=["optim.grad_clip=0.5"], out=str(tmp_path))
    layer = torch.nn.Linear(2, 1)
    adam = torch.optim.AdamW(layer.parameters())
    assert not isinstance(adam, OptimizerStepper)
    stepper = as_stepper(layer, adam, cfg)
    assert isinstance(stepper, TorchStepper) and isinstance(stepper, OptimizerStepper)
    assert (stepper.model, stepper.optimizer, stepper.grad_clip) == (layer, adam, 0.5)
    assert as_stepper(layer, stepper, cfg) is stepper


@pytest.mark.parametrize(("chunk_tokens", "share"), [(0, False), (3, False), (0, True), (3, True)])
def test_the_entropy_bonus_equals_a_per_sequence_loop(model, tmp_path, chunk_tokens, share):
    """loss.entropy_coef = c: the update's gradient is that of token-mean(PPO) - c x
    token-mean(entropy), written one sequence at a time (also with chunked logits and shared
    prompts, where the entropy's gradient flows through checkpointed chunks)."""
    r = make_rollouts(groups=2, n=3)
    mb = list(range(len(r)))
    adv = torch.linspace(-1, 1, len(r))
    with torch.no_grad():
        old = forward_logprobs(model, pack(r, mb, 0), 1.0)[0]
    packed = pack(r, mb, 0)
    old_seq = {i: old[b][packed.mask_BR[b]] for b, i in enumerate(mb)}
    ctx = UpdateContext(old=old_seq, ref=None, advantages_B=adv)
    cfg = load_config(
        None,
        overrides=[
            f"model.logits_chunk_tokens={chunk_tokens}",
            f"model.share_prompt_prefix={str(share).lower()}",
            "loss.micro_batch_size=2",
            "loss.entropy_coef=0.3",
            "loss.kl_beta=0",
            "optim.grad_clip=0",
            "rollout.temperature=1.0",
        ],
        out=str(tmp_path),
    )
    opt = recording_optimizer(model.parameters())
    update_minibatch(model, opt, r, mb, ctx, cfg, pad_id=0)
    model.zero_grad()
    pg, ent, tokens = 0.0, 0.0, 0
    for i in mb:
        seq = torch.tensor([r.prompt_ids[i] + r.response_ids[i]])
        start = len(r.prompt_ids[i]) - 1
        logp_all = model(seq).logits[0, :-1].log_softmax(-1)[start:]
        logp = logp_all.gather(-1, seq[0, start + 1 :, None])[:, 0]
        ratio = torch.exp(logp - old_seq[i])
        a = float(adv[i])
        pg = pg + torch.maximum(-a * ratio, -a * ratio.clamp(0.8, 1.4)).sum()
        ent = ent - (logp_all.exp() * logp_all).sum()
        tokens += len(logp)
    ((pg - 0.3 * ent) / tokens).backward()
    compared = 0
    for got, param in zip(opt.seen[0], model.parameters(), strict=True):
        if param.grad is not None:
            torch.testing.assert_close(got, param.grad, atol=5e-6, rtol=1e-4)
            compared += 1
    model.zero_grad()
    assert compared


def test_the_entropy_bonus_changes_the_gradient(model, tmp_path):
    r = make_rollouts(groups=2, n=2)
    mb = list(range(len(r)))
    with torch.no_grad():
        packed = pack(r, mb, 0)
        old = forward_logprobs(model, packed, 1.0)[0]
    ctx = UpdateContext(
        old={i: old[b][packed.mask_BR[b]] for b, i in enumerate(mb)},
        ref=None,
        advantages_B=torch.zeros(len(r)),
    )
    norms = []
    for coef in (0.0, 0.5):
        cfg = load_config(
            None,
            overrides=[f"loss.entropy_coef={coef}", "loss.kl_beta=0", "rollout.temperature=1.0"],
            out=str(tmp_path),
        )
        opt = recording_optimizer(model.parameters())
        _, collected = update_minibatch(model, opt, r, mb, ctx, cfg, pad_id=0)
        norms.append(sum(float(g.abs().sum()) for g in opt.seen[0] if g is not None))
        assert ("entropy_bonus" in collected[0][1]) == (coef > 0)
    assert norms[0] == 0.0 < norms[1]  # zero advantages: only the bonus moves the weights
