"""Final-answer checking for maths benchmarks: math-verify, with a time limit that works anywhere.

`verify_math(response, gold)` removes `<think>…</think>` traces, extracts the final answer with
math-verify (the last `\\boxed{}` first, then "final answer is …" / "answer: …" statements, in LaTeX
or plain form), parses the gold answer the same way, and compares them symbolically and numerically
(`\\frac12` = 0.5 = 1/2 = 50%, units and `^\\circ` dropped, sets, tuples and intervals compared as
such). The score is 1.0 or 0.0 and the reason names the extracted answer and the gold.

An answer must be boxed or stated: a bare number at the end of a response is not extracted, so a
rambling or truncated response scores 0 rather than being credited with its last number. The last
box wins; boxes joined only by separators (`\\boxed{3}, \\boxed{5} and \\boxed{7}`) are read
together as one multi-part answer (`final_answer_region`).

Time limits. math-verify bounds each parse and comparison with `signal.alarm`, which only works in
the main thread. So, in one place (`verify_math`):
- in the main thread of a process (a plain script, the CLI, a `ProcessPoolExecutor` worker), it uses
  math-verify's own timeouts. They have whole-second resolution: each step gets the budget still
  left, rounded up, so a call can overrun `timeout_s` by under a second;
- in any other thread, it passes `parsing_timeout=None, timeout_seconds=None` and runs the
  verification in a helper process (one per concurrently calling thread, reused across calls, a
  plain `python -c` speaking JSON lines on its stdin/stdout). The thread waits at most `timeout_s`
  for the reply; on expiry it kills the helper (the next call starts a fresh one) and scores 0 with
  a "timed out" reason. Starting a helper (about 0.5-2 s: importing sympy and one warm-up
  verification) is not counted against `timeout_s`. The helper also arms its own watchdog
  (`timeout_s` + 2 s) so it cannot outlive an abandoned request. Helpers need POSIX (`select`).

math-verify's alarm replaces any SIGALRM timer already set in the main thread (pytest-timeout's
"signal" method, for one) and cancels it when done.

Example:
    >>> verify_math("<think>\\\\boxed{3}</think> So $x = \\\\boxed{\\\\frac12}$.", "0.5").value
    1.0
"""

from __future__ import annotations

import atexit
import json
import math
import os
import re
import select
import subprocess
import sys
import threading
import time
from functools import lru_cache
from importlib import metadata
from pathlib import Path
from typing import Any

from prorl_eval.tasks.base import Score, strip_reasoning

DEFAULT_TIMEOUT_S = 5.0
EXTRACTION_VERSION = "prorl-math-v1"  # bump when extraction or comparison settings change
_SHOWN = 80  # longest answer quoted in a reason
_HELPER_START_S = 120.0  # a helper that is not ready by then is a broken environment
_WATCHDOG_GRACE_S = 2.0
_BOX_OPEN = re.compile(r"\\(?:boxed|fbox)\s*\{")
_BOX_GAP = re.compile(r"(?:[\s$,;]|\band\b|\bor\b)*")  # what may join the boxes of one answer
_MATH_DOLLAR = re.compile(r"(?<!\\)\$")  # a `$` math delimiter; `\$` is a dollar sign and stays


def scorer_version() -> str:
    """The installed math-verify and this module's extraction settings, e.g.
    `math-verify==0.9.0;prorl-math-v1` (part of every maths task's version)."""
    return f"math-verify=={metadata.version('math-verify')};{EXTRACTION_VERSION}"


def gold_text(value: Any) -> str:
    """A dataset's gold answer as one LaTeX string without `$` delimiters (`\\$5` stays).

    Floats that are whole numbers lose their `.0` (AMC stores 27.0 for 27); a list (OlympiadBench's
    `final_answer`) is joined with commas, as a multi-part answer.

    >>> gold_text(27.0), gold_text(["$69$,$84$"]), gold_text("\\\\frac{1}{2}")
    ('27', '69,84', '\\\\frac{1}{2}')
    """
    if isinstance(value, (list, tuple)):
        return ",".join(gold_text(item) for item in value)
    if isinstance(value, float) and value.is_integer():
        return str(int(value))
    return _MATH_DOLLAR.sub("", str(value)).strip()


def boxed_spans(text: str) -> list[tuple[int, int]]:
    """(start, end) of every balanced `\\boxed{…}` / `\\fbox{…}` in text, in order."""
    spans = []
    for match in _BOX_OPEN.finditer(text):
        depth = 1
        for j in range(match.end(), len(text)):
            depth += {"{": 1, "}": -1}.get(text[j], 0)
            if depth == 0:
                spans.append((match.start(), j + 1))
                break
    return spans


