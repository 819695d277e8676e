"""Report sections beyond the per-domain tables: text, plain tables, figures and worked examples.

A :class:`Section` is what the boundary report adds (regimes, problems only RL solves, the
correlation, creativity, training dynamics): paragraphs, :class:`TextTable` s whose cells are
already formatted text, :class:`FigureInfo` s and :class:`Example` s (a titled list of labelled
texts shown verbatim: a problem, its gold answer, a model's solution). The three writers of
:mod:`prorl_eval.report.render` turn them into Markdown, HTML and (tables marked ``latex``) LaTeX
with the functions here, so every section renders the same way everywhere.

Example:
    >>> table = TextTable(("task", "regime"), (("gym:a", "sustained"),))
    >>> markdown_table(table)
    ['| task | regime |', '|---|---|', '| gym:a | sustained |']
"""

from __future__ import annotations

import re
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

EXAMPLE_CHARS = 1500  # longer texts are cut, with a note, so one answer cannot swamp the report


@dataclass(frozen=True)
class FigureInfo:
    """A PNG written under the report folder: ``rel`` is its path relative to the report."""

    path: Path
    rel: str
    title: str
    caption: str


@dataclass(frozen=True)
class TextTable:
    """A table of formatted cells; ``right`` marks the right-aligned (numeric) columns."""

    columns: tuple[str, ...]
    rows: tuple[tuple[str, ...], ...]
    caption: str = ""
    right: tuple[bool, ...] = ()
    latex: bool = False  # also written to tables.tex

    def aligned_right(self, index: int) -> bool:
        return bool(self.right[index]) if index < len(self.right) else False


@dataclass(frozen=True)
class Example:
    """A worked example: a title and (label, text) fields shown verbatim."""

    title: str
    fields: tuple[tuple[str, str], ...]


@dataclass(frozen=True)
class Section:
    """One titled part of the report."""

    title: str
    paragraphs: tuple[str, ...] = ()
    tables: tuple[TextTable, ...] = ()
    figures: tuple[FigureInfo, ...] = ()
    examples: tuple[Example, ...] = ()


def clip(text: str, limit: int = EXAMPLE_CHARS) -> str:
    """``text`` cut to ``limit`` characters, saying how much was left out."""
    text = text.strip()
    if len(text) <= limit:
        return text
    return f"{text[:limit]}\n[... {len(text) - limit} more characters]"


# ------------------------------------------------------------------------------ Markdown

_MD_SPECIAL = re.compile(r"([\\|*`\[\]<>])|(?<![A-Za-z0-9])_|_(?![A-Za-z0-9])")


def markdown_escape(text: str) -> str:
    r"""Escape Markdown syntax in a name; underscores inside words are left alone (GFM).

    Example:
        >>> markdown_escape("gym:basic_arithmetic|x*_y_")
        'gym:basic_arithmetic\\|x\\*\\_y\\_'
    """
    return _MD_SPECIAL.sub(lambda m: "\\" + m.group(0), text)


def markdown_table(table: TextTable) -> list[str]:
    """A GFM table; cells are escaped (newlines become spaces)."""
    head = "| " + " | ".join(markdown_escape(c) for c in table.columns) + " |"
    rule = "|" + "".join(
        "---:|" if table.aligned_right(i) else "---|" for i in range(len(table.columns))
    )
    body = [
        "| " + " | ".join(markdown_escape(" ".join(cell.split())) for cell in row) + " |"
        for row in table.rows
    ]
    return [head, rule, *body]


def _fence(text: str) -> str:
    """A code fence longer than any backtick run inside ``text``."""
    longest = max((len(run) for run in re.findall(r"`+", text)), default=0)
    return "`" * max(3, longest + 1)


def markdown_section(section: Section, level: int = 2) -> list[str]:
    out = [f"{'#' * level} {markdown_escape(section.title)}", ""]
    for paragraph in section.paragraphs:
        out += [markdown_escape(paragraph), ""]
    for table in section.tables:
        out += [*markdown_table(table), ""]
        if table.caption:
            out += [f"_{markdown_escape(table.caption)}_", ""]
    for fig in section.figures:
        out += [f"![{markdown_escape(fig.title)}]({fig.rel})", "", markdown_escape(fig.caption), ""]
    for example in section.examples:
        out += [f"{'#' * (level + 1)} {markdown_escape(example.title)}", ""]
        for label, text in example.fields:
            fence = _fence(text)
            out += [f"**{markdown_escape(label)}**", "", f"{fence}text", text, fence, ""]
    return out


# ---------------------------------------------------------------------------------- HTML

SECTION_HTML = """{% macro render_section(s) %}
<h2>{{ s.title }}</h2>
{% for p in s.paragraphs %}<p>{{ p }}</p>
{% endfor %}
{% for t in s.tables %}<table class="plain">
<thead><tr>{% for c in t.columns %}<th{% if t.aligned_right(loop.index0) %} class="num"{% endif %}>
{{- c }}</th>{% endfor %}</tr></thead>
<tbody>
{% for row in t.rows %}<tr>{% for cell in row %}<td{% if t.aligned_right(loop.index0) %} class="num"
{%- endif %}>{{ cell }}</td>{% endfor %}</tr>
{% endfor %}</tbody>
</table>
{% if t.caption %}<p class="caption">{{ t.caption }}</p>{% endif %}
{% endfor %}
{% for fig in s.figures %}<figure>
<img src="data:image/png;base64,{{ b64(fig.path) }}" alt="{{ fig.title }}">
<figcaption>{{ fig.caption }}</figcaption>
</figure>
{% endfor %}
{% for ex in s.examples %}<div class="example"><h3>{{ ex.title }}</h3>
{% for label, text in ex.fields %}<p class="label">{{ label }}</p><pre>{{ text }}</pre>
{% endfor %}</div>
{% endfor %}
{% endmacro %}"""

SECTION_CSS = """
table.plain td, table.plain th { text-align: left; font-size: .92em; white-space: normal; }
table.plain td.num, table.plain th.num { text-align: right; white-space: nowrap; }
table.plain thead th { border-top: 2px solid #333; border-bottom: 1px solid #333; }
.example { border-left: 3px solid #ccc; padding-left: 1em; margin: 1em 0 1.5em; }
.example p.label { font-weight: 600; margin: .6em 0 .2em; }
pre { white-space: pre-wrap; word-break: break-word; background: #f6f6f6; padding: .5em;
      font-size: .85em; margin: 0; }
"""


# --------------------------------------------------------------------------------- LaTeX


def latex_table(table: TextTable, label: str, escape: Callable[[str], str]) -> list[str]:
    """A booktabs ``table`` environment of a :class:`TextTable` (``escape``: the writer's
    LaTeX-escaping function)."""
    spec = "".join("r" if table.aligned_right(i) else "l" for i in range(len(table.columns)))
    lines = [
        "\\begin{table}[t]",
        "  \\centering",
        f"  \\caption{{{escape(table.caption)}}}" if table.caption else "",
        f"  \\label{{tab:{label}}}",
        f"  \\begin{{tabular}}{{{spec}}}",
        "    \\toprule",
        "    " + " & ".join(escape(c) for c in table.columns) + " \\\\",
        "    \\midrule",
        *("    " + " & ".join(escape(cell) for cell in row) + " \\\\" for row in table.rows),
        "    \\bottomrule",
        "  \\end{tabular}",
        "\\end{table}",
    ]
    return [line for line in lines if line]
