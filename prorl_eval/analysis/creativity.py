"""The creativity index (Lu et al., 2024): how much of a text can be rebuilt from corpus snippets.

What
----
"AI as Humanity's Salieri: Quantifying Linguistic Creativity of Language Models via Systematic
Attribution of Machine Text against Web Text" (Lu et al., 2024) splits a response into words and,
for a minimum span length L, measures the L-gram *coverage*: the fraction of word positions that
lie inside some span of >= L consecutive words occurring verbatim in a reference corpus. The
creativity index sums the uncovered fractions::

    creativity = sum_{L = min_l .. max_l} (1 - coverage_L)        (L = 5 .. 12 in the paper)

so a response copied from the corpus scores 0 and one without a single corpus 5-gram scores 8.

Words
-----
:func:`tokenize_words`: NLTK's ``casual_tokenize`` as in the reference implementation, after
:func:`normalise_text`, which stands in for the reference's ``unidecode``.

DJ search
---------
:func:`match_ends` is the paper's exact-match DJ search, a two-pointer scan: the window
``words[f:s]`` grows (``s += 1``) while the corpus contains it; when it stops matching the start
advances (``f += 1``), keeping ``s`` -- a suffix of a matching span matches too -- so a response
of n words costs at most 2n count queries, not O(n^2). For every start f it yields ``e(f)``, the
end of the longest corpus match starting at f (when at least ``min_l`` long), and because a span
of length >= L contains spans of every length between ``min_l`` and L, one scan at ``min_l``
gives the coverage for every L (:func:`coverage_from_ends`); the reference runs one search per L.

The same ``e(f)`` for every f also comes out of one batched suffix-array search
(:meth:`prorl_eval.analysis.ngram_index.NgramIndex.longest_matches`, "matching statistics"),
which is what scoring uses: a chain of ~n sequential count queries through infini-gram's engine
costs 40-150 µs each, a batch costs about as much as a handful of them. Capping match lengths at
``max_l`` leaves every coverage up to ``max_l`` unchanged (a longer match is a run of overlapping
``max_l``-word matches), which bounds the bytes compared. :func:`creativity_from_ends` turns
either path's ends into the index; the tests check both paths against each other and against
brute force.

The tests and the benchmark compare both against plain versions (a search that restarts the
extension at every start, and coverage by definition against a set of corpus n-grams).

Departures from the reference implementation (github.com/GXimingLu/creativity_index)
-----------------------------------------------------------------------------------
- The reference detokenizes each span (Moses) and counts it, re-tokenized by the Llama tokenizer,
  with the remote infini-gram API over RedPajama; here spans are word sequences looked up in a
  local index (:mod:`prorl_eval.analysis.ngram_index`) of a corpus tokenized by the same word
  tokenizer, so a match means the same words, not the same subword string. Through the API
  (:mod:`prorl_eval.analysis.creativity_api`, ``--corpus api:<index>``) spans are words joined by
  spaces, counted as text, or tokenized here and counted as ids (``--match tokens``); no Moses
  detokenization either way.
- :func:`normalise_text` folds quotes, dashes and accents to ASCII, but unlike ``unidecode``
  keeps characters without an ASCII decomposition (CJK, emoji); ``casual_tokenize`` is fed text in
  pieces of ~8 KiB cut at whitespace (its regex has a 5 s time limit), which can split a phone
  number or a spaced ellipsis at a cut; a piece that still times out is split on whitespace.
- Like the reference, a response of at most ``min_l`` words gets no index (``None``) rather than
  a meaningless 8, and is left out of means.

Example:
    >>> corpus = {tuple("a b c d e f".split()[i:i + k]) for k in range(1, 7) for i in range(7 - k)}
    >>> words = "a b c d e f x y z w v u".split()
    >>> count = lambda i, j: int(tuple(words[i:j]) in corpus)
    >>> result = creativity_of_words(words, count, CreativityConfig())
    >>> result.coverage[5], result.coverage[6], result.coverage[7], result.index
    (0.5, 0.5, 0.0, 7.0)
"""

from __future__ import annotations

import re
import unicodedata
from collections.abc import Callable, Iterable, Iterator, Mapping, Sequence
from dataclasses import dataclass
from functools import lru_cache
from typing import Any

import numpy as np

from prorl_eval.passk import DEFAULT_BOOTSTRAP_RESAMPLES, DEFAULT_BOOTSTRAP_SEED, bootstrap_ci

