#!/usr/bin/env bash
# Prepares what scripts/gpu/device_check.sh needs on a GPU machine that has no network and no
# Vulkan loader: Debian's libvulkan1 unpacked into .gpu-carry/ (git-ignored). Run it here, next
# to a release build (cargo build --release -p gpt-oss), then carry target/release/gpt-oss and
# .gpu-carry (the stripped binary and the loader) to the device machine.
set -euo pipefail
root="$(cd "$(dirname "$0")/../.." && pwd)"
carry="$root/.gpu-carry"
rm -rf "$carry" && mkdir -p "$carry"
tmp="$(mktemp -d)"
trap 'rm -rf "$tmp"' EXIT
(cd "$tmp" && apt-get download libvulkan1 >/dev/null)
dpkg -x "$tmp"/libvulkan1_*.deb "$tmp/root"
cp -L "$tmp"/root/usr/lib/*/libvulkan.so.1 "$carry/libvulkan.so.1"
# The release binary without its debug line tables (the carry limit is 64 MiB in all).
[ -x "$root/target/release/gpt-oss" ] || { echo "build it first: cargo build --release -p gpt-oss"; exit 1; }
strip -o "$carry/gpt-oss" "$root/target/release/gpt-oss"
ls -l "$carry"
