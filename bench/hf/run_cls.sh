#!/bin/sh
# The [CLS] BERT-style results of bench/archive/hf_results.md (second round): a 1-layer encoder (hidden
# 64, 4 heads, ReLU, [CLS] pooled) trained certifiably on SST-2 with counter-fitted synonyms at
# budget 3 (model selection on 5% of the training roots), and a normally trained one; each
# certified on all 872 dev sentences (CROWN-IBP with attack and enumeration, then IBP).
# Run from the repository root: sh bench/hf/run_cls.sh > runs/hf/log-cls.txt 2>&1
set -x
export OMP_NUM_THREADS=1
date -u
nice -n 5 python -m robusttext.cli train --config bench/hf/bert-cls-b3.json \
    --time-limit-minutes 95 --device cpu --quiet
date -u
nice -n 5 python -m robusttext.cli train --config bench/hf/bert-cls-normal.json \
    --time-limit-minutes 20 --device cpu --quiet
for run in bert-cls-b3/best bert-cls-normal; do
    name=$(echo $run | tr / -)
    date -u
    python -m robusttext.cli certify --model runs/hf/$run --data ../shared/data/sst2/dev.tsv \
        --budget 1,2,3,6 --enumerate-limit 200 --json runs/hf/certify-$name.json
    date -u
    python -m robusttext.cli certify --model runs/hf/$run --data ../shared/data/sst2/dev.tsv \
        --budget 1,2,3,6 --enumerate-limit 0 --method ibp --json runs/hf/certify-$name-ibp.json
done
date -u
