"""evalplus's data and comparison rules, imported in one place.

HumanEval+ and MBPP+ are read with evalplus's own data functions (`get_human_eval_plus`,
`get_mbpp_plus`): a file named by its override paths (`HUMANEVAL_OVERRIDE_PATH`,
`MBPP_OVERRIDE_PATH`), else its pinned release, which evalplus downloads once into its cache.
They check the release's fields and rebuild MBPP+'s tuple, set and complex inputs from JSON.

A candidate's outputs are compared to the canonical solution's with evalplus's rules: its special
oracles (HumanEval/32 accepts any root; some MBPP tasks compare sets, "not None", or a reference
formula), its float detection, and `numpy.allclose` with rtol 1e-7 and atol at least 1e-6 for
float answers. `outputs_match` follows the branch order of `evalplus.eval.unsafe_execute`; only
execution differs: the program runs in prorl's sandbox, and the comparison happens here on the
plain values the sandbox returns.

One departure, on purpose: evalplus 0.3.1 (the PyPI release) fails every HumanEval/32 solution,
because its find_zero branch skips the per-input progress counter, so the check sees fewer
results than inputs; its repository has since fixed it. prorl keeps the intended rule: a root
within `atol` passes (tests/test_code_peer_evalplus.py shows both verdicts).

evalplus is installed without its declared dependencies (LLM API clients, tree-sitter: see
pyproject.toml); what its data and eval modules import is installed with prorl.
"""

from __future__ import annotations

import os
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from importlib import metadata
from pathlib import Path
from typing import Any

from prorl_eval.errors import UserError

EVALPLUS_REQUIREMENT = "evalplus==0.3.1"
_OVERRIDE_LOCK = threading.Lock()


@dataclass(frozen=True)
class Release:
    """One evalplus dataset as read: its rows (task_id order), where they came from, its md5
    (evalplus's own `get_*_hash`), and the evalplus version that read them."""

    rows: list[dict[str, Any]]
    origin: str  # "HumanEvalPlus v0.1.10" for evalplus's release, else the file's name
    md5: str
    evalplus_version: str

    @property
    def label(self) -> str:
        """The part of a task version that names the data: evalplus, release or file, md5."""
        return f"evalplus=={self.evalplus_version};{self.origin};md5={self.md5}"


def _modules(dataset: str) -> Any:
    """evalplus's data module for "humaneval" or "mbpp" (a one-line error when not installed)."""
    try:
        if dataset == "humaneval":
            from evalplus.data import humaneval as module
        else:
            from evalplus.data import mbpp as module
    except ImportError as exc:
        raise UserError(
            f"HumanEval+/MBPP+ need evalplus ({exc}); install it with "
            f"`pip install --no-deps {EVALPLUS_REQUIREMENT}` (scripts/setup.sh does)."
        ) from None
    return module


@contextmanager
def _override(module: Any, name: str, path: Path | None) -> Iterator[None]:
    """evalplus reads its override environment variable once, at import, into a module global:
    point that global at `path` (None: evalplus's release) while one load runs."""
    with _OVERRIDE_LOCK:
        before = getattr(module, name)
        setattr(module, name, None if path is None else str(path))
        try:
            yield
        finally:
            setattr(module, name, before)


def load_release(dataset: str, path: Path | None) -> Release:
    """HumanEval+ ("humaneval") or MBPP+ ("mbpp") through evalplus: the file at `path`, else
    evalplus's pinned release. A file that lacks a field evalplus needs is a `UserError`."""
    module = _modules(dataset)
    if dataset == "humaneval":
        name, env, version = (
            "HumanEvalPlus",
            "HUMANEVAL_OVERRIDE_PATH",
            module.HUMANEVAL_PLUS_VERSION,
        )
        load, digest = module.get_human_eval_plus, module.get_human_eval_plus_hash
    else:
        name, env, version = "MbppPlus", "MBPP_OVERRIDE_PATH", module.MBPP_PLUS_VERSION
        load, digest = module.get_mbpp_plus, module.get_mbpp_plus_hash
    where = path if path is not None else f"evalplus's {name} {version}"
    with _override(module, env, path):
        try:
            rows = list(load(err_incomplete=True).values())
        except AssertionError as exc:  # evalplus's completeness check: "<field> not found in ..."
            raise UserError(f"{where} is not an evalplus {name} file: {exc}") from None
        except (ValueError, KeyError) as exc:
            raise UserError(f"{where} is not an evalplus {name} file: {exc!r}") from None
        except OSError as exc:  # the release download, or an unreadable file
            raise UserError(
                f"could not read {where} ({exc}); put the release at --data-dir's "
                f"code/{name}.jsonl or set {env} to a copy."
            ) from None
        md5 = digest()
    origin = f"{name} {version}" if path is None else path.name
    return Release(rows, origin, md5, metadata.version("evalplus"))


