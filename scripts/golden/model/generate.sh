#!/usr/bin/env bash
# Regenerate testdata/model/ from the official references (see testdata/model/README.md).
# Creates the pinned venv on first use (torch pulls a few GB of CUDA wheels; it runs on CPU).
# Usage: scripts/golden/model/generate.sh [--case NAME ...]
set -euo pipefail
here="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
root="$(cd "$here/../../.." && pwd)"
venv="${TORCH_REF_VENV:-/work/venvs/torch-ref}"
python="${PYTHON:-python3.11}"

if [ ! -f "$venv/.ready" ]; then
    "$python" -m venv "$venv"
    "$venv/bin/pip" install -r "$here/requirements.txt"
    "$venv/bin/pip" install --no-deps --ignore-requires-python gpt-oss==0.0.9
    "$venv/bin/python" -c "import gpt_oss.torch.model, transformers, safetensors, numpy"
    touch "$venv/.ready"
fi

exec "$venv/bin/python" "$here/generate.py" --out "$root/testdata/model" \
    --work "${GOLDEN_WORK:-/work/scratch/model-golden/work}" "$@"
