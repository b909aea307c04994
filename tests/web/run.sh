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

source "$root/tests/common.sh"
ensure_venv web-ui "playwright==1.65.2" "playwright, pytest" "$here/requirements.txt"
resolve_gpt_oss_bin "$root"

# Playwright's driver must not look for (or fetch) its own browsers.
export PLAYWRIGHT_SKIP_BROWSER_DOWNLOAD=1
mkdir -p "$here/artifacts"
cd "$here"
"$VENV/bin/python" -m pytest -q -p no:cacheprovider "$@" .
