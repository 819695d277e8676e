"""The `openai` backend: a small local completions server for the client's behaviour (retries,
concurrency, ordering, errors, the CLI and resume), and a real vLLM OpenAI server for equivalence
with the in-process backends."""

from __future__ import annotations

import json
import os
import socket
import subprocess
import sys
import threading
import time
import urllib.request
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import pytest

from prorl_eval.errors import UserError
from prorl_eval.inference import GenerationRequest, SamplingConfig, render_prompt
from prorl_eval.inference.openai_server import CompletionsClient, OpenAIGenerator, run_bounded
from prorl_eval.inference.vllm import vllm_available
from prorl_eval.schema import read_samples


class FakeCompletionsServer:
    """`/v1/models` and `/v1/completions` on localhost, answering from the request itself.

    Choice `i` of a request is `f"len{len(prompt)}-seed{seed}-i{i}"` with `1 + (seed + i) % 4`
    token ids (at most `max_tokens`, then it stopped for length), so a test can tell exactly which
    request and sample each completion came from.
    `failures` is a list of HTTP statuses to answer before succeeding; `delay(body)` seconds are
    slept per request; the largest number of requests in flight at once is kept.
    """

    def __init__(self, models=("fake-model",), *, token_ids=True, api_key=None):
        self.models = list(models)
        self.token_ids = token_ids
        self.api_key = api_key
        self.failures: list[int] = []
        self.delay = lambda body: 0.0
        self.bodies: list[dict] = []
        self.in_flight = 0
        self.max_in_flight = 0
        self.lock = threading.Lock()
        self.httpd = ThreadingHTTPServer(("127.0.0.1", 0), self._handler())
        self.httpd.daemon_threads = True
        self.url = f"http://127.0.0.1:{self.httpd.server_port}/v1"
        threading.Thread(target=self.httpd.serve_forever, daemon=True).start()

    def close(self):
        self.httpd.shutdown()
        self.httpd.server_close()

    def answer(self, body: dict) -> dict:
        prompt, seed = body["prompt"], body.get("seed")
        choices = []
        for i in range(body.get("n", 1)):
            count = 1 + ((seed or 0) + i) % 4
            choice = {
                "index": i,
                "text": f"len{len(prompt)}-seed{seed}-i{i}",
                "finish_reason": "length" if count >= body["max_tokens"] else "stop",
            }
            count = min(count, body["max_tokens"])
            if self.token_ids:
                choice["token_ids"] = list(range(count))
            choices.append(choice)
        choices.reverse()  # clients must order by index, not by position
        return {"object": "text_completion", "model": body["model"], "choices": choices}

    def _handler(self):
        server = self

        class Handler(BaseHTTPRequestHandler):
            def log_message(self, *args):
                pass

            def _reply(self, status, payload, headers=()):
                data = json.dumps(payload).encode()
                self.send_response(status)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(data)))
                for key, value in headers:
                    self.send_header(key, value)
                self.end_headers()
                self.wfile.write(data)

            def _authorised(self):
                if server.api_key is None:
                    return True
                if self.headers.get("Authorization") == f"Bearer {server.api_key}":
                    return True
                self._reply(401, {"error": {"message": "invalid API key"}})
                return False

            def do_GET(self):
                if not self._authorised():
                    return
                if self.path != "/v1/models":
                    return self._reply(404, {"error": {"message": "not found"}})
                self._reply(200, {"data": [{"id": m, "object": "model"} for m in server.models]})

            def do_POST(self):
                if not self._authorised():
                    return
                body = json.loads(self.rfile.read(int(self.headers["Content-Length"])))
                with server.lock:
                    server.bodies.append(body)
                    status = server.failures.pop(0) if server.failures else 200
                    server.in_flight += 1
                    server.max_in_flight = max(server.max_in_flight, server.in_flight)
                time.sleep(server.delay(body))
                with server.lock:  # before replying: the client may send its next request at once
                    server.in_flight -= 1
                if status == 429:
                    wait = [("Retry-After", "0")]
                    self._reply(429, {"error": {"message": "slow down"}}, wait)
                elif status != 200:
                    self._reply(status, {"error": {"message": f"status {status}"}})
                elif body["model"] not in server.models:
                    self._reply(404, {"error": {"message": f"model {body['model']} unknown"}})
                else:
                    self._reply(200, server.answer(body))

        return Handler


@pytest.fixture
def server():
    fake = FakeCompletionsServer()
    yield fake
    fake.close()


@pytest.fixture(scope="module")
def tokenizer(tiny_model_dir):
    from transformers import AutoTokenizer

    return AutoTokenizer.from_pretrained(tiny_model_dir)


