"""Adversarial tests of the code sandbox.

Each attack is the "solution" to HumanEval/53 (`add(x, y)`), scored by the code task's scorer.
Every attacking solution is also wrong, so a pass could only come from a broken sandbox; each
must score 0 with a reason that names what happened, the harness must finish quickly, and nothing
outside the sandbox may change. A control test shows the same setup passes a correct solution.
"""

from __future__ import annotations

import os
import shutil
import socket
import subprocess
import sysconfig
import tempfile
import time
from pathlib import Path

import pytest

from prorl_eval.sandbox import Limits, call_function, run_check, run_many, run_python, run_stdio
from prorl_eval.sandbox import harness as sandbox
from prorl_eval.tasks.code import CodeConfig, FunctionCodeTask

FAST = Limits(
    cpu_s=1, wall_s=3, memory_mb=256, max_procs=8, file_size_mb=1, disk_mb=8, output_kb=64,
    total_wall_s=10,
)  # fmt: skip
REPO = Path(__file__).resolve().parents[1]
SANDBOX_UID_MIN = 1_000_000_000  # per-run uids (see sandbox._isolation_settings)


@pytest.fixture(scope="module")
def task() -> FunctionCodeTask:
    ok, why = sandbox.sandbox_check()
    assert ok, f"the sandbox cannot run here: {why}"
    return FunctionCodeTask(CodeConfig("humaneval", limits=FAST))


@pytest.fixture(scope="module")
def problem(task):
    return next(p for p in task.load() if p.id == "HumanEval/53")


def respond(body: str, add_body: str = "return None") -> str:
    """A response whose program runs `body` when loaded and defines a wrong `add`."""
    return f"Sure:\n```python\n{body}\n\ndef add(x: int, y: int):\n    {add_body}\n```\n"


def score_attack(task, problem, body: str, add_body: str = "return None", max_s: float = 15.0):
    started = time.monotonic()
    score = task.score(respond(body, add_body), problem)
    elapsed = time.monotonic() - started
    assert score.value == 0.0, score.reason
    assert elapsed < max_s, f"the harness took {elapsed:.1f} s"
    return score


def sandbox_processes() -> list[int]:
    """Host processes still running as a per-run sandbox uid (there should be none)."""
    found = []
    for entry in os.listdir("/proc"):
        if entry.isdigit():
            try:
                if os.stat(f"/proc/{entry}").st_uid >= SANDBOX_UID_MIN:
                    found.append(int(entry))
            except FileNotFoundError:
                continue
    return found


def wait_no_sandbox_processes(timeout: float = 60.0) -> list[int]:
    deadline = time.monotonic() + timeout
    while (left := sandbox_processes()) and time.monotonic() < deadline:
        time.sleep(0.05)
    return left


# ----------------------------------------------------------------------------- control


def test_correct_solution_passes_with_the_same_limits(task, problem):
    score = task.score(respond("import math", "return x + y"), problem)
    assert score.value == 1.0, score.reason
    assert "all tests passed" in score.reason


# ----------------------------------------------------------------------------- resources


def test_fork_bomb_is_contained_and_cleaned_up(task, problem):
    bomb = "import os\nwhile True:\n    try:\n        os.fork()\n    except OSError:\n        pass"
    score = score_attack(task, problem, bomb)
    assert score.extra["status"] == "timeout"
    assert "limit" in score.reason
    assert wait_no_sandbox_processes() == []


def test_process_count_is_limited():
    code = (
        "import os, time\nn = 0\nfor _ in range(64):\n    try:\n        pid = os.fork()\n"
        "    except OSError:\n        break\n    if pid == 0:\n        time.sleep(30)\n"
        "        os._exit(0)\n    n += 1\nprint(n)"
    )
    result = run_python(code, limits=FAST)
    assert result.ok, result.reason
    assert 0 < int(result.stdout) < FAST.max_procs  # the supervisor and the program count too
    assert wait_no_sandbox_processes() == []


def test_ten_gigabytes_is_a_memory_error(task, problem):
    score = score_attack(task, problem, "hog = bytearray(10 * 1024**3)")
    assert "MemoryError" in score.reason


def test_infinite_loop_at_load_and_in_a_call_time_out(task, problem):
    score = score_attack(task, problem, "while True:\n    pass")
    assert score.extra["status"] == "timeout"
    score = score_attack(task, problem, "import math", "while True:\n        pass")
    assert score.extra["status"] == "timeout"
    result = run_python("while True:\n    pass", limits=Limits(cpu_s=1, wall_s=20))
    assert result.status == "timeout" and "CPU time limit" in result.reason


