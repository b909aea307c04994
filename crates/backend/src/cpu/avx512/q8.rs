//! AVX-512 VNNI kernels of the int8 MXFP4 path: int8 activations ([`Q8Rows`]) times FP4 codes
//! as offset unsigned bytes, with `vpdpbusd` (64 byte products into 16 i32 lanes per
//! instruction). The layout, the numerics contract and the scalar oracle are in `q8.rs`; every
//! kernel here gives the oracle's bits.
//!
//! The contract takes one float step per 32-block, so the kernels put 16 output ROWS in the
//! 16 lanes: lane r accumulates row r's whole block sum over 8 `vpdpbusd` steps (4 weight bytes
//! of row r per step, against the token's matching 4 activation bytes broadcast to every lane),
//! then one convert, one scale multiply and one FMA serve 16 rows. That is 8 + 3 vector
//! operations per 512 multiply-adds, against 5 per 128 when lanes held partial sums.
//!
//! For that layout a group of 16 rows is decoded once into a per-task scratch, transposed:
//! per block pair, 16 vectors of offset weights (`2·value + 12`, vector s holding dword s of
//! every row's decoded pair) and the rows' half scales of both blocks as two vectors. Every
//! token tile (up to 8 tokens) then runs over the whole group from L1/L2. One token (decode)
//! takes the same path: the transposition costs about what the per-row decode cost before, and
//! the memory stream is kept going by prefetching the next group while one is decoded.

use std::arch::x86_64::*;

use crate::cpu::OutRows;
use crate::dtype::HALF_SCALE;
use crate::q8::{Q8Rows, FP4_X2_U8, PAIR_BYTES, PAIR_SCALES, W_OFFSET};

/// Output rows per group: the 16 i32 lanes of a vector.
const GROUP: usize = 16;
/// Tokens per tile (8 i32 and 8 f32 accumulators, the weight and scale vectors: 18 of the 32
/// registers).
const T_TILE: usize = 8;
/// Scratch bytes per block pair of a decoded group: 16 weight vectors.
const PAIR_W: usize = 16 * 64;
/// Up to this many tokens each block pair is decoded just before use (one pass over the
/// weights per tile of up to 8 tokens); from here on a whole group is decoded once (prefill).
const DIRECT_MAX_TOKENS: usize = 16;

/// `vpermt2d` index vectors of the three stages of the 16 × 8 dword transposition in
/// [`decode_group`] (see there); lane `i` takes lane `idx & 15` of the first operand, or of the
/// second when `idx & 16`.
const fn transpose_indices() -> [[i32; 16]; 6] {
    let mut t = [[0i32; 16]; 6];
    let mut l = 0;
    while l < 16 {
        // Stage 1: rows 4q..4q+4 from (rows 4q, 4q+1 | rows 4q+2, 4q+3) × dwords 0..8;
        // output lane k·4 + rr holds dword k (lo: 0..4, hi: 4..8) of row rr.
        let (k, rr) = (l / 4, l % 4);
        let src = (rr / 2) as i32 * 16 + (rr % 2) as i32 * 8 + k as i32;
        t[0][l] = src;
        t[1][l] = src + 4;
        // Stage 2: rows 0..8 from two stage-1 outputs; output lane kk·8 + r8 holds local dword
        // kk (a: 0, 1; b: 2, 3) of row r8.
        let (kk, r8) = (l / 8, l % 8);
        let src = (r8 / 4) as i32 * 16 + kk as i32 * 4 + (r8 % 4) as i32;
        t[2][l] = src;
        t[3][l] = src + 8;
        // Stage 3: rows 0..16 from two stage-2 outputs; output lane r16 holds one dword.
        let src = (l / 8) as i32 * 16 + (l % 8) as i32;
        t[4][l] = src;
        t[5][l] = src + 8;
        l += 1;
    }
    t
}

static TRANSPOSE_IDX: [[i32; 16]; 6] = transpose_indices();

