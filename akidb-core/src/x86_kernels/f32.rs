//! The f32 kernel: 16×6, prefetching its weight stream well ahead.
//!
//! Why: a sentence's 36 weight products stream all the layers' f32 weights (42.5 MB, more than the L3
//! of most machines) through the kernel once. tract 0.23.9's `fma_mmm_f32_16x6` has the same tile and
//! the same packing, but its loop issues no software prefetch; on the AMD EPYC (Zen 3) of our dev VM it
//! did the 36 products in ≈ 5.3 ms (76% of a 7.0 ms sentence, `perf record`), this kernel in ≈ 4 ms
//! (akidb-core/PERF.md has the measurements).
//!
//! Accumulators hold columns (lanes are rows), as in tract's x86 kernels: column `j` of the tile is
//! `acc[j]`, rows 0–7 in `.0` and rows 8–15 in `.1`. The fused ops are tract's; each is checked
//! against plain loops by [`crate::kernel_check`].

use std::arch::x86_64::*;

use tract_onnx::tract_core::tract_linalg::isa::Arch;
use tract_onnx::tract_core::tract_linalg::mmm::{DynKernel, FusedKerSpec, OutputStoreKer};
use tract_onnx::tract_core::tract_linalg::pack::Packing;
use tract_onnx::tract_core::tract_linalg::Scaler;

/// The kernel's name, as `Embedder::matmul_kernels` reports it.
pub const NAME: &str = "akidb_avx2_f32_16x6";

/// Rows of a tile: two 8-lane vectors.
pub const MR: usize = 16;
/// Columns of a tile.
pub const NR: usize = 6;

/// How far ahead of the current step the A (weight) stream is prefetched, in f32s: 256 steps of 16
/// rows, 16 KB, two thirds of a 384-deep panel. In `akidb bench` (fp32 bundle, single-sentence p50 of
/// 4 interleaved rounds, PERF.md): no prefetch 6.4–7.3 ms, 512 → 5.2–5.4, 4096 → 4.5–5.3.
const PREFETCH_AHEAD: usize = 4096;

crate::kernel_registration::register_kernel!(f32, || {
    let mut kernel = DynKernel::<MR, NR, f32>::new(NAME, run, f32::packing(MR).align(256), f32::packing(NR))
        .with_isa(super::KERNEL_ISA);
    kernel.arch = Some(Arch::X86_64);
    kernel
});

/// The accumulators: column `j` of the tile is `acc[j]`, rows 0–7 in `.0` and rows 8–15 in `.1`.
type Tile = [(__m256, __m256); NR];

/// The address of element (`row`, `col`) of a C tile.
#[inline(always)]
fn at(tile: &OutputStoreKer, row: usize, col: usize) -> *mut f32 {
    tile.ptr
        .wrapping_offset(tile.row_byte_stride * row as isize + tile.col_byte_stride * col as isize)
        as *mut f32
}

/// `acc = $op(v, acc)` for every accumulator, `$v` being a pair of vectors for rows 0–7 and 8–15: a
/// splatted scalar twice, or the 16 per-row values.
macro_rules! each {
    ($acc:expr, $v:expr, $op:ident) => {{
        let (vlo, vhi) = $v;
        for (lo, hi) in $acc.iter_mut() {
            *lo = $op(vlo, *lo);
            *hi = $op(vhi, *hi);
        }
    }};
}

/// `acc[j] = $op(splat(cols[j]), acc[j])` for every column `j`.
macro_rules! each_col {
    ($acc:expr, $cols:expr, $op:ident) => {{
        for (j, (lo, hi)) in $acc.iter_mut().enumerate() {
            let c = _mm256_set1_ps(*$cols.add(j));
            *lo = $op(c, *lo);
            *hi = $op(c, *hi);
        }
    }};
}

