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

#[test]
fn q8_mxfp4_rows_equal_the_oracle_on_every_level() {
    let mut r = Rng(31);
    for &(n, d_in, d_out) in SHAPES {
        let x: Vec<f32> = (0..n * d_in).map(|_| r.f() * 4.0).collect();
        let (blocks, scales) = mxfp4_weights(&mut r, d_in, d_out);
        let b: Vec<f32> = (0..d_out).map(|_| r.f()).collect();
        let mut xq = Q8Rows::new();
        xq.quantize(&x, d_in);
        let mut want = vec![0f32; n * d_out];
        matmul_q8_mxfp4w_scalar(&xq, &blocks, &scales, Some(&b), &mut want, d_out);
        for (level, k) in levels() {
            let mut out = vec![f32::NAN; n * d_out];
            k.q8_mxfp4_rows(
                &blocks,
                &scales,
                &xq,
                d_out,
                Some(&b),
                &mut out,
                &mut Vec::new(),
            );
            let got = transpose(&out, d_out, n);
            assert_eq!(
                bits(&got),
                bits(&want),
                "{level} n={n} d_in={d_in} d_out={d_out}"
            );
        }
    }
}

#[test]
fn q8_q8w_rows_equal_the_oracle_on_every_level() {
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
        for (level, k) in levels() {
            let mut y = vec![f32::NAN; n * d_out];
            let mut ptrs: Vec<*mut f32> =
                y.chunks_exact_mut(d_out).map(|r| r.as_mut_ptr()).collect();
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
                "{level} n={n} d_in={d_in} d_out={d_out}"
            );
        }
    }
}

#[test]
fn f32_paths_give_the_same_bits_on_every_level() {
    let mut r = Rng(33);
    let levels = levels();
    for &(n, d_in, d_out) in SHAPES.iter().chain(&[(4, 37, 9), (2, 130, 258)]) {
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
