//! The integer kernel: int8 × int8 → i32, 8×4, exact, on AVX2 without a dot-product instruction.
//!
//! Why: tract 0.23.9's AVX2 int8 kernel (`avx2_mmm_i32_8x8`) spends about 450 cycles per step on the
//! AMD EPYC (Zen 3) of our dev VM — 91% of its samples on a legacy-SSE `movq` and the VEX instruction
//! after it — so an `int8-dynamic` bundle took 314 ms a sentence there, and akidb kept such CPUs on
//! the f32 path. This kernel does the same exact arithmetic in ≈ 2 ms for the 36 products of a
//! sentence (PERF.md).
//!
//! Operands come packed four `k` at a time per row or column (tract's `PackedI8K4`, the layout its
//! VNNI kernels read): a step of 4 `k` is 32 bytes of A (8 rows) and 16 of B (4 columns). Each step
//! sign-extends A to 16-bit (two vectors of 4 rows × 4 `k`) and B likewise, broadcasts each column's
//! 4 values to all four 64-bit lanes, and multiplies with `vpmaddwd`, which adds pairs into 32-bit
//! lanes: exact for every int8 value (|a·b + c·d| ≤ 2¹⁵), unlike `vpmaddubsw`, which saturates. Each
//! accumulator lane holds half of a row's sum; the halves are added once, after the loop.
//!
//! Fused ops other than the product run on a plain `[[i32; 8]; 4]` tile with tract's own rounding
//! helpers: the integer path fuses none (its epilogue is akidb's `DequantRows`), so they are there for
//! other quantised models, not for speed.

use std::arch::x86_64::*;
use std::sync::LazyLock;

use tract_onnx::prelude::DatumType;
use tract_onnx::tract_core::tract_linalg::isa::Arch;
use tract_onnx::tract_core::tract_linalg::mmm::{DynKernel, FusedKerSpec, MatMatMul, OutputStoreKer};
use tract_onnx::tract_core::tract_linalg::mmm_routines::MmmRoutine;
use tract_onnx::tract_core::tract_linalg::pack::{PackedFormat, PackedI8K4};
use tract_onnx::tract_core::tract_linalg::{ScaleShiftAndRound, Scaler};

/// The kernel's name, as `Embedder::matmul_kernels` reports it.
pub const NAME: &str = "akidb_avx2_i32_8x4";

/// Rows of a tile.
pub const MR: usize = 8;
/// Columns of a tile.
pub const NR: usize = 4;

/// How far ahead the A stream is prefetched, in bytes: as far as the f32 kernel's (16 KB).
const PREFETCH_AHEAD: usize = 16 * 1024;

static KERNEL: LazyLock<DynKernel<MR, NR, i32>> = LazyLock::new(|| {
    // Packing 0 (i32 × i32) is tract's convention for an i32 kernel; packing 1 is the int8 one.
    let mut kernel = DynKernel::<MR, NR, i32>::new(
        NAME,
        run,
        PackedFormat::new(DatumType::I32, MR, 32),
        PackedFormat::new(DatumType::I32, NR, 4),
    )
    .with_packing(PackedI8K4::new(MR), PackedI8K4::new(NR))
    .with_isa(super::KERNEL_ISA);
    kernel.arch = Some(Arch::X86_64);
    kernel
});

inventory::submit! {
    MmmRoutine { make: || -> Box<dyn MatMatMul> { KERNEL.mmm() } }
}

/// Runs the kernel on one tile's program of fused ops: public for the kernel's test only.
///
/// # Safety
/// As for any tract kernel: the ops' pointers are valid for an 8×4 tile and the packing the
/// `AddMatMul` names; the CPU has AVX2.
#[doc(hidden)]
pub unsafe fn run_tile(ops: &[FusedKerSpec<i32>]) -> isize {
    unsafe { run(ops) }
}

/// The tile between ops, column-major: `tile[j][i]` is row `i` of column `j`.
type Tile = [[i32; MR]; NR];

/// The address of element (`row`, `col`) of a C tile.
#[inline(always)]
fn at(tile: &OutputStoreKer, row: usize, col: usize) -> *mut u8 {
    tile.ptr
        .wrapping_offset(tile.row_byte_stride * row as isize + tile.col_byte_stride * col as isize)
}

