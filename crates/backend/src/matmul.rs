//! Matrix products `y[n, out] = x[n, in] · Wᵀ (+ b)` reading each weight dtype in place, plus
//! embedding-row gathers.
//!
//! Numerics: f32 products accumulated in 8 interleaved f32 lanes (lane = index % 8) over the
//! whole row, then the lanes summed in a fixed order. Every path (one token or many, bf16/f32/MXFP4)
//! uses that same order, so the result for a token does not depend on how many tokens share the
//! call: incremental decode is bit-identical to a batched prefill. MXFP4 rows are decoded one block
//! (or one row) at a time, never a whole tensor.
//!
//! Parallelism: output rows are split across rayon threads; `*_ref` twins in the tests are the
//! plain sequential loops.

use rayon::prelude::*;

use crate::cpu::{OutRows, SimdKernels};
use crate::dtype::{bf16, bf16_to_f32, decode_mxfp4_block, decode_mxfp4_row, MXFP4_BLOCK};

const LANES: usize = 8;

/// Below this many multiply-adds a call runs on the calling thread (rayon overhead dominates).
const PAR_MIN_WORK: usize = 1 << 15;

/// Multiply-adds a parallel task gets at least: below ~65 K (a few µs on these CPUs) handing
/// the task to another thread costs about as much as doing it.
pub(crate) const TASK_MIN_WORK: usize = 1 << 16;

/// Output rows per parallel task, a multiple of `align` (so the kernels' row tiles stay
/// whole): up to 8 tasks per thread for balance, but none under [`TASK_MIN_WORK`]; `d_out`
/// (one task, run on the calling thread) when the whole call is that small, as every product
/// of a small model's decode step is.
pub(crate) fn rows_per_task(d_out: usize, work: usize, align: usize) -> usize {
    let threads = rayon::current_num_threads().max(1);
    let tasks = (work / TASK_MIN_WORK).clamp(1, threads * 8);
    if tasks == 1 {
        return d_out;
    }
    d_out.div_ceil(tasks).div_ceil(align).max(1) * align
}

/// The lanes of one 8-lane accumulator summed as ((0+1)+(2+3))+((4+5)+(6+7)): the order every
/// path and every kernel level ends with (`l` holds at least 8 floats; only the first 8 count).
#[inline(always)]
pub(crate) fn reduce8(l: &[f32]) -> f32 {
    ((l[0] + l[1]) + (l[2] + l[3])) + ((l[4] + l[5]) + (l[6] + l[7]))
}

/// Lane-accumulating dot product over `x` and `w` converted by `conv`. The tail (len % 8) goes
/// into the first lanes, which keeps the order identical for every caller.
#[inline(always)]
fn dot_lanes<T: Copy>(acc: &mut [f32; LANES], x: &[f32], w: &[T], conv: impl Fn(T) -> f32) {
    let n8 = x.len() / LANES * LANES;
    for (xc, wc) in x[..n8].chunks_exact(LANES).zip(w[..n8].chunks_exact(LANES)) {
        for l in 0..LANES {
            acc[l] += xc[l] * conv(wc[l]);
        }
    }
    for (l, (&xv, &wv)) in x[n8..].iter().zip(&w[n8..]).enumerate() {
        acc[l] += xv * conv(wv);
    }
}

#[inline(always)]
fn dot_f32(x: &[f32], w: &[f32]) -> f32 {
    let mut acc = [0f32; LANES];
    dot_lanes(&mut acc, x, w, |v| v);
    reduce8(&acc)
}

fn check_dims(x: &[f32], w_len: usize, bias: Option<&[f32]>, y: &[f32], d_in: usize, d_out: usize) {
    assert!(d_in > 0 && d_out > 0, "matmul: zero dimension");
    assert_eq!(x.len() % d_in, 0, "matmul: x is not [n, {d_in}]");
    let n = x.len() / d_in;
    assert_eq!(y.len(), n * d_out, "matmul: y is not [{n}, {d_out}]");
    assert_eq!(w_len, d_in * d_out, "matmul: W is not [{d_out}, {d_in}]");
    if let Some(b) = bias {
        assert_eq!(b.len(), d_out, "matmul: bias is not [{d_out}]");
    }
}

