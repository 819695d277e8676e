"""Two trainer processes (gloo on CPU, DeepSpeed ZeRO 1/2) against the one-process trainer.

The 2-process side runs under `torchrun` with this file as its script (`worker` below): one
launch per ZeRO stage does the sharded-rollout, update and reset checks and writes what it saw;
the tests compare that with the same computation in a fresh single process. Whole
`python -m prorl_train` runs under torchrun are in test_train_deepspeed_runs.py.
The first DeepSpeed initialise on a machine compiles a communication op (~2 min, cached after).
ZeRO-3 runs on CPU too (small weights forced into partitions), checked by the same worker.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest
import torch

pytest.importorskip("deepspeed")

from conftest import CAPS, torchrun
from conftest import make_rollouts as random_rollouts

HERE = Path(__file__).resolve()
STEPS = 3


def make_rollouts(seed: int = 0) -> Any:
    """4 groups of 4 random sequences (conftest's builder): mixed rewards except
    that every group's last response is correct, and one sequence masked out of the loss."""
    return random_rollouts(
        groups=4,
        n=4,
        seed=seed,
        reward=lambda group, j: float((j + group) % 2 if j < 3 else 1.0),
        masked=((1, 0),),
    )


def update_config(model_dir: str, out: str, stage: int, *extra: str) -> Any:
    """4 groups of 4, mini-batches of 2 groups (7-8 sequences) in micro-batches of 3: three
    micro-batches per update, so with 2 ranks one rank pads with a zero-weight backward."""
    from prorl_train.config import load_config

    return load_config(
        None,
        overrides=[
            f"model.name={model_dir}",
            "batch_size=4",
            "loss.mini_batch_size=2",
            "loss.micro_batch_size=3",
            "loss.kl_beta=0.05",
            "optim.lr=3e-3",
            "optim.grad_clip=0.5",
            f"deepspeed.zero_stage={stage}",
            *extra,
        ],
        out=out,
    )


def update(stepper: Any, reference: Any, rollouts: Any, cfg: Any, step: int) -> dict:
    """One step's optimise() on `rollouts`, with their group advantages, as the trainer calls it."""
    from prorl_train.update import optimise, rollout_advantages

    advantages_B = rollout_advantages(rollouts, cfg.loss.advantage)
    return optimise(stepper.model, reference, stepper, rollouts, advantages_B, cfg, step, pad_id=0)


def run_updates(cfg: Any, model_dir: str) -> tuple[Any, Any, Any, list[dict]]:
    """STEPS optimise() calls on fixed rollouts; (stepper, policy, reference, stats per step)."""
    from transformers import AutoModelForCausalLM

    from prorl_train.deepspeed_engine import make_stepper, wrap_reference

    policy = AutoModelForCausalLM.from_pretrained(model_dir, dtype=torch.float32)
    reference = AutoModelForCausalLM.from_pretrained(model_dir, dtype=torch.float32)
    reference.eval().requires_grad_(False)
    stepper = make_stepper(cfg, policy, "cpu")
    reference = wrap_reference(cfg, reference, "cpu")
    rollouts = make_rollouts()
    stats = [update(stepper, reference, rollouts, cfg, step) for step in range(1, STEPS + 1)]
    return stepper, policy, reference, stats


def update_after_resets(stepper: Any, policy: Any, reference: Any, cfg: Any) -> dict:
    """Reset the optimizer and the reference, then one more update; its stats."""
    from prorl_train.resets import reset_optimizer, reset_reference

    reset_optimizer(stepper)
    reset_reference(policy, reference)
    return update(stepper, reference, make_rollouts(), cfg, STEPS + 1)


def sample_prompts(model_dir: str) -> list[list[list[int]]]:
    """5 prompts x 3 samples through a ShardedEngine of 2-prompt chunks (3 chunks)."""
    from transformers import AutoModelForCausalLM, AutoTokenizer

    from prorl_eval.inference.base import SamplingConfig
    from prorl_train.distributed import ShardedEngine
    from prorl_train.rollout import HFRolloutEngine

    model = AutoModelForCausalLM.from_pretrained(model_dir, dtype=torch.float32)
    tokenizer = AutoTokenizer.from_pretrained(model_dir)
    engine = ShardedEngine(HFRolloutEngine(model, tokenizer, batch_size=6), chunk_prompts=2)
    prompts = [[5 + i, 60 + 7 * i, 300 + i] for i in range(5)]
    sampling = SamplingConfig(temperature=1.0, top_p=1.0, max_new_tokens=6)
    groups = engine.sample(prompts, 3, 7, sampling)
    return [[list(s.token_ids) for s in group] for group in groups]


def score_replies() -> tuple[list[float], int]:
    """11 replies to the regex task (reward 1 when a reply starts with A-C) through a
    ShardedScorer; (the scores, how many jobs this process's own scorer was given)."""
    from prorl_eval.scoring import ScoreJob, Scorer
    from prorl_eval.tasks.registry import TaskOptions
    from prorl_train.distributed import ShardedScorer

    inner = Scorer({CAPS: TaskOptions()})
    given: list[int] = []
    score_here = inner.score

    def counting(jobs: list[ScoreJob]) -> list[Any]:
        given.append(len(jobs))
        return score_here(jobs)

    inner.score = counting
    replies = ["Apple", "dog", "Cat", "zebra", " B!", "", "Delta", "A", "c", "Baker", "no"]
    jobs = [ScoreJob(CAPS, f"p{k % 8}", reply) for k, reply in enumerate(replies)]
    scorer = ShardedScorer(inner)
    scores = [score.value for score in scorer.score(jobs)]
    scorer.close()
    return scores, sum(given)


@pytest.mark.parametrize(
    ("overrides", "fragment"),
    [
        (["deepspeed.zero_stage=4"], "must be 0, 1, 2 or 3"),
        (
            ["deepspeed.zero_stage=2", "deepspeed.offload_params=true"],
            "needs deepspeed.zero_stage=3",
        ),
        (["deepspeed.offload_optimizer=true"], "offload_optimizer needs"),
        (["deepspeed.zero_stage=1", "model.dtype=float16"], "bfloat16"),
    ],
)
def test_bad_deepspeed_settings_are_one_line_errors(overrides, fragment):
    from prorl_eval.errors import UserError
    from prorl_train.config import load_config

    with pytest.raises(UserError) as info:
        load_config(None, overrides=overrides, out="x").validate()
    assert fragment in str(info.value) and "\n" not in str(info.value)


def test_zero_without_deepspeed_installed_says_how_to_install(monkeypatch):
    import importlib.util

    from prorl_eval.errors import UserError
    from prorl_train.config import load_config

    real = importlib.util.find_spec
    monkeypatch.setattr(
        importlib.util, "find_spec", lambda name, *a: None if name == "deepspeed" else real(name)
    )
    cfg = load_config(None, overrides=["deepspeed.zero_stage=2"], out="x")
    with pytest.raises(UserError, match=r"pip install -c constraints\.txt deepspeed"):
        cfg.validate()
    load_config(None, out="x").validate()  # stage 0 does not need it


def test_resume_refuses_a_checkpoint_of_another_layout():
    from prorl_eval.errors import UserError
    from prorl_train.config import load_config
    from prorl_train.trainer import check_layout

    zero2 = load_config(None, overrides=["deepspeed.zero_stage=2"], out="x")
    plain = load_config(None, out="x")
    check_layout({"config": plain.to_dict(), "world_size": 4}, plain)  # optimizer.pt: any size
    check_layout({"config": zero2.to_dict(), "world_size": 1}, zero2)
    for state, cfg in (
        ({"config": zero2.to_dict(), "world_size": 2}, zero2),  # partitions of 2 ranks
        ({"config": plain.to_dict(), "world_size": 1}, zero2),
        ({"config": zero2.to_dict(), "world_size": 1}, plain),
    ):
        with pytest.raises(UserError, match="resume with the same"):
            check_layout(state, cfg)


# ----------------------------------------------------------------------- the 2-process side


def worker(model_dir: str, out_dir: str, stage: int) -> None:
    """Run under torchrun: sharded sampling, STEPS updates, an optimizer and a reference reset."""
    from prorl_train import distributed as dist
    from prorl_train.deepspeed_engine import gathered, hf_module
    from prorl_train.resets import reset_optimizer, reset_reference

    torch.set_num_threads(1)
    dist.init_distributed("cpu")
    out = Path(out_dir)
    shards = gathered_shards()
    samples = sample_prompts(model_dir)
    scores, scored_here = score_replies()
    cfg = update_config(model_dir, out_dir, stage)
    if stage == 3:  # partition even this tiny model's small tensors
        import prorl_train.deepspeed_engine as dse

        plain = dse.ds_config

        def forced(*args: Any, **kwargs: Any) -> dict:
            config = plain(*args, **kwargs)
            config["zero_optimization"]["stage3_param_persistence_threshold"] = 0
            return config

        dse.ds_config = forced
    loading = check_partitioned_loading(cfg, model_dir) if stage == 3 else {}
    stepper, policy, reference, stats = run_updates(cfg, model_dir)
    with gathered(policy):
        params = {k: v.detach().clone() for k, v in policy.state_dict().items()}
    inner = getattr(stepper.optimizer, "optimizer", stepper.optimizer)
    state_before = len(inner.state)
    reset_optimizer(stepper)
    state_after = len(inner.state)
    reset_reference(policy, reference)
    with gathered(policy), gathered(reference):
        copied = hf_module(reference).state_dict()
        equal = all(torch.equal(v, copied[k]) for k, v in policy.state_dict().items())
    after = update(stepper, reference, make_rollouts(), cfg, STEPS + 1)
    seen = dist.all_gather_object(
        {
            "shards": shards,
            "samples": samples,
            "scores": scores,
            "scored_here": scored_here,
            "stats": stats,
            "state": [state_before, state_after, len(inner.state)],
            "eq": equal,
            "loading": loading,
            "after_resets": after,
        }
    )
    if dist.is_main():
        torch.save(params, out / "params.pt")
        (out / "seen.json").write_text(json.dumps(seen))
    dist.barrier()


def gathered_shards() -> dict[str, Any]:
    """gather_shards over the ranks: 5 items dealt round-robin (rank 0 holds 0, 2, 4; rank 1
    holds 1, 3), each tagged with the rank that made it; and the refusal of an index held twice."""
    from prorl_train import distributed as dist

    me = dist.rank()
    mine = {k: [k, me] for k in range(me, 5, dist.world_size())}
    merged = dist.gather_shards(mine, 5)
    try:
        dist.gather_shards({0: me}, 1)  # every rank claims index 0
        twice = ""
    except ValueError as exc:
        twice = str(exc)
    return {"merged": merged, "twice": twice}


def check_partitioned_loading(cfg: Any, model_dir: str) -> dict[str, Any]:
    """Load the model as the ZeRO-3 trainer does; what this rank holds, and whether the gathered
    weights are the file's."""
    from safetensors.torch import load_file
    from transformers import AutoModelForCausalLM
    from transformers.integrations import is_deepspeed_zero3_enabled

    from prorl_train.deepspeed_engine import gathered, is_partitioned, partitioned_loading

    with partitioned_loading(cfg, "cpu"):
        model = AutoModelForCausalLM.from_pretrained(model_dir, dtype=torch.float32)
    held = sum(p.ds_tensor.numel() for p in model.parameters())
    whole = sum(p.ds_numel for p in model.parameters())
    stored = load_file(Path(model_dir) / "model.safetensors")
    with gathered(model):
        weights = model.state_dict()
        same = all(torch.equal(weights[k], v) for k, v in stored.items())
    return {
        "partitioned": is_partitioned(model),
        "held": held,
        "whole": whole,
        "same_as_file": same,
        "zero3_after": is_deepspeed_zero3_enabled(),
    }


@pytest.fixture(scope="module", params=[2, 1, 3], ids=["zero2", "zero1", "zero3"])
def two_ranks(request, tiny_model_dir, tmp_path_factory):
    out = tmp_path_factory.mktemp(f"zero{request.param}")
    torchrun(str(HERE), str(tiny_model_dir), str(out), str(request.param))
    seen = json.loads((out / "seen.json").read_text())
    return request.param, seen, torch.load(out / "params.pt")


def single(model_dir: str, out_dir: str) -> None:
    """The same updates in one plain process with torch AdamW (zero_stage 0), no launcher."""
    torch.set_num_threads(1)
    out = Path(out_dir)
    cfg = update_config(model_dir, out_dir, 0)
    stepper, policy, reference, stats = run_updates(cfg, model_dir)
    torch.save({k: v.detach().clone() for k, v in policy.state_dict().items()}, out / "params.pt")
    after = update_after_resets(stepper, policy, reference, cfg)
    samples = sample_prompts(model_dir)
    (out / "single.json").write_text(json.dumps([stats, samples, after, score_replies()]))


@pytest.fixture(scope="module")
def one_rank(tiny_model_dir, tmp_path_factory):
    """The one-process reference, computed in a fresh process like the ranks (a process that
    already ran other tests, e.g. an in-process vLLM engine, can round differently)."""
    out = tmp_path_factory.mktemp("one")
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    command = [sys.executable, str(HERE), "single", str(tiny_model_dir), str(out)]
    done = subprocess.run(command, capture_output=True, text=True, env=env, timeout=600)
    assert done.returncode == 0, done.stderr[-4000:]
    stats, samples, after, scored = json.loads((out / "single.json").read_text())
    return stats, torch.load(out / "params.pt"), samples, after, scored


@pytest.mark.slow
def test_gathered_shards_come_back_in_index_order_on_every_rank(two_ranks):
    _, seen, _ = two_ranks
    for rank in seen:
        assert rank["shards"]["merged"] == [[0, 0], [1, 1], [2, 0], [3, 1], [4, 0]]
        assert "computed by two ranks" in rank["shards"]["twice"]


@pytest.mark.slow
def test_sharded_rollouts_equal_the_one_process_rollouts(two_ranks, one_rank):
    _, seen, _ = two_ranks
    assert seen[0]["samples"] == seen[1]["samples"] == one_rank[2]
    assert len(one_rank[2]) == 5 and all(len(group) == 3 for group in one_rank[2])


@pytest.mark.slow
def test_sharded_scoring_splits_the_jobs_and_every_rank_gets_all_scores(two_ranks, one_rank):
    _, seen, _ = two_ranks
    alone_scores, alone_scored = one_rank[4]
    assert alone_scores == [1.0, 0.0, 1.0, 0.0, 1.0, 0.0, 0.0, 1.0, 0.0, 1.0, 0.0]
    assert alone_scored == 11
    assert seen[0]["scores"] == seen[1]["scores"] == alone_scores
    assert [seen[0]["scored_here"], seen[1]["scored_here"]] == [6, 5]


@pytest.mark.slow
def test_zero3_builds_the_model_partitioned_with_the_files_weights(two_ranks):
    stage, seen, _ = two_ranks
    if stage != 3:
        pytest.skip("ZeRO-3 only")
    for rank in seen:
        loading = rank["loading"]
        assert loading["partitioned"] and loading["same_as_file"]
        assert loading["held"] <= loading["whole"] // 2 + 64  # its shard, not the whole model
        assert not loading["zero3_after"]  # later from_pretrained calls load whole models
    assert seen[0]["loading"]["whole"] == seen[1]["loading"]["whole"] > 100_000


@pytest.mark.slow
def test_zero_updates_match_the_one_process_update(two_ranks, one_rank, tiny_model_dir):
    from transformers import AutoModelForCausalLM

    stage, seen, params = two_ranks
    single_stats, single_params, *_ = one_rank
    assert seen[0]["stats"] == seen[1]["stats"]  # every rank reports the same step
    for step, (mine, theirs) in enumerate(zip(seen[0]["stats"], single_stats, strict=True)):
        assert mine.keys() == theirs.keys()
        assert mine["actor/updates"] == 2.0
        for key, value in theirs.items():
            assert mine[key] == pytest.approx(value, rel=1e-4, abs=1e-6), (stage, step, key)
    assert single_stats[0]["actor/grad_norm_max"] > 0.5  # clipping was active at least once
    drift = max(float((params[k] - v).abs().max()) for k, v in single_params.items())
    initial = AutoModelForCausalLM.from_pretrained(tiny_model_dir, dtype=torch.float32)
    moved = max(float((params[k] - v).abs().max()) for k, v in initial.state_dict().items())
    assert drift < 1e-5, drift
    assert moved > 1e-3


@pytest.mark.slow
def test_resets_under_zero_clear_the_state_and_copy_the_policy(two_ranks, one_rank):
    """After both resets the state is empty (then re-created by the next step), the reference
    equals the policy, and the next update matches the one-process update after its resets."""
    _, seen, _ = two_ranks
    for rank in seen:
        before, after, next_step = rank["state"]
        assert before > 0 and after == 0 and next_step == before
        assert rank["eq"]
    single_after = one_rank[3]
    assert single_after["actor/kl_ref"] < seen[0]["stats"][-1]["actor/kl_ref"]  # ref moved up
    for key, value in single_after.items():
        assert seen[0]["after_resets"][key] == pytest.approx(value, rel=1e-4, abs=1e-6), key


@pytest.mark.gpu
@pytest.mark.parametrize("stage", [2, 3])
def test_bf16_zero_with_offload_on_one_gpu(tiny_model_dir, tmp_path, stage):
    """One GPU, a process group of one: bf16 weights, fp32 optimizer state offloaded to the CPU
    (stage 3: the weights too), updates, resets, and generate on ZeRO-3's gathered weights."""
    if not torch.cuda.is_available():
        pytest.skip("needs a CUDA GPU")
    from transformers import AutoModelForCausalLM, AutoTokenizer

    from prorl_eval.inference.base import SamplingConfig
    from prorl_train import distributed as dist
    from prorl_train.deepspeed_engine import generation_weights, make_stepper, wrap_reference
    from prorl_train.rollout import HFRolloutEngine

    dist.init_distributed("cuda", one_process_group=True)
    extra = ["deepspeed.offload_optimizer=true", f"deepspeed.offload_params={stage == 3}"]
    cfg = update_config(str(tiny_model_dir), str(tmp_path), stage, *extra)
    policy = AutoModelForCausalLM.from_pretrained(tiny_model_dir, dtype=torch.float32).cuda()
    reference = AutoModelForCausalLM.from_pretrained(tiny_model_dir, dtype=torch.bfloat16).cuda()
    stepper = make_stepper(cfg, policy, "cuda:0")
    reference = wrap_reference(cfg, reference.requires_grad_(False), "cuda:0")
    assert next(policy.parameters()).dtype == torch.bfloat16
    stats = [update(stepper, reference, make_rollouts(), cfg, step) for step in (1, 2)]
    assert all(torch.isfinite(torch.tensor(s["actor/pg_loss"])) for s in stats)
    assert stats[1]["actor/kl_ref"] > 0
    after = update_after_resets(stepper, policy, reference, cfg)
    assert after["actor/kl_ref"] < stats[1]["actor/kl_ref"]
    tokenizer = AutoTokenizer.from_pretrained(tiny_model_dir)
    engine = HFRolloutEngine(policy, tokenizer, batch_size=4)
    with generation_weights(stepper):
        groups = engine.sample([[5, 6, 7]], 2, 0, SamplingConfig(max_new_tokens=4))
    assert len(groups) == 1 and len(groups[0]) == 2


if __name__ == "__main__":
    if sys.argv[1] == "single":
        single(sys.argv[2], sys.argv[3])
    else:
        worker(sys.argv[1], sys.argv[2], int(sys.argv[3]))
