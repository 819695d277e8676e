#!/usr/bin/env bash
# Check that prorl works on the GPU dependency set (constraints-gpu.txt) without a GPU.
#
#   resolve  pip resolves prorl[dev,deepspeed,wandb,vllm] under constraints-gpu.txt, and the
#            pinned packages come out at exactly the pinned versions. Reads package metadata
#            only (about a minute); CI runs this step.
#   cpu      builds an environment with the set's torch and transformers and DeepSpeed, prorl and
#            its test tools, and runs the test suite on the CPU (tests that need vLLM skip: its
#            GPU build does not run without a GPU). Downloads PyPI's torch (a CUDA build, several
#            GB) once; about ten minutes on 2 cores.
#
#   scripts/check_gpu_set.sh                            # both steps
#   PRORL_CHECK_STEPS=resolve scripts/check_gpu_set.sh  # one step
#   PRORL_CHECK_VENV=/tmp/gpuset PRORL_CHECK_PYTEST="-m 'not slow' -x" scripts/check_gpu_set.sh
set -euo pipefail
cd "$(dirname "$0")/.."
source scripts/install_nodeps.sh

PYTHON=${PYTHON:-python3}
STEPS=${PRORL_CHECK_STEPS:-resolve,cpu}
VENV=${PRORL_CHECK_VENV:-.venv-gpuset}
PYTEST_ARGS=${PRORL_CHECK_PYTEST:-"-m 'not slow'"}
SET=constraints-gpu.txt
for step in ${STEPS//,/ }; do
  case "$step" in resolve|cpu) ;; *)
    echo "error: unknown step '$step' in PRORL_CHECK_STEPS (use resolve, cpu or both)" >&2; exit 2 ;;
  esac
done

check_resolve() {
  local tmp; tmp="$(mktemp -d)"
  trap 'rm -rf "$tmp"' RETURN
  "$PYTHON" -m venv "$tmp/venv"
  "$tmp/venv/bin/python" -m pip --disable-pip-version-check -q install -U pip
  echo "resolve: prorl[dev,deepspeed,wandb,vllm] under $SET ..." >&2
  "$tmp/venv/bin/python" -m pip --disable-pip-version-check -q install --dry-run \
    --ignore-installed --report "$tmp/report.json" -c "$SET" ".[dev,deepspeed,wandb,vllm]"
  "$PYTHON" - "$tmp/report.json" "$SET" <<'PY'
import json, re, sys

report, pins_file = sys.argv[1:]
resolved = {
    re.sub(r"[-_.]+", "-", item["metadata"]["name"]).lower(): item["metadata"]["version"]
    for item in json.load(open(report))["install"]
}
pins = dict(
    line.split("==") for line in open(pins_file).read().splitlines()
    if line and not line.startswith("#")
)
wrong = {name: (want, resolved.get(name)) for name, want in pins.items() if resolved.get(name) != want}
if wrong:
    for name, (want, got) in wrong.items():
        print(f"resolve: {name} resolved to {got}, but {pins_file} pins {want}", file=sys.stderr)
    sys.exit(1)
shown = ", ".join(f"{n} {resolved[n]}" for n in [*pins, "triton", "flashinfer-python"] if n in resolved)
print(f"resolve: ok, {len(resolved)} packages: {shown}")
PY
}

check_cpu() {
  echo "cpu: building $VENV with the set's torch, transformers and DeepSpeed ..." >&2
  [ -x "$VENV/bin/python" ] || "$PYTHON" -m venv "$VENV"
  local pip=("$VENV/bin/python" -m pip --disable-pip-version-check -q)
  "${pip[@]}" install "$(grep '^torch==' "$SET")"
  "${pip[@]}" install -c "$SET" -e ".[dev,deepspeed,wandb]"
  install_nodeps "$VENV/bin/python"
  "$VENV/bin/python" -c "import torch, transformers, deepspeed; print(f'cpu: torch {torch.__version__}, transformers {transformers.__version__}, deepspeed {deepspeed.__version__}')"
  eval "\"$VENV/bin/python\" -m pytest -q -p no:cacheprovider $PYTEST_ARGS"
}

for step in ${STEPS//,/ }; do "check_$step"; done
