//! Both NEON variants (with `sdot` where the CPU has `dotprod`, and without) through the same
//! checks as every level in `cpu/tests.rs`: the int8 paths give the scalar oracles' bits, the
//! f32 paths the plain-Rust contract's bits (so the AVX2 level's, checked there on x86-64).

use super::Neon;
use crate::cpu::tests::{check_f32_contract, check_q8_mxfp4, check_q8_q8w};

fn variants() -> Vec<(&'static str, &'static Neon)> {
    let v: Vec<_> = Neon::variants()
        .into_iter()
        .map(|n| (if n.dot { "neon+sdot" } else { "neon" }, n))
        .collect();
    eprintln!(
        "neon variants: {:?}",
        v.iter().map(|(name, _)| *name).collect::<Vec<_>>()
    );
    v
}

#[test]
fn every_variant_gives_the_int8_oracle_bits() {
    for (name, n) in variants() {
        check_q8_mxfp4(n, name);
        check_q8_q8w(n, name);
    }
}

#[test]
fn every_variant_follows_the_f32_contract() {
    for (name, n) in variants() {
        check_f32_contract(n, name);
    }
}

#[test]
fn probes_count_their_work() {
    for (name, n) in variants() {
        use crate::cpu::SimdKernels;
        assert_eq!(n.fma_probe(10), 10.0 * 16.0 * 8.0, "{name}");
        assert_eq!(n.int8_probe(10), Some(10.0 * 16.0 * 16.0), "{name}");
    }
}
