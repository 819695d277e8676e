"""`prorl-train`: the ProRL trainer's entry point.

The trainer (GRPO with DAPO's decoupled clipping and dynamic sampling, a KL penalty to a reference
policy, periodic reference and optimizer resets) is not implemented yet; this command only
describes itself so the console script and its help exist from the first release.
"""

from __future__ import annotations

import sys

import typer

app = typer.Typer(
    name="prorl-train",
    help=(
        "Train a reasoning model with the ProRL recipe: GRPO + decoupled clipping, dynamic "
        "sampling, KL to a reference policy with periodic hard resets, verifier rewards. "
        "Not implemented yet: this release ships the evaluation harness (prorl-eval)."
    ),
    no_args_is_help=True,
    pretty_exceptions_enable=False,
    add_completion=False,
)


@app.callback()
def _root() -> None:
    """Train a reasoning model with the ProRL recipe (not implemented yet)."""


@app.command("status")
def status() -> None:
    """Say what the trainer can do in this release."""
    typer.echo(
        "prorl-train: the trainer is not implemented yet; use prorl-eval to evaluate models."
    )


def main(argv: list[str] | None = None) -> int:
    """Console-script entry point."""
    try:
        app(args=argv, prog_name="prorl-train")
    except SystemExit as exc:
        return exc.code if isinstance(exc.code, int) else (0 if exc.code is None else 1)
    return 0


if __name__ == "__main__":
    sys.exit(main())
