"""The eval loop with a scripted backend: rows, results, resume, and refusal of mixed settings."""

from __future__ import annotations

import json

import numpy as np
import pytest

from prorl_eval.errors import UserError
from prorl_eval.inference.base import SamplingConfig
from prorl_eval.inference.vllm import vllm_available
from prorl_eval.passk import pass_at_k
from prorl_eval.runner import EvalConfig, run_pass_at_k
from prorl_eval.schema import read_samples
from prorl_eval.seeds import derive_seed
from prorl_eval.tasks.registry import TaskOptions, resolve_tasks
from tests.conftest import LengthSortingGenerator, ScriptedGenerator

TASKS = "gym:leg_counting,gym:basic_arithmetic"


def _answers(limit: int) -> dict[str, str]:
    tasks = resolve_tasks(TASKS, TaskOptions(limit=limit))
    return {t.prompt(p): str(p.answer) for t in tasks for p in t.load()}


def _config(out, **overrides) -> EvalConfig:
    base = dict(out=str(out), tasks=TASKS, n=8, ks=(1, 2, 8), limit=5, batch_size=16)
    base.update(overrides)
    return EvalConfig(**base)


def _factory(generator):
    return lambda backend, model: generator


def test_run_writes_every_row_and_a_results_contract(tmp_path):
    gen = ScriptedGenerator(_answers(5))
    results = run_pass_at_k(_config(tmp_path / "run"), generator_factory=_factory(gen))
    rows = read_samples(tmp_path / "run" / "samples.jsonl")
    assert len(rows) == 2 * 5 * 8
    assert len({(r["task"], r["problem_id"], r["sample_idx"]) for r in rows}) == len(rows)
    assert gen.closed
    # Every n samples of a prompt were requested together.
    assert all(r.n == 8 for call in gen.calls for r in call)
    row = rows[0]
    for field in ("prompt", "response", "reason", "model", "sampling", "num_tokens", "correct"):
        assert field in row
    assert row["sampling"]["temperature"] == 0.6 and row["sampling"]["top_p"] == 0.95

    on_disk = json.loads((tmp_path / "run" / "results.json").read_text())
    assert on_disk == json.loads(json.dumps(results))
    for task in ("gym:leg_counting", "gym:basic_arithmetic"):
        summary = on_disk["tasks"][task]
        assert summary["num_problems"] == 5 and summary["n"] == 8
        task_rows = [r for r in rows if r["task"] == task]
        counts = {}
        for r in task_rows:
            counts.setdefault(r["problem_id"], []).append(r["correct"])
        n = np.array([len(v) for v in counts.values()])
        c = np.array([sum(v) for v in counts.values()])
        for k in (1, 2, 8):
            assert summary["pass_at_k"][str(k)] == pytest.approx(pass_at_k(n, c, k).mean())
            low, high = summary["pass_at_k_ci95"][str(k)]
            assert low <= summary["pass_at_k"][str(k)] <= high
        assert summary["mean_score"] == pytest.approx(np.mean([r["score"] for r in task_rows]))
    assert on_disk["bootstrap"] == {"resamples": 1000, "seed": 0}
    assert 0 < on_disk["tasks"]["gym:leg_counting"]["pass_at_k"]["1"] < 1


def test_interrupted_run_resumes_without_duplicates_or_loss(tmp_path):
    out = tmp_path / "run"
    answers = _answers(5)
    # 16 sequences per call = 2 problems per call; the 3rd call is interrupted.
    with pytest.raises(KeyboardInterrupt):
        run_pass_at_k(
            _config(out), generator_factory=_factory(ScriptedGenerator(answers, fail_on_call=3))
        )
    before = (out / "samples.jsonl").read_text()
    assert len(read_samples(out / "samples.jsonl")) == 4 * 8

    resumed = ScriptedGenerator(answers)
    run_pass_at_k(_config(out), generator_factory=_factory(resumed))
    assert resumed.generated == 2 * 5 * 8 - 4 * 8  # only the missing rows
    after = (out / "samples.jsonl").read_text()
    assert after.startswith(before)  # nothing rewritten
    rows = read_samples(out / "samples.jsonl")  # raises on duplicates
    assert len(rows) == 2 * 5 * 8

    # A third run has nothing to do and does not even build a generator.
    def no_generator(backend, model):
        raise AssertionError("nothing is missing, no model should load")

    run_pass_at_k(_config(out), generator_factory=no_generator)


