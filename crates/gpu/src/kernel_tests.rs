//! Every shader against the CPU kernels of `gptoss-backend` (their scalar oracles), on random
//! ragged shapes (odd widths, partial tiles, GQA groups, windows and rings that wrap). Runs on
//! whatever adapter is found (lavapipe in CI); without one each test says it was skipped, and
//! `GPTOSS_REQUIRE_GPU=1` makes that a failure.

use gptoss_backend::{
    bf16, embed_rows_bf16, embed_rows_f32, matmul_f32_bf16w_scalar, matmul_f32_f32w_scalar,
    matmul_f32_mxfp4w_scalar, rmsnorm_f32, rope_yarn_f32, sdpa_sinks_f32_scalar, swiglu_clamp_f32,
    topk_softmax_f32, KvPages, SdpaParams, YarnRope,
};
use rand::{Rng, SeedableRng};
use rand_chacha::ChaCha8Rng;

use crate::context::GpuContext;
use crate::kernels::{ExpertFormat, Kernels, Recorder, WeightFormat, P};

fn open(test: &str) -> Option<GpuContext> {
    match GpuContext::open(None) {
        Ok(c) => Some(c),
        Err(e) => {
            let required = std::env::var("GPTOSS_REQUIRE_GPU").is_ok_and(|v| v == "1");
            assert!(
                !required,
                "{test}: GPTOSS_REQUIRE_GPU=1 but no adapter: {e}"
            );
            eprintln!("{test}: SKIPPED, no GPU adapter: {e}");
            None
        }
    }
}

fn rng(seed: u64) -> ChaCha8Rng {
    ChaCha8Rng::seed_from_u64(seed)
}

fn randn(r: &mut ChaCha8Rng, n: usize, scale: f32) -> Vec<f32> {
    (0..n)
        .map(|_| r.random_range(-1.0f32..1.0) * scale)
        .collect()
}

fn bf16s(r: &mut ChaCha8Rng, n: usize) -> Vec<bf16> {
    randn(r, n, 1.0).into_iter().map(bf16::from_f32).collect()
}

fn up(ctx: &GpuContext, bytes: &[u8]) -> wgpu::Buffer {
    ctx.upload("test input", bytes, &mut |_| {}).unwrap()
}

fn upf(ctx: &GpuContext, v: &[f32]) -> wgpu::Buffer {
    up(ctx, bytemuck::cast_slice(v))
}

fn read(ctx: &GpuContext, b: &wgpu::Buffer, n: usize) -> Vec<f32> {
    let mut bytes = Vec::new();
    ctx.read_back(b, (n * 4) as u64, &mut bytes).unwrap();
    bytemuck::cast_slice(&bytes).to_vec()
}

fn run(ctx: &GpuContext, f: impl FnOnce(&mut Recorder)) {
    let mut rec = Recorder::new(ctx);
    f(&mut rec);
    rec.submit(ctx, &mut None);
    ctx.wait().unwrap();
}

/// max |a - b| / max(1, max |b|)
fn rel_err(a: &[f32], b: &[f32]) -> f32 {
    assert_eq!(a.len(), b.len());
    let scale = b.iter().fold(1f32, |m, v| m.max(v.abs()));
    a.iter()
        .zip(b)
        .map(|(x, y)| (x - y).abs())
        .fold(0f32, f32::max)
        / scale
}

fn kernels(ctx: &GpuContext, e: ExpertFormat) -> Kernels {
    Kernels::new(ctx, WeightFormat::Bf16, e)
}

