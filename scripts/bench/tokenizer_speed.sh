#!/usr/bin/env bash
# Tokenizer speed: ours (gptoss-harmony over tiktoken-rs) vs Python tiktoken,
# both single-threaded encode_ordinary on the same ~1 MB mixed corpus.
# Prints both numbers and the ratio; never fails on speed (a benchmark, not a test).
#
#   scripts/bench/tokenizer_speed.sh [RUNS]
#
# Python: $TOKBENCH_PY, else /work/venvs/harmony-ref (if it has tiktoken), else a
# venv /work/venvs/tokbench with tiktoken==0.14.0 is created. Scratch files go
# to ${SCRATCH:-/work/scratch/tokbench}. The o200k_base vocabulary is taken from
# the tiktoken-rs crate in the cargo registry (no download).
set -euo pipefail
RUNS="${1:-5}"
ROOT="$(cd "$(dirname "$0")/../.." && pwd)"
SCRATCH="${SCRATCH:-/work/scratch/tokbench}"
mkdir -p "$SCRATCH"

PY="${TOKBENCH_PY:-}"
if [ -z "$PY" ]; then
  if /work/venvs/harmony-ref/bin/python -c "import tiktoken" 2>/dev/null; then
    PY=/work/venvs/harmony-ref/bin/python
  else
    if [ ! -x /work/venvs/tokbench/bin/python ]; then
      python3 -m venv /work/venvs/tokbench
      /work/venvs/tokbench/bin/pip install -q tiktoken==0.14.0
    fi
    PY=/work/venvs/tokbench/bin/python
  fi
fi

VOCAB="$(ls -1 "${CARGO_HOME:-$HOME/.cargo}"/registry/src/*/tiktoken-rs-*/assets/o200k_base.tiktoken 2>/dev/null | head -n1 || true)"
if [ -z "$VOCAB" ]; then
  echo "o200k_base.tiktoken not found in the cargo registry; run 'cargo fetch' first" >&2
  exit 1
fi

CORPUS="$SCRATCH/corpus_1mb.txt"
"$PY" - "$CORPUS" "$VOCAB" "$SCRATCH" "$RUNS" <<'PYEOF'
import hashlib, os, random, shutil, sys, time
corpus_path, vocab, scratch, runs = sys.argv[1], sys.argv[2], sys.argv[3], int(sys.argv[4])

# Offline vocabulary for tiktoken: its cache file is named sha1(download URL).
url = "https://openaipublic.blob.core.windows.net/encodings/o200k_base.tiktoken"
cache = os.path.join(scratch, "tiktoken_cache")
os.makedirs(cache, exist_ok=True)
dst = os.path.join(cache, hashlib.sha1(url.encode()).hexdigest())
if not os.path.exists(dst):
    shutil.copyfile(vocab, dst)
os.environ["TIKTOKEN_CACHE_DIR"] = cache
import tiktoken

# A deterministic ~1 MB mix: English prose, code, JSON, numbers, markdown,
# CJK/Cyrillic/Arabic/Hindi text, emoji, whitespace runs.
rng = random.Random(1234)
words = ("the of and to in is that for it as was with be by on not he this are or his from at which but have an they you were her she there one all we their has been if more when will would who so no out up into do than can said about what its other some could time these two may then first any my now such like our over man me even most made after also did many before must through back years where much your way well down should because each just those people how too little state good very make world still own see men work long get here between both life being under never day same another know while last might us great old year off come since against go came right used take three").split()
code = '''def fibonacci(n: int) -> int:
    """Return the n-th Fibonacci number."""
    a, b = 0, 1
    for _ in range(n):
        a, b = b, a + b
    return a

fn main() {
    let v: Vec<u32> = (0..10).map(|x| x * x).collect();
    println!("{:?}", v);
}
'''
snippets = [
    '{"id": 12345, "name": "Alice", "tags": ["x", "y"], "score": 98.6, "ok": true}\n',
    "| col A | col B |\n|------:|:------|\n| 1.5e-3 | 42 |\n",
    "東京は日本の首都です。今日はいい天気ですね。\n",
    "Привет, как дела? Всё хорошо, спасибо.\n",
    "مرحبا بالعالم، هذا نص تجريبي.\n",
    "नमस्ते दुनिया, यह एक परीक्षण है।\n",
    "Emoji time: 😀🎉👍🏽 👨‍👩‍👧‍👦 🇫🇷\n",
    "    \t  \n\n   indented    spaces   \r\n",
    "Prices: $1,234.56, €99.99, 3.14159265358979, 2025-08-05T12:34:56Z\n",
    "https://example.com/path?q=rust+tokenizer&lang=en#section-2\n",
]
parts, size = [], 0
while size < 1_000_000:
    r = rng.random()
    if r < 0.55:
        n = rng.randint(20, 120)
        s = " ".join(rng.choice(words) for _ in range(n))
        s = s[0].upper() + s[1:] + ".\n\n"
    elif r < 0.75:
        s = code
    else:
        s = rng.choice(snippets)
    parts.append(s)
    size += len(s.encode("utf-8"))
text = "".join(parts)
with open(corpus_path, "w", encoding="utf-8") as f:
    f.write(text)

enc = tiktoken.get_encoding("o200k_harmony")
enc.encode_ordinary("warm up")
best = float("inf")
for _ in range(max(runs, 1)):
    t0 = time.perf_counter()
    ids = enc.encode_ordinary(text)
    best = min(best, time.perf_counter() - t0)
checksum = 0
for i in ids:
    checksum = (checksum * 1_000_003 + i) % (1 << 64)
nbytes = len(text.encode("utf-8"))
print(f"python tiktoken {tiktoken.__version__}: {nbytes/1e6/best:.2f} MB/s, {len(ids)/best:.0f} tokens/s "
      f"({nbytes} bytes, {len(ids)} tokens, best of {max(runs,1)} = {best*1e3:.1f} ms, checksum {checksum})")
with open(os.path.join(scratch, "python_mbps.txt"), "w") as f:
    f.write(f"{nbytes/1e6/best}\n")
PYEOF

cd "$ROOT"
OUT="$(cargo run -q --release -p gptoss-harmony --example tokenize_speed -- "$CORPUS" "$RUNS")"
echo "$OUT"
RUST_MBPS="$(echo "$OUT" | sed -n 's/.*: \([0-9.]*\) MB\/s.*/\1/p')"
PY_MBPS="$(cat "$SCRATCH/python_mbps.txt")"
python3 -c "import sys; r=float(sys.argv[1])/float(sys.argv[2]); print(f'ratio ours/python = {r:.2f} (target >= 0.80)')" "$RUST_MBPS" "$PY_MBPS"
