//! The suite for akidb-core's int8 × int8 → i32 kernels (`x86_kernels::i8`, `wasm_kernels::i8`): the
//! product against plain i32 loops (exact, extreme values, `k` not a multiple of the packing's 4), the
//! i32 packing and the epilogue ops through tract's rounding helpers, and tiles loaded, added and stored
//! through strides. Written once; this crate's unit tests run it for the x86-64 kernel, akidb-wasm's
//! browser tests for the wasm one.

use tract_onnx::prelude::Tensor;
use tract_onnx::tract_core::tract_linalg::mmm::{
    FusedKerSpec, MMMInputFormat, MMMInputValue, OutputStoreKer, RoundingPolicy,
};
use tract_onnx::tract_core::tract_linalg::{ScaleShiftAndRound, Scaler};

/// A kernel's entry point, as tract calls it.
pub type KernelFn = unsafe fn(&[FusedKerSpec<i32>]) -> isize;

/// Deterministic int8 values spread over the whole range, starting with −128 and 127.
fn bytes(n: usize, seed: u32) -> Vec<i8> {
    let mut v: Vec<i8> = (0..n as u32)
        .map(|i| (i.wrapping_mul(2654435761).wrapping_add(seed.wrapping_mul(40503)) >> 13) as u8 as i8)
        .collect();
    v.iter_mut().zip([-128, 127]).for_each(|(x, e)| *x = e);
    v
}

/// A kernel's packing for its int8 product (its packing 1): A's format, B's.
pub type Int8Packing = (Box<dyn MMMInputFormat>, Box<dyn MMMInputFormat>);

/// Packs a row-major `[mn][k]` int8 matrix in `format`, as tract packs a product's operand for the kernel.
fn pack(format: &dyn MMMInputFormat, m: &[Vec<i8>], k: usize) -> Box<dyn MMMInputValue> {
    let t = Tensor::from_shape(&[m.len(), k], &m.concat()).expect("an mn × k matrix");
    format.prepare_one(&t, 1, 0).expect("packing an int8 matrix")
}

/// Runs `ops` through `kernel` (with a `Store` into a row-major tile appended) and returns that tile.
fn run_and_store<const MR: usize, const NR: usize>(
    kernel: KernelFn,
    mut ops: Vec<FusedKerSpec<i32>>,
) -> Vec<[i32; NR]> {
    let mut out = vec![[i32::MIN; NR]; MR];
    ops.push(FusedKerSpec::Store(OutputStoreKer {
        ptr: out.as_mut_ptr() as *mut u8,
        row_byte_stride: (NR * 4) as isize,
        col_byte_stride: 4,
        item_size: 4,
    }));
    ops.push(FusedKerSpec::Done);
    // SAFETY: every pointer in `ops` covers the MR×NR tile and its packed operands.
    assert_eq!(unsafe { kernel(&ops) }, 0);
    out
}

/// The int8 product (packing 1) against plain i32 loops, for `k` not a multiple of 4 (the packing's
/// zero padding) and long enough for any unrolling, with extreme values: −128 · −128 sums, which a
/// saturating 16-bit multiply-add (`vpmaddubsw`) would get wrong.
/// Operands are packed by the kernel's own formats (`packing`), as tract packs them.
pub fn int8_product_is_exact<const MR: usize, const NR: usize>(kernel: KernelFn, packing: &Int8Packing) {
    for k in [1, 4, 5, 37, 384] {
        let mut a: Vec<Vec<i8>> = (0..MR).map(|r| bytes(k, r as u32 + 1)).collect();
        let mut b: Vec<Vec<i8>> = (0..NR).map(|c| bytes(k, c as u32 + 100)).collect();
        // A row of −128 against a column of −128: the largest products there are.
        a[0].iter_mut().for_each(|x| *x = -128);
        b[0].iter_mut().for_each(|x| *x = -128);
        let (pa, pb) = (pack(&*packing.0, &a, k), pack(&*packing.1, &b, k));
        let got = run_and_store::<MR, NR>(
            kernel,
            vec![
                FusedKerSpec::Clear,
                FusedKerSpec::AddMatMul {
                    k,
                    pa: pa.panel_bytes(0, None).expect("A's panel"),
                    pb: pb.panel_bytes(0, None).expect("B's panel"),
                    packing: 1,
                },
            ],
        );
        for (i, row) in got.iter().enumerate() {
            for (j, x) in row.iter().enumerate() {
                let want: i32 = (0..k).map(|kk| a[i][kk] as i32 * b[j][kk] as i32).sum();
                assert_eq!(*x, want, "k {k}: C[{i}][{j}]");
            }
        }
    }
}

/// The i32 × i32 packing (0) and the epilogue ops, through tract's rounding helpers where tract's
/// kernels use them.
pub fn i32_product_and_fused_ops_match_plain_loops<const MR: usize, const NR: usize>(kernel: KernelFn) {
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
        let got = run_and_store::<MR, NR>(kernel, vec![FusedKerSpec::Clear, matmul, op]);
        for (i, row) in got.iter().enumerate() {
            for (j, x) in row.iter().enumerate() {
                assert_eq!(*x, want(i, j, product(i, j)), "{what}: C[{i}][{j}]");
            }
        }
    }
}

/// LoadTile, AddUnicast of an int8 tile read through its strides, and an int8 store.
pub fn tiles_load_add_and_store_through_strides<const MR: usize, const NR: usize>(kernel: KernelFn) {
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
    let got = run_and_store::<MR, NR>(
        kernel,
        vec![
            FusedKerSpec::LoadTile(col_major.as_ptr(), std::ptr::null()),
            FusedKerSpec::AddUnicast(unicast),
            FusedKerSpec::Store(store8),
        ],
    );
    for i in 0..MR {
        for j in 0..NR {
            let want = col_major[j * MR + i] + addend[i * (NR + 1) + j] as i32;
            assert_eq!(got[i][j], want, "C[{i}][{j}]");
            assert_eq!(narrow[i * NR + j], want as u8, "int8 store C[{i}][{j}]");
        }
    }
}
