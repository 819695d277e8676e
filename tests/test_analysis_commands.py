"""The analysis commands through typer's CliRunner, on synthetic samples files in tmp_path."""

from __future__ import annotations

import inspect
import json
import re
import typing
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import typer
from typer.testing import CliRunner

from prorl_eval.analysis.boundary import compare_boundary
from prorl_eval.analysis.correlation import correlate
from prorl_eval.analysis.curves import passk_curves
from prorl_eval.analysis.inputs import load_counts, problem_counts, run_labels
from prorl_eval.cli.analysis import boundary_command, correlate_command, curves_command
from prorl_eval.errors import UserError

FIXTURES = Path(__file__).parent / "fixtures" / "analysis"
PNG = b"\x89PNG\r\n\x1a\n"


def make_app() -> typer.Typer:
    app = typer.Typer(pretty_exceptions_enable=False, add_completion=False)
    app.command("curves")(curves_command)
    app.command("boundary")(boundary_command)
    app.command("correlate")(correlate_command)
    return app


def invoke(*args: str):
    return CliRunner().invoke(make_app(), [str(a) for a in args])


def write_samples(path: Path, spec: dict[str, list[tuple[int, int]]], model: str = "m") -> Path:
    """{task: [(n, c), ...]} -> a samples JSONL with problem ids 0.. and the first c correct."""
    path.parent.mkdir(parents=True, exist_ok=True)
    lines = []
    for task, problems in spec.items():
        for pid, (n, c) in enumerate(problems):
            for i in range(n):
                row = {"task": task, "problem_id": str(pid), "sample_idx": i, "model": model}
                row["score"] = 1.0 if i < c else 0.0
                lines.append(json.dumps(row))
    path.write_text("\n".join(lines) + "\n")
    return path


BASE = {"gym:a": [(4, 0), (4, 2), (4, 4)], "aime24": [(4, 1), (4, 0)], "ifeval": [(4, 3), (4, 3)]}
RL1 = {"gym:a": [(4, 1), (4, 4), (4, 4)], "aime24": [(4, 4), (4, 0)], "ifeval": [(4, 4), (4, 2)]}
RL2 = {"gym:a": [(4, 2), (4, 4), (4, 4)], "aime24": [(4, 4), (4, 0)], "ifeval": [(4, 4), (4, 4)]}


def assert_user_error(result, fragment: str) -> None:
    assert isinstance(result.exception, UserError), result.output
    message = str(result.exception)
    assert "\n" not in message and fragment in message, message


# ---------------------------------------------------------------------------- inputs


def test_problem_counts_from_samples_and_runs(tmp_path):
    path = write_samples(tmp_path / "run" / "samples.jsonl", {"t": [(3, 1), (2, 2)]})
    counts = load_counts(tmp_path / "run")  # a run folder reads its samples.jsonl
    assert counts[["task", "problem_id", "n", "c"]].values.tolist() == [
        ["t", "0", 3, 1],
        ["t", "1", 2, 2],
    ]
    assert counts.mean_score.tolist() == pytest.approx([1 / 3, 1.0])
    pd.testing.assert_frame_equal(counts, load_counts(path))
    frame = pd.DataFrame({"task": ["t"], "problem_id": [7], "correct": [True]})
    assert problem_counts(frame)[["problem_id", "n", "c"]].values.tolist() == [["7", 1, 1]]


@pytest.mark.parametrize(
    ("content", "fragment"),
    [
        ("", "no sample rows"),
        ('{"task": "t", "problem_id": "0", "sample_idx": 0}\n', "missing field"),
        ("not json\n", "malformed JSON"),
    ],
)
def test_bad_sample_files_are_user_errors(tmp_path, content, fragment):
    path = tmp_path / "s.jsonl"
    path.write_text(content)
    with pytest.raises(UserError, match=fragment):
        load_counts(path)
    with pytest.raises(UserError, match="does not exist"):
        load_counts(tmp_path / "missing.jsonl")