/// Runs `row_fn(o, y_col)` for every output row `o`, writing `y[t, o]` for all tokens `t`.
/// One token: the output row is `y` itself, split across threads. Many tokens: each thread
/// fills a [n] column for its rows into a transposed buffer that is then copied into `y`; this
/// keeps each weight row hot in cache while it meets every token.
/// `row_fn` also gets a per-thread scratch vector (reused across rows) for decoded weights.
fn for_each_out_row<F>(y: &mut [f32], n: usize, d_out: usize, work: usize, row_fn: F)
where
    F: Fn(usize, &mut [f32], &mut Vec<f32>) + Sync + Send,
{
    if n == 1 {
        if work < PAR_MIN_WORK {
            let mut scratch = Vec::new();
            for (o, yo) in y.iter_mut().enumerate() {
                row_fn(o, std::slice::from_mut(yo), &mut scratch);
            }
        } else {
            y.par_iter_mut()
                .enumerate()
                .with_min_len(16)
                .for_each_init(Vec::new, |scratch, (o, yo)| {
                    row_fn(o, std::slice::from_mut(yo), scratch)
                });
        }
        return;
    }
    // f32 [d_out, n]
    let mut yt = vec![0f32; n * d_out];
    if work < PAR_MIN_WORK {
        let mut scratch = Vec::new();
        for (o, col) in yt.chunks_mut(n).enumerate() {
            row_fn(o, col, &mut scratch);
        }
    } else {
        yt.par_chunks_mut(n)
            .enumerate()
            .with_min_len(4)
            .for_each_init(Vec::new, |scratch, (o, col)| row_fn(o, col, scratch));
    }
    for (o, col) in yt.chunks(n).enumerate() {
        for (t, &v) in col.iter().enumerate() {
            y[t * d_out + o] = v;
        }
    }
}

/// Whether SIMD kernels run (any level above the scalar oracles; see [`crate::kernel_level`]).
pub fn fast_kernels() -> bool {
    crate::cpu::simd().is_some()
}

/// Reorders each 32-element block of `x` (f32 [n, d_in], d_in % 32 == 0) into its 16 even
/// elements followed by its 16 odd ones, the order in which the packed nibbles decode.
pub(crate) fn permute_x(x: &[f32], out: &mut Vec<f32>) {
    out.resize(x.len(), 0.0);
    for (src, dst) in x.chunks_exact(32).zip(out.chunks_exact_mut(32)) {
        for j in 0..16 {
            dst[j] = src[2 * j];
            dst[16 + j] = src[2 * j + 1];
        }
    }
}

/// Splits the output rows into tasks and runs `rows_fn(o0, rows, out, scratch)` for each, `out`
/// being f32 [rows, n] (row-major by output row). One token writes straight into `y`; many go
/// through a transposed buffer copied into `y` [n, d_out] at the end.
pub(crate) fn fast_par_rows<F>(y: &mut [f32], n: usize, d_out: usize, work: usize, rows_fn: F)
where
    F: Fn(usize, usize, &mut [f32], &mut Vec<f32>) + Sync + Send,
{
    // Multiples of 48 rows keep the 4-row (decode), 2- and 3-row (batch) and 16-row (AVX-512
    // int8 groups) tiles whole.
    let per_task = rows_per_task(d_out, work, 48);
    let run = |out: &mut [f32]| {
        if per_task >= d_out {
            rows_fn(0, d_out, out, &mut Vec::new());
        } else {
            out.par_chunks_mut(per_task * n)
                .enumerate()
                .for_each_init(Vec::new, |scratch, (i, chunk)| {
                    rows_fn(i * per_task, chunk.len() / n, chunk, scratch)
                });
        }
    };
    if n == 1 {
        run(y);
        return;
    }
    // f32 [d_out, n]
    let mut yt = vec![0f32; n * d_out];
    run(&mut yt);
    for (o, col) in yt.chunks(n).enumerate() {
        for (t, &v) in col.iter().enumerate() {
            y[t * d_out + o] = v;
        }
    }
}

/// A dense weight element type (f32 or bf16) the fast row kernels read in place.
pub(crate) trait DenseWeight: Copy + Sync {
    const IS_BF16: bool;
    fn to_f32(self) -> f32;

    /// The SIMD level's row kernel for this weight type.
    ///
    /// # Safety
    /// As [`SimdKernels::dense_f32_rows`].
    #[allow(clippy::too_many_arguments)]
    unsafe fn simd_rows(
        k: &dyn SimdKernels,
        w: &[Self],
        x: &[f32],
        n: usize,
        d_in: usize,
        rows: usize,
        bias: Option<&[f32]>,
        out: OutRows<'_>,
        o0: usize,
    );
}

impl DenseWeight for f32 {
    const IS_BF16: bool = false;
    #[inline(always)]
    fn to_f32(self) -> f32 {
        self
    }

    unsafe fn simd_rows(
        k: &dyn SimdKernels,
        w: &[f32],
        x: &[f32],
        n: usize,
        d_in: usize,
        rows: usize,
        bias: Option<&[f32]>,
        out: OutRows<'_>,
        o0: usize,
    ) {
        // SAFETY: the caller's contract.
        unsafe { k.dense_f32_rows(w, x, n, d_in, rows, bias, out, o0) }
    }
}

impl DenseWeight for bf16 {
    const IS_BF16: bool = true;
    #[inline(always)]
    fn to_f32(self) -> f32 {
        bf16_to_f32(self)
    }

