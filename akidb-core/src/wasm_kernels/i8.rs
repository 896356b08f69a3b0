//! The int8 kernel: int8 × int8 → i32, 8×4, exact, on SIMD128's `i32x4.dot_i16x8_s`.
//!
//! Why: the `int8-dynamic` bundles' weight products are int8 × int8, and tract 0.23.9's wasm kernel for
//! them (`wasm_i32_4x4`) widens to 32 bits and multiplies 4 lanes at a time in the SIMD128 build (a
//! sentence took 23.9 ms against the f32 path's 15.3 ms in Node 20), and in the relaxed-SIMD build gave
//! different vectors from run to run (PERF.md). This kernel multiplies 8 pairs per instruction, exactly,
//! and reads a quarter of the f32 path's weight bytes.
//!
//! Both operands are packed two `k` at a time ([`PackedI8Groups`]): A (the weights) as int8, 8 rows ×
//! 2 `k` = 16 bytes a step; B (the activations) widened to 16 bits when packed, 4 columns × 2 `k`. Each
//! step loads A sign-extended to 16 bits in two vectors of 4 rows (`v128.load8x8_s`), each column's
//! pair into every 32-bit lane (`v128.load32_splat`, a plain load: no shuffle, which on x86-64 would
//! share a port with the dot products), and multiplies with `i32x4.dot_i16x8_s`, which adds each
//! row's pair into one 32-bit lane: exact for every int8 value (|a·b + c·d| ≤ 2¹⁵) and the same on
//! every engine, unlike the relaxed 8-bit dot product. So each accumulator holds 4 whole row sums of a
//! column, stored as they are: 8 accumulators, 2 A vectors and a B vector in registers (x86-64 has 16).
//! The 4×4 tile this replaced, on groups of 4 `k`, kept half-sums (a reduction per tile) and ran twice
//! the tiles, each with tract's per-tile work around it (PERF.md).
//!
//! Fused ops other than the product are `crate::i32_tile`'s, shared with the x86-64 int8 kernel. The
//! `int8-dynamic` bundles' products don't go through tract's tile loop in wasm: `model::fused` calls
//! [`add_mat_mul_i8`] tile by tile itself, with the quantisation and the epilogue around it.

use std::arch::wasm32::*;

use tract_onnx::prelude::DatumType;
use tract_onnx::tract_core::tract_linalg::isa::Arch;
use tract_onnx::tract_core::tract_linalg::mmm::{DynKernel, FusedKerSpec};
use tract_onnx::tract_core::tract_linalg::pack::PackedFormat;

use crate::packing::PackedI8Groups;

/// The kernel's name, as `Embedder::matmul_kernels` reports it.
pub const NAME: &str = "akidb_wasm_i32_8x4";

/// Rows of a tile.
pub const MR: usize = 8;
/// Columns of a tile.
pub const NR: usize = 4;
/// `k` packed together per row and column: one pair per 32-bit lane of the dot product.
const K_GROUP: usize = 2;

crate::kernel_registration::register_kernel!(i32, || {
    // Packing 0 (i32 × i32) is tract's convention for an i32 kernel; packing 1 is the int8 one.
    let mut kernel = DynKernel::<MR, NR, i32>::new(
        NAME,
        run,
        PackedFormat::new(DatumType::I32, MR, 16),
        PackedFormat::new(DatumType::I32, NR, 16),
    )
    .with_packing(
        PackedI8Groups::new(MR, K_GROUP),
        PackedI8Groups::widened(NR, K_GROUP),
    );
    kernel.arch = Some(Arch::Wasm32Simd128);
    kernel
});

/// The tile between ops (`i32_tile`'s, at this kernel's shape).
pub(crate) type Tile = crate::i32_tile::Tile<MR, NR>;

/// Runs one tile's program of fused ops; 1 for a packing or store size this kernel doesn't have.
///
/// # Safety
/// tract's contract for kernels: the ops' pointers are valid for this kernel's tile shape and packing.
pub(super) unsafe fn run(ops: &[FusedKerSpec<i32>]) -> isize {
    // SAFETY: the contract above.
    unsafe { crate::i32_tile::run::<MR, NR, _>(ops, add_mat_mul_i8) }
}

/// `tile += A·B`, A packed by [`PackedI8Groups::new`]`(MR, 2)`, B by [`PackedI8Groups::widened`]`(NR, 2)`
/// (or the same layouts made by `model::fused`): `k` rounded up to a multiple of 2, the padding zeros.
///
/// # Safety
/// `a` holds `k.div_ceil(2) * 2 * MR` readable bytes and `b` `k.div_ceil(2) * 2 * NR` readable i16s.
pub(crate) unsafe fn add_mat_mul_i8(tile: &mut Tile, k: usize, a: *const i8, b: *const i16) {
    let zero = i32x4_splat(0);
    // Column j's sums: rows 0–3 in `cjl`, rows 4–7 in `cjh`, a row per lane.
    let (mut c0l, mut c0h, mut c1l, mut c1h) = (zero, zero, zero, zero);
    let (mut c2l, mut c2h, mut c3l, mut c3h) = (zero, zero, zero, zero);
    for step in 0..k.div_ceil(K_GROUP) {
        // SAFETY: step < k.div_ceil(2), within the bounds the caller guarantees.
        unsafe {
            let a = a.add(step * MR * K_GROUP);
            // [r0 k0, r0 k1, r1 k0, r1 k1, …, r3 k1] and the same for rows 4–7.
            let a_lo = i16x8_load_extend_i8x8(a);
            let a_hi = i16x8_load_extend_i8x8(a.add(8));
            // Column j's pair, [k0 k1] in every 32-bit lane: one per row of a_lo and a_hi.
            let column = |j: usize| v128_load32_splat(b.add((step * NR + j) * K_GROUP) as *const u32);
            let b0 = column(0);
            c0l = i32x4_add(c0l, i32x4_dot_i16x8(a_lo, b0));
            c0h = i32x4_add(c0h, i32x4_dot_i16x8(a_hi, b0));
            let b1 = column(1);
            c1l = i32x4_add(c1l, i32x4_dot_i16x8(a_lo, b1));
            c1h = i32x4_add(c1h, i32x4_dot_i16x8(a_hi, b1));
            let b2 = column(2);
            c2l = i32x4_add(c2l, i32x4_dot_i16x8(a_lo, b2));
            c2h = i32x4_add(c2h, i32x4_dot_i16x8(a_hi, b2));
            let b3 = column(3);
            c3l = i32x4_add(c3l, i32x4_dot_i16x8(a_lo, b3));
            c3h = i32x4_add(c3h, i32x4_dot_i16x8(a_hi, b3));
        }
    }
    for (column, (lo, hi)) in tile
        .iter_mut()
        .zip([(c0l, c0h), (c1l, c1h), (c2l, c2h), (c3l, c3h)])
    {
        let (rows_lo, rows_hi) = column.split_at_mut(4);
        for (rows, sums) in [(rows_lo, lo), (rows_hi, hi)] {
            // SAFETY: `rows` is 4 i32s of the tile; wasm loads and stores need no alignment.
            unsafe {
                let p = rows.as_mut_ptr() as *mut v128;
                v128_store(p, i32x4_add(v128_load(p), sums));
            }
        }
    }
}
