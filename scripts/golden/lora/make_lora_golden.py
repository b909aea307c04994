#!/usr/bin/env python3
"""PEFT LoRA adapters for the tiny golden checkpoints + transformers/peft reference logits.

For every case in CASES this script
  1. loads the case's Hugging Face checkpoint from testdata/model/<case>/hf with transformers
     (GptOssForCausalLM, MXFP4 experts dequantized, float32, eager attention),
  2. wraps it with peft's own API: LoraConfig(r=8, lora_alpha=16, the four attention projections
     as target_modules, and mlp.experts.gate_up_proj / down_proj of some layers as
     target_parameters, the recipe OpenAI published for gpt-oss),
  3. draws lora_A (peft's own init, seeded) and a NON-ZERO random lora_B (peft initializes it to
     zero, which would test nothing), rounded to bf16 values,
  4. saves the adapter with save_pretrained in bf16 (a few tens of KB) to
     testdata/lora/<case>/adapter/,
  5. runs the float32 model with the adapter on a few prompts and writes the logits
     (logits_<i>.npy, float32 [len(prompt), vocab]) and golden.json (prompts, the adapter's
     settings, how much each part of the adapter moves the logits, the smallest router top-k gap
     with the adapter on, versions).
Prompts are resampled until every router top-k decision with the adapter on has a gap >= 1e-3,
so any correct implementation routes every token to the same experts.

The original-layout checkpoint of the same case holds the same numbers, so the Rust test runs
this adapter on both layouts against the same logits.

Run through make_lora_golden.sh (it creates the venv). Output: testdata/lora/.
"""

import argparse
import gzip
import json
import os
import shutil
import sys

import numpy as np
import torch

import peft
import transformers
from peft import LoraConfig, get_peft_model
from transformers import GptOssForCausalLM, Mxfp4Config

ROUTER_MIN_GAP = 1e-3
B_STD = 0.08

CASES = [
    # H = I = 64: the two expert parameters' lora_A have the same shape, only lora_B tells them
    # apart (the loader must not rely on the order of the tensors).
    dict(name="tiny-2of4", expert_layers=[1, 2], use_rslora=False, prompt_lens=[16, 11], seed=1),
    # Sharded HF checkpoint, 8 experts top-4, rsLoRA scaling (alpha / sqrt(r)).
    dict(name="tiny-4of8-sharded", expert_layers=[0, 2], use_rslora=True, prompt_lens=[14, 9], seed=2),
]


def materialize(src, dst):
    """Copies a testdata folder, gunzipping *.gz files."""
    os.makedirs(dst, exist_ok=True)
    for name in os.listdir(src):
        s = os.path.join(src, name)
        if os.path.isdir(s):
            materialize(s, os.path.join(dst, name))
        elif name.endswith(".gz"):
            with gzip.open(s, "rb") as fi, open(os.path.join(dst, name[:-3]), "wb") as fo:
                shutil.copyfileobj(fi, fo)
        else:
            shutil.copyfile(s, os.path.join(dst, name))


def load_base(path):
    m = GptOssForCausalLM.from_pretrained(
        path,
        dtype=torch.float32,
        attn_implementation="eager",
        device_map=None,
        quantization_config=Mxfp4Config(dequantize=True),
    )
    m.eval()
    return m


@torch.inference_mode()
def logits_and_router(model, tokens):
    """float32 logits [T, vocab] and every layer's router logits [L][T, E]."""
    seen = []
    base = model.get_base_model() if hasattr(model, "get_base_model") else model
    hooks = [
        layer.mlp.router.register_forward_hook(lambda m, i, o: seen.append(o[0].detach().clone()))
        for layer in base.model.layers
    ]
    try:
        out = model(input_ids=torch.tensor([tokens], dtype=torch.long), use_cache=False).logits[0].float()
    finally:
        for h in hooks:
            h.remove()
    return out, seen


def min_router_gap(router, k):
    gaps = []
    for g in router:
        s = torch.sort(g, dim=-1, descending=True).values
        gaps.append((s[:, k - 1] - s[:, k]).min().item())
    return min(gaps)


def save_npy(path, a):
    a = np.ascontiguousarray(a, dtype="<f4")
    np.save(path, a)


