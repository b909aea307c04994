#!/usr/bin/env bash
# Regenerate testdata/lora/train/ (loss, LoRA gradients and AdamW steps by transformers + peft +
# torch on the tiny golden checkpoints; see scripts/golden/lora/make_train_golden.py).
# Uses the venv of make_lora_golden.sh (run that once first to create it).
# Usage: scripts/golden/lora/make_train_golden.sh [--case NAME ...]
set -euo pipefail
here="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
root="$(cd "$here/../../.." && pwd)"
venv="${LORA_REF_VENV:-/work/venvs/lora}"
export PYTHONHASHSEED=0
exec "$venv/bin/python" "$here/make_train_golden.py" --models "$root/testdata/model" \
    --out "$root/testdata/lora/train" --work "${GOLDEN_WORK:-/work/scratch/lora-golden/work-train}" "$@"
