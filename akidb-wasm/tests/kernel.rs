//! akidb-core's own wasm matmul kernels (`akidb-core/src/wasm_kernels/`: f32 8×4 and int8 8×4) against
//! plain Rust loops, one fused op at a time, in the browsers the golden suite runs in: the suites of
//! `akidb_core::kernel_check`, which the x86-64 kernels' unit tests run too.
#![cfg(all(target_arch = "wasm32", target_feature = "simd128"))]

use akidb_core::kernel_check;
use akidb_core::wasm_kernels::{f32, i8};
use wasm_bindgen_test::*;

wasm_bindgen_test_configure!(run_in_browser);

#[wasm_bindgen_test]
fn f32_kernel_matches_plain_loops_for_every_fused_op() {
    kernel_check::kernel_matches_plain_loops_for_every_fused_op::<{ f32::MR }, { f32::NR }>(f32::run_tile);
}

#[wasm_bindgen_test]
fn f32_kernel_loads_a_tile_and_stores_through_any_strides() {
    kernel_check::kernel_loads_a_tile_and_stores_through_any_strides::<{ f32::MR }, { f32::NR }>(
        f32::run_tile,
    );
}

#[wasm_bindgen_test]
fn int8_product_is_exact() {
    kernel_check::int8::int8_product_is_exact::<{ i8::MR }, { i8::NR }>(i8::run_tile, i8::int8_packing());
}

#[wasm_bindgen_test]
fn int8_kernel_i32_product_and_fused_ops_match_plain_loops() {
    kernel_check::int8::i32_product_and_fused_ops_match_plain_loops::<{ i8::MR }, { i8::NR }>(i8::run_tile);
}

#[wasm_bindgen_test]
fn int8_kernel_tiles_load_add_and_store_through_strides() {
    kernel_check::int8::tiles_load_add_and_store_through_strides::<{ i8::MR }, { i8::NR }>(i8::run_tile);
}
