"""Creativity index: hand-computed cases, DJ search vs brute force, tokenizer, summary, commands."""

from __future__ import annotations

import csv
import json
import random

import numpy as np
import pytest

from prorl_eval.analysis.creativity import (
    CreativityConfig,
    coverage_from_ends,
    creativity_of_words,
    match_ends,
    maximal_spans,
    normalise_text,
    summarize_creativity,
    tokenize_words,
)
from prorl_eval.errors import UserError
from tests.oracles import corpus_ngrams, coverage_brute_force, coverage_loop, match_ends_quadratic

A = [f"a{i}" for i in range(60)]  # the main corpus document: a0 a1 ... a59


def desc(start: int, count: int) -> list[str]:
    """Corpus words in descending order: no two of them are adjacent in the corpus."""
    return [f"a{i}" for i in range(start, start - count, -1)]


def set_counter(docs: list[list[str]], words: list[str]):
    grams = corpus_ngrams(docs, max(len(words), 1))
    return lambda i, j: int(tuple(words[i:j]) in grams)


CONFIG = CreativityConfig()
DOCS = [A, [*A[3:8], "x1", "x2", "x3"], ["c0", "c1", "c2"], ["c3", "c4", "c5"]]

# (name, response, expected creativity index, expected coverage at L = 5..12)
HAND_CASES = [
    ("copied", A[10:30], 0.0, [1.0] * 8),
    ("novel", desc(59, 20), 8.0, [0.0] * 8),
    ("half copied, half novel", A[10:30] + desc(59, 20), 4.0, [0.5] * 8),
    # two 8-word copied chunks, two novel: covered for L <= 8 only -> 4 * 0.5 + 4 * 1
    ("8-word chunks", A[0:8] + desc(59, 8) + A[20:28] + desc(49, 8), 6.0, [0.5] * 4 + [0.0] * 4),
    # a copied 6-gram twice: the seam a5|a0 is not in the corpus -> covered for L <= 6
    ("repeated 6-gram", A[0:6] + A[0:6], 6.0, [1.0, 1.0] + [0.0] * 6),
    # exactly one corpus 5-gram among 20 words: coverage_5 = 5/20
    ("one 5-gram", desc(59, 10) + A[30:35] + desc(49, 5), 7.75, [0.25] + [0.0] * 7),
    # overlapping matches from two documents: [0, 8) in A, [3, 11) in the second doc
    ("overlapping", [*A[:8], "x1", "x2", "x3"], 4.0, [1.0] * 4 + [0.0] * 4),
    # the 6 words span two documents: no 5-gram occurs inside one document
    ("across documents", ["c0", "c1", "c2", "c3", "c4", "c5"], 8.0, [0.0] * 8),
    ("6 copied words", A[40:46], 6.0, [1.0, 1.0] + [0.0] * 6),
]


@pytest.mark.parametrize(("name", "words", "expected", "coverage"), HAND_CASES)
def test_hand_computed_cases(name, words, expected, coverage):
    result = creativity_of_words(words, set_counter(DOCS, words), CONFIG)
    assert result.index == pytest.approx(expected), name
    assert [result.coverage[n] for n in range(5, 13)] == pytest.approx(coverage), name
    assert result.queries <= 2 * len(words)


@pytest.mark.parametrize("n", [0, 1, 5])
def test_too_short_response_gets_no_index(n):
    words = A[:n]
    result = creativity_of_words(words, set_counter(DOCS, words), CONFIG)
    assert result.index is None and result.coverage == {} and result.num_words == n


def test_config_validation():
    assert CreativityConfig(3, 3).validate().lengths == [3]
    for bad in (CreativityConfig(0, 5), CreativityConfig(6, 5)):
        with pytest.raises(ValueError):
            bad.validate()


def brute_ends(words: list[str], grams: set, min_l: int) -> np.ndarray:
    """e(f) by definition: the longest corpus match starting at f, if >= min_l words."""
    n = len(words)
    ends = np.arange(n)
    for f in range(n):
        longest = max(m for m in range(n - f + 1) if m == 0 or tuple(words[f : f + m]) in grams)
        if longest >= min_l:
            ends[f] = f + longest
    return ends


def random_case(rng: random.Random) -> tuple[list[list[str]], list[str]]:
    vocab = [f"w{i}" for i in range(rng.randint(2, 12))]
    docs = [
        [rng.choice(vocab) for _ in range(rng.randint(1, 40))] for _ in range(rng.randint(1, 4))
    ]
    words: list[str] = []
    while len(words) < rng.randint(0, 50):
        if rng.random() < 0.5:
            doc = rng.choice(docs)
            start = rng.randrange(len(doc))
            words += doc[start : start + rng.randint(1, 20)]
        else:
            words += [rng.choice([*vocab, "zz"]) for _ in range(rng.randint(1, 6))]
    return docs, words


