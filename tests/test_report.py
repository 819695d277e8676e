"""`prorl-eval report`: table values against hand computations, bold/grouping/averages, the three
writers (LaTeX escaping, self-contained HTML, Markdown links) and the refusals."""

from __future__ import annotations

import base64
import json
import re
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from prorl_eval.cli.report import report_command
from prorl_eval.errors import UserError
from prorl_eval.report.render import format_cell, latex_escape, markdown_escape, render_latex
from prorl_eval.report.tables import (
    AVERAGE_ROW,
    average_interval,
    build_tables,
    cell_table,
    mark_best,
)
from prorl_eval.results import load_results
from tests.conftest import REPORT_N as N
from tests.conftest import REPORT_RESAMPLES as RESAMPLES
from tests.conftest import REPORT_RUNS as RUNS
from tests.conftest import REPORT_SEED as SEED
from tests.conftest import report_sample_rows as sample_rows
from tests.conftest import write_report_run as write_run


@pytest.fixture(scope="module")
def run_dirs(tmp_path_factory) -> dict[str, Path]:
    root = tmp_path_factory.mktemp("runs")
    return {name: write_run(root / name, spec) for name, spec in RUNS.items()}


@pytest.fixture(scope="module")
def small_runs(tmp_path_factory) -> dict[str, Path]:
    """Two runs of two tasks: quick reports for the command tests."""
    root = tmp_path_factory.mktemp("small")
    keep = ("aime24", "gym:chain_sum")
    return {
        name: write_run(root / name, {t: RUNS[name][t] for t in keep}) for name in ("base", "final")
    }


@pytest.fixture(scope="module")
def report_dir(run_dirs, tmp_path_factory) -> Path:
    out = tmp_path_factory.mktemp("report")
    report_command([str(p) for p in run_dirs.values()], out, None, 1, str(run_dirs["base"]))
    return out


def loop_bootstrap(values_by_task: list[np.ndarray], resamples: int, seed: int):
    """Plain loops: stratified bootstrap of the equal-weight mean (one task = plain bootstrap)."""
    rng = np.random.default_rng(seed)
    draws = [rng.integers(0, len(v), size=(resamples, len(v))) for v in values_by_task]
    means = []
    for r in range(resamples):
        pairs = zip(values_by_task, draws, strict=True)
        task_means = [np.mean([v[i] for i in idx[r]]) for v, idx in pairs]
        means.append(sum(task_means) / len(task_means))
    low, high = np.quantile(means, [0.025, 0.975])
    return low, high


def hand_cell(counts: list[int]) -> tuple[float, float]:
    """(mean, half-width) of pass@1 in percent, from scratch."""
    values = np.array(counts) / N
    low, high = loop_bootstrap([values], RESAMPLES, SEED)
    return 100 * values.mean(), 50 * (high - low)


@pytest.fixture(scope="module")
def tables(run_dirs):
    from prorl_eval.analysis.inputs import load_counts

    results = {name: load_results(path) for name, path in run_dirs.items()}
    cells = cell_table(results, k=1)
    counts = {name: load_counts(path) for name, path in run_dirs.items()}
    boot = {name: {"resamples": RESAMPLES, "seed": SEED} for name in run_dirs}
    return {t.domain: t for t in build_tables(cells, counts=counts, bootstrap=boot)}


# ---------------------------------------------------------------------------- tables


@pytest.mark.parametrize(
    ("run", "task"),
    [
        ("base", "aime24"),
        ("final", "aime24"),
        ("step500", "math500"),
        ("base", "gym:spell_backward"),
        ("final", "humaneval"),
        ("base", "gpqa_diamond"),  # constant per-problem values: half-width 0
    ],
)
def test_cells_match_hand_computation(tables, run, task):
    mean, half = hand_cell(RUNS[run][task])
    table = next(t for t in tables.values() if task in t.tasks)
    assert table.mean.at[task, run] == pytest.approx(mean, abs=1e-9)
    assert table.half_width.at[task, run] == pytest.approx(half, abs=1e-9)


def test_known_values_by_hand(tables):
    assert tables["math"].mean.at["aime24", "base"] == pytest.approx(35.0)  # 14 / 40
    assert tables["math"].mean.at["aime24", "final"] == pytest.approx(42.5)  # 17 / 40
    assert tables["code"].mean.at["humaneval", "final"] == pytest.approx(37.5)  # 12 / 32
    assert tables["stem"].half_width.at["gpqa_diamond", "base"] == 0.0


