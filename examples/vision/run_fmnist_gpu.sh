#!/usr/bin/env bash
# Train DM-small on full Fashion-MNIST at eps 0.1 three ways (CROWN-IBP, IBP, normal) at once on
# one GPU, then evaluate each on the 10,000 test images (clean, PGD-20, IBP, CROWN-IBP) and the
# CROWN-IBP model also with PGD-200 and 5 restarts.
# Usage: examples/vision/run_fmnist_gpu.sh [DATA_DIR] [OUT_DIR]
set -euo pipefail
DATA=${1:-fashion-mnist}
OUT=${2:-runs/vision/gpu}
PY=${PYTHON:-python3}
export PYTHONUNBUFFERED=1
mkdir -p "$OUT"
for method in crown-ibp ibp natural; do
  $PY -m robusttext.cli vision train --config "examples/vision/configs/fmnist_${method}_gpu.json" \
    --data "$DATA" --out "$OUT/$method" --quiet > "$OUT/train-$method.log" 2>&1 &
done
wait
for method in crown-ibp ibp natural; do
  $PY -m robusttext.cli vision certify --model "$OUT/$method" --data "$DATA" --eps 0.1 \
    --quiet --json "$OUT/$method/certify-pgd20.json" > /dev/null
done
$PY -m robusttext.cli vision certify --model "$OUT/crown-ibp" --data "$DATA" --eps 0.1 \
  --pgd-steps 200 --pgd-restarts 5 --method ibp,crown-ibp --quiet \
  --json "$OUT/crown-ibp/certify-pgd200x5.json" > /dev/null