def make(server, tokenizer, **options):
    client = CompletionsClient(
        server.url, backoff_s=0.01, max_retries=options.pop("max_retries", 3), **options
    )
    return OpenAIGenerator("unused", base_url=server.url, client=client, tokenizer=tokenizer)


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


SAMPLED = SamplingConfig(temperature=0.7, top_p=0.9, max_new_tokens=3, system_prompt="Be brief.")


def test_token_id_prompts_n_seed_and_full_sampling_are_sent(server, tokenizer):
    gen = make(server, tokenizer)
    requests = [GenerationRequest("What is 2 + 2?", n=3, seed=11), GenerationRequest("Hi", 2, 5)]
    out = gen.generate(requests, SAMPLED)
    bodies = sorted(server.bodies, key=lambda b: b["seed"])
    for body, request in zip(bodies, sorted(requests, key=lambda r: r.seed), strict=True):
        assert body["prompt"] == render_prompt(tokenizer, request.prompt, SAMPLED)
        assert (body["n"], body["seed"], body["model"]) == (request.n, request.seed, "fake-model")
        assert (body["temperature"], body["top_p"], body["max_tokens"]) == (0.7, 0.9, 3)
        assert (body["top_k"], body["min_p"], body["repetition_penalty"]) == (-1, 0.0, 1.0)
    # Completions are this request's, in index order, with counts from the returned token ids.
    first = render_prompt(tokenizer, "What is 2 + 2?", SAMPLED)
    assert [c.text for c in out[0]] == [f"len{len(first)}-seed11-i{i}" for i in range(3)]
    assert [c.num_tokens for c in out[0]] == [3, 1, 2]  # 4 tokens capped at max_new_tokens, 1, 2
    assert [c.finish_reason for c in out[0]] == ["length", "stop", "stop"]
    assert {c.prompt_tokens for c in out[0]} == {len(first)}
    assert [len(c) for c in out] == [3, 2]


def test_greedy_asks_for_one_sample_and_repeats_it(server, tokenizer):
    out = make(server, tokenizer).generate(
        [GenerationRequest("Hi", n=4, seed=2)], SamplingConfig(temperature=0.0, max_new_tokens=8)
    )
    assert server.bodies[0]["n"] == 1 and server.bodies[0]["top_p"] == 1.0
    assert len(out[0]) == 4 and len({c.text for c in out[0]}) == 1


def test_many_requests_stay_in_order_within_the_concurrency_bound(server, tokenizer):
    # Later requests answer sooner, so completion order differs from request order.
    server.delay = lambda body: 0.02 * (20 - body["seed"])
    gen = OpenAIGenerator("unused", base_url=server.url, concurrency=4, tokenizer=tokenizer)
    requests = [GenerationRequest(f"question {i}", n=1, seed=i) for i in range(16)]
    out = gen.generate(requests, SAMPLED)
    assert [c[0].text.split("-")[1] for c in out] == [f"seed{i}" for i in range(16)]
    assert server.max_in_flight == 4


def test_an_error_returns_at_once_and_starts_no_new_request():
    started, finished = [], []
    release = threading.Event()

    def job(i):
        started.append(i)
        if i == 1:
            raise UserError("boom")
        release.wait(60 if i == 0 else 0)
        finished.append(i)
        return i

    with pytest.raises(UserError, match="boom"):
        run_bounded([lambda i=i: job(i) for i in range(10)], 2)
    assert finished == []  # not held up by request 0, which is still running
    release.set()
    assert sorted(started) == [0, 1]
    assert run_bounded([lambda i=i: i * i for i in range(7)], 3) == [i * i for i in range(7)]


def test_503_and_429_are_retried(server, tokenizer):
    server.failures = [503, 429, 502]
    out = make(server, tokenizer).generate([GenerationRequest("Hi", n=2, seed=1)], SAMPLED)
    assert len(server.bodies) == 4  # three refusals, then the answer
    assert [c.text.endswith(f"i{i}") for i, c in enumerate(out[0])] == [True, True]


def test_a_server_that_keeps_failing_is_a_one_line_user_error(server, tokenizer):
    server.failures = [503] * 10
    gen = make(server, tokenizer, max_retries=2)
    with pytest.raises(UserError, match=r"failed 3 times \(HTTP 503: status 503\)") as info:
        gen.generate([GenerationRequest("Hi", n=1, seed=1)], SAMPLED)
    assert "\n" not in str(info.value)
    assert len(server.bodies) == 3


def test_a_refused_request_is_not_retried(server, tokenizer):
    server.failures = [400]
    with pytest.raises(UserError, match=r"HTTP 400 \(status 400\)"):
        make(server, tokenizer).generate([GenerationRequest("Hi", n=1, seed=1)], SAMPLED)
    assert len(server.bodies) == 1


