"""Seeds derived from names, the same in every process.

`derive_seed(run_seed, "task", problem_id, ...)` hashes its parts with SHA-256, never with Python's
`hash()`, whose value changes from process to process for strings. Every per-request, per-chunk and
per-epoch seed of the harness and the trainer comes from here.

Example:
    >>> derive_seed(0, "gym:basic_arithmetic", "3") == derive_seed(0, "gym:basic_arithmetic", "3")
    True
"""

from __future__ import annotations

import hashlib


def derive_seed(base: int, *parts: object) -> int:
    """A stable 31-bit seed from a base seed and identifying parts (hash-randomisation free)."""
    text = "|".join(str(p) for p in (base, *parts))
    return int.from_bytes(hashlib.sha256(text.encode()).digest()[:4], "big") & 0x7FFFFFFF
