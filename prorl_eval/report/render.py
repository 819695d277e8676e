"""Writers of the report: Markdown, one self-contained HTML page, and booktabs LaTeX tables.

What
----
:class:`ReportData` holds everything a report shows (runs, the :class:`DomainTable` s, figure
files, notes); :func:`render_markdown`, :func:`render_html` and :func:`render_latex` turn it into
text, and :func:`write_report` writes ``report.md``, ``report.html`` and ``tables.tex``.

- Markdown links the figures as ``figures/NAME.png`` (relative to the report).
- HTML inlines its CSS and embeds every figure as a ``data:image/png;base64`` URI, so the page is
  one file with no external resource (no scripts, fonts, or links); built with a jinja2 template
  (autoescaped) defined below.
- LaTeX needs ``\\usepackage{booktabs}``; best values are ``\\textbf{}``, the CI is ``$\\pm$``,
  and task and run names are escaped (``gym:basic\\_arithmetic``).

Cells read ``42.3 ± 3.1`` (mean ± CI half-width, percent, one decimal), the mean alone when the
half-width is unknown, and a dash when the run lacks the benchmark.

Example:
    >>> latex_escape("gym:basic_arithmetic & 100%")
    'gym:basic\\\\_arithmetic \\\\& 100\\\\%'
"""

from __future__ import annotations

import base64
import math
import re
from dataclasses import dataclass, field
from pathlib import Path

from prorl_eval.analysis.inputs import display_name
from prorl_eval.report.sections import (
    SECTION_CSS,
    SECTION_HTML,
    FigureInfo,
    Section,
    latex_table,
    markdown_escape,
    markdown_section,
)
from prorl_eval.report.tables import AVERAGE_ROW, DomainTable

__all__ = [
    "FigureInfo",
    "ReportData",
    "RunInfo",
    "domain_title",
    "format_cell",
    "latex_escape",
    "markdown_escape",
    "render_html",
    "render_latex",
    "render_markdown",
    "write_report",
]

DOMAIN_TITLES = {
    "math": "Math",
    "code": "Code",
    "stem": "STEM",
    "ifeval": "Instruction following",
    "logic": "Logic puzzles",
    "other": "Other",
}
MISSING = "–"


@dataclass(frozen=True)
class RunInfo:
    """One column of the tables: its label, folder and what produced it."""

    label: str
    path: str
    model: str
    n: int | None
    ks: tuple[int, ...]
    num_tasks: int
    samples: str | None


@dataclass(frozen=True)
class ReportData:
    """Everything the writers show; see the module doc."""

    k: int
    runs: tuple[RunInfo, ...]
    tables: tuple[DomainTable, ...]
    figures: tuple[FigureInfo, ...] = ()
    notes: tuple[str, ...] = ()
    generated: str = ""
    base: str | None = None
    title: str = field(default="")
    more_tables: tuple[tuple[int, tuple[DomainTable, ...]], ...] = ()  # tables at other ks
    sections: tuple[Section, ...] = ()  # the boundary sections, after the figures

    @property
    def heading(self) -> str:
        return self.title or f"pass@{self.k} report"

    @property
    def table_sets(self) -> tuple[tuple[int, tuple[DomainTable, ...]], ...]:
        """(k, domain tables) for every k, the first one first."""
        return ((self.k, self.tables), *self.more_tables)

    @property
    def all_figures(self) -> tuple[FigureInfo, ...]:
        return self.figures + tuple(fig for s in self.sections for fig in s.figures)


def domain_title(domain: str) -> str:
    """Display name of a domain (the name itself, capitalised, when unknown)."""
    return DOMAIN_TITLES.get(domain, domain[:1].upper() + domain[1:])


def format_cell(mean: float, half: float, pm: str = "±") -> str:
    """``42.3 ± 3.1``; the mean alone without half-width; :data:`MISSING` without mean.

    Example:
        >>> format_cell(42.25, 3.14), format_cell(5.0, float("nan")), format_cell(float("nan"), 1)
        ('42.2 ± 3.1', '5.0', '–')
    """
    if mean is None or math.isnan(mean):
        return MISSING
    if half is None or math.isnan(half):
        return f"{mean:.1f}"
    return f"{mean:.1f} {pm} {half:.1f}"


