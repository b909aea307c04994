#!/usr/bin/env python3
"""Transcode a gpt-oss-20b-shaped `gpt-oss synth` checkpoint (OpenAI "original" layout,
one model.safetensors) into a llama.cpp GGUF, following the conventions of
llama.cpp's conversion/gpt_oss.py + conversion/base.py (commit 0c1e57098):

* experts: MXFP4 (ggml block_mxfp4 = 1 byte E8M0 scale + 16 bytes of nibbles,
  nibble order: qs[j] = x[j] | x[j+16] << 4), mlp1 split into gate (even rows)
  and up (odd rows);
* 1-D tensors, norms, biases, router (ffn_gate_inp) in F32;
* all other 2-D weights kept in BF16 (what `--outtype auto` gives for a BF16
  source); file_type MOSTLY_MXFP4_MOE;
* q/k/v split from the fused qkv (no --fuse-qkv);
* vocabulary: o200k_base ranks + harmony special tokens, "gpt2" model,
  pre-tokenizer "gpt-4o", merges derived from the ranks.

Streams tensor by tensor so peak memory stays ~1.5 GB.
"""
import base64
import os
import json
import struct
import sys

import numpy as np

# gguf: llama.cpp's own gguf-py, from a llama.cpp checkout (GGUF_PY=<checkout>/gguf-py) or
# the PyPI package `gguf` of the same version.
if os.environ.get("GGUF_PY"):
    sys.path.insert(0, os.environ["GGUF_PY"])
import gguf  # noqa: E402

if len(sys.argv) != 4:
    sys.exit(
        "usage: llamacpp_gguf.py SYNTH_DIR O200K_BASE.tiktoken OUT.gguf\n"
        "  SYNTH_DIR: a `gpt-oss synth --shape 20b` checkpoint (original layout)"
    )
SRC, TIKTOKEN, OUT = sys.argv[1], sys.argv[2], sys.argv[3]

cfg = json.load(open(f"{SRC}/config.json"))
n_layer = cfg["num_hidden_layers"]
n_vocab = cfg["vocab_size"]
hd = cfg["head_dim"]
n_head = cfg["num_attention_heads"]
n_kv = cfg["num_key_value_heads"]

# ---- safetensors (read by hand, memory-mapped) ----
f = open(f"{SRC}/model.safetensors", "rb")
hlen = struct.unpack("<Q", f.read(8))[0]
header = json.loads(f.read(hlen))
header.pop("__metadata__", None)
base = 8 + hlen
mm = np.memmap(f"{SRC}/model.safetensors", dtype=np.uint8, mode="r")


def st(name):
    h = header[name]
    a, b = h["data_offsets"]
    dt = {"BF16": np.uint16, "U8": np.uint8, "F32": np.float32}[h["dtype"]]
    return mm[base + a: base + b].view(dt).reshape(h["shape"]), h["dtype"]


def bf16_to_f32(u16):
    return (np.asarray(u16).astype(np.uint32) << 16).view(np.float32)


def to_ggml_mxfp4(blocks, scales):
    """blocks u8 [..., nb, 16] (OpenAI: byte j = x[2j] | x[2j+1] << 4),
    scales u8 [..., nb] -> u8 [..., nb * 17] in ggml block_mxfp4 order."""
    b = np.asarray(blocks)
    lo = b & 0x0F
    hi = b >> 4
    x = np.empty(b.shape[:-1] + (32,), dtype=np.uint8)
    x[..., 0::2] = lo
    x[..., 1::2] = hi
    qs = x[..., :16] | (x[..., 16:] << 4)
    out = np.concatenate([np.asarray(scales)[..., None], qs], axis=-1)
    return out.reshape(out.shape[:-2] + (out.shape[-2] * 17,))


# ---- tensor plan: (gguf name, kind, producer) ----
BF16, F32, MX = "bf16", "f32", "mxfp4"
plan = []


def add(name, kind, fn, shape):
    plan.append((name, kind, fn, shape))


def shp(name):
    return list(header[name]["shape"])


