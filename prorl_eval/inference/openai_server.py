"""`openai` backend: generate through an OpenAI-compatible `/v1/completions` server.

This spreads an eval over machines: start `vllm serve` (or SGLang) wherever the GPUs are, and point
`prorl-eval pass-at-k --backend openai --base-url http://host:8000/v1` at it. Prompts are rendered
here, with the local tokenizer of `--model` and the shared `render_prompt`, and sent as token ids
(`prompt` as a list of ints), so the server sees exactly the ids the in-process backends would.

Each request is one prompt with `n` samples and its own `seed`; up to `concurrency` requests are in
flight at once (daemon threads; the server batches them continuously). Sampling is sent in full
(`top_k=-1`, `min_p=0`, `repetition_penalty=1`) because vLLM's server otherwise fills unspecified
fields from the model's `generation_config.json`, which the in-process backends do not. Response
token counts come from vLLM's per-choice `token_ids` (`return_token_ids`); a server that does not
return them gets the text re-tokenised, plus one for the end-of-sequence token when it stopped.

Connection errors, 429 and 5xx are retried with exponential backoff (honouring `Retry-After`);
anything else, or a server still failing after the retries, is a one-line `UserError`.

The HTTP client is the standard library's (`urllib`) on purpose: it needs no dependency beyond
prorl's own (the `openai` package only arrives with vLLM, and its typed responses hide vLLM's
per-choice `token_ids`), and one connection per long generation request costs nothing measurable.
"""

from __future__ import annotations

import functools
import json
import os
import random
import threading
import time
import urllib.error
import urllib.request
from collections.abc import Callable
from typing import Any, TypeVar

from prorl_eval.errors import UserError
from prorl_eval.inference.base import Completion, GenerationRequest, SamplingConfig, render_prompt

T = TypeVar("T")
RETRY_STATUSES = frozenset({408, 429, 500, 502, 503, 504})
DEFAULT_CONCURRENCY = 64


class _Retryable(Exception):
    """A failure worth another try (connection trouble, 429, 5xx)."""

    def __init__(self, message: str, retry_after: float | None = None) -> None:
        super().__init__(message)
        self.retry_after = retry_after


class CompletionsClient:
    """JSON over HTTP to one OpenAI-compatible server, with retries; thread-safe."""

    def __init__(
        self,
        base_url: str,
        *,
        api_key: str | None = None,
        timeout: float = 3600.0,
        max_retries: int = 6,
        backoff_s: float = 1.0,
        max_backoff_s: float = 30.0,
    ) -> None:
        if not base_url.startswith(("http://", "https://")):
            raise UserError(
                f"--base-url must start with http:// or https:// (got {base_url!r}), e.g. "
                "http://localhost:8000/v1."
            )
        self.base_url = base_url.rstrip("/")
        self.api_key = api_key if api_key is not None else os.environ.get("OPENAI_API_KEY")
        self.timeout = timeout
        self.max_retries = max_retries
        self.backoff_s = backoff_s
        self.max_backoff_s = max_backoff_s

    def get(self, path: str) -> Any:
        return self._call("GET", path, None)

    def post(self, path: str, payload: dict[str, Any]) -> Any:
        return self._call("POST", path, payload)

    def _call(self, method: str, path: str, payload: dict[str, Any] | None) -> Any:
        url = f"{self.base_url}{path}"
        for attempt in range(self.max_retries + 1):
            try:
                return self._once(method, url, payload)
            except _Retryable as exc:
                if attempt == self.max_retries:
                    raise UserError(
                        f"the server at {self.base_url} failed {attempt + 1} times ({exc}); check "
                        "that it is running and reachable (vllm serve ...), or fix --base-url; "
                        "rows written so far are kept, re-run to resume."
                    ) from None
                delay = min(self.max_backoff_s, self.backoff_s * 2**attempt)
                if exc.retry_after is not None:
                    delay = min(self.max_backoff_s, max(delay, exc.retry_after))
                time.sleep(delay * random.uniform(0.8, 1.0))
        raise AssertionError("unreachable")

    def _once(self, method: str, url: str, payload: dict[str, Any] | None) -> Any:
        data = None if payload is None else json.dumps(payload).encode()
        request = urllib.request.Request(url, data=data, method=method)
        request.add_header("Content-Type", "application/json")
        if self.api_key:
            request.add_header("Authorization", f"Bearer {self.api_key}")
        try:
            with urllib.request.urlopen(request, timeout=self.timeout) as response:
                return json.loads(response.read())
        except urllib.error.HTTPError as exc:
            detail = _error_detail(exc)
            if exc.code in RETRY_STATUSES:
                raise _Retryable(f"HTTP {exc.code}: {detail}", _retry_after(exc)) from None
            hint = {
                401: "pass the server's key with --api-key or OPENAI_API_KEY",
                403: "pass the server's key with --api-key or OPENAI_API_KEY",
                404: "check --base-url (it usually ends in /v1) and --served-model",
            }.get(exc.code, "check the request settings")
            raise UserError(
                f"the server at {self.base_url} refused {method} {url.removeprefix(self.base_url)}"
                f" with HTTP {exc.code} ({detail}); {hint}."
            ) from None
        except (urllib.error.URLError, ConnectionError, TimeoutError, OSError) as exc:
            reason = getattr(exc, "reason", exc)
            raise _Retryable(f"{type(exc).__name__}: {reason}") from None
        except json.JSONDecodeError:
            raise _Retryable("the response was not JSON") from None


