#!/usr/bin/env python3
"""Check that fast_gptoss.FastGptOss computes what transformers' GptOssForCausalLM computes.

Owns: the equivalence check only (random weights with non-trivial biases,
sinks and router, sequences longer than the sliding window, right padding).
Does not own: either model.

Loads one random state_dict into both modules (the parameter names are the
same) and compares the final hidden states, the logits and the gradients of
a loss through both. Exits non-zero when a difference exceeds the tolerance.
    python scripts/demo/check_fast.py            # ~20 s on 2 CPU cores
    python scripts/demo/check_fast.py --bench 4  # also: training tokens/s of both on a 12x340 batch
"""

from __future__ import annotations

import argparse
import os
import sys
import time
from pathlib import Path

os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")

import torch

sys.path.insert(0, str(Path(__file__).parent))
import train  # noqa: E402
from fast_gptoss import FastGptOss  # noqa: E402


def bench(ref, fast, vocab: int, steps: int, threads: int):
    """Forward + backward of the used-rows loss on one 12 x 340 batch (about one 4k-token step)."""
    torch.set_num_threads(threads)
    ids = torch.randint(0, vocab, (12, 340))
    tgt = torch.where(torch.rand(12, 340) < 0.4, torch.randint(0, vocab, (12, 340)), -1)
    for name, m in (("transformers", ref), ("fast", fast)):
        times = []
        for i in range(steps + 1):
            m.zero_grad(set_to_none=True)
            t = time.time()
            loss, _ = train.used_rows_loss(m, ids, tgt, vocab)
            loss.backward()
            if i:  # the first step warms up allocators and kernels
                times.append(time.time() - t)
        dt = sorted(times)[len(times) // 2]
        print(f"{name:12s} median step {dt:.2f}s  {ids.numel() / dt:.0f} tokens/s  ({threads} thread(s))")


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--bench", type=int, default=0, help="time N training steps of each implementation")
    ap.add_argument("--threads", type=int, default=1)
    args = ap.parse_args()
    torch.manual_seed(0)
    from transformers import GptOssForCausalLM

    vocab = 300
    cfg = train.hf_config(vocab)
    cfg._attn_implementation = "eager"
    ref = GptOssForCausalLM(cfg).float()
    fast = FastGptOss(cfg)
    with torch.no_grad():
        # larger than the init scale so that every path (sinks, clamps, routing) matters
        state = {}
        for k, v in ref.state_dict().items():
            if k.endswith("norm.weight"):
                state[k] = 1.0 + 0.2 * torch.randn_like(v)
            elif "sinks" in k:
                state[k] = torch.randn_like(v)
            elif "experts" in k:
                state[k] = 0.3 * torch.randn_like(v)
            else:
                state[k] = 0.15 * torch.randn_like(v)
        ref.load_state_dict(state)
    missing, unexpected = fast.load_state_dict(state, strict=False)
    if missing or unexpected:
        sys.exit(f"parameter names differ: missing {missing} unexpected {unexpected}")
    ids = torch.randint(0, vocab, (3, 300))
    ids[2, 170:] = 0  # right padding, as in training batches
    worst = 0.0
    h_ref = ref.model(input_ids=ids).last_hidden_state
    h_fast = fast.model(input_ids=ids).last_hidden_state
    l_ref, l_fast = ref.lm_head(h_ref), fast.lm_head(h_fast)
    d_h = (h_ref - h_fast).abs().max().item()
    d_l = (l_ref - l_fast).abs().max().item()
    print(f"hidden max|diff| {d_h:.3e}  logits max|diff| {d_l:.3e}  (logit scale {l_ref.abs().max().item():.2f})")
    worst = max(worst, d_l)
    tgt = torch.randint(0, vocab, ids.shape)
    torch.nn.functional.cross_entropy(l_ref.reshape(-1, vocab), tgt.reshape(-1)).backward()
    torch.nn.functional.cross_entropy(l_fast.reshape(-1, vocab), tgt.reshape(-1)).backward()
    g_ref = dict(ref.named_parameters())
    g_worst = 0.0
    for name, p in fast.named_parameters():
        gr = g_ref[name].grad
        d = (p.grad - gr).abs().max().item() / max(gr.abs().max().item(), 1e-12)
        g_worst = max(g_worst, d)
    print(f"gradients: worst relative max|diff| {g_worst:.3e} over {len(g_ref)} tensors")
    ok = worst < 1e-4 and g_worst < 1e-3
    print("OK" if ok else "MISMATCH")
    if args.bench:
        bench_cfg = train.hf_config(2084)
        bench_cfg._attn_implementation = "eager"
        torch.manual_seed(1)
        bench(GptOssForCausalLM(bench_cfg).float(), FastGptOss(bench_cfg), 2084, args.bench, args.threads)
    sys.exit(0 if ok else 1)


if __name__ == "__main__":
    main()