def test_mixed_models_are_refused(tmp_path):
    path = write_samples(tmp_path / "a.jsonl", {"t": [(2, 1)]}, model="x")
    with path.open("a") as fh:
        fh.write(json.dumps({"task": "t", "problem_id": "9", "sample_idx": 0, "score": 1.0,
                             "model": "y"}) + "\n")  # fmt: skip
    with pytest.raises(UserError, match="mixes samples of 2 models"):
        load_counts(path)


def test_run_labels(tmp_path):
    (tmp_path / "step500").mkdir()
    paths = [tmp_path / "step500", tmp_path / "x" / "samples.jsonl", tmp_path / "rl.jsonl"]
    assert run_labels(paths, None) == ["step500", "x", "rl"]
    assert run_labels([tmp_path / "rl.jsonl", tmp_path / "y" / "rl.jsonl"], None) == ["rl", "rl#2"]
    assert run_labels(paths, " a, b ,c") == ["a", "b", "c"]
    for bad, fragment in [("a,b", "2 label(s) for 3"), ("a,,c", "non-empty"), ("a,a,c", "repeats")]:
        with pytest.raises(UserError, match=re.escape(fragment)):
            run_labels(paths, bad)


# ---------------------------------------------------------------------------- curves


def test_curves_command_writes_tables_and_figures(tmp_path):
    base = write_samples(tmp_path / "base" / "samples.jsonl", BASE)
    rl = write_samples(tmp_path / "rl.jsonl", RL1)
    out = tmp_path / "out" / "curves"
    result = invoke("curves", tmp_path / "base", rl, "--out", out, "--bootstrap", 50)
    assert result.exit_code == 0, result.output
    assert "pass@k curves" in result.output and "[domain] math" in result.output
    table = pd.read_csv(out / "passk_curves.csv")
    expected = passk_curves({"base": load_counts(base), "rl": load_counts(rl)}, resamples=50)
    assert table.run.unique().tolist() == ["base", "rl"]
    assert table.pass_at_k.to_numpy() == pytest.approx(expected.pass_at_k.to_numpy())
    assert table.ci_low.to_numpy() == pytest.approx(expected.ci_low.to_numpy())
    records = json.loads((out / "passk_curves.json").read_text())
    assert len(records) == len(table) and records[0]["k"] == 1
    for scope in ("task", "domain", "overall"):
        assert (out / f"passk_curves_{scope}.png").read_bytes()[:8] == PNG
    manifest = json.loads((out / "analysis-curves.json").read_text())
    assert manifest["inputs"] == {"base": str(tmp_path / "base"), "rl": str(rl)}
    assert "passk_curves.csv" in manifest["files"]


def test_curves_command_labels_domains_and_max_k(tmp_path):
    a = write_samples(tmp_path / "a.jsonl", BASE)
    domains = tmp_path / "domains.json"
    domains.write_text(json.dumps({"ifeval": "instructions"}))
    out = tmp_path / "o"
    result = invoke("curves", a, "--labels", "A", "--out", out, "--max-k", 2,
                    "--domains", domains, "--bootstrap", 20)  # fmt: skip
    assert result.exit_code == 0, result.output
    table = pd.read_csv(out / "passk_curves.csv")
    assert set(table.run) == {"A"} and table.k.max() == 2
    assert "instructions" in set(table[table.scope == "domain"].group)


@pytest.mark.parametrize(
    ("extra", "fragment"),
    [
        (["--labels", "a,b"], "2 label(s) for 1"),
        (["--max-k", "0"], "--max-k"),
        (["--bootstrap", "0"], "--bootstrap"),
        (["--level", "1.5"], "--level"),
    ],
)
def test_curves_command_bad_options(tmp_path, extra, fragment):
    a = write_samples(tmp_path / "a.jsonl", BASE)
    assert_user_error(invoke("curves", a, "--out", tmp_path / "o", *extra), fragment)


