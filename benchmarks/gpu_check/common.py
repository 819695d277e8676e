"""What the sections share: their options, the model shapes, the FLOP count and MFU, timing."""

from __future__ import annotations

import dataclasses
import statistics
import time
from collections.abc import Callable
from typing import Any


class Skip(Exception):
    """Raised by a section that cannot run here; the message says why and how to enable it."""


@dataclasses.dataclass(frozen=True)
class Options:
    """The command-line settings every section sees."""

    dry_run: bool = False
    model: str | None = None  # an HF folder or prorl alias for the sections that need a tokenizer
    peak_tflops: float | None = None  # overrides the table in `peak_flops`
    work_dir: str = "."

    @property
    def device(self) -> str:
        """cuda on a GPU machine; cpu for a dry run (and a dry run only)."""
        return "cpu" if self.dry_run else "cuda"


# Qwen2-1.5B's architecture (its config.json): the 1.5B shape the figures are for.
QWEN2_1P5B: dict[str, Any] = {
    "hidden_size": 1536,
    "num_hidden_layers": 28,
    "num_attention_heads": 12,
    "num_key_value_heads": 2,
    "intermediate_size": 8960,
    "vocab_size": 151936,
    "max_position_embeddings": 32768,
    "tie_word_embeddings": True,
    "rope_theta": 1000000.0,
}

# The same architecture, small enough for a CPU dry run in seconds.
TINY: dict[str, Any] = {
    "hidden_size": 64,
    "num_hidden_layers": 2,
    "num_attention_heads": 4,
    "num_key_value_heads": 2,
    "intermediate_size": 128,
    "vocab_size": 512,
    "max_position_embeddings": 512,
    "tie_word_embeddings": True,
}


def shape(opts: Options) -> tuple[str, dict[str, Any]]:
    """(name, config fields) of the model the synthetic sections build."""
    return ("tiny (dry run)", TINY) if opts.dry_run else ("Qwen2-1.5B-shaped", QWEN2_1P5B)


def random_qwen2(
    fields: dict[str, Any], dtype: Any, device: str, seed: int = 0, attention: str = "sdpa"
) -> Any:
    """A randomly initialised Qwen2 causal LM of the given shape (no download, no tokenizer).

    Token ids 0 and 1 serve as pad and bos; there is no eos, so generation runs to its budget."""
    import torch
    from transformers import Qwen2Config, Qwen2ForCausalLM

    config = Qwen2Config(
        **fields, pad_token_id=0, bos_token_id=1, eos_token_id=None, attn_implementation=attention
    )
    torch.manual_seed(seed)
    with torch.device(device):
        model = Qwen2ForCausalLM(config)
    return model.to(dtype)


def matrix_params(model: Any) -> int:
    """Weights of the matrix products: every 2-D parameter but the input embedding (its
    lookups do no multiply-adds; biases and norm scales are not counted, by convention)."""
    embedding = model.get_input_embeddings().weight
    return sum(p.numel() for p in model.parameters() if p.dim() == 2 and p is not embedding)


def train_step_flops(model: Any, rows: int, seq_len: int, head_positions: int) -> float:
    """Training FLOPs (forward + backward) of `rows` sequences of `seq_len` tokens whose output
    head runs on the last `head_positions` of each, by the PaLM paper's count (appendix B): 6 per
    matrix weight a token meets (2 forward, 4 backward; the head's V x d even when tied to the
    input embedding) plus 12 * layers * hidden * seq_len per token for attention's two products.
    `tests/test_gpu_check.py` checks it against torch's FlopCounterMode."""
    config = model.config
    head = config.vocab_size * config.hidden_size
    layers = matrix_params(model)
    if not config.tie_word_embeddings:
        layers -= head  # the untied head is counted with the head positions
    attention = 12 * config.num_hidden_layers * config.hidden_size * seq_len
    return rows * (seq_len * (6.0 * layers + attention) + head_positions * 6.0 * head)


# Dense bf16 tensor-core peaks from NVIDIA's data sheets (TFLOP/s, without sparsity). The first
# name fragment found in the device's name wins, so the more specific names come first.
PEAK_BF16_TFLOPS: tuple[tuple[str, float], ...] = (
    ("H100 PCIe", 756.0),
    ("H100 NVL", 835.0),
    ("H100", 989.0),
    ("H200", 989.0),
    ("H800", 989.0),
    ("GH200", 989.0),
    ("B200", 2250.0),
    ("A100", 312.0),
    ("A800", 312.0),
    ("L40S", 362.0),
)


def peak_flops(device_name: str, override_tflops: float | None = None) -> float | None:
    """The device's dense bf16 peak in FLOP/s, or None when the table does not know it."""
    if override_tflops is not None:
        return override_tflops * 1e12
    for fragment, tflops in PEAK_BF16_TFLOPS:
        if fragment.lower() in device_name.lower():
            return tflops * 1e12
    return None


def mfu(flops: float, seconds: float, peak: float | None) -> float | None:
    """Model FLOPs utilisation: the model FLOPs done per second over the device's peak."""
    return None if not peak else flops / seconds / peak


def device_name(device: str) -> str:
    import torch

    if device.startswith("cuda"):
        return torch.cuda.get_device_name(0)
    import platform

    return f"CPU ({platform.machine()})"


def synchronize(device: str) -> None:
    import torch

    if device.startswith("cuda"):
        torch.cuda.synchronize()


def timed(fn: Callable[[], Any], device: str, repeats: int, warmup: int) -> list[float]:
    """Wall seconds of `repeats` calls of `fn` after `warmup` untimed ones (device synced)."""
    for _ in range(warmup):
        fn()
    synchronize(device)
    seconds = []
    for _ in range(repeats):
        start = time.perf_counter()
        fn()
        synchronize(device)
        seconds.append(time.perf_counter() - start)
    return seconds


def median(values: list[float]) -> float:
    return float(statistics.median(values))


def peak_memory_gib(device: str) -> float | None:
    import torch

    if not device.startswith("cuda"):
        return None
    return torch.cuda.max_memory_allocated() / 2**30


def require(*modules: str) -> None:
    """Skip unless every module imports; names the first missing one."""
    import importlib.util

    for name in modules:
        if importlib.util.find_spec(name) is None:
            raise Skip(f"needs the package '{name}', which is not installed here")
