//! The Arm NEON level (aarch64, 128-bit Advanced SIMD): not written yet, so it is never
//! detected and aarch64 runs the scalar oracles.

/// Proof that this CPU runs the NEON kernels (none exist yet).
pub(crate) struct Neon(());

impl Neon {
    pub(crate) fn detect() -> Option<&'static Neon> {
        None
    }
}

/// Whether the CPU has the `dotprod` extension (`sdot`/`udot`).
pub(crate) fn has_dotprod() -> bool {
    std::arch::is_aarch64_feature_detected!("dotprod")
}

impl super::SimdKernels for Neon {
    unsafe fn dense_f32_rows(
        &self,
        _: &[f32],
        _: &[f32],
        _: usize,
        _: usize,
        _: usize,
        _: Option<&[f32]>,
        _: super::OutRows<'_>,
        _: usize,
    ) {
        unreachable!("never detected")
    }
    unsafe fn dense_bf16_rows(
        &self,
        _: &[crate::bf16],
        _: &[f32],
        _: usize,
        _: usize,
        _: usize,
        _: Option<&[f32]>,
        _: super::OutRows<'_>,
        _: usize,
    ) {
        unreachable!("never detected")
    }
    fn mxfp4_rows(
        &self,
        _: &[u8],
        _: &[u8],
        _: &[f32],
        _: usize,
        _: usize,
        _: usize,
        _: Option<&[f32]>,
        _: &mut [f32],
        _: &mut Vec<f32>,
    ) {
        unreachable!("never detected")
    }
    fn q8_mxfp4_rows(
        &self,
        _: &[u8],
        _: &[u8],
        _: &crate::q8::Q8Rows,
        _: usize,
        _: Option<&[f32]>,
        _: &mut [f32],
        _: &mut Vec<f32>,
    ) {
        unreachable!("never detected")
    }
    unsafe fn q8_q8w_rows(
        &self,
        _: &crate::q8::Q8Rows,
        _: &crate::q8w::Q8Weights,
        _: usize,
        _: usize,
        _: Option<&[f32]>,
        _: super::OutRows<'_>,
    ) {
        unreachable!("never detected")
    }
    fn attention_group(
        &self,
        _: &crate::attention::GroupArgs<'_, '_>,
        _: usize,
        _: &mut [f32],
        _: &mut Vec<f32>,
    ) {
        unreachable!("never detected")
    }
    fn fma_probe(&self, _: u64) -> f64 {
        unreachable!("never detected")
    }
    fn int8_probe(&self, _: u64) -> Option<f64> {
        None
    }
}
