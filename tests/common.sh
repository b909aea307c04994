# Shared by the Python suites' runners (tests/*/run.sh): sourced, not run.

# ensure_venv NAME PIN MODULES REQUIREMENTS: sets VENV (unless given) to
# /work/venvs/NAME or ~/.cache/gpt-oss-rs/NAME-venv, creates it, and installs
# REQUIREMENTS unless `pip freeze` already lists PIN (e.g. openai==3.51.0) and
# MODULES (comma-separated) import.
ensure_venv() {
  local name="$1" pin="$2" modules="$3" requirements="$4"
  if [[ -z "${VENV:-}" ]]; then
    if [[ -d /work/venvs ]]; then VENV="/work/venvs/$name"; else VENV="$HOME/.cache/gpt-oss-rs/$name-venv"; fi
  fi
  if [[ ! -x "$VENV/bin/python" ]]; then
    python3 -m venv "$VENV"
  fi
  if ! "$VENV/bin/python" -c "import $modules" 2>/dev/null || \
     ! "$VENV/bin/pip" freeze 2>/dev/null | grep -qx "$pin"; then
    "$VENV/bin/pip" install -q -r "$requirements"
  fi
}

# resolve_gpt_oss_bin ROOT: sets and exports GPT_OSS_BIN as an absolute path,
# building the release binary under ROOT when none was given.
resolve_gpt_oss_bin() {
  local root="$1"
  if [[ -z "${GPT_OSS_BIN:-}" ]]; then
    (cd "$root" && cargo build --release -q -p gpt-oss)
    GPT_OSS_BIN="${CARGO_TARGET_DIR:-$root/target}/release/gpt-oss"
  fi
  # The suites run from their own folders: a relative path would point nowhere.
  case "$GPT_OSS_BIN" in /*) ;; *) GPT_OSS_BIN="$PWD/$GPT_OSS_BIN" ;; esac
  if [[ ! -x "$GPT_OSS_BIN" ]]; then
    echo "error: no gpt-oss binary at $GPT_OSS_BIN (build it with: cargo build --release -p gpt-oss)" >&2
    exit 1
  fi
  export GPT_OSS_BIN
}
