"""Run the chosen sections one after another, each in its own process, within one time budget.

A section's process may crash, hang or run out of GPU memory without taking the others with it:
its time cap is the smaller of its own (`sections.SECTIONS`) and what is left of `--budget-s`,
after which its process group is killed (vLLM starts helper processes) and it counts as failed.
A section reached with under `MIN_START_S` of budget left is skipped. Each section's output
(library logs, vLLM's start-up) goes to `<out>/logs/<section>.log`, its result to
`<out>/logs/<section>.json`; with `resume`, a section whose result there is `ok` under the same
options is kept rather than run again (an interrupted check goes on where it stopped).
"""

from __future__ import annotations

import contextlib
import json
import os
import signal
import subprocess
import sys
import time
from collections.abc import Callable
from pathlib import Path

from benchmarks.gpu_check.common import Options
from benchmarks.gpu_check.sections import Section
from benchmarks.gpu_check.worker import options_json

MIN_START_S = 20.0
ROOT = Path(__file__).resolve().parents[2]


def last_line(log: Path) -> str:
    lines = [line for line in log.read_text(errors="replace").splitlines() if line.strip()]
    return lines[-1][:300] if lines else "(no output)"


def stop(process: subprocess.Popen) -> None:
    """Kill the section's whole process group (vLLM's engine and compile workers too)."""
    with contextlib.suppress(ProcessLookupError):
        os.killpg(process.pid, signal.SIGKILL)
    process.wait()


def earlier_result(section: Section, opts: Options, out: Path) -> dict | None:
    """The `ok` result a previous, interrupted check left for `section` under the same options."""
    logs = out / "logs"
    result_file, options_file = logs / f"{section.name}.json", logs / f"{section.name}.options.json"
    if not (result_file.is_file() and options_file.is_file()):
        return None
    if options_file.read_text() != options_json(opts):
        return None
    result = json.loads(result_file.read_text())
    return {**result, "reused": True} if result.get("status") == "ok" else None


def run_section(section: Section, opts: Options, out: Path, timeout: float) -> dict:
    logs = out / "logs"
    logs.mkdir(parents=True, exist_ok=True)
    log, result_file, options_file = (
        logs / f"{section.name}{ext}" for ext in (".log", ".json", ".options.json")
    )
    options_file.write_text(options_json(opts))
    result_file.unlink(missing_ok=True)
    env = {**os.environ, "PYTHONUNBUFFERED": "1"}
    env["PYTHONPATH"] = os.pathsep.join(filter(None, [str(ROOT), env.get("PYTHONPATH")]))
    cmd = [
        sys.executable,
        "-m",
        "benchmarks.gpu_check.worker",
        section.name,
        str(result_file),
        str(options_file),
    ]
    start = time.perf_counter()
    with log.open("w") as sink:
        process = subprocess.Popen(
            cmd, cwd=ROOT, env=env, stdout=sink, stderr=subprocess.STDOUT, start_new_session=True
        )
        try:
            code = process.wait(timeout=timeout)
        except subprocess.TimeoutExpired:
            stop(process)
            code = None
        except BaseException:  # Ctrl-C: the section's own session would not see it
            stop(process)
            raise
    seconds = time.perf_counter() - start
    if result_file.is_file():
        return {**json.loads(result_file.read_text()), "seconds": seconds}
    reason = (
        f"ran past its {timeout:.0f} s cap and was stopped"
        if code is None
        else f"its process died (exit code {code}): {last_line(log)}"
    )
    return {
        "section": section.name,
        "status": "failed",
        "reason": reason,
        "metrics": {},
        "seconds": seconds,
    }


def run_all(
    sections: list[Section],
    opts: Options,
    out: Path,
    budget_s: float,
    on_result: Callable[[int, dict], None] = lambda i, r: None,
    resume: bool = False,
) -> list[dict]:
    results = []
    start = time.perf_counter()
    for i, section in enumerate(sections):
        left = budget_s - (time.perf_counter() - start)
        earlier = earlier_result(section, opts, out) if resume else None
        if earlier is not None:
            result = earlier
        elif left < MIN_START_S:
            result = {
                "section": section.name,
                "status": "skipped",
                "reason": f"the budget (--budget-s {budget_s:.0f}) was spent",
                "metrics": {},
                "seconds": 0.0,
            }
        else:
            result = run_section(section, opts, out, timeout=min(section.cap_s, left))
        results.append(result)
        on_result(i, result)
    return results