def test_a_torn_last_row_is_regenerated(tmp_path):
    out = tmp_path / "run"
    answers = _answers(5)
    run_pass_at_k(_config(out), generator_factory=_factory(ScriptedGenerator(answers)))
    path = out / "samples.jsonl"
    text = path.read_text()
    last_start = text.rstrip("\n").rfind("\n") + 1
    path.write_text(text[: last_start + 40])  # a crash mid-write of the final row
    again = ScriptedGenerator(answers)
    run_pass_at_k(_config(out), generator_factory=_factory(again))
    assert again.generated == 1
    assert len(read_samples(path)) == 2 * 5 * 8


def test_growing_n_generates_only_new_indices_with_fresh_seeds(tmp_path):
    out = tmp_path / "run"
    answers = _answers(5)
    first = ScriptedGenerator(answers)
    run_pass_at_k(_config(out, n=4, ks=(1, 4)), generator_factory=_factory(first))
    second = ScriptedGenerator(answers)
    results = run_pass_at_k(_config(out, n=8, ks=(1, 8)), generator_factory=_factory(second))
    assert second.generated == 2 * 5 * 4
    first_seeds = {r.seed for call in first.calls for r in call}
    second_seeds = {r.seed for call in second.calls for r in call}
    assert not first_seeds & second_seeds
    assert results["tasks"]["gym:leg_counting"]["n"] == 8
    assert derive_seed(0, "t", "1", [0, 1]) == derive_seed(0, "t", "1", [0, 1])
    assert derive_seed(0, "t", "1", [0, 1]) != derive_seed(0, "t", "1", [2, 3])


@pytest.mark.parametrize(
    ("change", "message"),
    [
        ({"sampling": SamplingConfig(temperature=1.0)}, "temperature=0.6 there, 1.0 now"),
        ({"model": "./elsewhere"}, "different model settings"),
        ({"data_seed": 3}, "made differently"),
    ],
)
def test_mismatched_settings_are_refused_and_nothing_is_touched(tmp_path, change, message):
    out = tmp_path / "run"
    answers = _answers(5)
    run_pass_at_k(_config(out), generator_factory=_factory(ScriptedGenerator(answers)))
    (tmp_path / "elsewhere").mkdir()
    (tmp_path / "elsewhere" / "config.json").write_text("{}")
    snapshot = {p.name: p.read_bytes() for p in out.iterdir()}
    import os

    cwd = os.getcwd()
    os.chdir(tmp_path)
    try:
        with pytest.raises(UserError, match=message):
            run_pass_at_k(
                _config(out, **change), generator_factory=_factory(ScriptedGenerator(answers))
            )
    finally:
        os.chdir(cwd)
    assert {p.name: p.read_bytes() for p in out.iterdir()} == snapshot


@pytest.mark.parametrize(
    ("overrides", "message"),
    [
        ({"ks": (1, 16)}, "k=16 exceeds --n 8"),
        ({"n": 0, "ks": (1,)}, "--n must be a positive"),
        ({"limit": 0}, "--limit must be a positive"),
        ({"tasks": "gym:no_such_puzzle"}, "unknown Reasoning Gym dataset"),
        ({"tasks": "aime99"}, "unknown task 'aime99'"),
        ({"tasks": " , "}, "--tasks is empty"),
        ({"sampling": SamplingConfig(top_p=0)}, "--top-p"),
    ],
)
def test_bad_configs_fail_before_any_work(tmp_path, overrides, message):
    with pytest.raises(UserError, match=message):
        run_pass_at_k(_config(tmp_path / "run", **overrides), generator_factory=None)
    assert not (tmp_path / "run" / "samples.jsonl").exists()


def test_scoring_in_worker_processes_gives_the_same_rows(tmp_path):
    answers = _answers(5)
    run_pass_at_k(
        _config(tmp_path / "local"), generator_factory=_factory(ScriptedGenerator(answers))
    )
    run_pass_at_k(
        _config(tmp_path / "pool", score_workers=2),
        generator_factory=_factory(ScriptedGenerator(answers)),
    )

    def keyed(folder):
        return {
            (r["task"], r["problem_id"], r["sample_idx"]): (r["score"], r["reason"], r["response"])
            for r in read_samples(folder / "samples.jsonl")
        }

    assert keyed(tmp_path / "pool") == keyed(tmp_path / "local")


