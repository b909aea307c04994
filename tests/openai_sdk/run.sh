#!/usr/bin/env bash
# Black-box tests of `gpt-oss serve` with the official `openai` Python SDK.
#
#   tests/openai_sdk/run.sh            # build the release binary, run the suite
#   tests/openai_sdk/run.sh -k chat    # extra arguments go to pytest
#
# Environment:
#   VENV        venv to create/use (default /work/venvs/openai-sdk, else ~/.cache/gpt-oss-rs/openai-sdk-venv)
#   GPT_OSS_BIN a prebuilt binary to test (default: cargo build --release -p gpt-oss)
#   MODEL_DIR   checkpoint to serve (default: the committed real-vocabulary golden
#               checkpoint testdata/model/real-vocab/original, unpacked to a temp dir;
#               random weights, real tokenizer: tests check protocol, not answer quality)
#   GPT_OSS_SERVE_ARGS  extra `serve` flags, e.g. "--device gpu" to run the suite on the GPU backend
#   LOAD=1      also run the 32-client load test and the 8-vs-1 throughput benchmark
set -euo pipefail
here="$(cd "$(dirname "$0")" && pwd)"
root="$(cd "$here/../.." && pwd)"

source "$root/tests/common.sh"
ensure_venv openai-sdk "openai==3.51.0" "openai, pytest" "$here/requirements.txt"
resolve_gpt_oss_bin "$root"

tmp="$(mktemp -d)"
trap 'rm -rf "$tmp"' EXIT
if [[ -z "${MODEL_DIR:-}" ]]; then
  MODEL_DIR="$tmp/model"
  mkdir -p "$MODEL_DIR"
  cp "$root/testdata/model/real-vocab/original/config.json" "$MODEL_DIR/"
  gunzip -c "$root/testdata/model/real-vocab/original/model.safetensors.gz" > "$MODEL_DIR/model.safetensors"
fi
export MODEL_DIR

cd "$here"
"$VENV/bin/python" -m pytest -q -p no:cacheprovider "$@" .
if [[ "${LOAD:-0}" == "1" ]]; then
  "$VENV/bin/python" "$here/load_test.py"
fi
