"""The local n-gram index: prefix code, counts and longest matches vs brute force, errors."""

from __future__ import annotations

import gzip
import json
import random
from collections import Counter

import numpy as np
import pytest

from prorl_eval.analysis.creativity import (
    CreativityConfig,
    coverage_from_ends,
    creativity_of_words,
    ends_from_lengths,
    match_ends,
)
from prorl_eval.analysis.creativity_io import iter_documents, iter_hf_documents, score_text
from prorl_eval.analysis.ngram_index import (
    LOW_TOKENS,
    META_FILE,
    NgramIndex,
    build_index,
    encode_ids,
    max_vocab,
)
from prorl_eval.errors import UserError
from tests.oracles import coverage_brute_force


def decode_tokens(tokens: np.ndarray, short_ids: int) -> list[int]:
    """Inverse of encode_ids, written independently: a start token, then a low token if long."""
    ids, i = [], 0
    while i < len(tokens):
        token = int(tokens[i])
        assert token >= LOW_TOKENS, "a word must start with a start token"
        if token - LOW_TOKENS < short_ids:
            ids.append(token - LOW_TOKENS)
            i += 1
        else:
            low = int(tokens[i + 1])
            assert low < LOW_TOKENS
            ids.append(short_ids + (token - LOW_TOKENS - short_ids) * LOW_TOKENS + low)
            i += 2
    return ids


ENCODE_CASES = [
    (3, [0, 1, 2], [0x8000, 0x8001, 0x8002]),
    (3, [3], [0x8003, 0]),
    (3, [4, 3 + 0x8000], [0x8003, 1, 0x8004, 0]),
    (0x3FFF, [0x3FFE, 0x3FFF], [0xBFFE, 0xBFFF, 0]),
    (0x3FFF, [max_vocab(0x3FFF) - 1], [0xFFFE, 0x7FFF]),
    (5, [], []),
]


@pytest.mark.parametrize(("short_ids", "ids", "tokens"), ENCODE_CASES)
def test_encode_ids_table(short_ids, ids, tokens):
    encoded = encode_ids(np.array(ids, dtype=np.int64), short_ids)
    assert encoded.dtype == np.uint16 and encoded.tolist() == tokens
    assert decode_tokens(encoded, short_ids) == ids
    assert 0xFFFF not in encoded.tolist()  # the document separator never appears in a word


def test_encode_ids_round_trip_random():
    rng = np.random.default_rng(0)
    for short_ids in (1, 7, 0x3FFF):
        ids = rng.integers(0, max_vocab(short_ids), 500)
        assert decode_tokens(encode_ids(ids, short_ids), short_ids) == ids.tolist()
    assert max_vocab(0x3FFF) == 536_887_295


def letter_words(rng: random.Random, count: int) -> list[str]:
    words: set[str] = set()
    while len(words) < count:
        words.add("".join(rng.choice("bdgkmprstz") + rng.choice("aeiou") for _ in range(2)))
    return sorted(words)


@pytest.fixture(scope="module")
def random_indexes(tmp_path_factory):
    """Small random corpora; few short ids so that most words take two u16 tokens."""
    rng = random.Random(0)
    cases = []
    for k in range(4):
        vocab = letter_words(rng, rng.randint(3, 30))
        docs = [
            [rng.choice(vocab[: rng.randint(1, len(vocab))]) for _ in range(rng.randint(1, 80))]
            for _ in range(rng.randint(1, 6))
        ]
        folder = tmp_path_factory.mktemp(f"index{k}")
        build_index([" ".join(doc) for doc in docs], folder / "idx", short_ids=(1, 2, 5, 100)[k])
        cases.append((NgramIndex.open(folder / "idx"), docs, vocab))
    return cases


def brute_count(docs: list[list[str]], gram: tuple[str, ...]) -> int:
    n = len(gram)
    return sum(tuple(doc[i : i + n]) == gram for doc in docs for i in range(len(doc) - n + 1))


