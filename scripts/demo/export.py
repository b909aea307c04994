#!/usr/bin/env python3
"""Export the trained demo model as a real gpt-oss checkpoint (issue 5).

Owns: the original-layout checkpoint (assets/demo-model/config.json +
model.safetensors.gz), a Hugging Face-layout copy for transformers (scratch,
not committed), and the checks that OpenAI's torch reference loads it.
Does not own: training (train.py) or the Rust-side embedding of the asset.

Original layout (gpt-oss.md §3.1): bf16 tensors, experts as MXFP4
`.blocks` U8 [E, out, in/32, 16] + `.scales` U8 [E, out, in/32]. The trained
rows are scattered into full 201088-row embedding/unembedding tables whose
other rows are exactly zero. The expert weights in demo_model.pt already hold
MXFP4 values (train.py finalize_weights), so re-quantizing them is lossless;
export checks that.

Usage (venv with torch + safetensors, e.g. /work/venvs/torch-ref):
    python scripts/demo/export.py --model run/demo_model.pt \
        --assets assets/demo-model --hf-out /work/scratch/demo-hf --orig-out /work/scratch/demo-original
"""

from __future__ import annotations

import argparse
import gzip
import io
import json
import shutil
import sys
from pathlib import Path

import torch
from safetensors.torch import save, save_file

sys.path.insert(0, str(Path(__file__).parent))
from train import SHAPE, V_FULL, mxfp4_codes, mxfp4_dequant  # noqa: E402