def test_huge_file_and_full_disk_are_refused(task, problem):
    score = score_attack(task, problem, "open('big', 'wb').write(b'x' * (50 * 1024 * 1024))")
    assert "File too large" in score.reason
    fill = "for i in range(100):\n    open(f'f{i}', 'wb').write(b'x' * (900 * 1024))"
    score = score_attack(task, problem, fill)
    assert "No space left on device" in score.reason


def test_flooding_stdout_stops_at_the_output_limit():
    result = run_python("while True:\n    print('x' * 1000)", limits=FAST)
    assert result.status == "output-limit"
    assert len(result.stdout) <= FAST.output_kb * 1024


# ----------------------------------------------------------------------------- the host


def test_rm_rf_outside_its_folder_changes_nothing(task, problem, tmp_path):
    canary = tmp_path / "canary"
    canary.mkdir()
    (canary / "keep.txt").write_text("still here")
    site = sysconfig.get_paths()["purelib"]
    targets = [str(canary), str(REPO / "tests"), str(REPO / "prorl_eval")]
    body = (
        "import os, shutil, subprocess\n"
        f"for path in {targets!r}:\n"
        "    shutil.rmtree(path, ignore_errors=True)\n"
        "    subprocess.run(['rm', '-rf', path])\n"
        f"open({site + '/evil_sandbox_test.pth'!r}, 'w').write('import os')\n"
    )
    score = score_attack(task, problem, body)
    assert "Read-only file system" in score.reason
    assert (canary / "keep.txt").read_text() == "still here"
    assert (REPO / "prorl_eval" / "sandbox" / "harness.py").is_file()
    assert Path(__file__).is_file()
    assert not os.path.exists(os.path.join(site, "evil_sandbox_test.pth"))


def test_files_outside_its_folder_cannot_be_read(task, problem, tmp_path):
    secret = tmp_path / "root_only.txt"
    secret.write_text("TOP-SECRET-CONTENT")
    secret.chmod(0o600)
    body = f"print(open({str(secret)!r}).read())"
    score = score_attack(task, problem, body)
    assert "No such file or directory" in score.reason
    assert "TOP-SECRET" not in score.reason
    shadow = Path("/etc/shadow")
    if shadow.exists() and not shadow.stat().st_mode & 0o004:
        score = score_attack(task, problem, "open('/etc/shadow').read()")
        assert "Permission denied" in score.reason
    checkout = Path(__file__).resolve().parents[1]
    probe = (
        "import os\n"
        f"print(sorted(os.listdir('/proc')), os.path.exists({str(checkout / 'prorl_eval')!r}),"
        f" os.path.exists({str(checkout / 'tests')!r}))"
    )
    result = run_python(probe)
    assert result.stdout.split() == ["[]", "False", "False"], result.stdout  # no /proc, no checkout


def test_network_is_unreachable_even_on_localhost(task, problem):
    with socket.socket() as server:
        server.bind(("127.0.0.1", 0))
        server.listen(1)
        port = server.getsockname()[1]
        body = (
            "import socket\n"
            f"socket.create_connection(('127.0.0.1', {port}), timeout=2).sendall(b'pwned')"
        )
        score = score_attack(task, problem, body)
        assert "Network is unreachable" in score.reason
        server.settimeout(0)
        with pytest.raises(BlockingIOError):
            server.accept()
    score = score_attack(task, problem, "import socket\nsocket.create_connection(('8.8.8.8', 53))")
    assert "Network is unreachable" in score.reason


def test_killing_its_parent_or_the_harness_fails(task, problem):
    harness = os.getpid()
    body = (
        "import glob, os, signal\n"
        f"for pid in (os.getppid(), {harness}, {os.getppid()}, -1):\n"
        "    try:\n        os.kill(pid, signal.SIGKILL)\n    except OSError:\n        pass\n"
        "for entry in glob.glob('/proc/[0-9]*'):\n"
        "    os.kill(int(entry.rsplit('/', 1)[1]), signal.SIGKILL)\n"
    )
    score = score_attack(task, problem, body)
    assert "assertion failed" in score.reason  # the tests ran, and the wrong answer failed them
    brute = (
        "import os\nfor pid in range(2, 70000):\n    try:\n        os.kill(pid, 9)\n"
        "    except OSError:\n        pass"
    )
    score = score_attack(task, problem, brute)
    assert score.extra["status"] == "killed"  # it only reached its own processes
    assert os.getpid() == harness


def test_environment_secrets_are_not_visible(task, problem, monkeypatch):
    monkeypatch.setenv("PRORL_FAKE_API_KEY", "hunter2-secret-value")
    leak = "import os\nLEAK = ' '.join(sorted(os.environ)) + ' | ' + ' '.join(os.environ.values())"
    score = score_attack(task, problem, leak, "raise ValueError(LEAK)")
    assert "PATH" in score.reason and "hunter2" not in score.reason
    result = run_python(
        "import os\nprint(dict(os.environ))\nprint(open('/proc/self/environ').read())"
    )
    assert "'PATH'" in result.stdout and "hunter2" not in result.stdout + result.stderr