    unsafe fn simd_rows(
        k: &dyn SimdKernels,
        w: &[bf16],
        x: &[f32],
        n: usize,
        d_in: usize,
        rows: usize,
        bias: Option<&[f32]>,
        out: OutRows<'_>,
        o0: usize,
    ) {
        // SAFETY: the caller's contract.
        unsafe { k.dense_bf16_rows(w, x, n, d_in, rows, bias, out, o0) }
    }
}

/// The SIMD dense product shared by the f32 and bf16 weight paths, token t's results
/// written to `outs[t]` (each f32 [d_out]); `false` when the CPU lacks the kernels (the caller
/// then runs its scalar oracle). Output rows are split into tasks; every task writes its rows
/// of every token straight into the outputs (no transposed buffer).
fn matmul_dense_fast<T: DenseWeight>(
    x: &[f32],
    w: &[T],
    bias: Option<&[f32]>,
    mut outs: Outs<'_, '_>,
    d_in: usize,
    d_out: usize,
) -> bool {
    if let Some(k) = crate::cpu::simd() {
        let n = outs.n_tokens(d_out);
        assert!(d_in > 0 && d_out > 0, "matmul: zero dimension");
        assert_eq!(x.len(), n * d_in, "matmul: x is not [{n}, {d_in}]");
        assert_eq!(w.len(), d_in * d_out, "matmul: W is not [{d_out}, {d_in}]");
        if let Outs::Rows(rows) = &outs {
            assert!(
                rows.iter().all(|o| o.len() == d_out),
                "matmul: an output row is not [{d_out}]"
            );
        }
        if let Some(b) = bias {
            assert_eq!(b.len(), d_out, "matmul: bias is not [{d_out}]");
        }
        // The per-token output pointers: on the stack for decode-sized batches, so a decode
        // step allocates nothing here.
        let mut on_stack = [std::ptr::null_mut::<f32>(); PTRS_ON_STACK];
        let mut on_heap = Vec::new();
        let ptrs: &mut [*mut f32] = if n <= PTRS_ON_STACK {
            &mut on_stack[..n]
        } else {
            on_heap.resize(n, std::ptr::null_mut());
            &mut on_heap
        };
        outs.fill_pointers(ptrs, d_out);
        let out = OutRows { tok: ptrs };
        // Multiples of 12 rows keep the 4-row tiles whole.
        let per_task = rows_per_task(d_out, n * d_in * d_out, 12);
        let run = |o0: usize| {
            let rows = per_task.min(d_out - o0);
            // SAFETY: every task writes rows o0..o0 + rows of each output, disjoint from the
            // other tasks' rows, through pointers into `outs`, which this call borrows mutably
            // for its whole duration.
            unsafe {
                T::simd_rows(
                    k,
                    &w[o0 * d_in..(o0 + rows) * d_in],
                    x,
                    n,
                    d_in,
                    rows,
                    bias.map(|b| &b[o0..]),
                    out,
                    o0,
                )
            }
        };
        if per_task >= d_out {
            run(0);
        } else {
            (0..d_out.div_ceil(per_task))
                .into_par_iter()
                .for_each(|i| run(i * per_task));
        }
        return true;
    }
    let _ = (x, w, bias, outs, d_in, d_out);
    false
}

/// Batches up to this many tokens keep their output pointer table on the stack.
const PTRS_ON_STACK: usize = 32;

/// Where a dense product writes token t's `d_out` results.
enum Outs<'a, 'b> {
    /// One [n, d_out] matrix.
    Matrix(&'a mut [f32]),
    /// One buffer per token (each [d_out]).
    Rows(&'a mut [&'b mut [f32]]),
}

impl Outs<'_, '_> {
    fn n_tokens(&self, d_out: usize) -> usize {
        match self {
            Outs::Matrix(y) => y.len() / d_out.max(1),
            Outs::Rows(rows) => rows.len(),
        }
    }

    /// Token t's output pointer into `ptrs[t]` (`ptrs` has one slot per token).
    fn fill_pointers(&mut self, ptrs: &mut [*mut f32], d_out: usize) {
        match self {
            Outs::Matrix(y) => {
                for (p, row) in ptrs.iter_mut().zip(y.chunks_exact_mut(d_out)) {
                    *p = row.as_mut_ptr();
                }
            }
            Outs::Rows(rows) => {
                for (p, row) in ptrs.iter_mut().zip(rows.iter_mut()) {
                    *p = row.as_mut_ptr();
                }
            }
        }
    }
}

/// `y[n, d_out] = x[n, d_in] · W[d_out, d_in]ᵀ + b`, W f32: the SIMD level's kernel when one runs,
/// else [`matmul_f32_f32w_scalar`].
pub fn matmul_f32_f32w(
    x: &[f32],
    w: &[f32],
    bias: Option<&[f32]>,
    y: &mut [f32],
    d_in: usize,
    d_out: usize,
) {
    check_dims(x, w.len(), bias, y, d_in, d_out);
    if !matmul_dense_fast(x, w, bias, Outs::Matrix(y), d_in, d_out) {
        matmul_f32_f32w_scalar(x, w, bias, y, d_in, d_out)
    }
}

