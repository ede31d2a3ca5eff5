#!/usr/bin/env bash
# Train all eight SST-2 models of bench/archive/sentiment_results.md at once on one GPU.
#
#   examples/sentiment/gpu_all.sh DATA RUNS MINUTES [extra train flags]
#
# DATA holds train.tsv, dev.tsv, enkey.json (the one-substitute map) and the word spaces saved
# by save_space.py (wordnet.json, counterfitted.json), so the GPU machine needs neither WordNet
# nor network access. Each run stops after the epoch past which another would exceed MINUTES,
# then evaluates on the 872 dev sentences and saves its checkpoint under RUNS/<name>.
set -u
DATA=$1; RUNS=$2; MINUTES=$3; shift 3
HERE=$(dirname "$0")
mkdir -p "$RUNS"
export OMP_NUM_THREADS=2 PYTHONUNBUFFERED=1
PY=${PYTHON:-python3}
common=(--device "${DEVICE:-cuda}" --train "$DATA/train.tsv" --dev "$DATA/dev.tsv"
        --time-limit-minutes "$MINUTES" --quiet)
run() {  # name, extra flags
  local name=$1; shift
  $PY -m robusttext.cli train --config "$HERE/configs/$name.json" "${common[@]}" \
      --out "$RUNS/$name" "$@" > "$RUNS/$name.log" 2>&1 &
}
run char-normal --sources "$DATA/enkey.json" "$@"
run char-enkey-b1 --sources "$DATA/enkey.json" "$@"
run char-enkey-b3 --sources "$DATA/enkey.json" "$@"
run char-qwerty-b1 "$@"
run word-normal --space-file "$DATA/counterfitted.json" "$@"
run word-counterfitted-b3 --space-file "$DATA/counterfitted.json" "$@"
run word-counterfitted-all --space-file "$DATA/counterfitted.json" "$@"
run word-wordnet-b3 --space-file "$DATA/wordnet.json" "$@"
wait
tail -n 3 "$RUNS"/*.log