#[test]
fn embedding_gather_is_exact() {
    let Some(ctx) = open("embedding") else { return };
    let mut r = rng(1);
    for (vocab, h, n) in [(50, 37, 5), (300, 64, 1), (17, 130, 9)] {
        let tokens: Vec<u32> = (0..n).map(|_| r.random_range(0..vocab as u32)).collect();
        let tb = bf16s(&mut r, vocab * h);
        let tf = randn(&mut r, vocab * h, 1.0);
        for fmt in [WeightFormat::Bf16, WeightFormat::F32] {
            let k = Kernels::new(&ctx, fmt, ExpertFormat::Mxfp4);
            let mut want = vec![0f32; n * h];
            let table = match fmt {
                WeightFormat::Bf16 => {
                    embed_rows_bf16(&tb, &tokens, h, &mut want);
                    up(&ctx, bytemuck::cast_slice(&tb))
                }
                WeightFormat::F32 => {
                    embed_rows_f32(&tf, &tokens, h, &mut want);
                    upf(&ctx, &tf)
                }
            };
            let tok = up(&ctx, bytemuck::cast_slice(&tokens));
            let out = ctx.storage("x", (n * h * 4) as u64);
            run(&ctx, |rec| {
                rec.dispatch(
                    &k.embed,
                    &[P::U(n as u32), P::U(h as u32)],
                    &[&tok, &table, &out],
                    [(h as u32).div_ceil(64), n as u32, 1],
                )
                .unwrap()
            });
            assert_eq!(read(&ctx, &out, n * h), want, "{fmt:?} vocab {vocab} h {h}");
        }
    }
}

#[test]
fn rmsnorm_matches_the_cpu() {
    let Some(ctx) = open("rmsnorm") else { return };
    let k = kernels(&ctx, ExpertFormat::Mxfp4);
    let mut r = rng(2);
    for (n, d) in [(1, 37), (3, 64), (5, 2880)] {
        let x = randn(&mut r, n * d, 3.0);
        let s = randn(&mut r, d, 1.0);
        let mut want = vec![0f32; n * d];
        rmsnorm_f32(&x, &s, 1e-5, &mut want);
        let (xb, sb, yb) = (
            upf(&ctx, &x),
            upf(&ctx, &s),
            ctx.storage("y", (n * d * 4) as u64),
        );
        run(&ctx, |rec| {
            rec.dispatch(
                &k.rmsnorm,
                &[P::U(n as u32), P::U(d as u32), P::F(1e-5)],
                &[&xb, &sb, &yb],
                [n as u32, 1, 1],
            )
            .unwrap()
        });
        let e = rel_err(&read(&ctx, &yb, n * d), &want);
        assert!(e < 1e-5, "n {n} d {d}: {e}");
    }
}

