"""The boundary sections of a report: did RL expand what the model solves, or only sharpen it?

Given the base run and the RL checkpoints in training order (from `prorl-eval report --base`, or
a `prorl-eval sweep` folder), :func:`boundary_sections` builds, in the paper's order:

- **Training run** (sweep folders): which run, its steps and tasks, and the overlap of its
  training prompts with the evaluation problems (``overlap.json``).
- **Reasoning boundary**: per task, pass@1 and pass@k of base → final checkpoint, the problems
  only RL / only the base solves, and the regime (diminished / plateau / sustained) with the rule
  that fired (:func:`prorl_eval.analysis.boundary.classify_regimes`), and the bar figure.
- **Problems only RL solves**: every problem the base never solved in its n samples and some
  checkpoint did: the problem text, its gold answer and one RL solution.
- **Base pass@k vs RL gain**: the per-task correlation (with 3 or more tasks) and its figure.
- **Creativity index** (with a corpus index): mean index per run and task, 95% CI.
- **Training dynamics** (sweep folders): the run's reward, validation, entropy, KL and response
  length with resets marked, and the resets table.

Everything is computed from the runs' per-problem counts and samples; figures are written into
the report's ``figures/`` folder.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

from prorl_eval.analysis.inputs import display_name
from prorl_eval.report.loading import shown_path
from prorl_eval.report.sections import Example, FigureInfo, Section, TextTable, clip

MAX_EXAMPLES = 30
FIGURE_DPI = 110


@dataclass(frozen=True)
class BoundaryInputs:
    """What the boundary sections read: labels and counts in training order, samples files,
    each run's training step (sweep folders), the training run folder and its overlap."""

    base: str
    checkpoints: tuple[str, ...]
    counts: dict[str, Any]
    samples: dict[str, Path | None]
    k: int
    steps: dict[str, int] | None = None
    training_run: Path | None = None
    overlap: dict[str, Any] | None = None
    corpus: Path | None = None
    delta: float = 0.02
    growth_delta: float | None = None


def save_figure(fig: Any, folder: Path, name: str, title: str, caption: str) -> FigureInfo:
    path = folder / name
    fig.savefig(path, dpi=FIGURE_DPI)
    return FigureInfo(path=path, rel=f"figures/{name}", title=title, caption=caption)


def _pct(value: float) -> str:
    return "–" if value != value else f"{100 * value:.1f}"  # NaN-safe


def boundary_sections(inputs: BoundaryInputs, figures: Path) -> list[Section]:
    """The sections of the module doc that the inputs allow (see there)."""
    from prorl_eval.analysis.boundary import BASE_LABEL, compare_boundary

    counts = {label: inputs.counts[label] for label in inputs.checkpoints}
    report = compare_boundary(
        inputs.counts[inputs.base],
        counts,
        k=inputs.k,
        delta=inputs.delta,
        growth_delta=inputs.growth_delta,
    )
    assert BASE_LABEL not in inputs.checkpoints
    sections = [training_section(inputs)] if inputs.training_run is not None else []
    sections += [
        regimes_section(report, inputs, figures),
        rl_only_section(report, inputs),
        correlation_section(report, inputs, figures),
    ]
    if inputs.corpus is not None:
        sections.append(creativity_section(inputs))
    if inputs.training_run is not None:
        dynamics = dynamics_section(inputs.training_run, figures)
        if dynamics is not None:
            sections.append(dynamics)
    return sections


# ------------------------------------------------------------------------- training run