/// `v - a`, `v` being the op's operand and `a` the accumulator, in the order `each!` passes them.
#[inline]
#[target_feature(enable = "avx2,fma")]
fn sub(v: __m256, a: __m256) -> __m256 {
    _mm256_sub_ps(v, a)
}

/// `a - v`: the flipped subtraction.
#[inline]
#[target_feature(enable = "avx2,fma")]
fn sub_flipped(v: __m256, a: __m256) -> __m256 {
    _mm256_sub_ps(a, v)
}

/// Runs one tile's program of fused ops.
///
/// # Safety
/// tract's contract for kernels: the ops' pointers are valid for this kernel's tile shape and packing.
/// tract runs the kernel only where its `isa` (AVX2 + FMA) is present.
pub(super) unsafe fn run(ops: &[FusedKerSpec<f32>]) -> isize {
    // SAFETY: the kernel's IsaReq keeps it to CPUs with AVX2 and FMA.
    unsafe { run_avx2(ops) }
}

#[target_feature(enable = "avx2,fma")]
unsafe fn run_avx2(ops: &[FusedKerSpec<f32>]) -> isize {
    let zero = _mm256_setzero_ps();
    let mut acc: Tile = [(zero, zero); NR];
    for op in ops {
        // SAFETY: each pointer an op carries is valid for the tile, per the function's contract.
        unsafe {
            match *op {
                FusedKerSpec::Done => break,
                FusedKerSpec::Clear => acc = [(zero, zero); NR],
                FusedKerSpec::LoadTile(col_major, _row_major) => {
                    for (j, (lo, hi)) in acc.iter_mut().enumerate() {
                        *lo = _mm256_loadu_ps(col_major.add(j * MR));
                        *hi = _mm256_loadu_ps(col_major.add(j * MR + 8));
                    }
                }
                FusedKerSpec::ScalarMin(s) => each!(acc, splat2(s), _mm256_min_ps),
                FusedKerSpec::ScalarMax(s) => each!(acc, splat2(s), _mm256_max_ps),
                FusedKerSpec::ScalarAdd(s) => each!(acc, splat2(s), _mm256_add_ps),
                FusedKerSpec::ScalarMul(s) => each!(acc, splat2(s), _mm256_mul_ps),
                FusedKerSpec::ScalarSub(s) => each!(acc, splat2(s), sub),
                FusedKerSpec::ScalarSubF(s) => each!(acc, splat2(s), sub_flipped),
                FusedKerSpec::LeakyRelu(alpha) => {
                    let alpha = _mm256_set1_ps(alpha);
                    for (lo, hi) in acc.iter_mut() {
                        *lo = leaky_relu(*lo, alpha);
                        *hi = leaky_relu(*hi, alpha);
                    }
                }
                FusedKerSpec::PerRowMin(rows) => each!(acc, rows2(rows), _mm256_min_ps),
                FusedKerSpec::PerRowMax(rows) => each!(acc, rows2(rows), _mm256_max_ps),
                FusedKerSpec::PerRowAdd(rows) => each!(acc, rows2(rows), _mm256_add_ps),
                FusedKerSpec::PerRowMul(rows) => each!(acc, rows2(rows), _mm256_mul_ps),
                FusedKerSpec::PerRowSub(rows) => each!(acc, rows2(rows), sub),
                FusedKerSpec::PerRowSubF(rows) => each!(acc, rows2(rows), sub_flipped),
                FusedKerSpec::PerColMin(cols) => each_col!(acc, cols, _mm256_min_ps),
                FusedKerSpec::PerColMax(cols) => each_col!(acc, cols, _mm256_max_ps),
                FusedKerSpec::PerColAdd(cols) => each_col!(acc, cols, _mm256_add_ps),
                FusedKerSpec::PerColMul(cols) => each_col!(acc, cols, _mm256_mul_ps),
                FusedKerSpec::PerColSub(cols) => each_col!(acc, cols, sub),
                FusedKerSpec::PerColSubF(cols) => each_col!(acc, cols, sub_flipped),
                FusedKerSpec::QScale(shift, policy, mult) => {
                    let scale = Scaler::from_fuse_params(shift, policy, mult).scale;
                    each!(acc, splat2(scale), _mm256_mul_ps)
                }
                FusedKerSpec::RoundingShiftRight(shift, _) => {
                    each!(acc, splat2(2f32.powi(-(shift as i32))), _mm256_mul_ps)
                }
                FusedKerSpec::ShiftLeft(shift) => {
                    each!(acc, splat2(2f32.powi(shift as i32)), _mm256_mul_ps)
                }
                FusedKerSpec::AddUnicast(tile) => {
                    for (j, (lo, hi)) in acc.iter_mut().enumerate() {
                        let (clo, chi) = load_column(&tile, j);
                        *lo = _mm256_add_ps(*lo, clo);
                        *hi = _mm256_add_ps(*hi, chi);
                    }
                }
                FusedKerSpec::AddRowColProducts(rows, cols) => {
                    let (rlo, rhi) = rows2(rows);
                    for (j, (lo, hi)) in acc.iter_mut().enumerate() {
                        let c = _mm256_set1_ps(*cols.add(j));
                        *lo = _mm256_fmadd_ps(rlo, c, *lo);
                        *hi = _mm256_fmadd_ps(rhi, c, *hi);
                    }
                }
                FusedKerSpec::Store(tile) => {
                    for (j, (lo, hi)) in acc.iter().enumerate() {
                        store_column(&tile, j, *lo, *hi);
                    }
                }
                FusedKerSpec::AddMatMul { k, pa, pb, .. } => add_mat_mul(&mut acc, k, pa as _, pb as _),
            }
        }
    }
    0
}

