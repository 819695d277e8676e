"""Run untrusted, model-written Python in an isolated process and get an unforgeable verdict.

API: `run_python` (one program, one stdin), `run_stdio` (one program, many stdins: APPS-style
tests), `run_check` (HumanEval: the task's `check(candidate)`), `call_function` (evalplus: the
entry point's outputs on given inputs), `run_many` (any of these in parallel threads; each run is
its own process tree, so threads scale across cores), `sandbox_check` (is isolation available?).

    >>> run_python("print(input()[::-1])", stdin="abc").stdout  # doctest: +SKIP
    'cba\\n'

Threat model. The program is hostile: it may try to fake a pass, escape, spy, or damage the host.

- Faked verdicts. The candidate never shares a process with the verdict. For `run_check` the
  trusted test code runs in the supervisor process (S); `candidate` is a proxy that sends plain-data
  arguments to the worker process (C) and rebuilds plain-data results (`proto.encode`
  refuses other objects, so a rigged `__eq__` cannot cross). Patching `check`, `assert`, `print`,
  `sys.exit` or builtins in C changes nothing in S; `sys.exit(0)`/`os._exit(0)` in C is "the
  program exited before the tests finished". S writes the report to the harness's pipe, which C
  never holds (C's stdio are S's pipes or /dev/null), and the report must carry a random per-run
  nonce, sent to S through its stdin (never an environment variable, argument or file), for
  `run_check`/`call_function` only after C was forked (so neither the nonce nor the test code is
  in C's memory); /proc is not mounted in the sandbox, and S is non-dumpable (no ptrace, no
  /proc/<pid>/mem). Only a report with the right nonce can say "ok"; anything else fails.
- Network: a new network namespace with no interface up; connects to 127.0.0.1 or the internet
  fail. Abstract unix sockets are per-namespace; filesystem sockets of the host are not visible.
- Files: a private mount namespace in which every mount is read-only; all top-level folders except
  /usr, /bin, /sbin, /lib*, /etc and /dev are replaced by empty read-only folders (the Python
  installation is bound back, read-only), /tmp is a private tmpfs of `disk_mb` holding the
  program's folder /tmp/work (also HOME and TMPDIR), gone when the run ends. /proc, /sys, /dev/shm
  are empty. NOT isolated: reading world-readable files under /usr, /etc, /dev and the Python
  installation (no secrets belong there; root-only files such as /etc/shadow stay unreadable).
- Identity: as root, S drops to a random unprivileged uid/gid per run, with no capabilities and
  no-new-privs (setuid binaries cannot give root back); as another user, a user namespace maps the
  user to uid 1000 inside, again with no capabilities. A new pid namespace hides every host process
  (the harness cannot be signalled: host pids do not exist there, and the program's parent is S,
  pid 1, which ignores signals sent from inside); when S exits the kernel kills everything left in
  the namespace, including daemons and fork bombs.
- Resources: CPU seconds and file size per process (RLIMIT_CPU/FSIZE), address space per process
  (RLIMIT_AS), processes and threads per run (RLIMIT_NPROC on the per-run uid), descriptors, the
  private /tmp's size, captured output, and a wall clock enforced by S and, as a backstop, here
  (kill the runner's process group; S dies with it, and the namespace with S).
- Environment: the program gets PATH, LANG, HOME/TMPDIR (its folder), PYTHONHASHSEED=0 and thread
  caps only, never the harness's variables.

Not covered: there is no seccomp filter, so the whole kernel interface remains (a kernel exploit
escapes); memory is limited per process, not per run (max_procs x memory_mb at worst); timing
and other side channels; as a non-root user, the program runs as that user outside the namespace
(its kernel keyrings, for instance, are reachable).

If namespaces cannot be created (e.g. an unprivileged container), runs fail closed with status
"sandbox-unavailable", unless `PRORL_SANDBOX_UNSAFE_NO_ISOLATION=1` is set: then programs run with
only the limits, the privilege drop (when root; the Python installation must then be readable by
other users) and a temporary folder; no network, file or process isolation.
(`PRORL_SANDBOX_TEST_NO_NAMESPACES=1` simulates missing namespaces, for tests.)
"""

from __future__ import annotations

import contextlib
import functools
import os
import secrets
import signal
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable, Iterable, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import asdict, dataclass, field
from typing import Any, TypeVar

