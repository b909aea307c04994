"""A CPU-friendly training implementation of the gpt-oss network (issue 5, demo model).

Owns: `FastGptOss`, the same math as transformers' `GptOssForCausalLM` (eager
attention) with the same parameter names and shapes, so its state_dict loads
into `GptOssForCausalLM` unchanged and export.py does not care which one
trained the weights.
Does not own: the loss, the data, the optimizer (train.py), or the check that
the two agree (check_fast.py compares logits and gradients on random weights).

Why it exists: on the 2-core CPU machine the transformers module spends most
of its time in per-expert masking (one_hot / where / index_add per expert)
and generic attention-mask plumbing. Here the routing is one argsort per
layer, grouped-query attention is torch's fused scaled_dot_product_attention
with the sinks expressed as one extra key (see Attention.forward).

Math (all f32), per layer:
    x = x + o_proj(attn(rmsnorm(x)))        q/k/v/o with biases, YaRN RoPE (half-split),
                                            softmax over [scores, sink_h] with the sink dropped,
                                            causal, sliding window on even layers
    x = x + moe(rmsnorm(x))                 router linear+bias, top-k, softmax over the k logits,
                                            SwiGLU: gate (even cols) clamp max=limit, up (odd cols)
                                            clamp +-limit, (up+1) * gate*sigmoid(alpha*gate)
"""

from __future__ import annotations

import math
from types import SimpleNamespace

import torch
import torch.nn.functional as F
from torch import nn


class RMSNorm(nn.Module):
    def __init__(self, dim: int, eps: float):
        super().__init__()
        self.weight = nn.Parameter(torch.ones(dim))
        self.eps = eps

    def forward(self, x):
        return self.weight * (x * torch.rsqrt(x.pow(2).mean(-1, keepdim=True) + self.eps))


class Attention(nn.Module):
    def __init__(self, cfg, layer_idx: int):
        super().__init__()
        d, hd = cfg.hidden_size, cfg.head_dim
        self.n_heads, self.n_kv, self.head_dim = cfg.num_attention_heads, cfg.num_key_value_heads, hd
        self.q_proj = nn.Linear(d, self.n_heads * hd, bias=True)
        self.k_proj = nn.Linear(d, self.n_kv * hd, bias=True)
        self.v_proj = nn.Linear(d, self.n_kv * hd, bias=True)
        self.o_proj = nn.Linear(self.n_heads * hd, d, bias=True)
        self.sinks = nn.Parameter(torch.zeros(self.n_heads))
        self.sliding = cfg.layer_types[layer_idx] == "sliding_attention"

    def forward(self, x, cos, sin, mask):
        # x f32 [B, T, hidden]; cos/sin f32 [T, head_dim/2]; mask f32 [T, 1+T] additive (0 / -inf), column 0 = the sink
        B, T, _ = x.shape
        H, KV, hd = self.n_heads, self.n_kv, self.head_dim
        G = H // KV
        w = torch.cat([self.q_proj.weight, self.k_proj.weight, self.v_proj.weight], 0)
        b = torch.cat([self.q_proj.bias, self.k_proj.bias, self.v_proj.bias], 0)
        qkv = F.linear(x, w, b)  # f32 [B, T, (H + 2 KV) * hd]
        q, k, v = qkv.split([H * hd, KV * hd, KV * hd], dim=-1)
        q = q.view(B, T, H, hd)
        k = k.view(B, T, KV, hd)
        v = v.view(B, T, KV, hd)

        def rope(t):  # half-split rotation, as transformers' _apply_rotary_emb
            a, c = t.chunk(2, dim=-1)
            cs, sn = cos[:, None, :], sin[:, None, :]
            return torch.cat([a * cs - c * sn, c * cs + a * sn], dim=-1)

        q, k = rope(q), rope(k)
        # Sinks through the fused SDPA kernel: one extra key in front of every
        # sequence whose score is exactly sink_h for every query (q gets a
        # constant 1 in an extra dimension, that key holds sink_h * sqrt(hd)
        # there and zeros elsewhere; real keys hold 0 there) and whose value is
        # zero. softmax over [sink, scores] then drops the sink's mass, as
        # transformers' eager attention does with its concatenated sink column.
        q = q.transpose(1, 2)  # [B, H, T, hd]
        k = k.transpose(1, 2).repeat_interleave(G, dim=1)  # [B, H, T, hd]; q head h uses kv head h // G
        v = v.transpose(1, 2).repeat_interleave(G, dim=1)
        q = torch.cat([q, q.new_ones(B, H, T, 1)], dim=-1)
        k = torch.cat([k, k.new_zeros(B, H, T, 1)], dim=-1)
        sink_k = F.pad((self.sinks * hd**0.5).view(1, H, 1, 1), (hd, 0)).expand(B, H, 1, hd + 1)
        k = torch.cat([sink_k, k], dim=2)  # [B, H, 1+T, hd+1]
        v = torch.cat([v.new_zeros(B, H, 1, hd), v], dim=2)  # [B, H, 1+T, hd]
        o = F.scaled_dot_product_attention(q, k, v, attn_mask=mask, scale=hd**-0.5)  # [B, H, T, hd]
        o = o.transpose(1, 2).reshape(B, T, H * hd)
        return self.o_proj(o)


