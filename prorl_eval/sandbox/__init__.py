"""The sandbox: model-written Python runs here, isolated, and only a verdict comes back.

- `harness` — the API the verifiers call (`run_python`, `run_stdio`, `run_check`,
  `call_function`, `run_many`, `sandbox_check`) and the threat model;
- `runner` — the script the harness starts in a fresh interpreter (`python -S -B runner.py`): the
  supervisor and the candidate's process, stdlib only;
- `isolation` — namespaces, mounts, identity and resource limits, applied inside `runner`;
- `proto` — the framing and plain-data encoding both sides speak.
"""

from prorl_eval.sandbox.harness import (
    SANDBOX_VERSION,
    UNSAFE_ENV,
    CallResult,
    Limits,
    RunResult,
    call_function,
    run_check,
    run_many,
    run_python,
    run_stdio,
    sandbox_check,
)

__all__ = [
    "SANDBOX_VERSION",
    "UNSAFE_ENV",
    "CallResult",
    "Limits",
    "RunResult",
    "call_function",
    "run_check",
    "run_many",
    "run_python",
    "run_stdio",
    "sandbox_check",
]