from prorl_eval.errors import UserError
from prorl_eval.sandbox import proto

# Recorded in every sandbox-scored task's version: bump when a change to the sandbox could change
# a verdict, so run folders never mix two sandboxes.
SANDBOX_VERSION = "sandbox-v1"
RUNNER = os.path.join(os.path.dirname(os.path.abspath(__file__)), "runner.py")
UNSAFE_ENV = "PRORL_SANDBOX_UNSAFE_NO_ISOLATION"
TEST_DENY_ENV = "PRORL_SANDBOX_TEST_NO_NAMESPACES"
_GRACE_S = 5.0
T = TypeVar("T")


@dataclass(frozen=True)
class Limits:
    """Resource limits of one sandboxed run (per test case for `run_stdio`)."""

    cpu_s: float = 10.0  # CPU seconds per process
    wall_s: float = 20.0  # wall clock per program run (per case), or per check/calls session
    memory_mb: int = 1024  # address space per process
    max_procs: int = 16  # processes + threads the program may have at once
    file_size_mb: int = 16  # largest file it may write
    disk_mb: int = 64  # size of its private /tmp (its folder lives there)
    output_kb: int = 1024  # stdout/stderr kept per stream; more kills it (status output-limit)
    total_wall_s: float = 120.0  # all cases of one `run_stdio` together

    def validate(self) -> None:
        for name, value in asdict(self).items():
            if not value > 0:
                raise UserError(f"sandbox limit {name} must be > 0 (got {value}).")
        if self.memory_mb < 64:
            raise UserError(f"sandbox memory_mb must be at least 64 (got {self.memory_mb}).")


@dataclass(frozen=True)
class RunResult:
    """One run. status: ok | failed (a test failed) | error | timeout | memory | killed |
    output-limit | sandbox-unavailable | sandbox-error. `returncode` is negative for a signal."""

    status: str
    returncode: int | None
    stdout: str
    stderr: str
    wall_s: float
    reason: str

    @property
    def ok(self) -> bool:
        return self.status == "ok"


@dataclass(frozen=True)
class CallResult:
    """Outputs of `call_function`: `values[i]` for each input answered, in order, up to the first
    that raised (`raised` describes it, status "raised") or the first failure (status as in
    RunResult); status "ok" when every input returned a value."""

    status: str
    values: list[Any]
    raised: str | None
    reason: str
    wall_s: float
    call_s: list[float] = field(default_factory=list)  # each answered call's time, seen from S


# ----------------------------------------------------------------------------- public API


def run_python(
    code: str, *, stdin: str = "", limits: Limits = Limits(), files: dict[str, str] | None = None
) -> RunResult:
    """Run `code` as `__main__` with `stdin`; its folder holds `files` (name -> text)."""
    return run_stdio(code, [stdin], limits=limits, files=files)[0]


def run_stdio(
    code: str,
    stdins: Sequence[str],
    *,
    limits: Limits = Limits(),
    files: dict[str, str] | None = None,
) -> list[RunResult]:
    """Run `code` once per stdin, each in a fresh process of one sandbox (limits per case)."""
    if not stdins:
        return []
    budget = limits.total_wall_s + limits.wall_s
    report, problem, wall = _execute("script", {"code": code}, {"stdins": list(stdins)}, limits,
                                     files, budget)  # fmt: skip
    cases = report.get("cases") if report and not problem else None
    if not isinstance(cases, list) or len(cases) != len(stdins):
        failed = _failure(report, problem, wall)
        return [failed] * len(stdins)
    return [_case_result(case) for case in cases]


def run_check(
    code: str,
    *,
    test: str,
    entry_point: str,
    prelude: str = "",
    limits: Limits = Limits(),
    files: dict[str, str] | None = None,
) -> RunResult:
    """HumanEval-style: `code` defines `entry_point`; the trusted `prelude` (the prompt, for its
    helpers) and `test` (defining `check(candidate)`) run outside the candidate's process. Status
    "ok" only if `check` returned normally and the report carries this run's nonce."""
    report, problem, wall = _execute(
        "check",
        {"code": code, "entry_point": entry_point},
        {"prelude": prelude, "test": test},
        limits,
        files,
        limits.wall_s,
    )
    if report is None or problem:
        return _failure(report, problem, wall)
    return RunResult(str(report.get("status")), None, "", "", wall, str(report.get("reason", "")))