class Router(nn.Module):
    def __init__(self, cfg):
        super().__init__()
        self.weight = nn.Parameter(torch.zeros(cfg.num_local_experts, cfg.hidden_size))
        self.bias = nn.Parameter(torch.zeros(cfg.num_local_experts))


class Experts(nn.Module):
    def __init__(self, cfg):
        super().__init__()
        E, d, f = cfg.num_local_experts, cfg.hidden_size, cfg.intermediate_size
        self.gate_up_proj = nn.Parameter(torch.zeros(E, d, 2 * f))
        self.gate_up_proj_bias = nn.Parameter(torch.zeros(E, 2 * f))
        self.down_proj = nn.Parameter(torch.zeros(E, f, d))
        self.down_proj_bias = nn.Parameter(torch.zeros(E, d))


class MoE(nn.Module):
    def __init__(self, cfg):
        super().__init__()
        self.router = Router(cfg)
        self.experts = Experts(cfg)
        self.top_k = cfg.num_experts_per_tok
        self.alpha = getattr(cfg, "swiglu_alpha", 1.702)  # transformers < 5.23 hard-codes 1.702
        self.limit = cfg.swiglu_limit

    def forward(self, x):
        # x f32 [N, hidden]
        N, d = x.shape
        E, K = self.router.weight.shape[0], self.top_k
        logits = F.linear(x, self.router.weight, self.router.bias)  # [N, E]
        top_v, top_i = torch.topk(logits, K, dim=-1)
        top_w = torch.softmax(top_v, dim=-1)  # [N, K]
        flat_e = top_i.reshape(-1)
        order = torch.argsort(flat_e, stable=True)  # assignment slots grouped by expert
        counts = torch.bincount(flat_e, minlength=E).tolist()
        tok = order // K
        xs = x[tok]  # [N*K, hidden]
        ex = self.experts
        w1, b1, w2, b2 = ex.gate_up_proj, ex.gate_up_proj_bias, ex.down_proj, ex.down_proj_bias
        outs = []
        start = 0
        for e in range(E):
            n = counts[e]
            if n == 0:
                continue
            xe = xs[start:start + n]
            gu = torch.addmm(b1[e], xe, w1[e])  # [n, 2f]
            gate = gu[:, 0::2].clamp(max=self.limit)
            up = gu[:, 1::2].clamp(min=-self.limit, max=self.limit)
            h = (up + 1) * (gate * torch.sigmoid(gate * self.alpha))
            outs.append(torch.addmm(b2[e], h, w2[e]))
            start += n
        ys = torch.cat(outs, 0) * top_w.reshape(-1)[order][:, None]  # [N*K, hidden]
        y = torch.zeros_like(x).index_add(0, tok, ys)
        return y, logits