def last_boxed(text: str) -> str | None:
    """The content of the last balanced `\\boxed{…}` (or `\\fbox{…}`) in text, else None.

    >>> last_boxed("so \\\\boxed{1} or rather \\\\boxed{\\\\frac{1}{2}}.")
    '\\\\frac{1}{2}'
    """
    spans = boxed_spans(text)
    if not spans:
        return None
    start, end = spans[-1]
    return text[text.index("{", start) + 1 : end - 1].strip()


def final_answer_region(text: str) -> str:
    """The text after the last box that is not part of the final answer, so the last box wins.

    Boxes joined only by separators (`\\boxed{1}, \\boxed{2} and \\boxed{3}`) stay together as
    one multi-part answer; any other text between boxes ends the answer, so an earlier box
    (a first guess, a sub-result) is never read into it. math-verify alone would also join boxes
    less than 70 characters apart when a comma or "and" appears between them.

    >>> final_answer_region("guess \\\\boxed{3}, then, redoing it, \\\\boxed{5}.")
    ', then, redoing it, \\\\boxed{5}.'
    """
    spans = boxed_spans(text)
    if len(spans) < 2:
        return text
    first = len(spans) - 1
    while first > 0 and _BOX_GAP.fullmatch(text[spans[first - 1][1] : spans[first][0]]):
        first -= 1
    return text[spans[first - 1][1] :] if first > 0 else text


def verify_math(response: str, gold: Any, *, timeout_s: float = DEFAULT_TIMEOUT_S) -> Score:
    """Score a response's final answer against a gold answer: 1.0 if math-verify finds them equal.

    Safe from any thread or process; a pathological answer returns within about `timeout_s` with
    score 0 and a reason saying it timed out (see the module docstring for how).
    """
    if not timeout_s > 0:
        raise ValueError(f"timeout_s must be positive (got {timeout_s}).")
    gold = gold_text(gold)
    text = final_answer_region(strip_reasoning(response))
    if not _may_hold_answer(text):
        return _no_answer(gold)
    if threading.current_thread() is threading.main_thread():
        return _verify_here(text, gold, timeout_s)
    return _HELPERS.verify(text, gold, timeout_s)


# ----------------------------------------------------------------------------- math-verify calls


class _TimedOut(BaseException):
    """The call's time budget ran out. A BaseException, like math-verify's TimeoutException, so
    the `except Exception` clauses that treat odd input as a wrong answer do not swallow it."""


class _Budget:
    """What is left of a call's time limit, in math-verify's whole seconds (None: no limit)."""

    def __init__(self, timeout_s: float | None) -> None:
        self.deadline = None if timeout_s is None else time.monotonic() + timeout_s

    def seconds(self) -> int | None:
        if self.deadline is None:
            return None
        left = self.deadline - time.monotonic()
        if left <= 0:
            raise _TimedOut
        return max(1, math.ceil(left))


def _may_hold_answer(text: str) -> bool:
    """Cheap pre-check: every extraction pattern we enable needs a box or the word "answer"."""
    return "\\boxed" in text or "answer" in text.lower()


@lru_cache(maxsize=1)
def _configs() -> tuple[list[Any], list[Any]]:
    """(prediction, gold) extraction configs. Predictions need a box or an answer statement."""
    from math_verify import ExprExtractionConfig, LatexExtractionConfig

    prediction = [
        LatexExtractionConfig(boxed_match_priority=0, try_extract_without_anchor=False),
        ExprExtractionConfig(try_extract_without_anchor=False),
    ]
    gold = [LatexExtractionConfig(boxed_match_priority=0), ExprExtractionConfig()]
    return prediction, gold


@lru_cache(maxsize=4096)
def _parse_gold(gold: str, seconds: int | None) -> tuple[Any, ...]:
    """math-verify's parse of a gold answer, boxed so it is read as one expression (cached: many
    samples share a gold)."""
    from math_verify import parse

    return tuple(
        parse(f"\\boxed{{{gold}}}", _configs()[1], parsing_timeout=seconds, raise_on_error=True)
    )


def _shown(parsed: list[Any] | tuple[Any, ...]) -> str:
    """The extracted answer as written (math-verify's string form), shortened for a reason."""
    text = next((p for p in parsed if isinstance(p, str)), None)
    text = " ".join((text if text is not None else str(parsed[0])).split())
    return text if len(text) <= _SHOWN else text[: _SHOWN - 3] + "..."


def _quote(text: str | None) -> str:
    """A short answer in quotes for a reason (LaTeX backslashes kept single, unlike repr)."""
    return "none" if text is None else f"'{text}'"


def _no_answer(gold: str) -> Score:
    return Score(
        0.0,
        f"no final answer found (no \\boxed{{}} or answer statement); gold {_quote(gold)}",
        {"extracted": None, "timed_out": False},
        extraction="none found (math-verify)",
    )


