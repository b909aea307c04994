//! Every SIMD level against the scalar oracles, kernel by kernel, called through the seam on
//! whole row ranges: the int8 paths give the oracle's bits; the f32 paths give the same bits on
//! every SIMD level (they differ from the scalar twins only by FMA rounding, tested in
//! `matmul.rs`).

use super::{available_levels, simd_at, KernelLevel, OutRows, SimdKernels};
use crate::q8::Q8Rows;
use crate::q8w::Q8Weights;
use crate::test_rng::Rng;
use crate::{bf16, matmul_q8_mxfp4w_scalar, matmul_q8_q8w_scalar};

fn levels() -> Vec<(KernelLevel, &'static dyn SimdKernels)> {
    available_levels()
        .into_iter()
        .filter_map(|l| simd_at(l).map(|k| (l, k)))
        .collect()
}

fn bits(v: &[f32]) -> Vec<u32> {
    v.iter()
        .map(|x| if x.is_nan() { u32::MAX } else { x.to_bits() })
        .collect()
}

/// Shapes hitting every tile path: one token (decode tiles), odd token counts, row counts
/// leaving partial tiles, odd numbers of 32-blocks, gpt-oss's 2880.
const SHAPES: &[(usize, usize, usize)] = &[
    (1, 32, 5),
    (1, 96, 13),
    (1, 2880, 45),
    (2, 64, 7),
    (3, 160, 30),
    (5, 96, 301),
    (7, 2880, 25),
    (9, 320, 77),
    (13, 32, 11),
    (17, 2880, 33),
    (33, 64, 19),
    (20, 96, 37),
    (40, 2880, 70),
    (64, 32, 17),
];

fn mxfp4_weights(r: &mut Rng, d_in: usize, d_out: usize) -> (Vec<u8>, Vec<u8>) {
    let blocks: Vec<u8> = (0..d_out * d_in / 2).map(|_| r.byte()).collect();
    let scales: Vec<u8> = (0..d_out * d_in / 32)
        .map(|i| {
            if i % 53 == 7 {
                [0u8, 1, 254, 255][i % 4]
            } else {
                118 + r.byte() % 8
            }
        })
        .collect();
    (blocks, scales)
}

/// `out` [rows, n] (by output row) → [n, rows].
fn transpose(out: &[f32], rows: usize, n: usize) -> Vec<f32> {
    let mut y = vec![0f32; rows * n];
    for o in 0..rows {
        for t in 0..n {
            y[t * rows + o] = out[o * n + t];
        }
    }
    y
}

/// One kernel set's int8 MXFP4 rows against the scalar oracle on every shape, bitwise.
pub(crate) fn check_q8_mxfp4(k: &dyn SimdKernels, name: &str) {
    let mut r = Rng(31);
    for &(n, d_in, d_out) in SHAPES {
        let x: Vec<f32> = (0..n * d_in).map(|_| r.f() * 4.0).collect();
        let (blocks, scales) = mxfp4_weights(&mut r, d_in, d_out);
        let b: Vec<f32> = (0..d_out).map(|_| r.f()).collect();
        let mut xq = Q8Rows::new();
        xq.quantize(&x, d_in);
        let mut want = vec![0f32; n * d_out];
        matmul_q8_mxfp4w_scalar(&xq, &blocks, &scales, Some(&b), &mut want, d_out);
        // Written in place per token, two row ranges as two tasks would split them.
        let mut y = vec![f32::NAN; n * d_out];
        let mut ptrs: Vec<*mut f32> = y.chunks_exact_mut(d_out).map(|r| r.as_mut_ptr()).collect();
        let (rb, rs) = (d_in / 2, d_in / 32);
        let half = d_out / 2;
        // SAFETY: each pointer is a whole [d_out] row of `y`; the calls run one at a time.
        unsafe {
            let out = OutRows { tok: &mut ptrs };
            for (o0, rows) in [(0, half), (half, d_out - half)] {
                k.q8_mxfp4_rows_to(
                    &blocks[o0 * rb..(o0 + rows) * rb],
                    &scales[o0 * rs..(o0 + rows) * rs],
                    &xq,
                    rows,
                    Some(&b[o0..]),
                    out,
                    o0,
                    &mut Vec::new(),
                );
            }
        }
        assert_eq!(
            bits(&y),
            bits(&want),
            "{name} n={n} d_in={d_in} d_out={d_out}"
        );
    }
}

