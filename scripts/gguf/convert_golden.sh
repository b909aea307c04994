#!/usr/bin/env bash
# Regenerate testdata/gguf/: every golden checkpoint of testdata/model/ (but real-vocab, whose
# 201,088-row bf16 tables make a 50 MB file) through llama.cpp's converter, as bf16 and q8_0.
# Usage: scripts/gguf/convert_golden.sh
set -euo pipefail
here="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
root="$(cd "$here/../.." && pwd)"
out="$root/testdata/gguf"
tmp="$(mktemp -d)"
trap 'rm -rf "$tmp"' EXIT
mkdir -p "$out"
for case in tiny-2of4 tiny-4of8-sharded window128; do
    src="$root/testdata/model/$case/hf"
    # The converter wants plain safetensors: gunzip any .gz shard into a copy.
    mkdir -p "$tmp/$case"
    for f in "$src"/*; do
        case "$f" in
            *.gz) gunzip -c "$f" > "$tmp/$case/$(basename "${f%.gz}")" ;;
            *) cp "$f" "$tmp/$case/" ;;
        esac
    done
    for t in bf16 q8_0; do
        "$here/convert.sh" "$tmp/$case" "$out/$case-$t.gguf" "$t"
    done
done
ls -l "$out"