#[test]
fn linear_matches_the_scalar_oracle() {
    let Some(ctx) = open("linear") else { return };
    let k = kernels(&ctx, ExpertFormat::Mxfp4);
    let mut r = rng(3);
    // (n, d_in, d_out): odd widths take the element path, partial row and token tiles.
    for (n, d_in, d_out) in [
        (1, 64, 4),
        (3, 37, 9),
        (5, 128, 13),
        (9, 200, 7),
        (4, 31, 1),
    ] {
        let x = randn(&mut r, n * d_in, 1.0);
        let b = randn(&mut r, d_out, 1.0);
        let wb = bf16s(&mut r, d_in * d_out);
        let wf = randn(&mut r, d_in * d_out, 1.0);
        for (fmt, narrow) in [
            (WeightFormat::Bf16, false),
            (WeightFormat::F32, false),
            (WeightFormat::Bf16, true),
            (WeightFormat::F32, true),
        ] {
            let mut want = vec![0f32; n * d_out];
            let wbuf = match fmt {
                WeightFormat::Bf16 => {
                    matmul_f32_bf16w_scalar(&x, &wb, Some(&b), &mut want, d_in, d_out);
                    up(&ctx, bytemuck::cast_slice(&wb))
                }
                WeightFormat::F32 => {
                    matmul_f32_f32w_scalar(&x, &wf, Some(&b), &mut want, d_in, d_out);
                    upf(&ctx, &wf)
                }
            };
            let (xb, bb, yb) = (
                upf(&ctx, &x),
                upf(&ctx, &b),
                ctx.storage("y", (n * d_out * 4) as u64),
            );
            let dummy = ctx.storage("dummy", 16);
            let y0 = randn(&mut r, n * d_out, 1.0);
            let acc = upf(&ctx, &y0);
            // plain (flags 1), accumulate (3) and scatter into a wider row (5).
            let ids: Vec<u32> = (0..d_out as u32).map(|o| 2 * o + 1).collect();
            let idb = up(&ctx, bytemuck::cast_slice(&ids));
            let wide = ctx.storage("wide", (n * (2 * d_out + 1) * 4) as u64);
            run(&ctx, |rec| {
                let g = [(d_out as u32).div_ceil(4), (n as u32).div_ceil(4), 1];
                let pr = |flags: u32, ys: usize| {
                    [
                        P::U(n as u32),
                        P::U(d_in as u32),
                        P::U(d_out as u32),
                        P::U(flags),
                        P::U(0),
                        P::U(d_in as u32),
                        P::U(ys as u32),
                    ]
                };
                let (lin, g) = if narrow {
                    (
                        k.linear_narrow(fmt),
                        [(d_out as u32).div_ceil(64), n as u32, 1],
                    )
                } else {
                    (k.linear(fmt), g)
                };
                rec.dispatch(lin, &pr(1, d_out), &[&xb, &wbuf, &bb, &dummy, &yb], g)
                    .unwrap();
                rec.dispatch(lin, &pr(3, d_out), &[&xb, &wbuf, &bb, &dummy, &acc], g)
                    .unwrap();
                rec.dispatch(
                    lin,
                    &pr(5, 2 * d_out + 1),
                    &[&xb, &wbuf, &bb, &idb, &wide],
                    g,
                )
                .unwrap();
            });
            let e = rel_err(&read(&ctx, &yb, n * d_out), &want);
            assert!(e < 1e-5, "{fmt:?} narrow {narrow} {n}x{d_in}->{d_out}: {e}");
            let want_acc: Vec<f32> = y0.iter().zip(&want).map(|(a, b)| a + b).collect();
            assert!(rel_err(&read(&ctx, &acc, n * d_out), &want_acc) < 1e-5);
            let got = read(&ctx, &wide, n * (2 * d_out + 1));
            for t in 0..n {
                for o in 0..d_out {
                    let g = got[t * (2 * d_out + 1) + 2 * o + 1];
                    assert!((g - want[t * d_out + o]).abs() < 1e-4, "scatter {t} {o}");
                    assert_eq!(got[t * (2 * d_out + 1) + 2 * o], 0.0, "scatter wrote a gap");
                }
            }
        }
    }
}

#[test]
fn rope_matches_the_cpu() {
    let Some(ctx) = open("rope") else { return };
    let k = kernels(&ctx, ExpertFormat::Mxfp4);
    let mut r = rng(4);
    for (n, hq, hk, hd, pos0) in [(1, 4, 2, 16, 0), (5, 8, 1, 64, 4000), (3, 2, 2, 8, 131000)] {
        let rope = YarnRope::new(hd, 150000.0, 32.0, 4096.0, 1.0, 32.0, false);
        let (qd, kvd) = (hq * hd, hk * hd);
        let stride = qd + 2 * kvd;
        let qkv = randn(&mut r, n * stride, 1.0);
        let dh = hd / 2;
        let (mut cos, mut sin) = (vec![0f32; n * dh], vec![0f32; n * dh]);
        rope.cos_sin(pos0, &mut cos, &mut sin);
        let (mut q, mut kk) = (Vec::new(), Vec::new());
        for t in 0..n {
            q.extend_from_slice(&qkv[t * stride..t * stride + qd]);
            kk.extend_from_slice(&qkv[t * stride + qd..t * stride + qd + kvd]);
        }
        rope_yarn_f32(&mut q, hq, hd, &cos, &sin);
        rope_yarn_f32(&mut kk, hk, hd, &cos, &sin);
        let cs: Vec<f32> = cos.iter().chain(&sin).copied().collect();
        let (csb, qb) = (upf(&ctx, &cs), upf(&ctx, &qkv));
        run(&ctx, |rec| {
            rec.dispatch(
                &k.rope,
                &[
                    P::U(n as u32),
                    P::U(hq as u32),
                    P::U(hk as u32),
                    P::U(hd as u32),
                    P::U(stride as u32),
                    P::U(qd as u32),
                ],
                &[&csb, &qb],
                [(((hq + hk) * dh) as u32).div_ceil(64), n as u32, 1],
            )
            .unwrap()
        });
        let got = read(&ctx, &qb, n * stride);
        for t in 0..n {
            let row = &got[t * stride..(t + 1) * stride];
            assert!(rel_err(&row[..qd], &q[t * qd..(t + 1) * qd]) < 1e-6);
            assert!(rel_err(&row[qd..qd + kvd], &kk[t * kvd..(t + 1) * kvd]) < 1e-6);
            assert_eq!(
                &row[qd + kvd..],
                &qkv[t * stride + qd + kvd..(t + 1) * stride],
                "v untouched"
            );
        }
    }
}

