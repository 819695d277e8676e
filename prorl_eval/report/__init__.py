"""Paper-style reports of run folders: per-domain pass@k tables (Markdown, HTML, LaTeX) + figures.

- :mod:`~prorl_eval.report.tables`: results → per-domain tables (pure pandas).
- :mod:`~prorl_eval.report.render`: tables and figures → report.md, report.html (self-contained),
  tables.tex (booktabs).
- :mod:`~prorl_eval.report.build`: the report's content from loaded runs (the command is
  :mod:`prorl_eval.cli.report`).

Example:
    >>> from prorl_eval.report import build_tables, cell_table         # doctest: +SKIP
    >>> cells = cell_table({"base": load_results("runs/base")}, k=1)   # doctest: +SKIP
    >>> tables = build_tables(cells)                                    # doctest: +SKIP
"""

from prorl_eval.report.tables import DomainTable, build_tables, cell_table, mark_best

__all__ = ["DomainTable", "build_tables", "cell_table", "mark_best"]