def test_dj_search_and_coverage_match_brute_force_on_random_cases():
    rng = random.Random(0)
    for _ in range(300):
        docs, words = random_case(rng)
        min_l = rng.randint(1, 6)
        lengths = list(range(min_l, min_l + 4))
        grams = corpus_ngrams(docs, max(len(words), 1))
        queries = 0

        def count(i: int, j: int, words=words, grams=grams) -> int:
            nonlocal queries
            queries += 1
            return int(tuple(words[i:j]) in grams)

        expected = brute_ends(words, grams, min_l)
        ends = match_ends(len(words), count, min_l)
        np.testing.assert_array_equal(ends, expected)
        assert queries <= 2 * len(words)
        np.testing.assert_array_equal(match_ends_quadratic(len(words), count, min_l), expected)
        brute = coverage_brute_force(words, grams, lengths)
        np.testing.assert_allclose(coverage_from_ends(ends, lengths), brute)
        np.testing.assert_allclose(coverage_loop(ends, lengths), brute)


def test_two_pointer_search_costs_linear_queries_where_naive_is_quadratic():
    words = A[:50]
    calls = {"dj": 0, "naive": 0}

    def counter(name):
        grams = corpus_ngrams([A], 60)

        def count(i, j):
            calls[name] += 1
            return int(tuple(words[i:j]) in grams)

        return count

    match_ends(50, counter("dj"), 5)
    match_ends_quadratic(50, counter("naive"), 5)
    assert calls["dj"] == 46  # extends 45 times, then the scan runs off the end
    assert calls["naive"] == sum(50 - f - 4 for f in range(46))  # 1081: every extension again


def test_maximal_spans():
    ends = np.array([8, 8, 2, 11, 11, 11, 11, 7, 8, 9, 10])
    assert maximal_spans(ends) == [(0, 8), (3, 11)]


# ------------------------------------------------------------------------------ words

NORMALISE_CASES = [
    ("plain ascii", "plain ascii"),
    ("“Café” — naïve…", '"Cafe" -- naive...'),
    ("it’s ‘x’ – y", "it's 'x' - y"),
    ("ﬁne Ｆｕｌｌ", "fine Full"),
    ("日本 ok", "日本 ok"),  # no ASCII decomposition: kept (unidecode would transliterate)
    ("a\u00a0b", "a b"),
]


@pytest.mark.parametrize(("text", "expected"), NORMALISE_CASES)
def test_normalise_text(text, expected):
    assert normalise_text(text) == expected


TOKENIZE_CASES = [
    ("Don't panic -- it’s fine!", ["Don't", "panic", "-", "-", "it's", "fine", "!"]),
    ("Call (555) 123-4567 now :)", ["Call", "(555) 123-4567", "now", ":)"]),
    ("Wait . . . what", ["Wait", ". . .", "what"]),
    ("see http://x.com/a, ok", ["see", "http://x.com/a", ",", "ok"]),
    ("&amp; e.g. 3.14", ["&", "e", ".", "g", ".", "3.14"]),
    ("", []),
    ("   \n ", []),
]


@pytest.mark.parametrize(("text", "expected"), TOKENIZE_CASES)
def test_tokenize_words_table(text, expected):
    assert tokenize_words(text) == expected


ATOMS = ["word", "Cat", "x", "I", "don't", "e.g.", ":)", ":-(", "<3", "XD", "8)", "D:", "...",
         ". . .", ".", ",", "!!!!", "&amp;", "&#65;", "http://x.com/a?b=1", "site.com/", "@user",
         "#tag", "a@b.com", "555 123 4567", "(555) 123-4567", "3.14", "12:30", "->", "café",
         "“q”", "—", "ab-cd", "o'clock", "<b>", "aaaaaa!!!!", "Dd", ":", "=", "x-D", "p",
         "d"]  # fmt: skip
SEPARATORS = [" ", " ", "\n", "\t", "", "  \n "]


def test_fast_path_tokenizer_equals_casual_tokenize():
    """Plain-letter words skip NLTK's regex; the result must equal casual_tokenize exactly."""
    from nltk.tokenize.casual import casual_tokenize

    rng = random.Random(1)
    for _ in range(1500):
        parts = [rng.choice(ATOMS) + rng.choice(SEPARATORS) for _ in range(rng.randint(0, 12))]
        text = "".join(parts)
        for lowercase in (False, True):
            expected = casual_tokenize(normalise_text(text), preserve_case=not lowercase)
            assert tokenize_words(text, lowercase) == expected, repr(text)


