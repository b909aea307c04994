#!/usr/bin/env python3
"""Tiny random gpt-oss checkpoints + reference logits for the Rust model tests.

For every case in CASES this script
  1. draws random weights (seeded, so the output is reproducible),
  2. quantizes the expert matrices to MXFP4 itself (scale byte e+127 with
     e = ceil(log2(amax/6)), nearest FP4 code with ties to even, low nibble =
     even element) and checks bit for bit that BOTH references' dequantizers
     give back the intended values,
  3. writes the checkpoint in the original layout (what gpt_oss.torch loads)
     and in the Hugging Face layout (what transformers loads), optionally
     sharded, optionally also as the dequantized bf16 HF variant,
  4. runs OpenAI's torch reference (gpt_oss.torch.model.Transformer) upcast to
     float32 (the oracle), and in bf16 as published, and transformers'
     GptOssForCausalLM in float32 and bf16, and records how far they agree,
  5. resamples the prompts until every router top-k decision and every greedy
     argmax of the float32 reference has a clear gap, so that any correct
     implementation makes the same discrete choices,
  6. switches off each feature (sliding window, sinks, YaRN, SwiGLU clamp) in
     the reference and records how far the logits move, proving each bites.

Run through generate.sh (it creates the pinned venv). Output: testdata/model/.
"""

import argparse
import copy
import gzip
import hashlib
import json
import math
import os
import shutil
import sys
import time

import numpy as np
import torch
from safetensors.torch import save_file

import gpt_oss.torch.model as ref_model
from gpt_oss.torch.model import Transformer
from gpt_oss.torch.weights import Checkpoint
import transformers
from transformers import GptOssForCausalLM, Mxfp4Config
from transformers.integrations.mxfp4 import convert_moe_packed_tensors

GZIP_OVER_BYTES = 1_000_000
ROUTER_MIN_GAP = 1e-3
GREEDY_MIN_MARGIN = 1e-3
N_GREEDY = 40

# Every case keeps checkpoint key names of gpt_oss ModelConfig; the extra keys
# (prefixed "_") steer the generator only.
BASE = dict(
    initial_context_length=4096,
    rope_theta=150000.0,
    rope_scaling_factor=32.0,
    rope_ntk_alpha=1.0,
    rope_ntk_beta=32.0,
)

CASES = [
    dict(
        BASE,
        _name="tiny-2of4",
        _about="4 layers, top-2 of 4 experts, window 8 over 24 tokens, SwiGLU limit 1.5 "
        "(clamp bites), GQA 4 q-heads / 2 kv-heads, also written as dequantized hf-bf16",
        _seed=1,
        num_hidden_layers=4,
        num_experts=4,
        experts_per_token=2,
        vocab_size=512,
        hidden_size=64,
        intermediate_size=64,
        swiglu_limit=1.5,
        head_dim=16,
        num_attention_heads=4,
        num_key_value_heads=2,
        sliding_window=8,
        _n_tokens=24,
        _greedy_prompt_len=6,
        _mlp1_scale=1.5,
        _mlp2_scale=1.0,
        _shards=1,
        _hf_bf16=True,
    ),
    dict(
        BASE,
        _name="tiny-4of8-sharded",
        _about="3 layers, top-4 of 8 experts, window 16 over 40 tokens, real SwiGLU limit 7 "
        "with large expert weights (clamp bites), 8 q-heads / 2 kv-heads (head space 128 > "
        "hidden 96), HF layout sharded into 3 files with an index (hub-style 0-based names)",
        _seed=2,
        num_hidden_layers=3,
        num_experts=8,
        experts_per_token=4,
        vocab_size=1000,
        hidden_size=96,
        intermediate_size=64,
        swiglu_limit=7.0,
        head_dim=16,
        num_attention_heads=8,
        num_key_value_heads=2,
        sliding_window=16,
        _n_tokens=40,
        _greedy_prompt_len=8,
        _mlp1_scale=5.0,
        _mlp2_scale=0.3,
        _shards=3,
        _hf_bf16=False,
    ),
    dict(
        BASE,
        _name="window128",
        _about="4 layers, top-2 of 8 experts, the real window 128 over 150 tokens, head_dim 8, "
        "rope_theta 10000 and initial_context_length 2048 (other YaRN low/high), 4 q-heads / "
        "1 kv-head; greedy prompt of 100 tokens so the continuation crosses the window",
        _seed=3,
        num_hidden_layers=4,
        num_experts=8,
        experts_per_token=2,
        vocab_size=384,
        hidden_size=32,
        intermediate_size=32,
        swiglu_limit=4.0,
        head_dim=8,
        num_attention_heads=4,
        num_key_value_heads=1,
        sliding_window=128,
        initial_context_length=2048,
        rope_theta=10000.0,
        _n_tokens=150,
        _greedy_prompt_len=100,
        _mlp1_scale=3.0,
        _mlp2_scale=0.5,
        _shards=1,
        _hf_bf16=False,
    ),
    dict(
        BASE,
        _name="real-vocab",
        _about="the real vocabulary 201088 (hidden 64), 2 layers, top-2 of 4 experts, 2 q-heads "
        "of the real head_dim 64 / 1 kv-head, window 3 over 4 tokens; embedding rows zero except "
        "an active id set spread over the whole range (incl. 199998..200013 and 201087), "
        "unembedding dense on the active ids and 2-sparse elsewhere (compresses well)",
        _seed=4,
        num_hidden_layers=2,
        num_experts=4,
        experts_per_token=2,
        vocab_size=201088,
        hidden_size=64,
        intermediate_size=32,
        swiglu_limit=3.0,
        head_dim=64,
        num_attention_heads=2,
        num_key_value_heads=1,
        sliding_window=3,
        _n_tokens=4,
        _greedy_prompt_len=4,
        _mlp1_scale=2.5,
        _mlp2_scale=0.7,
        _shards=1,
        _hf_bf16=False,
        _real_vocab=True,
    ),
]

