#!/usr/bin/env python3
"""Writes a random PEFT LoRA adapter folder for a gpt-oss checkpoint's shapes, to measure what an
adapter costs (`gpt-oss bench --model DIR --lora OUT`) on checkpoints too large for torch here,
such as a `gpt-oss synth` 20b. Needs only numpy and safetensors (no torch, no peft).

The folder is what peft's save_pretrained writes for GptOssForCausalLM (adapter_config.json +
adapter_model.safetensors, f32, PEFT's tensor names and shapes: attention lora_A [r, in],
lora_B [out, r]; expert ParamWrapper lora_A [r*E, in], lora_B [out, r*E]), so it loads in peft too.
The numbers are random and mean nothing.

Usage: scripts/lora/random_adapter.py CHECKPOINT_DIR OUT_DIR [--rank 8] [--alpha 16]
           [--expert-layers 7,15,23] [--seed 0]
"""

import argparse
import json
import os

import numpy as np
from safetensors.numpy import save_file


def shapes(cfg):
    """(layers, hidden, q_dim, kv_dim, intermediate, experts) from original or HF config keys."""
    layers = cfg["num_hidden_layers"]
    hidden = cfg["hidden_size"]
    heads, kv_heads, head_dim = cfg["num_attention_heads"], cfg["num_key_value_heads"], cfg["head_dim"]
    experts = cfg.get("num_experts", cfg.get("num_local_experts"))
    return layers, hidden, heads * head_dim, kv_heads * head_dim, cfg["intermediate_size"], experts


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("checkpoint")
    ap.add_argument("out")
    ap.add_argument("--rank", type=int, default=8)
    ap.add_argument("--alpha", type=float, default=16)
    ap.add_argument("--expert-layers", default="", help="comma-separated layer indices (default: none)")
    ap.add_argument("--seed", type=int, default=0, help="random seed (two seeds: two different adapters)")
    args = ap.parse_args()
    with open(os.path.join(args.checkpoint, "config.json")) as f:
        cfg = json.load(f)
    n_layers, h, qd, kvd, inter, e = shapes(cfg)
    r = args.rank
    expert_layers = [int(x) for x in args.expert_layers.split(",") if x.strip()]
    rng = np.random.default_rng(args.seed)

    def rand(*shape, scale):
        return (rng.standard_normal(shape) * scale).astype(np.float32)

    tensors = {}
    for layer in range(n_layers):
        p = f"base_model.model.model.layers.{layer}."
        for name, d_in, d_out in [("q_proj", h, qd), ("k_proj", h, kvd), ("v_proj", h, kvd), ("o_proj", qd, h)]:
            tensors[f"{p}self_attn.{name}.lora_A.weight"] = rand(r, d_in, scale=d_in**-0.5)
            tensors[f"{p}self_attn.{name}.lora_B.weight"] = rand(d_out, r, scale=0.01)
        if layer in expert_layers:
            # peft nests the two ParamWrappers: down_proj (listed last) outermost.
            for name, d_in, d_out in [("experts.base_layer", h, 2 * inter), ("experts", inter, h)]:
                tensors[f"{p}mlp.{name}.lora_A.weight"] = rand(r * e, d_in, scale=d_in**-0.5)
                tensors[f"{p}mlp.{name}.lora_B.weight"] = rand(d_out, r * e, scale=0.01)
    targets = []
    for layer in expert_layers:
        targets += [f"{layer}.mlp.experts.gate_up_proj", f"{layer}.mlp.experts.down_proj"]
    config = {
        "peft_type": "LORA",
        "task_type": "CAUSAL_LM",
        "base_model_name_or_path": args.checkpoint,
        "r": r,
        "lora_alpha": args.alpha,
        "lora_dropout": 0.0,
        "bias": "none",
        "use_rslora": False,
        "use_dora": False,
        "fan_in_fan_out": False,
        "target_modules": ["q_proj", "k_proj", "v_proj", "o_proj"],
        "target_parameters": targets,
        "modules_to_save": None,
        "inference_mode": True,
    }
    os.makedirs(args.out, exist_ok=True)
    with open(os.path.join(args.out, "adapter_config.json"), "w") as f:
        json.dump(config, f, indent=2)
    save_file(tensors, os.path.join(args.out, "adapter_model.safetensors"))
    n = sum(t.size for t in tensors.values())
    print(f"wrote {args.out}: {len(tensors)} tensors, {n / 1e6:.1f} M parameters")


if __name__ == "__main__":
    main()
