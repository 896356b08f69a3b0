//! akidb-core's own wasm matmul kernel (`akidb-core/src/wasm_kernels.rs`, 8×4 f32) against plain Rust
//! loops, one fused op at a time, in the browsers the golden suite runs in: the suite of
//! `akidb_core::kernel_check`, which the x86-64 kernel's unit tests run too.
#![cfg(all(target_arch = "wasm32", target_feature = "simd128"))]

use akidb_core::kernel_check;
use akidb_core::wasm_kernels::run_tile;
use wasm_bindgen_test::*;

wasm_bindgen_test_configure!(run_in_browser);

const MR: usize = 8;
const NR: usize = 4;

#[wasm_bindgen_test]
fn kernel_matches_plain_loops_for_every_fused_op() {
    kernel_check::kernel_matches_plain_loops_for_every_fused_op::<MR, NR>(run_tile);
}

#[wasm_bindgen_test]
fn kernel_loads_a_tile_and_stores_through_any_strides() {
    kernel_check::kernel_loads_a_tile_and_stores_through_any_strides::<MR, NR>(run_tile);
}
