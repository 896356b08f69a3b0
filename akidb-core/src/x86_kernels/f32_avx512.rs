//! The AVX-512 f32 kernel: 32×12, prefetching its weight stream well ahead.
//!
//! Why: on AVX-512 machines tract 0.23.9 runs a sentence's weight products on `avx512_mmm_f32_16x12`,
//! whose loop issues 13 loads (one 16-row A vector, 12 B broadcasts) per 12 FMAs and no software
//! prefetch of the weight stream; on the Xeon of 2026-12-02 the 36 products ran at ≈ 6 GB/s of weights
//! and 36 GFLOP/s (akidb-core/PERF.md). This tile loads two A vectors and 12 broadcasts per 24 FMAs and
//! prefetches A 16 KB ahead, as the AVX2 kernel ([`super::f32`]) does.
//!
//! Accumulators hold columns (lanes are rows), as in tract's x86 kernels: column `j` of the tile is
//! `acc[j]`, rows 0–15 in `acc[j][0]` and 16–31 in `acc[j][1]`. The fused ops are tract's; each is
//! checked against plain loops by [`crate::kernel_check`].

use std::arch::x86_64::*;

use tract_onnx::tract_core::tract_linalg::isa::{Arch, Isa, IsaReq};
use tract_onnx::tract_core::tract_linalg::mmm::{DynKernel, FusedKerSpec, OutputStoreKer};
use tract_onnx::tract_core::tract_linalg::pack::Packing;
use tract_onnx::tract_core::tract_linalg::Scaler;

/// The kernel's name, as `Embedder::matmul_kernels` reports it.
pub const NAME: &str = "akidb_avx512_f32_32x12";

/// 16-lane vectors per column of a tile.
const V: usize = 2;
/// Rows of a tile.
pub const MR: usize = 16 * V;
/// Columns of a tile: a 12-token sentence's activations in one pass over the weights.
pub const NR: usize = 12;

/// How far ahead of the current step the A (weight) stream is prefetched, in f32s (16 KB).
const PREFETCH_AHEAD: usize = 4096;

/// What the kernel needs to run: AVX-512F (and FMA, which every AVX-512F CPU has).
pub(super) const KERNEL_ISA: IsaReq = IsaReq::ANY.needing(&[Isa::X86_64Avx512f, Isa::X86_64Fma]);

crate::kernel_registration::register_kernel!(f32, || {
    let mut kernel = DynKernel::<MR, NR, f32>::new(NAME, run, f32::packing(MR).align(256), f32::packing(NR))
        .with_isa(KERNEL_ISA);
    kernel.arch = Some(Arch::X86_64);
    kernel
});

/// One column of the tile: `V` vectors of 16 rows.
type Column = [__m512; V];
/// The accumulators, a column each.
type Tile = [Column; NR];

/// The address of element (`row`, `col`) of a C tile.
#[inline(always)]
fn at(tile: &OutputStoreKer, row: usize, col: usize) -> *mut f32 {
    tile.ptr
        .wrapping_offset(tile.row_byte_stride * row as isize + tile.col_byte_stride * col as isize)
        as *mut f32
}

/// `acc = $op(v, acc)` for every accumulator vector, `$v` being a column's worth of operands: a
/// splatted scalar, or the tile's per-row values.
macro_rules! each {
    ($acc:expr, $v:expr, $op:ident) => {{
        let v: Column = $v;
        for column in $acc.iter_mut() {
            for (x, v) in column.iter_mut().zip(v) {
                *x = $op(v, *x);
            }
        }
    }};
}

/// `acc[j] = $op(splat(cols[j]), acc[j])` for every column `j`.
macro_rules! each_col {
    ($acc:expr, $cols:expr, $op:ident) => {{
        for (j, column) in $acc.iter_mut().enumerate() {
            let c = _mm512_set1_ps(*$cols.add(j));
            for x in column.iter_mut() {
                *x = $op(c, *x);
            }
        }
    }};
}

/// `v - a`, `v` being the op's operand and `a` the accumulator, in the order `each!` passes them.
#[inline]
#[target_feature(enable = "avx512f")]
fn sub(v: __m512, a: __m512) -> __m512 {
    _mm512_sub_ps(v, a)
}

/// `a - v`: the flipped subtraction.
#[inline]
#[target_feature(enable = "avx512f")]
fn sub_flipped(v: __m512, a: __m512) -> __m512 {
    _mm512_sub_ps(a, v)
}

