"""A local word n-gram index of a reference corpus, built on infini-gram's suffix-array engine.

What
----
:func:`build_index` turns documents (an iterable of strings: see
:mod:`prorl_eval.analysis.creativity_io` for the text-file, JSONL and Hugging Face readers)
into an index folder. :class:`NgramIndex` answers ``count(ngram: list[str]) -> int`` -- how many
times the word sequence occurs verbatim in the corpus, never across a document boundary -- through
infini-gram's C++ engine, and ``longest_matches(words)``: for every start position the longest
corpus match, from one batched numpy binary search over the same suffix array (what the
creativity index uses; see :mod:`prorl_eval.analysis.creativity` for why).

Words are what :func:`prorl_eval.analysis.creativity.tokenize_words` makes of a text (the
reference implementation's ``casual_tokenize`` after ASCII folding), for the corpus and the
responses alike; the index records the tokenizer's name and refuses to open under another one.

The engine is never given an empty corpus (it crashes on one): a corpus without a word is a
UserError. No remote API is used; the Hugging Face route only reads a dataset.

How the words reach infini-gram
-------------------------------
infini-gram's ``--tokenizer`` option only knows hub tokenizers, and its u32 indexer allocates a
2^32-entry table (32 GiB), so the index uses u16 tokens, which cannot hold a word vocabulary
directly. Words get ids by decreasing corpus frequency and are written with a prefix code over u16:

- id < ``short_ids`` (16,383 by default: the frequent words): one token ``0x8000 + id``;
- rarer ids: two tokens, a high token in ``[0x8000 + short_ids, 0xFFFF)`` and a low token in
  ``[0, 0x8000)``.

A word always starts with a token >= 0x8000 and a low token is always < 0x8000, so a query
(which starts at a word) can only match at a word start: the token-sequence count equals the
word-sequence count. Capacity: 536,887,295 distinct words. ``0xFFFF`` is infini-gram's document
separator. We write infini-gram's ``tokenized.0``/``offset.0`` files ourselves and run its
indexer (``python -m infini_gram.indexing``), which then only builds the suffix array.

Folder layout: ``prorl_index.json`` (metadata, written last: its presence marks a complete index),
``vocab.json`` (the words, by id) and ``engine/`` (infini-gram's files).

Example:
    >>> index = build_index(["the cat sat on the mat"], "idx")   # doctest: +SKIP
    >>> NgramIndex.open("idx").count(["the", "cat"])             # doctest: +SKIP
    1
"""

from __future__ import annotations

import json
import os
import resource
import shutil
import subprocess
import sys
import time
from collections.abc import Callable, Iterable, Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from prorl_eval.analysis.creativity import TOKENIZER_NAME, tokenize_words
from prorl_eval.errors import UserError

META_FILE = "prorl_index.json"
VOCAB_FILE = "vocab.json"
ENGINE_DIR = "engine"
INDEX_FORMAT = "prorl-word-ngram-index"
INDEX_FORMAT_VERSION = 1

SEP_TOKEN = 0xFFFF  # infini-gram's u16 document separator
LOW_TOKENS = 0x8000  # low tokens of two-token words: [0, 0x8000)
START_TOKENS = 0xFFFF - 0x8000  # tokens that start a word: [0x8000, 0xFFFF)
DEFAULT_SHORT_IDS = 0x4000 - 1
_ENCODE_CHUNK_WORDS = 1 << 23
_BATCH_CHARS = 1 << 20  # text per batch sent to a tokenizer process

# --------------------------------------------------------------------------- encoding