/// The half scales `2^(e - 128)` of 16 E8M0 exponents (one per i32 lane): the bits of
/// `HALF_SCALE`, `(e - 1) << 23` with e = 0, 1 (subnormals) and 255 set apart.
#[target_feature(enable = "avx512f,avx512bw,avx512vl,avx512vnni")]
#[inline]
fn half_scales16(e: __m512i) -> __m512 {
    let bits = _mm512_slli_epi32::<23>(_mm512_sub_epi32(e, _mm512_set1_epi32(1)));
    let bits = _mm512_mask_mov_epi32(
        bits,
        _mm512_cmpeq_epi32_mask(e, _mm512_setzero_si512()),
        _mm512_set1_epi32(HALF_SCALE[0].to_bits() as i32),
    );
    let bits = _mm512_mask_mov_epi32(
        bits,
        _mm512_cmpeq_epi32_mask(e, _mm512_set1_epi32(1)),
        _mm512_set1_epi32(HALF_SCALE[1].to_bits() as i32),
    );
    let bits = _mm512_mask_mov_epi32(
        bits,
        _mm512_cmpeq_epi32_mask(e, _mm512_set1_epi32(255)),
        _mm512_set1_epi32(HALF_SCALE[255].to_bits() as i32),
    );
    _mm512_castsi512_ps(bits)
}

/// Transposes 16 rows of 16 bytes: `out[c]` byte r = `rows[r]` byte c.
#[target_feature(enable = "avx512f,avx512bw,avx512vl,avx512vnni")]
#[inline]
fn transpose16x16_u8(rows: [__m128i; 16]) -> [__m128i; 16] {
    // Each stage interleaves neighbouring vectors at twice the width of the last: after
    // stage w, unit c of vector v holds column c of 2^w consecutive rows.
    let mut a = [_mm_setzero_si128(); 16];
    for k in 0..8 {
        a[k] = _mm_unpacklo_epi8(rows[2 * k], rows[2 * k + 1]);
        a[k + 8] = _mm_unpackhi_epi8(rows[2 * k], rows[2 * k + 1]);
    }
    // a[k]: 16-bit units = columns 0..8 of rows 2k, 2k+1; a[8 + k]: columns 8..16.
    let mut b = [_mm_setzero_si128(); 16];
    for h in 0..2 {
        for m in 0..4 {
            let (x, y) = (a[h * 8 + 2 * m], a[h * 8 + 2 * m + 1]);
            b[h * 8 + m] = _mm_unpacklo_epi16(x, y); // columns h·8 + 0..4, rows 4m..4m+4
            b[h * 8 + 4 + m] = _mm_unpackhi_epi16(x, y); // columns h·8 + 4..8
        }
    }
    let mut c = [_mm_setzero_si128(); 16];
    for q in 0..4 {
        for o in 0..2 {
            let (x, y) = (b[q * 4 + 2 * o], b[q * 4 + 2 * o + 1]);
            c[q * 4 + o] = _mm_unpacklo_epi32(x, y); // 2 columns, rows 8o..8o+8
            c[q * 4 + 2 + o] = _mm_unpackhi_epi32(x, y);
        }
    }
    // c[q·4 + s·2 + o]: columns q·4 + s·2 + {0, 1} of rows 8o..8o+8.
    let mut out = [_mm_setzero_si128(); 16];
    for q in 0..4 {
        for s in 0..2 {
            let (x, y) = (c[q * 4 + s * 2], c[q * 4 + s * 2 + 1]);
            out[q * 4 + s * 2] = _mm_unpacklo_epi64(x, y);
            out[q * 4 + s * 2 + 1] = _mm_unpackhi_epi64(x, y);
        }
    }
    out
}

/// The half scales of the 16 rows `srow[r]` (`nb` blocks each) into `hs` (f32 [nb, 16]):
/// 16 blocks at a time, a 16 × 16 byte transposition of the scale rows.
#[target_feature(enable = "avx512f,avx512bw,avx512vl,avx512vnni")]
unsafe fn decode_scales(srow: &[*const u8; GROUP], nb: usize, hs: *mut f32) {
    // SAFETY: the caller guarantees nb bytes at each scale row and nb · 16 floats at hs;
    // masked loads never touch the masked-out bytes.
    unsafe {
        let mut b0 = 0;
        while b0 < nb {
            let cnt = (nb - b0).min(16);
            let mask: __mmask16 = if cnt == 16 { !0 } else { (1u16 << cnt) - 1 };
            let rows: [__m128i; 16] =
                std::array::from_fn(|r| _mm_maskz_loadu_epi8(mask, srow[r].add(b0) as *const i8));
            let cols = transpose16x16_u8(rows);
            for (c, col) in cols.iter().enumerate().take(cnt) {
                let h = half_scales16(_mm512_cvtepu8_epi32(*col));
                _mm512_storeu_ps(hs.add((b0 + c) * GROUP), h);
            }
            b0 += 16;
        }
    }
}

