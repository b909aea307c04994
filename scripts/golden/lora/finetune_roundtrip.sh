#!/usr/bin/env bash
# Regenerate testdata/lora/finetune/ (an adapter written by `gpt-oss finetune`, and the logits
# transformers + peft compute with it; see finetune_roundtrip.py). Uses the venv of
# make_lora_golden.sh. Usage: scripts/golden/lora/finetune_roundtrip.sh [GPT_OSS_BIN]
set -euo pipefail
here="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
root="$(cd "$here/../../.." && pwd)"
venv="${LORA_REF_VENV:-/work/venvs/lora}"
bin="${1:-$root/target/release/gpt-oss}"
[ -f "$venv/.ready" ] || { echo "run make_lora_golden.sh once first (it creates $venv)"; exit 1; }
export PYTHONHASHSEED=0
cd "$here"
exec "$venv/bin/python" finetune_roundtrip.py --bin "$bin" --root "$root" \
    --work "${GOLDEN_WORK:-/work/scratch/lora-golden/finetune}"