def encode_ids(ids: np.ndarray, short_ids: int = DEFAULT_SHORT_IDS) -> np.ndarray:
    """Word ids ``(n,)`` → u16 tokens ``(m,)`` with the prefix code of the module docstring."""
    ids = np.asarray(ids, dtype=np.int64)
    long = ids >= short_ids
    ends = np.cumsum(1 + long)
    starts = ends - 1 - long
    out = np.empty(int(ends[-1]) if ids.size else 0, dtype=np.uint16)
    rest = ids - short_ids
    out[starts] = np.where(long, LOW_TOKENS + short_ids + rest // LOW_TOKENS, LOW_TOKENS + ids)
    out[starts[long] + 1] = rest[long] % LOW_TOKENS
    return out


def max_vocab(short_ids: int) -> int:
    """How many distinct words the prefix code can hold."""
    return short_ids + (START_TOKENS - short_ids) * LOW_TOKENS


# ----------------------------------------------------------------------------- build


@dataclass(frozen=True)
class BuildStats:
    """What :func:`build_index` did and how long each stage took (seconds)."""

    num_docs: int
    num_words: int
    num_tokens: int
    vocab_size: int
    tokenize_s: float
    encode_s: float
    suffix_array_s: float


def _tokenize_batch(texts: list[str], lowercase: bool) -> list[list[str]]:
    return [tokenize_words(text, lowercase) for text in texts]


def _tokenized(documents: Iterable[str], lowercase: bool, workers: int) -> Iterator[list[str]]:
    """The documents' words, in order; tokenized by ``workers`` processes when > 1, with a
    bounded number of batches in flight (memory stays bounded on any corpus size)."""
    if workers <= 1:
        for text in documents:
            yield tokenize_words(text, lowercase)
        return
    import multiprocessing
    from collections import deque
    from concurrent.futures import ProcessPoolExecutor

    context = multiprocessing.get_context("spawn")  # no fork of a possibly threaded parent
    with ProcessPoolExecutor(workers, mp_context=context) as pool:
        pending: deque[Any] = deque()
        batch: list[str] = []
        chars = 0
        for text in documents:
            batch.append(text)
            chars += len(text)
            if chars < _BATCH_CHARS and len(batch) < 1024:
                continue
            pending.append(pool.submit(_tokenize_batch, batch, lowercase))
            batch, chars = [], 0
            if len(pending) >= 2 * workers:
                yield from pending.popleft().result()
        pending.append(pool.submit(_tokenize_batch, batch, lowercase))
        while pending:
            yield from pending.popleft().result()


def _tokenize_corpus(
    documents: Iterable[str],
    raw_path: Path,
    lowercase: bool,
    workers: int,
    progress: Callable[[int], None],
) -> tuple[list[str], np.ndarray]:
    """Pass 1: words → ids in order of first appearance, appended to ``raw_path`` as u32.

    Returns the words (by first-appearance id) and the word count of each non-empty document."""
    from array import array

    vocab: dict[str, int] = {}
    words: list[str] = []
    lengths = array("q")
    buffer = array("I")
    with raw_path.open("wb") as fh:
        for tokens in _tokenized(documents, lowercase, workers):
            if not tokens:
                continue
            for word in tokens:
                idx = vocab.get(word)
                if idx is None:
                    idx = vocab[word] = len(words)
                    words.append(word)
                buffer.append(idx)
            lengths.append(len(tokens))
            if len(buffer) >= 1 << 20:
                buffer.tofile(fh)
                progress(len(buffer))
                buffer = array("I")
        buffer.tofile(fh)
        progress(len(buffer))
    return words, np.frombuffer(lengths, dtype=np.int64).copy()


def _write_engine_files(
    raw_path: Path, lengths: np.ndarray, rank: np.ndarray, engine_dir: Path, short_ids: int
) -> int:
    """Pass 2: frequency-ranked ids, prefix-coded, one separator before each document, written
    as infini-gram's ``tokenized.0`` and ``offset.0``. Returns the number of u16 tokens."""
    raw = np.memmap(raw_path, dtype=np.uint32, mode="r")
    doc_ends = np.cumsum(lengths)
    total_tokens = 0
    with (engine_dir / "tokenized.0").open("wb") as ds, (engine_dir / "offset.0").open("wb") as od:
        first = 0
        while first < len(lengths):
            last = int(np.searchsorted(doc_ends, doc_ends[first] + _ENCODE_CHUNK_WORDS, "right"))
            last = max(last, first + 1)
            lo = int(doc_ends[first - 1]) if first else 0
            ids = rank[raw[lo : int(doc_ends[last - 1])]]
            width = 1 + (ids >= short_ids)
            word_start = np.concatenate(([0], np.cumsum(width)))
            doc_start = word_start[doc_ends[first:last] - lengths[first:last] - lo]
            tokens = np.insert(encode_ids(ids, short_ids), doc_start, SEP_TOKEN)
            offsets = 2 * (total_tokens + doc_start + np.arange(last - first))
            od.write(offsets.astype(np.uint64).tobytes())
            ds.write(tokens.astype("<u2").tobytes())
            total_tokens += tokens.size
            first = last
    del raw
    return total_tokens


def _run_infini_gram_indexer(folder: Path, num_tokens: int, mem_gb: int | None) -> None:
    """Build the suffix array with infini-gram's indexer (our tokenized files make it skip its
    own tokenizer). It fails on tiny corpora with several workers, so small ones get one."""
    cpus = max(1, min(os.cpu_count() or 1, (2 * num_tokens) >> 20))
    if mem_gb is None:
        mem_gb = max(1, int(os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_AVPHYS_PAGES") / 2**31))
    hard = resource.getrlimit(resource.RLIMIT_NOFILE)[1]
    ulimit = 65536 if hard == resource.RLIM_INFINITY else min(hard, 65536)
    empty = folder / "no-raw-data"
    empty.mkdir(exist_ok=True)
    command = [
        sys.executable, "-m", "infini_gram.indexing", "--data_dir", str(empty.resolve()),
        "--save_dir", str(folder.resolve()), "--token_dtype", "u16", "--cpus", str(cpus),
        "--mem", str(mem_gb), "--ulimit", str(ulimit),
    ]  # fmt: skip
    done = subprocess.run(command, capture_output=True, text=True, check=False)
    empty.rmdir()
    if done.returncode != 0 or not (folder / "table.0").is_file():
        tail = (done.stdout + done.stderr).strip().splitlines()[-5:]
        raise RuntimeError(f"infini-gram indexing failed ({done.returncode}): {' | '.join(tail)}")


def build_index(
    documents: Iterable[str],
    out: str | Path,
    *,
    lowercase: bool = False,
    short_ids: int = DEFAULT_SHORT_IDS,
    mem_gb: int | None = None,
    workers: int = 1,
    sources: Sequence[str] = (),
    progress: Callable[[int], None] = lambda words: None,
) -> BuildStats:
    """Tokenize ``documents`` into words and build a local n-gram index in the folder ``out``.

    ``out`` must not exist or be empty. A corpus without a single word is refused (infini-gram
    crashes on an empty index). ``workers`` processes tokenize; ``mem_gb`` bounds the suffix-array
    build's memory (default: half the free memory); ``progress(words)`` is called as words are
    tokenized.
    """
    if not 0 < short_ids < START_TOKENS:
        raise ValueError(f"short_ids must be in (0, {START_TOKENS}), got {short_ids}")
    folder = Path(out)
    if folder.exists() and (not folder.is_dir() or any(folder.iterdir())):
        raise UserError(f"index folder {folder} exists and is not empty; choose a new --out.")
    created = not folder.exists()
    engine_dir = folder / ENGINE_DIR
    engine_dir.mkdir(parents=True)
    try:
        return _build(
            documents, folder, engine_dir, lowercase, short_ids, mem_gb, workers, sources, progress
        )
    except BaseException:  # leave no half-built index behind (nor delete what the user made)
        for child in [folder] if created else list(folder.iterdir()):
            if child.is_dir():
                shutil.rmtree(child, ignore_errors=True)
            else:
                child.unlink(missing_ok=True)
        raise


def _build(
    documents: Iterable[str],
    folder: Path,
    engine_dir: Path,
    lowercase: bool,
    short_ids: int,
    mem_gb: int | None,
    workers: int,
    sources: Sequence[str],
    progress: Callable[[int], None],
) -> BuildStats:
    started = time.perf_counter()
    raw_path = folder / "raw_ids.u32"
    words, lengths = _tokenize_corpus(documents, raw_path, lowercase, workers, progress)
    if lengths.size == 0:
        raise UserError("the corpus holds no words; give non-empty documents (or --text-field).")
    if len(words) > max_vocab(short_ids):
        raise UserError(
            f"the corpus has {len(words)} distinct words; at most {max_vocab(short_ids)}"
        )
    tokenized = time.perf_counter()
    counts = np.bincount(np.memmap(raw_path, dtype=np.uint32, mode="r"), minlength=len(words))
    order = np.argsort(-counts, kind="stable")  # by frequency, ties by first appearance
    rank = np.empty(len(words), dtype=np.int64)
    rank[order] = np.arange(len(words))
    num_tokens = _write_engine_files(raw_path, lengths, rank, engine_dir, short_ids)
    raw_path.unlink()
    encoded = time.perf_counter()
    _run_infini_gram_indexer(engine_dir, num_tokens, mem_gb)
    indexed = time.perf_counter()
    with (folder / VOCAB_FILE).open("w", encoding="utf-8") as fh:
        json.dump([words[i] for i in order], fh, ensure_ascii=False)
    stats = BuildStats(
        num_docs=int(lengths.size),
        num_words=int(lengths.sum()),
        num_tokens=num_tokens,
        vocab_size=len(words),
        tokenize_s=tokenized - started,
        encode_s=encoded - tokenized,
        suffix_array_s=indexed - encoded,
    )
    meta = {
        "format": INDEX_FORMAT,
        "format_version": INDEX_FORMAT_VERSION,
        "tokenizer": TOKENIZER_NAME,
        "lowercase": lowercase,
        "short_ids": short_ids,
        "engine": "infini-gram u16",
        "sources": list(sources),
        **stats.__dict__,
    }
    (folder / META_FILE).write_text(json.dumps(meta, indent=2) + "\n", encoding="utf-8")
    return stats


# ----------------------------------------------------------------------------- query


class NgramIndex:
    """A built index, opened for counting. See the module docstring."""

    def __init__(self, folder: Path, meta: dict[str, Any], vocab: dict[str, int]) -> None:
        from infini_gram.engine import InfiniGramEngine

        self.folder = folder
        self.meta = meta
        self.lowercase = bool(meta["lowercase"])
        self.short_ids = int(meta["short_ids"])
        self._vocab = vocab
        engine = InfiniGramEngine(
            index_dir=str(folder / ENGINE_DIR),
            eos_token_id=SEP_TOKEN - 1,  # unused by counting; must be < vocab_size
            vocab_size=SEP_TOKEN,
            token_dtype="u16",
            ds_prefetch_depth=0,  # its prefetching costs ~4x per query on a page-cached index
            sa_prefetch_depth=0,
            od_prefetch_depth=0,
        )
        # The public wrapper re-validates every id in Python on each call; our ids come from
        # encode_ids, so we call the C++ engine's count directly (the hot path of DJ search).
        self._count_tokens = engine.engine.count
        self._engine = engine
        self._table = _SuffixTable(folder / ENGINE_DIR)

    @classmethod
    def open(cls, folder: str | Path) -> NgramIndex:
        """Open an index folder built by :func:`build_index`; anything else is a UserError."""
        folder = Path(folder)
        meta_path = folder / META_FILE
        if not meta_path.is_file():
            raise UserError(
                f"{folder} is not a built n-gram index (no {META_FILE}); "
                "build one with `prorl-eval creativity index-build`."
            )
        try:
            meta = json.loads(meta_path.read_text(encoding="utf-8"))
            words = json.loads((folder / VOCAB_FILE).read_text(encoding="utf-8"))
        except (OSError, json.JSONDecodeError) as exc:
            raise UserError(f"{folder}: damaged index ({exc}); rebuild it.") from None
        if meta.get("format") != INDEX_FORMAT or meta.get("format_version") != INDEX_FORMAT_VERSION:
            raise UserError(f"{folder}: index format {meta.get('format_version')} is not "
                            f"{INDEX_FORMAT_VERSION}; rebuild it.")  # fmt: skip
        if meta.get("tokenizer") != TOKENIZER_NAME:
            raise UserError(f"{folder}: built with tokenizer {meta.get('tokenizer')}; rebuild it.")
        if not (folder / ENGINE_DIR / "table.0").is_file():
            raise UserError(f"{folder}: the suffix array is missing; rebuild the index.")
        return cls(folder, meta, {word: i for i, word in enumerate(words)})

    @property
    def num_words(self) -> int:
        return int(self.meta["num_words"])

    def tokenize(self, text: str) -> list[str]:
        """The words of ``text`` as this index splits them."""
        return tokenize_words(text, self.lowercase)

    def word_ids(self, words: Sequence[str]) -> np.ndarray:
        """``(n,)`` int64 ids, -1 for a word the corpus never contains."""
        get = self._vocab.get
        return np.fromiter((get(w, -1) for w in words), dtype=np.int64, count=len(words))

    def count(self, ngram: Sequence[str]) -> int:
        """How often the word sequence occurs in the corpus (0 if it holds an unknown word)."""
        if not ngram:
            raise ValueError("count needs a non-empty n-gram")
        ids = self.word_ids(ngram)
        if (ids < 0).any():
            return 0
        return int(self._count_tokens(input_ids=encode_ids(ids, self.short_ids).tolist()).count)

    def span_counter(self, words: Sequence[str]) -> Callable[[int, int], int]:
        """``count(i, j)`` = occurrences of ``words[i:j]``; encodes the words once, so a query
        only slices a token list (the form DJ search wants)."""
        ids = self.word_ids(words)
        unknown = np.concatenate(([0], np.cumsum(ids < 0))).tolist()  # (n+1,)
        known = np.where(ids < 0, 0, ids)
        offsets = np.concatenate(([0], np.cumsum(1 + (known >= self.short_ids)))).tolist()
        tokens = encode_ids(known, self.short_ids).tolist()
        count_tokens = self._count_tokens

        def count(i: int, j: int) -> int:
            if unknown[j] != unknown[i]:
                return 0
            return count_tokens(input_ids=tokens[offsets[i] : offsets[j]]).count

        return count

    def longest_matches(self, words: Sequence[str], cap: int | None = None) -> np.ndarray:
        """``(n,)``: for each start f, the length (in words, at most ``cap``) of the longest
        ``words[f:f+m]`` that occurs in the corpus -- DJ search's ``e(f) - f``, for all f at once.

        One batched binary search over the suffix array (:class:`_SuffixTable`) instead of a
        chain of count queries: the longest corpus match of a query is shared with a suffix next
        to the query's insertion point. ``cap`` bounds the bytes compared per query (memory is
        O(n * cap): pass one for long texts); coverage for spans of up to L words only needs
        ``cap >= L``.
        """
        n = len(words)
        cap = n if cap is None else cap
        ids = self.word_ids(words)
        known = ids >= 0
        width_n = np.where(known, 2 + 2 * (ids >= self.short_ids), 0)  # bytes per word
        byte_off = np.concatenate(([0], np.cumsum(width_n)))  # (n+1,)
        data = encode_ids(ids[known], self.short_ids).astype("<u2").view(np.uint8)
        starts = np.arange(n)
        unknown_at = np.flatnonzero(~known)
        next_unknown = np.append(unknown_at, n)[np.searchsorted(unknown_at, starts)]
        stop = np.minimum(next_unknown, starts + cap)  # (n,) a query never spans an unknown word
        qlen = byte_off[stop] - byte_off[starts]
        if n == 0 or qlen.max() == 0:
            return np.zeros(n, dtype=np.int64)
        pos = byte_off[:-1, None] + np.arange(int(qlen.max()))
        query = data[np.minimum(pos, data.size - 1)].astype(np.int16)
        lcp = self._table.longest_prefix(query, qlen)
        matched = np.searchsorted(byte_off, byte_off[:-1] + lcp, side="right") - 1 - starts
        return np.minimum(matched, stop - starts)


class _SuffixTable:
    """infini-gram's on-disk suffix array (``table.0`` over ``tokenized.0``), searched with numpy
    for many queries at once. Its entries are ``ratio``-byte little-endian byte offsets of the
    u16 suffixes, sorted by their raw bytes."""

    def __init__(self, engine_dir: Path) -> None:
        # Plain ndarray views of the maps: indexing a np.memmap subclass costs ~10x more.
        self.ds = np.memmap(engine_dir / "tokenized.0", dtype=np.uint8, mode="r").view(np.ndarray)
        self.sa = np.memmap(engine_dir / "table.0", dtype=np.uint8, mode="r").view(np.ndarray)
        self.size = self.ds.size // 2  # one suffix per token
        self.ratio = self.sa.size // self.size
        self._shift = 8 * np.arange(self.ratio, dtype=np.int64)

    def suffix_bytes(self, rank: np.ndarray, width: int) -> np.ndarray:
        """``(q, width)`` int16 leading bytes of the suffixes of the given SA ranks; -1 past the
        end of the data (a shorter string sorts first)."""
        cells = self.sa[(rank * self.ratio)[:, None] + np.arange(self.ratio)]
        start = (cells.astype(np.int64) << self._shift).sum(axis=1)
        pos = start[:, None] + np.arange(width)
        out = self.ds[np.minimum(pos, self.ds.size - 1)].astype(np.int16)
        out[pos >= self.ds.size] = -1
        return out

    def longest_prefix(self, query_QW: np.ndarray, qlen_Q: np.ndarray) -> np.ndarray:
        """``(Q,)`` bytes of the longest prefix of each query (its first ``qlen`` bytes of the
        ``(Q, W)`` int16 rows) that starts some suffix of the corpus."""
        num, width = query_QW.shape
        rows = np.arange(num)
        inside_QW = np.arange(width)[None, :] < qlen_Q[:, None]
        lo = np.zeros(num, dtype=np.int64)
        hi = np.full(num, self.size, dtype=np.int64)
        for _ in range(self.size.bit_length()):  # lower bound: first suffix >= query
            active = lo < hi
            mid = (lo + hi) // 2
            suffix_QW = self.suffix_bytes(np.minimum(mid, self.size - 1), width)
            diff_QW = (suffix_QW != query_QW) & inside_QW
            first = diff_QW.argmax(axis=1)
            less = active & diff_QW[rows, first] & (suffix_QW[rows, first] < query_QW[rows, first])
            lo = np.where(less, mid + 1, lo)
            hi = np.where(active & ~less, mid, hi)
        best = np.zeros(num, dtype=np.int64)
        for rank in (lo - 1, lo):  # the longest common prefix is with a neighbour
            suffix_QW = self.suffix_bytes(np.clip(rank, 0, self.size - 1), width)
            stop_QW = (suffix_QW != query_QW) | ~inside_QW
            lcp = np.where(stop_QW.any(axis=1), stop_QW.argmax(axis=1), width)
            best = np.maximum(best, np.where((rank >= 0) & (rank < self.size), lcp, 0))
        return best