def test_connection_refused_names_the_url(tokenizer):
    url = f"http://127.0.0.1:{free_port()}/v1"
    client = CompletionsClient(url, backoff_s=0.01, max_retries=1)
    with pytest.raises(UserError, match=rf"the server at {url} failed 2 times .*refused"):
        OpenAIGenerator("unused", base_url=url, client=client, tokenizer=tokenizer)


def test_the_served_model_must_be_listed(tokenizer):
    fake = FakeCompletionsServer(models=("a", "b"))
    try:
        with pytest.raises(UserError, match="serves a, b, not 'c'; pass one of those"):
            OpenAIGenerator("unused", base_url=fake.url, served_model="c", tokenizer=tokenizer)
        with pytest.raises(UserError, match="lists a, b; name the one to use with --served-model"):
            OpenAIGenerator("unused", base_url=fake.url, tokenizer=tokenizer)
        gen = OpenAIGenerator("unused", base_url=fake.url, served_model="b", tokenizer=tokenizer)
        gen.generate([GenerationRequest("Hi", n=1, seed=0)], SAMPLED)
        assert fake.bodies[0]["model"] == "b"
    finally:
        fake.close()


def test_api_key_from_the_environment_or_the_option(tokenizer, monkeypatch):
    fake = FakeCompletionsServer(api_key="sesame")
    try:
        monkeypatch.delenv("OPENAI_API_KEY", raising=False)
        with pytest.raises(UserError, match=r"HTTP 401 .*--api-key or OPENAI_API_KEY"):
            OpenAIGenerator("unused", base_url=fake.url, tokenizer=tokenizer)
        OpenAIGenerator("unused", base_url=fake.url, api_key="sesame", tokenizer=tokenizer)
        monkeypatch.setenv("OPENAI_API_KEY", "sesame")
        OpenAIGenerator("unused", base_url=fake.url, tokenizer=tokenizer)
    finally:
        fake.close()


def test_without_token_ids_the_text_is_retokenised(tokenizer):
    fake = FakeCompletionsServer(token_ids=False)
    try:
        gen = OpenAIGenerator("unused", base_url=fake.url, tokenizer=tokenizer)
        out = gen.generate([GenerationRequest("Hi", n=2, seed=0)], SAMPLED)
        for c in out[0]:
            assert c.finish_reason == "stop"  # the server said so without token ids
            assert c.num_tokens == len(tokenizer(c.text, add_special_tokens=False).input_ids) + 1
    finally:
        fake.close()


def test_bad_base_url_is_refused_before_any_request(tokenizer):
    with pytest.raises(UserError, match="--base-url must start with http"):
        OpenAIGenerator("unused", base_url="localhost:8000/v1", tokenizer=tokenizer)


# ---- the CLI against the local server: a run folder, then a resume served from elsewhere ----


def run_cli(*args: str) -> subprocess.CompletedProcess:
    env = {**os.environ, "PYTHONUNBUFFERED": "1"}
    return subprocess.run(
        [sys.executable, "-m", "prorl_eval.cli", "pass-at-k", *args],
        capture_output=True,
        text=True,
        timeout=300,
        env=env,
    )


@pytest.mark.slow
def test_cli_writes_a_run_folder_and_resumes_from_another_url(tmp_path, tiny_model_dir):
    first, second = FakeCompletionsServer(), FakeCompletionsServer(models=("fake-model", "other"))
    out = tmp_path / "run"
    common = ["--backend", "openai", "--model", str(tiny_model_dir), "--out", str(out)]
    common += ["--tasks", "gym:basic_arithmetic", "--limit", "3", "--score-workers", "0"]
    try:
        result = run_cli(*common, "--base-url", first.url, "--n", "2", "--k", "1,2")
        assert result.returncode == 0, result.stderr
        rows = read_samples(out / "samples.jsonl")
        assert len(rows) == 3 * 2 and {r["backend"] for r in rows} == {"openai"}
        assert all(r["response"].startswith("len") and r["num_tokens"] >= 1 for r in rows)
        manifest = json.loads((out / "run.json").read_text())
        assert manifest["model"]["served_model"] == "fake-model"
        assert manifest["generation"] == [{"backend": "openai", "base_url": first.url}]
        assert len(first.bodies) == 3 and {b["n"] for b in first.bodies} == {2}

        # The same model served at another URL resumes the folder and adds only new samples.
        result = run_cli(
            *common, "--base-url", second.url, "--served-model", "fake-model", "--n", "4"
        )
        assert result.returncode == 0, result.stderr
        assert len(read_samples(out / "samples.jsonl")) == 3 * 4
        assert len(second.bodies) == 3 and {b["n"] for b in second.bodies} == {2}
        manifest = json.loads((out / "run.json").read_text())
        assert [g["base_url"] for g in manifest["generation"]] == [first.url, second.url]
        results = json.loads((out / "results.json").read_text())
        assert results["backend"] == "openai" and results["n"] == 4

        # Another served model is another model: refused, folder untouched.
        before = (out / "samples.jsonl").read_bytes()
        result = run_cli(*common, "--base-url", second.url, "--served-model", "other", "--n", "4")
        assert result.returncode == 2
        assert "different model settings (served_model='fake-model' there, 'other' now)" in (
            " ".join(result.stderr.split())
        )
        assert (out / "samples.jsonl").read_bytes() == before
        assert "Traceback" not in result.stderr
    finally:
        first.close()
        second.close()


