//! What akidb-core's int8 kernels (x86-64 AVX2's and wasm SIMD128's) share: the i32 tile they keep
//! between fused ops, and every fused op but the int8 product itself, in plain Rust with tract's own
//! rounding helpers. The integer path fuses none of these ops (its epilogue is akidb's `DequantRows`,
//! and in wasm `FusedProducts` calls the product itself), so they are there for other quantised models,
//! not for speed; each kernel brings only its product.

use tract_onnx::tract_core::tract_linalg::mmm::{FusedKerSpec, OutputStoreKer};
use tract_onnx::tract_core::tract_linalg::{ScaleShiftAndRound, Scaler};

/// The tile between ops, column-major: `tile[j][i]` is row `i` of column `j`.
pub(crate) type Tile<const MR: usize, const NR: usize> = [[i32; MR]; NR];

/// A kernel's int8 product: `tile += A·B` over `k` of A and B packed by the kernel's own int8 formats
/// (tract's `PackedI8K4` or `crate::packing::PackedI8Groups`: a few `k` of a row or column together,
/// `k` rounded up to a multiple of them with zeros), B's values of type `B` (int8, or i16 widened).
///
/// # Safety
/// `a` and `b` hold the packed panels of an `MR × NR` tile for `k` in those formats, and the CPU has
/// what the kernel was compiled for.
pub(crate) type Int8Product<const MR: usize, const NR: usize, B> =
    unsafe fn(&mut Tile<MR, NR>, usize, *const i8, *const B);

/// The address of element (`row`, `col`) of a C tile.
#[inline(always)]
fn at(tile: &OutputStoreKer, row: usize, col: usize) -> *mut u8 {
    tile.ptr
        .wrapping_offset(tile.row_byte_stride * row as isize + tile.col_byte_stride * col as isize)
}

/// `x = op(x)` on every element.
fn each<const MR: usize, const NR: usize>(tile: &mut Tile<MR, NR>, op: impl Fn(i32) -> i32) {
    tile.iter_mut().flatten().for_each(|x| *x = op(*x));
}

/// `x = op(x, v[row])` (`per_row`) or `op(x, v[col])` on every element.
///
/// # Safety
/// `v` points to `MR` (per row) or `NR` readable i32s.
unsafe fn each_with<const MR: usize, const NR: usize>(
    tile: &mut Tile<MR, NR>,
    v: *const i32,
    per_row: bool,
    op: impl Fn(i32, i32) -> i32,
) {
    for (j, column) in tile.iter_mut().enumerate() {
        for (i, x) in column.iter_mut().enumerate() {
            *x = op(*x, unsafe { *v.add(if per_row { i } else { j }) });
        }
    }
}

/// Runs one tile's program of fused ops, `int8_product` for the int8 `AddMatMul`s (packing 1); 1 for
/// a packing or store size the kernels don't have (tract turns it into an error naming the kernel).
///
/// # Safety
/// tract's contract for kernels: the ops' pointers are valid for an `MR × NR` tile and the packing
/// each `AddMatMul` names; the CPU runs `int8_product`.
#[inline(always)]
pub(crate) unsafe fn run<const MR: usize, const NR: usize, B>(
    ops: &[FusedKerSpec<i32>],
    int8_product: Int8Product<MR, NR, B>,
) -> isize {
    let mut tile: Tile<MR, NR> = [[0; MR]; NR];
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
                    1 => int8_product(&mut tile, k, pa as _, pb as _),
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
unsafe fn add_mat_mul_i32<const MR: usize, const NR: usize>(
    tile: &mut Tile<MR, NR>,
    k: usize,
    a: *const i32,
    b: *const i32,
) {
    for step in 0..k {
        for (j, column) in tile.iter_mut().enumerate() {
            let bj = unsafe { *b.add(step * NR + j) };
            for (i, x) in column.iter_mut().enumerate() {
                *x = x.wrapping_add(unsafe { *a.add(step * MR + i) }.wrapping_mul(bj));
            }
        }
    }
}
