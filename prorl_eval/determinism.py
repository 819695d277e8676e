"""Same inputs, same problems, in every process: calls pinned to a fixed string-hash seed.

Python randomises the hash of every `str` per process (`PYTHONHASHSEED`), so the iteration order of
a set of strings differs from one process to the next. Some procedural generators iterate such sets
while drawing random numbers; reasoning-gym 0.1.x builds different puzzles for the same
(seed, index) in every process for six datasets (isomorphic_strings, knight_swap, list_functions,
polynomial_multiplication, ransom_note, word_ladder). Then a resumed run, a scoring worker or the
RL run's evaluation silently looks at other problems than the base run did.

The hash seed of a running interpreter cannot be changed, so code that must not depend on it runs
through :func:`call_with_fixed_hash_seed`: directly when this process already runs with
``PYTHONHASHSEED=0``, otherwise in one helper process started with it (``python -m
prorl_eval.determinism``, kept for the life of this process, so the start-up cost is paid once).
The helper is a plain subprocess, not a multiprocessing child, so it never re-imports the caller's
``__main__`` script. The first such call also sets ``PYTHONHASHSEED=0`` in this process's
environment, so every worker process started afterwards (scoring pools, engines) runs with the
fixed seed and computes in-process.

Example:
    >>> call_with_fixed_hash_seed(sorted, [3, 1, 2])
    [1, 2, 3]
"""

from __future__ import annotations

import atexit
import importlib
import os
import pickle
import struct
import subprocess
import sys
import threading
from collections.abc import Callable
from typing import IO, Any, TypeVar

FIXED_HASH_SEED = "0"
T = TypeVar("T")

_lock = threading.Lock()
_helper: subprocess.Popen | None = None


def hash_seed_is_fixed() -> bool:
    """Whether this interpreter started with ``PYTHONHASHSEED=0`` (hash randomisation off).

    ``sys.flags.hash_randomization`` is 0 exactly when the seed is 0; any other value, random or
    not, is another hash function, so only 0 counts as "the" fixed seed.
    """
    return sys.flags.hash_randomization == 0


def children_use_fixed_hash_seed() -> None:
    """Make every process started from now on run with ``PYTHONHASHSEED=0``."""
    os.environ["PYTHONHASHSEED"] = FIXED_HASH_SEED


def _send(stream: IO[bytes], obj: Any) -> None:
    data = pickle.dumps(obj)
    stream.write(struct.pack(">Q", len(data)) + data)
    stream.flush()


def _receive(stream: IO[bytes]) -> Any:
    head = stream.read(8)
    if len(head) < 8:
        raise EOFError
    (size,) = struct.unpack(">Q", head)
    return pickle.loads(stream.read(size))


def _start_helper() -> subprocess.Popen:
    children_use_fixed_hash_seed()
    proc = subprocess.Popen(
        [sys.executable, "-m", "prorl_eval.determinism"],
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        env={**os.environ, "PYTHONHASHSEED": FIXED_HASH_SEED},
    )
    atexit.register(_stop_helper)
    return proc


def _stop_helper() -> None:
    global _helper
    if _helper is not None and _helper.poll() is None:
        assert _helper.stdin is not None
        _helper.stdin.close()
        try:
            _helper.wait(timeout=10)
        except subprocess.TimeoutExpired:
            _helper.kill()
    _helper = None


def call_with_fixed_hash_seed(func: Callable[..., T], *args: Any) -> T:
    """``func(*args)`` computed under ``PYTHONHASHSEED=0``: here when this process has that seed,
    else in the helper process (``func`` must be importable by name, its arguments and result
    picklable; an exception it raises is raised here)."""
    global _helper
    if hash_seed_is_fixed():
        return func(*args)
    with _lock:
        if _helper is None or _helper.poll() is not None:
            _helper = _start_helper()
        assert _helper.stdin is not None and _helper.stdout is not None
        try:
            _send(_helper.stdin, (func.__module__, func.__qualname__, args))
            ok, value = _receive(_helper.stdout)
        except (BrokenPipeError, EOFError):
            _helper = None
            raise RuntimeError(
                "the fixed-hash-seed helper process (python -m prorl_eval.determinism) died; "
                "see its output above"
            ) from None
    if not ok:
        raise value
    return value


def _serve() -> None:
    """The helper's loop: read (module, name, args), answer (ok, result or exception)."""
    requests, answers = sys.stdin.buffer, os.fdopen(os.dup(1), "wb")
    os.dup2(2, 1)  # anything the called code prints goes to stderr, not into the answers
    sys.stdout = sys.stderr
    while True:
        try:
            module, name, args = _receive(requests)
        except EOFError:
            return
        try:
            func: Any = importlib.import_module(module)
            for part in name.split("."):
                func = getattr(func, part)
            _send(answers, (True, func(*args)))
        except Exception as exc:  # handed to the caller, who raises it
            _send(answers, (False, exc))


if __name__ == "__main__":
    _serve()