/// Attention (split-K partials + merge) and the cache append, against the scalar oracle with
/// the same past keys in a one-page cache (or a ring).
#[test]
fn attention_and_kv_store_match_the_scalar_oracle() {
    let Some(ctx) = open("attention") else { return };
    let k = kernels(&ctx, ExpertFormat::Mxfp4);
    let mut r = rng(5);
    // (heads, kv heads, head_dim, n_past, n, window, splits)
    let cases = [
        (4, 2, 16, 0, 5, None, 1),
        (4, 1, 8, 40, 1, Some(8), 1),
        (8, 2, 64, 300, 1, None, 7),
        (2, 2, 16, 20, 6, Some(8), 2),
        (4, 4, 32, 129, 3, None, 3),
        (2, 1, 64, 70, 100, Some(16), 1),
        (4, 2, 64, 0, 37, None, 1),
        (4, 2, 16, 300, 40, Some(128), 1),
    ];
    for (heads, kvh, hd, n_past, n, window, n_splits) in cases {
        let (qd, kvd) = (heads * hd, kvh * hd);
        let stride = qd + 2 * kvd;
        let ring = window.map(|w: usize| w);
        let slots = ring.unwrap_or(n_past + n);
        // Past keys/values by slot (ring: the last `ring` positions before the call).
        let mut kc = vec![0f32; slots.max(1) * kvd];
        let mut vc = vec![0f32; slots.max(1) * kvd];
        for pos in n_past.saturating_sub(ring.unwrap_or(n_past))..n_past {
            let slot = ring.map_or(pos, |rl| pos % rl);
            for c in 0..kvd {
                kc[slot * kvd + c] = r.random_range(-1.0..1.0);
                vc[slot * kvd + c] = r.random_range(-1.0..1.0);
            }
        }
        let qkv = randn(&mut r, n * stride, 1.0);
        let sinks = randn(&mut r, heads, 2.0);
        let (mut q, mut kn, mut vn) = (Vec::new(), Vec::new(), Vec::new());
        for t in 0..n {
            let row = &qkv[t * stride..(t + 1) * stride];
            q.extend_from_slice(&row[..qd]);
            kn.extend_from_slice(&row[qd..qd + kvd]);
            vn.extend_from_slice(&row[qd + kvd..]);
        }
        let (kp, vp) = (vec![kc.clone()], vec![vc.clone()]);
        let past = KvPages {
            k_pages: &kp,
            v_pages: &vp,
            page_len: slots.max(1),
            ring_len: ring,
        };
        let p = SdpaParams {
            n_heads: heads,
            n_kv_heads: kvh,
            head_dim: hd,
            sm_scale: 1.0 / (hd as f32).sqrt(),
            window,
        };
        let mut want = vec![0f32; n * qd];
        sdpa_sinks_f32_scalar(&q, &kn, &vn, &past, n_past, &sinks, &p, &mut want);

        let keys = n_past + n;
        let kps = keys.div_ceil(n_splits).div_ceil(64) * 64;
        let (qb, kb, vb, sb) = (
            upf(&ctx, &qkv),
            upf(&ctx, &kc),
            upf(&ctx, &vc),
            upf(&ctx, &sinks),
        );
        let part = ctx.storage("part", (n * heads * n_splits * (hd + 2) * 4) as u64);
        let out = ctx.storage("out", (n * qd * 4) as u64);
        let ring_u = ring.unwrap_or(0) as u32;
        run(&ctx, |rec| {
            rec.dispatch(
                &k.attention,
                &[
                    P::U(n as u32),
                    P::U(n_past as u32),
                    P::U(heads as u32),
                    P::U(kvh as u32),
                    P::U(hd as u32),
                    P::U(stride as u32),
                    P::U(qd as u32),
                    P::U((qd + kvd) as u32),
                    P::U(ring_u),
                    P::U(window.unwrap_or(0) as u32),
                    P::U(kps as u32),
                    P::U(n_splits as u32),
                    P::F(p.sm_scale),
                    P::U(0),
                ],
                &[&qb, &kb, &vb, &part],
                [n_splits as u32, heads as u32, n as u32],
            )
            .unwrap();
            rec.dispatch(
                &k.attention_merge,
                &[
                    P::U(n as u32),
                    P::U(heads as u32),
                    P::U(hd as u32),
                    P::U(n_splits as u32),
                    P::U(0),
                ],
                &[&part, &sb, &out],
                [heads as u32, n as u32, 1],
            )
            .unwrap();
        });
        let e = rel_err(&read(&ctx, &out, n * qd), &want);
        assert!(
            e < 1e-5,
            "heads {heads}/{kvh} hd {hd} past {n_past} n {n} window {window:?}: {e}"
        );
        // The prefill kernel (blocks of 16 queries) on the same inputs.
        if hd <= 64 {
            let out2 = ctx.storage("out", (n * qd * 4) as u64);
            run(&ctx, |rec| {
                rec.dispatch(
                    &k.attention_prefill,
                    &[
                        P::U(n as u32),
                        P::U(n_past as u32),
                        P::U(heads as u32),
                        P::U(kvh as u32),
                        P::U(hd as u32),
                        P::U(stride as u32),
                        P::U(qd as u32),
                        P::U((qd + kvd) as u32),
                        P::U(ring_u),
                        P::U(window.unwrap_or(0) as u32),
                        P::U(0),
                        P::U(1),
                        P::F(p.sm_scale),
                        P::U(0),
                    ],
                    &[&qb, &kb, &vb, &sb, &out2],
                    [(n as u32).div_ceil(16), heads as u32, 1],
                )
                .unwrap();
            });
            let e = rel_err(&read(&ctx, &out2, n * qd), &want);
            assert!(e < 1e-5, "prefill kernel: heads {heads}/{kvh} hd {hd} past {n_past} n {n} window {window:?}: {e}");
        }

        // Append: positions n_past.. land in their slots (a ring keeps the call's last `ring`).
        let (kb2, vb2) = (
            ctx.storage("k", (slots.max(1) * kvd * 4) as u64),
            ctx.storage("v", (slots.max(1) * kvd * 4) as u64),
        );
        run(&ctx, |rec| {
            rec.dispatch(
                &k.kv_store,
                &[
                    P::U(n as u32),
                    P::U(n_past as u32),
                    P::U(kvd as u32),
                    P::U(stride as u32),
                    P::U(qd as u32),
                    P::U((qd + kvd) as u32),
                    P::U(ring_u),
                    P::U(0),
                ],
                &[&qb, &kb2, &vb2],
                [(kvd as u32).div_ceil(64), n as u32, 1],
            )
            .unwrap()
        });
        let (gk, gv) = (
            read(&ctx, &kb2, slots.max(1) * kvd),
            read(&ctx, &vb2, slots.max(1) * kvd),
        );
        let first = ring.map_or(0, |rl| n.saturating_sub(rl));
        for t in first..n {
            let slot = ring.map_or(n_past + t, |rl| (n_past + t) % rl);
            assert_eq!(
                &gk[slot * kvd..(slot + 1) * kvd],
                &kn[t * kvd..(t + 1) * kvd]
            );
            assert_eq!(
                &gv[slot * kvd..(slot + 1) * kvd],
                &vn[t * kvd..(t + 1) * kvd]
            );
        }
    }
}