def test_missing_input_and_unwritable_out_are_user_errors(tmp_path):
    a = write_samples(tmp_path / "a.jsonl", BASE)
    assert_user_error(invoke("curves", tmp_path / "nope", "--out", tmp_path / "o"), "nope")
    blocker = tmp_path / "file"
    blocker.write_text("x")  # a file where a folder is needed: cannot create --out under it
    assert_user_error(invoke("curves", a, "--out", blocker / "sub"), "choose another --out")
    bad_domains = tmp_path / "d.json"
    bad_domains.write_text("[1, 2]")
    result = invoke("curves", a, "--out", tmp_path / "o", "--domains", bad_domains)
    assert_user_error(result, "JSON object")


# -------------------------------------------------------------------------- boundary


def test_boundary_command(tmp_path):
    base = write_samples(tmp_path / "base.jsonl", BASE)
    s1 = write_samples(tmp_path / "runs" / "step500" / "samples.jsonl", RL1)
    s2 = write_samples(tmp_path / "runs" / "step1000" / "samples.jsonl", RL2)
    out = tmp_path / "b"
    result = invoke("boundary", "--base", base, "--rl", tmp_path / "runs" / "step500",
                    "--rl", s2, "--k", 4, "--delta", 0.05, "--out", out)  # fmt: skip
    assert result.exit_code == 0, result.output
    assert "Reasoning boundary: base vs step1000" in result.output
    report = compare_boundary(
        load_counts(base),
        {"step500": load_counts(s1), "step1000": load_counts(s2)},
        k=4,
        delta=0.05,
    )
    tasks = pd.read_csv(out / "boundary_tasks.csv")
    assert tasks.checkpoint.unique().tolist() == ["step500", "step1000"]
    assert tasks.gain_pass_at_k.to_numpy() == pytest.approx(report.tasks.gain_pass_at_k.to_numpy())
    # gym:a: base never solves problem 0; step1000 solves it 2 times in 4
    row = tasks[(tasks.checkpoint == "step1000") & (tasks.task == "gym:a")].iloc[0]
    assert row.rl_only_solved == 1 and row.rl_only_pass_at_1 == pytest.approx(0.5)
    regimes = json.loads((out / "boundary_regimes.json").read_text())
    assert {r["task"]: r["regime"] for r in regimes} == report.regimes.set_index(
        "task"
    ).regime.to_dict()
    ifeval = next(r for r in regimes if r["task"] == "ifeval")
    assert ifeval["best_earlier_gain_pass_at_k"] == pytest.approx(-0.0)
    exclusive = json.loads((out / "boundary_exclusive.json").read_text())
    # only gym:a problem 0 is never solved by the base and solved by RL; none the other way
    assert [(r["checkpoint"], r["task"], r["problem_id"], r["side"]) for r in exclusive] == [
        ("step500", "gym:a", "0", "rl_only"),
        ("step1000", "gym:a", "0", "rl_only"),
    ]
    problems = pd.read_csv(out / "boundary_problems.csv", dtype={"problem_id": str})
    assert len(problems) == 3 * 7
    for stem in ("dropped", "problems", "tasks"):
        assert (out / f"boundary_{stem}.json").is_file()
    assert (out / "boundary.png").read_bytes()[:8] == PNG


def test_boundary_command_reports_dropped_problems_and_nan_as_null(tmp_path):
    base = write_samples(tmp_path / "base.jsonl", {**BASE, "extra": [(4, 1)]})
    rl = write_samples(tmp_path / "rl.jsonl", RL1)
    out = tmp_path / "b"
    result = invoke("boundary", "--base", base, "--rl", rl, "--labels", "final", "--k", 2,
                    "--out", out)  # fmt: skip
    assert result.exit_code == 0, result.output
    assert "base extra: 1 of 1 problems not in every run" in result.output
    tasks = json.loads((out / "boundary_tasks.json").read_text())
    assert {t["task"] for t in tasks} == {"gym:a", "aime24", "ifeval"}
    ifeval = next(t for t in tasks if t["task"] == "ifeval")
    assert ifeval["rl_only_pass_at_1"] is None  # NaN in the frame, null in JSON
    assert ifeval["checkpoint"] == "final"