/// Runs one tile's program of fused ops.
///
/// # Safety
/// tract's contract for kernels: the ops' pointers are valid for this kernel's tile shape and packing.
/// tract runs the kernel only where its `isa` (AVX-512F) is present.
pub(super) unsafe fn run(ops: &[FusedKerSpec<f32>]) -> isize {
    // SAFETY: the kernel's IsaReq keeps it to CPUs with AVX-512F.
    unsafe { run_avx512(ops) }
}

#[target_feature(enable = "avx512f")]
unsafe fn run_avx512(ops: &[FusedKerSpec<f32>]) -> isize {
    let zero = _mm512_setzero_ps();
    let mut acc: Tile = [[zero; V]; NR];
    for op in ops {
        // SAFETY: each pointer an op carries is valid for the tile, per the function's contract.
        unsafe {
            match *op {
                FusedKerSpec::Done => break,
                FusedKerSpec::Clear => acc = [[zero; V]; NR],
                FusedKerSpec::LoadTile(col_major, _row_major) => {
                    for (j, column) in acc.iter_mut().enumerate() {
                        for (v, x) in column.iter_mut().enumerate() {
                            *x = _mm512_loadu_ps(col_major.add(j * MR + 16 * v));
                        }
                    }
                }
                FusedKerSpec::ScalarMin(s) => each!(acc, splat(s), _mm512_min_ps),
                FusedKerSpec::ScalarMax(s) => each!(acc, splat(s), _mm512_max_ps),
                FusedKerSpec::ScalarAdd(s) => each!(acc, splat(s), _mm512_add_ps),
                FusedKerSpec::ScalarMul(s) => each!(acc, splat(s), _mm512_mul_ps),
                FusedKerSpec::ScalarSub(s) => each!(acc, splat(s), sub),
                FusedKerSpec::ScalarSubF(s) => each!(acc, splat(s), sub_flipped),
                FusedKerSpec::LeakyRelu(alpha) => {
                    let alpha = _mm512_set1_ps(alpha);
                    for column in acc.iter_mut() {
                        for x in column.iter_mut() {
                            *x = leaky_relu(*x, alpha);
                        }
                    }
                }
                FusedKerSpec::PerRowMin(rows) => each!(acc, per_row(rows), _mm512_min_ps),
                FusedKerSpec::PerRowMax(rows) => each!(acc, per_row(rows), _mm512_max_ps),
                FusedKerSpec::PerRowAdd(rows) => each!(acc, per_row(rows), _mm512_add_ps),
                FusedKerSpec::PerRowMul(rows) => each!(acc, per_row(rows), _mm512_mul_ps),
                FusedKerSpec::PerRowSub(rows) => each!(acc, per_row(rows), sub),
                FusedKerSpec::PerRowSubF(rows) => each!(acc, per_row(rows), sub_flipped),
                FusedKerSpec::PerColMin(cols) => each_col!(acc, cols, _mm512_min_ps),
                FusedKerSpec::PerColMax(cols) => each_col!(acc, cols, _mm512_max_ps),
                FusedKerSpec::PerColAdd(cols) => each_col!(acc, cols, _mm512_add_ps),
                FusedKerSpec::PerColMul(cols) => each_col!(acc, cols, _mm512_mul_ps),
                FusedKerSpec::PerColSub(cols) => each_col!(acc, cols, sub),
                FusedKerSpec::PerColSubF(cols) => each_col!(acc, cols, sub_flipped),
                FusedKerSpec::QScale(shift, policy, mult) => {
                    let scale = Scaler::from_fuse_params(shift, policy, mult).scale;
                    each!(acc, splat(scale), _mm512_mul_ps)
                }
                FusedKerSpec::RoundingShiftRight(shift, _) => {
                    each!(acc, splat(2f32.powi(-(shift as i32))), _mm512_mul_ps)
                }
                FusedKerSpec::ShiftLeft(shift) => {
                    each!(acc, splat(2f32.powi(shift as i32)), _mm512_mul_ps)
                }
                FusedKerSpec::AddUnicast(tile) => {
                    for (j, column) in acc.iter_mut().enumerate() {
                        for (x, c) in column.iter_mut().zip(load_column(&tile, j)) {
                            *x = _mm512_add_ps(*x, c);
                        }
                    }
                }
                FusedKerSpec::AddRowColProducts(rows, cols) => {
                    let rows = per_row(rows);
                    for (j, column) in acc.iter_mut().enumerate() {
                        let c = _mm512_set1_ps(*cols.add(j));
                        for (x, r) in column.iter_mut().zip(rows) {
                            *x = _mm512_fmadd_ps(r, c, *x);
                        }
                    }
                }
                FusedKerSpec::Store(tile) => {
                    for (j, column) in acc.iter().enumerate() {
                        store_column(&tile, j, column);
                    }
                }
                FusedKerSpec::AddMatMul { k, pa, pb, .. } => add_mat_mul(&mut acc, k, pa as _, pb as _),
            }
        }
    }
    0
}

