"""The creativity index against a web-scale corpus through the infini-gram API, as the paper did.

`--corpus api:<index>` (e.g. `api:v4_dolma-v1_7_llama`, `api:v4_rpj_llama_s4`) scores responses by
DJ search (:func:`prorl_eval.analysis.creativity.match_ends`, at most 2n count queries for n words)
whose span counts come from the API's `count` queries (POST `{"index", "query_type": "count",
"query" | "query_ids"}`, answer `{"count": N}`):

- `match="words"` (default): a span is the response's words joined by spaces, counted as text (the
  API tokenizes it with the index's tokenizer), the same words as the local-index path;
- `match="tokens"`: the reference implementation's option: the span text is tokenized here with
  a Llama-2 tokenizer (`tokenizer`, a hub id or a local folder) and counted as `query_ids`.

What keeps it usable: an on-disk cache of every answer (SQLite, keyed by URL, index, match mode
and query; a re-run or an interrupted run asks nothing twice), at most `concurrency` requests in
flight, at most `rate` requests per second, and retries with exponential backoff on connection
errors, timeouts, HTTP 429 and 5xx. A query the API refuses (HTTP 4xx, or an `error` answer such as
an unknown index) and an API still unreachable after the retries are one-line errors.
"""

from __future__ import annotations

import json
import sqlite3
import threading
import time
import urllib.error
import urllib.request
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from prorl_eval.analysis.creativity import (
    CreativityConfig,
    CreativityResult,
    creativity_of_words,
    tokenize_words,
)
from prorl_eval.errors import UserError

DEFAULT_URL = "https://api.infini-gram.io/"
DEFAULT_TOKENIZER = "meta-llama/Llama-2-7b-hf"  # the tokenizer of infini-gram's *_llama indexes
MATCH_MODES = ("words", "tokens")
_RETRY_STATUS = {429, 500, 502, 503, 504}


class AnswerCache:
    """Answers already received, in one SQLite file shared by threads (and later runs)."""

    def __init__(self, path: Path | None) -> None:
        self._lock = threading.Lock()
        self._db = None
        if path is not None:
            path.parent.mkdir(parents=True, exist_ok=True)
            self._db = sqlite3.connect(str(path), check_same_thread=False)
            self._db.execute("CREATE TABLE IF NOT EXISTS counts (key TEXT PRIMARY KEY, n INT)")
            self._db.commit()
        self._memory: dict[str, int] = {}

    def get(self, key: str) -> int | None:
        with self._lock:
            if key in self._memory:
                return self._memory[key]
            if self._db is None:
                return None
            row = self._db.execute("SELECT n FROM counts WHERE key = ?", (key,)).fetchone()
            return None if row is None else int(row[0])

    def put(self, key: str, count: int) -> None:
        with self._lock:
            self._memory[key] = count
            if self._db is not None:
                self._db.execute("INSERT OR REPLACE INTO counts VALUES (?, ?)", (key, count))
                self._db.commit()

    def close(self) -> None:
        with self._lock:
            if self._db is not None:
                self._db.close()
                self._db = None


