#!/usr/bin/env python3
"""Greedy continuations of the exported demo model through Hugging Face transformers.

Owns: testdata/demo/hf_greedy.json, the oracle that our Rust engine's greedy
output on the demo model is compared with.
Does not own: the model (export.py writes the HF-layout copy it loads).

Loads the HF-layout export (default /work/scratch/demo-hf) with
GptOssForCausalLM + Mxfp4Config(dequantize=True) in float32 on CPU, and
greedy-decodes the first --n prompts of each task from eval_set.jsonl (prompt
token ids rendered by openai-harmony 0.0.8) until <|return|>/<|call|> or
--max-new tokens. Argmax runs over all 201088 logits.

Usage: TIKTOKEN_ENCODINGS_BASE=<dir> python scripts/demo/hf_greedy.py \
           [--hf /work/scratch/demo-hf] [--out testdata/demo/hf_greedy.json]
(needs torch, transformers, safetensors and openai-harmony importable; e.g.
 PYTHONPATH=<demo venv site-packages> /work/venvs/torch-ref/bin/python ...)
"""

from __future__ import annotations

import argparse
import json
import os
import sys
from pathlib import Path

import torch

RETURN, CALL = 200002, 200012
ROOT = Path(__file__).resolve().parents[2]


def prompt_tokens(item, enc, H):
    conv = H.Conversation.from_json(json.dumps(item["conversation"]))
    return enc.render_conversation_for_completion(conv, H.Role.ASSISTANT)


@torch.no_grad()
def greedy(model, prompt, max_new):
    out = []
    past = None
    ids = torch.tensor([prompt])
    for _ in range(max_new):
        r = model(input_ids=ids, past_key_values=past, use_cache=True)
        past = r.past_key_values
        t = int(r.logits[0, -1].float().argmax())
        out.append(t)
        if t in (RETURN, CALL):
            break
        ids = torch.tensor([[t]])
    return out


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--hf", default="/work/scratch/demo-hf")
    ap.add_argument("--eval-set", default=str(ROOT / "scripts/demo/eval_set.jsonl"))
    ap.add_argument("--out", default=str(ROOT / "testdata/demo/hf_greedy.json"))
    ap.add_argument("--per-task", type=int, default=2)
    ap.add_argument("--max-new", type=int, default=128)
    args = ap.parse_args()
    if "TIKTOKEN_ENCODINGS_BASE" not in os.environ:
        sys.exit("set TIKTOKEN_ENCODINGS_BASE to a folder holding o200k_base.tiktoken")
    import openai_harmony as H
    import transformers
    from transformers import GptOssForCausalLM, Mxfp4Config

    enc = H.load_harmony_encoding(H.HarmonyEncodingName.HARMONY_GPT_OSS)
    model = GptOssForCausalLM.from_pretrained(
        args.hf, quantization_config=Mxfp4Config(dequantize=True), torch_dtype=torch.float32
    ).eval()
    model = model.float()
    items = [json.loads(l) for l in open(args.eval_set)]
    seen, cases = {}, []
    for it in items:
        if seen.get(it["task"], 0) >= args.per_task:
            continue
        seen[it["task"]] = seen.get(it["task"], 0) + 1
        p = prompt_tokens(it, enc, H)
        g = greedy(model, p, args.max_new)
        cases.append({"id": it["id"], "prompt_tokens": p, "greedy": g})
        print(it["id"], len(p), len(g), repr(enc.decode(g)[:80]), flush=True)
    meta = {
        "generator": "scripts/demo/hf_greedy.py",
        "transformers": transformers.__version__, "torch": torch.__version__,
        "openai_harmony": "0.0.8", "dtype": "float32 (bf16/MXFP4 weights dequantized)",
        "max_new": args.max_new, "stop": [RETURN, CALL],
    }
    Path(args.out).parent.mkdir(parents=True, exist_ok=True)
    json.dump({"meta": meta, "cases": cases}, open(args.out, "w"))
    print(f"wrote {len(cases)} cases to {args.out}")


if __name__ == "__main__":
    main()
