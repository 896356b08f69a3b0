//! The f32 kernel, 8×4.
//!
//! tract 0.23 picks its `wasm_f32_8x8` for f32 products. In Node 20 (builds differing only in the kernel,
//! interleaved in one process, one 11-token sentence / a batch of 32): `wasm_f32_8x8` 19.1 / 514 ms,
//! tract's `wasm_f32_4x4` 12.4 / 374 ms, this kernel 9.3 / 285 ms. Our reading, not profiled inside V8:
//! 8×8's 16 accumulators are all 16 of x86-64's SIMD registers, so its inner loop spills; 4×4 has only
//! four independent additions in flight and loads five values per four multiply-adds; and a 12-token
//! sentence, the common query, gives 12-column products, which 8-wide tiles pad to 16. Here each step
//! loads A's 8 rows as two vectors and broadcasts B's 4 columns: 8 accumulators, 6 loads per 8
//! multiply-adds, and 12 columns tile exactly.
//!
//! Accumulators hold columns (lanes are rows), as in tract's x86 kernels; the fused ops are tract's, each
//! checked against plain loops by `akidb_core::kernel_check` in Chromium and Firefox
//! (`akidb-wasm/tests/kernel.rs`).

use std::arch::wasm32::*;

use tract_onnx::tract_core::tract_linalg::isa::Arch;
use tract_onnx::tract_core::tract_linalg::mmm::{DynKernel, FusedKerSpec, OutputStoreKer};
use tract_onnx::tract_core::tract_linalg::pack::Packing;
use tract_onnx::tract_core::tract_linalg::Scaler;

/// The kernel's name, as `Embedder::matmul_kernels` reports it.
pub const NAME: &str = "akidb_wasm_f32_8x4";

/// Rows of a tile.
pub const MR: usize = 8;
/// Columns of a tile.
pub const NR: usize = 4;

crate::kernel_registration::register_kernel!(f32, || {
    let mut kernel =
        DynKernel::<MR, NR, f32>::new(NAME, run, f32::packing(MR).align(MR), f32::packing(NR).align(NR));
    kernel.arch = Some(Arch::Wasm32Simd128);
    kernel
});

/// The accumulators: column `j` of the tile is `acc[j]`, rows 0–3 in `.0` and rows 4–7 in `.1`.
type Tile = [(v128, v128); NR];

/// `op(v, acc)` on every accumulator.
///
/// (The ops are closures over the intrinsics: `#[target_feature]` functions are not `Fn`s.)
#[inline(always)]
fn each(acc: &mut Tile, v: v128, op: impl Fn(v128, v128) -> v128) {
    for (lo, hi) in acc.iter_mut() {
        *lo = op(v, *lo);
        *hi = op(v, *hi);
    }
}

/// `op(rows[i], acc[j][i])` on every accumulator: a per-row operand, along the lanes.
///
/// # Safety
/// `rows` points to `MR` readable f32s.
#[inline(always)]
unsafe fn each_row(acc: &mut Tile, rows: *const f32, op: impl Fn(v128, v128) -> v128) {
    let (rlo, rhi) = unsafe {
        (
            v128_load(rows as *const v128),
            v128_load(rows.add(4) as *const v128),
        )
    };
    for (lo, hi) in acc.iter_mut() {
        *lo = op(rlo, *lo);
        *hi = op(rhi, *hi);
    }
}

/// `op(splat(cols[j]), acc[j])` on every accumulator: a per-column operand, across them.
///
/// # Safety
/// `cols` points to `NR` readable f32s.
#[inline(always)]
unsafe fn each_col(acc: &mut Tile, cols: *const f32, op: impl Fn(v128, v128) -> v128) {
    for (j, (lo, hi)) in acc.iter_mut().enumerate() {
        let c = f32x4_splat(unsafe { *cols.add(j) });
        *lo = op(c, *lo);
        *hi = op(c, *hi);
    }
}

/// The address of element (`row`, `col`) of a C tile.
#[inline(always)]
fn at(tile: &OutputStoreKer, row: usize, col: usize) -> *mut f32 {
    tile.ptr
        .wrapping_offset(tile.row_byte_stride * row as isize + tile.col_byte_stride * col as isize)
        as *mut f32
}