@pytest.mark.parametrize(
    ("extra", "fragment"),
    [
        (["--k", "8"], "smallest n=4); use --k 4 or less"),
        (["--k", "0"], "--k must be >= 1"),
        (["--labels", "base"], "labelled 'base'"),
        (["--delta", "-1"], "--delta"),
    ],
)
def test_boundary_command_bad_input(tmp_path, extra, fragment):
    base = write_samples(tmp_path / "base.jsonl", BASE)
    rl = write_samples(tmp_path / "rl.jsonl", RL1)
    result = invoke("boundary", "--base", base, "--rl", rl, "--out", tmp_path / "o", *extra)
    assert_user_error(result, fragment)


def test_boundary_command_needs_an_rl_run(tmp_path):
    base = write_samples(tmp_path / "base.jsonl", BASE)
    result = invoke("boundary", "--base", base, "--out", tmp_path / "o")
    assert result.exit_code == 2 and "--rl" in result.output  # typer: missing option


# ------------------------------------------------------------------------- correlate


def _correlate_inputs(tmp_path):
    rng = np.random.default_rng(0)
    base, rl = {}, {}
    for t in range(6):
        cs = rng.integers(0, 9, size=5)
        base[f"gym:t{t}"] = [(8, int(c)) for c in cs]
        rl[f"gym:t{t}"] = [(8, 8 if c < 2 else int(min(8, c + 1))) for c in cs]
    return write_samples(tmp_path / "base.jsonl", base), write_samples(tmp_path / "rl.jsonl", rl)


@pytest.mark.parametrize("suffix", [".csv", ".json"])
def test_correlate_command(tmp_path, suffix):
    base, rl = _correlate_inputs(tmp_path)
    values = {f"gym:t{t}": 1.0 + 0.3 * t for t in range(5)}  # one task without a value
    creativity = tmp_path / f"creativity{suffix}"
    if suffix == ".csv":
        pd.DataFrame({"task": list(values), "ci": list(values.values())}).to_csv(creativity)
        extra = ["--creativity-column", "ci"]
    else:
        creativity.write_text(json.dumps(values))  # {task: value} form
        extra = []
    out = tmp_path / "c"
    result = invoke("correlate", "--base", base, "--rl", rl, "--k", 8, "--out", out,
                    "--creativity", creativity, "--bootstrap", 200, *extra)  # fmt: skip
    assert result.exit_code == 0, result.output
    assert "Per-task correlation" in result.output
    assert "1 task(s) have no" in result.output
    points = pd.read_csv(out / "correlation_points.csv")
    stats = json.loads((out / "correlation_stats.json").read_text())
    assert [s["x"] for s in stats] == ["base_pass_at_k", extra[1] if extra else "creativity_index"]
    want = correlate(points.base_pass_at_k, points.gain_pass_at_1, resamples=200)
    got = stats[0]
    for key in ("pearson_r", "pearson_p", "spearman_rho", "slope", "intercept"):
        assert got[key] == pytest.approx(want[key], abs=1e-12)
    assert [got["pearson_r_ci_low"], got["pearson_r_ci_high"]] == pytest.approx(
        want["pearson_r_ci"]
    )
    assert stats[1]["num_points"] == 5
    for name in ("base", "creativity"):
        assert (out / f"correlation_{name}.png").read_bytes()[:8] == PNG