def test_served_model_is_identity_but_the_server_url_is_not(tmp_path):
    """openai backend: resuming from another URL works; another served model is refused."""
    out = tmp_path / "run"
    answers = _answers(5)
    served = dict(backend="openai", served_model="m", base_url="http://a:8000/v1")
    first = ScriptedGenerator(answers, backend="openai")
    run_pass_at_k(_config(out, n=4, ks=(1, 4), **served), generator_factory=_factory(first))
    manifest = json.loads((out / "run.json").read_text())
    assert manifest["model"]["served_model"] == "m"
    assert manifest["generation"] == [{"backend": "openai", "base_url": "http://a:8000/v1"}]

    moved = {**served, "base_url": "http://b:9000/v1"}
    second = ScriptedGenerator(answers, backend="openai")
    run_pass_at_k(_config(out, **moved), generator_factory=_factory(second))
    assert second.generated == 2 * 5 * 4
    manifest = json.loads((out / "run.json").read_text())
    assert [g["base_url"] for g in manifest["generation"]] == [
        "http://a:8000/v1",
        "http://b:9000/v1",
    ]
    assert "api_key" not in json.dumps(manifest)

    with pytest.raises(UserError, match="served_model='m' there, 'other' now"):
        run_pass_at_k(
            _config(out, **{**served, "served_model": "other"}),
            generator_factory=_factory(ScriptedGenerator(answers)),
        )
    # A local backend on the same folder is another model source too.
    with pytest.raises(UserError, match="different model settings"):
        run_pass_at_k(_config(out, backend="hf"), generator_factory=_factory(second))


def test_scale_out_settings_do_not_block_a_resume(tmp_path):
    out = tmp_path / "run"
    answers = _answers(5)
    run_pass_at_k(
        _config(out, n=4, ks=(1,)), generator_factory=_factory(ScriptedGenerator(answers))
    )
    again = ScriptedGenerator(answers)
    run_pass_at_k(
        _config(out, data_parallel_size=2, batch_size=8), generator_factory=_factory(again)
    )
    assert again.generated == 2 * 5 * 4
    # Two engines: each call carries two engines' worth of sequences.
    assert [sum(r.n for r in call) for call in again.calls] == [16, 16, 8]
    generation = json.loads((out / "run.json").read_text())["generation"]
    assert [g["data_parallel_size"] for g in generation] == [1, 2]


@pytest.mark.parametrize(
    ("overrides", "message"),
    [
        ({"backend": "openai"}, "--backend openai needs --base-url"),
        ({"base_url": "http://x/v1"}, "--base-url needs --backend openai"),
        ({"served_model": "m", "backend": "hf"}, "--served-model needs --backend openai"),
        ({"tensor_parallel_size": 2, "backend": "hf"}, "--tensor-parallel-size needs --backend"),
        pytest.param(
            {"tensor_parallel_size": 2, "backend": "vllm"},
            "needs GPUs and none are visible",
            marks=pytest.mark.skipif(not vllm_available(), reason="vLLM is not installed"),
        ),
        ({"data_parallel_size": 0}, "--data-parallel-size must be at least 1"),
        ({"concurrency": 0}, "--concurrency must be at least 1"),
        (
            {"backend": "openai", "base_url": "http://x/v1", "data_parallel_size": 2},
            "configure them on the server",
        ),
    ],
)
def test_bad_scale_out_combinations_fail_before_any_work(tmp_path, monkeypatch, overrides, message):
    monkeypatch.setenv("CUDA_VISIBLE_DEVICES", "")  # no GPUs, on any machine
    with pytest.raises(UserError, match=message):
        run_pass_at_k(_config(tmp_path / "run", **overrides), generator_factory=None)
    assert not (tmp_path / "run").exists()


def _row_set(out):
    rows = read_samples(out / "samples.jsonl")
    return len(rows), {(r["task"], r["problem_id"], r["sample_idx"], r["response"]) for r in rows}


def test_length_sorting_backends_get_work_shortest_prompt_first(tmp_path):
    """A backend offering `prompt_lengths` (hf) receives the pending work from the shortest prompt
    to the longest, across calls; the rows written, and a resume after an interruption, are the
    same as in planned order."""
    answers = _answers(5)
    plain = ScriptedGenerator(answers)
    run_pass_at_k(_config(tmp_path / "plain"), generator_factory=_factory(plain))
    by_length = LengthSortingGenerator(answers)
    run_pass_at_k(_config(tmp_path / "sorted"), generator_factory=_factory(by_length))
    seen = [len(r.prompt) for call in by_length.calls for r in call]
    assert seen == sorted(seen) and seen != [len(r.prompt) for c in plain.calls for r in c]
    assert _row_set(tmp_path / "sorted") == _row_set(tmp_path / "plain")

    out = tmp_path / "resumed"
    with pytest.raises(KeyboardInterrupt):
        run_pass_at_k(
            _config(out),
            generator_factory=_factory(LengthSortingGenerator(answers, fail_on_call=3)),
        )
    assert 0 < _row_set(out)[0] < 80
    rest = LengthSortingGenerator(answers)
    run_pass_at_k(_config(out), generator_factory=_factory(rest))
    assert rest.generated == 80 - 2 * 16  # only what the interrupted run had not written
    assert _row_set(out) == _row_set(tmp_path / "plain")
