"""The generator interface every backend implements, and what they share.

A generator turns requests (a prompt, how many samples, a seed) into completions. The eval
backends (`hf`, `vllm`, `openai`, data-parallel workers) and the trainer's rollout engines share
these types: prompt token ids go in (`render_prompt` makes them once, with the model's own
tokenizer and chat template, so every backend sees identical ids, or the caller passes them in
`GenerationRequest.prompt_ids`); each `Completion` carries its token ids, text, finish reason and,
where a backend computes them, per-token log-probs.

Example:
    >>> sampling = SamplingConfig(temperature=0.6, top_p=0.95, max_new_tokens=256, seed=0)
    >>> request = GenerationRequest(prompt="What is 2 + 2?", n=16, seed=1234)
"""

from __future__ import annotations

from dataclasses import asdict, dataclass
from typing import Any, Protocol

from prorl_eval.errors import UserError


@dataclass(frozen=True)
class SamplingConfig:
    """Sampling parameters; the defaults are the ProRL paper's evaluation settings."""

    temperature: float = 0.6
    top_p: float = 0.95
    max_new_tokens: int = 1024
    seed: int = 0
    chat_template: bool = True
    system_prompt: str | None = None

    def validate(self) -> None:
        if self.temperature < 0:
            raise UserError(f"--temperature must be >= 0 (got {self.temperature}).")
        if not 0 < self.top_p <= 1:
            raise UserError(f"--top-p must be in (0, 1] (got {self.top_p}).")
        if self.max_new_tokens <= 0:
            raise UserError(f"--max-new-tokens must be positive (got {self.max_new_tokens}).")

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


@dataclass(frozen=True)
class GenerationRequest:
    """Generate `n` samples of one prompt (the task's user message) with their own seed.

    `prompt_ids`, when given, are the prompt's token ids exactly as the model is to see them; a
    backend then uses them instead of rendering `prompt` itself.
    """

    prompt: str
    n: int
    seed: int
    prompt_ids: tuple[int, ...] | None = None


@dataclass(frozen=True)
class Completion:
    """One sampled response: its text, its token count, why it stopped ("stop"/"length"), its
    prompt's token count, and (where the backend returns them) its token ids, which end with the
    stop token when one ended it, and their log-probs."""

    text: str
    num_tokens: int
    finish_reason: str
    prompt_tokens: int = 0
    token_ids: tuple[int, ...] = ()
    logprobs: tuple[float, ...] | None = None

    @property
    def truncated(self) -> bool:
        """True when the token budget ran out before a stop token."""
        return self.finish_reason == "length"


class Generator(Protocol):
    """What the eval runner and the trainer's rollouts need from a backend."""

    backend: str

    def generate(
        self, requests: list[GenerationRequest], sampling: SamplingConfig
    ) -> list[list[Completion]]:
        """Return, for each request, its `n` completions in order."""
        ...

    def close(self) -> None:
        """Release the model and any engine memory."""
        ...


def request_prompt_ids(
    tokenizer: Any, request: GenerationRequest, sampling: SamplingConfig
) -> list[int]:
    """The request's prompt token ids: the ones it carries, else `render_prompt`'s."""
    if request.prompt_ids is not None:
        return list(request.prompt_ids)
    return render_prompt(tokenizer, request.prompt, sampling)


def length_order(
    generator: Any, requests: list[GenerationRequest], sampling: SamplingConfig
) -> list[int] | None:
    """Indices of `requests` from the shortest prompt to the longest (ties in request order), for
    a backend that pads prompts to a batch's longest and so offers `prompt_lengths(requests,
    sampling)` (`hf`); None for the others (vLLM and servers schedule tokens, not padded rows)."""
    lengths_of = getattr(generator, "prompt_lengths", None)
    if lengths_of is None:
        return None
    lengths = lengths_of(requests, sampling)
    return sorted(range(len(requests)), key=lambda i: lengths[i])


def render_prompt(tokenizer: Any, prompt: str, sampling: SamplingConfig) -> list[int]:
    """Token ids fed to the model for one prompt.

    With `chat_template` on (the default) the prompt becomes a user message, preceded by the system
    prompt when one is given, and the tokenizer's chat template adds the assistant header. With it
    off the prompt text is tokenised as is (base models), the system prompt prepended as text.
    """
    if sampling.chat_template:
        if not getattr(tokenizer, "chat_template", None):
            raise UserError(
                "this model's tokenizer has no chat template; pass --no-chat-template to feed "
                "prompts as plain text."
            )
        messages = []
        if sampling.system_prompt:
            messages.append({"role": "system", "content": sampling.system_prompt})
        messages.append({"role": "user", "content": prompt})
        text = tokenizer.apply_chat_template(messages, add_generation_prompt=True, tokenize=False)
        return list(tokenizer(text, add_special_tokens=False)["input_ids"])
    text = f"{sampling.system_prompt}\n\n{prompt}" if sampling.system_prompt else prompt
    return list(tokenizer(text)["input_ids"])