#[inline]
#[target_feature(enable = "avx2,fma")]
fn splat2(s: f32) -> (__m256, __m256) {
    let v = _mm256_set1_ps(s);
    (v, v)
}

/// The 16 per-row values at `rows`, as two vectors.
///
/// # Safety
/// `rows` points to `MR` readable f32s.
#[inline]
#[target_feature(enable = "avx2,fma")]
unsafe fn rows2(rows: *const f32) -> (__m256, __m256) {
    unsafe { (_mm256_loadu_ps(rows), _mm256_loadu_ps(rows.add(8))) }
}

#[inline]
#[target_feature(enable = "avx2,fma")]
fn leaky_relu(a: __m256, alpha: __m256) -> __m256 {
    let positive = _mm256_cmp_ps::<_CMP_GT_OQ>(a, _mm256_setzero_ps());
    _mm256_blendv_ps(_mm256_mul_ps(alpha, a), a, positive)
}

/// Column `j` of a C tile, read through its strides (one vector load per half where rows are
/// contiguous).
///
/// # Safety
/// `tile` addresses a readable 16×6 tile.
#[inline]
#[target_feature(enable = "avx2,fma")]
unsafe fn load_column(tile: &OutputStoreKer, j: usize) -> (__m256, __m256) {
    unsafe {
        if tile.row_byte_stride == 4 {
            let p = at(tile, 0, j);
            return (_mm256_loadu_ps(p), _mm256_loadu_ps(p.add(8)));
        }
        let mut column = [0f32; MR];
        for (row, x) in column.iter_mut().enumerate() {
            *x = *at(tile, row, j);
        }
        (
            _mm256_loadu_ps(column.as_ptr()),
            _mm256_loadu_ps(column.as_ptr().add(8)),
        )
    }
}

/// Writes column `j` of the tile through its strides.
///
/// # Safety
/// `tile` addresses a writable 16×6 tile.
#[inline]
#[target_feature(enable = "avx2,fma")]
unsafe fn store_column(tile: &OutputStoreKer, j: usize, lo: __m256, hi: __m256) {
    unsafe {
        if tile.row_byte_stride == 4 {
            let p = at(tile, 0, j);
            _mm256_storeu_ps(p, lo);
            _mm256_storeu_ps(p.add(8), hi);
            return;
        }
        let mut column = [0f32; MR];
        _mm256_storeu_ps(column.as_mut_ptr(), lo);
        _mm256_storeu_ps(column.as_mut_ptr().add(8), hi);
        for (row, x) in column.iter().enumerate() {
            *at(tile, row, j) = *x;
        }
    }
}