/// Runs one tile's program of fused ops.
///
/// # Safety
/// tract's contract for kernels: the ops' pointers are valid for this kernel's tile shape and packing.
pub(super) unsafe fn run(ops: &[FusedKerSpec<f32>]) -> isize {
    let zero = f32x4_splat(0.0);
    let mut acc: Tile = [(zero, zero); NR];
    for op in ops {
        // SAFETY: each pointer an op carries is valid for the tile, per the function's contract.
        unsafe {
            match *op {
                FusedKerSpec::Done => break,
                FusedKerSpec::Clear => acc = [(zero, zero); NR],
                FusedKerSpec::LoadTile(col_major, _row_major) => {
                    for (j, (lo, hi)) in acc.iter_mut().enumerate() {
                        *lo = v128_load(col_major.add(j * MR) as *const v128);
                        *hi = v128_load(col_major.add(j * MR + 4) as *const v128);
                    }
                }
                FusedKerSpec::ScalarMin(s) => each(&mut acc, f32x4_splat(s), |v, a| f32x4_min(v, a)),
                FusedKerSpec::ScalarMax(s) => each(&mut acc, f32x4_splat(s), |v, a| f32x4_max(v, a)),
                FusedKerSpec::ScalarAdd(s) => each(&mut acc, f32x4_splat(s), |v, a| f32x4_add(v, a)),
                FusedKerSpec::ScalarMul(s) => each(&mut acc, f32x4_splat(s), |v, a| f32x4_mul(v, a)),
                FusedKerSpec::ScalarSub(s) => each(&mut acc, f32x4_splat(s), |v, a| f32x4_sub(v, a)),
                FusedKerSpec::ScalarSubF(s) => each(&mut acc, f32x4_splat(s), |v, a| f32x4_sub(a, v)),
                FusedKerSpec::LeakyRelu(alpha) => {
                    let alpha = f32x4_splat(alpha);
                    each(&mut acc, zero, |z, a| {
                        v128_bitselect(a, f32x4_mul(alpha, a), f32x4_gt(a, z))
                    })
                }
                FusedKerSpec::PerRowMin(rows) => each_row(&mut acc, rows, |v, a| f32x4_min(v, a)),
                FusedKerSpec::PerRowMax(rows) => each_row(&mut acc, rows, |v, a| f32x4_max(v, a)),
                FusedKerSpec::PerRowAdd(rows) => each_row(&mut acc, rows, |v, a| f32x4_add(v, a)),
                FusedKerSpec::PerRowMul(rows) => each_row(&mut acc, rows, |v, a| f32x4_mul(v, a)),
                FusedKerSpec::PerRowSub(rows) => each_row(&mut acc, rows, |v, a| f32x4_sub(v, a)),
                FusedKerSpec::PerRowSubF(rows) => each_row(&mut acc, rows, |v, a| f32x4_sub(a, v)),
                FusedKerSpec::PerColMin(cols) => each_col(&mut acc, cols, |v, a| f32x4_min(v, a)),
                FusedKerSpec::PerColMax(cols) => each_col(&mut acc, cols, |v, a| f32x4_max(v, a)),
                FusedKerSpec::PerColAdd(cols) => each_col(&mut acc, cols, |v, a| f32x4_add(v, a)),
                FusedKerSpec::PerColMul(cols) => each_col(&mut acc, cols, |v, a| f32x4_mul(v, a)),
                FusedKerSpec::PerColSub(cols) => each_col(&mut acc, cols, |v, a| f32x4_sub(v, a)),
                FusedKerSpec::PerColSubF(cols) => each_col(&mut acc, cols, |v, a| f32x4_sub(a, v)),
                FusedKerSpec::QScale(shift, policy, mult) => {
                    let scale = Scaler::from_fuse_params(shift, policy, mult).scale;
                    each(&mut acc, f32x4_splat(scale), |v, a| f32x4_mul(v, a))
                }
                FusedKerSpec::RoundingShiftRight(shift, _) => {
                    each(&mut acc, f32x4_splat(2f32.powi(-(shift as i32))), |v, a| {
                        f32x4_mul(v, a)
                    })
                }
                FusedKerSpec::ShiftLeft(shift) => {
                    each(&mut acc, f32x4_splat(2f32.powi(shift as i32)), |v, a| {
                        f32x4_mul(v, a)
                    })
                }
                FusedKerSpec::AddUnicast(tile) => {
                    for (j, (lo, hi)) in acc.iter_mut().enumerate() {
                        let c = |row| *at(&tile, row, j);
                        *lo = f32x4_add(*lo, f32x4(c(0), c(1), c(2), c(3)));
                        *hi = f32x4_add(*hi, f32x4(c(4), c(5), c(6), c(7)));
                    }
                }
                FusedKerSpec::AddRowColProducts(rows, cols) => {
                    let (rlo, rhi) = (
                        v128_load(rows as *const v128),
                        v128_load(rows.add(4) as *const v128),
                    );
                    for (j, (lo, hi)) in acc.iter_mut().enumerate() {
                        let c = f32x4_splat(*cols.add(j));
                        *lo = f32x4_add(*lo, f32x4_mul(rlo, c));
                        *hi = f32x4_add(*hi, f32x4_mul(rhi, c));
                    }
                }
                FusedKerSpec::Store(tile) => {
                    for (j, (lo, hi)) in acc.iter().enumerate() {
                        *at(&tile, 0, j) = f32x4_extract_lane::<0>(*lo);
                        *at(&tile, 1, j) = f32x4_extract_lane::<1>(*lo);
                        *at(&tile, 2, j) = f32x4_extract_lane::<2>(*lo);
                        *at(&tile, 3, j) = f32x4_extract_lane::<3>(*lo);
                        *at(&tile, 4, j) = f32x4_extract_lane::<0>(*hi);
                        *at(&tile, 5, j) = f32x4_extract_lane::<1>(*hi);
                        *at(&tile, 6, j) = f32x4_extract_lane::<2>(*hi);
                        *at(&tile, 7, j) = f32x4_extract_lane::<3>(*hi);
                    }
                }
                FusedKerSpec::AddMatMul { k, pa, pb, .. } => add_mat_mul(&mut acc, k, pa as _, pb as _),
            }
        }
    }
    0
}

