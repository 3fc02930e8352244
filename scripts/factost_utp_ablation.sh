#!/usr/bin/env bash
# FactoST-v2 UTP ablation (Table X), one command: five pretraining runs with the same budget, one switch off in
# each, then the zero-shot benchmark experiments/factost/factost-utp-ablation.yaml. About 20 minutes on 2 cores.
set -euo pipefail
cd "$(dirname "$0")/.."
STEPS=${STEPS:-1000}
OUT=results/pretrain/utp-ablation
run() {  # name, flags...
  local name=$1; shift
  .venv/bin/stcast --threads 2 pretrain factost --steps "$STEPS" --out "$OUT/$name.pt" "$@"
}
run full
run no-prope --no-prope
run no-gate --no-gate
run no-quantile-loss --no-quantile-loss
run no-random-mask --no-random-mask
.venv/bin/stcast --threads 2 benchmark --config experiments/factost/factost-utp-ablation.yaml --out-dir results/bench --resume