__all__ = [
    "TOKENIZER_NAME",
    "CreativityConfig",
    "CreativityResult",
    "SpanCount",
    "coverage_from_ends",
    "creativity_from_ends",
    "creativity_index",
    "creativity_of_words",
    "ends_from_lengths",
    "match_ends",
    "maximal_spans",
    "normalise_text",
    "summarize_creativity",
    "tokenize_words",
]

TOKENIZER_NAME = "ascii-fold-v1+nltk.casual_tokenize"
_CHUNK_CHARS = 8192  # casual_tokenize has a 5 s regex time limit: feed it bounded pieces
_PLAIN_WORD = re.compile(r"(?<!\S)[A-Za-z]+(?!\S)")
_PUNCT = str.maketrans(
    {
        "\u2018": "'", "\u2019": "'", "\u201a": "'", "\u201b": "'", "\u2032": "'", "\u00b4": "'",
        "\u201c": '"', "\u201d": '"', "\u201e": '"', "\u2033": '"', "\u00ab": "<<", "\u00bb": ">>",
        "\u2010": "-", "\u2011": "-", "\u2012": "-", "\u2013": "-", "\u2212": "-",
        "\u2014": "--", "\u2015": "--", "\u2026": "...", "\u00a0": " ", "\u2039": "<",
        "\u203a": ">",
    }
)  # fmt: skip


# ----------------------------------------------------------------------------- words


def normalise_text(text: str) -> str:
    """Fold text towards ASCII: typographic quotes and dashes, then accents (NFKD) are removed.

    Stands in for the reference's ``unidecode`` (not a dependency here): characters without an
    ASCII decomposition (CJK, emoji) are kept as they are rather than transliterated.

    Example:
        >>> normalise_text("“Café” — naïve…")
        '"Cafe" -- naive...'
    """
    if text.isascii():
        return text
    folded = unicodedata.normalize("NFKD", text.translate(_PUNCT))
    return "".join(ch for ch in folded if not unicodedata.combining(ch))


@lru_cache(maxsize=2)
def _tweet_tokenizer(lowercase: bool) -> Any:
    from nltk.tokenize.casual import TweetTokenizer

    return TweetTokenizer(preserve_case=not lowercase)