/// `y[n, d_out] = x[n, d_in] · W[d_out, d_in]ᵀ + b`, W bf16 read in place: the SIMD level's kernel
/// when available, else [`matmul_f32_bf16w_scalar`].
pub fn matmul_f32_bf16w(
    x: &[f32],
    w: &[bf16],
    bias: Option<&[f32]>,
    y: &mut [f32],
    d_in: usize,
    d_out: usize,
) {
    check_dims(x, w.len(), bias, y, d_in, d_out);
    if !matmul_dense_fast(x, w, bias, Outs::Matrix(y), d_in, d_out) {
        matmul_f32_bf16w_scalar(x, w, bias, y, d_in, d_out)
    }
}

/// As [`matmul_f32_bf16w`], but token t's output row goes to its own buffer `outs[t]` (f32
/// [d_out] each; `x` is [outs.len(), d_in]): a batched decode step writes each sequence's
/// logits in place, with no [n, d_out] matrix to copy out. Same bits as [`matmul_f32_bf16w`].
pub fn matmul_f32_bf16w_each(
    x: &[f32],
    w: &[bf16],
    bias: Option<&[f32]>,
    outs: &mut [&mut [f32]],
    d_in: usize,
    d_out: usize,
) {
    if !matmul_dense_fast(x, w, bias, Outs::Rows(outs), d_in, d_out) {
        for (t, y) in outs.iter_mut().enumerate() {
            matmul_f32_bf16w_scalar(&x[t * d_in..(t + 1) * d_in], w, bias, y, d_in, d_out)
        }
    }
}

/// f32 twin of [`matmul_f32_bf16w_each`].
pub fn matmul_f32_f32w_each(
    x: &[f32],
    w: &[f32],
    bias: Option<&[f32]>,
    outs: &mut [&mut [f32]],
    d_in: usize,
    d_out: usize,
) {
    if !matmul_dense_fast(x, w, bias, Outs::Rows(outs), d_in, d_out) {
        for (t, y) in outs.iter_mut().enumerate() {
            matmul_f32_f32w_scalar(&x[t * d_in..(t + 1) * d_in], w, bias, y, d_in, d_out)
        }
    }
}

/// `y[n, d_out] = x[n, d_in] · W[d_out, d_in]ᵀ + b` with W in MXFP4 read in place (layout as in
/// [`matmul_f32_mxfp4w_scalar`]): one token runs a dot product with dequantization fused in;
/// many tokens decode each 2-row tile once and run it against every token (the grouped
/// per-expert GEMM of a prefill). One scale multiply per 32-block (see `cpu/avx2/dense.rs`). Falls back to the scalar oracle at the scalar level.
pub fn matmul_f32_mxfp4w(
    x: &[f32],
    blocks: &[u8],
    scales: &[u8],
    bias: Option<&[f32]>,
    y: &mut [f32],
    d_in: usize,
    d_out: usize,
) {
    if let Some(k) = crate::cpu::simd().filter(|_| d_in.is_multiple_of(MXFP4_BLOCK)) {
        check_dims(x, blocks.len() * 2, bias, y, d_in, d_out);
        assert_eq!(
            scales.len(),
            d_out * d_in / MXFP4_BLOCK,
            "mxfp4 matmul: scales shape"
        );
        let n = x.len() / d_in;
        let (rb, rs) = (d_in / 2, d_in / MXFP4_BLOCK);
        // f32 [n, d_in], each 32-block as its even then its odd elements.
        let mut xp = Vec::new();
        permute_x(x, &mut xp);
        let xp = &xp;
        fast_par_rows(y, n, d_out, n * d_in * d_out, |o0, rows, out, scratch| {
            k.mxfp4_rows(
                &blocks[o0 * rb..(o0 + rows) * rb],
                &scales[o0 * rs..(o0 + rows) * rs],
                xp,
                n,
                d_in,
                rows,
                bias.map(|b| &b[o0..]),
                out,
                scratch,
            )
        });
        return;
    }
    matmul_f32_mxfp4w_scalar(x, blocks, scales, bias, y, d_in, d_out)
}

/// Scalar oracle: `y[n, d_out] = x[n, d_in] · W[d_out, d_in]ᵀ + b`, W f32 (row-major, out × in).
pub fn matmul_f32_f32w_scalar(
    x: &[f32],
    w: &[f32],
    bias: Option<&[f32]>,
    y: &mut [f32],
    d_in: usize,
    d_out: usize,
) {
    matmul_dense_scalar(x, w, bias, y, d_in, d_out)
}

/// Scalar oracle: `y[n, d_out] = x[n, d_in] · W[d_out, d_in]ᵀ + b`, W bf16 read in place.
pub fn matmul_f32_bf16w_scalar(
    x: &[f32],
    w: &[bf16],
    bias: Option<&[f32]>,
    y: &mut [f32],
    d_in: usize,
    d_out: usize,
) {
    matmul_dense_scalar(x, w, bias, y, d_in, d_out)
}

