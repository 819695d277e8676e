"""The creativity index through the infini-gram API, against a local stub server that answers
like the API: equal to the local-index path on the same corpus, cached, retried, rate-bounded,
and one-line errors when the API refuses or stays unreachable. No test uses the network."""

from __future__ import annotations

import json
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import pytest

from prorl_eval.analysis.creativity import CreativityConfig, creativity_of_words, tokenize_words
from prorl_eval.analysis.creativity_api import ApiCorpus, InfiniGramClient
from prorl_eval.analysis.creativity_io import score_rows
from prorl_eval.analysis.ngram_index import NgramIndex, build_index
from prorl_eval.errors import UserError

DOCS = [
    "the quick brown fox jumps over the lazy dog while the cat sleeps in the warm sun all day",
    "a stitch in time saves nine and the early bird catches the worm every single morning",
]
RESPONSES = [
    "the quick brown fox jumps over the lazy dog while the cat sleeps soundly",
    "every single morning the early bird catches the worm and a stitch in time saves nine",
    "completely novel words that the corpus has never seen in any order at all here",
    "short one",
]


class StubApi:
    """An HTTP server on 127.0.0.1 answering `count` queries from a local index (text queries,
    split into words as the index was) or from token-id sequences (`query_ids`); `fail_first`
    answers 503 that many times first; `refuse` answers with an `error`."""

    def __init__(self, index: NgramIndex, token_docs: list[list[int]] | None = None):
        self.index, self.token_docs = index, token_docs or []
        self.fail_first, self.refuse, self.always_fail = 0, False, False
        self.requests, self.in_flight, self.most_in_flight = 0, 0, 0
        self.lock = threading.Lock()
        stub = self

        class Handler(BaseHTTPRequestHandler):
            def log_message(self, *args):
                pass

            def do_POST(self):
                body = json.loads(self.rfile.read(int(self.headers["Content-Length"])))
                with stub.lock:
                    stub.requests += 1
                    stub.in_flight += 1
                    stub.most_in_flight = max(stub.most_in_flight, stub.in_flight)
                    fail = stub.always_fail or stub.fail_first > 0
                    stub.fail_first -= 1
                try:
                    if fail:
                        self.send_response(503)
                        self.end_headers()
                        return
                    answer = stub.answer(body)
                    data = json.dumps(answer).encode()
                    self.send_response(200)
                    self.send_header("Content-Type", "application/json")
                    self.send_header("Content-Length", str(len(data)))
                    self.end_headers()
                    self.wfile.write(data)
                finally:
                    with stub.lock:
                        stub.in_flight -= 1

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}/"
        threading.Thread(target=self.server.serve_forever, daemon=True).start()

    def answer(self, body: dict) -> dict:
        if self.refuse or body.get("index") != "v4_stub" or body.get("query_type") != "count":
            return {"error": f"Invalid index: {body.get('index')}"}
        if "query_ids" in body:
            ids, n = body["query_ids"], len(body["query_ids"])
            count = sum(doc[i : i + n] == ids for doc in self.token_docs for i in range(len(doc)))
            return {"count": count, "approx": False}
        return {"count": self.index.count(self.index.tokenize(body["query"])), "approx": False}

    def close(self):
        self.server.shutdown()
        self.server.server_close()


@pytest.fixture(scope="module")
def local_index(tmp_path_factory):
    folder = tmp_path_factory.mktemp("api") / "idx"
    build_index(DOCS, folder)
    return NgramIndex.open(folder)


@pytest.fixture
def stub(local_index):
    server = StubApi(local_index)
    yield server
    server.close()


