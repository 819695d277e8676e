"""Benchmark the creativity index: 1,000-word responses against a local n-gram index.

Builds synthetic corpora of the sizes given by ``--tokens`` (words; default 1M, 10M and 100M) and,
for each, times the index build (tokenize / encode / suffix array) and the creativity index of
1,000-word responses of three kinds -- ``copied`` (a window of a corpus document), ``novel``
(fresh text from the same word distribution) and ``mixed`` (alternating copied and fresh chunks of
20-80 words) -- through the whole path of :func:`score_text` (tokenize, batched suffix-array
search, coverage). Each response is timed ``--repeats`` times and its best time kept (the 2 cores
are shared); the table gives the median and max over responses. Goal: < 0.1 s per response at
100M words.

Baselines, measured in the same run on the same index and responses:

* DJ search through infini-gram's count queries (:func:`creativity_of_words`: the two-pointer
  scan, ~n-2n sequential queries), all sizes;
* the O(words^2) search (:func:`match_ends_quadratic`: restart the extension at every start), one
  response of each kind, up to ``--quadratic-max`` words;
* a Python set of every corpus n-gram of length 5..12 (by hash) up to ``--set-baseline-max``
  words: its build time and per-response time.

Every path's coverage is compared with ours ("max coverage diff", must be 0).

The corpus: a fixed vocabulary of 50,000 pseudo-words (plus "," and "."), Zipf(1.07) word draws,
and documents of 2,000 words made of 5-40-word segments, half of them phrases from a fixed bank
of 50,000 (so long n-grams recur, as in real text); everything is seeded. A size whose build,
extrapolated linearly from the previous size, would take more than ``--max-build-s`` is skipped.
Index files live in a temporary folder that is deleted afterwards.

Run: ``.venv/bin/python benchmarks/bench_creativity.py [--tokens 10000000] [--json PATH]``
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import shutil
import statistics
import sys
import tempfile
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))  # run from a checkout

from prorl_eval.analysis.creativity import (
    CreativityConfig,
    CreativityResult,
    creativity_from_ends,
    creativity_of_words,
    tokenize_words,
)
from prorl_eval.analysis.creativity_io import score_text
from prorl_eval.analysis.ngram_index import NgramIndex, build_index
from tests.oracles import coverage_brute_force, match_ends_quadratic

SEED = 0
VOCAB = 50_000
BANK = 50_000
DOC_WORDS = 2_000
RESPONSE_WORDS = 1_000
GOAL_S = 0.1
KINDS = ("copied", "novel", "mixed")


class Corpus:
    """The seeded synthetic corpus: document i depends only on (seed, i)."""

    def __init__(self, seed: int = SEED) -> None:
        syllables = [c + v for c in "bdfgklmnprstvz" for v in "aeiou"]  # 70
        words = []
        for i in range(VOCAB):
            digits, j = [], i
            while True:
                digits.append(syllables[j % 70])
                j //= 70
                if j == 0:
                    break
            words.append("".join(digits) + ("n" if i % 3 else ""))
        words[2], words[5] = ",", "."
        self.words = np.asarray(words, dtype=object)
        ranks = np.arange(1, VOCAB + 1, dtype=np.float64)
        self.cdf = np.cumsum(ranks**-1.07)
        self.cdf /= self.cdf[-1]
        rng = np.random.default_rng([seed, 1 << 31])
        lengths = rng.integers(5, 41, BANK)
        self.bank = np.split(self.zipf(rng, int(lengths.sum())), np.cumsum(lengths)[:-1])
        self.seed = seed

    def zipf(self, rng: np.random.Generator, n: int) -> np.ndarray:
        return np.searchsorted(self.cdf, rng.random(n), side="right").clip(0, VOCAB - 1)

    def doc_ids(self, i: int) -> np.ndarray:
        rng = np.random.default_rng([self.seed, i])
        parts, total = [], 0
        while total < DOC_WORDS:
            if rng.random() < 0.5:
                part = self.bank[int(rng.integers(BANK))]
            else:
                part = self.zipf(rng, int(rng.integers(5, 41)))
            parts.append(part)
            total += part.size
        return np.concatenate(parts)[:DOC_WORDS]

    def text(self, ids: np.ndarray) -> str:
        return " ".join(self.words[ids].tolist())

    def documents(self, num_words: int) -> Iterator[str]:
        for i in range(max(1, num_words // DOC_WORDS)):
            yield self.text(self.doc_ids(i))

    def responses(self, kind: str, count: int, num_docs: int) -> list[str]:
        rng = np.random.default_rng([self.seed, 1 << 32, KINDS.index(kind)])
        out = []
        for _ in range(count):
            if kind == "copied":
                start = int(rng.integers(0, DOC_WORDS - RESPONSE_WORDS))
                ids = self.doc_ids(int(rng.integers(num_docs)))[start : start + RESPONSE_WORDS]
            elif kind == "novel":
                ids = self.zipf(rng, RESPONSE_WORDS)
            else:
                parts, total, copy = [], 0, True
                while total < RESPONSE_WORDS:
                    n = int(rng.integers(20, 81))
                    if copy:
                        start = int(rng.integers(0, DOC_WORDS - n))
                        part = self.doc_ids(int(rng.integers(num_docs)))[start : start + n]
                    else:
                        part = self.zipf(rng, n)
                    parts.append(part)
                    total, copy = total + n, not copy
                ids = np.concatenate(parts)[:RESPONSE_WORDS]
            out.append(self.text(ids))
        return out


def folder_mib(path: Path) -> float:
    return sum(p.stat().st_size for p in path.rglob("*") if p.is_file()) / 2**20


def time_path(
    fn: Callable[[str], CreativityResult], texts: list[str], repeats: int = 1
) -> dict[str, Any]:
    """Median and max over the texts of the best of ``repeats`` timings of ``fn`` (the 2 cores
    are shared, so the best run is the one least disturbed), its mean count queries and index."""
    times, results = [], []
    for text in texts:
        best = float("inf")
        for _ in range(repeats):
            started = time.perf_counter()
            result = fn(text)
            best = min(best, time.perf_counter() - started)
        results.append(result)
        times.append(best)
    return {
        "median_s": statistics.median(times),
        "max_s": max(times),
        "queries": statistics.mean(r.queries for r in results),
        "index": statistics.mean(r.index for r in results),
        "coverage": [r.coverage for r in results],
    }


def scorers(index: NgramIndex, config: CreativityConfig) -> dict[str, Callable[[str], Any]]:
    """The three paths on the same index: batched (ours), DJ two-pointer and O(n^2) search, both
    through infini-gram's count queries."""

    def batched(text: str) -> CreativityResult:
        return score_text(index, text, config)

    def dj(text: str) -> CreativityResult:
        words = index.tokenize(text)
        return creativity_of_words(words, index.span_counter(words), config)

    def quadratic(text: str) -> CreativityResult:
        words = index.tokenize(text)
        counter, queries = index.span_counter(words), 0

        def counted(i: int, j: int) -> int:
            nonlocal queries
            queries += 1
            return counter(i, j)

        ends = match_ends_quadratic(len(words), counted, config.min_l)
        return creativity_from_ends(ends, config, queries)

    return {"batched": batched, "dj": dj, "quadratic": quadratic}