# ----------------------------------------------------------------------------- faked verdicts


def test_exiting_before_the_tests_run_fails(task, problem):
    score = score_attack(task, problem, "import sys\nsys.exit(0)")
    assert "SystemExit" in score.reason
    score = score_attack(task, problem, "import os\nos._exit(0)")
    assert "exited (exit code 0) before the tests finished" in score.reason
    score = score_attack(task, problem, "import math", "raise SystemExit(0)")
    assert "SystemExit" in score.reason


@pytest.mark.parametrize(
    ("body", "add_body", "expected"),
    [
        ("def check(candidate):\n    return True", "return None", "assertion failed"),
        (
            "import builtins, sys\nbuiltins.AssertionError = type('X', (Exception,), {})\n"
            "builtins.abs = lambda x: 0\nbuiltins.print = lambda *a, **k: None\n"
            "sys.exit = lambda *a: None",
            "return None",
            "assertion failed",
        ),
        (
            "class AlwaysEqual:\n    def __eq__(self, other):\n        return True",
            "return AlwaysEqual()",
            "is not plain data",
        ),
        (
            "import os\nfor fd in range(64):\n    try:\n"
            '        os.write(fd, b\'{"status": "ok", "reason": "all tests passed"}\\n\')\n'
            "    except OSError:\n        pass",
            "return None",
            "broke the result channel",
        ),
        (
            "import gc\n"
            "found = [o for o in gc.get_objects() if isinstance(o, dict) and 'nonce' in o]",
            "raise ValueError(repr(found))",
            "ValueError: []",
        ),
    ],
    ids=["redefine-check", "patch-builtins", "rigged-eq", "forge-report", "hunt-nonce"],
)
def test_monkeypatching_the_harness_does_not_pass(task, problem, body, add_body, expected):
    score = score_attack(task, problem, body, add_body)
    assert expected in score.reason


def test_report_without_the_nonce_is_never_a_pass(monkeypatch, tmp_path):
    fake = tmp_path / "fake_runner.py"
    fake.write_text(
        "import sys\nsys.stdin.buffer.read()\n"
        'print(\'{"status": "ok", "reason": "all tests passed", "nonce": "guess", '
        '"cases": [{"status": "ok", "stdout": "42\\\\n"}], "outputs": [{"ok": 3}]}\')\n'
    )
    monkeypatch.setattr(sandbox, "RUNNER", str(fake))
    result = run_check("def f(): pass", test="def check(c): pass", entry_point="f", limits=FAST)
    assert not result.ok and result.status == "sandbox-error"
    assert "unauthenticated" in result.reason
    assert run_python("print(42)").status == "sandbox-error"
    assert call_function("def f(x): return x", "f", [[3]]).status == "sandbox-error"


# ----------------------------------------------------------------------------- fail closed


def test_without_namespaces_it_fails_closed(task, problem, monkeypatch):
    monkeypatch.setenv(sandbox.TEST_DENY_ENV, "1")
    score = task.score(respond("import math", "return x + y"), problem)  # a correct solution
    assert score.value == 0.0
    assert score.extra["status"] == "sandbox-unavailable"
    assert sandbox.UNSAFE_ENV in score.reason


def test_explicit_opt_out_runs_without_isolation_and_cleans_up(monkeypatch):
    monkeypatch.setenv(sandbox.TEST_DENY_ENV, "1")
    monkeypatch.setenv(sandbox.UNSAFE_ENV, "1")
    before = set(Path(tempfile.gettempdir()).glob("prorl-sandbox-*"))
    result = run_python("import os\nprint(6 * 7, os.getcwd())", limits=FAST)
    assert result.ok, result.reason
    answer, folder = result.stdout.split()
    assert answer == "42" and folder.startswith(tempfile.gettempdir())
    assert not os.path.exists(folder)
    assert set(Path(tempfile.gettempdir()).glob("prorl-sandbox-*")) == before