def _caption(k: int) -> str:
    return (
        f"pass@{k} (%): mean over problems ± half-width of the 95% bootstrap CI over problems; "
        "best per row in bold; Average = unweighted mean of the benchmarks every run has."
    )


def _rows(table: DomainTable) -> list[dict]:
    """Per row: name, problems, is_average, cells (text, best) — shared by the three writers."""
    rows = []
    for name in table.mean.index:
        average = table.has_average and name == table.mean.index[-1]
        cells = [
            (format_cell(table.mean.at[name, run], table.half_width.at[name, run]), bool(best))
            for run, best in zip(table.runs, table.best.loc[name], strict=True)
        ]
        rows.append(
            {
                "name": AVERAGE_ROW if average else display_name(str(name), width=60),
                "problems": "" if average else table.problems[name],
                "average": average,
                "cells": cells,
            }
        )
    return rows


def _table_notes(table: DomainTable) -> list[str]:
    if not table.excluded:
        return []
    return [f"Average excludes {', '.join(table.excluded)} (missing from some runs)."]


# ------------------------------------------------------------------------------ Markdown


def _md_table(table: DomainTable) -> list[str]:
    head = ["Benchmark", "Problems", *(markdown_escape(r) for r in table.runs)]
    lines = ["| " + " | ".join(head) + " |", "|" + "---|" + "---:|" * (len(head) - 1)]
    for row in _rows(table):
        cells = [f"**{text}**" if best else text for text, best in row["cells"]]
        name = f"*{row['name']}*" if row["average"] else markdown_escape(row["name"])
        lines.append("| " + " | ".join([name, row["problems"], *cells]) + " |")
    return lines


def _run_name(label: str, base: str | None) -> str:
    """The runs table's name of a run: the base gets "(base)" unless its label says so."""
    return f"{label} (base)" if label == base and label.lower() != "base" else label


def _md_runs(data: ReportData) -> list[str]:
    lines = ["| Run | Folder | Model | n | k in results | Tasks |", "|---|---|---|---:|---|---:|"]
    for run in data.runs:
        label = markdown_escape(_run_name(run.label, data.base))
        ks = ", ".join(map(str, run.ks))
        n = "" if run.n is None else str(run.n)
        lines.append(
            f"| {label} | `{run.path}` | {markdown_escape(run.model)} | {n} | {ks} | "
            f"{run.num_tasks} |"
        )
    return lines


def render_markdown(data: ReportData) -> str:
    """The report as GitHub-flavoured Markdown; figures linked by relative path."""
    out = [f"# {markdown_escape(data.heading)}", ""]
    if data.generated:
        out += [f"Generated {data.generated} by `prorl-eval report`.", ""]
    out += ["## Runs", "", *_md_runs(data), ""]
    for k, tables in data.table_sets:
        out += [f"## pass@{k} by domain", "", _caption(k), ""]
        for table in tables:
            out += [f"### {domain_title(table.domain)}", "", *_md_table(table), ""]
            out += [f"_{note}_" for note in _table_notes(table)]
            out += [""] if _table_notes(table) else []
    if data.figures:
        out += ["## Figures", ""]
        for fig in data.figures:
            out += [f"### {fig.title}", "", f"![{fig.title}]({fig.rel})", "", fig.caption, ""]
    for section in data.sections:
        out += markdown_section(section)
    if data.notes:
        out += ["## Notes", "", *(f"- {note}" for note in data.notes), ""]
    return "\n".join(out).rstrip() + "\n"


# ---------------------------------------------------------------------------------- HTML