/// `a · b + c`: one relaxed fused multiply-add in the relaxed-SIMD build (`f32x4.relaxed_madd`, fused or
/// not as the engine likes; either is within the wasm-vs-native bar), a multiply and an add otherwise.
///
/// The relaxed build is this crate's `wasm-relaxed-simd` feature, which enables relaxed SIMD on the two
/// functions of this kernel's inner loop only: the rest of the .wasm (tract, tokenizers) is the same code
/// as the SIMD128 build, so akidb-wasm/build.sh compiles those crates once for both builds, not twice.
#[cfg(feature = "wasm-relaxed-simd")]
#[target_feature(enable = "relaxed-simd")]
#[inline]
fn madd(a: v128, b: v128, c: v128) -> v128 {
    f32x4_relaxed_madd(a, b, c)
}

#[cfg(not(feature = "wasm-relaxed-simd"))]
#[inline(always)]
fn madd(a: v128, b: v128, c: v128) -> v128 {
    f32x4_add(c, f32x4_mul(a, b))
}

/// `acc += A·B` over `k`: packed A gives the `MR` rows of a step as two vectors, packed B its `NR`
/// columns, each broadcast.
///
/// # Safety
/// `a` holds `k * MR` and `b` `k * NR` readable f32s.
// (Not inlined into `run` in the relaxed build, whose `run` lacks the feature: one call per tile.)
#[cfg_attr(feature = "wasm-relaxed-simd", target_feature(enable = "relaxed-simd"))]
#[cfg_attr(not(feature = "wasm-relaxed-simd"), inline(always))]
unsafe fn add_mat_mul(acc: &mut Tile, k: usize, a: *const f32, b: *const f32) {
    // Eight named accumulators rather than the array keep each in a register through the loop.
    let [(mut c0l, mut c0h), (mut c1l, mut c1h), (mut c2l, mut c2h), (mut c3l, mut c3h)] = *acc;
    for i in 0..k {
        // SAFETY: i < k, within the bounds the caller guarantees.
        unsafe {
            let a = a.add(i * MR);
            let (al, ah) = (v128_load(a as *const v128), v128_load(a.add(4) as *const v128));
            let b = b.add(i * NR);
            let b0 = f32x4_splat(*b);
            c0l = madd(al, b0, c0l);
            c0h = madd(ah, b0, c0h);
            let b1 = f32x4_splat(*b.add(1));
            c1l = madd(al, b1, c1l);
            c1h = madd(ah, b1, c1h);
            let b2 = f32x4_splat(*b.add(2));
            c2l = madd(al, b2, c2l);
            c2h = madd(ah, b2, c2h);
            let b3 = f32x4_splat(*b.add(3));
            c3l = madd(al, b3, c3l);
            c3h = madd(ah, b3, c3h);
        }
    }
    *acc = [(c0l, c0h), (c1l, c1h), (c2l, c2h), (c3l, c3h)];
}