def _error_detail(exc: urllib.error.HTTPError) -> str:
    try:
        body = json.loads(exc.read())
        message = body.get("error", body)
        message = message.get("message", message) if isinstance(message, dict) else message
    except (ValueError, AttributeError, OSError):
        message = exc.reason
    return " ".join(str(message).split())[:300]


def _retry_after(exc: urllib.error.HTTPError) -> float | None:
    value = exc.headers.get("Retry-After") if exc.headers else None
    try:
        return float(value) if value is not None else None
    except ValueError:
        return None


def resolve_served_model(client: CompletionsClient, requested: str | None) -> str:
    """The served model name to use: `requested` if the server lists it, else its only model."""
    listing = client.get("/models")
    served = [str(m.get("id")) for m in listing.get("data", []) if isinstance(m, dict)]
    if requested is not None:
        if served and requested not in served:
            raise UserError(
                f"the server at {client.base_url} serves {', '.join(served)}, not "
                f"'{requested}'; pass one of those to --served-model."
            )
        return requested
    if len(served) != 1:
        listed = ", ".join(served) if served else "no models"
        raise UserError(
            f"the server at {client.base_url} lists {listed}; name the one to use with "
            "--served-model."
        )
    return served[0]


class OpenAIGenerator:
    """Generate by sending token-id prompts to an OpenAI-compatible completions endpoint."""

    backend = "openai"

    def __init__(
        self,
        model_path: str,
        *,
        base_url: str,
        served_model: str | None = None,
        api_key: str | None = None,
        concurrency: int = DEFAULT_CONCURRENCY,
        revision: str | None = None,
        tokenizer: Any = None,
        client: CompletionsClient | None = None,
    ) -> None:
        if concurrency < 1:
            raise UserError(f"--concurrency must be at least 1 (got {concurrency}).")
        self.client = client or CompletionsClient(base_url, api_key=api_key)
        self.served_model = resolve_served_model(self.client, served_model)
        if tokenizer is None:
            from transformers import AutoTokenizer

            tokenizer = AutoTokenizer.from_pretrained(model_path, revision=revision)
        self.tokenizer = tokenizer
        self.concurrency = concurrency
        self._closed = False

    def generate(
        self, requests: list[GenerationRequest], sampling: SamplingConfig
    ) -> list[list[Completion]]:
        if self._closed:
            raise RuntimeError("this generator is closed")
        prompts = [render_prompt(self.tokenizer, r.prompt, sampling) for r in requests]
        jobs = [
            functools.partial(self._complete, ids, r, sampling)
            for ids, r in zip(prompts, requests, strict=True)
        ]
        return run_bounded(jobs, self.concurrency)

    def payload(
        self, prompt_ids: list[int], request: GenerationRequest, sampling: SamplingConfig
    ) -> dict[str, Any]:
        """The request body: the full sampling settings, so server-side defaults never apply."""
        greedy = sampling.temperature == 0
        return {
            "model": self.served_model,
            "prompt": prompt_ids,
            "n": 1 if greedy else request.n,  # greedy samples are identical; vLLM wants n=1
            "seed": request.seed,
            "max_tokens": sampling.max_new_tokens,
            "temperature": sampling.temperature,
            "top_p": 1.0 if greedy else sampling.top_p,
            "top_k": -1,
            "min_p": 0.0,
            "repetition_penalty": 1.0,
            "skip_special_tokens": True,
            "return_token_ids": True,
        }

    def _complete(
        self, prompt_ids: list[int], request: GenerationRequest, sampling: SamplingConfig
    ) -> list[Completion]:
        body = self.client.post("/completions", self.payload(prompt_ids, request, sampling))
        choices = sorted(body.get("choices", []), key=lambda c: c.get("index", 0))
        if sampling.temperature == 0:
            choices = choices[:1] * request.n
        if len(choices) != request.n:
            raise UserError(
                f"the server at {self.client.base_url} returned {len(choices)} completions for a "
                f"request with n={request.n}; it must support the n parameter of /v1/completions."
            )
        return [self._completion(choice, len(prompt_ids)) for choice in choices]

    def _completion(self, choice: dict[str, Any], prompt_tokens: int) -> Completion:
        text = choice.get("text") or ""
        finish = "length" if choice.get("finish_reason") == "length" else "stop"
        token_ids = choice.get("token_ids")
        if token_ids is not None:
            num_tokens = len(token_ids)
        else:
            num_tokens = len(self.tokenizer(text, add_special_tokens=False)["input_ids"])
            num_tokens += finish == "stop"
        return Completion(text, num_tokens, finish, prompt_tokens, tuple(token_ids or ()))

    def close(self) -> None:
        self._closed = True


def run_bounded(jobs: list[Callable[[], T]], concurrency: int) -> list[T]:
    """Run `jobs` on at most `concurrency` threads; results in job order; the first error raises.

    The threads are daemons and the wait is interruptible, so Ctrl-C (or an error) returns at once
    instead of waiting for requests still running on the server; no new job starts after an error.
    """
    results: list[Any] = [None] * len(jobs)
    errors: list[BaseException] = []
    order = iter(range(len(jobs)))
    lock = threading.Lock()
    finished = threading.Event()
    left = [len(jobs)]

    def work() -> None:
        while not errors:
            with lock:
                index = next(order, None)
            if index is None:
                return
            try:
                results[index] = jobs[index]()
            except BaseException as exc:
                errors.append(exc)
                finished.set()
                return
            with lock:
                left[0] -= 1
                if left[0] == 0:
                    finished.set()

    if not jobs:
        return []
    for number in range(min(concurrency, len(jobs))):
        threading.Thread(target=work, name=f"completions-{number}", daemon=True).start()
    while not finished.wait(0.5):
        pass
    if errors:
        raise errors[0]
    return results