#[inline]
#[target_feature(enable = "avx512f")]
fn splat(s: f32) -> Column {
    [_mm512_set1_ps(s); V]
}

/// The tile's `MR` per-row values at `rows`, as a column.
///
/// # Safety
/// `rows` points to `MR` readable f32s.
#[inline]
#[target_feature(enable = "avx512f")]
unsafe fn per_row(rows: *const f32) -> Column {
    // SAFETY: v * 16 + 16 <= MR.
    std::array::from_fn(|v| unsafe { _mm512_loadu_ps(rows.add(16 * v)) })
}

#[inline]
#[target_feature(enable = "avx512f")]
fn leaky_relu(a: __m512, alpha: __m512) -> __m512 {
    let positive = _mm512_cmp_ps_mask::<_CMP_GT_OQ>(a, _mm512_setzero_ps());
    _mm512_mask_blend_ps(positive, _mm512_mul_ps(alpha, a), a)
}

/// Column `j` of a C tile, read through its strides (vector loads where rows are contiguous).
///
/// # Safety
/// `tile` addresses a readable 32×12 tile.
#[inline]
#[target_feature(enable = "avx512f")]
unsafe fn load_column(tile: &OutputStoreKer, j: usize) -> Column {
    unsafe {
        if tile.row_byte_stride == 4 {
            return per_row(at(tile, 0, j));
        }
        let mut column = [0f32; MR];
        for (row, x) in column.iter_mut().enumerate() {
            *x = *at(tile, row, j);
        }
        per_row(column.as_ptr())
    }
}

/// Writes column `j` of the tile through its strides.
///
/// # Safety
/// `tile` addresses a writable 32×12 tile.
#[inline]
#[target_feature(enable = "avx512f")]
unsafe fn store_column(tile: &OutputStoreKer, j: usize, values: &Column) {
    unsafe {
        let contiguous = tile.row_byte_stride == 4;
        let mut column = [0f32; MR];
        let base = if contiguous {
            at(tile, 0, j)
        } else {
            column.as_mut_ptr()
        };
        for (v, x) in values.iter().enumerate() {
            _mm512_storeu_ps(base.add(16 * v), *x);
        }
        if !contiguous {
            for (row, x) in column.iter().enumerate() {
                *at(tile, row, j) = *x;
            }
        }
    }
}

/// `acc += A·B` over `k`: packed A gives a step's 32 rows as two vectors, packed B its 12 columns,
/// each broadcast: 2 loads and 12 broadcasts per 24 FMAs, and a prefetch of A 128 steps ahead.
///
/// # Safety
/// `a` holds `k * MR` and `b` `k * NR` readable f32s.
#[inline]
#[target_feature(enable = "avx512f")]
unsafe fn add_mat_mul(acc: &mut Tile, k: usize, a: *const f32, b: *const f32) {
    // A local copy the loop fully unrolls over: LLVM keeps its 24 vectors in registers (32 zmm).
    let mut c = *acc;
    for i in 0..k {
        // SAFETY: i < k, within the bounds the caller guarantees. The prefetch may point past A's
        // end: a prefetch never faults, and `wrapping_add` keeps the address arithmetic defined.
        unsafe {
            let a = a.add(i * MR);
            _mm_prefetch::<_MM_HINT_T0>(a.wrapping_add(PREFETCH_AHEAD) as *const i8);
            _mm_prefetch::<_MM_HINT_T0>(a.wrapping_add(PREFETCH_AHEAD + 16) as *const i8);
            let rows: Column = std::array::from_fn(|v| _mm512_loadu_ps(a.add(16 * v)));
            let b = b.add(i * NR);
            for (j, column) in c.iter_mut().enumerate() {
                let bj = _mm512_set1_ps(*b.add(j));
                for (x, r) in column.iter_mut().zip(rows) {
                    *x = _mm512_fmadd_ps(r, bj, *x);
                }
            }
        }
    }
    *acc = c;
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::kernel_check;

    #[test]
    fn kernel_matches_plain_loops_for_every_fused_op() {
        if crate::x86_kernels::cpu_runs(NAME, KERNEL_ISA) {
            kernel_check::kernel_matches_plain_loops_for_every_fused_op::<MR, NR>(run_tile);
        }
    }

    #[test]
    fn kernel_loads_a_tile_and_stores_through_any_strides() {
        if crate::x86_kernels::cpu_runs(NAME, KERNEL_ISA) {
            kernel_check::kernel_loads_a_tile_and_stores_through_any_strides::<MR, NR>(run_tile);
        }
    }
}