def _answer_text(parsed: list[Any] | tuple[Any, ...]) -> str:
    """The extracted answer in full, as math-verify wrote it (what maj@k votes on)."""
    text = next((p for p in parsed if isinstance(p, str)), None)
    return " ".join((text if text is not None else str(parsed[0])).split())


def _extraction(text: str) -> str:
    """How math-verify found the answer: the last \\boxed{} has priority, else a stated answer or
    the last expression."""
    if last_boxed(text) is not None:
        return "math-verify: last \\boxed{}"
    return "math-verify: answer statement or last expression"


def _verify_here(text: str, gold: str, timeout_s: float | None) -> Score:
    """Extract, parse and compare in this thread. With `timeout_s` (main thread only) math-verify's
    signal timeouts bound each step; with None they are off and the caller bounds the time."""
    from math_verify import parse

    budget, shown = _Budget(timeout_s), None
    try:
        try:
            gold_parsed = _parse_gold(gold, budget.seconds())
        except Exception:
            gold_parsed = ()
        if not gold_parsed:
            return Score(
                0.0,
                f"gold answer {_quote(gold)} could not be parsed",
                {"extracted": None, "timed_out": False},
            )
        try:
            pred = parse(text, _configs()[0], parsing_timeout=budget.seconds(), raise_on_error=True)
        except Exception:
            pred = []
        if not pred:
            return _no_answer(gold)
        shown = _shown(pred)
        answer = _answer_text(pred)
        matched = _any_equal(gold_parsed, pred, budget)
    except (_TimedOut, _math_verify_timeout()):
        where = f"extracted {_quote(shown)}" if shown is not None else "while extracting"
        return Score(
            0.0,
            f"verification timed out after {timeout_s or 0:g}s ({where}, gold {_quote(gold)})",
            {"extracted": shown, "timed_out": True},
            answer=None if shown is None else answer,
            extraction=_extraction(text),
        )
    verdict = "matches" if matched else "does not match"
    return Score(
        1.0 if matched else 0.0,
        f"extracted {_quote(shown)} {verdict} gold {_quote(gold)}",
        {"extracted": shown, "timed_out": False},
        answer=answer,
        extraction=_extraction(text),
    )


def _any_equal(gold: tuple[Any, ...], pred: list[Any], budget: _Budget) -> bool:
    """math-verify's `verify` over every (gold, prediction) pair, each within the budget left.

    Called pair by pair (rather than once with both lists) so a timeout is told apart from a
    mismatch, while an ordinary comparison error only rules out that pair, as in `verify` itself.
    """
    from math_verify import verify

    for g in gold:
        for p in pred:
            try:
                if verify(g, p, timeout_seconds=budget.seconds(), raise_on_error=True):
                    return True
            except Exception:
                continue
    return False


def _math_verify_timeout() -> type[BaseException]:
    from math_verify.errors import TimeoutException

    return TimeoutException


# ----------------------------------------------------------------------------- helper processes


class _HelperDied(RuntimeError):
    """The helper process exited mid-request (a crash, the OOM killer, a kill from outside)."""


class _Helper:
    """One helper process: a request is a JSON line on stdin, the reply a JSON line on stdout."""

    def __init__(self) -> None:
        package_root = str(Path(__file__).resolve().parents[2])
        env = dict(os.environ)
        env["PYTHONPATH"] = os.pathsep.join(p for p in (package_root, env.get("PYTHONPATH")) if p)
        code = "from prorl_eval.tasks.math_answer import _serve; _serve()"
        self.process = subprocess.Popen(
            [sys.executable, "-c", code],
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            env=env,
            cwd=package_root,  # never prorl_eval/tasks, whose math.py would shadow the stdlib's
        )
        self._buffer = b""
        try:
            ready = self._read_line(time.monotonic() + _HELPER_START_S)
        except _HelperDied:
            ready = None
        if ready != '{"ready": true}':
            self.kill()
            raise RuntimeError("the math-verify helper process did not start (see its stderr).")

    def alive(self) -> bool:
        return self.process.poll() is None

    def ask(self, request: dict[str, Any], timeout_s: float) -> dict[str, Any] | None:
        """The helper's reply, or None when it did not come within timeout_s."""
        assert self.process.stdin is not None
        try:
            self.process.stdin.write(json.dumps(request).encode() + b"\n")
            self.process.stdin.flush()
        except BrokenPipeError:
            raise _HelperDied(self._exit_status()) from None
        line = self._read_line(time.monotonic() + timeout_s)
        return None if line is None else json.loads(line)

    def _read_line(self, deadline: float) -> str | None:
        assert self.process.stdout is not None
        fd = self.process.stdout.fileno()
        while b"\n" not in self._buffer:
            left = deadline - time.monotonic()
            if left <= 0 or not select.select([fd], [], [], left)[0]:
                return None
            chunk = os.read(fd, 65536)
            if not chunk:
                raise _HelperDied(self._exit_status())
            self._buffer += chunk
        line, _, self._buffer = self._buffer.partition(b"\n")
        return line.decode()

    def _exit_status(self) -> str:
        try:
            return f"exit code {self.process.wait(timeout=5)}"
        except subprocess.TimeoutExpired:
            return "closed its output"

    def kill(self) -> None:
        if self.process.poll() is None:
            self.process.kill()
        self.process.wait()
        for stream in (self.process.stdin, self.process.stdout):
            if stream is not None:
                stream.close()