/// `x = op(x, s)` on every element.
fn each(tile: &mut Tile, op: impl Fn(i32) -> i32) {
    tile.iter_mut().flatten().for_each(|x| *x = op(*x));
}

/// `x = op(x, v[row])` (`per_row`) or `op(x, v[col])` on every element.
///
/// # Safety
/// `v` points to `MR` (per row) or `NR` readable i32s.
unsafe fn each_with(tile: &mut Tile, v: *const i32, per_row: bool, op: impl Fn(i32, i32) -> i32) {
    for (j, column) in tile.iter_mut().enumerate() {
        for (i, x) in column.iter_mut().enumerate() {
            *x = op(*x, unsafe { *v.add(if per_row { i } else { j }) });
        }
    }
}

/// Runs one tile's program of fused ops; 1 for a packing or store size this kernel doesn't have.
///
/// # Safety
/// tract's contract for kernels: the ops' pointers are valid for this kernel's tile shape and packing.
/// tract runs the kernel only where its `isa` (AVX2 + FMA) is present.
pub(super) unsafe fn run(ops: &[FusedKerSpec<i32>]) -> isize {
    let mut tile: Tile = [[0; MR]; NR];
    for op in ops {
        // SAFETY: each pointer an op carries is valid for the tile, per the function's contract.
        unsafe {
            match *op {
                FusedKerSpec::Done => break,
                FusedKerSpec::Clear => tile = [[0; MR]; NR],
                FusedKerSpec::LoadTile(col_major, _row_major) => {
                    for (j, column) in tile.iter_mut().enumerate() {
                        for (i, x) in column.iter_mut().enumerate() {
                            *x = *col_major.add(j * MR + i);
                        }
                    }
                }
                FusedKerSpec::ScalarMin(s) => each(&mut tile, |x| x.min(s)),
                FusedKerSpec::ScalarMax(s) => each(&mut tile, |x| x.max(s)),
                FusedKerSpec::ScalarAdd(s) => each(&mut tile, |x| x.wrapping_add(s)),
                FusedKerSpec::ScalarMul(s) => each(&mut tile, |x| x.wrapping_mul(s)),
                FusedKerSpec::ScalarSub(s) => each(&mut tile, |x| s.wrapping_sub(x)),
                FusedKerSpec::ScalarSubF(s) => each(&mut tile, |x| x.wrapping_sub(s)),
                FusedKerSpec::LeakyRelu(alpha) => {
                    each(&mut tile, |x| if x > 0 { x } else { alpha.wrapping_mul(x) })
                }
                FusedKerSpec::PerRowMin(v) => each_with(&mut tile, v, true, i32::min),
                FusedKerSpec::PerRowMax(v) => each_with(&mut tile, v, true, i32::max),
                FusedKerSpec::PerRowAdd(v) => each_with(&mut tile, v, true, i32::wrapping_add),
                FusedKerSpec::PerRowMul(v) => each_with(&mut tile, v, true, i32::wrapping_mul),
                FusedKerSpec::PerRowSub(v) => each_with(&mut tile, v, true, |x, r| r.wrapping_sub(x)),
                FusedKerSpec::PerRowSubF(v) => each_with(&mut tile, v, true, i32::wrapping_sub),
                FusedKerSpec::PerColMin(v) => each_with(&mut tile, v, false, i32::min),
                FusedKerSpec::PerColMax(v) => each_with(&mut tile, v, false, i32::max),
                FusedKerSpec::PerColAdd(v) => each_with(&mut tile, v, false, i32::wrapping_add),
                FusedKerSpec::PerColMul(v) => each_with(&mut tile, v, false, i32::wrapping_mul),
                FusedKerSpec::PerColSub(v) => each_with(&mut tile, v, false, |x, c| c.wrapping_sub(x)),
                FusedKerSpec::PerColSubF(v) => each_with(&mut tile, v, false, i32::wrapping_sub),
                FusedKerSpec::QScale(shift, policy, mult) => {
                    let scaler = Scaler::from_fuse_params(shift, policy, mult);
                    each(&mut tile, |x| x.q_scale(scaler))
                }
                FusedKerSpec::RoundingShiftRight(shift, policy) => {
                    each(&mut tile, |x| x.q_shr(shift, policy))
                }
                FusedKerSpec::ShiftLeft(shift) => each(&mut tile, |x| x.q_shl(shift)),
                FusedKerSpec::AddUnicast(other) => {
                    for (j, column) in tile.iter_mut().enumerate() {
                        for (i, x) in column.iter_mut().enumerate() {
                            let p = at(&other, i, j);
                            let v = match other.item_size {
                                1 => *(p as *const i8) as i32,
                                4 => (p as *const i32).read_unaligned(),
                                _ => return 1,
                            };
                            *x = x.wrapping_add(v);
                        }
                    }
                }
                FusedKerSpec::AddRowColProducts(rows, cols) => {
                    for (j, column) in tile.iter_mut().enumerate() {
                        for (i, x) in column.iter_mut().enumerate() {
                            *x = x.wrapping_add((*rows.add(i)).wrapping_mul(*cols.add(j)));
                        }
                    }
                }
                FusedKerSpec::Store(out) => {
                    for (j, column) in tile.iter().enumerate() {
                        for (i, x) in column.iter().enumerate() {
                            let p = at(&out, i, j);
                            match out.item_size {
                                // A narrower store keeps the low bytes, as tract's kernels do.
                                1 => *p = *x as u8,
                                4 => (p as *mut i32).write_unaligned(*x),
                                _ => return 1,
                            }
                        }
                    }
                }
                FusedKerSpec::AddMatMul { k, pa, pb, packing } => match packing {
                    0 => add_mat_mul_i32(&mut tile, k, pa as _, pb as _),
                    1 => add_mat_mul_i8(&mut tile, k, pa as _, pb as _),
                    _ => return 1,
                },
            }
        }
    }
    0
}

