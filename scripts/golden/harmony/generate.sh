#!/usr/bin/env bash
# Regenerate testdata/harmony/*.json from the official tiktoken and
# openai-harmony packages (versions pinned in requirements.txt).
# Usage: scripts/golden/harmony/generate.sh [--vocab PATH] [--only tokenizer|render|parse] [--out DIR]
# Env: HARMONY_REF_VENV (default /work/venvs/harmony-ref), PYTHON (default python3).
set -euo pipefail
here="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
venv="${HARMONY_REF_VENV:-/work/venvs/harmony-ref}"
if [ ! -x "$venv/bin/python" ]; then
    "${PYTHON:-python3}" -m venv "$venv"
fi
"$venv/bin/pip" install --quiet --disable-pip-version-check -r "$here/requirements.txt"
exec "$venv/bin/python" "$here/generate.py" "$@"