def set_baseline(corpus: Corpus, num_words: int, texts: dict, config: CreativityConfig) -> dict:
    """A Python set of every corpus n-gram of length min_l..max_l (stored by 64-bit hash): build
    time and per-response time (tokenize + brute-force coverage)."""
    started = time.perf_counter()
    grams: set[int] = set()
    for doc in corpus.documents(num_words):
        words = tokenize_words(doc)  # not doc.split(): casual_tokenize joins ". ." into one token
        for n in config.lengths:
            grams.update(hash(tuple(words[i : i + n])) for i in range(len(words) - n + 1))
    out: dict[str, Any] = {"build_s": time.perf_counter() - started, "entries": len(grams)}
    hashed = _HashSet(grams)
    for kind, kind_texts in texts.items():
        times, coverage = [], []
        for text in kind_texts:
            started = time.perf_counter()
            brute = coverage_brute_force(tokenize_words(text), hashed, config.lengths)
            times.append(time.perf_counter() - started)
            coverage.append(dict(zip(config.lengths, brute.tolist(), strict=True)))
        out[kind] = {"median_s": statistics.median(times), "coverage": coverage}
    return out


class _HashSet:
    """Membership by hash, so coverage_brute_force runs against the hashed n-gram set."""

    def __init__(self, hashes: set[int]) -> None:
        self.hashes = hashes

    def __contains__(self, gram: object) -> bool:
        return hash(gram) in self.hashes


def max_diff(a: list[dict], b: list[dict]) -> float:
    return max(abs(x[k] - y[k]) for x, y in zip(a, b, strict=True) for k in x)


def measure_size(corpus: Corpus, num_words: int, args: argparse.Namespace, tmp: Path) -> dict:
    config = CreativityConfig()
    folder = tmp / f"index-{num_words}"
    started = time.perf_counter()
    stats = build_index(corpus.documents(num_words), folder, workers=args.workers)
    row: dict[str, Any] = {
        "words": stats.num_words,
        "docs": stats.num_docs,
        "vocab": stats.vocab_size,
        "u16_tokens": stats.num_tokens,
        "build_s": time.perf_counter() - started,
        "tokenize_s": stats.tokenize_s,
        "encode_s": stats.encode_s,
        "suffix_array_s": stats.suffix_array_s,
        "index_mib": folder_mib(folder),
    }
    index = NgramIndex.open(folder)
    texts = {kind: corpus.responses(kind, args.responses, stats.num_docs) for kind in KINDS}
    paths = scorers(index, config)
    paths["batched"](corpus.responses("novel", 1, 1)[0])  # warm-up (imports, first page faults)
    for kind in KINDS:
        row[kind] = {"batched": time_path(paths["batched"], texts[kind], args.repeats)}
        row[kind]["dj"] = time_path(paths["dj"], texts[kind], args.repeats)
        if num_words <= args.quadratic_max:
            quad = row[kind]["quadratic"] = time_path(paths["quadratic"], texts[kind][:1])
            row[kind]["quadratic_max_diff"] = max_diff(
                row[kind]["batched"]["coverage"][:1], quad["coverage"]
            )
        row[kind]["dj_max_diff"] = max_diff(
            row[kind]["batched"]["coverage"], row[kind]["dj"]["coverage"]
        )
    if num_words <= args.set_baseline_max:
        base = set_baseline(corpus, num_words, texts, config)
        row["set_baseline"] = base
        for kind in KINDS:
            row[kind]["set_max_diff"] = max_diff(
                row[kind]["batched"]["coverage"], base[kind]["coverage"]
            )
    del index, paths
    shutil.rmtree(folder)
    return row