class InfiniGramClient:
    """`count` queries to an infini-gram API: cached, rate-limited, bounded, retried."""

    def __init__(
        self,
        index: str,
        *,
        url: str = DEFAULT_URL,
        cache: Path | None = None,
        concurrency: int = 8,
        rate: float = 10.0,
        retries: int = 5,
        backoff_s: float = 1.0,
        timeout_s: float = 30.0,
    ) -> None:
        if not index:
            raise UserError("--corpus api:<index> needs an index name, e.g. api:v4_rpj_llama_s4.")
        if concurrency < 1 or rate <= 0 or retries < 0 or backoff_s < 0 or timeout_s <= 0:
            raise UserError(
                "infini-gram API settings: concurrency >= 1, rate > 0, retries >= 0, "
                "backoff >= 0 and timeout > 0."
            )
        self.index, self.url = index, url
        self.retries, self.backoff_s, self.timeout_s = retries, backoff_s, timeout_s
        self.cache = AnswerCache(cache)
        self._slots = threading.BoundedSemaphore(concurrency)
        self._interval = 1.0 / rate
        self._next = 0.0
        self._clock = threading.Lock()
        self.requests = 0  # sent to the API (cache hits excluded)

    def count(self, *, text: str | None = None, ids: Sequence[int] | None = None) -> int:
        """How often the text (or token-id sequence) occurs in the index."""
        if ids is not None:
            payload: dict[str, Any] = {"query_ids": [int(i) for i in ids]}
        else:
            payload = {"query": text or ""}
        key = json.dumps([self.url, self.index, payload], sort_keys=True)
        cached = self.cache.get(key)
        if cached is not None:
            return cached
        answer = self._ask({"index": self.index, "query_type": "count", **payload})
        if "error" in answer or not isinstance(answer.get("count"), int):
            why = answer.get("error", f"no count in the answer {str(answer)[:100]!r}")
            raise UserError(f"the infini-gram API ({self.url}, index {self.index}) refused: {why}")
        self.cache.put(key, answer["count"])
        return answer["count"]

    def _wait_turn(self) -> None:
        with self._clock:
            now = time.monotonic()
            start = max(now, self._next)
            self._next = start + self._interval
        if start > now:
            time.sleep(start - now)

    def _ask(self, body: dict[str, Any]) -> dict[str, Any]:
        data = json.dumps(body).encode("utf-8")
        last = ""
        for attempt in range(self.retries + 1):
            if attempt:
                time.sleep(self.backoff_s * 2 ** (attempt - 1))
            with self._slots:
                self._wait_turn()
                request = urllib.request.Request(
                    self.url, data=data, headers={"Content-Type": "application/json"}
                )
                self.requests += 1
                try:
                    with urllib.request.urlopen(request, timeout=self.timeout_s) as reply:
                        return json.loads(reply.read().decode("utf-8"))
                except urllib.error.HTTPError as exc:
                    if exc.code not in _RETRY_STATUS:
                        detail = exc.read().decode("utf-8", "replace")[:200]
                        raise UserError(
                            f"the infini-gram API ({self.url}) refused the query: HTTP {exc.code} "
                            f"{detail}"
                        ) from None
                    last = f"HTTP {exc.code}"
                except (urllib.error.URLError, TimeoutError, OSError, ValueError) as exc:
                    last = f"{type(exc).__name__}: {getattr(exc, 'reason', exc)}"
        raise UserError(
            f"the infini-gram API at {self.url} is unreachable after {self.retries + 1} tries "
            f"({last}); check the network, or score against a local index (--corpus DIR)."
        )

    def close(self) -> None:
        self.cache.close()


class ApiCorpus:
    """A reference corpus behind the infini-gram API, scored by DJ search over count queries."""

    def __init__(self, client: InfiniGramClient, match: str = "words", tokenizer: Any = None):
        if match not in MATCH_MODES:
            raise UserError(f"--match must be words or tokens (got {match!r}).")
        if match == "tokens" and tokenizer is None:
            raise UserError("--match tokens needs a tokenizer (--tokenizer).")
        self.client, self.match, self.tokenizer = client, match, tokenizer
        self.num_words = None  # unknown for a remote index

    def tokenize(self, text: str) -> list[str]:
        """The response's words (the same word tokenizer as the local index)."""
        return tokenize_words(text)

    def score(self, words: Sequence[str], config: CreativityConfig) -> CreativityResult:
        """Creativity of one tokenized response by DJ search over API counts."""

        def span_count(i: int, j: int) -> int:
            text = " ".join(words[i:j])
            if self.match == "words":
                return self.client.count(text=text)
            return self.client.count(ids=self.tokenizer.encode(text, add_special_tokens=False))

        return creativity_of_words(words, span_count, config)

    def describe(self) -> dict[str, Any]:
        return {"corpus": f"api:{self.client.index}", "api_url": self.client.url,
                "match": self.match}  # fmt: skip


def load_tokenizer(name: str) -> Any:
    """A Hugging Face tokenizer from a hub id or a local folder (one-line error when missing)."""
    from transformers import AutoTokenizer

    try:
        return AutoTokenizer.from_pretrained(name)
    except Exception as exc:  # offline, gated, or not a tokenizer folder
        raise UserError(
            f"cannot load the tokenizer {name!r} for --match tokens ({type(exc).__name__}); pass "
            "--tokenizer with a local folder holding the index's (Llama-2) tokenizer."
        ) from None
