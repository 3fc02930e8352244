#!/usr/bin/env bash
# The 3-seed "what the language model adds" runs behind docs/benchmarks.md, one after another.
# usage: [SEEDS="1 2"] bash scripts/run_lm_ablation.sh CONFIG [THREADS]   (rows: results/lm-ablation/<config>-seed<k>.csv)
set -euo pipefail
config=$1; threads=${2:-2}
name=$(basename "$config" .yaml)
for seed in ${SEEDS:-0 1 2}; do
  .venv/bin/stcast --threads "$threads" benchmark --config "$config" --out-dir results/lm-ablation \
    --set train.seed=$seed --set name=$name-seed$seed --resume   # a rerun continues, never discards
done
