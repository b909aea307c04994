//! Weight element types: bf16 (via the `half` crate) and MXFP4, i.e. FP4 E2M1 elements packed two
//! per byte (low nibble first) in blocks of 32 that share one E8M0 power-of-two scale
//! (reference §3.3). Decoding helpers only; the kernels that read them live in `matmul`.

pub use half::bf16;

/// Elements per MXFP4 block (one shared scale byte, 16 packed bytes).
pub const MXFP4_BLOCK: usize = 32;

/// FP4 E2M1 value of each nibble: bit 3 sign, bits 2..1 exponent (bias 1), bit 0 mantissa.
pub const FP4_E2M1_VALUES: [f32; 16] = [
    0.0, 0.5, 1.0, 1.5, 2.0, 3.0, 4.0, 6.0, -0.0, -0.5, -1.0, -1.5, -2.0, -3.0, -4.0, -6.0,
];

/// bf16 -> f32 is exact: the bf16 bits are the top half of the f32 bits.
#[inline(always)]
pub fn bf16_to_f32(x: bf16) -> f32 {
    f32::from_bits((x.to_bits() as u32) << 16)
}

/// Decodes one FP4 E2M1 nibble (only the low 4 bits of `nibble` are used).
#[inline(always)]
pub fn fp4_e2m1_to_f32(nibble: u8) -> f32 {
    FP4_E2M1_VALUES[(nibble & 0x0F) as usize]
}

/// E8M0 scale byte -> 2^(s - 127), exactly as the torch reference's `ldexp(1, s - 127)`.
/// s = 0 gives the subnormal 2^-127; s = 255 (NaN in the OCP spec, not special-cased by the
/// reference) gives 2^128 = +inf.
#[inline(always)]
pub fn e8m0_to_f32(s: u8) -> f32 {
    match s {
        // 2^-127 is below the smallest normal f32, so build the subnormal bit pattern.
        0 => f32::from_bits(0x0040_0000),
        255 => f32::INFINITY,
        _ => f32::from_bits((s as u32) << 23),
    }
}

/// Decodes one MXFP4 block (16 packed bytes + its scale byte) into 32 f32 weights.
#[inline(always)]
pub fn decode_mxfp4_block(packed: &[u8], scale: u8, out: &mut [f32]) {
    debug_assert_eq!(packed.len(), MXFP4_BLOCK / 2);
    debug_assert_eq!(out.len(), MXFP4_BLOCK);
    // Scale the 16-entry table once per block; each product is exact (a power-of-two scale),
    // so this equals scaling every element.
    let s = e8m0_to_f32(scale);
    let mut lut = [0f32; 16];
    for (l, v) in lut.iter_mut().zip(FP4_E2M1_VALUES) {
        *l = v * s;
    }
    for (k, &b) in packed.iter().enumerate() {
        // Low nibble is the element at the even index.
        out[2 * k] = lut[(b & 0x0F) as usize];
        out[2 * k + 1] = lut[(b >> 4) as usize];
    }
}

/// Decodes one MXFP4 row (`packed`: in/2 bytes, `scales`: in/32 bytes) into `out` (f32 [in]).
pub fn decode_mxfp4_row(packed: &[u8], scales: &[u8], out: &mut [f32]) {
    for ((p, &s), o) in packed
        .chunks_exact(MXFP4_BLOCK / 2)
        .zip(scales)
        .zip(out.chunks_exact_mut(MXFP4_BLOCK))
    {
        decode_mxfp4_block(p, s, o);
    }
}

/// Half of each E8M0 scale, 2^(s - 128), as f32 (s = 0 and 1 give subnormals, 255 gives +inf).
pub(crate) static HALF_SCALE: [f32; 256] = half_scales();

const fn half_scales() -> [f32; 256] {
    let mut t = [0f32; 256];
    let mut s = 0;
    while s < 256 {
        t[s] = match s {
            0 => f32::from_bits(0x0020_0000),
            1 => f32::from_bits(0x0040_0000),
            255 => f32::INFINITY,
            _ => f32::from_bits(((s - 1) as u32) << 23),
        };
        s += 1;
    }
    t
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn fp4_all_16_codes() {
        // Decode from the bit fields, independently of the table.
        for code in 0u8..16 {
            let sign = if code & 8 != 0 { -1.0f32 } else { 1.0 };
            let exp = ((code >> 1) & 3) as i32;
            let man = (code & 1) as f32;
            let mag = if exp == 0 {
                man * 0.5 // subnormal: 0.M * 2^(1-1)
            } else {
                (1.0 + man * 0.5) * 2f32.powi(exp - 1)
            };
            let v = fp4_e2m1_to_f32(code);
            assert_eq!(v, sign * mag, "code {code}");
            assert_eq!(v.is_sign_negative(), code & 8 != 0, "sign of code {code}");
        }
        assert_eq!(fp4_e2m1_to_f32(7), 6.0);
        assert_eq!(fp4_e2m1_to_f32(15), -6.0);
        assert_eq!(fp4_e2m1_to_f32(0x1F), -6.0, "high bits ignored");
    }

    #[test]
    fn e8m0_scales_including_extremes() {
        assert_eq!(e8m0_to_f32(127), 1.0);
        assert_eq!(e8m0_to_f32(128), 2.0);
        assert_eq!(e8m0_to_f32(126), 0.5);
        assert_eq!(e8m0_to_f32(1), 2f32.powi(-126));
        assert_eq!(e8m0_to_f32(0) as f64, 2f64.powi(-127));
        assert!(e8m0_to_f32(0) > 0.0);
        assert_eq!(e8m0_to_f32(254), 2f32.powi(127));
        assert_eq!(e8m0_to_f32(255), f32::INFINITY);
        for s in 1u8..=254 {
            assert_eq!(
                e8m0_to_f32(s) as f64,
                2f64.powi(s as i32 - 127),
                "scale {s}"
            );
        }
        // 6 * 2^127 overflows f32, as the reference's ldexp does.
        assert_eq!(6.0 * e8m0_to_f32(254), f32::INFINITY);
    }

    #[test]
    fn block_decode_low_nibble_first() {
        let mut packed = [0u8; 16];
        packed[0] = 0x72; // element 0 = code 2 (1.0), element 1 = code 7 (6.0)
        packed[15] = 0xF9; // element 30 = code 9 (-0.5), element 31 = code 15 (-6.0)
        let mut out = [0f32; 32];
        decode_mxfp4_block(&packed, 129, &mut out);
        assert_eq!(out[0], 4.0);
        assert_eq!(out[1], 24.0);
        assert_eq!(out[30], -2.0);
        assert_eq!(out[31], -24.0);
        assert!(out[2..30].iter().all(|&v| v == 0.0));
    }

    #[test]
    fn bf16_roundtrip() {
        for v in [0.0f32, 1.0, -2.5, 3.140625, 1e-30, -65504.0] {
            let b = bf16::from_f32(v);
            assert_eq!(bf16_to_f32(b), b.to_f32());
        }
    }
}
