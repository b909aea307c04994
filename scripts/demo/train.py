#!/usr/bin/env python3
"""Train the gpt-oss-rs demo model (issue 5): a tiny model with the exact gpt-oss architecture.

Owns: the model shape, the used-rows loss, the training loop (seeded), the
MXFP4 quantization-aware phase, and greedy decoding of the evaluation prompts.
Does not own: data generation (data.py) or the checkpoint files (export.py).

The reference network is transformers' `GptOssForCausalLM` built from a `GptOssConfig`
(the reference architecture: alternating sliding/full attention with sinks,
YaRN RoPE with truncate=false, top-k router, clamped SwiGLU experts). Only the
U token rows that the data uses are trained: the model is built with
vocab_size=U and token ids are remapped to those rows. In the exported
201088-row tables every other row is exactly zero, so its logit is exactly 0.
The loss below is therefore the exact full-vocabulary cross entropy:
    logsumexp(all 201088 logits) = log(sum_used exp(l_u) + (V - U) * exp(0)).

Near the end the expert weights are fake-quantized to MXFP4 (straight-through
estimator), with the same quantizer export.py uses, so the shipped 4-bit
experts are the ones the model was tuned with.

The network is fast_gptoss.FastGptOss by default (--impl fast: the same math
and parameter names, checked against transformers by check_fast.py) or
transformers' module itself (--impl hf, what trained the shipped model). On
the 2-core CPU use --threads 1 --procs 2 (two data-parallel processes); see
train_cpu.sh for the pinned CPU recipe.

Runs on CPU or CUDA (no openai-harmony needed: data.py pre-renders token ids).
    python scripts/demo/train.py --data /work/scratch/demo/data --out /work/scratch/demo/run
"""

from __future__ import annotations

import argparse
import json
import math
import os
import time
from pathlib import Path

# OpenMP threads that spin while waiting make every op ~10x slower when another
# process shares the 2 cores; passive waiting must be set before torch loads.
os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")

import numpy as np  # noqa: E402
import torch  # noqa: E402
import torch.nn.functional as F  # noqa: E402

V_FULL = 201088
RETURN, CALL = 200002, 200012

# Model shape (checkpoint key names of gpt-oss's original config.json where they exist).
SHAPE = dict(
    hidden_size=128,
    intermediate_size=256,
    num_hidden_layers=4,
    num_attention_heads=4,
    num_key_value_heads=2,
    head_dim=64,
    num_experts=8,
    experts_per_token=2,
    sliding_window=128,
    initial_context_length=4096,
    rope_theta=150000.0,
    rope_scaling_factor=32.0,
    rope_ntk_alpha=1.0,
    rope_ntk_beta=32.0,
    swiglu_limit=7.0,
)


def hf_config(vocab_size: int, pad_token_id: int | None = None):
    from transformers import GptOssConfig

    s = SHAPE
    n = s["num_hidden_layers"]
    return GptOssConfig(
        vocab_size=vocab_size,
        hidden_size=s["hidden_size"],
        intermediate_size=s["intermediate_size"],
        num_hidden_layers=n,
        num_attention_heads=s["num_attention_heads"],
        num_key_value_heads=s["num_key_value_heads"],
        head_dim=s["head_dim"],
        num_local_experts=s["num_experts"],
        num_experts_per_tok=s["experts_per_token"],
        sliding_window=s["sliding_window"],
        layer_types=["sliding_attention" if i % 2 == 0 else "full_attention" for i in range(n)],
        rope_theta=s["rope_theta"],
        rope_scaling={
            "rope_type": "yarn",
            "factor": s["rope_scaling_factor"],
            "beta_fast": s["rope_ntk_beta"],
            "beta_slow": s["rope_ntk_alpha"],
            "original_max_position_embeddings": s["initial_context_length"],
            "truncate": False,
        },
        max_position_embeddings=s["initial_context_length"] * int(s["rope_scaling_factor"]),
        swiglu_limit=s["swiglu_limit"],
        attention_bias=True,
        tie_word_embeddings=False,
        rms_norm_eps=1e-5,
        eos_token_id=RETURN,
        pad_token_id=pad_token_id,  # export writes 199999; None while training in used-row space
        router_aux_loss_coef=0.9,
        output_router_logits=False,
        attention_dropout=0.0,
    )


# ----------------------------------------------------------------------------
# MXFP4 (shared with export.py)
# ----------------------------------------------------------------------------