def test_cells_at_larger_k_use_pass_at_k(run_dirs):
    from tests.oracles import pass_at_k_loop

    cells = cell_table({"base": load_results(run_dirs["base"])}, k=4)
    row = cells[cells["task"] == "aime24"].iloc[0]
    expected = 100 * pass_at_k_loop([N] * 5, RUNS["base"]["aime24"], 4).mean()
    assert row["mean"] == pytest.approx(expected)


def test_domain_grouping_and_order(tables):
    assert list(tables) == ["math", "code", "stem", "logic"]
    assert tables["math"].tasks == ("aime24", "math500")
    assert tables["logic"].tasks == ("gym:basic_arithmetic", "gym:chain_sum", "gym:spell_backward")
    assert tables["math"].runs == ("base", "step500", "final")


def test_average_row_mean_and_stratified_ci(tables):
    logic = tables["logic"]
    assert logic.has_average and list(logic.mean.index)[-1] == AVERAGE_ROW
    assert logic.averaged == ("gym:basic_arithmetic", "gym:chain_sum")
    assert logic.excluded == ("gym:spell_backward",)
    for run in RUNS:
        per_task = [np.array(RUNS[run][t]) / N for t in logic.averaged]
        mean = 100 * np.mean([v.mean() for v in per_task])
        low, high = loop_bootstrap(per_task, RESAMPLES, SEED)
        assert logic.mean.at[AVERAGE_ROW, run] == pytest.approx(mean, abs=1e-9)
        assert logic.half_width.at[AVERAGE_ROW, run] == pytest.approx(50 * (high - low), abs=1e-9)


def test_single_benchmark_domains_have_no_average(tables):
    assert not tables["stem"].has_average and not tables["code"].has_average
    assert list(tables["stem"].mean.index) == ["gpqa_diamond"]


def test_average_without_counts_has_no_ci(run_dirs):
    results = {name: load_results(path) for name, path in run_dirs.items()}
    math = build_tables(cell_table(results, k=1))[0]
    assert math.mean.at[AVERAGE_ROW, "base"] == pytest.approx((35.0 + 50.0) / 2)
    assert np.isnan(math.half_width.at[AVERAGE_ROW, "base"])


def test_best_marks(tables):
    math = tables["math"]
    assert math.best.loc["aime24"].tolist() == [False, False, True]
    assert math.best.loc["math500"].tolist() == [False, True, True]  # tie
    assert tables["stem"].best.loc["gpqa_diamond"].tolist() == [False, True, False]
    assert tables["logic"].best.loc["gym:spell_backward"].tolist() == [False, True, False]


@pytest.mark.parametrize(
    ("values", "expected"),
    [
        ([[1.0, 2.0]], [[False, True]]),
        ([[2.04, 2.0]], [[True, True]]),  # equal as displayed (2.0)
        ([[2.06, 2.0]], [[True, False]]),
        ([[5.0, np.nan]], [[False, False]]),  # one value: nothing to compare
        ([[np.nan, 3.0, 3.0]], [[False, True, True]]),
    ],
)
def test_mark_best_table(values, expected):
    frame = pd.DataFrame(values)
    assert mark_best(frame).values.tolist() == expected


def test_average_interval_single_task_equals_results_ci(run_dirs):
    from prorl_eval.analysis.inputs import load_counts

    counts = load_counts(run_dirs["base"])
    mean, low, high = average_interval(counts, ["aime24"], 1, resamples=RESAMPLES, seed=SEED)
    summary = json.loads((run_dirs["base"] / "results.json").read_text())["tasks"]["aime24"]
    assert mean == pytest.approx(summary["pass_at_k"]["1"])
    assert [low, high] == pytest.approx(summary["pass_at_k_ci95"]["1"])


# --------------------------------------------------------------------------- writers


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("gym:basic_arithmetic", r"gym:basic\_arithmetic"),
        ("a&b%c$d#e", r"a\&b\%c\$d\#e"),
        ("{x}", r"\{x\}"),
        ("a~b^c", r"a\textasciitilde{}b\textasciicircum{}c"),
        ("back\\slash_", r"back\textbackslash{}slash\_"),
        ("plain", "plain"),
    ],
)
def test_latex_escape(text, expected):
    assert latex_escape(text) == expected


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("gym:basic_arithmetic", "gym:basic_arithmetic"),
        ("a|b", r"a\|b"),
        ("*x*", r"\*x\*"),
        ("_lead", r"\_lead"),
    ],
)
def test_markdown_escape(text, expected):
    assert markdown_escape(text) == expected


@pytest.mark.parametrize(
    ("mean", "half", "expected"),
    [(42.34, 3.06, "42.3 ± 3.1"), (0.0, 0.0, "0.0 ± 0.0"), (7.0, np.nan, "7.0"), (np.nan, 1, "–")],
)
def test_format_cell(mean, half, expected):
    assert format_cell(mean, half) == expected