def rows():
    return [
        {"task": "t", "problem_id": str(i // 2), "sample_idx": i, "model": "m", "response": text}
        for i, text in enumerate(RESPONSES)
    ]


def client(stub, tmp_path, **settings):
    options = {"url": stub.url, "cache": tmp_path / "cache.sqlite", "backoff_s": 0.01, "rate": 1e3}
    options.update(settings)
    return InfiniGramClient("v4_stub", **options)


def test_api_path_equals_the_local_index_path_on_the_same_corpus(stub, local_index, tmp_path):
    config = CreativityConfig()
    local = score_rows(rows(), local_index, config)
    api = score_rows(rows(), ApiCorpus(client(stub, tmp_path, concurrency=3)), config, workers=3)
    assert api == local
    assert local[2]["creativity_index"] == 8.0  # no corpus 5-gram at all
    assert local[0]["creativity_index"] < 8.0 and local[3]["creativity_index"] is None


def test_answers_are_cached_on_disk_across_clients(stub, tmp_path):
    config = CreativityConfig()
    first = client(stub, tmp_path)
    score_rows(rows(), ApiCorpus(first), config)
    asked = stub.requests
    assert asked == first.requests > 0
    first.close()
    again = client(stub, tmp_path)  # a later run: the same cache file
    score_rows(rows(), ApiCorpus(again), config)
    assert again.requests == 0 and stub.requests == asked


def test_retries_with_backoff_then_a_one_line_error(stub, tmp_path):
    stub.fail_first = 2
    assert client(stub, tmp_path, retries=3).count(text="the quick brown") == 1
    stub.always_fail = True
    with pytest.raises(UserError, match=r"unreachable after 3 tries \(HTTP 503\)"):
        client(stub, tmp_path, retries=2).count(text="never asked before")
    dead = InfiniGramClient("v4_stub", url="http://127.0.0.1:9/", retries=1, backoff_s=0.01)
    with pytest.raises(UserError, match="is unreachable after 2 tries"):
        dead.count(text="anything")


def test_a_refused_query_is_a_one_line_error(stub, tmp_path):
    wrong = InfiniGramClient("v4_nope", url=stub.url, backoff_s=0.01)
    with pytest.raises(UserError, match="refused: Invalid index: v4_nope"):
        wrong.count(text="the quick brown")


def test_concurrency_and_rate_are_bounded(stub, tmp_path):
    import time

    corpus = ApiCorpus(client(stub, tmp_path, concurrency=2, rate=200.0))
    started = time.monotonic()
    score_rows(rows(), corpus, CreativityConfig(), workers=4)
    elapsed = time.monotonic() - started
    assert stub.most_in_flight <= 2
    assert elapsed >= (stub.requests - 1) / 200.0  # no faster than the rate allows


def test_token_matching_counts_tokenized_spans(local_index, embedded_model_path, tmp_path):
    """--match tokens: spans tokenized here (a stand-in for Llama-2's tokenizer), counted as ids;
    equal to DJ search over a set of the corpus's token-id n-grams."""
    from transformers import AutoTokenizer

    tokenizer = AutoTokenizer.from_pretrained(embedded_model_path)
    docs = [tokenizer.encode(d, add_special_tokens=False) for d in DOCS]
    server = StubApi(local_index, docs)
    try:
        corpus = ApiCorpus(client(server, tmp_path), "tokens", tokenizer)
        config = CreativityConfig()
        for text in RESPONSES[:3]:
            words = tokenize_words(text)

            def oracle(i, j, words=words):
                ids = tokenizer.encode(" ".join(words[i:j]), add_special_tokens=False)
                return sum(d[k : k + len(ids)] == ids for d in docs for k in range(len(d)))

            assert corpus.score(words, config) == creativity_of_words(words, oracle, config)
    finally:
        server.close()


def test_cli_scores_against_the_api(stub, tmp_path):
    from prorl_eval.cli.creativity import creativity_command

    run = tmp_path / "run"
    run.mkdir()
    (run / "samples.jsonl").write_text(
        "".join(json.dumps({**r, "score": 1.0}) + "\n" for r in rows())
    )
    creativity_command(samples=str(run), corpus="api:v4_stub", out=tmp_path / "out", api_rate=1e3,
                       bootstrap=20, api_url=stub.url, api_cache=tmp_path / "c.sqlite")  # fmt: skip
    summary = json.loads((tmp_path / "out" / "creativity_summary.json").read_text())
    assert (summary["corpus"], summary["api_url"], summary["match"]) == (
        "api:v4_stub",
        stub.url,
        "words",
    )
    with pytest.raises(UserError, match="--match tokens needs --corpus api:"):
        creativity_command(samples=str(run), corpus=str(tmp_path), out=tmp_path / "o2",
                           match="tokens")  # fmt: skip
