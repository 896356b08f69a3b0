//! The int8 kernel: int8 × int8 → i32, 4×4, exact, on SIMD128's `i32x4.dot_i16x8_s`.
//!
//! Why: the `int8-dynamic` bundles' weight products are int8 × int8, and tract 0.23.9's wasm kernel for
//! them (`wasm_i32_4x4`) widens to 32 bits and multiplies 4 lanes at a time in the SIMD128 build (a
//! sentence took 23.9 ms against the f32 path's 15.3 ms in Node 20), and in the relaxed-SIMD build gave
//! different vectors from run to run (PERF.md). This kernel multiplies 8 pairs per instruction, exactly,
//! and reads a quarter of the f32 path's weight bytes.
//!
//! A is packed four `k` at a time per row (tract's `PackedI8K4`), B the same way per column but widened
//! to 16 bits when packed ([`PackedI8K4Widened`]): a step of 4 `k` is 16 bytes of A (4 rows) and 32 of
//! B (4 columns). Each step loads A sign-extended to 16 bits (`v128.load8x8_s`, rows in pairs) and each
//! column's 4 values into both 64-bit halves (`v128.load64_splat`, a plain load: no shuffle, which on
//! x86-64 would share a port with the dot products), and multiplies with `i32x4.dot_i16x8_s`, which adds
//! pairs into 32-bit lanes: exact for every int8 value (|a·b + c·d| ≤ 2¹⁵) and the same on every engine,
//! unlike the relaxed 8-bit dot product. Each accumulator lane holds half of a row's sum; the halves are
//! added once, after the loop. 4×4 keeps 8 accumulators, 2 A vectors and a B vector in registers: an
//! 8-row tile would need 16 accumulators, every SIMD register x86-64 has.
//!
//! Fused ops other than the product are `crate::i32_tile`'s, shared with the x86-64 int8 kernel.

use std::arch::wasm32::*;

use tract_onnx::prelude::DatumType;
use tract_onnx::tract_core::tract_linalg::isa::Arch;
use tract_onnx::tract_core::tract_linalg::mmm::{DynKernel, FusedKerSpec};
use tract_onnx::tract_core::tract_linalg::pack::{PackedFormat, PackedI8K4};

use crate::packing::PackedI8K4Widened;

/// The kernel's name, as `Embedder::matmul_kernels` reports it.
pub const NAME: &str = "akidb_wasm_i32_4x4";

/// Rows of a tile.
pub const MR: usize = 4;
/// Columns of a tile.
pub const NR: usize = 4;

crate::kernel_registration::register_kernel!(i32, || {
    // Packing 0 (i32 × i32) is tract's convention for an i32 kernel; packing 1 is the int8 one.
    let mut kernel = DynKernel::<MR, NR, i32>::new(
        NAME,
        run,
        PackedFormat::new(DatumType::I32, MR, 16),
        PackedFormat::new(DatumType::I32, NR, 16),
    )
    .with_packing(PackedI8K4::new(MR), PackedI8K4Widened::new(NR));
    kernel.arch = Some(Arch::Wasm32Simd128);
    kernel
});

/// The tile between ops (`i32_tile`'s, at this kernel's shape).
type Tile = crate::i32_tile::Tile<MR, NR>;

/// Runs one tile's program of fused ops; 1 for a packing or store size this kernel doesn't have.
///
/// # Safety
/// tract's contract for kernels: the ops' pointers are valid for this kernel's tile shape and packing.
pub(super) unsafe fn run(ops: &[FusedKerSpec<i32>]) -> isize {
    // SAFETY: the contract above.
    unsafe { crate::i32_tile::run::<MR, NR, _>(ops, add_mat_mul_i8) }
}

/// `tile += A·B`, A packed by [`PackedI8K4`], B by [`PackedI8K4Widened`]: `k` rounded up to a multiple
/// of 4, the padding zeros.
///
/// # Safety
/// `a` holds `k.div_ceil(4) * 4 * MR` readable bytes and `b` `k.div_ceil(4) * 4 * NR` readable i16s.
unsafe fn add_mat_mul_i8(tile: &mut Tile, k: usize, a: *const i8, b: *const i16) {
    let zero = i32x4_splat(0);
    // Column j's accumulators: rows 0–1 in `cjl`, rows 2–3 in `cjh`, lanes [r k0+k1, r k2+k3, r+1 …].
    let (mut c0l, mut c0h, mut c1l, mut c1h) = (zero, zero, zero, zero);
    let (mut c2l, mut c2h, mut c3l, mut c3h) = (zero, zero, zero, zero);
    for step in 0..k.div_ceil(4) {
        // SAFETY: step < k.div_ceil(4), within the bounds the caller guarantees.
        unsafe {
            let a = a.add(step * MR * 4);
            let a01 = i16x8_load_extend_i8x8(a);
            let a23 = i16x8_load_extend_i8x8(a.add(8));
            // Column j's 4 values, [k0 k1 k2 k3 k0 k1 k2 k3]: one per row of a01 and a23.
            let column = |j: usize| v128_load64_splat(b.add((step * NR + j) * 4) as *const u64);
            let b0 = column(0);
            c0l = i32x4_add(c0l, i32x4_dot_i16x8(a01, b0));
            c0h = i32x4_add(c0h, i32x4_dot_i16x8(a23, b0));
            let b1 = column(1);
            c1l = i32x4_add(c1l, i32x4_dot_i16x8(a01, b1));
            c1h = i32x4_add(c1h, i32x4_dot_i16x8(a23, b1));
            let b2 = column(2);
            c2l = i32x4_add(c2l, i32x4_dot_i16x8(a01, b2));
            c2h = i32x4_add(c2h, i32x4_dot_i16x8(a23, b2));
            let b3 = column(3);
            c3l = i32x4_add(c3l, i32x4_dot_i16x8(a01, b3));
            c3h = i32x4_add(c3h, i32x4_dot_i16x8(a23, b3));
        }
    }
    for (column, (lo, hi)) in tile
        .iter_mut()
        .zip([(c0l, c0h), (c1l, c1h), (c2l, c2h), (c3l, c3h)])
    {
        // The two halves of each row's sum: even lanes and odd lanes, rows 0–3 in order.
        let sums = i32x4_add(
            i32x4_shuffle::<0, 2, 4, 6>(lo, hi),
            i32x4_shuffle::<1, 3, 5, 7>(lo, hi),
        );
        let rows = [
            i32x4_extract_lane::<0>(sums),
            i32x4_extract_lane::<1>(sums),
            i32x4_extract_lane::<2>(sums),
            i32x4_extract_lane::<3>(sums),
        ];
        for (x, r) in column.iter_mut().zip(rows) {
            *x = x.wrapping_add(r);
        }
    }
}
