//! One test suite for akidb-core's own f32 matmul kernels (`wasm_kernels`, `x86_kernels`): each fused op
//! tract may hand a kernel, run through the kernel and checked against plain Rust loops. Written once,
//! run against every kernel: akidb-wasm's browser tests call it for the wasm kernel, this crate's unit
//! tests for the x86-64 one. The model exercises only the ops MiniLM's plans fuse; this covers all of
//! them (QScale aside, which f32 plans don't fuse). The int8 kernels' suite is [`int8`].
//!
//! Public for those tests only.

pub mod int8;

use tract_onnx::tract_core::tract_linalg::mmm::{FusedKerSpec, OutputStoreKer, RoundingPolicy};

/// Steps of `k` in each product: odd, so no unrolling by two or four can hide a lost step.
const K: usize = 7;

/// Deterministic values of both signs, distinct enough that a swapped row or column shows.
fn values(n: usize, seed: f32) -> Vec<f32> {
    (0..n).map(|i| ((i as f32 + seed) * 0.731).sin() * 2.0).collect()
}

/// A row-major C tile of `MR × NR` f32s.
type Tile<const MR: usize, const NR: usize> = [[f32; NR]; MR];

/// A kernel's entry point, as tract calls it.
pub type KernelFn = unsafe fn(&[FusedKerSpec<f32>]) -> isize;

fn tile_store<const MR: usize, const NR: usize>(out: &mut Tile<MR, NR>) -> OutputStoreKer {
    OutputStoreKer {
        ptr: out.as_mut_ptr() as *mut u8,
        row_byte_stride: (NR * 4) as isize,
        col_byte_stride: 4,
        item_size: 4,
    }
}

/// `A·B` for A packed `k × MR` (a step's rows together) and B packed `k × NR`.
fn product<const MR: usize, const NR: usize>(a: &[f32], b: &[f32]) -> Tile<MR, NR> {
    let mut c = [[0f32; NR]; MR];
    for k in 0..K {
        for (r, row) in c.iter_mut().enumerate() {
            for (j, x) in row.iter_mut().enumerate() {
                *x += a[k * MR + r] * b[k * NR + j];
            }
        }
    }
    c
}

/// Runs Clear, AddMatMul, `op`, Store and returns the stored tile.
fn run_with<const MR: usize, const NR: usize>(
    kernel: KernelFn,
    a: &[f32],
    b: &[f32],
    op: FusedKerSpec<f32>,
) -> Tile<MR, NR> {
    let mut out = [[f32::NAN; NR]; MR];
    let ops = [
        FusedKerSpec::Clear,
        FusedKerSpec::AddMatMul {
            k: K,
            pa: a.as_ptr() as _,
            pb: b.as_ptr() as _,
            packing: 0,
        },
        op,
        FusedKerSpec::Store(tile_store(&mut out)),
        FusedKerSpec::Done,
    ];
    // SAFETY: every pointer covers the MR×NR tile and K steps of packed A and B.
    assert_eq!(unsafe { kernel(&ops) }, 0);
    out
}

fn assert_close<const MR: usize, const NR: usize>(got: &Tile<MR, NR>, want: &Tile<MR, NR>, what: &str) {
    for r in 0..MR {
        for j in 0..NR {
            let (g, w) = (got[r][j], want[r][j]);
            assert!(
                (g - w).abs() <= 1e-5 * (1.0 + w.abs()),
                "{what}: C[{r}][{j}] = {g}, expected {w}"
            );
        }
    }
}