/// One kernel set's int8 × int8 rows against the scalar oracle on every shape, bitwise.
pub(crate) fn check_q8_q8w(k: &dyn SimdKernels, name: &str) {
    let mut r = Rng(32);
    for &(n, d_in, d_out) in SHAPES {
        let w: Vec<f32> = (0..d_in * d_out).map(|_| r.f()).collect();
        let w = Q8Weights::from_f32(&w, d_in, d_out).expect("finite weights");
        let x: Vec<f32> = (0..n * d_in).map(|_| r.f() * 3.0).collect();
        let mut xq = Q8Rows::new();
        xq.quantize(&x, d_in);
        let b: Vec<f32> = (0..d_out).map(|_| r.f()).collect();
        let mut want = vec![0f32; n * d_out];
        matmul_q8_q8w_scalar(&xq, &w, Some(&b), &mut want);
        let mut y = vec![f32::NAN; n * d_out];
        let mut ptrs: Vec<*mut f32> = y.chunks_exact_mut(d_out).map(|r| r.as_mut_ptr()).collect();
        // Two row ranges, as two tasks would run them.
        let half = d_out / 2;
        // SAFETY: each pointer is a whole [d_out] row of `y`; the calls run one at a time.
        unsafe {
            let out = OutRows { tok: &mut ptrs };
            k.q8_q8w_rows(&xq, &w, 0, half, Some(&b), out);
            k.q8_q8w_rows(&xq, &w, half, d_out - half, Some(&b), out);
        }
        assert_eq!(
            bits(&y),
            bits(&want),
            "{name} n={n} d_in={d_in} d_out={d_out}"
        );
    }
}

#[test]
fn q8_mxfp4_rows_equal_the_oracle_on_every_level() {
    for (level, k) in levels() {
        check_q8_mxfp4(k, level.name());
    }
}

#[test]
fn q8_q8w_rows_equal_the_oracle_on_every_level() {
    for (level, k) in levels() {
        check_q8_q8w(k, level.name());
    }
}

#[test]
fn f32_paths_give_the_same_bits_on_every_level() {
    let mut r = Rng(33);
    let levels = levels();
    // Beyond SHAPES: input tails (d_in % 8) on every path, including batches of 17+ tokens
    // (the blocked product) with more than one input slice.
    let extra = [
        (4, 37, 9),
        (2, 130, 258),
        (19, 45, 13),
        (18, 300, 70),
        (20, 7, 3),
    ];
    for &(n, d_in, d_out) in SHAPES.iter().chain(&extra) {
        let x: Vec<f32> = (0..n * d_in).map(|_| r.f()).collect();
        let wf: Vec<f32> = (0..d_in * d_out).map(|_| r.f()).collect();
        let wb: Vec<bf16> = wf.iter().map(|&v| bf16::from_f32(v)).collect();
        let b: Vec<f32> = (0..d_out).map(|_| r.f()).collect();
        let mut first: Option<(KernelLevel, [Vec<u32>; 3])> = None;
        for &(level, k) in &levels {
            let mut yf = vec![f32::NAN; n * d_out];
            let mut yb = vec![f32::NAN; n * d_out];
            let mut pf: Vec<*mut f32> =
                yf.chunks_exact_mut(d_out).map(|r| r.as_mut_ptr()).collect();
            let mut pb: Vec<*mut f32> =
                yb.chunks_exact_mut(d_out).map(|r| r.as_mut_ptr()).collect();
            // SAFETY: each pointer is a whole [d_out] row of its output; one call at a time.
            unsafe {
                k.dense_f32_rows(
                    &wf,
                    &x,
                    n,
                    d_in,
                    d_out,
                    Some(&b),
                    OutRows { tok: &mut pf },
                    0,
                );
                k.dense_bf16_rows(&wb, &x, n, d_in, d_out, None, OutRows { tok: &mut pb }, 0);
            }
            let mut ym = Vec::new();
            if d_in % 32 == 0 {
                let (blocks, scales) = mxfp4_weights(&mut Rng(d_in as u64), d_in, d_out);
                let mut xp = Vec::new();
                crate::matmul::permute_x(&x, &mut xp);
                let mut out = vec![f32::NAN; n * d_out];
                k.mxfp4_rows(
                    &blocks,
                    &scales,
                    &xp,
                    n,
                    d_in,
                    d_out,
                    Some(&b),
                    &mut out,
                    &mut Vec::new(),
                );
                ym = transpose(&out, d_out, n);
            }
            let got = [bits(&yf), bits(&yb), bits(&ym)];
            match &first {
                None => first = Some((level, got)),
                Some((l0, want)) => {
                    for (i, name) in ["f32", "bf16", "mxfp4"].iter().enumerate() {
                        assert!(
                            got[i] == want[i],
                            "{name}: {level} differs from {l0} n={n} d_in={d_in} d_out={d_out}"
                        );
                    }
                }
            }
        }
    }
}

