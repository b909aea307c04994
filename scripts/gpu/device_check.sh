#!/usr/bin/env bash
# The GPU measurement of BENCHMARKS.md ("GPU"), for a device machine: builds nothing, runs the
# carried release binary with the carried Vulkan loader, and ends within ~8 minutes.
#   carry: .gpu-carry (scripts/gpu/prepare_carry.sh: the stripped binary and libvulkan.so.1)
# Writes the JSON of every bench to $OUT (or ./gpu-results) and prints the tables.
set -uo pipefail
root="$(cd "$(dirname "$0")/../.." && pwd)"
bin="$root/.gpu-carry/gpt-oss"
[ -x "$bin" ] || bin="$root/target/release/gpt-oss"
out="${OUT:-$root/gpu-results}"
mkdir -p "$out"
export LD_LIBRARY_PATH="$root/.gpu-carry${LD_LIBRARY_PATH:+:$LD_LIBRARY_PATH}"
# NVIDIA's ICD when the loader finds none by itself.
if [ -z "${VK_DRIVER_FILES:-}" ] && [ -f /usr/local/nvidia/share/vulkan/icd.d/nvidia_icd.json ]; then
  export VK_DRIVER_FILES=/usr/local/nvidia/share/vulkan/icd.d/nvidia_icd.json
fi
export XDG_RUNTIME_DIR="${XDG_RUNTIME_DIR:-$(mktemp -d)}"
nvidia-smi --query-gpu=name,memory.total,driver_version --format=csv 2>/dev/null | tee "$out/nvidia-smi.txt"
"$bin" devices | tee "$out/devices.txt"
"$bin" devices --json > "$out/devices.json"
run() { # name, then bench arguments
  local name="$1"; shift
  echo "== $name: bench $*"
  timeout 200 "$bin" bench --device gpu "$@" --json > "$out/$name.json" 2> "$out/$name.log"
  echo "exit $?"; tail -n 3 "$out/$name.log"; cat "$out/$name.json"
}
# 20b: prefill 2048, decode at depth 0 and 4096, 8 streams.
run synth20b --synth 20b --prompt 2048 --depth 0,4096 --generate 128 --generate-deep 64 --reps 3 --streams 8 --context 8192
# 120b: must fit with an 8k context; decode at depth 0 and 4096.
run synth120b --synth 120b --prompt 2048 --depth 0,4096 --generate 64 --generate-deep 32 --reps 2 --streams 8 --context 8192
echo "results in $out"
