#!/usr/bin/env bash
# Convert one Hugging Face gpt-oss folder to GGUF with llama.cpp's own converter (see convert.py).
# Usage: scripts/gguf/convert.sh HF_DIR OUT.gguf OUTTYPE      (OUTTYPE: bf16 | q8_0 | f16 | f32)
#
# First use creates the venv $GGUF_VENV (default /work/venvs/gguf-convert: torch, transformers,
# numpy, sentencepiece; torch's wheel is a few GB and runs on CPU) and unpacks llama.cpp from the
# PyPI sdist of llama-cpp-python (pinned below) into $GGUF_WORK (default /work/gguf-scratch).
set -euo pipefail
here="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
venv="${GGUF_VENV:-/work/venvs/gguf-convert}"
work="${GGUF_WORK:-/work/gguf-scratch}"
python="${PYTHON:-python3.11}"
sdist_version="0.3.36"   # llama-cpp-python; vendors llama.cpp's converter and gguf-py
llama="$work/llama_cpp_python-$sdist_version/vendor/llama.cpp"

if [ ! -f "$venv/.ready" ]; then
    "$python" -m venv "$venv"
    "$venv/bin/pip" install -r "$here/requirements.txt"
    touch "$venv/.ready"
fi
if [ ! -f "$llama/convert_hf_to_gguf.py" ]; then
    mkdir -p "$work"
    # Only the sdist itself is wanted (no build): its build requirements come as wheels.
    "$venv/bin/pip" download --no-deps --no-binary llama-cpp-python \
        "llama-cpp-python==$sdist_version" -d "$work"
    tar -xzf "$work/llama_cpp_python-$sdist_version.tar.gz" -C "$work"
fi
exec "$venv/bin/python" "$here/convert.py" "$llama" "$@"