class _HelperPool:
    """Idle helpers, handed to one calling thread at a time; a helper that overran is killed."""

    def __init__(self) -> None:
        self._idle: list[_Helper] = []
        self._all: set[_Helper] = set()
        self._lock = threading.Lock()
        atexit.register(self.close)
        if hasattr(os, "register_at_fork"):
            os.register_at_fork(after_in_child=self._forget)

    def verify(self, text: str, gold: str, timeout_s: float) -> Score:
        helper = self._checkout()
        try:
            reply = helper.ask({"text": text, "gold": gold, "timeout_s": timeout_s}, timeout_s)
        except _HelperDied as exc:
            self._discard(helper)
            return _lost(text, gold, f"crashed its helper process ({exc})", timed_out=False)
        except BaseException:
            self._discard(helper)
            raise
        if reply is None:
            self._discard(helper)
            return _lost(text, gold, f"timed out after {timeout_s:g}s in a helper process")
        with self._lock:
            self._idle.append(helper)
        return Score(
            reply["value"], reply["reason"], reply["extra"], reply["answer"], reply["extraction"]
        )

    def _checkout(self) -> _Helper:
        with self._lock:
            while self._idle:
                helper = self._idle.pop()
                if helper.alive():
                    return helper
                self._all.discard(helper)
                helper.kill()  # died while idle: reap it, start another
        helper = _Helper()
        with self._lock:
            self._all.add(helper)
        return helper

    def _discard(self, helper: _Helper) -> None:
        helper.kill()
        with self._lock:
            self._all.discard(helper)

    def _forget(self) -> None:
        """In a forked child: the helpers (and their pipes) belong to the parent; start afresh."""
        self._lock = threading.Lock()
        self._idle, self._all = [], set()

    def close(self) -> None:
        """Kill every helper (at interpreter exit; a later call starts new ones)."""
        with self._lock:
            helpers, self._all, self._idle = list(self._all), set(), []
        for helper in helpers:
            helper.kill()


_HELPERS = _HelperPool()


def _lost(text: str, gold: str, what: str, *, timed_out: bool = True) -> Score:
    """Score 0 for a verification the helper never answered; the reason quotes the last box."""
    boxed = last_boxed(text)
    boxed = boxed if boxed is None or len(boxed) <= _SHOWN else boxed[: _SHOWN - 3] + "..."
    return Score(
        0.0,
        f"verification {what} (last boxed answer {_quote(boxed)}, gold {_quote(gold)})",
        {"extracted": boxed, "timed_out": timed_out},
        answer=last_boxed(text),
        extraction="last \\boxed{} (verification unfinished)",
    )


def _serve() -> None:
    """The helper process's loop: verify each request with math-verify's timeouts off."""
    import logging
    import signal

    channel = os.fdopen(os.dup(1), "wb")
    os.dup2(2, 1)  # stray prints go to stderr, never into the reply channel
    logging.getLogger("math_verify").setLevel(logging.ERROR)  # the "timeout disabled" warning
    _verify_here("\\boxed{\\frac{1}{2}}", "0.5", None)  # imports and first-parse set-up, untimed

    def watchdog(signum: int, frame: Any) -> None:
        os._exit(3)  # the parent gave up on this request long ago

    signal.signal(signal.SIGALRM, watchdog)
    signal.signal(signal.SIGINT, signal.SIG_IGN)  # Ctrl-C is the parent's business; it kills us
    channel.write(b'{"ready": true}\n')
    channel.flush()
    for line in sys.stdin.buffer:
        request = json.loads(line)
        signal.setitimer(signal.ITIMER_REAL, request["timeout_s"] + _WATCHDOG_GRACE_S)
        score = _verify_here(request["text"], request["gold"], None)
        signal.setitimer(signal.ITIMER_REAL, 0)
        reply = {"value": score.value, "reason": score.reason, "extra": score.extra,
                 "answer": score.answer, "extraction": score.extraction}  # fmt: skip
        channel.write(json.dumps(reply).encode() + b"\n")
        channel.flush()