CONFIG_KEYS = [
    "num_hidden_layers",
    "num_experts",
    "experts_per_token",
    "vocab_size",
    "hidden_size",
    "intermediate_size",
    "swiglu_limit",
    "head_dim",
    "num_attention_heads",
    "num_key_value_heads",
    "sliding_window",
    "initial_context_length",
    "rope_theta",
    "rope_scaling_factor",
    "rope_ntk_alpha",
    "rope_ntk_beta",
]

FP4_MAGNITUDES = [0.0, 0.5, 1.0, 1.5, 2.0, 3.0, 4.0, 6.0]


# --------------------------------------------------------------------------- MXFP4


def quantize_mxfp4(w):
    """f32 [..., rows, n_in] -> (blocks u8 [..., rows, n_in/32, 16], scales u8 [..., rows, n_in/32],
    dequantized f32 [..., rows, n_in])."""
    *lead, n_in = w.shape
    assert n_in % 32 == 0, "MXFP4 needs the input dim to be a multiple of 32"
    blk = w.to(torch.float64).reshape(*lead, n_in // 32, 32)
    amax = blk.abs().amax(-1)
    safe = torch.where(amax > 0, amax, torch.ones_like(amax))
    e = torch.where(amax > 0, torch.ceil(torch.log2(safe / 6.0)), torch.zeros_like(amax))
    scaled = blk / torch.pow(2.0, e).unsqueeze(-1)
    # log2 rounding could leave amax/2^e a hair above 6: bump e there.
    over = scaled.abs().amax(-1) > 6.0
    e = e + over.to(e.dtype)
    scaled = blk / torch.pow(2.0, e).unsqueeze(-1)
    assert scaled.abs().max() <= 6.0
    assert e.min() >= -127 and e.max() <= 127
    mags = torch.tensor(FP4_MAGNITUDES, dtype=torch.float64)
    dist = (scaled.abs().unsqueeze(-1) - mags).abs()  # [..., 32, 8]
    best = dist.min(-1, keepdim=True).values
    codes = torch.arange(8)
    # among equally near codes prefer the even one (mantissa bit 0): ties to even
    key = torch.where(dist == best, (codes % 2) * 16 + codes, torch.full_like(codes, 1000))
    code = key.argmin(-1)  # [..., 32] in 0..7
    neg = (scaled < 0) & (code != 0)
    nib = (code | (neg.to(torch.long) << 3)).to(torch.uint8)
    packed = nib[..., 0::2] | (nib[..., 1::2] << 4)  # element 2j low nibble, 2j+1 high
    scales = (e + 127).to(torch.uint8)
    deq = mags[code] * torch.where(neg, -1.0, 1.0) * torch.pow(2.0, e).unsqueeze(-1)
    return packed.contiguous(), scales.contiguous(), deq.reshape(*lead, n_in).to(torch.float32)


def check_dequantizers(blocks, scales, intended, label):
    """Both references' dequantizers must reproduce `intended` bit for bit."""
    # torch ref: Checkpoint._get_mxfp4_tensor reads from files; call its core on tensors
    ck = Checkpoint.__new__(Checkpoint)
    ck._get_tensor = lambda name: {"b": blocks, "s": scales}[name]
    ck.tensor_name_to_file = {"b": None, "s": None}
    ck.device_str = "cpu"
    ref = ck._get_mxfp4_tensor("b", "s", dtype=torch.bfloat16)
    hf = convert_moe_packed_tensors(blocks, scales, dtype=torch.bfloat16)  # transposed [E, in, out]
    want = intended.to(torch.bfloat16)
    assert torch.equal(want.float(), intended), f"{label}: intended values not bf16-exact"
    assert torch.equal(ref.view(torch.int16), want.view(torch.int16)), f"{label}: torch ref dequant differs"
    assert torch.equal(hf.transpose(1, 2).contiguous().view(torch.int16), want.view(torch.int16)), (
        f"{label}: transformers dequant differs"
    )


# --------------------------------------------------------------------------- weights


def make_weights(case):
    g = torch.Generator().manual_seed(1000 + case["_seed"])

    def randn(*shape, std=1.0):
        return torch.randn(*shape, generator=g) * std

    def bf(t):  # every stored non-expert number is a bf16 value
        return t.to(torch.bfloat16)

    L = case["num_hidden_layers"]
    E = case["num_experts"]
    H = case["hidden_size"]
    I = case["intermediate_size"]
    V = case["vocab_size"]
    D = case["head_dim"]
    NH = case["num_attention_heads"]
    NKV = case["num_key_value_heads"]
    qkv_dim = D * (NH + 2 * NKV)

    t = {}  # original names -> tensors to store (bf16 / u8)
    deq = {}  # expert weight name -> f32 dequantized values [E, out, in]
    active = None
    if case.get("_real_vocab"):
        special = list(range(199998, 200014)) + [0, 1, 2, 100000, 199997, 201086, 201087]
        rest = torch.randperm(V, generator=g)[:300].tolist()
        active = sorted(set(special + rest))
        emb = torch.zeros(V, H)
        emb[active] = randn(len(active), H)
        # 2-sparse rows from a small set of exactly representable values elsewhere
        vals = torch.tensor([-0.5, -0.375, -0.25, -0.125, 0.125, 0.25, 0.375, 0.5])
        ids = torch.arange(V)
        unemb = torch.zeros(V, H)
        unemb[ids, ids % H] = vals[(ids * 2654435761) % 8]
        unemb[ids, (ids // H + 3 * ids + 1) % H] += vals[(ids * 40503 + 7) % 8]
        unemb[active] = randn(len(active), H, std=2.5 / math.sqrt(H))
    else:
        emb = randn(V, H)
        unemb = randn(V, H, std=2.0 / math.sqrt(H))
    t["embedding.weight"] = bf(emb)
    for n in range(L):
        p = f"block.{n}."
        t[p + "attn.norm.scale"] = bf(1.0 + 0.3 * randn(H))
        t[p + "attn.qkv.weight"] = bf(randn(qkv_dim, H, std=1.0 / math.sqrt(H)))
        t[p + "attn.qkv.bias"] = bf(randn(qkv_dim, std=0.3))
        t[p + "attn.sinks"] = bf(torch.rand(NH, generator=g) * 3.5 - 1.0)
        t[p + "attn.out.weight"] = bf(randn(H, NH * D, std=1.0 / math.sqrt(NH * D)))
        t[p + "attn.out.bias"] = bf(randn(H, std=0.1))
        t[p + "mlp.norm.scale"] = bf(1.0 + 0.3 * randn(H))
        t[p + "mlp.gate.weight"] = bf(randn(E, H, std=2.0 / math.sqrt(H)))
        t[p + "mlp.gate.bias"] = bf(randn(E, std=0.5))
        for name, shape, std in (
            ("mlp1_weight", (E, 2 * I, H), case["_mlp1_scale"] / math.sqrt(H)),
            ("mlp2_weight", (E, H, I), case["_mlp2_scale"] / math.sqrt(I)),
        ):
            blocks, scales, values = quantize_mxfp4(randn(*shape, std=std))
            check_dequantizers(blocks, scales, values, p + name)
            t[p + f"mlp.{name}.blocks"] = blocks
            t[p + f"mlp.{name}.scales"] = scales
            deq[p + f"mlp.{name}"] = values
        t[p + "mlp.mlp1_bias"] = bf(randn(E, 2 * I, std=0.5))
        t[p + "mlp.mlp2_bias"] = bf(randn(E, H, std=0.1))
    t["norm.scale"] = bf(1.0 + 0.3 * randn(H))
    t["unembedding.weight"] = bf(unemb)
    return t, deq, active


def original_config(case):
    cfg = {k: case[k] for k in CONFIG_KEYS}
    for k in ("swiglu_limit", "rope_theta", "rope_scaling_factor", "rope_ntk_alpha", "rope_ntk_beta"):
        cfg[k] = float(cfg[k])
    return cfg


def hf_config(case, quantized):
    L = case["num_hidden_layers"]
    real_vocab = case["vocab_size"] == 201088
    cfg = {
        "architectures": ["GptOssForCausalLM"],
        "model_type": "gpt_oss",
        "attention_bias": True,
        "attention_dropout": 0.0,
        # the real special ids only exist in the real vocabulary
        "eos_token_id": 200002 if real_vocab else None,
        "pad_token_id": 199999 if real_vocab else None,
        "experts_per_token": case["experts_per_token"],
        "num_experts_per_tok": case["experts_per_token"],
        "num_local_experts": case["num_experts"],
        "head_dim": case["head_dim"],
        "hidden_act": "silu",
        "hidden_size": case["hidden_size"],
        "intermediate_size": case["intermediate_size"],
        "initial_context_length": case["initial_context_length"],
        "initializer_range": 0.02,
        # transformers derives the YaRN factor from this ratio when
        # original_max_position_embeddings is given: keep it consistent
        "max_position_embeddings": int(case["initial_context_length"] * case["rope_scaling_factor"]),
        "layer_types": ["sliding_attention" if i % 2 == 0 else "full_attention" for i in range(L)],
        "num_attention_heads": case["num_attention_heads"],
        "num_hidden_layers": L,
        "num_key_value_heads": case["num_key_value_heads"],
        "output_router_logits": False,
        "rms_norm_eps": 1e-05,
        "rope_scaling": {
            "beta_fast": float(case["rope_ntk_beta"]),
            "beta_slow": float(case["rope_ntk_alpha"]),
            "factor": float(case["rope_scaling_factor"]),
            "original_max_position_embeddings": case["initial_context_length"],
            "rope_type": "yarn",
            "truncate": False,
        },
        "rope_theta": float(case["rope_theta"]),
        "router_aux_loss_coef": 0.9,
        "sliding_window": case["sliding_window"],
        "swiglu_limit": float(case["swiglu_limit"]),
        "tie_word_embeddings": False,
        "use_cache": True,
        "vocab_size": case["vocab_size"],
    }
    if quantized:
        cfg["quantization_config"] = {
            "modules_to_not_convert": [
                "model.layers.*.self_attn",
                "model.layers.*.mlp.router",
                "model.embed_tokens",
                "lm_head",
            ],
            "quant_method": "mxfp4",
        }
    return cfg


def hf_tensors(case, t, deq, quantized):
    """Original-name tensors -> HF names (q/k/v split from qkv rows)."""
    D, NH, NKV = case["head_dim"], case["num_attention_heads"], case["num_key_value_heads"]
    q_end, k_end = NH * D, (NH + NKV) * D
    h = {"model.embed_tokens.weight": t["embedding.weight"]}
    for n in range(case["num_hidden_layers"]):
        o, p = f"block.{n}.", f"model.layers.{n}."
        h[p + "input_layernorm.weight"] = t[o + "attn.norm.scale"]
        for part in ("weight", "bias"):
            qkv = t[o + f"attn.qkv.{part}"]
            h[p + f"self_attn.q_proj.{part}"] = qkv[:q_end].clone()
            h[p + f"self_attn.k_proj.{part}"] = qkv[q_end:k_end].clone()
            h[p + f"self_attn.v_proj.{part}"] = qkv[k_end:].clone()
            h[p + f"self_attn.o_proj.{part}"] = t[o + f"attn.out.{part}"]
        h[p + "self_attn.sinks"] = t[o + "attn.sinks"]
        h[p + "post_attention_layernorm.weight"] = t[o + "mlp.norm.scale"]
        h[p + "mlp.router.weight"] = t[o + "mlp.gate.weight"]
        h[p + "mlp.router.bias"] = t[o + "mlp.gate.bias"]
        x = p + "mlp.experts."
        for ours, theirs in (("mlp1", "gate_up_proj"), ("mlp2", "down_proj")):
            if quantized:
                h[x + theirs + "_blocks"] = t[o + f"mlp.{ours}_weight.blocks"]
                h[x + theirs + "_scales"] = t[o + f"mlp.{ours}_weight.scales"]
            else:  # dequantized variant stores [E, in, out]
                h[x + theirs] = deq[o + f"mlp.{ours}_weight"].transpose(1, 2).contiguous().to(torch.bfloat16)
            h[x + theirs + "_bias"] = t[o + f"mlp.{ours}_bias"]
    h["model.norm.weight"] = t["norm.scale"]
    h["lm_head.weight"] = t["unembedding.weight"]
    return h


def write_safetensors_dir(path, tensors, config, n_shards, file_stem="model"):
    os.makedirs(path, exist_ok=True)
    with open(os.path.join(path, "config.json"), "w") as f:
        json.dump(config, f, indent=2, sort_keys=True)
        f.write("\n")
    tensors = {k: v.contiguous() for k, v in tensors.items()}
    if n_shards == 1:
        save_file(tensors, os.path.join(path, f"{file_stem}.safetensors"), metadata={"format": "pt"})
        return
    # Hub style: files numbered from 0 and "of" the last index (model-00000-of-00002 ...).
    names = list(tensors)
    per = math.ceil(len(names) / n_shards)
    weight_map, total = {}, 0
    for s in range(n_shards):
        fname = f"{file_stem}-{s:05d}-of-{n_shards - 1:05d}.safetensors"
        part = {k: tensors[k] for k in names[s * per : (s + 1) * per]}
        save_file(part, os.path.join(path, fname), metadata={"format": "pt"})
        for k, v in part.items():
            weight_map[k] = fname
            total += v.numel() * v.element_size()
    with open(os.path.join(path, f"{file_stem}.safetensors.index.json"), "w") as f:
        json.dump({"metadata": {"total_size": total}, "weight_map": weight_map}, f, indent=2, sort_keys=True)
        f.write("\n")


# --------------------------------------------------------------------------- references


def load_torch_ref(path, f32):
    m = Transformer.from_checkpoint(path, device="cpu")
    return m.float() if f32 else m


def load_hf(path, dtype, quantized=True):
    kw = dict(dtype=dtype, attn_implementation="eager", device_map=None)
    if quantized:
        kw["quantization_config"] = Mxfp4Config(dequantize=True)
    m = GptOssForCausalLM.from_pretrained(path, **kw)
    m.eval()
    return m


@torch.inference_mode()
def torch_logits(model, tokens):
    return model(torch.tensor(tokens, dtype=torch.int32)).float()


@torch.inference_mode()
def hf_logits(model, tokens):
    return model(input_ids=torch.tensor([tokens], dtype=torch.long), use_cache=False).logits[0].float()


@torch.inference_mode()
def router_logits_f32(model, tokens):
    """Router logits of every layer [L][T, E] from the torch reference."""
    seen = []
    hooks = [b.mlp.gate.register_forward_hook(lambda m, i, o: seen.append(o.detach().clone())) for b in model.block]
    try:
        out = torch_logits(model, tokens)
    finally:
        for h in hooks:
            h.remove()
    return seen, out


def min_router_gap(router, k):
    gaps = []
    for g in router:
        s = torch.sort(g, dim=-1, descending=True).values
        gaps.append((s[:, k - 1] - s[:, k]).min().item())
    return min(gaps)


def top_margin(row):
    top2 = torch.topk(row, 2).values
    return (top2[0] - top2[1]).item()


@torch.inference_mode()
def greedy(model, prompt, n):
    seq, margins = list(prompt), []
    for _ in range(n):  # a full forward per step, as the reference TokenGenerator does
        last = torch_logits(model, seq)[-1]
        margins.append(top_margin(last))
        seq.append(int(torch.argmax(last).item()))
    return seq[len(prompt) :], min(margins)


def check_hf_weights(hf_model, case, t, deq):
    """transformers must see exactly the numbers we meant (f32 load)."""
    sd = hf_model.state_dict()
    want = hf_tensors(case, t, deq, quantized=False)
    for k, v in want.items():
        got = sd[k]
        if not torch.equal(got.float(), v.float()):
            raise AssertionError(f"transformers param {k} differs from the intended values")
    return len(want)


# --------------------------------------------------------------------------- features


@torch.inference_mode()
def feature_bites(model_f32, tokens, base):
    out = {}

    def run(mutate):
        m = copy.deepcopy(model_f32)
        mutate(m)
        return (torch_logits(m, tokens) - base).abs().max().item()

    def no_window(m):
        for b in m.block:
            b.attn.sliding_window = 0

    def no_sinks(m):
        for b in m.block:
            b.attn.sinks.data.fill_(float("-inf"))

    def no_yarn(m):
        for b in m.block:
            b.attn.rope.scaling_factor = 1.0

    def no_clamp(m):
        for b in m.block:
            b.mlp.swiglu_limit = float("inf")

    out["no_sliding_window"] = run(no_window)
    out["no_sinks"] = run(no_sinks)
    out["no_yarn"] = run(no_yarn)
    out["no_swiglu_clamp"] = run(no_clamp)
    return out


@torch.inference_mode()
def clamp_stats(model_f32, tokens, limit):
    """Fraction of SwiGLU inputs the clamp changes (gate above, linear both sides)."""
    stats = {"gate": 0, "linear": 0, "n": 0}
    orig = ref_model.swiglu

    def spy(x, alpha=1.702, limit=7.0):
        stats["gate"] += int((x[..., ::2] > limit).sum())
        stats["linear"] += int((x[..., 1::2].abs() > limit).sum())
        stats["n"] += x[..., ::2].numel()
        return orig(x, alpha=alpha, limit=limit)

    ref_model.swiglu = spy
    try:
        torch_logits(model_f32, tokens)
    finally:
        ref_model.swiglu = orig
    return {
        "gate_clamped_fraction": stats["gate"] / max(stats["n"], 1),
        "linear_clamped_fraction": stats["linear"] / max(stats["n"], 1),
    }


# --------------------------------------------------------------------------- output


def publish(src, dst):
    """Copy one file into testdata, gzipped (deterministically) when over 1 MB."""
    os.makedirs(os.path.dirname(dst), exist_ok=True)
    size = os.path.getsize(src)
    if size > GZIP_OVER_BYTES:
        with open(src, "rb") as fi, open(dst + ".gz", "wb") as raw:
            with gzip.GzipFile(filename="", mode="wb", fileobj=raw, mtime=0, compresslevel=9) as fo:
                shutil.copyfileobj(fi, fo)
        return dst + ".gz"
    shutil.copyfile(src, dst)
    return dst


def publish_tree(src_dir, dst_dir):
    files = []
    for root, _, names in os.walk(src_dir):
        for name in sorted(names):
            s = os.path.join(root, name)
            files.append(publish(s, os.path.join(dst_dir, os.path.relpath(s, src_dir))))
    return files


def sha256(path):
    h = hashlib.sha256()
    with open(path, "rb") as f:
        for chunk in iter(lambda: f.read(1 << 20), b""):
            h.update(chunk)
    return h.hexdigest()


def run_case(case, work, out, log):
    name = case["_name"]
    t0 = time.time()
    wdir = os.path.join(work, name)
    shutil.rmtree(wdir, ignore_errors=True)
    t, deq, active = make_weights(case)
    ocfg = original_config(case)
    write_safetensors_dir(os.path.join(wdir, "original"), t, ocfg, 1)
    write_safetensors_dir(
        os.path.join(wdir, "hf"), hf_tensors(case, t, deq, True), hf_config(case, True), case["_shards"]
    )
    if case["_hf_bf16"]:
        write_safetensors_dir(os.path.join(wdir, "hf-bf16"), hf_tensors(case, t, deq, False), hf_config(case, False), 1)

    ref32 = load_torch_ref(os.path.join(wdir, "original"), f32=True)
    k = case["experts_per_token"]
    V = case["vocab_size"]
    pool = active if active is not None else list(range(V))
    rng = np.random.default_rng(case["_seed"])

    # Resample prompts until every discrete decision of the f32 oracle is clear.
    for attempt in range(200):
        tokens = [int(pool[i]) for i in rng.integers(0, len(pool), case["_n_tokens"])]
        router, logits32 = router_logits_f32(ref32, tokens)
        gap = min_router_gap(router, k)
        if gap < ROUTER_MIN_GAP:
            continue
        gp = tokens[: case["_greedy_prompt_len"]]
        cont, margin = greedy(ref32, gp, N_GREEDY)
        if margin < GREEDY_MIN_MARGIN:
            continue
        router_g, _ = router_logits_f32(ref32, gp + cont)
        gap_g = min_router_gap(router_g, k)
        if gap_g < ROUTER_MIN_GAP:
            continue
        break
    else:
        raise RuntimeError(f"{name}: no prompt with clear router/greedy decisions in 200 tries")
    log(f"{name}: prompt attempt {attempt}, router min gap {gap:.4g} (greedy seq {gap_g:.4g}), greedy margin {margin:.4g}")

    # bf16 as published, both references
    ref16 = load_torch_ref(os.path.join(wdir, "original"), f32=False)
    router16, logits16_torch = router_logits_f32(ref16, tokens)
    del ref16
    # bf16 rounding of the router logits can flip near top-k decisions: count them
    flips = sum(
        int((torch.sort(torch.topk(a.float(), k, dim=-1).indices, -1).values
             != torch.sort(torch.topk(b, k, dim=-1).indices, -1).values).any(-1).sum())
        for a, b in zip(router16, router)
    )
    hf32 = load_hf(os.path.join(wdir, "hf"), torch.float32)
    n_checked = check_hf_weights(hf32, case, t, deq)
    # the HF rotary tables must equal the reference's (YaRN, truncate false)
    conc, inv = ref32.block[0].attn.rope._compute_concentration_and_inv_freq()
    rot = hf32.model.rotary_emb
    rope_inv_freq_max_abs = (rot.inv_freq.float() - inv.float()).abs().max().item()
    assert abs(rot.attention_scaling - conc) < 1e-12, (rot.attention_scaling, conc)
    logits32_hf = hf_logits(hf32, tokens)
    seq = gp + cont
    hf_greedy = torch.argmax(hf_logits(hf32, seq)[len(gp) - 1 : -1], dim=-1).tolist()
    assert hf_greedy == cont, f"{name}: transformers f32 disagrees with the torch greedy continuation"
    del hf32
    hf16 = load_hf(os.path.join(wdir, "hf"), torch.bfloat16)
    logits16_hf = hf_logits(hf16, tokens)
    del hf16
    agreement = {
        "hf_vs_torch_f32_max_abs": (logits32_hf - logits32).abs().max().item(),
        "hf_vs_torch_bf16_max_abs": (logits16_hf - logits16_torch).abs().max().item(),
        "torch_bf16_vs_torch_f32_max_abs": (logits16_torch - logits32).abs().max().item(),
        "hf_bf16_vs_torch_f32_max_abs": (logits16_hf - logits32).abs().max().item(),
        "hf_vs_torch_f32_mean_abs": (logits32_hf - logits32).abs().mean().item(),
        "hf_vs_torch_bf16_mean_abs": (logits16_hf - logits16_torch).abs().mean().item(),
        "torch_bf16_vs_torch_f32_mean_abs": (logits16_torch - logits32).abs().mean().item(),
        "torch_bf16_router_topk_sets_differing_from_f32": flips,
        "router_decisions": len(tokens) * len(router),
        "logits_f32_max_abs": logits32.abs().max().item(),
        "rope_inv_freq_hf_vs_torch_max_abs": rope_inv_freq_max_abs,
    }
    if case["_hf_bf16"]:
        hfb = load_hf(os.path.join(wdir, "hf-bf16"), torch.float32, quantized=False)
        check_hf_weights(hfb, case, t, deq)
        agreement["hf_bf16_layout_vs_hf_mxfp4_f32_max_abs"] = (hf_logits(hfb, tokens) - logits32_hf).abs().max().item()
        del hfb

    bites = feature_bites(ref32, tokens, logits32)
    clamp = clamp_stats(ref32, tokens, case["swiglu_limit"])
    topk = [torch.topk(g, k, dim=-1).indices.tolist() for g in router]

    np.save(os.path.join(wdir, "logits_f32.npy"), logits32.numpy().astype(np.float32))
    logits_name = "logits_f32.npy"
    if os.path.getsize(os.path.join(wdir, logits_name)) > GZIP_OVER_BYTES:
        logits_name += ".gz"
    small = logits32.numel() * 4 < 400_000
    if small:
        np.save(os.path.join(wdir, "logits_bf16_torch.npy"), logits16_torch.numpy().astype(np.float32))
        np.save(os.path.join(wdir, "logits_bf16_hf.npy"), logits16_hf.numpy().astype(np.float32))

    golden = {
        "case": name,
        "about": case["_about"],
        "config": ocfg,
        "tokens": tokens,
        "greedy_prompt": gp,
        "greedy_f32": cont,
        "logits_f32": logits_name,
        "layouts": ["original", "hf"] + (["hf-bf16"] if case["_hf_bf16"] else []),
        "hf_shards": case["_shards"],
        "logits_f32_shape": [len(tokens), V],
        "router_topk_f32": topk,
        "checks": {
            "router_min_gap_f32": min(gap, gap_g),
            "greedy_min_top1_margin_f32": margin,
            "prompt_attempts": attempt + 1,
            "hf_params_checked_bit_exact": n_checked,
            "mxfp4_dequant_bit_exact": True,
            "hf_f32_greedy_matches": True,
        },
        "agreement": agreement,
        "feature_bite_max_abs": bites,
        "swiglu_clamp": clamp,
        "generator": "scripts/golden/model/generate.py (gpt_oss.torch reference upcast to float32; "
        "transformers GptOssForCausalLM for agreement)",
        "versions": versions(),
    }
    with open(os.path.join(wdir, "golden.json"), "w") as f:
        json.dump(golden, f, indent=1)
        f.write("\n")

    dst = os.path.join(out, name)
    shutil.rmtree(dst, ignore_errors=True)
    files = publish_tree(wdir, dst)
    log(f"{name}: done in {time.time() - t0:.1f}s; agreement {json.dumps(agreement)}; bites {json.dumps(bites)}")
    return golden, files


def versions():
    import importlib.metadata as md

    return {
        "python": sys.version.split()[0],
        "torch": torch.__version__,
        "transformers": transformers.__version__,
        "gpt-oss": md.version("gpt-oss"),
        "safetensors": md.version("safetensors"),
        "numpy": np.__version__,
    }


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--out", required=True, help="testdata/model folder")
    ap.add_argument("--work", default="/work/scratch/model-golden/work", help="uncompressed scratch copies")
    ap.add_argument("--case", action="append", help="only these case names")
    args = ap.parse_args()
    torch.set_num_threads(2)
    torch.manual_seed(0)
    os.makedirs(args.work, exist_ok=True)
    summary = {}
    for case in CASES:
        if args.case and case["_name"] not in args.case:
            continue
        golden, files = run_case(case, args.work, args.out, lambda s: print(s, flush=True))
        summary[case["_name"]] = {
            "agreement": golden["agreement"],
            "feature_bite_max_abs": golden["feature_bite_max_abs"],
            "swiglu_clamp": golden["swiglu_clamp"],
            "checks": golden["checks"],
            "files": {os.path.relpath(p, args.out): os.path.getsize(p) for p in files},
        }
    with open(os.path.join(args.work, "summary.json"), "w") as f:
        json.dump(summary, f, indent=1)
    print(json.dumps(summary, indent=1))


if __name__ == "__main__":
    main()