def ms(seconds: float) -> str:
    return f"{1e3 * seconds:.1f}"


def markdown(rows: list[dict], skipped: list[int]) -> str:
    lines = [
        "| corpus words | build s (tokenize / encode / SA) | index MiB | response | ours ms "
        "(median / max) | index | DJ via count queries: ms, queries (ratio) "
        "| O(n²) search: ms, queries (ratio) | max coverage diff |",
        "|---:|---|---:|---|---:|---:|---:|---:|---:|",
    ]
    for row in rows:
        build = (
            f"{row['build_s']:.1f} ({row['tokenize_s']:.1f} / {row['encode_s']:.1f} / "
            f"{row['suffix_array_s']:.1f})"
        )
        for kind in KINDS:
            ours, dj = row[kind]["batched"], row[kind]["dj"]
            quad = row[kind].get("quadratic")
            quad_cell = "—"
            if quad:
                quad_cell = (
                    f"{ms(quad['median_s'])}, {quad['queries']:,.0f} "
                    f"({quad['median_s'] / ours['median_s']:.0f}×)"
                )
            diff = max(
                row[kind][name]
                for name in ("dj_max_diff", "quadratic_max_diff", "set_max_diff")
                if name in row[kind]
            )
            lines.append(
                f"| {row['words']:,} | {build} | {row['index_mib']:.0f} | {kind} "
                f"| {ms(ours['median_s'])} / {ms(ours['max_s'])} | {ours['index']:.2f} "
                f"| {ms(dj['median_s'])}, {dj['queries']:,.0f} "
                f"({dj['median_s'] / ours['median_s']:.1f}×) "
                f"| {quad_cell} | {diff:.1e} |"
            )
    for row in rows:
        base = row.get("set_baseline")
        if base:
            per_kind = ", ".join(
                f"{kind} {ms(base[kind]['median_s'])} ms "
                f"(ours {ms(row[kind]['batched']['median_s'])})"
                for kind in KINDS
            )
            lines.append(
                f"\nPython set of {base['entries']:,} n-gram hashes at {row['words']:,} words: "
                f"build {base['build_s']:.1f} s (index {row['build_s']:.1f} s); per response "
                f"{per_kind}."
            )
    if skipped:
        lines.append(f"\nSkipped (build predicted over --max-build-s): {skipped}.")
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument(
        "--tokens", default="1000000,10000000,100000000", help="comma-separated corpus sizes"
    )
    parser.add_argument("--responses", type=int, default=5, help="responses of each kind")
    parser.add_argument("--repeats", type=int, default=3, help="timings per response (best)")
    parser.add_argument("--workers", type=int, default=1, help="tokenizer processes")
    parser.add_argument("--max-build-s", type=float, default=600.0, help="build time cap")
    parser.add_argument(
        "--set-baseline-max", type=int, default=1_000_000, help="set baseline up to"
    )
    parser.add_argument("--quadratic-max", type=int, default=1_000_000, help="O(n²) search up to")
    parser.add_argument("--tmp", type=Path, default=None, help="folder for the temporary indexes")
    parser.add_argument("--json", type=Path, metavar="PATH", help="also write the numbers here")
    args = parser.parse_args(argv)
    sizes = sorted(int(size) for size in args.tokens.split(","))
    corpus = Corpus()
    rows: list[dict] = []
    skipped: list[int] = []
    tmp = Path(tempfile.mkdtemp(prefix="bench-creativity-", dir=args.tmp))
    try:
        for size in sizes:
            if rows and rows[-1]["build_s"] * size / rows[-1]["words"] > args.max_build_s:
                skipped.append(size)
                continue
            rows.append(measure_size(corpus, size, args, tmp))
            print(f"{size:,} words measured (build {rows[-1]['build_s']:.0f} s)", file=sys.stderr)
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
    print(
        f"Machine: {platform.machine()} ({os.cpu_count()} cores), Python "
        f"{platform.python_version()}. Goal: < {GOAL_S} s per 1,000-word response.\n"
    )
    print(markdown(rows, skipped))
    if args.json:
        payload = {"rows": rows, "skipped": skipped, "goal_s": GOAL_S, "seed": SEED}
        args.json.write_text(json.dumps(payload, indent=2) + "\n", encoding="utf-8")
    return 0


if __name__ == "__main__":
    sys.exit(main())
