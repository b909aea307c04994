#!/usr/bin/env bash
# The web chat page (`gpt-oss serve`, GET /) driven in headless Chromium by
# Playwright for Python, against the real binary serving the built-in demo model.
#
#   tests/web/run.sh            # build the release binary, run the suite
#   tests/web/run.sh -k stop    # extra arguments go to pytest
#
# Environment:
#   VENV        venv to create/use (default /work/venvs/web-ui, else ~/.cache/gpt-oss-rs/web-ui-venv)
#   GPT_OSS_BIN a prebuilt binary to test (default: cargo build --release -p gpt-oss)
#   CHROMIUM    the browser (default /usr/bin/chromium: Debian's `chromium`, installed by .ci/run)
# Screenshots and server logs go to tests/web/artifacts/ (git-ignored).
set -euo pipefail
here="$(cd "$(dirname "$0")" && pwd)"
root="$(cd "$here/../.." && pwd)"

CHROMIUM="${CHROMIUM:-/usr/bin/chromium}"
if [[ ! -x "$CHROMIUM" ]]; then
  echo "skipped: the web UI test needs Chromium at $CHROMIUM (Debian: apt-get install chromium)" >&2
  exit 0
fi
export CHROMIUM

if [[ -z "${VENV:-}" ]]; then
  if [[ -d /work/venvs ]]; then VENV=/work/venvs/web-ui; else VENV="$HOME/.cache/gpt-oss-rs/web-ui-venv"; fi
fi
if [[ ! -x "$VENV/bin/python" ]]; then
  python3 -m venv "$VENV"
fi
if ! "$VENV/bin/pip" freeze 2>/dev/null | grep -qx "playwright==1.65.2" || \
   ! "$VENV/bin/python" -c "import playwright, pytest" 2>/dev/null; then
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

# Playwright's driver must not look for (or fetch) its own browsers.
export PLAYWRIGHT_SKIP_BROWSER_DOWNLOAD=1
mkdir -p "$here/artifacts"
cd "$here"
"$VENV/bin/python" -m pytest -q -p no:cacheprovider "$@" .