add("token_embd.weight", BF16, lambda: st("embedding.weight")[0], shp("embedding.weight"))
for i in range(n_layer):
    p = f"block.{i}."
    q_end, k_end = n_head * hd, n_head * hd + n_kv * hd
    hidden = cfg["hidden_size"]
    add(f"blk.{i}.attn_norm.weight", F32, lambda p=p: bf16_to_f32(st(p + "attn.norm.scale")[0]), [hidden])
    add(f"blk.{i}.attn_q.weight", BF16, lambda p=p: st(p + "attn.qkv.weight")[0][:q_end], [q_end, hidden])
    add(f"blk.{i}.attn_q.bias", F32, lambda p=p: bf16_to_f32(st(p + "attn.qkv.bias")[0][:q_end]), [q_end])
    add(f"blk.{i}.attn_k.weight", BF16, lambda p=p: st(p + "attn.qkv.weight")[0][q_end:k_end], [n_kv * hd, hidden])
    add(f"blk.{i}.attn_k.bias", F32, lambda p=p: bf16_to_f32(st(p + "attn.qkv.bias")[0][q_end:k_end]), [n_kv * hd])
    add(f"blk.{i}.attn_v.weight", BF16, lambda p=p: st(p + "attn.qkv.weight")[0][k_end:], [n_kv * hd, hidden])
    add(f"blk.{i}.attn_v.bias", F32, lambda p=p: bf16_to_f32(st(p + "attn.qkv.bias")[0][k_end:]), [n_kv * hd])
    add(f"blk.{i}.attn_output.weight", BF16, lambda p=p: st(p + "attn.out.weight")[0], shp(p + "attn.out.weight"))
    add(f"blk.{i}.attn_output.bias", F32, lambda p=p: bf16_to_f32(st(p + "attn.out.bias")[0]), shp(p + "attn.out.bias"))
    add(f"blk.{i}.attn_sinks.weight", F32, lambda p=p: bf16_to_f32(st(p + "attn.sinks")[0]), shp(p + "attn.sinks"))
    add(f"blk.{i}.post_attention_norm.weight", F32, lambda p=p: bf16_to_f32(st(p + "mlp.norm.scale")[0]), [hidden])
    add(f"blk.{i}.ffn_gate_inp.weight", F32, lambda p=p: bf16_to_f32(st(p + "mlp.gate.weight")[0]), shp(p + "mlp.gate.weight"))
    add(f"blk.{i}.ffn_gate_inp.bias", F32, lambda p=p: bf16_to_f32(st(p + "mlp.gate.bias")[0]), shp(p + "mlp.gate.bias"))
    E, two_i, nb, _ = shp(p + "mlp.mlp1_weight.blocks")
    ff = two_i // 2
    add(f"blk.{i}.ffn_gate_exps.weight", MX,
        lambda p=p: to_ggml_mxfp4(st(p + "mlp.mlp1_weight.blocks")[0][:, 0::2], st(p + "mlp.mlp1_weight.scales")[0][:, 0::2]),
        [E, ff, nb * 17])
    add(f"blk.{i}.ffn_gate_exps.bias", F32, lambda p=p: bf16_to_f32(st(p + "mlp.mlp1_bias")[0][:, 0::2]), [E, ff])
    add(f"blk.{i}.ffn_up_exps.weight", MX,
        lambda p=p: to_ggml_mxfp4(st(p + "mlp.mlp1_weight.blocks")[0][:, 1::2], st(p + "mlp.mlp1_weight.scales")[0][:, 1::2]),
        [E, ff, nb * 17])
    add(f"blk.{i}.ffn_up_exps.bias", F32, lambda p=p: bf16_to_f32(st(p + "mlp.mlp1_bias")[0][:, 1::2]), [E, ff])
    E2, rows2, nb2, _ = shp(p + "mlp.mlp2_weight.blocks")
    add(f"blk.{i}.ffn_down_exps.weight", MX,
        lambda p=p: to_ggml_mxfp4(st(p + "mlp.mlp2_weight.blocks")[0], st(p + "mlp.mlp2_weight.scales")[0]),
        [E2, rows2, nb2 * 17])
    add(f"blk.{i}.ffn_down_exps.bias", F32, lambda p=p: bf16_to_f32(st(p + "mlp.mlp2_bias")[0]), shp(p + "mlp.mlp2_bias"))
add("output_norm.weight", F32, lambda: bf16_to_f32(st("norm.scale")[0]), shp("norm.scale"))
add("output.weight", BF16, lambda: st("unembedding.weight")[0], shp("unembedding.weight"))


# ---- vocabulary ----
def bytes_to_unicode():
    bs = list(range(ord("!"), ord("~") + 1)) + list(range(ord("¡"), ord("¬") + 1)) + list(range(ord("®"), ord("ÿ") + 1))
    cs = bs[:]
    n = 0
    for b in range(256):
        if b not in bs:
            bs.append(b)
            cs.append(256 + n)
            n += 1
    return dict(zip(bs, (chr(c) for c in cs)))