def test_counts_match_brute_force(random_indexes):
    rng = random.Random(1)
    for index, docs, vocab in random_indexes:
        present = Counter(
            tuple(doc[i : i + n])
            for doc in docs
            for n in range(1, 7)
            for i in range(len(doc) - n + 1)
        )
        for gram, count in present.items():
            assert index.count(list(gram)) == count, gram
        joined = [w for doc in docs for w in doc]  # n-grams across document boundaries
        for _ in range(200):
            n = rng.randint(1, 8)
            start = rng.randrange(max(1, len(joined) - n + 1))
            for gram in (tuple(joined[start : start + n]), tuple(rng.choices(vocab, k=n))):
                assert index.count(list(gram)) == brute_count(docs, gram), gram
        assert index.count([vocab[0], "unknownword"]) == 0
        assert index.num_words == sum(map(len, docs)) == index.meta["num_words"]
        words = rng.choices([*vocab, "zz"], k=30)
        counter = index.span_counter(words)
        for i in range(30):
            for j in range(i + 1, min(30, i + 6) + 1):
                assert counter(i, j) == brute_count(docs, tuple(words[i:j]))


def test_longest_matches_and_dj_search_match_brute_force(random_indexes):
    rng = random.Random(2)
    for index, docs, vocab in random_indexes:
        grams = {tuple(d[i : i + n]) for d in docs for n in range(1, 81) for i in range(len(d))}
        for _ in range(40):
            doc = rng.choice(docs)
            start = rng.randrange(len(doc))
            words = doc[start : start + rng.randint(0, 30)] + rng.choices([*vocab, "zz"], k=8)
            if rng.random() < 0.3:
                rng.shuffle(words)
            n = len(words)
            expected = np.array(
                [max(m for m in range(n - f + 1) if m == 0 or tuple(words[f : f + m]) in grams)
                 for f in range(n)], dtype=np.int64)  # fmt: skip
            np.testing.assert_array_equal(index.longest_matches(words), expected)
            for cap in (1, 4, 12):
                np.testing.assert_array_equal(
                    index.longest_matches(words, cap), np.minimum(expected, cap)
                )
            min_l = rng.randint(1, 5)
            dj_ends = match_ends(n, index.span_counter(words), min_l)
            np.testing.assert_array_equal(dj_ends, ends_from_lengths(expected, min_l))
            lengths = list(range(min_l, min_l + 6))
            capped = ends_from_lengths(index.longest_matches(words, lengths[-1]), min_l)
            np.testing.assert_allclose(  # capping at max L leaves coverage unchanged
                coverage_from_ends(capped, lengths), coverage_brute_force(words, grams, lengths)
            )


def test_copied_novel_and_half_responses_through_the_index(tmp_path):
    corpus = [f"w{i}" for i in range(100)]  # one document: w0 w1 ... w99
    build_index([" ".join(corpus), "x y z"], tmp_path / "idx", short_ids=10)
    index = NgramIndex.open(tmp_path / "idx")
    config = CreativityConfig()
    novel = [f"w{i}" for i in range(99, 59, -1)]  # known words, never adjacent in that order
    cases = [(corpus[20:60], 0.0), (novel, 8.0), (corpus[20:40] + novel[:20], 4.0),
             (["w98", "w99", "x", "y", "z", "w0"], 8.0)]  # fmt: skip  # no match across documents
    for words, expected in cases:
        text = " ".join(words)
        assert score_text(index, text, config).index == pytest.approx(expected)
        by_dj = creativity_of_words(words, index.span_counter(words), config)
        assert by_dj.index == pytest.approx(expected)


