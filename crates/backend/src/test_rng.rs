//! A tiny seeded generator for the kernel tests: reproducible inputs without a dependency.

/// 64-bit LCG (Knuth's MMIX constants); plenty for test data, not for sampling.
pub(crate) struct Rng(pub(crate) u64);

impl Rng {
    fn step(&mut self) -> u64 {
        self.0 = self
            .0
            .wrapping_mul(6364136223846793005)
            .wrapping_add(1442695040888963407);
        self.0
    }

    /// Uniform in [-1, 1).
    pub(crate) fn f(&mut self) -> f32 {
        ((self.step() >> 40) as f32 / (1u64 << 24) as f32) * 2.0 - 1.0
    }

    pub(crate) fn byte(&mut self) -> u8 {
        (self.step() >> 56) as u8
    }
}