class Layer(nn.Module):
    def __init__(self, cfg, layer_idx):
        super().__init__()
        self.input_layernorm = RMSNorm(cfg.hidden_size, cfg.rms_norm_eps)
        self.self_attn = Attention(cfg, layer_idx)
        self.post_attention_layernorm = RMSNorm(cfg.hidden_size, cfg.rms_norm_eps)
        self.mlp = MoE(cfg)


class Backbone(nn.Module):
    def __init__(self, cfg):
        super().__init__()
        self.cfg = cfg
        self.embed_tokens = nn.Embedding(cfg.vocab_size, cfg.hidden_size)
        self.layers = nn.ModuleList([Layer(cfg, i) for i in range(cfg.num_hidden_layers)])
        self.norm = RMSNorm(cfg.hidden_size, cfg.rms_norm_eps)
        from transformers.modeling_rope_utils import ROPE_INIT_FUNCTIONS

        # inverse frequencies and attention scaling from transformers' own YaRN code
        inv_freq, scaling = ROPE_INIT_FUNCTIONS[cfg.rope_parameters["rope_type"]](cfg, "cpu")
        self.register_buffer("inv_freq", inv_freq.float(), persistent=False)
        self.rope_scaling = float(scaling)
        self.window = cfg.sliding_window
        self._cache = {}
        self.router_logits = []

    def tables(self, T, device):
        key = (T, str(device))
        if key not in self._cache:
            pos = torch.arange(T, device=device, dtype=torch.float32)
            fr = pos[:, None] * self.inv_freq.to(device)[None, :]
            cos, sin = fr.cos() * self.rope_scaling, fr.sin() * self.rope_scaling
            i = torch.arange(T, device=device)
            causal = i[None, :] <= i[:, None]
            slide = causal & (i[None, :] > i[:, None] - self.window)
            ninf = torch.tensor(float("-inf"), device=device)
            zero = torch.tensor(0.0, device=device)
            sink_col = torch.zeros(T, 1, device=device)  # the sink key is visible to every query
            full_m = torch.cat([sink_col, torch.where(causal, zero, ninf)], dim=1)  # f32 [T, 1+T]
            slide_m = torch.cat([sink_col, torch.where(slide, zero, ninf)], dim=1)
            self._cache = {key: (cos, sin, full_m, slide_m)}
        return self._cache[key]

    def forward(self, input_ids):
        B, T = input_ids.shape
        cos, sin, full_m, slide_m = self.tables(T, input_ids.device)
        x = self.embed_tokens(input_ids)
        self.router_logits = []
        for layer in self.layers:
            a = layer.self_attn
            x = x + a(layer.input_layernorm(x), cos, sin, slide_m if a.sliding else full_m)
            y, rl = layer.mlp(layer.post_attention_layernorm(x).reshape(B * T, -1))
            self.router_logits.append(rl)
            x = x + y.view(B, T, -1)
        return SimpleNamespace(last_hidden_state=self.norm(x))


class FastGptOss(nn.Module):
    """Drop-in for GptOssForCausalLM in train.py: .model(input_ids=...).last_hidden_state and .lm_head."""

    def __init__(self, cfg):
        super().__init__()
        self.config = cfg
        self.model = Backbone(cfg)
        self.lm_head = nn.Linear(cfg.hidden_size, cfg.vocab_size, bias=False)
        self.init_weights(cfg.initializer_range)

    @torch.no_grad()
    def init_weights(self, std: float):
        """transformers' GptOss init: normal(std) matrices and sinks/router, zero biases, unit norms."""
        for name, p in self.named_parameters():
            if name.endswith("norm.weight"):
                p.fill_(1.0)
            elif name.endswith("router.bias") or name.endswith("sinks") or p.ndim >= 2:
                p.normal_(0.0, std)
            else:
                p.zero_()