/// Runs Clear, AddMatMul, one fused op and Store through `kernel` for every op tract may fuse, and
/// checks each result against plain loops; panics on the first mismatch.
pub fn kernel_matches_plain_loops_for_every_fused_op<const MR: usize, const NR: usize>(kernel: KernelFn) {
    let (a, b) = (values(K * MR, 0.5), values(K * NR, 3.0));
    let ab = product(&a, &b);
    let rows = values(MR, 7.0);
    let cols = values(NR, 11.0);
    let map = |f: &dyn Fn(usize, usize, f32) -> f32| -> Tile<MR, NR> {
        let mut t = ab;
        for (r, row) in t.iter_mut().enumerate() {
            for (j, x) in row.iter_mut().enumerate() {
                *x = f(r, j, *x);
            }
        }
        t
    };
    let s = 0.3f32;
    let cases: Vec<(&str, FusedKerSpec<f32>, Tile<MR, NR>)> = vec![
        ("ScalarMin", FusedKerSpec::ScalarMin(s), map(&|_, _, x| x.min(s))),
        ("ScalarMax", FusedKerSpec::ScalarMax(s), map(&|_, _, x| x.max(s))),
        ("ScalarAdd", FusedKerSpec::ScalarAdd(s), map(&|_, _, x| x + s)),
        ("ScalarMul", FusedKerSpec::ScalarMul(s), map(&|_, _, x| x * s)),
        ("ScalarSub", FusedKerSpec::ScalarSub(s), map(&|_, _, x| s - x)),
        ("ScalarSubF", FusedKerSpec::ScalarSubF(s), map(&|_, _, x| x - s)),
        (
            "LeakyRelu",
            FusedKerSpec::LeakyRelu(s),
            map(&|_, _, x| if x > 0.0 { x } else { s * x }),
        ),
        (
            "PerRowMin",
            FusedKerSpec::PerRowMin(rows.as_ptr()),
            map(&|r, _, x| x.min(rows[r])),
        ),
        (
            "PerRowMax",
            FusedKerSpec::PerRowMax(rows.as_ptr()),
            map(&|r, _, x| x.max(rows[r])),
        ),
        (
            "PerRowAdd",
            FusedKerSpec::PerRowAdd(rows.as_ptr()),
            map(&|r, _, x| x + rows[r]),
        ),
        (
            "PerRowMul",
            FusedKerSpec::PerRowMul(rows.as_ptr()),
            map(&|r, _, x| x * rows[r]),
        ),
        (
            "PerRowSub",
            FusedKerSpec::PerRowSub(rows.as_ptr()),
            map(&|r, _, x| rows[r] - x),
        ),
        (
            "PerRowSubF",
            FusedKerSpec::PerRowSubF(rows.as_ptr()),
            map(&|r, _, x| x - rows[r]),
        ),
        (
            "PerColMin",
            FusedKerSpec::PerColMin(cols.as_ptr()),
            map(&|_, j, x| x.min(cols[j])),
        ),
        (
            "PerColMax",
            FusedKerSpec::PerColMax(cols.as_ptr()),
            map(&|_, j, x| x.max(cols[j])),
        ),
        (
            "PerColAdd",
            FusedKerSpec::PerColAdd(cols.as_ptr()),
            map(&|_, j, x| x + cols[j]),
        ),
        (
            "PerColMul",
            FusedKerSpec::PerColMul(cols.as_ptr()),
            map(&|_, j, x| x * cols[j]),
        ),
        (
            "PerColSub",
            FusedKerSpec::PerColSub(cols.as_ptr()),
            map(&|_, j, x| cols[j] - x),
        ),
        (
            "PerColSubF",
            FusedKerSpec::PerColSubF(cols.as_ptr()),
            map(&|_, j, x| x - cols[j]),
        ),
        (
            "AddRowColProducts",
            FusedKerSpec::AddRowColProducts(rows.as_ptr(), cols.as_ptr()),
            map(&|r, j, x| x + rows[r] * cols[j]),
        ),
        ("ShiftLeft", FusedKerSpec::ShiftLeft(2), map(&|_, _, x| x * 4.0)),
        (
            "RoundingShiftRight",
            FusedKerSpec::RoundingShiftRight(1, RoundingPolicy::Even),
            map(&|_, _, x| x * 0.5),
        ),
    ];
    for (what, op, want) in cases {
        assert_close(&run_with(kernel, &a, &b, op), &want, what);
    }

    // AddUnicast reads a C-shaped tile through its strides; a column-major one checks they are used.
    let mut addend = [[0f32; MR]; NR];
    let extra = values(MR * NR, 19.0);
    for (i, x) in extra.iter().enumerate() {
        addend[i % NR][i / NR] = *x;
    }
    let unicast = OutputStoreKer {
        ptr: addend.as_mut_ptr() as *mut u8,
        row_byte_stride: 4,
        col_byte_stride: (MR * 4) as isize,
        item_size: 4,
    };
    let want = map(&|r, j, x| x + extra[r * NR + j]);
    assert_close(
        &run_with(kernel, &a, &b, FusedKerSpec::AddUnicast(unicast)),
        &want,
        "AddUnicast",
    );
}

/// Loads a tile (LoadTile) and stores it column-major into a wider buffer: the strides, not the tile
/// order, must place it, and nothing past a column may be written.
pub fn kernel_loads_a_tile_and_stores_through_any_strides<const MR: usize, const NR: usize>(
    kernel: KernelFn,
) {
    // LoadTile hands the kernel the same tile column-major and row-major; our kernels read the first.
    let tile = values(MR * NR, 23.0);
    let mut col_major = vec![0f32; MR * NR];
    for r in 0..MR {
        for j in 0..NR {
            col_major[j * MR + r] = tile[r * NR + j];
        }
    }
    // Stored column-major (row stride 4 bytes) into a wider buffer: strides, not tile order, place it.
    let mut out = vec![f32::NAN; NR * (MR + 2)];
    let store = OutputStoreKer {
        ptr: out.as_mut_ptr() as *mut u8,
        row_byte_stride: 4,
        col_byte_stride: ((MR + 2) * 4) as isize,
        item_size: 4,
    };
    let ops = [
        FusedKerSpec::LoadTile(col_major.as_ptr(), tile.as_ptr()),
        FusedKerSpec::Store(store),
        FusedKerSpec::Done,
    ];
    // SAFETY: both tiles hold MR×NR f32s; the store's strides stay inside `out`.
    assert_eq!(unsafe { kernel(&ops) }, 0);
    for r in 0..MR {
        for j in 0..NR {
            assert_eq!(out[j * (MR + 2) + r], tile[r * NR + j], "C[{r}][{j}]");
        }
    }
    assert!(
        out[MR].is_nan() && out[MR + 1].is_nan(),
        "wrote past the tile's column"
    );
}