/// Block pair `p` of the 16 rows `row[r]` (`nb` blocks each) decoded into 16 vectors,
/// transposed as the module header says (vector h·8 + j: block 2p + h, activation dword
/// h·4 + j for j < 4 (even elements), 8 + h·4 + j - 4 for j >= 4 (odd ones)); prefetches the
/// same bytes of the next group's rows (`next[r]`).
#[target_feature(enable = "avx512f,avx512bw,avx512vl,avx512vnni")]
#[inline]
unsafe fn decode_pair(
    row: &[*const u8; GROUP],
    next: &[*const u8; GROUP],
    p: usize,
    nb: usize,
) -> [__m512i; 16] {
    // SAFETY: the caller guarantees nb blocks (nb · 16 bytes) at each row; prefetches are
    // hints and never fault.
    unsafe {
        let idx: [__m512i; 6] =
            std::array::from_fn(|i| _mm512_loadu_si512(TRANSPOSE_IDX[i].as_ptr() as *const _));
        let lut = _mm512_broadcast_i32x4(_mm_loadu_si128(FP4_X2_U8.as_ptr() as *const __m128i));
        let m = _mm512_set1_epi8(0x0F);
        // Every pair, as rows start at any multiple of 16 bytes: each of the next group's
        // cache lines is asked for at least once while this group decodes; into L2, as the
        // next group (23 KB at 2880 inputs) would push this one out of L1.
        for n in next {
            _mm_prefetch::<_MM_HINT_T1>(n.wrapping_add(32 * p) as *const i8);
        }
        let full = 2 * p + 1 < nb;
        // v[i]: the packed bytes of rows 2i (low half) and 2i + 1 (high half).
        let v: [__m512i; 8] = std::array::from_fn(|i| {
            let (a, b) = (row[2 * i].add(32 * p), row[2 * i + 1].add(32 * p));
            if full {
                _mm512_inserti64x4::<1>(
                    _mm512_castsi256_si512(_mm256_loadu_si256(a as *const __m256i)),
                    _mm256_loadu_si256(b as *const __m256i),
                )
            } else {
                _mm512_inserti32x4::<2>(
                    _mm512_zextsi128_si512(_mm_loadu_si128(a as *const __m128i)),
                    _mm_loadu_si128(b as *const __m128i),
                )
            }
        });
        // Stage 1: per row quad, dwords 0..4 and 4..8.
        let x: [[__m512i; 2]; 4] = std::array::from_fn(|q| {
            [
                _mm512_permutex2var_epi32(v[2 * q], idx[0], v[2 * q + 1]),
                _mm512_permutex2var_epi32(v[2 * q], idx[1], v[2 * q + 1]),
            ]
        });
        // Stage 2: per row octet and dword half, local dwords (0, 1) and (2, 3).
        let y: [[[__m512i; 2]; 2]; 2] = std::array::from_fn(|o| {
            std::array::from_fn(|s| {
                [
                    _mm512_permutex2var_epi32(x[2 * o][s], idx[2], x[2 * o + 1][s]),
                    _mm512_permutex2var_epi32(x[2 * o][s], idx[3], x[2 * o + 1][s]),
                ]
            })
        });
        let mut w = [_mm512_setzero_si512(); 16];
        for k in 0..8 {
            // Packed dword k of all 16 rows; k < 4 is block 2p, k >= 4 block 2p + 1.
            let (s, u, vv) = (k / 4, k / 2 % 2, k % 2);
            let z = _mm512_permutex2var_epi32(y[0][s][u], idx[4 + vv], y[1][s][u]);
            let (h, j) = (k / 4, k % 4);
            w[h * 8 + j] = _mm512_shuffle_epi8(lut, _mm512_and_si512(z, m));
            w[h * 8 + 4 + j] =
                _mm512_shuffle_epi8(lut, _mm512_and_si512(_mm512_srli_epi16::<4>(z), m));
        }
        w
    }
}

