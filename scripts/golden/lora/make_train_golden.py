#!/usr/bin/env python3
"""LoRA training references for the tiny golden checkpoints: loss, gradients and AdamW steps.

For every case in CASES this script
  1. loads the case's Hugging Face checkpoint from testdata/model/<case>/hf with transformers
     (GptOssForCausalLM, MXFP4 experts dequantized, float32, eager attention),
  2. wraps it with peft: LoraConfig(r=8, lora_alpha=16, the four attention projections as
     target_modules, mlp.experts.gate_up_proj / down_proj of some layers as target_parameters
     (both, or only one in a layer); rsLoRA in one case), lora_A from peft's seeded init, lora_B NON-ZERO random
     (peft's zero init would give lora_A no gradient), and saves it as a float32 PEFT adapter in
     testdata/lora/train/<case>/adapter/,
  3. picks a token sequence longer than the sliding window, resampled until every router top-k
     decision has a gap >= 1e-3 (so any correct implementation routes every token alike), and a
     loss mask over the positions (position t, when trained, predicts token t + 1),
  4. computes the mean cross-entropy over the trained positions and torch autograd's gradient of
     every LoRA tensor, written to grads.safetensors (float32, PEFT's tensor names),
  5. runs torch.optim.AdamW on the LoRA tensors from the adapter's values: two steps with
     weight_decay 0 (gradients g, then g / 2) and one step with weight_decay 0.1 (gradient g),
     lr 2e-4, betas (0.9, 0.999), eps 1e-8, writing the parameters after each step to
     adamw.safetensors as "<run>.<PEFT name>" (run: wd0_step1, wd0_step2, wd0.1_step1),
  6. writes golden.json (tokens, targets per position with -1 for untrained, loss, settings,
     versions).

Run through make_train_golden.sh (same venv as make_lora_golden.sh). Output: testdata/lora/train/.
"""

import argparse
import json
import os
import shutil
import sys

import numpy as np
import torch

import peft
import transformers
from peft import LoraConfig, get_peft_model
from safetensors.torch import save_file

from make_lora_golden import load_base, materialize, min_router_gap, versions

ROUTER_MIN_GAP = 1e-3
B_STD = 0.08
LR = 2e-4
BETAS = (0.9, 0.999)
EPS = 1e-8

CASES = [
    # sliding window 8: a 20-token sequence crosses it
    dict(name="tiny-2of4", use_rslora=False, n_tokens=20, seed=11,
         expert_params=["1.mlp.experts.gate_up_proj", "1.mlp.experts.down_proj", "3.mlp.experts.down_proj"]),
    # sliding window 16, 8 experts top-4, rsLoRA scaling
    dict(name="tiny-4of8-sharded", use_rslora=True, n_tokens=20, seed=12,
         expert_params=["0.mlp.experts.gate_up_proj", "0.mlp.experts.down_proj", "2.mlp.experts.gate_up_proj"]),
]


def lora_params(pm):
    return {n: p for n, p in pm.named_parameters() if "lora_" in n}


def peft_name(n):
    """named_parameters() name -> the name save_pretrained writes (adapter name dropped)."""
    return n.replace(".default.weight", ".weight")