#[test]
fn router_topk_matches_the_cpu() {
    let Some(ctx) = open("topk") else { return };
    let k = kernels(&ctx, ExpertFormat::Mxfp4);
    let mut r = rng(6);
    for (n, e, kk) in [(1, 4, 2), (70, 32, 4), (5, 128, 4), (3, 8, 8)] {
        // Coarse values so ties happen: the lower index must win.
        let logits: Vec<f32> = (0..n * e)
            .map(|_| r.random_range(-4i32..4) as f32 * 0.5)
            .collect();
        let (lb, ib, wb) = (
            upf(&ctx, &logits),
            ctx.storage("idx", (n * kk * 4) as u64),
            ctx.storage("w", (n * kk * 4) as u64),
        );
        run(&ctx, |rec| {
            rec.dispatch(
                &k.topk,
                &[P::U(n as u32), P::U(e as u32), P::U(kk as u32)],
                &[&lb, &ib, &wb],
                [(n as u32).div_ceil(64), 1, 1],
            )
            .unwrap()
        });
        let mut bytes = Vec::new();
        ctx.read_back(&ib, (n * kk * 4) as u64, &mut bytes).unwrap();
        let idx: Vec<u32> = bytemuck::cast_slice(&bytes).to_vec();
        let w = read(&ctx, &wb, n * kk);
        for t in 0..n {
            let (mut wi, mut ww) = (vec![0usize; kk], vec![0f32; kk]);
            topk_softmax_f32(&logits[t * e..(t + 1) * e], &mut wi, &mut ww);
            let got: Vec<usize> = idx[t * kk..(t + 1) * kk]
                .iter()
                .map(|&i| i as usize)
                .collect();
            assert_eq!(got, wi, "token {t}");
            assert!(rel_err(&w[t * kk..(t + 1) * kk], &ww) < 1e-6);
        }
    }
}