def test_long_text_is_tokenized_in_pieces():
    text = "alpha beta, gamma. " * 20_000  # 380 KB: one casual_tokenize call would time out
    assert tokenize_words(text) == ["alpha", "beta", ",", "gamma", "."] * 20_000


# ---------------------------------------------------------------------------- summary


def row(model, task, problem, index, words=10):
    coverage = {} if index is None else {5: 1 - index / 8, 12: 0.0}
    return dict(model=model, task=task, problem_id=problem, num_words=words,
                creativity_index=index, coverage=coverage)  # fmt: skip


def test_summary_means_over_problems_and_models():
    rows = [
        row("m", "t1", "0", 2.0), row("m", "t1", "0", 4.0),  # problem mean 3
        row("m", "t1", "1", 6.0), row("m", "t1", "1", None, words=3),  # problem mean 6
        row("m", "t2", "0", 8.0),
        row("n", "t1", "0", 1.0),
    ]  # fmt: skip
    summary = {(g["model"], g["task"]): g for g in summarize_creativity(rows, resamples=200)}
    t1 = summary[("m", "t1")]
    assert (t1["num_responses"], t1["num_scored"], t1["num_problems"]) == (4, 3, 2)
    assert t1["creativity_index"] == pytest.approx(4.5)
    assert t1["mean_words"] == pytest.approx(33 / 4)
    assert t1["coverage"]["5"] == pytest.approx(((0.75 + 0.5) / 2 + 0.25) / 2)
    assert 3.0 <= t1["ci95"][0] <= 4.5 <= t1["ci95"][1] <= 6.0
    everything = summary[("m", "all")]  # units (t1,0), (t1,1), (t2,0): means 3, 6, 8
    assert everything["creativity_index"] == pytest.approx(17 / 3)
    assert everything["num_problems"] == 3
    assert summary[("m", "t2")]["ci95"] == [8.0, 8.0]
    assert summary[("n", "all")]["creativity_index"] == 1.0
    unscored = summarize_creativity([row("m", "t", "0", None)])[0]
    assert unscored["creativity_index"] is None and unscored["num_scored"] == 0


# --------------------------------------------------------------------------- commands


@pytest.fixture(scope="module")
def corpus_index(tmp_path_factory):
    """An index built by the command from a JSONL file and a text file."""
    from prorl_eval.cli.creativity import index_build_command

    folder = tmp_path_factory.mktemp("creativity")
    (folder / "a.jsonl").write_text(json.dumps({"body": " ".join(A)}) + "\n")
    (folder / "b.txt").write_text("x1 x2 x3 x4 x5 x6\n\nother words here\n")
    index_build_command(
        out=folder / "idx", inputs=[folder / "a.jsonl", folder / "b.txt"], text_field="body"
    )
    return folder / "idx"


def write_samples(path, responses):
    with path.open("w") as fh:
        for i, (model, task, problem, text) in enumerate(responses):
            fh.write(json.dumps(dict(task=task, problem_id=problem, sample_idx=i, score=1.0,
                                     model=model, response=text)) + "\n")  # fmt: skip


def test_score_command_end_to_end(corpus_index, tmp_path):
    from prorl_eval.cli.creativity import creativity_command

    responses = [
        ("m", "t", "0", " ".join(A[10:30])),  # 0
        ("m", "t", "0", " ".join(desc(59, 20))),  # 8
        ("m", "t", "1", " ".join(A[10:30] + desc(59, 20))),  # 4
        ("m", "t", "1", "<think>" + " ".join(A[:14]) + "</think> " + " ".join(desc(40, 12))),
        ("m", "t", "2", "too short"),
    ]
    run = tmp_path / "run"
    run.mkdir()
    write_samples(run / "samples.jsonl", responses)
    creativity_command(samples=str(run), corpus=corpus_index, out=tmp_path / "out", bootstrap=50)
    rows = [json.loads(line) for line in (tmp_path / "out" / "creativity.jsonl").open()]
    assert [r["creativity_index"] for r in rows] == [0.0, 8.0, 4.0, 4.0, None]
    assert rows[2]["coverage"] == {str(n): 0.5 for n in range(5, 13)}
    with (tmp_path / "out" / "creativity.csv").open() as fh:
        table = list(csv.DictReader(fh))
    assert table[1]["coverage_12"] == "0.0" and table[4]["creativity_index"] == ""
    summary = json.loads((tmp_path / "out" / "creativity_summary.json").read_text())
    group = summary["groups"][0]
    assert (group["task"], group["num_scored"], group["num_problems"]) == ("t", 4, 2)
    assert group["creativity_index"] == pytest.approx((4.0 + 4.0) / 2)

    creativity_command(samples=str(run / "samples.jsonl"), corpus=corpus_index,
                       out=tmp_path / "strip", strip_think=True, bootstrap=50)  # fmt: skip
    stripped = [json.loads(line) for line in (tmp_path / "strip" / "creativity.jsonl").open()]
    assert stripped[3]["creativity_index"] == 8.0  # only the novel final answer is left