def call_function(
    code: str,
    entry_point: str,
    inputs: Sequence[Sequence[Any]],
    *,
    limits: Limits = Limits(),
    files: dict[str, str] | None = None,
    transform: str | None = None,
    call_limits_s: Sequence[float] | None = None,
) -> CallResult:
    """Call `entry_point(*args)` of `code` for each args in `inputs` (plain data, see
    `proto.encode`), all in one sandboxed process; outputs come back as plain data.
    `transform` maps each output inside the sandbox first: "is_not_none" (`out is not None`) or
    "bool_or_not_none" (a bool stays, anything else becomes `out is not None`).
    `call_limits_s` gives each input its own wall-clock limit (evalplus's per-input rule) inside
    the session's `limits.wall_s`; a call over its limit ends the run with status "timeout"."""
    if transform not in (None, "is_not_none", "bool_or_not_none"):
        raise ValueError(f"unknown output transform {transform!r}")
    if call_limits_s is not None and len(call_limits_s) != len(inputs):
        raise ValueError(f"{len(call_limits_s)} call limits for {len(inputs)} inputs")
    encoded = [proto.encode(list(args)) for args in inputs]
    job = {"code": code, "entry_point": entry_point, "transform": transform}
    secret: dict[str, Any] = {"inputs": encoded}
    if call_limits_s is not None:
        secret["call_limits"] = [float(limit) for limit in call_limits_s]
    report, problem, wall = _execute("calls", job, secret, limits, files, limits.wall_s)
    if report is None or problem:
        failed = _failure(report, problem, wall)
        return CallResult(failed.status, [], None, failed.reason, wall)
    values, raised, seconds = [], None, []
    try:
        for reply in report.get("outputs", []):
            if "ok" not in reply:
                raised = proto.describe_error(reply.get("error") or {})
                break
            values.append(proto.decode(reply["ok"]))
            seconds.append(float(reply.get("s", 0.0)))
    except (KeyError, TypeError, ValueError, AttributeError) as exc:
        return CallResult("error", values, None, f"undecodable output: {exc!r}"[:300], wall)
    status = str(report.get("status"))
    if status == "done":
        status = "raised" if raised else "ok" if len(values) == len(inputs) else "error"
    reason = f"raised {raised}" if raised else str(report.get("reason", ""))
    return CallResult(status, values, raised, reason, wall, seconds)


def run_many(jobs: Iterable[Callable[[], T]], workers: int | None = None) -> list[T]:
    """Run callables (e.g. `lambda: run_python(...)`) on `workers` threads; results in order."""
    with ThreadPoolExecutor(max_workers=workers or os.cpu_count() or 1) as pool:
        return list(pool.map(lambda job: job(), jobs))


@functools.lru_cache(maxsize=1)
def sandbox_check() -> tuple[bool, str]:
    """(True, isolation mode) when a trivial program runs in the sandbox, else (False, why)."""
    limits = Limits(wall_s=10, memory_mb=256)
    report, problem, wall = _execute("script", {"code": "print('ok')"}, {"stdins": [""]}, limits,
                                     None, limits.wall_s + limits.total_wall_s)  # fmt: skip
    cases = report.get("cases") if report and not problem else None
    if cases and cases[0].get("stdout") == "ok\n":
        return True, f"isolation: {report.get('isolation')}"
    return False, _failure(report, problem, wall).reason


# ----------------------------------------------------------------------------- internals


@functools.lru_cache(maxsize=1)
def _python_paths() -> tuple[tuple[str, ...], tuple[str, ...]]:
    """(folders bound read-only into the sandbox, sys.path there): the Python installation and
    its site-packages only, never the current folder or the project checkout."""
    roots = {sys.prefix, sys.base_prefix, sys.exec_prefix, sys.base_exec_prefix}
    roots.add(os.path.dirname(os.path.realpath(sys.executable)))
    expose = sorted({os.path.realpath(r) for r in roots})

    def inside(path: str) -> bool:
        real = os.path.realpath(path)
        return any(real == r or real.startswith(r.rstrip("/") + "/") for r in expose)

    python_path = [p for p in sys.path if p and os.path.isabs(p) and os.path.isdir(p) and inside(p)]
    return tuple(expose), tuple(dict.fromkeys(python_path))


