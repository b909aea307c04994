#!/usr/bin/env python3
"""Round trip of an adapter written by `gpt-oss finetune` through transformers + peft.

  1. `gpt-oss finetune` trains a LoRA adapter (attention and the experts of layer 1) on the
     real-vocabulary tiny checkpoint testdata/model/real-vocab/hf with the conversations of
     testdata/lora/finetune/data.jsonl, written to testdata/lora/finetune/adapter/;
  2. transformers (float32, eager, MXFP4 dequantized) loads the same checkpoint and peft's
     `PeftModel.from_pretrained` loads that adapter, unchanged;
  3. their logits on a fixed prompt (every 64th column and each position's top 16) go to
     logits.npy [len(prompt), len(logit_columns)], with golden.json (the prompt, the
     finetune command's flags, how far the adapter moves the logits, versions).

The Rust test (crates/cli/tests/finetune.rs) checks that our `logits --lora` on the committed
adapter equals peft's logits within 2e-3, and that finetune, run again with the same flags,
writes an adapter that does too. Run through finetune_roundtrip.sh (the venv of
make_lora_golden.sh).
"""

import argparse
import json
import os
import shutil
import subprocess

import numpy as np
import peft
import torch
import transformers
from peft import PeftModel

from make_lora_golden import load_base, materialize, save_npy

CASE = "real-vocab"
# <|start|>user<|message|>What is 12 * 3?<|end|><|start|>assistant
PROMPT = [200006, 1428, 200008, 4827, 382, 220, 899, 425, 220, 18, 30, 200007, 200006, 173781]
FLAGS = [
    "--targets", "attn+experts", "--expert-layers", "1", "--lr", "1e-2", "--batch-tokens", "1",
    "--holdout", "0", "--epochs", "3", "--seed", "3",
]


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--bin", required=True, help="a gpt-oss binary")
    ap.add_argument("--root", required=True, help="the repository")
    ap.add_argument("--work", required=True)
    args = ap.parse_args()
    out = os.path.join(args.root, "testdata/lora/finetune")
    hf = os.path.join(args.work, "hf")
    shutil.rmtree(args.work, ignore_errors=True)
    materialize(os.path.join(args.root, "testdata/model", CASE, "hf"), hf)
    adapter = os.path.join(out, "adapter")
    shutil.rmtree(adapter, ignore_errors=True)
    cmd = [args.bin, "finetune", "--model", hf, "--data", os.path.join(out, "data.jsonl"),
           "--out", adapter] + FLAGS
    subprocess.run(cmd, check=True)
    # what --resume needs is not part of the adapter
    shutil.rmtree(os.path.join(adapter, "checkpoint"), ignore_errors=True)

    ids = torch.tensor([PROMPT], dtype=torch.long)
    base = load_base(hf)
    with torch.inference_mode():
        plain = base(input_ids=ids, use_cache=False).logits[0].float()
    tuned_model = PeftModel.from_pretrained(base, adapter)
    tuned_model.eval()
    with torch.inference_mode():
        tuned = tuned_model(input_ids=ids, use_cache=False).logits[0].float()
    # Every 64th vocabulary column and each position's 16 highest: enough to compare, small
    # enough to commit (the full [14, 201088] would be 11 MB).
    cols = set(range(0, tuned.shape[1], 64))
    for row in tuned:
        cols.update(torch.topk(row, 16).indices.tolist())
    cols = sorted(cols)
    save_npy(os.path.join(out, "logits.npy"), tuned[:, cols].numpy())
    golden = {
        "case": CASE,
        "prompt": PROMPT,
        "logit_columns": cols,
        "finetune_flags": FLAGS,
        "adapter_moves_logits_max_abs": float((tuned - plain).abs().max()),
        "versions": {
            "torch": torch.__version__,
            "transformers": transformers.__version__,
            "peft": peft.__version__,
            "numpy": np.__version__,
        },
    }
    with open(os.path.join(out, "golden.json"), "w") as f:
        json.dump(golden, f, indent=1)
        f.write("\n")
    print(json.dumps(golden, indent=1))


if __name__ == "__main__":
    main()