# ----------------------------------------------------------------------------- the rules


def output_not_none_tasks() -> frozenset[str]:
    """MBPP+ entry points whose expected output is only "not None" (evalplus's list)."""
    from evalplus.eval._special_oracle import MBPP_OUTPUT_NOT_NONE_TASKS

    return frozenset(MBPP_OUTPUT_NOT_NONE_TASKS)


def outputs_match(
    out: Any, exp: Any, atol: float, entry_point: str, dataset: str, args: Any = ()
) -> bool:
    """evalplus's verdict on one input: does `out` pass where the canonical solution gave `exp`?"""
    try:
        return _outputs_match(out, exp, atol, entry_point, dataset, list(args))
    except Exception:  # what evalplus's asserts turn into a failure: set() of a list, abs("x")
        return False


def _outputs_match(out: Any, exp: Any, atol: float, entry: str, dataset: str, args: list) -> bool:
    import numpy as np
    from evalplus.eval import _special_oracle as oracle
    from evalplus.eval import is_floats

    exact = out == exp
    if dataset == "mbpp":
        if entry == "are_equivalent":  # Mbpp/164: the reference is wrong; evalplus accepts all
            exact = True
        elif entry == "sum_div":  # Mbpp/295
            exact = exact or out == 0
        elif entry == "surface_Area":  # Mbpp/581
            exact = exact or abs(out - oracle._surface_Area(*args)) <= atol
        elif entry == "digit_distance_nums":  # Mbpp/558
            exact = exact or out == oracle._digit_distance_nums(*args)
        elif entry in oracle.MBPP_OUTPUT_SET_EQ_TASKS:
            exact = set(out) == set(exp)
        elif entry in oracle.MBPP_OUTPUT_NOT_NONE_TASKS:
            exact = out == exp if isinstance(out, bool) else exp == (out is not None)
    if dataset == "humaneval" and entry == "find_zero":  # HumanEval/32: any root will do
        return bool(abs(oracle._poly(*args, out)) <= atol)
    if atol == 0 and is_floats(exp):
        atol = 1e-6  # evalplus enforces a tolerance on float answers
    if not exact and atol != 0:
        if type(out) is not type(exp):
            return False
        if isinstance(exp, (list, tuple)) and len(out) != len(exp):
            return False
        return bool(np.allclose(out, exp, rtol=1e-07, atol=atol))
    return bool(exact)


def time_limits(base_s: list[float], plus_s: list[float]) -> tuple[list[float], float]:
    """evalplus's time rule from the canonical solution's seconds per input: each input may take
    max(DEFAULT_MIN_TIME_LIMIT, DEFAULT_GT_TIME_LIMIT_FACTOR x the canonical time), and each of the
    base and plus runs min($EVALPLUS_TIMEOUT_PER_TASK or 60, the sum of its limits) + 1 in all
    (`evalplus.eval.untrusted_check`). Returns (the per-input limits, base + plus, and the
    session's budget for both runs together)."""
    from evalplus.config import DEFAULT_GT_TIME_LIMIT_FACTOR, DEFAULT_MIN_TIME_LIMIT

    cap = float(os.environ.get("EVALPLUS_TIMEOUT_PER_TASK", 60))
    per_input, budget = [], 0.0
    for seconds in (base_s, plus_s):
        limits = [max(DEFAULT_MIN_TIME_LIMIT, DEFAULT_GT_TIME_LIMIT_FACTOR * t) for t in seconds]
        per_input.extend(limits)
        budget += min(cap, sum(limits)) + 1 if limits else 0.0
    return per_input, budget


def time_rule_label() -> str:
    """The evalplus time rule as a task version records it."""
    from evalplus.config import DEFAULT_GT_TIME_LIMIT_FACTOR, DEFAULT_MIN_TIME_LIMIT

    return f"time=evalplus(min={DEFAULT_MIN_TIME_LIMIT:g}s,factor={DEFAULT_GT_TIME_LIMIT_FACTOR:g})"
