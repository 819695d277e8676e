"""The command line of `python benchmarks/gpu_check` (see the package docstring).

Bad input (an unknown section, a folder that already holds results, a non-positive budget, no
GPU without --dry-run) is one line on stderr and exit code 2, before anything runs.
"""

from __future__ import annotations

import argparse
import datetime
import json
import platform
import shlex
import sys
import time
from pathlib import Path
from typing import NoReturn

from benchmarks.gpu_check.common import Options
from benchmarks.gpu_check.report import markdown
from benchmarks.gpu_check.runner import run_all
from benchmarks.gpu_check.sections import BY_NAME, SECTIONS, Section


class BadInput(Exception):
    """A problem with the command line; its message names it and the fix."""


class OneLineParser(argparse.ArgumentParser):
    """argparse whose usage errors are one line (and exit code 2), like the check's own."""

    def error(self, message: str) -> NoReturn:
        self.exit(2, f"error: {message}; see --help.\n")


def parser() -> argparse.ArgumentParser:
    p = OneLineParser(
        prog="python benchmarks/gpu_check",
        description="Measure a GPU machine for prorl: HF generation, a bf16 training step "
        "(plain and ZeRO-2: tokens/s, MFU), a short prorl-train run and, where vLLM is "
        "installed, eval throughput against raw vLLM, weight sync, sleep/wake and the rollout "
        "log-prob gap. Sections whose packages are missing report 'skipped'.",
    )
    p.add_argument(
        "--out",
        type=Path,
        default=Path("runs/gpu_check"),
        help="folder for results.json, results.md and logs/ (default runs/gpu_check)",
    )
    p.add_argument(
        "--dry-run",
        action="store_true",
        help="tiny shapes on the CPU: checks that every section runs, in seconds",
    )
    p.add_argument("--only", default="", help="comma-separated sections to run (see --list)")
    p.add_argument("--skip", default="", help="comma-separated sections to leave out")
    p.add_argument(
        "--budget-s",
        type=float,
        default=480.0,
        help="wall-clock budget of the whole check in seconds (default 480)",
    )
    p.add_argument(
        "--model",
        default=None,
        help="model folder or alias for prorl_run and the vLLM sections "
        "(default: the embedded SmolLM2-135M-Instruct)",
    )
    p.add_argument(
        "--peak-tflops",
        type=float,
        default=None,
        help="the GPU's dense bf16 peak for MFU, when the built-in table lacks it",
    )
    p.add_argument(
        "--resume",
        action="store_true",
        help="finish an interrupted check in --out: sections already ok there are kept",
    )
    p.add_argument("--list", action="store_true", help="list the sections and exit")
    return p


def names(value: str, flag: str) -> list[str]:
    chosen = [n.strip() for n in value.split(",") if n.strip()]
    unknown = [n for n in chosen if n not in BY_NAME]
    if unknown:
        raise BadInput(f"{flag}: unknown section '{unknown[0]}'; choose from {', '.join(BY_NAME)}.")
    return chosen


def selected(args: argparse.Namespace) -> list[Section]:
    only, skip = names(args.only, "--only"), names(args.skip, "--skip")
    chosen = [s for s in SECTIONS if (not only or s.name in only) and s.name not in skip]
    if not chosen:
        raise BadInput("--only/--skip leave no section to run; see --list.")
    return chosen


def check(args: argparse.Namespace) -> None:
    if args.budget_s <= 0:
        raise BadInput(f"--budget-s must be positive (got {args.budget_s:g}).")
    if args.peak_tflops is not None and args.peak_tflops <= 0:
        raise BadInput(f"--peak-tflops must be positive (got {args.peak_tflops:g}).")
    if not args.resume and (args.out / "results.json").exists():
        raise BadInput(
            f"{args.out} already holds results.json; pass another --out (or --resume to "
            "rerun the sections that were not ok)."
        )
    if not args.resume and any((args.out / "logs").glob("*.json")):
        raise BadInput(
            f"{args.out} holds an unfinished check; pass --resume to finish it, or another --out."
        )
    if args.out.exists() and not args.out.is_dir():
        raise BadInput(f"--out {args.out} is a file; pass a folder.")
    if not args.dry_run:
        import torch

        if not torch.cuda.is_available():
            raise BadInput(
                "no CUDA GPU here (torch.cuda.is_available() is False); run on a GPU machine, "
                "or pass --dry-run for the CPU rehearsal."
            )


def main(argv: list[str] | None = None) -> int:
    args = parser().parse_args(argv)
    if args.list:
        for s in SECTIONS:
            print(f"{s.name:18} {s.about} (needs: {s.needs}; cap {s.cap_s} s)")
        return 0
    try:
        sections = selected(args)
        check(args)
    except BadInput as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    args.out.mkdir(parents=True, exist_ok=True)
    opts = Options(
        dry_run=args.dry_run,
        model=args.model,
        peak_tflops=args.peak_tflops,
        work_dir=str(args.out.resolve()),
    )
    started = datetime.datetime.now(datetime.timezone.utc)

    def progress(i: int, result: dict) -> None:
        reason = f": {result['reason']}" if result.get("reason") else ""
        if result.get("reused"):
            reason = " (kept from the interrupted check)"
        print(
            f"[{i + 1}/{len(sections)}] {result['section']:18} {result['status']:8} "
            f"{result['seconds']:6.1f} s{reason}",
            file=sys.stderr,
            flush=True,
        )

    begin = time.perf_counter()
    try:
        results = run_all(
            sections, opts, args.out, args.budget_s, on_result=progress, resume=args.resume
        )
    except KeyboardInterrupt:
        print(
            f"interrupted; the sections done are kept in {args.out}/logs/: rerun with --resume "
            "to finish.",
            file=sys.stderr,
        )
        return 130
    header = {
        "date": started.strftime("%Y-%m-%d %H:%M UTC"),
        "host": platform.node(),
        "mode": "dry run (CPU, tiny shapes)" if args.dry_run else "GPU",
        "command": "python benchmarks/gpu_check "
        + shlex.join(argv if argv is not None else sys.argv[1:]),
        "total_s": f"{time.perf_counter() - begin:.1f} (budget {args.budget_s:.0f})",
    }
    (args.out / "results.json").write_text(
        json.dumps({"header": header, "sections": results}, indent=1, default=str)
    )
    text = markdown(results, header)
    (args.out / "results.md").write_text(text)
    print(text)
    failed = [r["section"] for r in results if r["status"] == "failed"]
    if failed:
        print(f"failed: {', '.join(failed)} (see {args.out}/logs/)", file=sys.stderr)
    return 1 if failed else 0