# ---- a real vLLM OpenAI server on the CPU ----


@pytest.fixture(scope="module")
def vllm_server(embedded_model_path, tmp_path_factory):
    """`vllm serve`'s API server for the embedded model, started once for this module."""
    port = free_port()
    log = tmp_path_factory.mktemp("vllm-server") / "server.log"
    env = {**os.environ, "VLLM_CPU_KVCACHE_SPACE": "1", "VLLM_LOGGING_LEVEL": "WARNING"}
    command = [sys.executable, "-m", "vllm.entrypoints.openai.api_server"]
    command += ["--model", str(embedded_model_path), "--served-model-name", "smol"]
    command += ["--host", "127.0.0.1", "--port", str(port), "--dtype", "float32"]
    command += ["--enforce-eager", "--max-model-len", "1024", "--no-enable-chunked-prefill"]
    with log.open("w") as sink:
        process = subprocess.Popen(command, stdout=sink, stderr=subprocess.STDOUT, env=env)
    url = f"http://127.0.0.1:{port}/v1"
    deadline = time.time() + 300
    try:
        while True:
            if process.poll() is not None:
                pytest.fail(f"the vLLM server exited: {log.read_text()[-2000:]}")
            try:
                urllib.request.urlopen(f"{url}/models", timeout=2).read()
                break
            except OSError:
                if time.time() > deadline:
                    pytest.fail(f"the vLLM server did not start: {log.read_text()[-2000:]}")
                time.sleep(1)
        yield url
    finally:
        process.terminate()
        try:
            process.wait(timeout=30)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()


REAL_REQUESTS = [
    GenerationRequest("What is the capital of France?", n=2, seed=3),
    GenerationRequest("Say hello in one word.", n=1, seed=4),
    GenerationRequest("What is 12 + 30? Answer with a number.", n=1, seed=5),
    GenerationRequest("Write a long story about a dragon and a knight.", n=1, seed=6),
]

needs_vllm = pytest.mark.skipif(not vllm_available(), reason="vLLM is not installed")


@pytest.mark.slow
@pytest.mark.vllm
@needs_vllm
def test_real_server_greedy_equals_the_hf_backend(vllm_server, embedded_model_path):
    from prorl_eval.inference.hf import HFGenerator

    sampling = SamplingConfig(temperature=0.0, max_new_tokens=40)
    served = OpenAIGenerator(str(embedded_model_path), base_url=vllm_server, concurrency=2)
    assert served.served_model == "smol"
    via_server = served.generate(REAL_REQUESTS, sampling)
    via_hf = HFGenerator(str(embedded_model_path)).generate(REAL_REQUESTS, sampling)
    assert via_server == via_hf
    assert "Paris" in via_server[0][0].text
    assert {c.finish_reason for cs in via_server for c in cs} == {"stop", "length"}


@pytest.mark.slow
@pytest.mark.vllm
@needs_vllm
def test_real_server_seeded_samples_equal_the_in_process_vllm_engine(
    vllm_server, embedded_model_path
):
    from prorl_eval.inference.vllm import VLLMGenerator

    sampling = SamplingConfig(temperature=1.0, top_p=0.95, max_new_tokens=24)
    served = OpenAIGenerator(str(embedded_model_path), base_url=vllm_server, concurrency=3)
    via_server = served.generate(REAL_REQUESTS, sampling)
    assert via_server == served.generate(REAL_REQUESTS, sampling)  # seeded: reproducible
    assert len({c.text for c in via_server[0]}) == 2
    engine = VLLMGenerator(str(embedded_model_path), max_model_len=1024)
    try:
        assert engine.generate(REAL_REQUESTS, sampling) == via_server
    finally:
        engine.close()