/// Block pair `p` of a decoded group (`w`: its 16 weight vectors, `hs`: the group's half
/// scales, f32 [nb, 16]) against T tokens (`xq` + t · `rq` bytes, `xd` + t · `rd`, `xcb` +
/// t · `rb`), accumulated into `fa[t]` (the 16 rows of token t). The integer sums of the two
/// blocks run interleaved, each split into `S` chains (S = 2 for one or two tokens, where the
/// `vpdpbusd` latency would otherwise bound the loop); integer sums are exact, so the split
/// changes nothing but speed.
#[target_feature(enable = "avx512f,avx512bw,avx512vl,avx512vnni")]
#[inline]
#[allow(clippy::too_many_arguments)]
unsafe fn pair_tokens<const T: usize, const S: usize>(
    w: &[__m512i; 16],
    hs: *const f32,
    p: usize,
    nb: usize,
    xq: *const i8,
    rq: usize,
    xd: *const f32,
    rd: usize,
    xcb: *const i32,
    rb: usize,
    fa: &mut [__m512; T],
) {
    // SAFETY: the caller guarantees the decoded pair, the scales and T quantized token rows.
    unsafe {
        let halves = if 2 * p + 1 < nb { 2 } else { 1 };
        // ia[h][s][t]: chain s of block 2p + h's integer sum for token t; chain 0 starts from
        // the block's offset correction.
        let mut ia = [[[_mm512_setzero_si512(); T]; S]; 2];
        for (h, ih) in ia.iter_mut().enumerate().take(halves) {
            for (t, a) in ih[0].iter_mut().enumerate() {
                *a = _mm512_set1_epi32(*xcb.add(t * rb + 2 * p + h));
            }
        }
        for j in 0..8 {
            for (h, ih) in ia.iter_mut().enumerate().take(halves) {
                let wv = w[h * 8 + j];
                let dw = if j < 4 { h * 4 + j } else { 8 + h * 4 + j - 4 };
                for (t, a) in ih[j % S].iter_mut().enumerate() {
                    let xp = xq.add(t * rq + p * PAIR_BYTES + 4 * dw) as *const i32;
                    *a = _mm512_dpbusd_epi32(*a, wv, _mm512_set1_epi32(xp.read_unaligned()));
                }
            }
        }
        for (h, ih) in ia.iter().enumerate().take(halves) {
            let hv = _mm512_loadu_ps(hs.add((2 * p + h) * GROUP));
            for (t, f) in fa.iter_mut().enumerate() {
                let mut sum = ih[0][t];
                for chain in ih.iter().skip(1) {
                    sum = _mm512_add_epi32(sum, chain[t]);
                }
                let d = _mm512_set1_ps(*xd.add(t * rd + p * PAIR_SCALES + h * 4));
                *f = _mm512_fmadd_ps(_mm512_cvtepi32_ps(sum), _mm512_mul_ps(d, hv), *f);
            }
        }
    }
}

/// The pointers one token tile needs: quantized rows, scales and block corrections of its
/// first token, and the per-token strides.
#[derive(Clone, Copy)]
struct Tokens {
    q: *const i8,
    rq: usize,
    d: *const f32,
    rd: usize,
    cb: *const i32,
    rb: usize,
}

/// One tile of T tokens over a whole group, `out[t]` = the 16 rows of token t without bias.
/// `decoded`: the group's pairs are in `ws` (np KB); otherwise each pair is decoded from
/// `row` just before use (in registers), which keeps a pass of a few tokens one stream over
/// the weights.
#[target_feature(enable = "avx512f,avx512bw,avx512vl,avx512vnni")]
#[allow(clippy::too_many_arguments)]
unsafe fn group_tokens<const T: usize, const S: usize>(
    decoded: bool,
    row: &[*const u8; GROUP],
    next: &[*const u8; GROUP],
    ws: *const u8,
    hs: *const f32,
    nb: usize,
    x: Tokens,
    out: &mut [[f32; GROUP]; T_TILE],
) {
    let mut fa = [_mm512_setzero_ps(); T];
    // SAFETY: the caller guarantees the rows (or the decoded group), the scales and T tokens.
    unsafe {
        for p in 0..nb.div_ceil(2) {
            let w = if decoded {
                let at = ws.add(p * PAIR_W) as *const __m512i;
                std::array::from_fn(|i| _mm512_loadu_si512(at.add(i)))
            } else {
                decode_pair(row, next, p, nb)
            };
            pair_tokens::<T, S>(&w, hs, p, nb, x.q, x.rq, x.d, x.rd, x.cb, x.rb, &mut fa);
        }
        for (t, f) in fa.iter().enumerate() {
            _mm512_storeu_ps(out[t].as_mut_ptr(), *f);
        }
    }
}