/// `tile += A·B` for i32 operands packed k-major (tract's packing 0 for i32 kernels): plain loops.
///
/// # Safety
/// `a` holds `k * MR` and `b` `k * NR` readable i32s.
unsafe fn add_mat_mul_i32(tile: &mut Tile, k: usize, a: *const i32, b: *const i32) {
    for step in 0..k {
        for (j, column) in tile.iter_mut().enumerate() {
            let bj = unsafe { *b.add(step * NR + j) };
            for (i, x) in column.iter_mut().enumerate() {
                *x = x.wrapping_add(unsafe { *a.add(step * MR + i) }.wrapping_mul(bj));
            }
        }
    }
}

/// `tile += A·B` for int8 operands packed by [`PackedI8K4`]: `k` rounded up to a multiple of 4, the
/// padding zeros.
///
/// # Safety
/// `a` holds `k.div_ceil(4) * 4 * MR` and `b` `k.div_ceil(4) * 4 * NR` readable bytes; AVX2 is present.
#[target_feature(enable = "avx2,fma")]
unsafe fn add_mat_mul_i8(tile: &mut Tile, k: usize, a: *const i8, b: *const i8) {
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
            let bs = _mm256_cvtepi8_epi16(_mm_loadu_si128(b.add(step * NR * 4) as *const __m128i));
            let b0 = _mm256_permute4x64_epi64::<0x00>(bs);
            c0l = _mm256_add_epi32(c0l, _mm256_madd_epi16(a_lo, b0));
            c0h = _mm256_add_epi32(c0h, _mm256_madd_epi16(a_hi, b0));
            let b1 = _mm256_permute4x64_epi64::<0x55>(bs);
            c1l = _mm256_add_epi32(c1l, _mm256_madd_epi16(a_lo, b1));
            c1h = _mm256_add_epi32(c1h, _mm256_madd_epi16(a_hi, b1));
            let b2 = _mm256_permute4x64_epi64::<0xAA>(bs);
            c2l = _mm256_add_epi32(c2l, _mm256_madd_epi16(a_lo, b2));
            c2h = _mm256_add_epi32(c2h, _mm256_madd_epi16(a_hi, b2));
            let b3 = _mm256_permute4x64_epi64::<0xFF>(bs);
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
    use tract_onnx::tract_core::tract_linalg::mmm::RoundingPolicy;

    /// Deterministic int8 values spread over the whole range, starting with −128 and 127.
    fn bytes(n: usize, seed: u32) -> Vec<i8> {
        let mut v: Vec<i8> = (0..n as u32)
            .map(|i| (i.wrapping_mul(2654435761).wrapping_add(seed.wrapping_mul(40503)) >> 13) as u8 as i8)
            .collect();
        v.iter_mut().zip([-128, 127]).for_each(|(x, e)| *x = e);
        v
    }

    /// Packs a row-major `[mn][k]` int8 matrix as `PackedI8K4` does for one panel.
    fn pack_k4(m: &[Vec<i8>], k: usize) -> Vec<i8> {
        let kp = k.div_ceil(4) * 4;
        let mut out = vec![0i8; kp * m.len()];
        for (r, row) in m.iter().enumerate() {
            for (kk, v) in row.iter().enumerate() {
                out[(kk / 4) * m.len() * 4 + r * 4 + kk % 4] = *v;
            }
        }
        out
    }

    /// Runs `ops` (with `Store` into a row-major tile appended) and returns that tile.
    fn run_and_store(mut ops: Vec<FusedKerSpec<i32>>) -> [[i32; NR]; MR] {
        let mut out = [[i32::MIN; NR]; MR];
        ops.push(FusedKerSpec::Store(OutputStoreKer {
            ptr: out.as_mut_ptr() as *mut u8,
            row_byte_stride: (NR * 4) as isize,
            col_byte_stride: 4,
            item_size: 4,
        }));
        ops.push(FusedKerSpec::Done);
        // SAFETY: every pointer in `ops` covers the 8×4 tile and its packed operands.
        assert_eq!(unsafe { run_tile(&ops) }, 0);
        out
    }

    /// The int8 product against plain i32 loops, for `k` not a multiple of 4 (the packing's zero
    /// padding), with extreme values (−128 · −128 sums that `vpmaddubsw` would saturate).
    #[test]
    fn int8_product_is_exact() {
        if !crate::x86_kernels::cpu_runs(NAME) {
            return;
        }
        for k in [1, 4, 37, 384] {
            let mut a: Vec<Vec<i8>> = (0..MR).map(|r| bytes(k, r as u32 + 1)).collect();
            let mut b: Vec<Vec<i8>> = (0..NR).map(|c| bytes(k, c as u32 + 100)).collect();
            // A row of −128 against a column of −128: the largest products there are.
            a[0].iter_mut().for_each(|x| *x = -128);
            b[0].iter_mut().for_each(|x| *x = -128);
            let (pa, pb) = (pack_k4(&a, k), pack_k4(&b, k));
            let got = run_and_store(vec![
                FusedKerSpec::Clear,
                FusedKerSpec::AddMatMul {
                    k,
                    pa: pa.as_ptr() as _,
                    pb: pb.as_ptr() as _,
                    packing: 1,
                },
            ]);
            for (i, row) in got.iter().enumerate() {
                for (j, x) in row.iter().enumerate() {
                    let want: i32 = (0..k).map(|kk| a[i][kk] as i32 * b[j][kk] as i32).sum();
                    assert_eq!(*x, want, "k {k}: C[{i}][{j}]");
                }
            }
        }
    }

    /// The i32 × i32 packing and the epilogue ops, through tract's rounding helpers where tract's
    /// kernels use them.
    #[test]
    fn i32_product_and_fused_ops_match_plain_loops() {
        if !crate::x86_kernels::cpu_runs(NAME) {
            return;
        }
        let k = 5;
        let a: Vec<i32> = (0..k * MR).map(|i| (i as i32 * 37) % 101 - 50).collect();
        let b: Vec<i32> = (0..k * NR).map(|i| (i as i32 * 53) % 89 - 44).collect();
        let rows: Vec<i32> = (0..MR as i32).map(|i| 3 * i - 7).collect();
        let cols: Vec<i32> = (0..NR as i32).map(|j| 11 - 5 * j).collect();
        let product = |i: usize, j: usize| (0..k).map(|s| a[s * MR + i] * b[s * NR + j]).sum::<i32>();
        let matmul = FusedKerSpec::AddMatMul {
            k,
            pa: a.as_ptr() as _,
            pb: b.as_ptr() as _,
            packing: 0,
        };
        // A multiplier of 0.75 · 2³¹ with a right shift of 2: a scale of 0.1875.
        let (shift, policy, mult) = (2, RoundingPolicy::Even, 1_610_612_736);
        let scaler = Scaler::from_fuse_params(shift, policy, mult);
        type Want = Box<dyn Fn(usize, usize, i32) -> i32>;
        let cases: Vec<(&str, FusedKerSpec<i32>, Want)> = vec![
            ("none", FusedKerSpec::ScalarAdd(0), Box::new(|_, _, x| x)),
            ("ScalarSub", FusedKerSpec::ScalarSub(9), Box::new(|_, _, x| 9 - x)),
            (
                "ScalarSubF",
                FusedKerSpec::ScalarSubF(9),
                Box::new(|_, _, x| x - 9),
            ),
            (
                "ScalarMin",
                FusedKerSpec::ScalarMin(40),
                Box::new(|_, _, x| x.min(40)),
            ),
            (
                "LeakyRelu",
                FusedKerSpec::LeakyRelu(3),
                Box::new(|_, _, x| if x > 0 { x } else { 3 * x }),
            ),
            (
                "PerRowSub",
                FusedKerSpec::PerRowSub(rows.as_ptr()),
                Box::new({
                    let rows = rows.clone();
                    move |i, _, x| rows[i] - x
                }),
            ),
            (
                "PerColMul",
                FusedKerSpec::PerColMul(cols.as_ptr()),
                Box::new({
                    let cols = cols.clone();
                    move |_, j, x| x * cols[j]
                }),
            ),
            (
                "AddRowColProducts",
                FusedKerSpec::AddRowColProducts(rows.as_ptr(), cols.as_ptr()),
                Box::new({
                    let (rows, cols) = (rows.clone(), cols.clone());
                    move |i, j, x| x + rows[i] * cols[j]
                }),
            ),
            (
                "QScale",
                FusedKerSpec::QScale(shift, policy, mult),
                Box::new(move |_, _, x| x.q_scale(scaler)),
            ),
            (
                "RoundingShiftRight",
                FusedKerSpec::RoundingShiftRight(2, RoundingPolicy::Even),
                Box::new(|_, _, x| x.q_shr(2, RoundingPolicy::Even)),
            ),
        ];
        for (what, op, want) in cases {
            let got = run_and_store(vec![FusedKerSpec::Clear, matmul, op]);
            for (i, row) in got.iter().enumerate() {
                for (j, x) in row.iter().enumerate() {
                    assert_eq!(*x, want(i, j, product(i, j)), "{what}: C[{i}][{j}]");
                }
            }
        }
    }

    /// LoadTile, AddUnicast of an int8 tile read through its strides, and an int8 store.
    #[test]
    fn tiles_load_add_and_store_through_strides() {
        if !crate::x86_kernels::cpu_runs(NAME) {
            return;
        }
        let col_major: Vec<i32> = (0..(MR * NR) as i32).map(|v| v * 3 - 40).collect();
        // A row-major int8 addend with a padded row: the strides, not the tile order, place it.
        let addend: Vec<i8> = (0..(MR * (NR + 1)) as i32)
            .map(|v| (v * 7 % 50 - 25) as i8)
            .collect();
        let unicast = OutputStoreKer {
            ptr: addend.as_ptr() as *mut u8,
            row_byte_stride: (NR + 1) as isize,
            col_byte_stride: 1,
            item_size: 1,
        };
        let mut narrow = vec![0u8; MR * NR];
        let store8 = OutputStoreKer {
            ptr: narrow.as_mut_ptr(),
            row_byte_stride: NR as isize,
            col_byte_stride: 1,
            item_size: 1,
        };
        let got = run_and_store(vec![
            FusedKerSpec::LoadTile(col_major.as_ptr(), std::ptr::null()),
            FusedKerSpec::AddUnicast(unicast),
            FusedKerSpec::Store(store8),
        ]);
        for i in 0..MR {
            for j in 0..NR {
                let want = col_major[j * MR + i] + addend[i * (NR + 1) + j] as i32;
                assert_eq!(got[i][j], want, "C[{i}][{j}]");
                assert_eq!(narrow[i * NR + j], want as u8, "int8 store C[{i}][{j}]");
            }
        }
    }
}