fn matmul_dense_scalar<T: DenseWeight>(
    x: &[f32],
    w: &[T],
    bias: Option<&[f32]>,
    y: &mut [f32],
    d_in: usize,
    d_out: usize,
) {
    check_dims(x, w.len(), bias, y, d_in, d_out);
    let n = x.len() / d_in;
    for_each_out_row(y, n, d_out, n * d_in * d_out, |o, col, _| {
        let w_row = &w[o * d_in..(o + 1) * d_in];
        let b = bias.map_or(0.0, |b| b[o]);
        for (t, yv) in col.iter_mut().enumerate() {
            let mut acc = [0f32; LANES];
            dot_lanes(&mut acc, &x[t * d_in..(t + 1) * d_in], w_row, T::to_f32);
            *yv = reduce8(&acc) + b;
        }
    });
}

/// `y[n, d_out] = x[n, d_in] · W + b` where W is stored [d_in, d_out] (input-major), as in the
/// dequantized Hugging Face expert tensors (`gate_up_proj [E, H, 2I]`). Accumulates sequentially
/// over the input index per output.
pub fn matmul_f32_bf16w_io(
    x: &[f32],
    w: &[bf16],
    bias: Option<&[f32]>,
    y: &mut [f32],
    d_in: usize,
    d_out: usize,
) {
    check_dims(x, w.len(), bias, y, d_in, d_out);
    matmul_io(x, bias, y, d_in, d_out, |i, o| {
        bf16_to_f32(w[i * d_out + o])
    });
}

/// f32 twin of [`matmul_f32_bf16w_io`] (W stored [d_in, d_out]).
pub fn matmul_f32_f32w_io(
    x: &[f32],
    w: &[f32],
    bias: Option<&[f32]>,
    y: &mut [f32],
    d_in: usize,
    d_out: usize,
) {
    check_dims(x, w.len(), bias, y, d_in, d_out);
    matmul_io(x, bias, y, d_in, d_out, |i, o| w[i * d_out + o]);
}

fn matmul_io(
    x: &[f32],
    bias: Option<&[f32]>,
    y: &mut [f32],
    d_in: usize,
    d_out: usize,
    w_at: impl Fn(usize, usize) -> f32 + Sync,
) {
    // Columns are processed in chunks so each W row segment is read contiguously.
    const COLS: usize = 64;
    let n = x.len() / d_in;
    let run_token = |t: usize, y_row: &mut [f32]| {
        let x_row = &x[t * d_in..(t + 1) * d_in];
        let do_chunk = |c: usize, yc: &mut [f32]| {
            let o0 = c * COLS;
            for (j, yv) in yc.iter_mut().enumerate() {
                *yv = bias.map_or(0.0, |b| b[o0 + j]);
            }
            for (i, &xv) in x_row.iter().enumerate() {
                for (j, yv) in yc.iter_mut().enumerate() {
                    *yv += xv * w_at(i, o0 + j);
                }
            }
        };
        if d_in * d_out < PAR_MIN_WORK {
            y_row
                .chunks_mut(COLS)
                .enumerate()
                .for_each(|(c, yc)| do_chunk(c, yc));
        } else {
            y_row
                .par_chunks_mut(COLS)
                .enumerate()
                .for_each(|(c, yc)| do_chunk(c, yc));
        }
    };
    for (t, y_row) in y.chunks_mut(d_out).enumerate().take(n) {
        run_token(t, y_row);
    }
}

/// Scalar oracle: `y[n, d_out] = x[n, d_in] · W[d_out, d_in]ᵀ + b` with W in MXFP4 read in place:
/// `blocks` u8 [d_out, d_in/32, 16] (two E2M1 codes per byte, low nibble first),
/// `scales` u8 [d_out, d_in/32] (E8M0). `d_in` must be a multiple of 32.
pub fn matmul_f32_mxfp4w_scalar(
    x: &[f32],
    blocks: &[u8],
    scales: &[u8],
    bias: Option<&[f32]>,
    y: &mut [f32],
    d_in: usize,
    d_out: usize,
) {
    assert_eq!(
        d_in % MXFP4_BLOCK,
        0,
        "mxfp4 matmul: d_in {d_in} not a multiple of 32"
    );
    check_dims(x, blocks.len() * 2, bias, y, d_in, d_out);
    assert_eq!(
        scales.len(),
        d_out * d_in / MXFP4_BLOCK,
        "mxfp4 matmul: scales shape"
    );
    let n = x.len() / d_in;
    let row_bytes = d_in / 2;
    let row_scales = d_in / MXFP4_BLOCK;
    for_each_out_row(y, n, d_out, n * d_in * d_out, |o, col, w_row| {
        let packed = &blocks[o * row_bytes..(o + 1) * row_bytes];
        let sc = &scales[o * row_scales..(o + 1) * row_scales];
        let b = bias.map_or(0.0, |b| b[o]);
        if n == 1 {
            // Decode block by block into the same lanes a decoded row would use.
            let mut acc = [0f32; LANES];
            let mut wb = [0f32; MXFP4_BLOCK];
            for (blk, (p, &s)) in packed.chunks_exact(MXFP4_BLOCK / 2).zip(sc).enumerate() {
                decode_mxfp4_block(p, s, &mut wb);
                let xb = &x[blk * MXFP4_BLOCK..(blk + 1) * MXFP4_BLOCK];
                dot_lanes(&mut acc, xb, &wb, |v| v);
            }
            col[0] = reduce8(&acc) + b;
        } else {
            // One decoded row per output row, reused for every token.
            w_row.resize(d_in, 0.0);
            decode_mxfp4_row(packed, sc, w_row);
            for (t, yv) in col.iter_mut().enumerate() {
                *yv = dot_f32(&x[t * d_in..(t + 1) * d_in], w_row) + b;
            }
        }
    });
}