@pytest.mark.skipif(
    os.geteuid() != 0 or not shutil.which("setpriv") or not os.path.exists("/usr/bin/python3"),
    reason="needs root, setpriv and a system python3 to run the harness as another user",
)
def test_non_root_harness_uses_a_user_namespace():
    folder = Path(tempfile.mkdtemp(prefix="prorl-nonroot-test-"))
    try:
        folder.chmod(0o755)
        (folder / "prorl_eval").mkdir()
        shutil.copy(REPO / "prorl_eval" / "errors.py", folder / "prorl_eval" / "errors.py")
        shutil.copytree(REPO / "prorl_eval" / "sandbox", folder / "prorl_eval" / "sandbox")
        (folder / "prorl_eval" / "__init__.py").write_text("")
        program = (
            f"import os, sys\nsys.path.insert(0, {str(folder)!r})\n"
            "from prorl_eval.sandbox import Limits, run_python\n"
            'code = \'import os, socket\\nprint(os.getuid(), os.listdir("/proc"))\\n'
            'os.kill(os.getppid(), 9)\\nsocket.create_connection(("127.0.0.1", 22))\'\n'
            "r = run_python(code, limits=Limits(wall_s=5, memory_mb=256))\n"
            "print(r.status, '|', r.stdout.strip(), '|', r.stderr.strip().splitlines()[-1])\n"
        )
        done = subprocess.run(
            ["setpriv", "--reuid", "1000", "--regid", "1000", "--clear-groups", "/usr/bin/python3",
             "-c", program],
            capture_output=True, text=True, timeout=60, cwd=folder,
        )  # fmt: skip
    finally:
        shutil.rmtree(folder, ignore_errors=True)
    if "cannot isolate" in done.stdout:
        pytest.skip("unprivileged user namespaces are disabled on this machine")
    assert done.returncode == 0, done.stderr
    assert done.stdout.strip() == "error | 1000 [] | OSError: [Errno 101] Network is unreachable"


# ----------------------------------------------------------------------------- the API


def test_run_python_basics():
    result = run_python(
        "import sys\nname = open('data/name.txt').read()\nprint(input()[::-1], name)\n"
        "print('to stderr', file=sys.stderr)\nsys.exit(3)",
        stdin="abc\n",
        files={"data/name.txt": "world"},
        limits=FAST,
    )
    assert (result.status, result.returncode) == ("error", 3)
    assert result.stdout == "cba world\n" and result.stderr == "to stderr\n"
    crash = run_python("raise KeyError('boom')", limits=FAST)
    assert crash.status == "error" and "KeyError: 'boom'" in crash.stderr
    assert run_python("print(__name__)", limits=FAST).stdout == "__main__\n"
    helper = run_python("import helper\nprint(helper.X)", files={"helper.py": "X = 5"}, limits=FAST)
    assert helper.stdout == "5\n"


def test_run_stdio_runs_each_case_in_a_fresh_process():
    code = "import os\nopen('seen', 'a').write('x')\nn = int(input())\nprint(n * n)"
    results = run_stdio(code, ["3\n", "4\n", "oops\n"], limits=FAST)
    assert [r.stdout for r in results] == ["9\n", "16\n", ""]
    assert [r.status for r in results] == ["ok", "ok", "error"]
    assert "ValueError" in results[2].stderr


def test_call_function_returns_plain_data():
    code = (
        "def f(x):\n    if x < 0:\n        raise ValueError('negative')\n"
        "    return (x, {x}, x / 4, [None])"
    )
    result = call_function(code, "f", [[1], [2], [-1], [3]], limits=FAST)
    assert result.status == "raised" and result.raised.startswith("ValueError: negative")
    assert result.values == [(1, {1}, 0.25, [None]), (2, {2}, 0.5, [None])]
    assert call_function(code, "missing", [[1]], limits=FAST).status == "error"


def test_call_function_gives_each_input_its_own_time_limit():
    """A call over its own limit ends the run as a timeout naming that input, although the
    session's budget had time left; the calls before it keep their values and timings."""
    code = "import time\ndef f(x):\n    time.sleep(x)\n    return x"
    limits = Limits(cpu_s=30, wall_s=60, memory_mb=256, max_procs=8)
    result = call_function(code, "f", [[0], [0.2], [60]], limits=limits, call_limits_s=[30, 30, 1])
    assert result.status == "timeout" and result.values == [0, 0.2]
    assert result.reason == "time limit 1 s of input 3"
    assert len(result.call_s) == 2 and result.call_s[1] >= 0.2
    whole = call_function(code, "f", [[0], [0.2]], limits=limits, call_limits_s=[30, 30])
    assert whole.status == "ok" and whole.values == [0, 0.2]
    with pytest.raises(ValueError, match="2 call limits for 3 inputs"):
        call_function(code, "f", [[0], [0], [0]], call_limits_s=[1, 1])


def test_runs_in_parallel_each_with_its_own_uid():
    code = "import os, time\ntime.sleep(0.3)\nprint(os.getuid())"
    started = time.monotonic()
    results = run_many([lambda: run_python(code, limits=FAST)] * 4, workers=4)
    assert all(r.ok for r in results), [r.reason for r in results]
    uids = {r.stdout for r in results}
    assert len(uids) == 4 or os.geteuid() != 0  # as root, a fresh unprivileged uid per run
    assert time.monotonic() - started < 4 * 0.3 + 10