/// MXFP4 rows (`blocks` [rows, d_in/32, 16], `scales` [rows, d_in/32]) against every row of
/// `xq`; token t's results go to `out.tok[t]` at offsets `o0..o0 + rows`, 16 at a time.
/// `scratch` holds the decoded group.
///
/// # Safety
/// The CPU must have AVX-512 F/BW/VL and VNNI; `out` as `SimdKernels::q8_mxfp4_rows_to`
/// requires.
#[target_feature(enable = "avx512f,avx512bw,avx512vl,avx512vnni")]
#[allow(clippy::too_many_arguments)]
pub(crate) unsafe fn q8_mxfp4_rows(
    blocks: &[u8],
    scales: &[u8],
    xq: &Q8Rows,
    rows: usize,
    bias: Option<&[f32]>,
    out: OutRows<'_>,
    o0: usize,
    scratch: &mut Vec<f32>,
) {
    let (n, d_in) = (xq.n_rows, xq.d_in);
    let nb = d_in / 32;
    let np = xq.n_pairs();
    let (rbytes, rq, rd, rb) = (d_in / 2, xq.row_q(), xq.row_d(), xq.row_blocks());
    assert!(d_in.is_multiple_of(32) && blocks.len() >= rows * rbytes && scales.len() >= rows * nb);
    assert!(xq.q.len() >= n * rq && xq.d.len() >= n * rd && xq.cb.len() >= n * rb);
    assert!(out.tok.len() >= n);
    assert!(bias.is_none_or(|b| b.len() >= rows));
    if rows == 0 || n == 0 {
        return;
    }
    let (bp, sp) = (blocks.as_ptr(), scales.as_ptr());
    let (qp, dp, cp) = (xq.q.as_ptr(), xq.d.as_ptr(), xq.cb.as_ptr());
    // Row r's packed bytes and scale bytes, clamped to the last row: rows past the end of a
    // partial group repeat it and their results are dropped.
    let row = |r: usize| bp.wrapping_add(r.min(rows - 1) * rbytes);
    let srow = |r: usize| sp.wrapping_add(r.min(rows - 1) * nb);
    // The scratch: the group's half scales (f32 [nb, 16]), then its decoded weights (one
    // pair when tokens are few, all pairs in batches).
    let direct = n <= DIRECT_MAX_TOKENS;
    let hs_len = nb * GROUP;
    let w_pairs = if direct { 1 } else { np };
    scratch.resize(hs_len + w_pairs * PAIR_W / 4, 0.0);
    let hs = scratch.as_mut_ptr();
    // SAFETY: within the scratch just sized.
    let ws = unsafe { hs.add(hs_len) } as *mut u8;
    let mut res = [[0f32; GROUP]; T_TILE];
    let mut g0 = 0;
    while g0 < rows {
        let rp: [*const u8; GROUP] = std::array::from_fn(|r| row(g0 + r));
        let sr: [*const u8; GROUP] = std::array::from_fn(|r| srow(g0 + r));
        let next: [*const u8; GROUP] = std::array::from_fn(|r| row(g0 + GROUP + r));
        // SAFETY: the CPU features by the caller's contract; every row pointer is clamped
        // into `blocks` / `scales` (sizes asserted above); the scratch holds what it needs.
        unsafe {
            decode_scales(&sr, nb, hs);
            if !direct {
                for p in 0..np {
                    let w = decode_pair(&rp, &next, p, nb);
                    let at = ws.add(p * PAIR_W) as *mut __m512i;
                    for (i, v) in w.iter().enumerate() {
                        _mm512_storeu_si512(at.add(i), *v);
                    }
                }
            }
        }
        let gr = GROUP.min(rows - g0);
        let mut t = 0;
        while t < n {
            let tt = T_TILE.min(n - t);
            // SAFETY: as above; tokens t..t + tt exist (asserted sizes).
            unsafe {
                let x = Tokens {
                    q: qp.add(t * rq),
                    rq,
                    d: dp.add(t * rd),
                    rd,
                    cb: cp.add(t * rb),
                    rb,
                };
                macro_rules! run {
                    ($t:literal, $s:literal) => {
                        group_tokens::<$t, $s>(!direct, &rp, &next, ws, hs, nb, x, &mut res)
                    };
                }
                match tt {
                    8 => run!(8, 1),
                    7 => run!(7, 1),
                    6 => run!(6, 1),
                    5 => run!(5, 1),
                    4 => run!(4, 1),
                    3 => run!(3, 1),
                    2 => run!(2, 2),
                    _ => run!(1, 2),
                }
            }
            for (k, rt) in res.iter().enumerate().take(tt) {
                let dst = out.tok[t + k].wrapping_add(o0 + g0);
                // SAFETY: rows g0..g0 + gr of this task are the caller's to write (the
                // function's contract); the bias holds `rows` values.
                unsafe {
                    if gr == GROUP {
                        let mut v = _mm512_loadu_ps(rt.as_ptr());
                        if let Some(b) = bias {
                            v = _mm512_add_ps(v, _mm512_loadu_ps(b.as_ptr().add(g0)));
                        }
                        _mm512_storeu_ps(dst, v);
                    } else {
                        for (r, v) in rt.iter().enumerate().take(gr) {
                            *dst.add(r) = v + bias.map_or(0.0, |b| b[g0 + r]);
                        }
                    }
                }
            }
            t += tt;
        }
        g0 += GROUP;
    }
}