/// The dense f32 contract (`cpu/avx2/dense.rs`) in plain Rust: 8 lanes, lane = k % 8, one
/// `mul_add` per element, the tail into lanes 0.., lanes summed ((0+1)+(2+3))+((4+5)+(6+7)),
/// then the bias (+0.0 without one).
fn dense_contract(w: &[f32], x: &[f32], bias: Option<f32>) -> f32 {
    let d_in = x.len();
    let n8 = d_in / 8 * 8;
    let mut l = [0f32; 8];
    for k in 0..n8 {
        l[k % 8] = w[k].mul_add(x[k], l[k % 8]);
    }
    for (i, k) in (n8..d_in).enumerate() {
        l[i] = w[k].mul_add(x[k], l[i]);
    }
    (((l[0] + l[1]) + (l[2] + l[3])) + ((l[4] + l[5]) + (l[6] + l[7]))) + bias.unwrap_or(0.0)
}

/// The exact MXFP4 contract in plain Rust, for one row (`packed` [d_in/2], `scales`
/// [d_in/32]) and one permuted token `xp` [d_in]: per block, `b = w0·x0` then `fma` over the
/// other three groups of 8 (w = twice the FP4 value), then `acc = fma(b, scale / 2, acc)`.
fn mxfp4_contract(packed: &[u8], scales: &[u8], xp: &[f32], bias: Option<f32>) -> f32 {
    let mut acc = [0f32; 8];
    for (blk, &s) in scales.iter().enumerate() {
        let code = |q: usize| {
            let byte = packed[blk * 16 + q % 16];
            let c = if q < 16 { byte & 15 } else { byte >> 4 };
            crate::q8::FP4_X2_I8[c as usize] as f32
        };
        let mut b = [0f32; 8];
        for j in 0..4 {
            for (l, bl) in b.iter_mut().enumerate() {
                let q = 8 * j + l;
                let x = xp[blk * 32 + q];
                *bl = if j == 0 {
                    code(q) * x
                } else {
                    code(q).mul_add(x, *bl)
                };
            }
        }
        let hs = crate::dtype::HALF_SCALE[s as usize];
        for (a, bl) in acc.iter_mut().zip(b) {
            *a = bl.mul_add(hs, *a);
        }
    }
    let l = acc;
    (((l[0] + l[1]) + (l[2] + l[3])) + ((l[4] + l[5]) + (l[6] + l[7]))) + bias.unwrap_or(0.0)
}

/// One kernel set's f32, bf16 and MXFP4 rows against the plain-Rust contract, bitwise, on odd
/// shapes: tails of every length, partial row and token tiles, one token and batches (bf16
/// batches of 3+ tokens take the widening path), bias and none.
pub(crate) fn check_f32_contract(k: &dyn SimdKernels, name: &str) {
    let mut r = Rng(34);
    let extra = [
        (1, 7, 3),
        (3, 13, 5),
        (4, 37, 9),
        (2, 130, 258),
        (6, 64, 10),
        (5, 2880, 6),
        (1, 2880, 9),
        (19, 45, 13),
        (18, 300, 70),
        (20, 7, 3),
    ];
    for &(n, d_in, d_out) in SHAPES.iter().chain(&extra) {
        let x: Vec<f32> = (0..n * d_in).map(|_| r.f()).collect();
        let wf: Vec<f32> = (0..d_in * d_out).map(|_| r.f()).collect();
        let wb: Vec<bf16> = wf.iter().map(|&v| bf16::from_f32(v)).collect();
        let wbf: Vec<f32> = wb.iter().map(|&v| crate::bf16_to_f32(v)).collect();
        let b: Vec<f32> = (0..d_out).map(|_| r.f()).collect();
        for bias in [None, Some(&b[..])] {
            let mut yf = vec![f32::NAN; n * d_out];
            let mut yb = vec![f32::NAN; n * d_out];
            let mut pf: Vec<*mut f32> =
                yf.chunks_exact_mut(d_out).map(|r| r.as_mut_ptr()).collect();
            let mut pb: Vec<*mut f32> =
                yb.chunks_exact_mut(d_out).map(|r| r.as_mut_ptr()).collect();
            // Two row ranges, as two tasks would run them.
            let half = d_out / 2;
            // SAFETY: each pointer is a whole [d_out] row of its output; one call at a time,
            // and each call gets the weight rows and bias entries of its own range.
            unsafe {
                for (o0, rows) in [(0, half), (half, d_out - half)] {
                    let bs = bias.map(|b| &b[o0..]);
                    let (w0, w1) = (o0 * d_in, (o0 + rows) * d_in);
                    let of = OutRows { tok: &mut pf };
                    k.dense_f32_rows(&wf[w0..w1], &x, n, d_in, rows, bs, of, o0);
                    let ob = OutRows { tok: &mut pb };
                    k.dense_bf16_rows(&wb[w0..w1], &x, n, d_in, rows, bs, ob, o0);
                }
            }
            let mut want_f = vec![0f32; n * d_out];
            let mut want_b = vec![0f32; n * d_out];
            for t in 0..n {
                let xt = &x[t * d_in..(t + 1) * d_in];
                for o in 0..d_out {
                    let bo = bias.map(|b| b[o]);
                    want_f[t * d_out + o] = dense_contract(&wf[o * d_in..][..d_in], xt, bo);
                    want_b[t * d_out + o] = dense_contract(&wbf[o * d_in..][..d_in], xt, bo);
                }
            }
            let tag = format!(
                "{name} n={n} d_in={d_in} d_out={d_out} bias={}",
                bias.is_some()
            );
            assert_eq!(bits(&yf), bits(&want_f), "f32: {tag}");
            assert_eq!(bits(&yb), bits(&want_b), "bf16: {tag}");
            if d_in % 32 != 0 {
                continue;
            }
            let (blocks, scales) = mxfp4_weights(&mut r, d_in, d_out);
            let mut xp = Vec::new();
            crate::matmul::permute_x(&x, &mut xp);
            let mut out = vec![f32::NAN; n * d_out];
            k.mxfp4_rows(
                &blocks,
                &scales,
                &xp,
                n,
                d_in,
                d_out,
                bias,
                &mut out,
                &mut Vec::new(),
            );
            let got = transpose(&out, d_out, n);
            let mut want = vec![0f32; n * d_out];
            for t in 0..n {
                for o in 0..d_out {
                    want[t * d_out + o] = mxfp4_contract(
                        &blocks[o * d_in / 2..(o + 1) * d_in / 2],
                        &scales[o * d_in / 32..(o + 1) * d_in / 32],
                        &xp[t * d_in..(t + 1) * d_in],
                        bias.map(|b| b[o]),
                    );
                }
            }
            assert_eq!(bits(&got), bits(&want), "mxfp4: {tag}");
        }
    }
}