/// Gathers embedding rows: `out[t, :] = table[tokens[t], :]` (bf16 table [vocab, hidden]).
/// Tokens must be < vocab (checked by the caller).
pub fn embed_rows_bf16(table: &[bf16], tokens: &[u32], hidden: usize, out: &mut [f32]) {
    for (&tok, row) in tokens.iter().zip(out.chunks_exact_mut(hidden)) {
        let src = &table[tok as usize * hidden..(tok as usize + 1) * hidden];
        for (o, &v) in row.iter_mut().zip(src) {
            *o = bf16_to_f32(v);
        }
    }
}

/// f32 twin of [`embed_rows_bf16`].
pub fn embed_rows_f32(table: &[f32], tokens: &[u32], hidden: usize, out: &mut [f32]) {
    for (&tok, row) in tokens.iter().zip(out.chunks_exact_mut(hidden)) {
        row.copy_from_slice(&table[tok as usize * hidden..(tok as usize + 1) * hidden]);
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::dtype::{e8m0_to_f32, fp4_e2m1_to_f32};

    use crate::test_rng::Rng;

    /// Sequential f64 reference: y = x · Wᵀ + b with W given as a closure (out, in).
    fn matmul_ref(
        x: &[f32],
        w: impl Fn(usize, usize) -> f32,
        bias: Option<&[f32]>,
        d_in: usize,
        d_out: usize,
    ) -> Vec<f32> {
        let n = x.len() / d_in;
        let mut y = vec![0f32; n * d_out];
        for t in 0..n {
            for o in 0..d_out {
                let mut s = bias.map_or(0.0, |b| b[o]) as f64;
                for i in 0..d_in {
                    s += x[t * d_in + i] as f64 * w(o, i) as f64;
                }
                y[t * d_out + o] = s as f32;
            }
        }
        y
    }

    fn assert_close(a: &[f32], b: &[f32], tol: f32) {
        assert_eq!(a.len(), b.len());
        for (i, (x, y)) in a.iter().zip(b).enumerate() {
            assert!((x - y).abs() <= tol * (1.0 + y.abs()), "at {i}: {x} vs {y}");
        }
    }

    #[test]
    fn bf16_and_f32_weights_match_reference_odd_sizes() {
        let mut r = Rng(1);
        for &(n, d_in, d_out) in &[
            (1, 7, 5),
            (3, 37, 11),
            (5, 64, 300),
            (1, 300, 200),
            (9, 130, 257),
        ] {
            let x: Vec<f32> = (0..n * d_in).map(|_| r.f()).collect();
            let wf: Vec<f32> = (0..d_in * d_out).map(|_| r.f()).collect();
            let wb: Vec<bf16> = wf.iter().map(|&v| bf16::from_f32(v)).collect();
            let b: Vec<f32> = (0..d_out).map(|_| r.f()).collect();
            let mut y = vec![0f32; n * d_out];
            matmul_f32_f32w(&x, &wf, Some(&b), &mut y, d_in, d_out);
            assert_close(
                &y,
                &matmul_ref(&x, |o, i| wf[o * d_in + i], Some(&b), d_in, d_out),
                1e-5,
            );
            matmul_f32_bf16w(&x, &wb, None, &mut y, d_in, d_out);
            let yr = matmul_ref(&x, |o, i| wb[o * d_in + i].to_f32(), None, d_in, d_out);
            assert_close(&y, &yr, 1e-5);
            // Input-major storage: transpose W.
            let mut wt = vec![bf16::ZERO; d_in * d_out];
            let mut wtf = vec![0f32; d_in * d_out];
            for o in 0..d_out {
                for i in 0..d_in {
                    wt[i * d_out + o] = wb[o * d_in + i];
                    wtf[i * d_out + o] = wf[o * d_in + i];
                }
            }
            matmul_f32_bf16w_io(&x, &wt, None, &mut y, d_in, d_out);
            assert_close(&y, &yr, 1e-5);
            matmul_f32_f32w_io(&x, &wtf, Some(&b), &mut y, d_in, d_out);
            assert_close(
                &y,
                &matmul_ref(&x, |o, i| wf[o * d_in + i], Some(&b), d_in, d_out),
                1e-5,
            );
        }
    }

    #[test]
    fn mxfp4_matches_dequantized_reference() {
        let mut r = Rng(7);
        for &(n, d_in, d_out) in &[
            (1, 32, 3),
            (4, 96, 17),
            (1, 2880 / 10 * 10 / 32 * 32, 33),
            (7, 256, 129),
        ] {
            let x: Vec<f32> = (0..n * d_in).map(|_| r.f()).collect();
            let blocks: Vec<u8> = (0..d_out * d_in / 2).map(|_| r.byte()).collect();
            let scales: Vec<u8> = (0..d_out * d_in / 32)
                .map(|_| 120 + r.byte() % 12)
                .collect();
            let b: Vec<f32> = (0..d_out).map(|_| r.f()).collect();
            let w = |o: usize, i: usize| {
                let byte = blocks[o * d_in / 2 + i / 2];
                let code = if i.is_multiple_of(2) {
                    byte & 15
                } else {
                    byte >> 4
                };
                fp4_e2m1_to_f32(code) * e8m0_to_f32(scales[o * d_in / 32 + i / 32])
            };
            let mut y = vec![0f32; n * d_out];
            matmul_f32_mxfp4w(&x, &blocks, &scales, Some(&b), &mut y, d_in, d_out);
            // Weights reach 6·2^4 here, so f32 accumulation error grows with d_in.
            assert_close(&y, &matmul_ref(&x, w, Some(&b), d_in, d_out), 1e-4);
        }
    }

    #[test]
    fn one_token_equals_batched_bitwise() {
        let mut r = Rng(3);
        let (n, d_in, d_out) = (6, 320, 700);
        let x: Vec<f32> = (0..n * d_in).map(|_| r.f()).collect();
        let blocks: Vec<u8> = (0..d_out * d_in / 2).map(|_| r.byte()).collect();
        let scales: Vec<u8> = (0..d_out * d_in / 32).map(|_| 122 + r.byte() % 8).collect();
        let wb: Vec<bf16> = (0..d_in * d_out).map(|_| bf16::from_f32(r.f())).collect();
        let mut yb = vec![0f32; n * d_out];
        let mut y1 = vec![0f32; d_out];
        matmul_f32_mxfp4w(&x, &blocks, &scales, None, &mut yb, d_in, d_out);
        for t in 0..n {
            matmul_f32_mxfp4w(
                &x[t * d_in..(t + 1) * d_in],
                &blocks,
                &scales,
                None,
                &mut y1,
                d_in,
                d_out,
            );
            assert_eq!(&yb[t * d_out..(t + 1) * d_out], &y1[..]);
        }
        matmul_f32_bf16w(&x, &wb, None, &mut yb, d_in, d_out);
        for t in 0..n {
            matmul_f32_bf16w(
                &x[t * d_in..(t + 1) * d_in],
                &wb,
                None,
                &mut y1,
                d_in,
                d_out,
            );
            assert_eq!(&yb[t * d_out..(t + 1) * d_out], &y1[..]);
        }
    }

    /// Batch invariance of the dense kernels over shapes that hit every tile path: 1 token
    /// (4-row decode tiles), 2 tokens (bf16 read in place), 3+ tokens (bf16 rows widened to an
    /// f32 block first), odd token counts (a last single-token tile), d_in with and without a
    /// tail (scalar or 4-at-once epilogue), row counts leaving partial 4-row blocks. Also the
    /// `_each` variants (one output buffer per token) against the [n, d_out] ones, bit for bit.
    #[test]
    fn dense_batches_equal_single_tokens_bitwise() {
        let mut r = Rng(5);
        for &(n, d_in, d_out) in &[
            (2, 37, 13),
            (3, 64, 30),
            (4, 128, 1001),
            (5, 130, 258),
            (8, 128, 301),
            (8, 64, 2003),
            (9, 45, 7),
            (7, 2880, 25),
        ] {
            let x: Vec<f32> = (0..n * d_in).map(|_| r.f()).collect();
            let wf: Vec<f32> = (0..d_in * d_out).map(|_| r.f()).collect();
            let wb: Vec<bf16> = wf.iter().map(|&v| bf16::from_f32(v)).collect();
            let b: Vec<f32> = (0..d_out).map(|_| r.f()).collect();
            for bias in [None, Some(&b[..])] {
                let mut yb = vec![0f32; n * d_out];
                let mut yf = vec![0f32; n * d_out];
                matmul_f32_bf16w(&x, &wb, bias, &mut yb, d_in, d_out);
                matmul_f32_f32w(&x, &wf, bias, &mut yf, d_in, d_out);
                let mut y1 = vec![0f32; d_out];
                for t in 0..n {
                    let xt = &x[t * d_in..(t + 1) * d_in];
                    matmul_f32_bf16w(xt, &wb, bias, &mut y1, d_in, d_out);
                    assert_eq!(&yb[t * d_out..(t + 1) * d_out], &y1[..], "bf16 n={n} t={t}");
                    matmul_f32_f32w(xt, &wf, bias, &mut y1, d_in, d_out);
                    assert_eq!(&yf[t * d_out..(t + 1) * d_out], &y1[..], "f32 n={n} t={t}");
                }
                let mut bufs = vec![vec![f32::NAN; d_out]; n];
                let mut outs: Vec<&mut [f32]> = bufs.iter_mut().map(|v| &mut v[..]).collect();
                matmul_f32_bf16w_each(&x, &wb, bias, &mut outs, d_in, d_out);
                assert_eq!(bufs.concat(), yb, "bf16 each n={n}");
                let mut outs: Vec<&mut [f32]> = bufs.iter_mut().map(|v| &mut v[..]).collect();
                matmul_f32_f32w_each(&x, &wf, bias, &mut outs, d_in, d_out);
                assert_eq!(bufs.concat(), yf, "f32 each n={n}");
            }
        }
        // No tokens: nothing to write, no panic.
        matmul_f32_bf16w_each(&[], &[bf16::ZERO; 6], None, &mut [], 2, 3);
    }

    /// Each fast kernel against its scalar twin on seeded random inputs, odd sizes included
    /// (tails of d_in % 8, row counts that leave partial 3- and 4-row tiles, token counts that
    /// leave partial 4-token tiles). Differences come only from FMA rounding.
    #[test]
    fn fast_kernels_match_scalar_twins() {
        let mut r = Rng(11);
        for &(n, d_in, d_out) in &[
            (1, 7, 5),
            (1, 33, 13),
            (2, 45, 7),
            (3, 64, 30),
            (5, 96, 301),
            (1, 2880, 45),
            (7, 130, 258),
            (13, 256, 77),
            (8, 128, 1001),
            (8, 64, 123),
            (3, 2880, 17),
        ] {
            let x: Vec<f32> = (0..n * d_in).map(|_| r.f()).collect();
            let wf: Vec<f32> = (0..d_in * d_out).map(|_| r.f()).collect();
            let wb: Vec<bf16> = wf.iter().map(|&v| bf16::from_f32(v)).collect();
            let b: Vec<f32> = (0..d_out).map(|_| r.f()).collect();
            let (mut y, mut ys) = (vec![0f32; n * d_out], vec![0f32; n * d_out]);
            matmul_f32_bf16w(&x, &wb, Some(&b), &mut y, d_in, d_out);
            matmul_f32_bf16w_scalar(&x, &wb, Some(&b), &mut ys, d_in, d_out);
            assert_close(&y, &ys, 1e-5);
            matmul_f32_f32w(&x, &wf, None, &mut y, d_in, d_out);
            matmul_f32_f32w_scalar(&x, &wf, None, &mut ys, d_in, d_out);
            assert_close(&y, &ys, 1e-5);
            if d_in % 32 == 0 {
                let blocks: Vec<u8> = (0..d_out * d_in / 2).map(|_| r.byte()).collect();
                // All scales, extremes included except 255 (inf), over the rows.
                let scales: Vec<u8> = (0..d_out * d_in / 32)
                    .map(|i| {
                        if i % 97 == 0 {
                            (i % 255) as u8
                        } else {
                            118 + r.byte() % 8
                        }
                    })
                    .collect();
                matmul_f32_mxfp4w(&x, &blocks, &scales, Some(&b), &mut y, d_in, d_out);
                matmul_f32_mxfp4w_scalar(&x, &blocks, &scales, Some(&b), &mut ys, d_in, d_out);
                // Rounding error scales with sum |x·w| (cancellation), not with the result:
                // get that sum from the oracle on |x| and sign-cleared codes.
                let xa: Vec<f32> = x.iter().map(|v| v.abs()).collect();
                let ba: Vec<u8> = blocks.iter().map(|v| v & 0x77).collect();
                let mut mag = vec![0f32; n * d_out];
                matmul_f32_mxfp4w_scalar(&xa, &ba, &scales, None, &mut mag, d_in, d_out);
                for ((a, s), m) in y.iter().zip(&ys).zip(&mag) {
                    assert!(
                        a == s
                            || (a - s).abs() <= 1e-5 * (1.0 + s.abs()) + 1e-6 * m
                            || (a.is_nan() && s.is_nan()),
                        "{a} vs {s} (sum of |terms| {m})"
                    );
                }
            }
        }
    }

    #[test]
    fn embedding_gather() {
        let table: Vec<bf16> = (0..12).map(|v| bf16::from_f32(v as f32)).collect();
        let mut out = vec![0f32; 6];
        embed_rows_bf16(&table, &[2, 0], 3, &mut out);
        assert_eq!(out, vec![6.0, 7.0, 8.0, 0.0, 1.0, 2.0]);
    }
}
