#!/usr/bin/env bash
# ProRL in miniature, on CPU: train the embedded SmolLM2-135M-Instruct with the ProRL recipe
# (preset prorl-mini), evaluate the base model and the milestone checkpoints on held-out problems
# (prorl-eval sweep), and write the boundary report (prorl-eval report). Every stage resumes:
# run it again after an interruption and it continues where it stopped.
#
#   scripts/reproduce_miniature.sh                 # runs/prorl-mini/{train,eval}, reports/prorl-mini
#   OUT=runs/x REPORT=reports/x scripts/reproduce_miniature.sh
#
# 22 to 37 minutes on 2 CPU cores (plus 3.5 for a first setup): 11-19 for training, 10-16 for the
# evaluations, a minute for the report. What the reference run showed is in docs/miniature.md.
set -euo pipefail
cd "$(dirname "$0")/.."
OUT=${OUT:-runs/prorl-mini}
REPORT=${REPORT:-reports/prorl-mini}
N=${N:-32}
LIMIT=${LIMIT:-16}

scripts/setup.sh
started=$(date +%s)
resume=()
[ -f "$OUT/train/config.yaml" ] && resume=(--resume)
.venv/bin/prorl-train --preset prorl-mini --out "$OUT/train" "${resume[@]}"
trained=$(date +%s)

tasks=$(.venv/bin/python -c \
  "from prorl_train.presets import miniature_tasks; print(','.join(miniature_tasks('eval')))")
.venv/bin/prorl-eval sweep "$OUT/train" --out "$OUT/eval" --tasks "$tasks" \
  --limit "$LIMIT" --n "$N" --max-new-tokens 24 --backend hf --batch-size 64
evaluated=$(date +%s)

.venv/bin/prorl-eval report "$OUT/eval" --out "$REPORT"
echo "training $(( (trained - started) / 60 )) min, evaluation $(( (evaluated - trained) / 60 )) min," \
  "report in $REPORT/report.md" >&2
