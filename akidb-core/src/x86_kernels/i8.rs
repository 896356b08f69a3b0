//! The integer kernel: int8 × int8 → i32, 8×4, exact, on AVX2 without a dot-product instruction.
//!
//! Why: tract 0.23.9's AVX2 int8 kernel (`avx2_mmm_i32_8x8`) spends about 450 cycles per step on the
//! AMD EPYC (Zen 3) of our dev VM — 91% of its samples on a legacy-SSE `movq` and the VEX instruction
//! after it — so an `int8-dynamic` bundle took 314 ms a sentence there, and akidb kept such CPUs on
//! the f32 path. This kernel does the same exact arithmetic in ≈ 2 ms for the 36 products of a
//! sentence (PERF.md).
//!
//! A comes packed four `k` at a time per row (tract's `PackedI8K4`, the layout its VNNI kernels read),
//! B the same way per column but widened to 16 bits when packed (`crate::packing::PackedI8Groups`,
//! as the wasm int8 kernel reads it): a step of 4 `k` is 32 bytes of A (8 rows) and 32 of B (4
//! columns). Each step sign-extends A to 16-bit (two vectors of 4 rows × 4 `k`), broadcasts each
//! column's 4 values to all four 64-bit lanes straight from memory (`vpbroadcastq`: no extension and no
//! cross-lane permute per column, which share a port with `vpmaddwd`), and multiplies with `vpmaddwd`,
//! which adds pairs into 32-bit lanes: exact for every int8 value (|a·b + c·d| ≤ 2¹⁵), unlike
//! `vpmaddubsw`, which saturates. Each accumulator lane holds half of a row's sum; the halves are added
//! once, after the loop.
//!
//! Fused ops other than the product are `crate::i32_tile`'s, shared with the wasm int8 kernel.

use std::arch::x86_64::*;

use tract_onnx::prelude::DatumType;
use tract_onnx::tract_core::tract_linalg::isa::Arch;
use tract_onnx::tract_core::tract_linalg::mmm::{DynKernel, FusedKerSpec};
use tract_onnx::tract_core::tract_linalg::pack::{PackedFormat, PackedI8K4};

use crate::packing::PackedI8Groups;

/// The kernel's name, as `Embedder::matmul_kernels` reports it.
pub const NAME: &str = "akidb_avx2_i32_8x4";

/// Rows of a tile.
pub const MR: usize = 8;
/// Columns of a tile.
pub const NR: usize = 4;

/// How far ahead the A stream is prefetched, in bytes: as far as the f32 kernel's (16 KB).
const PREFETCH_AHEAD: usize = 16 * 1024;

crate::kernel_registration::register_kernel!(i32, || {
    // Packing 0 (i32 × i32) is tract's convention for an i32 kernel; packing 1 is the int8 one.
    let mut kernel = DynKernel::<MR, NR, i32>::new(
        NAME,
        run,
        PackedFormat::new(DatumType::I32, MR, 32),
        PackedFormat::new(DatumType::I32, NR, 4),
    )
    .with_packing(PackedI8K4::new(MR), PackedI8Groups::widened(NR, 4))
    .with_isa(super::KERNEL_ISA);
    kernel.arch = Some(Arch::X86_64);
    kernel
});

/// The tile between ops (`i32_tile`'s, at this kernel's shape).
type Tile = crate::i32_tile::Tile<MR, NR>;

/// Runs one tile's program of fused ops; 1 for a packing or store size this kernel doesn't have.
///
/// # Safety
/// tract's contract for kernels: the ops' pointers are valid for this kernel's tile shape and packing.
/// tract runs the kernel only where its `isa` (AVX2 + FMA) is present.
pub(super) unsafe fn run(ops: &[FusedKerSpec<i32>]) -> isize {
    // SAFETY: the contract above, and `add_mat_mul_i8` needs only AVX2, which the kernel's isa has.
    unsafe { crate::i32_tile::run::<MR, NR, _>(ops, add_mat_mul_i8) }
}