FP4_VALUES = (0.0, 0.5, 1.0, 1.5, 2.0, 3.0, 4.0, 6.0)


def mxfp4_codes(w_out_in: torch.Tensor):
    """Quantize [..., out, in] (in % 32 == 0) to MXFP4.

    Returns (codes uint8 [..., out, in] with the sign in bit 3, scale bytes
    uint8 [..., out, in/32]). Scale exponent e = ceil(log2(amax/6)) so nothing
    clips; magnitudes round to the nearest FP4 value, ties to the even code.
    """
    w = w_out_in.detach().float()
    *lead, n_in = w.shape
    blocks = w.reshape(*lead, n_in // 32, 32)
    amax = blocks.abs().amax(dim=-1)
    e = torch.ceil(torch.log2(amax / 6.0))
    e = torch.where(amax > 0, e, torch.zeros_like(e)).clamp(-127, 127)
    x = blocks.abs() / torch.exp2(e)[..., None]
    # midpoints between neighbouring FP4 magnitudes; searchsorted(right=False)
    # gives the lower code on an exact midpoint, which ties-to-even fixes up
    mids = torch.tensor([0.25, 0.75, 1.25, 1.75, 2.5, 3.5, 5.0], device=w.device)
    mag = torch.searchsorted(mids, x.contiguous(), right=False)
    tie = x == mids[mag.clamp(max=6)]
    mag = torch.where(tie & (mag % 2 == 1), mag + 1, mag)
    sign = (blocks < 0) & (mag > 0)
    codes = (mag | (sign.to(mag.dtype) << 3)).to(torch.uint8)
    return codes.reshape(*lead, n_in), (e + 127).to(torch.uint8)


def mxfp4_dequant(codes: torch.Tensor, scales: torch.Tensor) -> torch.Tensor:
    lut = torch.tensor(FP4_VALUES + tuple(-v for v in FP4_VALUES), dtype=torch.float32, device=codes.device)
    vals = lut[codes.long()]
    *lead, n_in = vals.shape
    vals = vals.reshape(*lead, n_in // 32, 32) * torch.exp2(scales.float() - 127.0)[..., None]
    return vals.reshape(*lead, n_in)


def fake_quant_in_out(w_in_out: torch.Tensor) -> torch.Tensor:
    """MXFP4 round trip of an HF-layout expert weight [E, in, out] (blocks along `in`)."""
    w = w_in_out.transpose(1, 2)
    codes, scales = mxfp4_codes(w)
    return mxfp4_dequant(codes, scales).transpose(1, 2).to(w_in_out.dtype)


class FakeQuantSTE(torch.nn.Module):
    def forward(self, w):
        return w + (fake_quant_in_out(w) - w).detach()


def enable_qat(model):
    from torch.nn.utils import parametrize

    for layer in model.model.layers:
        ex = layer.mlp.experts
        for name in ("gate_up_proj", "down_proj"):
            if not parametrize.is_parametrized(ex, name):
                parametrize.register_parametrization(ex, name, FakeQuantSTE())


def finalize_weights(model):
    """Make the weights exactly what export.py writes: experts -> MXFP4 values, the rest -> bf16 values."""
    from torch.nn.utils import parametrize

    for layer in model.model.layers:
        ex = layer.mlp.experts
        for name in ("gate_up_proj", "down_proj"):
            if parametrize.is_parametrized(ex, name):
                parametrize.remove_parametrizations(ex, name, leave_parametrized=False)
    with torch.no_grad():
        for name, p in model.named_parameters():
            if name.endswith("experts.gate_up_proj") or name.endswith("experts.down_proj"):
                p.copy_(fake_quant_in_out(p.data))
            else:
                p.copy_(p.data.to(torch.bfloat16).float())


# ----------------------------------------------------------------------------
# Data
# ----------------------------------------------------------------------------


class Data:
    def __init__(self, root: Path, device, holdout: int = 0):
        z = np.load(root / "train.npz")
        self.tokens, self.mask, self.offsets, self.used = z["tokens"], z["mask"], z["offsets"], z["used"]
        self.used_text = z["used_text"] if "used_text" in z else None
        self.task = z["task"] if "task" in z else None
        self.task_names = list(z["task_names"]) if "task_names" in z else []
        remap = np.full(V_FULL, -1, dtype=np.int64)
        remap[self.used] = np.arange(len(self.used))
        self.remap = remap
        self.local = remap[self.tokens]
        assert (self.local >= 0).all(), "a training token is missing from used_tokens"
        self.lens = np.diff(self.offsets)
        self.device = device
        # the last `holdout` conversations are never trained on (teacher-forced progress check)
        self.n_train = len(self.lens) - holdout
        self.holdout = list(range(self.n_train, len(self.lens)))

    def batches(self, rng: np.random.Generator, batch_tokens: int):
        """Endless stream of (ids [B,T], targets [B,T] with -1 = no loss); similar lengths batched."""
        n = self.n_train
        while True:
            perm = rng.permutation(n)
            # sort chunks of the permutation by length to reduce padding
            chunk = 2048
            order = []
            for i in range(0, n, chunk):
                c = perm[i:i + chunk]
                order.extend(c[np.argsort(self.lens[c], kind="stable")])
            groups, cur, cur_max = [], [], 0
            for idx in order:
                L = int(self.lens[idx])
                if cur and max(cur_max, L) * (len(cur) + 1) > batch_tokens:
                    groups.append(cur)
                    cur, cur_max = [], 0
                cur.append(idx)
                cur_max = max(cur_max, L)
            if cur:
                groups.append(cur)
            for gi in rng.permutation(len(groups)):
                yield self.make(groups[gi])

    def make(self, idxs):
        T = int(max(self.lens[i] for i in idxs))
        ids = np.zeros((len(idxs), T), dtype=np.int64)
        tgt = np.full((len(idxs), T), -1, dtype=np.int64)
        for r, i in enumerate(idxs):
            a, b = self.offsets[i], self.offsets[i + 1]
            ids[r, : b - a] = self.local[a:b]
            m = self.mask[a:b].astype(bool)
            t = np.where(m, self.local[a:b], -1)
            tgt[r, : b - a - 1] = t[1:]  # position p predicts token p+1
        return (torch.from_numpy(ids).to(self.device), torch.from_numpy(tgt).to(self.device))


NUM_DIMS = 53  # embedding dims 0..52 hold the digit features of pure-digit tokens at init


def structured_number_init(model, used_text, scale: float):
    """Give every pure-digit token (o200k's 1-3 digit number chunks) a shared digit code.

    dims 0-29: digit at place 1/2/3 from the left; 30-39: last digit; 40-49:
    second-to-last digit; 50-52: length 1/2/3. The same code goes into the
    embedding and the unembedding row, so "spell 794 as 7 9 4" and "write
    7 9 4 back as 794" start out as linear read-outs instead of 1,110 facts to
    memorise. The rows stay trainable; every other row keeps its random init.
    """
    emb, unemb = model.model.embed_tokens.weight, model.lm_head.weight
    n = 0
    with torch.no_grad():
        for r, t in enumerate(used_text):
            t = str(t)
            if not (1 <= len(t) <= 3 and t.isascii() and t.isdigit()):
                continue
            code = torch.zeros(NUM_DIMS)
            for i, c in enumerate(t):
                code[10 * i + int(c)] = 1.0
            code[30 + int(t[-1])] = 1.0
            if len(t) >= 2:
                code[40 + int(t[-2])] = 1.0
            code[50 + len(t) - 1] = 1.0
            for w in (emb, unemb):
                w[r, :NUM_DIMS] = scale * code
            n += 1
    return n


@torch.no_grad()
def teacher_forced_exact(model, data, n_used: int, batch_tokens: int):
    """Per task: the share of held-out conversations whose every target token is the argmax.

    When every target is the argmax under teacher forcing, greedy decoding
    reproduces the whole assistant turn, so this is a cheap lower bound on
    greedy exactness (it does not need the engine or a decode loop).
    """
    model.eval()
    ok, tot = {}, {}
    idxs = data.holdout
    for s in range(0, len(idxs), max(1, batch_tokens // 700)):
        group = idxs[s:s + max(1, batch_tokens // 700)]
        ids, tgt = data.make(group)
        h = model.model(input_ids=ids).last_hidden_state
        logits = model.lm_head(h)
        pred = logits.argmax(-1)
        good = ((pred == tgt) | (tgt < 0)).all(dim=1).tolist()
        for i, g in zip(group, good):
            name = data.task_names[data.task[i]] if data.task is not None else "all"
            ok[name] = ok.get(name, 0) + int(g)
            tot[name] = tot.get(name, 0) + 1
    model.train()
    return {k: (ok[k], tot[k]) for k in sorted(tot)}


def used_rows_loss(model, ids, tgt, n_used: int, denom: int | None = None):
    """Mean exact full-vocabulary NLL over the targets (sum / denom when denom is given)."""
    h = model.model(input_ids=ids).last_hidden_state  # f32 [B, T, hidden]
    sel = tgt >= 0
    hs = h[sel]  # [N, hidden]
    logits = model.lm_head(hs).float()  # [N, U]
    # the (V - U) untrained rows are exactly zero -> each contributes exp(0)
    lse = torch.logaddexp(torch.logsumexp(logits, dim=-1), torch.tensor(math.log(V_FULL - n_used), device=logits.device))
    y = tgt[sel]
    nll = lse - logits.gather(1, y[:, None])[:, 0]
    acc = (logits.argmax(-1) == y).float().mean() if len(y) else torch.zeros(())
    return (nll.mean() if denom is None else nll.sum() / denom), acc


# ----------------------------------------------------------------------------
# Greedy decoding with full-vocabulary semantics
# ----------------------------------------------------------------------------


@torch.no_grad()
def greedy(model, used: np.ndarray, prompts: list[list[int]], max_new: int, batch: int, device, log=None):
    """Greedy continuations (full token ids) up to and including <|return|>/<|call|>.

    Argmax over the full 201088 rows: an unused row has logit exactly 0, so it
    wins when every used logit is negative (then the smallest unused id).
    """
    remap = np.full(V_FULL, -1, dtype=np.int64)
    remap[used] = np.arange(len(used))
    unused0 = int(np.setdiff1d(np.arange(len(used) + 1), used)[0])
    used_t = torch.from_numpy(used.astype(np.int64)).to(device)
    model.eval()
    outs = [None] * len(prompts)
    order = sorted(range(len(prompts)), key=lambda i: len(prompts[i]))
    for s in range(0, len(order), batch):
        idx = order[s:s + batch]
        seqs = [list(prompts[i]) for i in idx]
        gen = [[] for _ in idx]
        done = [False] * len(idx)
        for _ in range(max_new):
            live = [k for k in range(len(idx)) if not done[k]]
            if not live:
                break
            T = max(len(seqs[k]) for k in live)
            ids = torch.zeros((len(live), T), dtype=torch.long)
            for r, k in enumerate(live):
                loc = remap[np.asarray(seqs[k])]
                if (loc < 0).any():  # an unused token: its embedding row is zero
                    raise ValueError("prompt holds a token outside the used rows")
                ids[r, : len(seqs[k])] = torch.from_numpy(loc)
            ids = ids.to(device)
            h = model.model(input_ids=ids).last_hidden_state
            last = torch.tensor([len(seqs[k]) - 1 for k in live], device=device)
            hl = h[torch.arange(len(live), device=device), last]
            logits = model.lm_head(hl).float()
            mx, am = logits.max(-1)
            nxt = torch.where(mx > 0, used_t[am], torch.full_like(am, unused0)).tolist()
            for r, k in enumerate(live):
                t = int(nxt[r])
                seqs[k].append(t)
                gen[k].append(t)
                if t in (RETURN, CALL) or remap[t] < 0:
                    done[k] = True
        for k, i in enumerate(idx):
            outs[i] = gen[k]
        if log:
            log(f"greedy {min(s + batch, len(order))}/{len(order)}")
    return outs


# ----------------------------------------------------------------------------


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--data", required=True)
    ap.add_argument("--out", required=True)
    ap.add_argument("--seed", type=int, default=1234)
    ap.add_argument("--steps", type=int, default=6000)
    ap.add_argument("--batch-tokens", type=int, default=16384)
    ap.add_argument("--lr", type=float, default=3e-3)
    ap.add_argument("--warmup", type=int, default=200)
    ap.add_argument("--qat-frac", type=float, default=0.15, help="final fraction of steps with MXFP4 fake-quant experts")
    ap.add_argument("--aux-coef", type=float, default=0.01, help="router load-balancing loss weight")
    ap.add_argument("--device", default="cuda" if torch.cuda.is_available() else "cpu")
    ap.add_argument("--threads", type=int, default=0)
    ap.add_argument("--eval-prompts", default=None, help="eval_prompts.json from data.py; greedy-decoded after training")
    ap.add_argument("--eval-limit", type=int, default=0)
    ap.add_argument("--eval-max-new", type=int, default=480)
    ap.add_argument("--eval-batch", type=int, default=100)
    ap.add_argument("--time-only", type=int, default=0, help="time N steps and exit")
    ap.add_argument("--impl", choices=["fast", "hf"], default="fast",
                    help="fast: fast_gptoss.FastGptOss (same math and names, checked by check_fast.py); hf: transformers")
    ap.add_argument("--log-every", type=int, default=100)
    ap.add_argument("--holdout", type=int, default=0, help="last N conversations: teacher-forced check only, never trained")
    ap.add_argument("--check-every", type=int, default=0, help="teacher-forced check every N steps (needs --holdout)")
    ap.add_argument("--num-init", type=float, default=0.0,
                    help="scale of the structured digit code for number tokens (0 = plain random init)")
    ap.add_argument("--min-lr-frac", type=float, default=0.05)
    ap.add_argument("--procs", type=int, default=1,
                    help="data-parallel CPU processes (gloo); each takes every procs-th row of each batch")
    ap.add_argument("--port", type=int, default=29533)
    ap.add_argument("--no-amp", action="store_true",
                    help="train in float32 on CUDA too (what the CPU recipe computes; for GPU trials of CPU recipes)")
    args = ap.parse_args()
    if args.procs > 1:
        import torch.multiprocessing as mp

        mp.spawn(run, args=(args,), nprocs=args.procs, join=True)
    else:
        run(0, args)


def run(rank: int, args):
    world = args.procs
    if world > 1:
        import torch.distributed as dist

        dist.init_process_group("gloo", init_method=f"tcp://127.0.0.1:{args.port}", rank=rank, world_size=world)

    if args.threads:
        torch.set_num_threads(args.threads)
    torch.manual_seed(args.seed)
    np_rng = np.random.default_rng(args.seed)
    device = torch.device(args.device)
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    logf = open(out / "train_log.txt", "a") if rank == 0 else None

    def log(msg):
        if rank != 0:
            return
        line = f"[{time.strftime('%H:%M:%S')}] {msg}"
        print(line, flush=True)
        logf.write(line + "\n")
        logf.flush()

    from transformers import GptOssForCausalLM
    from transformers.models.gpt_oss.modeling_gpt_oss import load_balancing_loss_func

    data = Data(Path(args.data), device, args.holdout)
    n_used = len(data.used)
    cfg = hf_config(n_used)
    cfg._attn_implementation = "eager"
    if args.impl == "fast":
        from fast_gptoss import FastGptOss

        model = FastGptOss(cfg).to(device)
    else:
        model = GptOssForCausalLM(cfg).to(device)
    # transformers initialises with std 0.02; small embeddings are fine for a model this small
    if args.num_init > 0:
        n_num = structured_number_init(model, data.used_text, args.num_init)
        log(f"structured digit code (scale {args.num_init}) on {n_num} number-token rows")
    n_params = sum(p.numel() for p in model.parameters())
    n_emb = model.model.embed_tokens.weight.numel() + model.lm_head.weight.numel()
    log(f"device {device} torch {torch.__version__} used_rows {n_used} params {n_params} (non-embedding {n_params - n_emb})")
    log(f"data: {len(data.lens)} conversations, {len(data.tokens)} tokens, {int(data.mask.sum())} targets")

    decay, no_decay = [], []
    for name, p in model.named_parameters():
        (no_decay if p.ndim < 2 or "norm" in name or "sinks" in name or "bias" in name else decay).append(p)
    opt = torch.optim.AdamW(
        [{"params": decay, "weight_decay": 0.01}, {"params": no_decay, "weight_decay": 0.0}],
        lr=args.lr, betas=(0.9, 0.98), eps=1e-8,
    )
    qat_start = int(args.steps * (1 - args.qat_frac))

    def lr_at(step):
        if step < args.warmup:
            return args.lr * (step + 1) / args.warmup
        prog = (step - args.warmup) / max(1, args.steps - args.warmup)
        m = args.min_lr_frac
        return args.lr * (m + (1 - m) * 0.5 * (1 + math.cos(math.pi * prog)))

    router_logits = []

    def keep_router_logits(_mod, _inp, outp):
        router_logits.append(outp[0])

    if args.impl == "hf":
        for layer in model.model.layers:
            layer.mlp.router.register_forward_hook(keep_router_logits)

    use_amp = device.type == "cuda" and not args.no_amp
    stream = data.batches(np_rng, args.batch_tokens)
    model.train()
    t0 = time.time()
    n_steps = args.time_only or args.steps
    ema_loss, ema_acc, seen_tok = None, None, 0
    for step in range(n_steps):
        if step == qat_start and not args.time_only:
            log(f"step {step}: MXFP4 fake-quant (STE) on for the expert weights")
            enable_qat(model)
        for g in opt.param_groups:
            g["lr"] = lr_at(step)
        ids, tgt = next(stream)
        router_logits.clear()
        seen_tok += ids.numel()
        denom = None
        if world > 1:  # this rank's rows; the loss is normalised by the whole batch's target count
            denom = max(1, int((tgt >= 0).sum()))
            ids, tgt = ids[rank::world], tgt[rank::world]
        with torch.autocast(device_type="cuda", dtype=torch.bfloat16, enabled=use_amp):
            loss, acc = used_rows_loss(model, ids, tgt, n_used, denom)
            aux = torch.zeros((), device=device)
            if args.impl == "fast":
                router_logits.extend(model.model.router_logits)
            if args.aux_coef > 0:
                aux = load_balancing_loss_func(tuple(router_logits), cfg.num_local_experts, cfg.num_experts_per_tok)
            total = loss + args.aux_coef * aux / world
        opt.zero_grad(set_to_none=True)
        total.backward()
        if world > 1:  # sum the gradients of all ranks (each rank's loss is its share of the batch mean)
            params = [p for p in model.parameters()]
            grads = [p.grad if p.grad is not None else torch.zeros_like(p) for p in params]
            flat = torch.cat([g.reshape(-1) for g in grads] + [loss.detach().reshape(1)])
            dist.all_reduce(flat)
            off = 0
            for p, g in zip(params, grads):
                n = g.numel()
                p.grad = flat[off:off + n].view_as(p)
                off += n
            loss = flat[off]
        torch.nn.utils.clip_grad_norm_(model.parameters(), 1.0)
        opt.step()
        lv, av = loss.item(), acc.item()
        ema_loss = lv if ema_loss is None else 0.98 * ema_loss + 0.02 * lv
        ema_acc = av if ema_acc is None else 0.98 * ema_acc + 0.02 * av
        if (step + 1) % args.log_every == 0 or step == n_steps - 1 or args.time_only:
            el = time.time() - t0
            log(f"step {step + 1}/{n_steps} loss {ema_loss:.4f} tok_acc {ema_acc:.4f} aux {aux.item():.3f} "
                f"lr {lr_at(step):.2e} {el:.0f}s {(step + 1) / el:.2f} steps/s {seen_tok / el:.0f} tok/s")
        if rank == 0 and args.check_every and data.holdout and ((step + 1) % args.check_every == 0 or step == n_steps - 1):
            tc = time.time()
            res = teacher_forced_exact(model, data, n_used, args.batch_tokens)
            t0 += time.time() - tc  # the check is not training time
            log("teacher-forced exact: " + " ".join(f"{k} {a}/{b}" for k, (a, b) in res.items())
                + f" ({time.time() - tc:.0f}s, not counted)")
    train_s = time.time() - t0
    if rank != 0:
        return
    if args.time_only:
        log(f"timing: {args.time_only} steps in {train_s:.1f}s -> {args.steps} steps ~ {train_s / args.time_only * args.steps / 60:.1f} min")
        return

    finalize_weights(model)
    # every value is bf16-representable now (experts hold MXFP4 values), so bf16 storage is lossless
    state = {k: v.detach().cpu().to(torch.bfloat16) for k, v in model.state_dict().items()}
    torch.save({"state": state, "used": data.used, "shape": SHAPE, "train_seconds": train_s,
                "steps": args.steps, "device": str(device),
                "device_name": torch.cuda.get_device_name() if device.type == "cuda" else "cpu"},
               out / "demo_model.pt")
    log(f"saved {out / 'demo_model.pt'} after {train_s:.0f}s of training")

    router_logits.clear()
    if args.eval_prompts:
        items = json.load(open(args.eval_prompts))
        if args.eval_limit:
            items = items[: args.eval_limit]
        t1 = time.time()
        gens = greedy(model, data.used, [it["prompt_tokens"] for it in items], args.eval_max_new,
                      args.eval_batch, device, log)
        json.dump([{"id": it["id"], "greedy": g} for it, g in zip(items, gens)], open(out / "eval_greedy.json", "w"))
        log(f"greedy-decoded {len(items)} eval prompts in {time.time() - t1:.0f}s")


if __name__ == "__main__":
    main()