def _environment() -> dict[str, str]:
    bin_dir = os.path.dirname(sys.executable)
    return {
        "PATH": f"{bin_dir}:/usr/local/bin:/usr/bin:/bin",
        "LANG": "C.UTF-8",
        "LC_ALL": "C.UTF-8",
        "HOME": "/tmp/work",
        "TMPDIR": "/tmp/work",
        "PYTHONHASHSEED": "0",
        "PYTHONDONTWRITEBYTECODE": "1",
        "OMP_NUM_THREADS": "1",
        "OPENBLAS_NUM_THREADS": "1",
        "MKL_NUM_THREADS": "1",
    }


def _isolation_settings(limits: Limits) -> dict[str, Any]:
    expose, python_path = _python_paths()
    return {
        "uid": 1_000_000_000 + secrets.randbelow(1 << 24),  # fresh per run (used when root)
        "expose": list(expose),
        "python_path": list(python_path),
        "disk_mb": limits.disk_mb,
        "allow_unsafe": os.environ.get(UNSAFE_ENV) == "1",
        "deny_namespaces": os.environ.get(TEST_DENY_ENV) == "1",
        "tmp_root": tempfile.gettempdir(),  # for the unisolated fallback's folder
    }


def _execute(
    mode: str,
    job_fields: dict[str, Any],
    secret_fields: dict[str, Any],
    limits: Limits,
    files: dict[str, str] | None,
    budget_s: float,
) -> tuple[dict[str, Any] | None, str, float]:
    """Run one job; (report, problem, wall seconds). `problem` is "" only for an authentic report
    (right nonce); a report without the nonce is kept but may only ever mean failure."""
    limits.validate()
    nonce = secrets.token_hex(16)
    job = {"mode": mode, "limits": asdict(limits), "isolation": _isolation_settings(limits)}
    job.update(files=dict(files or {}), **job_fields)
    payload = proto.pack(job) + proto.pack({"nonce": nonce, **secret_fields})
    started = time.monotonic()
    proc = subprocess.Popen(
        [sys.executable, "-S", "-B", RUNNER],
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        env=_environment(),
        cwd="/",
        start_new_session=True,
    )
    try:
        out, err = proc.communicate(payload, timeout=budget_s + _GRACE_S)
    except subprocess.TimeoutExpired:
        _kill_group(proc)
        return None, f"wall-clock limit of {budget_s:g} s exceeded", time.monotonic() - started
    finally:
        _kill_group(proc)
    wall = time.monotonic() - started
    report = _parse_report(out)
    if report is None:
        tail = err.decode(errors="replace").strip().splitlines()[-1:] or [""]
        code = proc.returncode
        return None, f"the sandbox ended without a report (exit {code}) {tail[0]}"[:300], wall
    if report.get("nonce") != nonce:
        return report, "unauthenticated report", wall
    return report, "", wall


def _kill_group(proc: subprocess.Popen[bytes]) -> None:
    with contextlib.suppress(ProcessLookupError, PermissionError):
        os.killpg(proc.pid, signal.SIGKILL)
    with contextlib.suppress(subprocess.TimeoutExpired, ValueError):
        proc.communicate(timeout=_GRACE_S)


def _parse_report(out: bytes) -> dict[str, Any] | None:
    import json

    lines = out.decode(errors="replace").strip().splitlines()
    try:
        report = json.loads(lines[-1]) if lines else None
    except ValueError:
        return None
    return report if isinstance(report, dict) else None


def _failure(report: dict[str, Any] | None, problem: str, wall: float) -> RunResult:
    """The result of a run without an authentic report: never "ok"."""
    status = "timeout" if problem.startswith("wall-clock") else "sandbox-error"
    reason = problem
    if report is not None and report.get("status") == "sandbox-unavailable":
        status, reason = "sandbox-unavailable", str(report.get("reason", ""))
    elif report is not None and problem:
        reason = f"{problem} (claimed status {report.get('status')!r})"
    if status == "ok":
        status = "sandbox-error"
    return RunResult(status, None, "", "", wall, reason)


def _case_result(case: dict[str, Any]) -> RunResult:
    return RunResult(
        status=str(case.get("status")),
        returncode=case.get("returncode"),
        stdout=str(case.get("stdout", "")),
        stderr=str(case.get("stderr", "")),
        wall_s=float(case.get("wall_s") or 0.0),
        reason=str(case.get("reason", "")),
    )