def run_case(case, model_dir, work, out):
    name = case["name"]
    wdir = os.path.join(work, name)
    shutil.rmtree(wdir, ignore_errors=True)
    materialize(os.path.join(model_dir, name, "hf"), os.path.join(wdir, "hf"))
    model = load_base(os.path.join(wdir, "hf"))
    cfg = model.config
    k = cfg.num_experts_per_tok
    targets = []
    for layer in case["expert_layers"]:
        targets += [f"{layer}.mlp.experts.gate_up_proj", f"{layer}.mlp.experts.down_proj"]
    lcfg = LoraConfig(
        r=8,
        lora_alpha=16,
        lora_dropout=0.0,
        bias="none",
        use_rslora=case["use_rslora"],
        target_modules=["q_proj", "k_proj", "v_proj", "o_proj"],
        target_parameters=targets,
        task_type="CAUSAL_LM",
    )
    torch.manual_seed(case["seed"])
    pm = get_peft_model(model, lcfg)
    # Name the base by its place in the repo rather than the scratch copy it was read from.
    pm.peft_config["default"].base_model_name_or_path = f"testdata/model/{name}/hf"
    gen = torch.Generator().manual_seed(case["seed"])
    with torch.no_grad():
        for pname, p in pm.named_parameters():
            if "lora_B" in pname:
                p.copy_(torch.randn(p.shape, generator=gen) * B_STD)
            if "lora_" in pname:
                # bf16 values, so the bf16 file holds exactly the numbers the reference ran with
                p.copy_(p.to(torch.bfloat16).to(torch.float32))
    pm.eval()

    # Prompts: resampled until the adapter-on router decisions all have a clear gap.
    rng = np.random.default_rng(case["seed"])
    prompts, gaps = [], []
    for n in case["prompt_lens"]:
        for attempt in range(200):
            toks = [int(t) for t in rng.integers(0, cfg.vocab_size, size=n)]
            _, router = logits_and_router(pm, toks)
            gap = min_router_gap(router, k)
            if gap >= ROUTER_MIN_GAP:
                break
        else:
            sys.exit(f"{name}: no prompt of length {n} with router gaps >= {ROUTER_MIN_GAP}")
        prompts.append(toks)
        gaps.append(gap)

    # How much each part of the adapter moves the logits (it must bite).
    def max_abs(a, b):
        return float((a - b).abs().max().item())

    full = [logits_and_router(pm, p)[0] for p in prompts]
    with pm.disable_adapter():
        base = [logits_and_router(pm, p)[0] for p in prompts]
    saved = {n: p.detach().clone() for n, p in pm.named_parameters() if "lora_B" in n}

    def only(keep):
        with torch.no_grad():
            for n, p in pm.named_parameters():
                if "lora_B" in n:
                    p.copy_(saved[n] if keep(n) else torch.zeros_like(p))
        res = [logits_and_router(pm, p)[0] for p in prompts]
        with torch.no_grad():
            for n, p in pm.named_parameters():
                if "lora_B" in n:
                    p.copy_(saved[n])
        return res

    attn_only = only(lambda n: "self_attn" in n)
    experts_only = only(lambda n: "experts" in n)
    bites = {
        "adapter_vs_base": max(max_abs(a, b) for a, b in zip(full, base)),
        "attention_part": max(max_abs(a, b) for a, b in zip(attn_only, base)),
        "experts_part": max(max_abs(a, b) for a, b in zip(experts_only, base)),
    }

    dst = os.path.join(out, name)
    shutil.rmtree(dst, ignore_errors=True)
    os.makedirs(dst)
    adapter_dir = os.path.join(dst, "adapter")
    # The adapter is saved in bf16 (its values already are bf16 numbers).
    pm_bf16 = pm
    for n, p in pm_bf16.named_parameters():
        if "lora_" in n:
            p.data = p.data.to(torch.bfloat16)
    pm_bf16.save_pretrained(adapter_dir)
    os.remove(os.path.join(adapter_dir, "README.md"))  # peft's model-card template, nothing to test
    for i, logits in enumerate(full):
        save_npy(os.path.join(dst, f"logits_{i}.npy"), logits.numpy())
    with open(os.path.join(adapter_dir, "adapter_config.json")) as f:
        saved_cfg = json.load(f)
    from safetensors import safe_open

    with safe_open(os.path.join(adapter_dir, "adapter_model.safetensors"), "pt") as f:
        tensors = {n: list(f.get_slice(n).get_shape()) for n in f.keys()}
    golden = {
        "case": name,
        "base": f"testdata/model/{name}/ (original/ and hf/ hold the same numbers)",
        "about": "transformers + peft float32 logits of the base checkpoint with the PEFT adapter in adapter/ "
        "(lora_A from peft's init, lora_B random N(0, %g), both rounded to bf16)" % B_STD,
        "adapter": {
            "r": saved_cfg["r"],
            "lora_alpha": saved_cfg["lora_alpha"],
            "use_rslora": saved_cfg.get("use_rslora", False),
            "target_modules": saved_cfg["target_modules"],
            "target_parameters": saved_cfg["target_parameters"],
            "tensors": tensors,
        },
        "prompts": prompts,
        "logits": [f"logits_{i}.npy" for i in range(len(prompts))],
        "checks": {"min_router_gap_with_adapter": min(gaps)},
        "bite_max_abs": bites,
        "generator": "scripts/golden/lora/make_lora_golden.py",
        "versions": versions(),
    }
    with open(os.path.join(dst, "golden.json"), "w") as f:
        json.dump(golden, f, indent=1)
    print(f"{name}: bites {json.dumps(bites)}; min router gap {min(gaps):.4f}", flush=True)


def versions():
    import importlib.metadata as md

    return {
        "python": sys.version.split()[0],
        "torch": torch.__version__,
        "transformers": transformers.__version__,
        "peft": peft.__version__,
        "safetensors": md.version("safetensors"),
        "numpy": np.__version__,
    }


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--models", required=True, help="testdata/model folder (the base checkpoints)")
    ap.add_argument("--out", required=True, help="testdata/lora folder")
    ap.add_argument("--work", default="/work/scratch/lora-golden/work", help="scratch copies")
    ap.add_argument("--case", action="append", help="only these case names")
    args = ap.parse_args()
    torch.set_num_threads(2)
    os.makedirs(args.work, exist_ok=True)
    for case in CASES:
        if args.case and case["name"] not in args.case:
            continue
        run_case(case, args.models, args.work, args.out)


if __name__ == "__main__":
    main()