def training_section(inputs: BoundaryInputs) -> Section:
    """The training run, its checkpoints and its overlap with the evaluation problems."""
    import yaml

    run = inputs.training_run
    assert run is not None
    config_path = run / "config.yaml"
    config = yaml.safe_load(config_path.read_text()) if config_path.is_file() else {}
    data = config.get("data", {}) or {}
    mix = ", ".join(display_name(str(t)) for t in (data.get("mix") or {})) or "?"
    steps = ", ".join(
        f"{label} (step {inputs.steps[label]})" for label in inputs.checkpoints if inputs.steps
    )
    paragraphs = [
        f"Training run {shown_path(run)}: {config.get('steps', '?')} steps of "
        f"{config.get('batch_size', '?')} prompts × {config.get('rollout', {}).get('n', '?')} "
        f"samples on {mix} (training data seed {data.get('data_seed', '?')}), from "
        f"{config.get('model', {}).get('name', '?')}. Checkpoints evaluated: {steps}."
    ]
    overlap = inputs.overlap
    if overlap is None:
        paragraphs.append("The overlap of training and evaluation prompts was not counted.")
    else:
        held = sum((overlap.get("held_out") or {}).values())
        paragraphs.append(
            f"Overlap: {overlap['in_training']} of {overlap['problems']} evaluation prompts "
            f"appear verbatim in the training pool; the holdout "
            f"({(overlap.get('holdout') or {}).get('spec', '?')}) removed {held} training "
            "problems identical to evaluation ones."
        )
    return Section("Training run", paragraphs=tuple(paragraphs))


# ----------------------------------------------------------------------------- regimes


def regimes_section(report: Any, inputs: BoundaryInputs, figures: Path) -> Section:
    from prorl_eval.analysis.boundary import plot_boundary

    final = inputs.checkpoints[-1]
    tasks = report.tasks[report.tasks["checkpoint"] == final].set_index("task")
    rows = []
    for row in report.regimes.itertuples():
        t = tasks.loc[row.task]
        rows.append(
            (
                display_name(row.task, 60),
                str(int(t["num_problems"])),
                f"{_pct(row.base_pass_at_1)} → {_pct(row.final_pass_at_1)}",
                f"{_pct(row.base_pass_at_k)} → {_pct(row.final_pass_at_k)}",
                str(int(t["rl_only_solved"])),
                str(int(t["base_only_solved"])),
                row.regime,
                row.reason,
            )
        )
    k = inputs.k
    table = TextTable(
        ("Task", "Problems", f"pass@1 base → {final}", f"pass@{k} base → {final}", "RL only",
         "Base only", "Regime", "Rule that fired"),
        tuple(rows),
        caption=f"pass@1 and pass@{k} in percent (mean over the problems every run has). RL only: "
        f"problems the base never solved in its samples and {final} solved at least once; "
        "base only: the reverse.",
        right=(False, True, True, True, True, True, False, False),
        latex=True,
    )  # fmt: skip
    delta = inputs.delta
    growth = delta if inputs.growth_delta is None else inputs.growth_delta
    paragraph = (
        f"Regimes follow ProRL's three groups, decided by explicit rules on the pass@{k} gain g "
        f"over the base (δ = {delta:g}, γ = {growth:g}): diminished when the final gain is below "
        "−δ, or when neither pass@1 nor pass@k moved by more than δ; sustained when the final "
        "gain exceeds δ and still grew by more than γ past every earlier checkpoint; plateau "
        "when the gain exceeds δ but saturated, or when only pass@1 rose. One problem of a "
        "30-problem task is 0.033, so small tasks need a δ above their noise."
    )
    figure = save_figure(
        plot_boundary(report.tasks, k),
        figures,
        "boundary.png",
        "pass@1 and pass@k per task",
        f"Per task: mean pass@1 (narrow bars) and pass@{k} (wide bars) of the base and of each "
        "checkpoint, on the problems every run has.",
    )
    return Section(
        "Reasoning boundary", paragraphs=(paragraph,), tables=(table,), figures=(figure,)
    )


# ------------------------------------------------------------------- problems only RL solves


def _first_correct(path: Path | None, wanted: set[tuple[str, str]]) -> dict:
    """{(task, problem_id): the first correct row (lowest sample_idx)} of a samples file."""
    from prorl_eval.schema import iter_samples

    found: dict[tuple[str, str], dict] = {}
    if path is None:
        return found
    for row in iter_samples(path):
        key = (row["task"], row["problem_id"])
        if key in wanted and row["correct"]:
            best = found.get(key)
            if best is None or row["sample_idx"] < best["sample_idx"]:
                found[key] = row
    return found


