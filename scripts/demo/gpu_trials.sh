#!/usr/bin/env bash
# GPU trials of CPU-budget training recipes for the demo model (issue 5): several train.py runs
# side by side on one CUDA device, each followed by greedy decoding of the held-out prompts.
#
# Owns: running the trials listed in a spec file and collecting their logs and greedy outputs.
# Does not own: the data (data.py), training (train.py) or scoring (evaluate.py, run here after).
#
# Each spec line: NAME followed by train.py arguments; `$C` in it expands to the data root.
# Every run trains in float32 (`--no-amp`, the CPU recipe's arithmetic) with the fast module.
# Usage (a machine with torch + transformers and a GPU; data made beforehand with
#   data.py --out DATA_ROOT/data --eval-in scripts/demo/eval_set.jsonl ...):
#   DATA_ROOT=/path OUT_DIR=/tmp/trials bash scripts/demo/gpu_trials.sh scripts/demo/trials_cpu_budget.txt
# then, where openai-harmony is installed:
#   python scripts/demo/evaluate.py OUT_DIR/NAME/eval_greedy.json
set -u
SPEC=$(cd "$(dirname "$1")" && pwd)/$(basename "$1")
HERE=$(cd "$(dirname "$0")" && pwd)
C=${DATA_ROOT:?set DATA_ROOT to the folder holding the data folders}
OUT_DIR=${OUT_DIR:-/tmp/trials}
export PYTHONUNBUFFERED=1
cd "$HERE"
mkdir -p "$OUT_DIR"
while read -r name rest; do
  case "$name" in ''|'#'*) continue ;; esac
  mkdir -p "$OUT_DIR/$name"
  ( eval timeout "${TRIAL_TIMEOUT:-540}" python3 train.py --out "$OUT_DIR/$name" \
      --eval-prompts "$C/data/eval_prompts.json" --no-amp --log-every 200 --impl fast --seed 1234 \
      $rest > "$OUT_DIR/$name/log.txt" 2>&1; echo "exit $?" >> "$OUT_DIR/$name/log.txt" ) &
done < "$SPEC"
wait
for d in "$OUT_DIR"/*/; do
  echo "== $d"
  grep -E "step .*/|saved|greedy-decoded|exit|Error" "$d/log.txt" | tail -4
done
