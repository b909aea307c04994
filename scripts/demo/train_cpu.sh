#!/usr/bin/env bash
# The CPU recipe for the demo model (issue 5): data + training + export in one timed command.
#
# Owns: the pinned recipe (seed, data size, task mix, steps, batch, lr, init).
# Does not own: the steps themselves (data.py, train.py, export.py).
#
# Usage:
#   TIKTOKEN_ENCODINGS_BASE=<dir with o200k_base.tiktoken> \
#   PY_HARMONY=/work/venvs/demo/bin/python PY_TORCH=/work/venvs/torch-ref/bin/python \
#   /usr/bin/time -v bash scripts/demo/train_cpu.sh /work/scratch/demo3/cpu_run [ASSETS_DIR]
# ASSETS_DIR defaults to OUT/assets (a candidate); pass assets/demo-model to replace the shipped model.
set -euo pipefail
OUT=${1:?usage: train_cpu.sh OUT_DIR [ASSETS_DIR]}
ASSETS=${2:-$OUT/assets}
HERE=$(cd "$(dirname "$0")" && pwd)
PY_HARMONY=${PY_HARMONY:-python}
PY_TORCH=${PY_TORCH:-python}
SEED=${SEED:-1234}
N_TRAIN=${N_TRAIN:-10000}
STEPS=${STEPS:-680}
BATCH=${BATCH:-4096}
LR=${LR:-5e-3}
THREADS=${THREADS:-1}
PROCS=${PROCS:-2}
MIX=${MIX:-add=0.2,mul=0.3,unit=0.12,sort=0.06,count=0.05,weather=0.09,python=0.07,handoff=0.09}
mkdir -p "$OUT"
echo "[$(date -u +%T)] data" >&2
"$PY_HARMONY" "$HERE/data.py" --out "$OUT/data" --n-train "$N_TRAIN" --seed "$SEED" \
    --eval-in "$HERE/eval_set.jsonl" --weights "$MIX"
echo "[$(date -u +%T)] train" >&2
"$PY_TORCH" "$HERE/train.py" --data "$OUT/data" --out "$OUT/run" --seed "$SEED" --impl fast \
    --steps "$STEPS" --batch-tokens "$BATCH" --lr "$LR" --warmup 30 --num-init 0.15 \
    --threads "$THREADS" --procs "$PROCS" --log-every 20
echo "[$(date -u +%T)] export" >&2
"$PY_TORCH" "$HERE/export.py" --model "$OUT/run/demo_model.pt" --assets "$ASSETS" \
    --hf-out "$OUT/hf" --orig-out "$OUT/orig"
echo "[$(date -u +%T)] done" >&2
