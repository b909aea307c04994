#!/usr/bin/env bash
# Regenerate testdata/lora/ (PEFT adapters for the tiny golden checkpoints and the
# transformers + peft float32 logits with them; see scripts/golden/lora/make_lora_golden.py).
# Creates the venv on first use (torch from PyPI is a few GB; it runs on the CPU).
# Usage: scripts/golden/lora/make_lora_golden.sh [--case NAME ...]
set -euo pipefail
here="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
root="$(cd "$here/../../.." && pwd)"
venv="${LORA_REF_VENV:-/work/venvs/lora}"
python="${PYTHON:-python3.11}"

if [ ! -f "$venv/.ready" ]; then
    "$python" -m venv "$venv"
    "$venv/bin/pip" install -r "$here/requirements.txt"
    "$venv/bin/python" -c "import peft, transformers, safetensors, numpy, torch"
    touch "$venv/.ready"
fi

# peft keeps target_modules as a set: a fixed hash seed makes its saved order reproducible.
export PYTHONHASHSEED=0
exec "$venv/bin/python" "$here/make_lora_golden.py" --models "$root/testdata/model" \
    --out "$root/testdata/lora" --work "${GOLDEN_WORK:-/work/scratch/lora-golden/work}" "$@"
