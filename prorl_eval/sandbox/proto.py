"""The sandbox's wire format: plain-data codec and length-prefixed JSON frames.

Shared by the harness (`harness.py`) and the code inside the sandbox (`runner.py`, which
imports this file by its bare name; so it imports only the standard library).

Only *plain data* crosses the boundary between candidate code and the verdict: `encode` accepts
None, bool, int, float, str, bytes, complex, list, tuple, set, frozenset, dict (and numpy scalars,
turned into Python numbers) and refuses everything else, so a candidate cannot hand the checker an
object whose `__eq__` always says yes. `decode` rebuilds exactly those types.

Example:
    >>> decode(encode({(1, 2): [1.5, None, {"a"}], "big": 2**80}))
    {(1, 2): [1.5, None, {'a'}], 'big': 1208925819614629174706176}
"""

from __future__ import annotations

import json
import os
import select
import struct
import time
from typing import Any

MAX_DEPTH = 100
_BIG_INT = 10**18  # beyond this, ints travel as hex (int<->decimal str is length-limited)
HEADER = struct.Struct(">Q")


def encode(value: Any, depth: int = 0) -> Any:
    """Plain Python data → JSON-able form with tags for tuple/set/dict/bytes/complex/big ints."""
    if depth > MAX_DEPTH:
        raise ValueError(f"value nested more than {MAX_DEPTH} levels deep")
    kind = type(value)
    if value is None or kind is bool or kind is str or kind is float:
        return value
    if kind is int:
        return value if -_BIG_INT < value < _BIG_INT else {"t": "int", "v": hex(value)}
    if kind is list:
        return [encode(v, depth + 1) for v in value]
    if kind in (tuple, set, frozenset):
        return {"t": kind.__name__, "v": [encode(v, depth + 1) for v in value]}
    if kind is dict:
        return {
            "t": "dict",
            "v": [[encode(k, depth + 1), encode(v, depth + 1)] for k, v in value.items()],
        }
    if kind is bytes:
        return {"t": "bytes", "v": value.hex()}
    if kind is complex:
        return {"t": "complex", "v": [value.real, value.imag]}
    if getattr(kind, "__module__", "") == "numpy" and getattr(value, "ndim", None) == 0:
        return encode(value.item(), depth + 1)
    raise TypeError(f"a value of type {kind.__qualname__} is not plain data")


_DECODERS = {
    "tuple": lambda v, d: tuple(decode(x, d) for x in v),
    "set": lambda v, d: {decode(x, d) for x in v},
    "frozenset": lambda v, d: frozenset(decode(x, d) for x in v),
    "dict": lambda v, d: {decode(k, d): decode(x, d) for k, x in v},
    "int": lambda v, d: int(v, 16),
    "bytes": lambda v, d: bytes.fromhex(v),
    "complex": lambda v, d: complex(v[0], v[1]),
}


def decode(data: Any, depth: int = 0) -> Any:
    """The inverse of `encode`; malformed input raises ValueError, TypeError or KeyError."""
    if depth > MAX_DEPTH + 1:
        raise ValueError("value nested too deeply")
    if isinstance(data, list):
        return [decode(x, depth + 1) for x in data]
    if isinstance(data, dict):
        return _DECODERS[data["t"]](data["v"], depth + 1)
    if data is None or isinstance(data, (bool, int, float, str)):
        return data
    raise TypeError(f"cannot decode {type(data).__name__}")


# applied to outputs inside the worker, for outputs that are not plain data (evalplus MBPP+)
OUTPUT_TRANSFORMS = {
    None: lambda out: out,
    "is_not_none": lambda out: out is not None,
    "bool_or_not_none": lambda out: out if isinstance(out, bool) else out is not None,
}


def _candidate_line(exc: BaseException) -> int | None:
    line, tb = None, exc.__traceback__
    while tb is not None:
        if tb.tb_frame.f_code.co_filename == "<candidate>":
            line = tb.tb_lineno
        tb = tb.tb_next
    return line


def error_info(exc: BaseException) -> dict[str, Any]:
    """Type, message (bounded, even if `__str__` misbehaves) and candidate line of an exception."""
    try:
        message = str(exc)[:400]
    except BaseException:
        message = "<unprintable>"
    return {"type": type(exc).__name__, "message": message, "line": _candidate_line(exc)}


def describe_error(error: dict[str, Any]) -> str:
    """One line for an exception reported by the worker: `Type: message (candidate line N)`."""
    line = f" (candidate line {error['line']})" if error.get("line") else ""
    message = f": {error['message']}" if error.get("message") else ""
    return f"{error.get('type', 'Exception')}{message}{line}"


def pack(obj: Any) -> bytes:
    """One frame: 8-byte big-endian length, then the JSON body."""
    body = json.dumps(obj).encode()
    return HEADER.pack(len(body)) + body


def write_all(fd: int, data: bytes, deadline: float | None = None) -> bool:
    """Write all of `data` (waiting for a non-blocking pipe until `deadline`); False on failure."""
    view = memoryview(data)
    while view:
        if deadline is not None:
            left = deadline - time.monotonic()
            if left <= 0 or not select.select([], [fd], [], left)[1]:
                return False
        try:
            view = view[os.write(fd, view) :]
        except BlockingIOError:
            continue
        except OSError:
            return False
    return True


def send(fd: int, obj: Any, deadline: float | None = None) -> bool:
    """Send one frame."""
    return write_all(fd, pack(obj), deadline)


def read_exact(fd: int, size: int) -> bytes | None:
    """Exactly `size` bytes from a blocking descriptor (never more); None at end of file."""
    chunks, got = [], 0
    while got < size:
        chunk = os.read(fd, min(size - got, 1 << 20))
        if not chunk:
            return None
        chunks.append(chunk)
        got += len(chunk)
    return b"".join(chunks)


def recv_blocking(fd: int) -> Any:
    """One frame from a blocking descriptor; None at end of file."""
    head = read_exact(fd, HEADER.size)
    if head is None:
        return None
    body = read_exact(fd, HEADER.unpack(head)[0])
    return None if body is None else json.loads(body)


class FrameReader:
    """Frames from a pipe written by untrusted code: bounded size, a deadline, no over-trust."""

    def __init__(self, fd: int, limit: int) -> None:
        self.fd, self.limit, self.buf = fd, limit, bytearray()

    def recv(self, deadline: float) -> tuple[str, Any]:
        """("ok", obj), or ("timeout" | "eof" | "too-big" | "malformed", None)."""
        while True:
            if len(self.buf) >= HEADER.size:
                size = HEADER.unpack(self.buf[: HEADER.size])[0]
                if size > self.limit:
                    return "too-big", None
                end = HEADER.size + size
                if len(self.buf) >= end:
                    body, self.buf = bytes(self.buf[HEADER.size : end]), self.buf[end:]
                    try:
                        return "ok", json.loads(body)
                    except ValueError:
                        return "malformed", None
            left = deadline - time.monotonic()
            if left <= 0 or not select.select([self.fd], [], [], left)[0]:
                return "timeout", None
            chunk = os.read(self.fd, 1 << 20)
            if not chunk:
                return "eof", None
            self.buf += chunk