def pack_mxfp4(w_out_in: torch.Tensor):
    """[E, out, in] float -> (blocks U8 [E, out, in/32, 16], scales U8 [E, out, in/32])."""
    codes, scales = mxfp4_codes(w_out_in)
    if not torch.equal(mxfp4_dequant(codes, scales), w_out_in.float()):
        raise SystemExit("expert weights are not MXFP4 values: was the model finalized by train.py?")
    lo, hi = codes[..., 0::2], codes[..., 1::2]  # element 2j in the low nibble, 2j+1 in the high
    packed = (lo | (hi << 4)).to(torch.uint8)
    *lead, half = packed.shape
    return packed.reshape(*lead, half // 16, 16).contiguous(), scales.contiguous()


def original_config() -> dict:
    s = SHAPE
    return {
        "num_hidden_layers": s["num_hidden_layers"],
        "num_experts": s["num_experts"],
        "experts_per_token": s["experts_per_token"],
        "vocab_size": V_FULL,
        "hidden_size": s["hidden_size"],
        "intermediate_size": s["intermediate_size"],
        "swiglu_limit": s["swiglu_limit"],
        "head_dim": s["head_dim"],
        "num_attention_heads": s["num_attention_heads"],
        "num_key_value_heads": s["num_key_value_heads"],
        "sliding_window": s["sliding_window"],
        "initial_context_length": s["initial_context_length"],
        "rope_theta": s["rope_theta"],
        "rope_scaling_factor": s["rope_scaling_factor"],
        "rope_ntk_alpha": s["rope_ntk_alpha"],
        "rope_ntk_beta": s["rope_ntk_beta"],
    }


def hf_config_dict() -> dict:
    s = SHAPE
    n = s["num_hidden_layers"]
    return {
        "architectures": ["GptOssForCausalLM"], "model_type": "gpt_oss",
        "attention_bias": True, "attention_dropout": 0.0, "eos_token_id": 200002, "pad_token_id": 199999,
        "experts_per_token": s["experts_per_token"], "num_experts_per_tok": s["experts_per_token"],
        "num_local_experts": s["num_experts"], "head_dim": s["head_dim"], "hidden_act": "silu",
        "hidden_size": s["hidden_size"], "intermediate_size": s["intermediate_size"],
        "initial_context_length": s["initial_context_length"], "initializer_range": 0.02,
        "max_position_embeddings": s["initial_context_length"] * int(s["rope_scaling_factor"]),
        "layer_types": ["sliding_attention" if i % 2 == 0 else "full_attention" for i in range(n)],
        "num_attention_heads": s["num_attention_heads"], "num_hidden_layers": n,
        "num_key_value_heads": s["num_key_value_heads"], "output_router_logits": False, "rms_norm_eps": 1e-05,
        "rope_scaling": {"beta_fast": s["rope_ntk_beta"], "beta_slow": s["rope_ntk_alpha"],
                         "factor": s["rope_scaling_factor"],
                         "original_max_position_embeddings": s["initial_context_length"],
                         "rope_type": "yarn", "truncate": False},
        "rope_theta": s["rope_theta"], "router_aux_loss_coef": 0.9, "sliding_window": s["sliding_window"],
        "swiglu_limit": s["swiglu_limit"], "tie_word_embeddings": False, "use_cache": True,
        "vocab_size": V_FULL,
        "quantization_config": {"modules_to_not_convert": ["model.layers.*.self_attn", "model.layers.*.mlp.router",
                                                           "model.embed_tokens", "lm_head"],
                                "quant_method": "mxfp4"},
    }


def build_tensors(ckpt: dict):
    st = ckpt["state"]
    used = torch.from_numpy(ckpt["used"].astype("int64"))
    s = SHAPE
    H = s["hidden_size"]
    bf = torch.bfloat16

    def full_rows(t):  # [U, H] -> [V, H], untrained rows exactly zero
        out = torch.zeros(V_FULL, H, dtype=bf)
        out[used] = t.to(bf)
        return out

    orig, hf = {}, {}
    orig["embedding.weight"] = hf["model.embed_tokens.weight"] = full_rows(st["model.embed_tokens.weight"])
    orig["unembedding.weight"] = hf["lm_head.weight"] = full_rows(st["lm_head.weight"])
    orig["norm.scale"] = hf["model.norm.weight"] = st["model.norm.weight"].to(bf)
    for n in range(s["num_hidden_layers"]):
        p = f"model.layers.{n}."
        b = f"block.{n}."
        g = lambda k: st[p + k].to(bf)  # noqa: E731
        orig[b + "attn.norm.scale"] = g("input_layernorm.weight")
        orig[b + "attn.qkv.weight"] = torch.cat([g(f"self_attn.{x}_proj.weight") for x in "qkv"], 0).contiguous()
        orig[b + "attn.qkv.bias"] = torch.cat([g(f"self_attn.{x}_proj.bias") for x in "qkv"], 0).contiguous()
        orig[b + "attn.sinks"] = g("self_attn.sinks")
        orig[b + "attn.out.weight"] = g("self_attn.o_proj.weight")
        orig[b + "attn.out.bias"] = g("self_attn.o_proj.bias")
        orig[b + "mlp.norm.scale"] = g("post_attention_layernorm.weight")
        orig[b + "mlp.gate.weight"] = g("mlp.router.weight")
        orig[b + "mlp.gate.bias"] = g("mlp.router.bias")
        # HF keeps experts as [E, in, out]; the checkpoint stores [E, out, in]
        w1 = st[p + "mlp.experts.gate_up_proj"].float().transpose(1, 2).contiguous()  # [E, 2I, H]
        w2 = st[p + "mlp.experts.down_proj"].float().transpose(1, 2).contiguous()  # [E, H, I]
        b1, s1 = pack_mxfp4(w1)
        b2, s2 = pack_mxfp4(w2)
        orig[b + "mlp.mlp1_weight.blocks"], orig[b + "mlp.mlp1_weight.scales"] = b1, s1
        orig[b + "mlp.mlp1_bias"] = g("mlp.experts.gate_up_proj_bias")
        orig[b + "mlp.mlp2_weight.blocks"], orig[b + "mlp.mlp2_weight.scales"] = b2, s2
        orig[b + "mlp.mlp2_bias"] = g("mlp.experts.down_proj_bias")
        for x in "qkvo":
            hf[p + f"self_attn.{x}_proj.weight"] = g(f"self_attn.{x}_proj.weight")
            hf[p + f"self_attn.{x}_proj.bias"] = g(f"self_attn.{x}_proj.bias")
        hf[p + "self_attn.sinks"] = orig[b + "attn.sinks"]
        hf[p + "input_layernorm.weight"] = orig[b + "attn.norm.scale"]
        hf[p + "post_attention_layernorm.weight"] = orig[b + "mlp.norm.scale"]
        hf[p + "mlp.router.weight"] = orig[b + "mlp.gate.weight"]
        hf[p + "mlp.router.bias"] = orig[b + "mlp.gate.bias"]
        hf[p + "mlp.experts.gate_up_proj_blocks"], hf[p + "mlp.experts.gate_up_proj_scales"] = b1, s1
        hf[p + "mlp.experts.gate_up_proj_bias"] = orig[b + "mlp.mlp1_bias"]
        hf[p + "mlp.experts.down_proj_blocks"], hf[p + "mlp.experts.down_proj_scales"] = b2, s2
        hf[p + "mlp.experts.down_proj_bias"] = orig[b + "mlp.mlp2_bias"]
    return orig, hf


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--model", required=True, help="demo_model.pt written by train.py")
    ap.add_argument("--assets", default=str(Path(__file__).resolve().parents[2] / "assets" / "demo-model"))
    ap.add_argument("--orig-out", default="/work/scratch/demo-original")
    ap.add_argument("--hf-out", default="/work/scratch/demo-hf")
    args = ap.parse_args()

    ckpt = torch.load(args.model, map_location="cpu", weights_only=False)
    orig, hf = build_tensors(ckpt)
    meta = {"format": "pt", "source": "gpt-oss-rs scripts/demo (issue 5 demo model)"}
    blob = save(orig, metadata=meta)

    assets = Path(args.assets)
    assets.mkdir(parents=True, exist_ok=True)
    cfg = original_config()
    (assets / "config.json").write_text(json.dumps(cfg, indent=2) + "\n")
    # deterministic gzip: no file name, mtime 0
    buf = io.BytesIO()
    with gzip.GzipFile(filename="", mode="wb", fileobj=buf, compresslevel=9, mtime=0) as gz:
        gz.write(blob)
    (assets / "model.safetensors.gz").write_bytes(buf.getvalue())

    o = Path(args.orig_out)
    o.mkdir(parents=True, exist_ok=True)
    (o / "model.safetensors").write_bytes(blob)
    shutil.copy(assets / "config.json", o / "config.json")

    h = Path(args.hf_out)
    h.mkdir(parents=True, exist_ok=True)
    save_file(hf, str(h / "model.safetensors"), metadata=meta)
    (h / "config.json").write_text(json.dumps(hf_config_dict(), indent=2) + "\n")

    n_total = sum(t.numel() for k, t in orig.items() if not k.endswith(".blocks") and not k.endswith(".scales"))
    n_total += sum(t.numel() * 2 for k, t in orig.items() if k.endswith(".blocks"))
    n_emb = 2 * V_FULL * SHAPE["hidden_size"]
    print(json.dumps({
        "safetensors_bytes": len(blob), "gzip_bytes": len(buf.getvalue()),
        "params_total": n_total, "params_non_embedding": n_total - n_emb,
        "trained_rows": int(len(ckpt["used"])), "tensors": len(orig),
    }, indent=1))


if __name__ == "__main__":
    main()