def rl_only_section(report: Any, inputs: BoundaryInputs) -> Section:
    """Every problem the base never solved and some checkpoint did, with one RL solution."""
    problems = report.problems
    base = problems[problems["run"] == "base"].set_index(["task", "problem_id"])
    unsolved = set(base.index[base["c"] == 0])
    rl = problems[problems["run"].isin(inputs.checkpoints) & (problems["c"] > 0)]
    rl = rl[[key in unsolved for key in zip(rl["task"], rl["problem_id"], strict=True)]]
    keys = sorted(set(zip(rl["task"], rl["problem_id"], strict=True)))
    shown = keys[:MAX_EXAMPLES]
    solutions = {}
    for label in reversed(inputs.checkpoints):  # the latest checkpoint's solution first
        missing = {key for key in shown if key not in solutions}
        for key, row in _first_correct(inputs.samples.get(label), missing).items():
            solutions[key] = (label, row)
    examples = []
    for key in shown:
        per_ckpt = rl[(rl["task"] == key[0]) & (rl["problem_id"] == key[1])]
        solved = ", ".join(f"{r.run} {r.c}/{r.n}" for r in per_ckpt.itertuples())
        base_row = base.loc[key]
        title = f"{display_name(key[0], 60)} #{key[1]}: base 0/{int(base_row['n'])}; {solved}"
        fields = []
        if key in solutions:
            label, row = solutions[key]
            gold = row.get("gold_answer")
            fields += [("Problem", clip(str(row.get("prompt", ""))))]
            fields += [("Gold answer", clip(str(gold)) if gold is not None else "(none recorded)")]
            fields += [(f"One solution ({label})", clip(str(row.get("response", ""))))]
        else:
            fields += [("Problem", "(no samples file with this problem's rows)")]
        examples.append(Example(title, tuple(fields)))
    paragraph = (
        f"{len(keys)} problem(s) that the base never solved in {int(base['n'].min())}+ samples "
        f"were solved by at least one checkpoint: the boundary moved there."
        + (f" The first {MAX_EXAMPLES} are shown." if len(keys) > MAX_EXAMPLES else "")
        if keys
        else "No checkpoint solved a problem that the base never solved: on these problems the "
        "boundary did not move outward."
    )
    return Section("Problems only RL solves", paragraphs=(paragraph,), examples=tuple(examples))


# ------------------------------------------------------------------------- correlation


def correlation_section(report: Any, inputs: BoundaryInputs, figures: Path) -> Section:
    from prorl_eval.analysis.correlation import correlate, correlation_points, plot_correlation
    from prorl_eval.errors import UserError

    final, k = inputs.checkpoints[-1], inputs.k
    points = correlation_points(report.tasks[report.tasks["checkpoint"] == final])
    title = f"Base pass@{k} vs RL gain"
    try:
        stats = correlate(points["base_pass_at_k"], points["gain_pass_at_k"])
    except UserError as exc:
        return Section(title, paragraphs=(f"No correlation: {exc}",))
    table = TextTable(
        ("Tasks", "Slope [95% CI]", "Pearson r [95% CI]", "p", "Spearman ρ [95% CI]", "p"),
        (
            (
                str(stats["num_points"]),
                f"{stats['slope']:+.3f} [{stats['slope_ci'][0]:+.2f}, {stats['slope_ci'][1]:+.2f}]",
                f"{stats['pearson_r']:+.3f} [{stats['pearson_r_ci'][0]:+.2f}, "
                f"{stats['pearson_r_ci'][1]:+.2f}]",
                f"{stats['pearson_p']:.3g}",
                f"{stats['spearman_rho']:+.3f} [{stats['spearman_rho_ci'][0]:+.2f}, "
                f"{stats['spearman_rho_ci'][1]:+.2f}]",
                f"{stats['spearman_p']:.3g}",
            ),
        ),
        caption=f"One point per task: base pass@{k} against {final}'s gain in pass@{k}; CIs are "
        "a bootstrap over tasks. ProRL found a negative slope: the weaker the base, the larger "
        "the gain.",
        right=(True,) * 6,
        latex=True,
    )
    fig = plot_correlation(
        points, "base_pass_at_k", "gain_pass_at_k", stats,
        axis_labels=(f"base pass@{k}", f"{final} gain in pass@{k}"),
    )  # fmt: skip
    figure = save_figure(
        fig,
        figures,
        "correlation.png",
        title,
        f"Per task: base pass@{k} against the gain of {final}, with the least-squares line.",
    )
    return Section(title, tables=(table,), figures=(figure,))