def test_correlate_command_reads_a_creativity_score_folder(tmp_path):
    base, rl = _correlate_inputs(tmp_path)
    folder = tmp_path / "creativity"
    folder.mkdir()
    groups = [
        {"model": "m", "task": f"gym:t{t}", "creativity_index": 2.0 - 0.1 * t, "num_problems": 5}
        for t in range(6)
    ] + [{"model": "m", "task": "all", "creativity_index": 1.7, "num_problems": 30}]
    (folder / "creativity_summary.json").write_text(json.dumps({"groups": groups}))
    out = tmp_path / "c"
    result = invoke("correlate", "--base", base, "--rl", rl, "--k", 8, "--out", out,
                    "--creativity", folder, "--bootstrap", 50)  # fmt: skip
    assert result.exit_code == 0, result.output
    points = pd.read_csv(out / "correlation_points.csv")
    assert points.creativity_index.tolist() == pytest.approx([2.0 - 0.1 * t for t in range(6)])
    stats = pd.read_csv(out / "correlation_stats.csv")
    want = correlate(points.creativity_index, points.gain_pass_at_1, resamples=50)
    assert stats.pearson_r.iloc[1] == pytest.approx(want["pearson_r"])


def test_correlate_command_gain_at_k_and_errors(tmp_path):
    base, rl = _correlate_inputs(tmp_path)
    out = tmp_path / "c"
    result = invoke("correlate", "--base", base, "--rl", rl, "--k", 4, "--gain", "pass@k",
                    "--out", out, "--bootstrap", 50)  # fmt: skip
    assert result.exit_code == 0, result.output
    stats = pd.read_csv(out / "correlation_stats.csv")
    assert (
        stats.y.tolist() == ["gain_pass_at_k"] and not (out / "correlation_creativity.png").exists()
    )
    args = ["correlate", "--base", base, "--rl", rl, "--out", out]
    assert_user_error(invoke(*args, "--gain", "pass@2"), "--gain must be")
    assert_user_error(invoke(*args, "--k", 16), "use --k 8 or less")
    assert_user_error(
        invoke(*args, "--k", 4, "--creativity", tmp_path / "no.csv"), "does not exist"
    )
    few = write_samples(tmp_path / "few.jsonl", {"a": [(4, 1)], "b": [(4, 2)]})
    assert_user_error(invoke("correlate", "--base", few, "--rl", few, "--k", 4, "--out", out),
                      "at least 3 tasks")  # fmt: skip


# ---------------------------------------------------------------------------- help


@pytest.mark.parametrize("command", [curves_command, boundary_command, correlate_command])
def test_every_parameter_has_help_text(command):
    hints = typing.get_type_hints(command, include_extras=True)
    for name in inspect.signature(command).parameters:
        info = [m for m in hints[name].__metadata__ if hasattr(m, "help")]
        assert info and info[0].help, f"{command.__name__}.{name} has no help"
    assert command.__doc__


def test_help_lists_the_options():
    result = invoke("boundary", "--help")
    assert result.exit_code == 0
    for option in ("--base", "--rl", "--k", "--delta", "--growth-delta", "--labels", "--out"):
        assert option in result.output


def test_curves_on_a_run_folder_with_full_schema_rows(tmp_path):
    # tiny_run: basic_arithmetic c = (2, 0), spell_backward c = (1, 1), n = 2, full sample rows
    run = FIXTURES / "tiny_run"
    result = invoke("curves", run, "--out", tmp_path / "o", "--bootstrap", 20)
    assert result.exit_code == 0, result.output
    table = pd.read_csv(tmp_path / "o" / "passk_curves.csv").set_index(["scope", "group", "k"])
    assert set(table.run) == {"tiny_run"}
    assert table.loc[("task", "gym:basic_arithmetic", 2), "pass_at_k"] == 0.5
    assert table.loc[("task", "gym:spell_backward", 1), "pass_at_k"] == 0.5
    assert table.loc[("task", "gym:spell_backward", 2), "pass_at_k"] == 1.0
    assert table.loc[("overall", "overall", 2), "pass_at_k"] == 0.75
    assert table.loc[("domain", "logic", 1), "num_problems"] == 4
