#!/usr/bin/env bash
# Wheels that let the GPU check's DeepSpeed section run on a bare GPU machine (one with torch and
# transformers but no DeepSpeed, and no package index).
#
#   benchmarks/gpu_check/wheels.sh [DEST]     # default DEST: .whl (about 3 MB)
#
# DeepSpeed is published as a source archive only; it is built here into a pure-Python wheel
# (its CUDA ops compile on first use, with the machine's nvcc). The others are the packages it
# needs that such a machine tends to lack, for CPython 3.12 on x86-64 Linux, at the versions
# pinned below (the ones prorl's CPU set resolves to). On the GPU machine:
#
#   python3 -m pip install -q --no-index --no-deps --target /tmp/site DEST/*.whl
#   PYTHONPATH=/tmp/site python3 benchmarks/gpu_check --out runs/gpu_check
set -euo pipefail

DEST=${1:-.whl}
PYTHON=${PYTHON:-.venv/bin/python}
if ! "$PYTHON" -c "import torch" 2>/dev/null; then
    echo "error: $PYTHON cannot import torch (DeepSpeed's build needs it); run scripts/setup.sh or set PYTHON." >&2
    exit 2
fi
mkdir -p "$DEST"
"$PYTHON" -m pip wheel -q --no-deps --no-build-isolation -w "$DEST" deepspeed==0.19.8
"$PYTHON" -m pip download -q --no-deps --only-binary=:all: --python-version 3.12 \
    --implementation cp --platform manylinux_2_17_x86_64 --platform manylinux2014_x86_64 \
    -d "$DEST" hjson==3.1.0 pydantic==2.14.4 pydantic-core==2.50.5 annotated-types==0.8.0 \
    typing-inspection==0.4.5
ls -1 "$DEST"
du -sh "$DEST"
