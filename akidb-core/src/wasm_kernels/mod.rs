//! akidb-core's own wasm32 + SIMD128 matmul kernels, and the dispatch tier above tract's wasm tier that
//! picks them for every product with more than one column:
//!
//! - [`f32`]: 8×4, the exact path's products (int8 and fp32 bundles), and attention's per-head ones;
//! - [`i8`]: int8 × int8 → i32, 8×4, exact, on SIMD128's 16-bit dot product: the `int8-dynamic`
//!   bundles' integer weight products, which tract 0.23.9 runs on a kernel slower than the f32 one in
//!   the SIMD128 build and nondeterministic in the relaxed-SIMD build (PERF.md).
//!
//! Single columns (n = 1) stay on tract's matrix-vector kernels.

pub mod f32;
pub mod i8;

use tract_onnx::prelude::DatumType;
use tract_onnx::tract_core::tract_linalg::isa::{Arch, IsaSet};
use tract_onnx::tract_core::tract_linalg::mmm::{Query, Suitable};
use tract_onnx::tract_core::tract_linalg::mmm_tiers::MmmTier;

fn preferred(_: &IsaSet, accumulator: DatumType, query: &Query, _: &[Suitable]) -> Option<&'static str> {
    match (accumulator, query.n) {
        (DatumType::F32, Some(n)) if n > 1 => Some(f32::NAME),
        (DatumType::I32, Some(n)) if n > 1 => Some(i8::NAME),
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

/// Keeps this module linked in: wasm-ld drops an object that nothing references, and with it the
/// kernels' and the tier's registrations (tract keeps its own wasm kernels the same way).
pub(crate) fn keep_linked() {
    std::hint::black_box((
        preferred as *const (),
        f32::run as *const (),
        i8::run as *const (),
    ));
}