_CSS = """
body { font-family: -apple-system, "Segoe UI", Helvetica, Arial, sans-serif; color: #1d1d1f;
       max-width: 1100px; margin: 2em auto; padding: 0 1.5em; line-height: 1.45; }
h1 { font-size: 1.7em; border-bottom: 2px solid #333; padding-bottom: .2em; }
h2 { font-size: 1.3em; margin-top: 1.8em; } h3 { font-size: 1.1em; margin-bottom: .3em; }
table { border-collapse: collapse; margin: .4em 0 1em; font-variant-numeric: tabular-nums; }
th, td { padding: .3em .8em; text-align: right; white-space: nowrap; }
th:first-child, td:first-child { text-align: left; }
thead th { border-top: 2px solid #333; border-bottom: 1px solid #333; }
tbody tr:last-child td { border-bottom: 2px solid #333; }
tr.average td { border-top: 1px solid #333; font-style: italic; }
td.best { font-weight: 700; } td.missing { color: #999; }
table.runs td, table.runs th { text-align: left; font-size: .9em; }
code { font-size: .9em; background: #f3f3f3; padding: .05em .3em; border-radius: 3px; }
.caption, figcaption, .note { color: #555; font-size: .92em; }
figure { margin: 1em 0 2em; } figure img { max-width: 100%; height: auto;
       border: 1px solid #ddd; }
"""

_HTML = (
    SECTION_HTML
    + """<!DOCTYPE html>
<html lang="en">
<head>
<meta charset="utf-8">
<meta name="viewport" content="width=device-width, initial-scale=1">
<title>{{ data.heading }}</title>
<style>{{ css }}</style>
</head>
<body>
<h1>{{ data.heading }}</h1>
{% if data.generated %}<p class="caption">Generated {{ data.generated }} by
<code>prorl-eval report</code>.</p>{% endif %}
<h2>Runs</h2>
<table class="runs">
<thead><tr><th>Run</th><th>Folder</th><th>Model</th><th>n</th><th>k in results</th>
<th>Tasks</th></tr></thead>
<tbody>
{% for run in data.runs %}<tr><td>{{ run_name(run.label, data.base) }}</td>
<td><code>{{ run.path }}</code></td><td>{{ run.model }}</td><td>{{ run.n or "" }}</td>
<td>{{ run.ks | join(", ") }}</td><td>{{ run.num_tasks }}</td></tr>
{% endfor %}</tbody>
</table>
{% for set in table_sets %}
<h2>pass@{{ set.k }} by domain</h2>
<p class="caption">{{ set.caption }}</p>
{% for t in set.tables %}
<h3>{{ t.title }}</h3>
<table class="results" data-domain="{{ t.domain }}">
<thead><tr><th>Benchmark</th><th>Problems</th>{% for run in t.runs %}<th>{{ run }}</th>
{% endfor %}</tr></thead>
<tbody>
{% for row in t.rows %}<tr{% if row.average %} class="average"{% endif %}><td>{{ row.name }}</td>
<td>{{ row.problems }}</td>{% for text, best in row.cells %}<td class="
{%- if best %}best{% elif text == missing %}missing{% endif %}">{{ text }}</td>{% endfor %}</tr>
{% endfor %}</tbody>
</table>
{% for note in t.notes %}<p class="note">{{ note }}</p>{% endfor %}
{% endfor %}
{% endfor %}
{% if figures %}<h2>Figures</h2>
{% for fig in figures %}<figure>
<h3>{{ fig.title }}</h3>
<img src="data:image/png;base64,{{ fig.b64 }}" alt="{{ fig.title }}">
<figcaption>{{ fig.caption }}</figcaption>
</figure>
{% endfor %}{% endif %}
{% for s in data.sections %}{{ render_section(s) }}{% endfor %}
{% if data.notes %}<h2>Notes</h2>
<ul>{% for note in data.notes %}<li>{{ note }}</li>{% endfor %}</ul>{% endif %}
</body>
</html>
"""
)


def render_html(data: ReportData) -> str:
    """One self-contained HTML page: inline CSS, figures as base64 data URIs, nothing external."""
    import jinja2

    env = jinja2.Environment(autoescape=True, trim_blocks=True, lstrip_blocks=True)
    table_sets = [
        {
            "k": k,
            "caption": _caption(k),
            "tables": [
                {
                    "title": domain_title(t.domain),
                    "domain": t.domain,
                    "runs": t.runs,
                    "rows": _rows(t),
                    "notes": _table_notes(t),
                }
                for t in tables
            ],
        }
        for k, tables in data.table_sets
    ]
    figures = [
        {
            "title": f.title,
            "caption": f.caption,
            "b64": base64.b64encode(Path(f.path).read_bytes()).decode("ascii"),
        }
        for f in data.figures
    ]
    return env.from_string(_HTML).render(
        data=data,
        css=(_CSS + SECTION_CSS).strip(),
        table_sets=table_sets,
        figures=figures,
        b64=lambda path: base64.b64encode(Path(path).read_bytes()).decode("ascii"),
        missing=MISSING,
        run_name=_run_name,
    )


