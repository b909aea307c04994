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
#   LOAD=1      also run the 32-client load test and the 8-vs-1 throughput benchmark
set -euo pipefail
here="$(cd "$(dirname "$0")" && pwd)"
root="$(cd "$here/../.." && pwd)"

if [[ -z "${VENV:-}" ]]; then
  if [[ -d /work/venvs ]]; then VENV=/work/venvs/openai-sdk; else VENV="$HOME/.cache/gpt-oss-rs/openai-sdk-venv"; fi
fi
if [[ ! -x "$VENV/bin/python" ]]; then
  python3 -m venv "$VENV"
fi
if ! "$VENV/bin/python" -c "import openai, pytest" 2>/dev/null || \
   ! "$VENV/bin/pip" freeze 2>/dev/null | grep -qx "openai==3.51.0"; then
  "$VENV/bin/pip" install -q -r "$here/requirements.txt"
fi

if [[ -z "${GPT_OSS_BIN:-}" ]]; then
  (cd "$root" && cargo build --release -q -p gpt-oss)
  GPT_OSS_BIN="${CARGO_TARGET_DIR:-$root/target}/release/gpt-oss"
fi
# The suite runs from its own folder: a relative path would point nowhere.
case "$GPT_OSS_BIN" in /*) ;; *) GPT_OSS_BIN="$PWD/$GPT_OSS_BIN" ;; esac
if [[ ! -x "$GPT_OSS_BIN" ]]; then
  echo "error: no gpt-oss binary at $GPT_OSS_BIN (build it with: cargo build --release -p gpt-oss)" >&2
  exit 1
fi
export GPT_OSS_BIN

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