/// `q8::quantize_row` 16 lanes at a time, the same bits: per block `d = max|x| / 127`,
/// `q = round_ties_even(x · (1 / d))` clamped to ±127 (an exact division and reciprocal, and
/// `vrndscaleps` rounds half to even), even and odd elements split by two permutes, the offset
/// corrections as exact integer sums.
///
/// # Safety
/// The CPU must have AVX-512 F/BW/VL.
#[target_feature(enable = "avx512f,avx512bw,avx512vl,avx512vnni")]
pub(crate) unsafe fn quantize_row(x: &[f32], q: &mut [i8], d: &mut [f32], cb: &mut [i32]) {
    let nb = x.len() / 32;
    let np = nb.div_ceil(2);
    assert!(
        x.len().is_multiple_of(32) && q.len() >= np * PAIR_BYTES && d.len() >= np * PAIR_SCALES
    );
    assert!(cb.len() >= 2 * np);
    q.fill(0);
    d.fill(0.0);
    cb.fill(0);
    let even: [i32; 16] = std::array::from_fn(|i| 2 * i as i32);
    let odd: [i32; 16] = std::array::from_fn(|i| 2 * i as i32 + 1);
    // SAFETY: every access is within the slices (lengths asserted above).
    unsafe {
        let (ie, io) = (
            _mm512_loadu_si512(even.as_ptr() as *const _),
            _mm512_loadu_si512(odd.as_ptr() as *const _),
        );
        let abs_mask = _mm512_set1_epi32(0x7FFF_FFFF);
        for (blk, cbv) in cb.iter_mut().enumerate().take(nb) {
            let xp = x.as_ptr().add(32 * blk);
            let (a, b) = (_mm512_loadu_ps(xp), _mm512_loadu_ps(xp.add(16)));
            let abs =
                |v: __m512| _mm512_castsi512_ps(_mm512_and_si512(_mm512_castps_si512(v), abs_mask));
            // Non-finite: |v| is not below infinity (NaN compares false).
            let inf = _mm512_set1_ps(f32::INFINITY);
            let finite = _mm512_cmp_ps_mask::<_CMP_LT_OQ>(abs(a), inf)
                & _mm512_cmp_ps_mask::<_CMP_LT_OQ>(abs(b), inf)
                == 0xFFFF;
            let (pair, half) = (blk / 2, blk % 2);
            let at = pair * PAIR_SCALES + half * 4;
            if !finite {
                d[at..at + 4].fill(f32::NAN);
                continue;
            }
            let amax = _mm512_reduce_max_ps(_mm512_max_ps(abs(a), abs(b)));
            let scale = amax / 127.0;
            d[at..at + 4].fill(scale);
            if scale == 0.0 {
                continue;
            }
            let inv = _mm512_set1_ps(1.0 / scale);
            let lim = _mm512_set1_epi32(127);
            let quant = |v: __m512| {
                let r = _mm512_roundscale_ps::<{ _MM_FROUND_TO_NEAREST_INT | _MM_FROUND_NO_EXC }>(
                    _mm512_mul_ps(v, inv),
                );
                _mm512_max_epi32(
                    _mm512_min_epi32(_mm512_cvtps_epi32(r), lim),
                    _mm512_sub_epi32(_mm512_setzero_si512(), lim),
                )
            };
            let qe = quant(_mm512_permutex2var_ps(a, ie, b));
            let qo = quant(_mm512_permutex2var_ps(a, io, b));
            let base = q.as_mut_ptr().add(pair * PAIR_BYTES + half * 16);
            _mm_storeu_si128(base as *mut __m128i, _mm512_cvtepi32_epi8(qe));
            _mm_storeu_si128(base.add(32) as *mut __m128i, _mm512_cvtepi32_epi8(qo));
            *cbv = -W_OFFSET * _mm512_reduce_add_epi32(_mm512_add_epi32(qe, qo));
        }
    }
}