def test_latex_tables(report_dir):
    tex = (report_dir / "tables.tex").read_text()
    # 4 domain tables, then the boundary's regimes and correlation tables
    assert tex.count("\\begin{table}") == 6 and tex.count("\\toprule") == 6
    assert "\\label{tab:reasoning-boundary-0}" in tex and "$\\to$" in tex
    assert "gym:basic\\_arithmetic" in tex and "gym:basic_arithmetic" not in tex
    final_aime = f"{42.5:.1f} $\\pm$ {hand_cell(RUNS['final']['aime24'])[1]:.1f}"
    assert f"\\textbf{{{final_aime}}}" in tex
    spell = next(line for line in tex.splitlines() if "spell" in line)
    assert spell.rstrip().endswith("& -- \\\\")  # final lacks it
    assert "\\textit{Average}" in tex and "±" not in tex
    assert "\\label{tab:pass1-logic}" in tex


def test_latex_cell_of_a_tie_and_the_header(tables):
    from prorl_eval.report.render import ReportData

    tex = render_latex(ReportData(k=1, runs=(), tables=(tables["math"],)))
    row = next(line for line in tex.splitlines() if line.strip().startswith("math500"))
    assert row.count("\\textbf{") == 2
    assert "Benchmark & Problems & base & step500 & final \\\\" in tex


def test_markdown(report_dir):
    md = (report_dir / "report.md").read_text()
    links = re.findall(r"!\[[^\]]*\]\(([^)]+)\)", md)
    assert sorted(links) == sorted(
        f"figures/{p.name}" for p in (report_dir / "figures").glob("*.png")
    )
    assert len(links) == 4  # curves per task, per domain, boundary, correlation
    for link in links:
        assert (report_dir / link).is_file()
    row = next(line for line in md.splitlines() if line.startswith("| aime24 |"))
    cells = [cell.strip() for cell in row.strip("| ").split("|")]
    assert cells[:2] == ["aime24", "5"]
    for cell, run in zip(cells[2:], RUNS, strict=True):
        mean, half = (float(x) for x in cell.strip("*").split(" ± "))
        assert (mean, half) == pytest.approx(hand_cell(RUNS[run]["aime24"]), abs=0.051)
        assert cell.startswith("**") == (run == "final")
    assert "### Math" in md and "### Logic puzzles" in md and "| *Average* |" in md
    assert "Average excludes gym:spell_backward" in md


def test_html_is_self_contained(report_dir):
    html = (report_dir / "report.html").read_text()
    assert not re.search(r"""(src|href)\s*=\s*["']?\s*(https?:)?//""", html, re.I)
    assert "<script" not in html and "<link" not in html and "@import" not in html
    sources = re.findall(r"<img[^>]*\ssrc=\"([^\"]+)\"", html)
    figures = sorted((report_dir / "figures").glob("*.png"))
    assert len(sources) == len(figures) == 4
    embedded = sorted(base64.b64decode(s.split(",", 1)[1]) for s in sources)
    assert all(s.startswith("data:image/png;base64,") for s in sources)
    assert embedded == sorted(p.read_bytes() for p in figures)
    assert all(b.startswith(b"\x89PNG\r\n\x1a\n") for b in embedded)
    assert html.count('<table class="results"') == 4
    assert '<td class="best">42.5' in html


def test_html_escapes_labels(small_runs, tmp_path):
    out = tmp_path / "r"
    runs = [str(small_runs["base"]), str(small_runs["final"])]
    report_command(runs, out, "<b>a</b>,b&c", 1, None)
    html = (out / "report.html").read_text()
    assert "&lt;b&gt;a&lt;/b&gt;" in html and "<b>a</b>" not in html
    assert "b&amp;c" in html
    assert not (out / "figures" / "boundary.png").exists()  # no --base, no boundary


# ------------------------------------------------------------------ command, refusals


def test_base_outside_the_runs_becomes_first_column(small_runs, tmp_path):
    out = tmp_path / "r"
    report_command([str(small_runs["final"])], out, "rl", 1, str(small_runs["base"]))
    md = (out / "report.md").read_text()
    assert "| Benchmark | Problems | base | rl |" in md
    assert "| base |" in md and "(base)" not in md
    assert (out / "figures" / "boundary.png").is_file()
    assert "No correlation: a correlation needs at least 3 tasks" in md


