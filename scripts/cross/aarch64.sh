#!/usr/bin/env bash
# The Arm NEON kernel level (crates/backend/src/cpu/neon/) built for aarch64 Linux and tested
# under qemu-user on an x86-64 machine: the backend's oracle tests (NEON with and without
# `dotprod`, then the scalar level) and the model's golden-logit tests on the committed tiny
# checkpoints (NEON). Installs what it lacks (Debian packages via apt-get, as root or with
# sudo; the rustup target), so CI can run it on a fresh machine; a second run installs nothing.
#   CARGO_TARGET_DIR  where to build (default target/); the aarch64 outputs land under
#                     $CARGO_TARGET_DIR/aarch64-unknown-linux-gnu/, apart from the x86 ones.
# On a 2-core machine: ~1.5-2.5 minutes with a warm target dir (the golden tests take most of
# it: qemu runs ~10-50x slower than native), ~3.5-6 minutes cold (the build).
set -euo pipefail
root="$(cd "$(dirname "$0")/../.." && pwd)"
cd "$root"

triple=aarch64-unknown-linux-gnu
sysroot=/usr/aarch64-linux-gnu
log() { printf '\n==> %s\n' "$*"; }
start=$SECONDS

need=()
command -v aarch64-linux-gnu-gcc >/dev/null 2>&1 || need+=(gcc-aarch64-linux-gnu)
[ -e "$sysroot/lib/libc.so" ] || need+=(libc6-dev-arm64-cross)
command -v qemu-aarch64 >/dev/null 2>&1 || need+=(qemu-user)
if [ ${#need[@]} -gt 0 ]; then
  log "installing ${need[*]}"
  sudo=()
  [ "$(id -u)" = 0 ] || sudo=(sudo)
  "${sudo[@]}" apt-get update -qq
  DEBIAN_FRONTEND=noninteractive "${sudo[@]}" apt-get install -y -qq "${need[@]}" >/dev/null
fi
if ! rustup target list --installed | grep -qx "$triple"; then
  log "rustup target add $triple"
  rustup target add "$triple"
fi

export CARGO_TARGET_AARCH64_UNKNOWN_LINUX_GNU_LINKER=aarch64-linux-gnu-gcc
export CARGO_TARGET_AARCH64_UNKNOWN_LINUX_GNU_RUNNER="qemu-aarch64 -L $sysroot"
# Line tables are enough for a backtrace; full debug info only makes the build slower and
# the target dir larger.
export CARGO_PROFILE_DEV_DEBUG="${CARGO_PROFILE_DEV_DEBUG:-line-tables-only}"
# qemu's default CPU ("max") has dotprod; QEMU_CPU overrides it per step.
unset QEMU_CPU

# The kernel line of one configuration, as the backend reports it.
level() {
  cargo test -q -p gptoss-backend --target "$triple" --lib the_forced_level_runs \
    -- --nocapture 2>&1 | grep 'cpu kernels' || { echo "could not read the kernel level"; return 1; }
}

step() { # title, then the command
  local t=$SECONDS title="$1"
  shift
  log "$title"
  "$@"
  echo "($title: $((SECONDS - t)) s)"
}

# The same commands as the steps below (features unify per command), so they build nothing.
build() {
  cargo test -p gptoss-backend --target "$triple" --no-run
  cargo test -p gptoss-model --target "$triple" --test golden --test gguf_golden --no-run
}
step "build the aarch64 tests" build

backend() { level && cargo test -p gptoss-backend --target "$triple"; }
GPT_OSS_KERNELS=neon step "backend tests, NEON with dotprod (qemu max CPU)" backend
# Cortex-A72 (Armv8.0) has no dotprod: the level picks its widening-multiply int8 kernels.
QEMU_CPU=cortex-a72 GPT_OSS_KERNELS=neon \
  step "backend tests, NEON without dotprod (Cortex-A72)" backend
GPT_OSS_KERNELS=scalar step "backend tests, scalar level" backend

GPT_OSS_KERNELS=neon step "model golden logits, NEON" \
  cargo test -p gptoss-model --target "$triple" --test golden --test gguf_golden

log "aarch64 under qemu passed ($((SECONDS - start)) s)"