# -------------------------------------------------------------------------- creativity


def creativity_section(inputs: BoundaryInputs) -> Section:
    """Mean creativity index per run and task against the corpus index (95% CI over problems)."""
    from prorl_eval.analysis.creativity import CreativityConfig, summarize_creativity
    from prorl_eval.analysis.creativity_io import score_rows
    from prorl_eval.analysis.ngram_index import NgramIndex
    from prorl_eval.schema import read_samples

    index = NgramIndex.open(inputs.corpus)
    config = CreativityConfig().validate()
    labels = [inputs.base, *inputs.checkpoints]
    values: dict[tuple[str, str], str] = {}
    for label in labels:
        path = inputs.samples.get(label)
        if path is None:
            continue
        rows = [dict(row, model=label) for row in read_samples(path)]
        for group in summarize_creativity(score_rows(rows, index, config, strip_think=True)):
            if group["creativity_index"] is None:  # every response too short to score
                values[(label, group["task"])] = "–"
                continue
            low, high = group["ci95"]
            values[(label, group["task"])] = (
                f"{group['creativity_index']:.2f} [{low:.2f}, {high:.2f}]"
            )
    tasks = sorted({task for _, task in values}, key=lambda t: (t == "all", t))
    rows = tuple(
        (display_name(task, 60), *(values.get((label, task), "–") for label in labels))
        for task in tasks
    )
    table = TextTable(
        ("Task", *labels),
        rows,
        caption=f"Creativity index (Lu et al., 2024; 0 = copied, 8 = novel) of the responses "
        f"against {inputs.corpus}: mean over problems [95% bootstrap CI]; <think> traces removed.",
        right=(False,) + (True,) * len(labels),
        latex=True,
    )
    return Section("Creativity index", tables=(table,))


# ---------------------------------------------------------------------------- dynamics


def dynamics_section(run: Path, figures: Path) -> Section | None:
    """The run's training dynamics (metrics.jsonl) with resets marked, and its resets table."""
    import json

    from prorl_eval.analysis.dynamics import (
        METRICS_FILE,
        REPORT_PANELS,
        plot_dynamics,
        read_metrics,
    )

    rows = read_metrics(run / METRICS_FILE)
    if not rows:
        return None
    figure = save_figure(
        plot_dynamics(rows, f"training dynamics of {shown_path(run)}", REPORT_PANELS),
        figures,
        "dynamics.png",
        "Training dynamics",
        "Per step: training reward, validation, policy entropy, KL to the reference and response "
        "length; dashed lines mark the resets of the reference policy and optimizer.",
    )
    resets = []
    path = run / "resets.jsonl"
    if path.is_file():
        for line in path.read_text(encoding="utf-8").splitlines():
            if line.strip():
                event = json.loads(line)
                resets.append(
                    (
                        str(event.get("step")),
                        "+".join(event.get("triggers", [])),
                        ", ".join(event.get("reset", [])),
                    )
                )
    tables = (
        (TextTable(("Step", "Trigger", "Reset"), tuple(resets), right=(True, False, False)),)
        if resets
        else ()
    )
    paragraph = f"{len(rows)} steps logged; {len(resets)} reset(s) of the reference and optimizer."
    return Section("Training dynamics", paragraphs=(paragraph,), tables=tables, figures=(figure,))