b2u = bytes_to_unicode()
ranks = {}
for line in open(TIKTOKEN, "rb"):
    if line.strip():
        tok, r = line.split()
        ranks[base64.b64decode(tok)] = int(r)
n_base = len(ranks)
by_rank = sorted(ranks.items(), key=lambda kv: kv[1])
assert [r for _, r in by_rank] == list(range(n_base))
tokens = ["".join(b2u[c] for c in t) for t, _ in by_rank]
toktypes = [gguf.TokenType.NORMAL] * n_base
specials = {199998: "<|startoftext|>", 199999: "<|endoftext|>", 200002: "<|return|>", 200003: "<|constrain|>",
            200005: "<|channel|>", 200006: "<|start|>", 200007: "<|end|>", 200008: "<|message|>",
            200012: "<|call|>", 200018: "<|endofprompt|>"}
for i in range(n_base, n_vocab):
    tokens.append(specials.get(i, f"<|reserved_{i}|>"))
    toktypes.append(gguf.TokenType.CONTROL)
merges = []
for t, r in by_rank:
    local = []
    for k in range(1, len(t)):
        l, rr = t[:k], t[k:]
        if l in ranks and rr in ranks:
            local.append((ranks[l], ranks[rr], r, l, rr))
    local.sort()
    merges.extend(local)
merges.sort(key=lambda m: m[2])
merge_strs = ["".join(b2u[c] for c in m[3]) + " " + "".join(b2u[c] for c in m[4]) for m in merges]
print(f"vocab {len(tokens)} tokens, {len(merge_strs)} merges", flush=True)

# ---- write ----
w = gguf.GGUFWriter(OUT, "gpt-oss")
w.add_type(gguf.GGUFType.MODEL)
w.add_name("synth-20b (random weights, gpt-oss-rs)")
w.add_block_count(n_layer)
w.add_context_length(131072)
w.add_embedding_length(cfg["hidden_size"])
w.add_feed_forward_length(cfg["intermediate_size"])
w.add_head_count(n_head)
w.add_head_count_kv(n_kv)
w.add_rope_scaling_type(gguf.RopeScalingType.YARN)
w.add_rope_scaling_factor(cfg["rope_scaling_factor"])
w.add_rope_scaling_orig_ctx_len(cfg["initial_context_length"])
w.add_rope_scaling_yarn_beta_fast(cfg["rope_ntk_beta"])
w.add_rope_scaling_yarn_beta_slow(cfg["rope_ntk_alpha"])
w.add_rope_freq_base(cfg["rope_theta"])
w.add_layer_norm_rms_eps(1e-5)
w.add_expert_count(cfg["num_experts"])
w.add_expert_used_count(cfg["experts_per_token"])
w.add_key_length(hd)
w.add_value_length(hd)
w.add_file_type(gguf.LlamaFileType.MOSTLY_MXFP4_MOE)
w.add_sliding_window(cfg["sliding_window"])
w.add_expert_feed_forward_length(cfg["intermediate_size"])
w.add_quantization_version(gguf.GGML_QUANT_VERSION)
w.add_tokenizer_model("gpt2")
w.add_tokenizer_pre("gpt-4o")
w.add_token_list(tokens)
w.add_token_types(toktypes)
w.add_token_merges(merge_strs)
w.add_bos_token_id(199998)
w.add_eos_token_id(200002)
w.add_pad_token_id(199999)
w.add_add_bos_token(False)

for name, kind, fn, shape in plan:
    if kind == BF16:
        w.add_tensor_info(name, shape, np.dtype(np.uint16), int(np.prod(shape)) * 2, raw_dtype=gguf.GGMLQuantizationType.BF16)
    elif kind == F32:
        w.add_tensor_info(name, shape, np.dtype(np.float32), int(np.prod(shape)) * 4)
    else:
        w.add_tensor_info(name, shape, np.dtype(np.uint8), int(np.prod(shape)), raw_dtype=gguf.GGMLQuantizationType.MXFP4)

w.write_header_to_file()
w.write_kv_data_to_file()
w.write_ti_data_to_file()
total = 0
for k, (name, kind, fn, shape) in enumerate(plan):
    arr = np.ascontiguousarray(fn())
    assert list(arr.shape) == list(shape), (name, arr.shape, shape)
    if kind == F32:
        assert arr.dtype == np.float32
    w.write_tensor_data(arr)
    total += arr.nbytes
    if k % 20 == 0:
        print(f"{k}/{len(plan)} {name} {total / 2**30:.2f} GiB", flush=True)
w.close()
print("done", OUT, total / 2**30, "GiB", flush=True)