# --------------------------------------------------------------------------------- LaTeX

_LATEX_SPECIAL = {
    "\\": r"\textbackslash{}",
    "&": r"\&",
    "%": r"\%",
    "$": r"\$",
    "#": r"\#",
    "_": r"\_",
    "{": r"\{",
    "}": r"\}",
    "~": r"\textasciitilde{}",
    "^": r"\textasciicircum{}",
}
_LATEX_RE = re.compile("|".join(re.escape(c) for c in _LATEX_SPECIAL))


def latex_escape(text: str) -> str:
    """Escape LaTeX's special characters (one pass, so a backslash is never escaped twice)."""
    return _LATEX_RE.sub(lambda m: _LATEX_SPECIAL[m.group(0)], text)


def _latex_cell(text: str, best: bool) -> str:
    if text == MISSING:
        return "--"
    body = text.replace("±", "$\\pm$")
    return f"\\textbf{{{body}}}" if best else body


def _latex_table(table: DomainTable, k: int) -> list[str]:
    label = re.sub(r"[^A-Za-z0-9]+", "-", f"pass{k}-{table.domain}").strip("-").lower()
    caption = latex_escape(_caption(k)).replace("±", "$\\pm$")
    head = ["Benchmark", "Problems", *(latex_escape(r) for r in table.runs)]
    lines = [
        "\\begin{table}[t]",
        "  \\centering",
        f"  \\caption{{{latex_escape(domain_title(table.domain))}: {caption}}}",
        f"  \\label{{tab:{label}}}",
        f"  \\begin{{tabular}}{{lr{'c' * len(table.runs)}}}",
        "    \\toprule",
        "    " + " & ".join(head) + " \\\\",
        "    \\midrule",
    ]
    for row in _rows(table):
        if row["average"]:
            lines.append("    \\midrule")
            name = f"\\textit{{{AVERAGE_ROW}}}"
        else:
            name = latex_escape(row["name"])
        cells = [_latex_cell(text, best) for text, best in row["cells"]]
        lines.append("    " + " & ".join([name, row["problems"], *cells]) + " \\\\")
    lines += ["    \\bottomrule", "  \\end{tabular}", "\\end{table}"]
    return lines


def render_latex(data: ReportData) -> str:
    """booktabs tables, one ``table`` environment per domain (needs ``\\usepackage{booktabs}``)."""
    out = [
        f"% pass@{data.k} tables written by `prorl-eval report`"
        + (f" on {data.generated}" if data.generated else ""),
        "% Needs \\usepackage{booktabs}.",
        "",
    ]
    for k, tables in data.table_sets:
        for table in tables:
            out += [*_latex_table(table, k), ""]
    for section in data.sections:
        for i, table in enumerate(t for t in section.tables if t.latex):
            label = re.sub(r"[^A-Za-z0-9]+", "-", f"{section.title}-{i}").strip("-").lower()
            out += [*latex_table(table, label, _latex_text), ""]
    return "\n".join(out)


def _latex_text(text: str) -> str:
    """Escaped text for a LaTeX table cell (± and → as math)."""
    return (
        latex_escape(text)
        .replace("±", "$\\pm$")
        .replace("→", "$\\to$")
        .replace("δ", "$\\delta$")
        .replace("γ", "$\\gamma$")
        .replace("ρ", "$\\rho$")
        .replace("−", "-")
    )


def write_report(data: ReportData, folder: str | Path) -> dict[str, Path]:
    """Write report.md, report.html and tables.tex into ``folder``; returns their paths."""
    folder = Path(folder)
    paths = {
        "markdown": folder / "report.md",
        "html": folder / "report.html",
        "latex": folder / "tables.tex",
    }
    paths["markdown"].write_text(render_markdown(data), encoding="utf-8")
    paths["html"].write_text(render_html(data), encoding="utf-8")
    paths["latex"].write_text(render_latex(data), encoding="utf-8")
    return paths