#[test]
fn f32_paths_follow_the_contract_on_every_level() {
    for (level, k) in levels() {
        check_f32_contract(k, level.name());
    }
}

/// Prints the level that runs (the cross-build script's logs show it) and checks that a
/// forced `GPT_OSS_KERNELS` level this CPU has is the one that runs; NEON is baseline on
/// aarch64, so it is always available there.
#[test]
fn the_forced_level_runs() {
    eprintln!("{}", super::kernel_summary());
    let forced = std::env::var("GPT_OSS_KERNELS").ok();
    let want = forced.as_deref().and_then(KernelLevel::parse);
    if let Some(want) = want.filter(|l| available_levels().contains(l)) {
        if std::env::var_os("GPTOSS_SCALAR").is_none() {
            assert_eq!(super::kernel_level(), want);
        }
    }
    #[cfg(target_arch = "aarch64")]
    assert!(available_levels().contains(&KernelLevel::Neon));
}

/// Every level's activation quantization gives `q8::quantize_row`'s bits: ordinary blocks,
/// all-zero blocks, blocks holding NaN or infinity, huge and tiny magnitudes, half-way values,
/// an odd number of blocks.
#[test]
fn q8_quantization_equals_the_scalar_one_on_every_level() {
    let mut r = Rng(33);
    for d_in in [32usize, 64, 96, 2880] {
        let nb = d_in / 32;
        let np = nb.div_ceil(2);
        for case in 0..6 {
            let mut x: Vec<f32> = (0..d_in).map(|_| r.f() * 4.0).collect();
            match case {
                1 => x[..32].fill(0.0),
                2 => x[5] = f32::NAN,
                3 => x[31] = f32::NEG_INFINITY,
                4 => x.iter_mut().for_each(|v| *v *= 1e30),
                5 => {
                    // Scale 1 (each block's largest is 127) and values half-way between
                    // integers: rounding ties to even.
                    for (i, v) in x.iter_mut().enumerate() {
                        *v = if i % 32 == 0 {
                            127.0
                        } else {
                            (i % 254) as f32 - 126.5
                        };
                    }
                }
                _ => {}
            }
            let want = {
                let (mut q, mut d) = (vec![0i8; np * 64], vec![0f32; np * 8]);
                let mut cb = vec![0i32; np * 2];
                crate::q8::quantize_row(&x, &mut q, &mut d, &mut cb);
                (q, bits(&d), cb)
            };
            for (level, k) in levels() {
                let (mut q, mut d) = (vec![1i8; np * 64], vec![1f32; np * 8]);
                let mut cb = vec![1i32; np * 2];
                k.quantize_q8_row(&x, &mut q, &mut d, &mut cb);
                assert_eq!(
                    (q, bits(&d), cb),
                    want,
                    "{} d_in={d_in} case {case}",
                    level.name()
                );
            }
        }
    }
}
