//! Opening the test adapter: tests that find none print that they were skipped and why, and
//! fail instead when `GPTOSS_REQUIRE_GPU=1` (CI sets it once lavapipe is installed, so a
//! broken driver can never turn the GPU tests into silent passes).
#![allow(dead_code)]

use gptoss_gpu::GpuContext;

pub fn open(test: &str) -> Option<GpuContext> {
    match GpuContext::open(None) {
        Ok(ctx) => {
            eprintln!("{test}: running on {}", ctx.adapter().name);
            Some(ctx)
        }
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
