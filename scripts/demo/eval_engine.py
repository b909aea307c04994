#!/usr/bin/env python3
"""Evaluate the built-in demo model through OUR engine (not torch).

For each prompt of eval_set.jsonl:
  1. `gpt-oss render --input CONV.json`            -> prompt token ids (our harmony renderer)
  2. `gpt-oss generate --temperature 0 --stop ...` -> greedy completion ids (our loader,
     forward pass, KV cache and sampler, on assets/demo-model unpacked to a temp dir)
then scores the completions with evaluate.py's rules (parsing with the official
openai-harmony package, so "parses as harmony" is the reference's verdict).

Usage (TIKTOKEN_ENCODINGS_BASE must name a folder holding o200k_base.tiktoken;
see shared reference notes; needs openai-harmony==0.0.8 in the Python env):

    cargo build --release -p gpt-oss
    python scripts/demo/eval_engine.py --bin target/release/gpt-oss --out /tmp/engine_greedy.json
"""
from __future__ import annotations

import argparse
import gzip
import json
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
STOP = "200002,200012"  # <|return|>, <|call|>


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--bin", default=str(ROOT / "target/release/gpt-oss"))
    ap.add_argument("--eval-set", default=str(ROOT / "scripts/demo/eval_set.jsonl"))
    ap.add_argument("--out", required=True, help="where to write {id, greedy} JSON")
    ap.add_argument("--max-new", type=int, default=480)
    ap.add_argument("--limit", type=int, default=0)
    ap.add_argument("--assets", default=str(ROOT / "assets/demo-model"),
                    help="folder with config.json + model.safetensors.gz (a candidate from export.py --assets)")
    ap.add_argument("--tasks", default="", help="comma-separated task names to keep (default: all)")
    args = ap.parse_args()

    items = [json.loads(line) for line in open(args.eval_set)]
    if args.tasks:
        keep = set(args.tasks.split(","))
        items = [it for it in items if it["task"] in keep]
    if args.limit:
        items = items[: args.limit]
    tmp = Path(tempfile.mkdtemp())
    try:
        model = tmp / "model"
        model.mkdir()
        assets = Path(args.assets)
        shutil.copy(assets / "config.json", model / "config.json")
        with gzip.open(assets / "model.safetensors.gz") as src, open(model / "model.safetensors", "wb") as dst:
            shutil.copyfileobj(src, dst)
        results = []
        t0 = time.time()
        for i, item in enumerate(items):
            conv = tmp / "conv.json"
            conv.write_text(json.dumps(item["conversation"]))
            prompt = subprocess.run([args.bin, "render", "--input", str(conv)], check=True,
                                    capture_output=True, text=True).stdout.strip()
            out = subprocess.run([args.bin, "generate", "--model", str(model), "--tokens", prompt,
                                  "--temperature", "0", "--max-tokens", str(args.max_new), "--stop", STOP],
                                 check=True, capture_output=True, text=True).stdout
            results.append({"id": item["id"], "greedy": json.loads(out)})
            if (i + 1) % 20 == 0:
                print(f"{i + 1}/{len(items)} in {time.time() - t0:.0f}s", file=sys.stderr)
        Path(args.out).write_text(json.dumps(results))
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
    # Score with the same rules as the Python evaluation of the trained model.
    subprocess.run([sys.executable, str(ROOT / "scripts/demo/evaluate.py"), args.out,
                    "--eval-set", args.eval_set, "--json-out", args.out + ".score.json"], check=True)


if __name__ == "__main__":
    main()
