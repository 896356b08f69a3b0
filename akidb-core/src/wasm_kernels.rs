//! The matmul kernel wasm plans run: a dispatch tier above tract's own for wasm32 + SIMD128.
//!
//! tract 0.23 runs `wasm_f32_8x8` for every f32 matrix product with more than one column. In V8 its
//! `wasm_f32_4x4` is faster at every shape MiniLM compiles to: in Node 20, one 11-token sentence took
//! 12.9 ms instead of 19.1 ms and a batch of 32 took 387 ms instead of 514 ms (`akidb-wasm` builds
//! differing only in this tier, interleaved in one process). Our reading, not profiled: the 8x8 tile's 16
//! accumulators are all of x86-64's 16 SIMD registers, so V8 spills in the inner loop; and a sentence of
//! 12 tokens fills 12 of the 16 columns it computes.

use tract_onnx::prelude::DatumType;
use tract_onnx::tract_core::tract_linalg::isa::{Arch, IsaSet};
use tract_onnx::tract_core::tract_linalg::mmm::{Query, Suitable};
use tract_onnx::tract_core::tract_linalg::mmm_tiers::MmmTier;

/// The kernel f32 products with more than one column run; `None` leaves the others to tract.
const F32_GEMM_KERNEL: &str = "wasm_f32_4x4";

fn preferred(_: &IsaSet, accumulator: DatumType, query: &Query, _: &[Suitable]) -> Option<&'static str> {
    match (accumulator, query.n) {
        (DatumType::F32, Some(n)) if n > 1 => Some(F32_GEMM_KERNEL),
        _ => None,
    }
}

inventory::submit! {
    MmmTier {
        arch: Some(Arch::Wasm32Simd128),
        precedence: 2,
        name: "akidb-wasm-gemm",
        applies: |_| true,
        preferred,
    }
}

/// Keeps this module's tier linked in: wasm-ld drops an object that nothing references, and with it
/// the tier's registration (tract keeps its own wasm kernels the same way).
pub(crate) fn keep_linked() {
    std::hint::black_box(preferred as *const ());
}