def test_commands_run_through_typer(corpus_index, tmp_path):
    from typer.testing import CliRunner

    from prorl_eval.cli.creativity import make_app

    write_samples(tmp_path / "s.jsonl", [("m", "t", "0", " ".join(A[:20]))])
    app = make_app()
    result = CliRunner().invoke(app, ["score", "--samples", str(tmp_path / "s.jsonl"),
                                      "--corpus", str(corpus_index), "--out", str(tmp_path / "o"),
                                      "--min-l", "4", "--max-l", "6"])  # fmt: skip
    assert result.exit_code == 0, result.output
    row = json.loads((tmp_path / "o" / "creativity.jsonl").read_text())
    assert row["creativity_index"] == 0.0 and sorted(row["coverage"]) == ["4", "5", "6"]
    (tmp_path / "docs.jsonl").write_text('{"text": "one two three"}\n')
    result = CliRunner().invoke(app, ["index-build", "--input", str(tmp_path / "docs.jsonl"),
                                      "--out", str(tmp_path / "idx2")])  # fmt: skip
    assert result.exit_code == 0, result.output
    assert (tmp_path / "idx2" / "prorl_index.json").is_file()


def test_bad_score_inputs_are_user_errors(corpus_index, tmp_path):
    from prorl_eval.cli.creativity import creativity_command

    good = tmp_path / "good.jsonl"
    write_samples(good, [("m", "t", "0", "a b c d e f")])
    bad_json = tmp_path / "bad.jsonl"
    bad_json.write_text('{"task": "t", "problem_id": "0", "sample_idx": 0, "score": 1}\n{oops\n')
    no_response = tmp_path / "none.jsonl"
    no_response.write_text('{"task": "t", "problem_id": "0", "sample_idx": 0, "score": 1}\n')
    cases = [
        (dict(samples=str(good), corpus=tmp_path / "missing"), "not a built n-gram index"),
        (dict(samples=str(tmp_path / "nope.jsonl"), corpus=corpus_index), "does not exist"),
        (dict(samples=str(bad_json), corpus=corpus_index), ":2: malformed JSON"),
        (dict(samples=str(no_response), corpus=corpus_index), "no string 'response'"),
        (dict(samples=str(good), corpus=corpus_index, min_l=6, max_l=5), "min_l"),
        (dict(samples=str(good), corpus=corpus_index, bootstrap=0), "--bootstrap"),
    ]
    for kwargs, message in cases:
        with pytest.raises(UserError, match=message):
            creativity_command(out=tmp_path / "out", **kwargs)
        assert "\n" not in message


def test_bad_build_inputs_are_user_errors(tmp_path):
    from prorl_eval.cli.creativity import index_build_command

    (tmp_path / "empty.jsonl").write_text('{"text": ""}\n{"text": "  "}\n')
    (tmp_path / "nofield.jsonl").write_text('{"body": "x"}\n')
    (tmp_path / "data.csv").write_text("x\n")
    (tmp_path / "used").mkdir()
    (tmp_path / "used" / "file").write_text("x")
    docs = tmp_path / "empty.jsonl"
    cases = [
        (dict(inputs=[docs]), "holds no words"),
        (dict(inputs=[tmp_path / "nofield.jsonl"]), "no string field 'text'"),
        (dict(inputs=[tmp_path / "missing.jsonl"]), "does not exist"),
        (dict(inputs=[tmp_path / "data.csv"]), "unknown corpus file type"),
        (dict(inputs=None), "either --input"),
        (dict(inputs=[docs], hf_dataset="org/name"), "either --input"),
        (dict(inputs=[docs], max_docs=0), "--max-docs"),
    ]
    for kwargs, message in cases:
        with pytest.raises(UserError, match=message):
            index_build_command(out=tmp_path / "idx", **kwargs)
        assert not (tmp_path / "idx").exists()  # nothing half-built is left behind
    with pytest.raises(UserError, match="not empty"):
        index_build_command(out=tmp_path / "used", inputs=[docs])
    assert (tmp_path / "used" / "file").is_file()