/// Random MXFP4 experts: codes anywhere, scales around 2^0 (and a few extreme ones).
fn mxfp4(r: &mut ChaCha8Rng, n_experts: usize, d_out: usize, d_in: usize) -> (Vec<u8>, Vec<u8>) {
    let blocks = (0..n_experts * d_out * d_in / 2)
        .map(|_| r.random())
        .collect();
    let scales = (0..n_experts * d_out * d_in / 32)
        .map(|i| {
            if i % 97 == 5 {
                1
            } else {
                r.random_range(122..=130)
            }
        })
        .collect();
    (blocks, scales)
}

/// The expert pair (mlp1 with SwiGLU, mlp2 with the routed sum) for MXFP4 and dense weights.
#[test]
fn expert_products_match_the_scalar_oracle() {
    let Some(ctx) = open("experts") else { return };
    let mut r = rng(7);
    for (n, e, kk, h, inter) in [
        (1, 4, 2, 64, 32),
        (3, 8, 4, 96, 64),
        (5, 32, 4, 128, 96),
        (40, 8, 4, 64, 32),
        (9, 128, 4, 64, 64),
    ] {
        let (limit, alpha) = (7.0f32, 1.702f32);
        let x = randn(&mut r, n * h, 1.0);
        let (b1, b2) = (randn(&mut r, e * 2 * inter, 0.5), randn(&mut r, e * h, 0.5));
        // Distinct experts per token, weights summing to 1.
        let mut idx = Vec::new();
        let mut wts = Vec::new();
        for _ in 0..n {
            let mut chosen: Vec<u32> = Vec::new();
            while chosen.len() < kk {
                let c = r.random_range(0..e as u32);
                if !chosen.contains(&c) {
                    chosen.push(c);
                }
            }
            let raw: Vec<f32> = (0..kk).map(|_| r.random_range(0.1f32..1.0)).collect();
            let z: f32 = raw.iter().sum();
            idx.extend(chosen);
            wts.extend(raw.iter().map(|v| v / z));
        }
        let (blk1, sc1) = mxfp4(&mut r, e, 2 * inter, h);
        let (blk2, sc2) = mxfp4(&mut r, e, h, inter);
        let dense1 = bf16s(&mut r, e * 2 * inter * h);
        let dense2 = bf16s(&mut r, e * h * inter);
        for fmt in [ExpertFormat::Mxfp4, ExpertFormat::Dense(WeightFormat::Bf16)] {
            // CPU: per (token, slot) the expert's product, SwiGLU, the second product; sum in
            // expert order.
            let mut want = x.clone();
            let mut acts = vec![0f32; n * kk * inter];
            for t in 0..n {
                let mut order: Vec<usize> = (0..kk).collect();
                order.sort_by_key(|&j| idx[t * kk + j]);
                let mut acc = vec![0f32; h];
                for j in order {
                    let ex = idx[t * kk + j] as usize;
                    let xt = &x[t * h..(t + 1) * h];
                    let mut u = vec![0f32; 2 * inter];
                    let mut y = vec![0f32; h];
                    let act = &mut acts[(t * kk + j) * inter..(t * kk + j + 1) * inter];
                    let (bias1, bias2) = (
                        &b1[ex * 2 * inter..(ex + 1) * 2 * inter],
                        &b2[ex * h..(ex + 1) * h],
                    );
                    match fmt {
                        ExpertFormat::Mxfp4 => {
                            let (p1, p2) = (2 * inter * h, h * inter);
                            matmul_f32_mxfp4w_scalar(
                                xt,
                                &blk1[ex * p1 / 2..(ex + 1) * p1 / 2],
                                &sc1[ex * p1 / 32..(ex + 1) * p1 / 32],
                                Some(bias1),
                                &mut u,
                                h,
                                2 * inter,
                            );
                            swiglu_clamp_f32(&u, limit, alpha, act);
                            matmul_f32_mxfp4w_scalar(
                                act,
                                &blk2[ex * p2 / 2..(ex + 1) * p2 / 2],
                                &sc2[ex * p2 / 32..(ex + 1) * p2 / 32],
                                Some(bias2),
                                &mut y,
                                inter,
                                h,
                            );
                        }
                        ExpertFormat::Dense(_) => {
                            let (p1, p2) = (2 * inter * h, h * inter);
                            matmul_f32_bf16w_scalar(
                                xt,
                                &dense1[ex * p1..(ex + 1) * p1],
                                Some(bias1),
                                &mut u,
                                h,
                                2 * inter,
                            );
                            swiglu_clamp_f32(&u, limit, alpha, act);
                            matmul_f32_bf16w_scalar(
                                act,
                                &dense2[ex * p2..(ex + 1) * p2],
                                Some(bias2),
                                &mut y,
                                inter,
                                h,
                            );
                        }
                    }
                    for (a, v) in acc.iter_mut().zip(&y) {
                        *a += wts[t * kk + j] * v;
                    }
                }
                for (o, a) in want[t * h..(t + 1) * h].iter_mut().zip(&acc) {
                    *o += a;
                }
            }
            let k = kernels(&ctx, fmt);
            let (w1, s1, w2, s2) = match fmt {
                ExpertFormat::Mxfp4 => (
                    up(&ctx, &blk1),
                    up(&ctx, &sc1),
                    up(&ctx, &blk2),
                    up(&ctx, &sc2),
                ),
                ExpertFormat::Dense(_) => (
                    up(&ctx, bytemuck::cast_slice(&dense1)),
                    up(&ctx, &[0; 4]),
                    up(&ctx, bytemuck::cast_slice(&dense2)),
                    up(&ctx, &[0; 4]),
                ),
            };
            let (xb, ib, wb) = (
                upf(&ctx, &x),
                up(&ctx, bytemuck::cast_slice(&idx)),
                upf(&ctx, &wts),
            );
            let (b1b, b2b) = (upf(&ctx, &b1), upf(&ctx, &b2));
            let act = ctx.storage("act", (n * kk * inter * 4) as u64);
            let xo = upf(&ctx, &x);
            run(&ctx, |rec| {
                rec.dispatch(
                    &k.mlp1,
                    &[
                        P::U(n as u32),
                        P::U(kk as u32),
                        P::U(h as u32),
                        P::U(2 * inter as u32),
                        P::F(limit),
                        P::F(alpha),
                    ],
                    &[&xb, &ib, &w1, &s1, &b1b, &act],
                    [(2 * inter as u32).div_ceil(4), (n * kk) as u32, 1],
                )
                .unwrap();
                rec.dispatch(
                    &k.mlp2,
                    &[
                        P::U(n as u32),
                        P::U(kk as u32),
                        P::U(inter as u32),
                        P::U(h as u32),
                    ],
                    &[&act, &ib, &w2, &s2, &b2b, &wb, &xo],
                    [(h as u32).div_ceil(4), n as u32, 1],
                )
                .unwrap();
            });
            let ea = rel_err(&read(&ctx, &act, n * kk * inter), &acts);
            assert!(ea < 1e-5, "{fmt:?} swiglu activations: {ea}");
            let e2 = rel_err(&read(&ctx, &xo, n * h), &want);
            assert!(e2 < 1e-5, "{fmt:?} n {n} experts {e} k {kk}: {e2}");

            // The grouped path on the same inputs: route, grouped products, combine.
            let pairs = n * kk;
            let max_tiles = pairs.div_ceil(crate::kernels::GROUP_TILE) + e.min(pairs);
            let sorted = ctx.storage("sorted", (pairs * 4) as u64);
            let tiles = ctx.storage("tiles", ((4 + 4 * max_tiles) * 4) as u64);
            let act_g = ctx.storage("act", (pairs * inter * 4) as u64);
            let y_g = ctx.storage("y", (pairs * h * 4) as u64);
            let xg = upf(&ctx, &x);
            run(&ctx, |rec| {
                rec.dispatch(
                    &k.moe_route,
                    &[P::U(pairs as u32), P::U(e as u32), P::U(8)],
                    &[&ib, &sorted, &tiles],
                    [1, 1, 1],
                )
                .unwrap();
                rec.dispatch(
                    &k.moe_grouped,
                    &[
                        P::U(h as u32),
                        P::U(2 * inter as u32),
                        P::U(kk as u32),
                        P::U(1),
                        P::F(limit),
                        P::F(alpha),
                    ],
                    &[&xb, &sorted, &w1, &s1, &b1b, &tiles, &act_g],
                    [(2 * inter as u32).div_ceil(4), max_tiles as u32, 1],
                )
                .unwrap();
                rec.dispatch(
                    &k.moe_grouped,
                    &[P::U(inter as u32), P::U(h as u32), P::U(1), P::U(0)],
                    &[&act_g, &sorted, &w2, &s2, &b2b, &tiles, &y_g],
                    [(h as u32).div_ceil(4), max_tiles as u32, 1],
                )
                .unwrap();
                rec.dispatch(
                    &k.moe_combine,
                    &[P::U(n as u32), P::U(kk as u32), P::U(h as u32)],
                    &[&y_g, &ib, &wb, &xg],
                    [(h as u32).div_ceil(64), n as u32, 1],
                )
                .unwrap();
            });
            let ga = rel_err(&read(&ctx, &act_g, pairs * inter), &acts);
            assert!(ga < 1e-5, "{fmt:?} grouped swiglu activations: {ga}");
            let g2 = rel_err(&read(&ctx, &xg, n * h), &want);
            assert!(g2 < 1e-5, "{fmt:?} grouped n {n} experts {e} k {kk}: {g2}");
        }
    }
}