def _pieces(text: str) -> Iterator[str]:
    """Cut long text at whitespace (a newline if there is one) into pieces of ~8 KiB."""
    start = 0
    while len(text) - start > _CHUNK_CHARS:
        end = start + _CHUNK_CHARS
        cut = text.rfind("\n", start + _CHUNK_CHARS // 2, end)
        if cut < 0:
            cut = max(text.rfind(" ", start + _CHUNK_CHARS // 2, end), text.rfind("\t", start, end))
        cut = end if cut <= start else cut
        yield text[start:cut]
        start = cut
    yield text[start:]


def tokenize_words(text: str, lowercase: bool = False) -> list[str]:
    """The words of a text, exactly as the index sees them: ``casual_tokenize(normalise_text(.))``.

    Fast path: a whitespace-delimited run of ASCII letters is always one casual_tokenize token
    (no URL, emoticon, handle or number pattern matches letters alone, and the only tokens that
    span whitespace -- phone numbers and spaced ellipses -- hold no letters), so only the text
    between such runs goes through NLTK's regex, the slow part. The tests check the equivalence.

    Example:
        >>> tokenize_words("Don't panic -- it’s fine!")
        ["Don't", 'panic', '-', '-', "it's", 'fine', '!']
    """
    tokenizer = _tweet_tokenizer(lowercase)
    text = normalise_text(text)
    words: list[str] = []
    start = 0
    for match in _PLAIN_WORD.finditer(text):
        if match.start() > start and not text[start : match.start()].isspace():
            for piece in _pieces(text[start : match.start()]):
                words.extend(_casual(tokenizer, piece))
        words.append(match.group().lower() if lowercase else match.group())
        start = match.end()
    if start < len(text) and not text[start:].isspace():
        for piece in _pieces(text[start:]):
            words.extend(_casual(tokenizer, piece))
    return words


def _casual(tokenizer: Any, piece: str) -> list[str]:
    """casual_tokenize of a piece; on NLTK's regex time-out (adversarial input, e.g. kilobytes of
    digits) the piece falls back to whitespace splitting rather than failing the whole run."""
    try:
        return tokenizer.tokenize(piece)
    except TimeoutError:
        return piece.split()


# ------------------------------------------------------------------------------ spans


SpanCount = Callable[[int, int], int]
"""``count(i, j)``: corpus occurrences of ``words[i:j]`` of the response being scored."""


@dataclass(frozen=True)
class CreativityConfig:
    """Span lengths of the index: coverage is measured for every L in ``min_l .. max_l``."""

    min_l: int = 5
    max_l: int = 12

    def validate(self) -> CreativityConfig:
        if self.min_l < 1 or self.max_l < self.min_l:
            raise ValueError(f"need 1 <= min_l <= max_l, got min_l={self.min_l} max_l={self.max_l}")
        return self

    @property
    def lengths(self) -> list[int]:
        return list(range(self.min_l, self.max_l + 1))


@dataclass(frozen=True)
class CreativityResult:
    """One response: its word count, coverage per L, index (None when too short), and how many
    count queries the DJ search made (0 on the batched path)."""

    num_words: int
    coverage: dict[int, float]
    index: float | None
    queries: int = 0


# ----------------------------------------------------------------------------- search


def match_ends(n: int, span_count: SpanCount, min_l: int) -> np.ndarray:
    """DJ search: ``ends[f]`` (n,) is the end of the longest corpus match starting at word f if it
    spans >= ``min_l`` words, else ``f``. At most 2n calls of ``span_count``."""
    ends = np.arange(n, dtype=np.int64)
    f, s = 0, min_l
    # Invariant: whenever s - f > min_l, words[f:s-1] is known to occur in the corpus.
    while s <= n:
        if span_count(f, s) > 0:
            s += 1
            continue
        if s - f > min_l:
            ends[f] = s - 1  # words[f:s-1] occurs, words[f:s] does not
        else:
            s += 1  # even the shortest window at f fails: slide it
        f += 1  # words[f+1:s-1] is a suffix of a match, so it matches too
    if s - f > min_l:  # the scan ran off the end while matching: every later start reaches n
        ends[f : n - min_l + 1] = n
    return ends


def maximal_spans(ends: np.ndarray) -> list[tuple[int, int]]:
    """The matches not inside an earlier one, as (start, end) word positions."""
    spans, last_end = [], -1
    for f, e in enumerate(ends.tolist()):
        if e > f and e > last_end:
            spans.append((f, e))
            last_end = e
    return spans


# --------------------------------------------------------------------------- coverage


def coverage_from_ends(ends: np.ndarray, lengths: Sequence[int]) -> np.ndarray:
    """Coverage ``(K,)`` for each L in ``lengths`` (K,): the fraction of positions inside a match
    of >= L words, from the ``ends`` (n,) of :func:`match_ends` (vectorised over L and spans)."""
    n = ends.size
    lengths_K = np.asarray(lengths, dtype=np.int64)
    if n == 0:
        return np.zeros(lengths_K.size)
    starts_n = np.arange(n)
    long_KN = (ends - starts_n)[None, :] >= lengths_K[:, None]  # (K, n)
    rows_K, cols = np.nonzero(long_KN)
    delta_KN = np.zeros((lengths_K.size, n + 1), dtype=np.int64)
    np.add.at(delta_KN, (rows_K, cols), 1)
    np.add.at(delta_KN, (rows_K, ends[cols]), -1)
    covered_KN = np.cumsum(delta_KN[:, :n], axis=1) > 0
    return covered_KN.mean(axis=1)


def creativity_index(coverage: Iterable[float]) -> float:
    """Σ_L (1 - coverage_L)."""
    return float(sum(1.0 - c for c in coverage))


def ends_from_lengths(match_lengths: np.ndarray, min_l: int) -> np.ndarray:
    """DJ-search ``ends`` (n,) from the longest match length at each start (n,): ``f + length``
    where the match has at least ``min_l`` words, else ``f``."""
    starts = np.arange(match_lengths.size)
    return np.where(match_lengths >= min_l, starts + match_lengths, starts)


def creativity_from_ends(
    ends: np.ndarray, config: CreativityConfig, queries: int = 0
) -> CreativityResult:
    """Coverage per L and the creativity index of a response from its DJ-search ``ends`` (n,).

    A response of at most ``min_l`` words is skipped like in the reference: empty coverage and
    index ``None``.
    """
    config.validate()
    n = int(ends.size)
    if n <= config.min_l:
        return CreativityResult(num_words=n, coverage={}, index=None, queries=queries)
    coverage = coverage_from_ends(ends, config.lengths)
    return CreativityResult(
        num_words=n,
        coverage={length: float(c) for length, c in zip(config.lengths, coverage, strict=True)},
        index=creativity_index(coverage),
        queries=queries,
    )


def creativity_of_words(
    words: Sequence[str], span_count: SpanCount, config: CreativityConfig
) -> CreativityResult:
    """Creativity of one tokenized response by DJ search over ``span_count`` queries."""
    config.validate()
    if len(words) <= config.min_l:
        return creativity_from_ends(np.arange(len(words)), config)
    queries = 0

    def counted(i: int, j: int) -> int:
        nonlocal queries
        queries += 1
        return span_count(i, j)

    return creativity_from_ends(match_ends(len(words), counted, config.min_l), config, queries)


# ---------------------------------------------------------------------------- summary


def _mean_of_problem_means(problems: Mapping[Any, list[float]]) -> np.ndarray:
    return np.asarray([float(np.mean(values)) for values in problems.values()])


def _summarize_group(
    rows: Sequence[Mapping[str, Any]], unit: Callable[[Mapping[str, Any]], Any], **boot: int
) -> dict[str, Any]:
    scored = [row for row in rows if row.get("creativity_index") is not None]
    by_unit: dict[Any, list[Mapping[str, Any]]] = {}
    for row in scored:
        by_unit.setdefault(unit(row), []).append(row)
    out: dict[str, Any] = {
        "num_responses": len(rows),
        "num_scored": len(scored),
        "num_problems": len(by_unit),
        "mean_words": float(np.mean([row["num_words"] for row in rows])) if rows else 0.0,
        "creativity_index": None,
        "ci95": None,
        "coverage": {},
    }
    if not by_unit:
        return out
    values = _mean_of_problem_means(
        {key: [r["creativity_index"] for r in group] for key, group in by_unit.items()}
    )
    out["creativity_index"] = float(values.mean())
    out["ci95"] = list(bootstrap_ci(values, **boot))
    lengths = sorted({int(k) for row in scored for k in row["coverage"]})
    for length in lengths:
        per_problem = _mean_of_problem_means(
            {key: [_coverage(r, length) for r in group] for key, group in by_unit.items()}
        )
        out["coverage"][str(length)] = float(per_problem.mean())
    return out


def _coverage(row: Mapping[str, Any], length: int) -> float:
    coverage = row["coverage"]
    return float(coverage[length] if length in coverage else coverage[str(length)])


def summarize_creativity(
    rows: Sequence[Mapping[str, Any]],
    *,
    resamples: int = DEFAULT_BOOTSTRAP_RESAMPLES,
    seed: int = DEFAULT_BOOTSTRAP_SEED,
) -> list[dict[str, Any]]:
    """Mean creativity index and coverage per (model, task), and per model over all its tasks.

    ``rows`` are per-response dicts with ``model``, ``task``, ``problem_id``, ``num_words``,
    ``creativity_index`` (None = too short, left out) and ``coverage`` ({L: value}). Responses to
    one problem are correlated, so a group's mean is the mean over problems of each problem's mean,
    and its 95% CI is a percentile bootstrap over problems (:func:`prorl_eval.passk.bootstrap_ci`);
    a model's "all tasks" row pools every (task, problem). Returns one dict per group, with
    ``model`` and ``task`` (``"all"`` for the model rows).

    Example:
        >>> rows = [dict(model="m", task="t", problem_id=str(i % 2), num_words=9,
        ...              creativity_index=float(i), coverage={5: 1 - i / 8}) for i in range(4)]
        >>> summary = summarize_creativity(rows, resamples=100)
        >>> summary[0]["task"], summary[0]["creativity_index"], summary[0]["num_problems"]
        ('t', 1.5, 2)
    """
    boot = {"resamples": resamples, "seed": seed}
    models = sorted({str(row.get("model") or "") for row in rows})
    summary = []
    for model in models:
        mine = [row for row in rows if str(row.get("model") or "") == model]
        for task in sorted({str(row["task"]) for row in mine}):
            group = [row for row in mine if str(row["task"]) == task]
            stats = _summarize_group(group, lambda r: str(r["problem_id"]), **boot)
            summary.append({"model": model, "task": task, **stats})
        stats = _summarize_group(mine, lambda r: (str(r["task"]), str(r["problem_id"])), **boot)
        summary.append({"model": model, "task": "all", **stats})
    return summary