/// `acc += A·B` over `k`: packed A gives the 16 rows of a step as two vectors, packed B its 6 columns,
/// each broadcast: 2 loads and 6 broadcasts per 12 FMAs, and a prefetch of A 256 steps ahead.
///
/// # Safety
/// `a` holds `k * MR` and `b` `k * NR` readable f32s.
#[inline]
#[target_feature(enable = "avx2,fma")]
unsafe fn add_mat_mul(acc: &mut Tile, k: usize, a: *const f32, b: *const f32) {
    // Twelve named accumulators rather than the array keep each in a register through the loop.
    let [(mut c0l, mut c0h), (mut c1l, mut c1h), (mut c2l, mut c2h), (mut c3l, mut c3h), (mut c4l, mut c4h), (mut c5l, mut c5h)] =
        *acc;
    for i in 0..k {
        // SAFETY: i < k, within the bounds the caller guarantees. The prefetch may point past A's
        // end: a prefetch never faults, and `wrapping_add` keeps the address arithmetic defined.
        unsafe {
            let a = a.add(i * MR);
            _mm_prefetch::<_MM_HINT_T0>(a.wrapping_add(PREFETCH_AHEAD) as *const i8);
            let (al, ah) = (_mm256_loadu_ps(a), _mm256_loadu_ps(a.add(8)));
            let b = b.add(i * NR);
            let b0 = _mm256_broadcast_ss(&*b);
            c0l = _mm256_fmadd_ps(al, b0, c0l);
            c0h = _mm256_fmadd_ps(ah, b0, c0h);
            let b1 = _mm256_broadcast_ss(&*b.add(1));
            c1l = _mm256_fmadd_ps(al, b1, c1l);
            c1h = _mm256_fmadd_ps(ah, b1, c1h);
            let b2 = _mm256_broadcast_ss(&*b.add(2));
            c2l = _mm256_fmadd_ps(al, b2, c2l);
            c2h = _mm256_fmadd_ps(ah, b2, c2h);
            let b3 = _mm256_broadcast_ss(&*b.add(3));
            c3l = _mm256_fmadd_ps(al, b3, c3l);
            c3h = _mm256_fmadd_ps(ah, b3, c3h);
            let b4 = _mm256_broadcast_ss(&*b.add(4));
            c4l = _mm256_fmadd_ps(al, b4, c4l);
            c4h = _mm256_fmadd_ps(ah, b4, c4h);
            let b5 = _mm256_broadcast_ss(&*b.add(5));
            c5l = _mm256_fmadd_ps(al, b5, c5l);
            c5h = _mm256_fmadd_ps(ah, b5, c5h);
        }
    }
    *acc = [
        (c0l, c0h),
        (c1l, c1h),
        (c2l, c2h),
        (c3l, c3h),
        (c4l, c4h),
        (c5l, c5h),
    ];
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::kernel_check;

    #[test]
    fn kernel_matches_plain_loops_for_every_fused_op() {
        if crate::x86_kernels::cpu_runs(NAME, crate::x86_kernels::KERNEL_ISA) {
            kernel_check::kernel_matches_plain_loops_for_every_fused_op::<MR, NR>(run_tile);
        }
    }

    #[test]
    fn kernel_loads_a_tile_and_stores_through_any_strides() {
        if crate::x86_kernels::cpu_runs(NAME, crate::x86_kernels::KERNEL_ISA) {
            kernel_check::kernel_loads_a_tile_and_stores_through_any_strides::<MR, NR>(run_tile);
        }
    }
}
