"""`python -m prorl_train ...`: the `prorl-train` CLI, also under multi-process launchers.

    torchrun --nproc_per_node 2 -m prorl_train --preset cpu-smoke --out runs/ds \\
        --set deepspeed.zero_stage=2
    deepspeed --num_gpus 8 --module prorl_train --preset prorl-paper --out runs/p \\
        --set deepspeed.zero_stage=2

The `deepspeed` launcher appends `--local_rank=N` to the arguments; it is taken out here (the
rank comes from the LOCAL_RANK environment variable, which every launcher sets). Processes other
than rank 0 keep their console quiet, so progress and status lines appear once.
"""

from __future__ import annotations

import os
import sys


def strip_launcher_args(argv: list[str]) -> list[str]:
    """`argv` without `--local_rank N` / `--local_rank=N` (also spelled `--local-rank`)."""
    out: list[str] = []
    skip = False
    for arg in argv:
        if skip:
            skip = False
            continue
        name = arg.split("=", 1)[0]
        if name in ("--local_rank", "--local-rank"):
            skip = "=" not in arg
            continue
        out.append(arg)
    return out


def run(argv: list[str]) -> int:
    from rich.console import Console

    from prorl_train import cli
    from prorl_train.distributed import destroy

    if os.environ.get("RANK", "0") not in ("", "0"):
        cli.err_console = Console(stderr=True, quiet=True)
    try:
        return cli.main(strip_launcher_args(argv))
    finally:
        destroy()


if __name__ == "__main__":
    sys.exit(run(sys.argv[1:]))
