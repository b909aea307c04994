#!/usr/bin/env bash
# The agents and SDKs people already use, unchanged, against `gpt-oss serve`:
# Codex CLI (Responses API and `--oss`, Ollama API), Claude Code and the
# anthropic SDK (Messages API), the ollama Python client, the OpenAI Agents SDK.
#
#   tests/clients/run.sh              # build the release binary, run every client
#   tests/clients/run.sh -k anthropic # extra arguments go to pytest
#
# Environment:
#   VENV         venv for the Python clients (default /work/venvs/clients, else ~/.cache/gpt-oss-rs/clients-venv)
#   NPM_CLIENTS  folder for the npm clients (default ~/.cache/gpt-oss-rs/npm-clients); needs node >= 18
#   GPT_OSS_BIN  a prebuilt binary to test (default: cargo build --release -p gpt-oss)
#   MODEL_DIR    checkpoint to serve (default: the demo model built into the binary, which
#                writes well-formed harmony; the tests check protocol and well-formedness, not
#                answer quality)
set -euo pipefail
here="$(cd "$(dirname "$0")" && pwd)"
root="$(cd "$here/../.." && pwd)"

source "$root/tests/common.sh"
ensure_venv clients "anthropic==2.17.0" "anthropic, ollama, openai, agents, pytest" "$here/requirements.txt"
resolve_gpt_oss_bin "$root"

# npm clients, pinned in package.json, installed once into their own folder.
NPM_CLIENTS="${NPM_CLIENTS:-$HOME/.cache/gpt-oss-rs/npm-clients}"
if command -v npm >/dev/null 2>&1; then
  mkdir -p "$NPM_CLIENTS"
  if ! cmp -s "$here/package.json" "$NPM_CLIENTS/package.json" || [[ ! -x "$NPM_CLIENTS/node_modules/.bin/codex" ]]; then
    cp "$here/package.json" "$NPM_CLIENTS/package.json"
    (cd "$NPM_CLIENTS" && npm install --no-audit --no-fund --loglevel=error >/dev/null)
  fi
  export CODEX_BIN="$NPM_CLIENTS/node_modules/.bin/codex"
  export CLAUDE_BIN="$NPM_CLIENTS/node_modules/.bin/claude"
else
  echo "warning: npm not found; the Codex and Claude Code tests will fail (install nodejs and npm)" >&2
fi

export MODEL_DIR="${MODEL_DIR:-}"

cd "$here"
"$VENV/bin/python" -m pytest -q -p no:cacheprovider "$@" .