/// `tile += A·B`, A packed by [`PackedI8K4`], B by [`PackedI8Groups::widened`]`(NR, 4)`: `k` rounded up to a multiple
/// of 4, the padding zeros.
///
/// # Safety
/// `a` holds `k.div_ceil(4) * 4 * MR` readable bytes and `b` `k.div_ceil(4) * 4 * NR` readable i16s;
/// AVX2 is present.
#[target_feature(enable = "avx2,fma")]
unsafe fn add_mat_mul_i8(tile: &mut Tile, k: usize, a: *const i8, b: *const i16) {
    let zero = _mm256_setzero_si256();
    // Column j's accumulators: rows 0–3 in `cjl`, rows 4–7 in `cjh`, each row as two partial sums.
    let (mut c0l, mut c0h, mut c1l, mut c1h) = (zero, zero, zero, zero);
    let (mut c2l, mut c2h, mut c3l, mut c3h) = (zero, zero, zero, zero);
    for step in 0..k.div_ceil(4) {
        // SAFETY: step < k.div_ceil(4), within the bounds the caller guarantees. The prefetch may
        // point past A's end: a prefetch never faults, and `wrapping_add` keeps the arithmetic defined.
        unsafe {
            let a = a.add(step * MR * 4);
            _mm_prefetch::<_MM_HINT_T0>(a.wrapping_add(PREFETCH_AHEAD));
            let raw = _mm256_loadu_si256(a as *const __m256i);
            let a_lo = _mm256_cvtepi8_epi16(_mm256_castsi256_si128(raw));
            let a_hi = _mm256_cvtepi8_epi16(_mm256_extracti128_si256::<1>(raw));
            let b = b.add(step * NR * 4);
            // Column j's 4 values in every 64-bit lane: one broadcast load (`vpbroadcastq`). A macro, not
            // a closure: the intrinsic must inline into this function, which enables AVX2.
            macro_rules! column {
                ($j:expr) => {
                    _mm256_set1_epi64x((b.add($j * 4) as *const i64).read_unaligned())
                };
            }
            let b0 = column!(0);
            c0l = _mm256_add_epi32(c0l, _mm256_madd_epi16(a_lo, b0));
            c0h = _mm256_add_epi32(c0h, _mm256_madd_epi16(a_hi, b0));
            let b1 = column!(1);
            c1l = _mm256_add_epi32(c1l, _mm256_madd_epi16(a_lo, b1));
            c1h = _mm256_add_epi32(c1h, _mm256_madd_epi16(a_hi, b1));
            let b2 = column!(2);
            c2l = _mm256_add_epi32(c2l, _mm256_madd_epi16(a_lo, b2));
            c2h = _mm256_add_epi32(c2h, _mm256_madd_epi16(a_hi, b2));
            let b3 = column!(3);
            c3l = _mm256_add_epi32(c3l, _mm256_madd_epi16(a_lo, b3));
            c3h = _mm256_add_epi32(c3h, _mm256_madd_epi16(a_hi, b3));
        }
    }
    for (column, (lo, hi)) in tile
        .iter_mut()
        .zip([(c0l, c0h), (c1l, c1h), (c2l, c2h), (c3l, c3h)])
    {
        // hadd gives rows [0, 1, 4, 5 | 2, 3, 6, 7]; the permute puts the 64-bit pairs in row order.
        let sums = _mm256_permute4x64_epi64::<0xD8>(_mm256_hadd_epi32(lo, hi));
        let mut rows = [0i32; MR];
        // SAFETY: `rows` holds 8 i32s.
        unsafe { _mm256_storeu_si256(rows.as_mut_ptr() as *mut __m256i, sums) };
        for (x, r) in column.iter_mut().zip(rows) {
            *x = x.wrapping_add(r);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::kernel_check::int8 as suite;

    #[test]
    fn int8_product_is_exact() {
        if crate::x86_kernels::cpu_runs(NAME, crate::x86_kernels::KERNEL_ISA) {
            suite::int8_product_is_exact::<MR, NR>(run_tile, int8_packing());
        }
    }

    #[test]
    fn i32_product_and_fused_ops_match_plain_loops() {
        if crate::x86_kernels::cpu_runs(NAME, crate::x86_kernels::KERNEL_ISA) {
            suite::i32_product_and_fused_ops_match_plain_loops::<MR, NR>(run_tile);
        }
    }

    #[test]
    fn tiles_load_add_and_store_through_strides() {
        if crate::x86_kernels::cpu_runs(NAME, crate::x86_kernels::KERNEL_ISA) {
            suite::tiles_load_add_and_store_through_strides::<MR, NR>(run_tile);
        }
    }
}
