#!/bin/sh
# Certified fine-tuning of a model made by transformers' Trainer (bench/hf_results.md, fifth round):
# the user's BERT, certified before; the three fine-tuning runs (IBP k 0.5; CROWN-IBP k 0.5;
# CROWN-IBP k 0.3 over a 6-epoch ramp), each certified after on SST-2 dev at one substitution.
# Needs accelerate (pip install -e ".[bench]"). About 30 minutes on one CPU thread.
# Run from the repository root: sh bench/hf/run_finetune.sh > runs/finetune/log.txt 2>&1
set -ex
export OMP_NUM_THREADS=1
OUT=runs/finetune
DATA=../shared/data
mkdir -p $OUT
python bench/hf/trainer_user_model.py --out $OUT/user-bert --epochs 1 --pieces 16000 --data $DATA
python -m robusttext certify --model $OUT/user-bert --data $DATA/sst2/dev.tsv \
    --sources $DATA/counterfitted_neighbors.json --budget 1 --enumerate-limit 200 --quiet \
    --json $OUT/certify-user-bert.json
run() {  # NAME, then the flags the run adds
    name=$1; shift
    python -m robusttext train --model $OUT/user-bert --train $DATA/sst2/train.tsv \
        --train-limit 8000 --validation-fraction 0.1 --dev $DATA/sst2/dev.tsv \
        --sources $DATA/counterfitted_neighbors.json --budget 1 --warmup-epochs 0 \
        --batch-size 32 --lr 5e-4 --eval-methods crown-ibp --eval-budgets 1 \
        --enumerate-limit 200 --device cpu --quiet --out $OUT/$name "$@"
    python -m robusttext certify --model $OUT/$name/best --data $DATA/sst2/dev.tsv --budget 1 \
        --enumerate-limit 200 --quiet --json $OUT/certify-$name.json
}
run ibp-k50 --robust-weight 0.5 --method ibp --ramp-epochs 2 --epochs 6
run crownibp-k50 --robust-weight 0.5 --method crown-ibp --beta-start 1 --beta-final 1 \
    --ramp-epochs 2 --epochs 6
run crownibp-k30-ramp6 --robust-weight 0.3 --method crown-ibp --beta-start 1 --beta-final 1 \
    --ramp-epochs 6 --epochs 10