def run_case(case, model_dir, work, out):
    name = case["name"]
    wdir = os.path.join(work, name)
    shutil.rmtree(wdir, ignore_errors=True)
    materialize(os.path.join(model_dir, name, "hf"), os.path.join(wdir, "hf"))
    model = load_base(os.path.join(wdir, "hf"))
    cfg = model.config
    k = cfg.num_experts_per_tok
    lcfg = LoraConfig(
        r=8,
        lora_alpha=16,
        lora_dropout=0.0,
        bias="none",
        use_rslora=case["use_rslora"],
        target_modules=["q_proj", "k_proj", "v_proj", "o_proj"],
        target_parameters=case["expert_params"],
        task_type="CAUSAL_LM",
    )
    torch.manual_seed(case["seed"])
    pm = get_peft_model(model, lcfg)
    pm.peft_config["default"].base_model_name_or_path = f"testdata/model/{name}/hf"
    gen = torch.Generator().manual_seed(case["seed"])
    with torch.no_grad():
        for pname, p in lora_params(pm).items():
            if "lora_B" in pname:
                p.copy_(torch.randn(p.shape, generator=gen) * B_STD)
    pm.eval()  # no dropout anywhere; autograd still runs

    rng = np.random.default_rng(case["seed"])
    n = case["n_tokens"]
    for _ in range(200):
        tokens = [int(t) for t in rng.integers(0, cfg.vocab_size, size=n)]
        seen = []
        hooks = [
            layer.mlp.router.register_forward_hook(lambda m, i, o: seen.append(o[0].detach().clone()))
            for layer in pm.get_base_model().model.layers
        ]
        with torch.no_grad():
            pm(input_ids=torch.tensor([tokens]), use_cache=False)
        for h in hooks:
            h.remove()
        gap = min_router_gap(seen, k)
        if gap >= ROUTER_MIN_GAP:
            break
    else:
        sys.exit(f"{name}: no sequence with router gaps >= {ROUTER_MIN_GAP}")

    # Trained positions: from the 4th on, skipping two, never the last (it has no next token).
    trained = [t for t in range(3, n - 1) if t not in (7, 12)]
    targets = [tokens[t + 1] if t in trained else -1 for t in range(n)]

    logits = pm(input_ids=torch.tensor([tokens]), use_cache=False).logits[0].float()
    idx = torch.tensor(trained)
    loss = torch.nn.functional.cross_entropy(logits[idx], torch.tensor([targets[t] for t in trained]))
    pm.zero_grad()
    loss.backward()
    params = lora_params(pm)
    grads = {peft_name(n): p.grad.detach().clone().contiguous() for n, p in params.items()}
    start = {n: p.detach().clone() for n, p in params.items()}

    dst = os.path.join(out, name)
    shutil.rmtree(dst, ignore_errors=True)
    os.makedirs(dst)
    adapter_dir = os.path.join(dst, "adapter")
    pm.save_pretrained(adapter_dir)
    os.remove(os.path.join(adapter_dir, "README.md"))
    save_file(grads, os.path.join(dst, "grads.safetensors"))

    steps = {}

    def adamw(run, wd, scales):
        with torch.no_grad():
            for n, p in params.items():
                p.copy_(start[n])
        opt = torch.optim.AdamW(list(params.values()), lr=LR, betas=BETAS, eps=EPS, weight_decay=wd)
        for i, s in enumerate(scales):
            for n, p in params.items():
                p.grad = grads[peft_name(n)] * s
            opt.step()
            for n, p in params.items():
                steps[f"{run}_step{i + 1}.{peft_name(n)}"] = p.detach().clone().contiguous()

    adamw("wd0", 0.0, [1.0, 0.5])
    adamw("wd0.1", 0.1, [1.0])
    save_file(steps, os.path.join(dst, "adamw.safetensors"))

    golden = {
        "case": name,
        "base": f"testdata/model/{name}/ (original/ and hf/ hold the same numbers)",
        "about": "transformers + peft float32 loss and autograd gradients of the LoRA tensors of adapter/ "
        "(lora_A from peft's init, lora_B random N(0, %g)); torch.optim.AdamW steps from them" % B_STD,
        "tokens": tokens,
        "targets": targets,
        "loss": float(loss.item()),
        "grad_norms": {n: float(g.norm().item()) for n, g in grads.items()},
        "adamw": {
            "lr": LR,
            "betas": list(BETAS),
            "eps": EPS,
            "runs": {"wd0": {"weight_decay": 0.0, "grad_scales": [1.0, 0.5]},
                     "wd0.1": {"weight_decay": 0.1, "grad_scales": [1.0]}},
        },
        "checks": {"min_router_gap": gap},
        "generator": "scripts/golden/lora/make_train_golden.py",
        "versions": versions(),
    }
    with open(os.path.join(dst, "golden.json"), "w") as f:
        json.dump(golden, f, indent=1)
    print(f"{name}: loss {loss.item():.6f}; {len(grads)} gradients; min router gap {gap:.4f}", flush=True)


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--models", required=True, help="testdata/model folder (the base checkpoints)")
    ap.add_argument("--out", required=True, help="testdata/lora/train folder")
    ap.add_argument("--work", default="/work/scratch/lora-golden/work-train", help="scratch copies")
    ap.add_argument("--case", action="append", help="only these case names")
    args = ap.parse_args()
    torch.set_num_threads(1)
    os.makedirs(args.work, exist_ok=True)
    for case in CASES:
        if args.case and case["name"] not in args.case:
            continue
        run_case(case, args.models, args.work, args.out)


if __name__ == "__main__":
    main()
