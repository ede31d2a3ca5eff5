#!/bin/sh
# The BERT-style results of bench/archive/hf_results.md: a normally trained and a certifiably trained
# 1-layer BERT-style encoder (hidden 64, 4 heads, ReLU) on SST-2 with counter-fitted synonyms,
# each certified on the first 200 dev sentences (CROWN-IBP, attack, enumeration).
# Run from the repository root: sh bench/hf/run_sst2.sh > runs/hf/log.txt 2>&1
set -x
export OMP_NUM_THREADS=1
date -u
python -m robusttext.cli train --config bench/hf/bert-normal.json --time-limit-minutes 10 \
    --device cpu --quiet
date -u
python -m robusttext.cli certify --model runs/hf/bert-normal --data ../shared/data/sst2/dev.tsv \
    --budget 1,2,3 --limit 200 --method crown-ibp --json runs/hf/certify-bert-normal.json
date -u
python -m robusttext.cli train --config bench/hf/bert-counterfitted-b3.json \
    --time-limit-minutes 38 --device cpu --quiet
date -u
python -m robusttext.cli certify --model runs/hf/bert-counterfitted-b3 \
    --data ../shared/data/sst2/dev.tsv --budget 1,2,3 --limit 200 --method crown-ibp \
    --json runs/hf/certify-bert-counterfitted-b3.json
date -u
