"""Run one section in this process and write its result as JSON (started by `runner.py`).

Usage: ``python -m benchmarks.gpu_check.worker SECTION RESULT.json OPTIONS.json``. The outcome
is `ok` with the section's metrics, `skipped` with the reason (a `Skip`, or a third-party
package that does not import), or `failed` with the error's last line and its traceback.
"""

from __future__ import annotations

import dataclasses
import importlib
import json
import sys
import time
import traceback
from pathlib import Path

from benchmarks.gpu_check.common import Options, Skip
from benchmarks.gpu_check.sections import BY_NAME

OWN_PACKAGES = {"benchmarks", "prorl_eval", "prorl_train"}


def outcome(section: str, opts: Options) -> dict:
    module_name, function = BY_NAME[section].target.split(":")
    start = time.perf_counter()
    result: dict = {"section": section, "status": "ok", "reason": "", "metrics": {}}
    try:
        module = importlib.import_module(f"benchmarks.gpu_check.sections.{module_name}")
        result["metrics"] = getattr(module, function)(opts)
    except Skip as exc:
        result.update(status="skipped", reason=str(exc))
    except ModuleNotFoundError as exc:
        top = (exc.name or "").split(".")[0]
        if not top or top in OWN_PACKAGES:
            raise
        result.update(status="skipped", reason=f"needs the package '{top}', which does not import")
    except Exception as exc:  # a section's failure is its result; the others still run
        last = str(exc).strip().splitlines()
        reason = f"{type(exc).__name__}: {last[-1] if last else ''}".rstrip(": ")
        result.update(status="failed", reason=reason, detail=traceback.format_exc())
    result["seconds"] = time.perf_counter() - start
    return result


def main(argv: list[str]) -> int:
    section, result_path, options_path = argv
    opts = Options(**json.loads(Path(options_path).read_text()))
    result = outcome(section, opts)
    Path(result_path).write_text(json.dumps(result, indent=1, default=str))
    return 0


def options_json(opts: Options) -> str:
    return json.dumps(dataclasses.asdict(opts))


if __name__ == "__main__":
    raise SystemExit(main(sys.argv[1:]))