def test_engine_files_layout(tmp_path):
    """infini-gram's format: each document starts with the 0xFFFF separator at its offset."""
    docs = ["a b c", "", "d e", "f " * 3000]  # the empty document is skipped
    stats = build_index(docs, tmp_path / "idx", short_ids=2)
    tokens = np.fromfile(tmp_path / "idx" / "engine" / "tokenized.0", dtype="<u2")
    offsets = np.fromfile(tmp_path / "idx" / "engine" / "offset.0", dtype="<u8")
    assert stats.num_docs == 3 and stats.num_words == 3 + 2 + 3000
    # ids by frequency: f=0, then a..e=1..5 by first appearance; ids < 2 take one token, so
    # "a b c" is sep+1+2+2 = 6 tokens and "d e" sep+2+2 = 5 (offsets are in bytes)
    assert offsets.tolist() == [0, 2 * 6, 2 * (6 + 5)]
    assert (tokens[offsets // 2] == 0xFFFF).all() and (tokens == 0xFFFF).sum() == 3
    assert stats.num_tokens == tokens.size


def test_single_word_corpus_and_lowercase(tmp_path):
    build_index(["hello"], tmp_path / "one")
    assert NgramIndex.open(tmp_path / "one").count(["hello"]) == 1
    build_index(["The Cat sat. THE CAT!"], tmp_path / "lower", lowercase=True)
    index = NgramIndex.open(tmp_path / "lower")
    assert index.tokenize("The CAT") == ["the", "cat"]
    assert index.count(["the", "cat"]) == 2 and index.count(["The"]) == 0


def test_parallel_tokenization_builds_the_same_index(tmp_path):
    docs = [f"doc {i} " + "alpha beta, gamma (555) 123-4567 :) " * (i % 7) for i in range(300)]
    build_index(docs, tmp_path / "one", workers=1)
    build_index(docs, tmp_path / "two", workers=2)
    for name in ("vocab.json", "engine/tokenized.0", "engine/table.0", "engine/offset.0"):
        assert (tmp_path / "one" / name).read_bytes() == (tmp_path / "two" / name).read_bytes()


def test_build_and_open_errors(tmp_path):
    with pytest.raises(UserError, match="holds no words"):
        build_index(["", "  \n"], tmp_path / "empty")
    assert not (tmp_path / "empty").exists()
    with pytest.raises(UserError, match="not a built n-gram index"):
        NgramIndex.open(tmp_path / "nothing")
    build_index(["a b c"], tmp_path / "idx")
    meta = json.loads((tmp_path / "idx" / META_FILE).read_text())
    (tmp_path / "idx" / META_FILE).write_text(json.dumps({**meta, "format_version": 99}))
    with pytest.raises(UserError, match="rebuild"):
        NgramIndex.open(tmp_path / "idx")
    with pytest.raises(ValueError):
        build_index(["a"], tmp_path / "bad", short_ids=0)


def test_document_readers(tmp_path):
    (tmp_path / "corpus" / "sub").mkdir(parents=True)
    (tmp_path / "corpus" / "a.txt").write_text("first doc\nline two\n\n\nsecond doc\n")
    with gzip.open(tmp_path / "corpus" / "sub" / "b.jsonl.gz", "wt") as fh:
        fh.write(json.dumps({"t": "third"}) + "\n\n" + json.dumps({"t": "fourth"}) + "\n")
    (tmp_path / "corpus" / "ignored.csv").write_text("x")
    assert list(iter_documents([tmp_path / "corpus"], "t")) == [
        "first doc\nline two\n", "second doc\n", "third", "fourth"]  # fmt: skip
    (tmp_path / "array.json").write_text(json.dumps([{"t": "fifth"}, {"t": "sixth"}]))
    assert list(iter_documents([tmp_path / "array.json"], "t")) == ["fifth", "sixth"]
    (tmp_path / "bad.jsonl").write_text('{"t": "ok"}\n[1, 2]\n')
    with pytest.raises(UserError, match=r"bad.jsonl:2: no string field 't'"):
        list(iter_documents([tmp_path / "bad.jsonl"], "t"))
    (tmp_path / "bad.json").write_text('[{"t": "ok"}, 3]')
    with pytest.raises(UserError, match=r"bad.json item 1: no string field 't'"):
        list(iter_documents([tmp_path / "bad.json"], "t"))


def test_hf_dataset_local_route(tmp_path):
    datasets = pytest.importorskip("datasets")
    datasets.Dataset.from_dict({"text": ["one two", "three"]}).save_to_disk(tmp_path / "ds")
    assert list(iter_hf_documents(str(tmp_path / "ds"))) == ["one two", "three"]
    with pytest.raises(UserError, match="no string field 'body'"):
        list(iter_hf_documents(str(tmp_path / "ds"), text_field="body"))
    datasets.DatasetDict({"train": datasets.Dataset.from_dict({"text": ["x"]})}).save_to_disk(
        tmp_path / "dd"
    )
    assert list(iter_hf_documents(str(tmp_path / "dd"))) == ["x"]
    with pytest.raises(UserError, match="no split 'test'"):
        list(iter_hf_documents(str(tmp_path / "dd"), split="test"))
