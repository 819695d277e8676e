"""Same inputs, same problems, in every process: calls pinned to a fixed string-hash seed.

Python randomises the hash of every `str` per process (`PYTHONHASHSEED`), so the iteration order of
a set of strings differs from one process to the next. Some procedural generators iterate such sets
while drawing random numbers; reasoning-gym 0.1.x builds different puzzles for the same
(seed, index) in every process for six datasets (isomorphic_strings, knight_swap, list_functions,
polynomial_multiplication, ransom_note, word_ladder). Then a resumed run, a scoring worker or the
RL run's evaluation silently looks at other problems than the base run did.

The hash seed of a running interpreter cannot be changed, so code that must not depend on it runs
through :func:`call_with_fixed_hash_seed`: directly when this process already runs with
``PYTHONHASHSEED=0``, otherwise in one helper process started with it (kept for the life of this
process, so the start-up cost is paid once). The first such call also sets ``PYTHONHASHSEED=0`` in
this process's environment, so every worker process started afterwards (scoring pools, engines)
runs with the fixed seed and generates in-process.

Example:
    >>> call_with_fixed_hash_seed(sorted, [3, 1, 2])
    [1, 2, 3]
"""

from __future__ import annotations

import os
import sys
import threading
from collections.abc import Callable
from concurrent.futures import ProcessPoolExecutor
from typing import Any, TypeVar

FIXED_HASH_SEED = "0"
T = TypeVar("T")

_lock = threading.Lock()
_helper: ProcessPoolExecutor | None = None


def hash_seed_is_fixed() -> bool:
    """Whether this interpreter started with ``PYTHONHASHSEED=0`` (hash randomisation off).

    ``sys.flags.hash_randomization`` is 0 exactly when the seed is 0; any other value, random or
    not, is another hash function, so only 0 counts as "the" fixed seed.
    """
    return sys.flags.hash_randomization == 0


def children_use_fixed_hash_seed() -> None:
    """Make every process started from now on run with ``PYTHONHASHSEED=0``."""
    os.environ["PYTHONHASHSEED"] = FIXED_HASH_SEED


def _helper_pool() -> ProcessPoolExecutor:
    global _helper
    with _lock:
        if _helper is None:
            import multiprocessing

            children_use_fixed_hash_seed()  # the helper (spawned now) inherits it
            _helper = ProcessPoolExecutor(
                max_workers=1, mp_context=multiprocessing.get_context("spawn")
            )
        return _helper


def call_with_fixed_hash_seed(func: Callable[..., T], *args: Any) -> T:
    """``func(*args)`` computed under ``PYTHONHASHSEED=0``: here when this process has that seed,
    else in the helper process (``func`` must then be importable and its result picklable)."""
    if hash_seed_is_fixed():
        return func(*args)
    children_use_fixed_hash_seed()
    return _helper_pool().submit(func, *args).result()
