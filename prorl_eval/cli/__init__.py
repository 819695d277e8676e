"""The `prorl-eval` command line: typer commands over the library, one module per command group.

- `main` — the app, `pass-at-k`, `tasks`, `score`, and the registration of the others;
- `options` — the option types shared by the evaluating commands (`pass-at-k`, `sweep`, `report`);
- `analysis` — `curves`, `boundary`, `correlate`; `overlap`; `sweep`; `report`; `creativity`;
  `export`.

Commands parse and check their options, call the library, and print; a `UserError` becomes a
one-line message and exit code 2 in `main`.
"""

from prorl_eval.cli.main import app, main

__all__ = ["app", "main"]
