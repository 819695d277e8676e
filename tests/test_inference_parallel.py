"""Data parallelism: two Hugging Face worker processes must reproduce one in-process generator."""

from __future__ import annotations

import itertools
import os
import signal
import threading

import pytest

from prorl_eval.errors import UserError
from prorl_eval.inference import GenerationRequest, SamplingConfig, make_generator
from prorl_eval.inference.hf import HFGenerator
from prorl_eval.inference.parallel import (
    DataParallelGenerator,
    WorkerCrashed,
    gpu_slices,
    split_requests,
)
from prorl_eval.runner import EvalConfig, run_pass_at_k
from prorl_eval.schema import read_samples

# 8 prompts x 4 samples with batch_size 8: every packed batch holds two whole requests, both in one
# process and in each of two shards, so even the HF backend's per-batch seeds line up.
REQUESTS = [GenerationRequest(f"What is {i} + {i}?", n=4, seed=100 + i) for i in range(8)]


@pytest.fixture(scope="module")
def parallel(tiny_model_dir):
    gen = make_generator("hf", str(tiny_model_dir), batch_size=8, data_parallel_size=2)
    yield gen
    gen.close()


@pytest.fixture(scope="module")
def single(tiny_model_dir):
    return HFGenerator(str(tiny_model_dir), batch_size=8)


def texts(outputs):
    return [[c.text for c in completions] for completions in outputs]


def test_split_requests_is_contiguous_and_balanced():
    sizes = [5, 1, 1, 1, 8, 2, 2, 3, 1]
    requests = [GenerationRequest("p", n, i) for i, n in enumerate(sizes)]
    for parts in range(1, 6):
        bounds = split_requests(requests, parts)
        assert len(bounds) == parts
        assert bounds[0][0] == 0 and bounds[-1][1] == len(requests)
        assert all(a[1] == b[0] for a, b in itertools.pairwise(bounds))
        loads = [sum(sizes[s:e]) for s, e in bounds]
        # Each shard is within one request's size of the ideal share.
        assert max(loads) - sum(sizes) / parts <= max(sizes)
    assert split_requests(requests[:2], 4)[-1][1] == 2  # more workers than requests: some idle


def test_gpu_slices_give_each_engine_its_own_gpus():
    gpus = [str(i) for i in range(8)]
    assert gpu_slices(gpus, 2, 4) == ["0,1", "2,3", "4,5", "6,7"]
    assert gpu_slices(gpus, 1, 8) == [str(i) for i in range(8)]
    with pytest.raises(UserError, match="needs 16 GPUs but 8 are visible"):
        gpu_slices(gpus, 2, 8)


@pytest.mark.slow
def test_workers_run_in_their_own_processes(parallel):
    assert parallel.backend == "hf"
    assert len(set(parallel.pids)) == 2 and os.getpid() not in parallel.pids


@pytest.mark.slow
def test_workers_measure_prompts_as_one_process_does(parallel, single):
    """The runner sorts hf work by prompt length; with workers it must sort it the same way."""
    sampling = SamplingConfig()
    requests = [GenerationRequest("word " * (9 - i), n=1, seed=i) for i in range(8)]
    lengths = parallel.prompt_lengths(requests, sampling)
    assert lengths == single.prompt_lengths(requests, sampling)
    assert lengths == sorted(lengths, reverse=True) and len(set(lengths)) == 8


@pytest.mark.slow
def test_greedy_completions_equal_one_process_in_order(parallel, single):
    sampling = SamplingConfig(temperature=0.0, max_new_tokens=10)
    assert parallel.generate(REQUESTS, sampling) == single.generate(REQUESTS, sampling)


@pytest.mark.slow
def test_seeded_samples_equal_one_process_in_order(parallel, single):
    sampling = SamplingConfig(temperature=1.0, top_p=1.0, max_new_tokens=10)
    via_workers = parallel.generate(REQUESTS, sampling)
    assert via_workers == single.generate(REQUESTS, sampling)
    assert len({c.text for c in via_workers[0]}) > 1  # real samples, not one repeated answer
    # A call smaller than the worker count still works (one worker idles).
    assert parallel.generate(REQUESTS[:1], sampling) == single.generate(REQUESTS[:1], sampling)


@pytest.mark.slow
def test_a_killed_worker_is_an_error_not_a_hang(tiny_model_dir):
    gen = DataParallelGenerator(
        "hf", str(tiny_model_dir), data_parallel_size=2, options={"batch_size": 8}
    )
    victim = gen.pids[1]
    requests = [GenerationRequest(f"word{i} " * 20, n=4, seed=i) for i in range(32)]
    threading.Timer(1.0, os.kill, (victim, signal.SIGKILL)).start()
    with pytest.raises(WorkerCrashed, match=r"worker 2 of 2 .* was killed by signal 9 while gen"):
        gen.generate(requests, SamplingConfig(temperature=1.0, max_new_tokens=300))
    assert gen.pids == []  # the surviving worker was stopped too
    with pytest.raises(RuntimeError, match="closed"):
        gen.generate(requests, SamplingConfig())


@pytest.mark.slow
def test_a_worker_that_cannot_start_reports_why(tmp_path):
    (tmp_path / "config.json").write_text("{}")  # not a loadable model
    with pytest.raises(WorkerCrashed, match=r"worker [12] of 2 .* failed while starting"):
        DataParallelGenerator("hf", str(tmp_path), data_parallel_size=2)


@pytest.mark.slow
def test_the_eval_loop_gives_the_same_rows_with_two_workers(tmp_path, tiny_model_dir):
    """8 problems x 4 samples: one process makes four calls of two problems (one batch each); two
    workers get two calls of four problems, two per worker: the same batches, so the same rows."""

    def run(out, dp):
        config = EvalConfig(
            out=str(out),
            model=str(tiny_model_dir),
            tasks="gym:basic_arithmetic",
            n=4,
            ks=(1, 4),
            limit=8,
            backend="hf",
            batch_size=8,
            data_parallel_size=dp,
            sampling=SamplingConfig(temperature=1.0, max_new_tokens=8),
        )
        run_pass_at_k(config)
        rows = read_samples(out / "samples.jsonl")
        return {(r["problem_id"], r["sample_idx"]): (r["response"], r["num_tokens"]) for r in rows}

    two = run(tmp_path / "two", 2)
    assert two == run(tmp_path / "one", 1)
    assert len(two) == 8 * 4