def test_run_without_samples_gets_a_column_and_a_note(tmp_path):
    math = ("aime24", "math500")
    full = write_run(tmp_path / "full", {t: RUNS["base"][t] for t in math})
    bare = write_run(tmp_path / "bare", {t: RUNS["step500"][t] for t in math}, samples=False)
    out = tmp_path / "r"
    report_command([str(full), str(bare)], out, None, 1, None)
    md = (out / "report.md").read_text()
    assert "| bare |" in md and "no samples.jsonl found" in md
    average = next(line for line in md.splitlines() if "*Average*" in line)
    cells = [cell.strip() for cell in average.strip("| ").split("|")]
    assert cells[2].startswith("42.5 ± ")  # (35 + 50) / 2, with a CI from the samples
    assert cells[3] == f"**{(40.0 + 650 / 12) / 2:.1f}**"  # (16/40 + 26/48) / 2, no CI
    html = (out / "report.html").read_text()
    assert html.count("<img") == 2 and ">bare<" in html


def test_samples_disagreeing_with_results_are_noted_and_dropped(tmp_path):
    math = ("aime24", "math500")
    good = write_run(tmp_path / "good", {t: RUNS["base"][t] for t in math})
    odd = write_run(tmp_path / "odd", {t: RUNS["final"][t] for t in math})
    other = sample_rows({t: RUNS["step500"][t] for t in math}, model="m")
    (odd / "samples.jsonl").write_text("".join(json.dumps(r) + "\n" for r in other))
    out = tmp_path / "r"
    report_command([str(good), str(odd)], out, None, 1, None)
    md = (out / "report.md").read_text()
    assert "Run odd: samples" in md and "disagree on aime24 (pass@1 0.4000 vs 0.4250)" in md
    average = next(line for line in md.splitlines() if "*Average*" in line)
    assert average.rstrip(" |").split("|")[-1].strip() == f"**{(42.5 + 650 / 12) / 2:.1f}**"


def test_samples_found_through_source_samples(tmp_path):
    spec = {t: RUNS["base"][t] for t in ("aime24", "math500")}
    run = write_run(tmp_path / "run", spec)
    moved = tmp_path / "elsewhere.jsonl"
    (run / "samples.jsonl").rename(moved)
    results = json.loads((run / "results.json").read_text())
    (run / "results.json").write_text(json.dumps({**results, "source_samples": str(moved)}))
    out = tmp_path / "r"
    report_command([str(run)], out, None, 1, None)
    md = (out / "report.md").read_text()
    assert "no samples.jsonl" not in md and "![pass@k curves per task]" in md


def test_refuses_run_without_results(tmp_path, run_dirs):
    empty = tmp_path / "empty"
    empty.mkdir()
    with pytest.raises(UserError, match=r"has no results.json; compute it"):
        report_command([str(run_dirs["base"]), str(empty)], tmp_path / "o", None, 1, None)


def test_refuses_missing_k(tmp_path, run_dirs):
    short = write_run(tmp_path / "short", RUNS["final"], ks=[1, 2])
    with pytest.raises(UserError, match=r"run short has no pass@4 .* pick --k among 1, 2"):
        report_command([str(run_dirs["base"]), str(short)], tmp_path / "o", None, 4, None)


def test_refuses_unwritable_out(tmp_path, run_dirs):
    blocker = tmp_path / "file"
    blocker.write_text("x")
    with pytest.raises(UserError, match="cannot write to output folder"):
        report_command([str(run_dirs["base"])], blocker / "sub", None, 1, None)


@pytest.mark.parametrize(
    ("labels", "k", "base", "fragment"),
    [
        ("a", 1, None, "--labels has 1 label(s) for 2 run(s)"),
        (None, 0, None, "--k values must be >= 1"),
        ("base,x", 1, "final", "labelled 'base'"),
    ],
)
def test_refusals_of_options(tmp_path, run_dirs, labels, k, base, fragment):
    runs = [str(run_dirs["step500"]), str(run_dirs["final"])]
    base = str(run_dirs[base]) if base else None
    with pytest.raises(UserError, match=re.escape(fragment)):
        report_command(runs, tmp_path / "o", labels, k, base)


def test_typer_wiring(small_runs, tmp_path):
    import typer
    from typer.testing import CliRunner

    app = typer.Typer()
    app.callback()(lambda: None)
    app.command("report")(report_command)
    runner = CliRunner()
    result = runner.invoke(app, ["report", "--help"], terminal_width=200)
    assert result.exit_code == 0
    for option in ("--out", "--labels", "--k", "--base"):
        assert option in result.output
    out = tmp_path / "cli"
    args = ["report", str(small_runs["base"]), str(small_runs["final"]), "--out", str(out)]
    base = ["--base", str(small_runs["base"])]
    result = runner.invoke(app, [*args, "--k", "2", "--labels", "b,f", *base])
    assert result.exit_code == 0, result.output
    md = (out / "report.md").read_text()
    assert "pass@2 by domain" in md and "| b (base) |" in md and "| f |" in md
