//! The integer path's weight products as one op per activation: [`FusedProducts`], what wasm32 runs.
//!
//! Why: in wasm the three ops per product of [`super::integer`] ([`QuantizeRows`], tract's integer
//! `EinSum` on akidb's 8×4 int8 kernel, [`DequantRows`]) spent about a fifth of a sentence around the
//! kernel (Node 20 profile, PERF.md): tract's tile loop building each tile's program of fused ops, the
//! quantised rows packed again by every product that reads them, the i32 products written out whole
//! and read back by the epilogue, and a dozen tensors allocated per product. This op quantises each row
//! of the activation straight into the kernel's packed, widened layout, once for every product that
//! reads it (attention's Q, K and V); runs the same kernel tile by tile with nothing between tiles; and
//! dequantises each tile as it comes out, into the f32 output.
//!
//! The values are the three ops', bit for bit: the same quantisation, exact i32 products, and the
//! epilogue's f32 operations in the same order (tested against them on the model's own products).
//! Natively tract's ops stay ([`ProductOps::here`]): tract's native int8 kernels (VNNI, AMX, aarch64's
//! dot products) are wider than this 8×4 one; there this op runs on a portable product, for the tests.
//!
//! [`QuantizeRows`]: super::integer::QuantizeRows
//! [`ProductOps::here`]: super::integer::ProductOps::here

use std::collections::HashMap;
use std::sync::Arc;

use tract_onnx::prelude::*;
use tract_onnx::tract_hir::internal::*;

use super::integer::{ensure_outliers_within, quantize_without_outliers, DequantRows, IntegerProduct};
use super::rewrite::FoldedWeights;
use crate::packing::PackedI8Groups;

/// Rows (output columns of a product) of a tile: the kernel's `MR`.
const MR: usize = 8;
/// Columns (activation rows) of a tile: the kernel's `NR`.
const NR: usize = 4;

/// The tile the kernel accumulates, column-major: `tile[j][i]`, activation row `j`, output column `i`
/// (`crate::i32_tile::Tile`, which aarch64 builds don't compile).
type Tile = [[i32; MR]; NR];

#[cfg(all(target_arch = "wasm32", target_feature = "simd128"))]
use crate::wasm_kernels::i8::{add_mat_mul_i8 as add_product, NAME as KERNEL};
#[cfg(all(target_arch = "wasm32", target_feature = "simd128"))]
const _: () = assert!(crate::wasm_kernels::i8::MR == MR && crate::wasm_kernels::i8::NR == NR);

#[cfg(not(all(target_arch = "wasm32", target_feature = "simd128")))]
use portable::{add_product, KERNEL};

/// Bytes of activation panels one pass over the weights reads: a pass keeps them in L2 while every
/// weight panel streams past once, rather than streaming every weight panel once per activation panel.
const PANEL_BLOCK_BYTES: usize = 128 << 10;

/// One weight product of a [`FusedProducts`]: int8 weights packed for the kernel, and the epilogue's
/// constants (those of the product's [`DequantRows`]).
#[derive(Clone, Debug)]
struct PackedProduct {
    /// `[k, n]` int8 weights in panels of `MR` output columns, pairs of `k` together ([`pack_weights`]).
    panels: Arc<Tensor>,
    k: usize,
    n: usize,
    dequant: DequantRows,
}

impl PartialEq for PackedProduct {
    fn eq(&self, other: &Self) -> bool {
        (Arc::ptr_eq(&self.panels, &other.panels) || self.panels == other.panels)
            && self.dequant == other.dequant
    }
}

/// `x · Wᵢ` for each weight `Wᵢ` of the int8 products reading the activation `x` (f32, `[…, k]`): one
/// output per product, `[…, nᵢ]` f32, what [`QuantizeRows`](super::integer::QuantizeRows) → integer
/// `EinSum` → [`DequantRows`] give, with the same `outliers` channels kept in f32.
#[derive(Clone, Debug, PartialEq)]
pub(crate) struct FusedProducts {
    outliers: Arc<[usize]>,
    products: Vec<PackedProduct>,
}

impl Eq for FusedProducts {}

impl FusedProducts {
    /// The kernel the products run on, as `Embedder::matmul_kernels` reports it.
    pub(crate) const KERNEL: &'static str = KERNEL;
}

/// Wires one [`FusedProducts`] per activation in place of `products` (grouped by activation, in graph
/// order). Packed weights are taken from `packed` by product name, or packed and kept there.
pub(super) fn wire_fused_products(
    model: &mut TypedModel,
    products: Vec<IntegerProduct>,
    packed: &mut FoldedWeights,
) -> TractResult<()> {
    let mut groups: Vec<Vec<IntegerProduct>> = Vec::new();
    let mut group_of: HashMap<OutletId, usize> = HashMap::new();
    for product in products {
        let group = *group_of.entry(product.x).or_insert_with(|| {
            groups.push(Vec::new());
            groups.len() - 1
        });
        groups[group].push(product);
    }
    for group in groups {
        let first = &model.node(group[0].node);
        let (name, x) = (first.name.clone(), first.inputs[0]);
        let mut op = FusedProducts {
            outliers: group[0].channels.clone(),
            products: Vec::with_capacity(group.len()),
        };
        for product in &group {
            let key = format!("{}.fused_panels", model.node(product.node).name);
            let panels = match packed.get(&key) {
                Some(panels) => panels.clone(),
                None => {
                    let panels = pack_weights(&product.q)?.into_arc_tensor();
                    packed.insert(key, panels.clone());
                    panels
                }
            };
            let (k, n) = (product.q.shape()[0], product.q.shape()[1]);
            op.products.push(PackedProduct {
                panels,
                k,
                n,
                dequant: product.dequant.clone(),
            });
        }
        let mut patch = TypedModelPatch::default();
        // The activation as the graph has it now: an earlier group may have shunted its producer.
        let tapped = patch.tap_model(model, x)?;
        let outputs = patch.wire_node(format!("{name}.fused_products"), op, &[tapped])?;
        for (product, output) in group.iter().zip(outputs) {
            patch.shunt_outside(model, product.node.into(), output)?;
        }
        patch.apply(model)?;
    }
    Ok(())
}

/// `q` (`[k, n]` int8) in the kernel's A layout, [`PackedI8Groups::new`]`(MR, 2)` (the layout tract's
/// plans pack the same weights in for this kernel): `n.div_ceil(MR)` panels of [`panel_len`]`(k, MR)`
/// bytes, padding zeros.
fn pack_weights(q: &Tensor) -> TractResult<Tensor> {
    ensure!(q.rank() == 2, "weights of shape {:?}, not [k, n]", q.shape());
    let packed = PackedI8Groups::new(MR, 2).pack_view(&q.view(), 0, 1)?;
    let bytes = packed.packed.as_bytes();
    // SAFETY: every byte is a valid i8.
    unsafe { Tensor::from_raw::<i8>(&[bytes.len()], bytes) }
}

/// Values in one panel of `r` rows or columns over `k`, pairs of `k` together: the kernel's A (`r = MR`)
/// and B (`r = NR`) panels.
fn panel_len(k: usize, r: usize) -> usize {
    k.div_ceil(2) * r * 2
}

/// An activation's rows quantised ([`quantize_without_outliers`]) and packed for the kernel's B
/// operand: panels of `NR` rows, `k.div_ceil(2)` steps each, a step the `NR` rows' pairs of `k` as i16.
struct QuantisedRows {
    rows: usize,
    k: usize,
    panels: Vec<i16>,
    scales: Vec<f32>,
    zeros: Vec<i32>,
    /// Each row's outlier channels' f32 values, `outliers` a row.
    kept: Vec<f32>,
    outliers: usize,
}

impl QuantisedRows {
    fn new(x: &[f32], k: usize, outliers: &[usize]) -> QuantisedRows {
        let rows = x.len() / k;
        let panel_len = panel_len(k, NR);
        let mut panels = vec![0i16; rows.div_ceil(NR) * panel_len];
        let (mut scales, mut zeros) = (Vec::with_capacity(rows), Vec::with_capacity(rows));
        let mut kept = Vec::with_capacity(rows * outliers.len());
        let (mut levels, mut inliers) = (vec![0i8; k], Vec::new());
        for (r, row) in x.chunks_exact(k).enumerate() {
            let (scale, zero) =
                quantize_without_outliers(row, outliers, &mut levels, &mut inliers, &mut kept);
            scales.push(scale);
            zeros.push(zero);
            let panel = &mut panels[(r / NR) * panel_len..][..panel_len];
            for (step, pair) in levels.chunks(2).enumerate() {
                let at = (step * NR + r % NR) * 2;
                panel[at] = pair[0] as i16;
                panel[at + 1] = pair.get(1).map_or(0, |&v| v as i16);
            }
        }
        QuantisedRows {
            rows,
            k,
            panels,
            scales,
            zeros,
            kept,
            outliers: outliers.len(),
        }
    }
}

/// The output, row-major `[rows, n]`, written by tiles of disjoint columns (from several threads in the
/// threads build).
#[derive(Clone, Copy)]
struct Output {
    ptr: *mut f32,
    n: usize,
}
// SAFETY: each thread writes only its own weight panels' columns (`PackedProduct::run_panel`).
unsafe impl Send for Output {}
unsafe impl Sync for Output {}

/// A product's host-memory operands, resolved once per run rather than per tile.
struct Operands<'a> {
    panels: &'a [i8],
    colsum: &'a [i32],
    wscale: &'a [f32],
    outlier_weights: &'a [f32],
}

/// The plain host memory of `t`'s elements.
fn plain<T: Datum>(t: &Tensor) -> TractResult<&[T]> {
    ensure!(
        t.datum_type() == T::datum_type(),
        "{:?} is not {:?}",
        t.datum_type(),
        T::datum_type()
    );
    ensure!(t.as_plain_ram_storage().is_some(), "a tensor outside host memory");
    // SAFETY: checked above: plain host memory holding `t.len()` values of type `T`.
    Ok(unsafe { t.as_slice_unchecked::<T>() })
}

impl PackedProduct {
    /// `y = x · W` for the quantised rows `x`: `y` row-major `[x.rows, n]`.
    fn run(&self, x: &QuantisedRows, y: &mut [f32]) -> TractResult<()> {
        ensure!(x.k == self.k && y.len() == x.rows * self.n);
        let d = &self.dequant;
        let operands = Operands {
            panels: plain(&self.panels)?,
            colsum: plain(&d.colsum)?,
            wscale: plain(&d.wscale)?,
            outlier_weights: plain(&d.outlier_weights)?,
        };
        ensure!(operands.panels.len() == self.n.div_ceil(MR) * panel_len(self.k, MR));
        ensure!(operands.colsum.len() == self.n && operands.wscale.len() == self.n);
        ensure!(operands.outlier_weights.len() == x.outliers * self.n);
        let out = Output {
            ptr: y.as_mut_ptr(),
            n: self.n,
        };
        let row_panels = x.rows.div_ceil(NR);
        let block = (PANEL_BLOCK_BYTES / (panel_len(x.k, NR) * size_of::<i16>())).max(1);
        let weight_panels = self.n.div_ceil(MR);
        for first in (0..row_panels).step_by(block) {
            let rows = first..(first + block).min(row_panels);
            #[cfg(all(target_arch = "wasm32", feature = "wasm-threads"))]
            if rayon::current_num_threads() > 1 {
                use rayon::prelude::*;
                (0..weight_panels)
                    .into_par_iter()
                    .with_min_len(4)
                    .for_each(|panel| self.run_panel(&operands, x, panel, rows.clone(), out));
                continue;
            }
            for panel in 0..weight_panels {
                self.run_panel(&operands, x, panel, rows.clone(), out);
            }
        }
        add_outlier_products(y, x, operands.outlier_weights);
        Ok(())
    }

    /// Output columns `panel · MR …` of the rows in the row panels `rows`.
    fn run_panel(
        &self,
        operands: &Operands,
        x: &QuantisedRows,
        panel: usize,
        rows: std::ops::Range<usize>,
        out: Output,
    ) {
        let (a_len, b_len) = (panel_len(self.k, MR), panel_len(self.k, NR));
        let a = &operands.panels[panel * a_len..][..a_len];
        for row_panel in rows {
            let b = &x.panels[row_panel * b_len..][..b_len];
            let mut tile: Tile = [[0; MR]; NR];
            // SAFETY: `a` and `b` are whole panels of `k` in the kernel's layouts, and the kernel is
            // built for this target (SIMD128 on wasm32).
            unsafe { add_product(&mut tile, self.k, a.as_ptr(), b.as_ptr()) };
            self.store(operands, &tile, x, panel * MR, row_panel * NR, out);
        }
    }

    /// [`DequantRows`] on one tile but for the outlier channels' terms ([`add_outlier_products`] adds
    /// them): `y[r, c] = (acc − z_r · colsum[c]) · (a_r · wscale[c])`, the same f32 operations in the
    /// same order as its `dequant_row`.
    #[inline(always)]
    fn store(
        &self,
        operands: &Operands,
        tile: &Tile,
        x: &QuantisedRows,
        col: usize,
        first_row: usize,
        out: Output,
    ) {
        let width = MR.min(self.n - col);
        let colsum = &operands.colsum[col..][..width];
        let wscale = &operands.wscale[col..][..width];
        for (j, acc) in tile.iter().enumerate().take(x.rows.saturating_sub(first_row)) {
            let r = first_row + j;
            let (a, z) = (x.scales[r], x.zeros[r]);
            // SAFETY: row r < rows and columns col … col + width ≤ n of the `[rows, n]` output, which
            // only this tile writes.
            let y = unsafe { std::slice::from_raw_parts_mut(out.ptr.add(r * out.n + col), width) };
            #[cfg(all(target_arch = "wasm32", target_feature = "simd128"))]
            if let (Ok(y), Ok(acc), Ok(colsum), Ok(wscale)) = (
                y.try_into(),
                acc[..].try_into(),
                colsum.try_into(),
                wscale.try_into(),
            ) {
                simd128::dequantise(y, acc, colsum, wscale, (a, z));
                continue;
            }
            for i in 0..width {
                y[i] = acc[i].wrapping_sub(z.wrapping_mul(colsum[i])) as f32 * (a * wscale[i]);
            }
        }
    }
}

/// `y[r, c] += Σⱼ kept[r, j] · outlier_weights[j, c]`, each row's channels in order after its tiles are
/// stored: `dequant_row`'s second loop, whole rows at a time. Up to 64 channels for some of this model's
/// products: a product of its own, which streams (per tile it was a fifth of a sentence).
fn add_outlier_products(y: &mut [f32], x: &QuantisedRows, outlier_weights: &[f32]) {
    if x.outliers == 0 || y.is_empty() {
        return;
    }
    let n = y.len() / x.rows;
    for (row, kept) in y.chunks_exact_mut(n).zip(x.kept.chunks_exact(x.outliers)) {
        for (&v, weights) in kept.iter().zip(outlier_weights.chunks_exact(n)) {
            for (o, &w) in row.iter_mut().zip(weights) {
                *o += v * w;
            }
        }
    }
}

/// The epilogue of a whole tile row on SIMD128: the scalar loop's operations lane by lane (wrapping i32
/// products and differences, the conversion, the f32 products in the same order), so the same bits;
/// LLVM left that loop scalar.
#[cfg(all(target_arch = "wasm32", target_feature = "simd128"))]
mod simd128 {
    use std::arch::wasm32::*;

    use super::MR;

    /// `y[i] = (acc[i] − z · colsum[i]) · (a · wscale[i])`.
    #[inline(always)]
    pub(super) fn dequantise(
        y: &mut [f32; MR],
        acc: &[i32; MR],
        colsum: &[i32; MR],
        wscale: &[f32; MR],
        (a, z): (f32, i32),
    ) {
        let (a, z) = (f32x4_splat(a), i32x4_splat(z));
        for half in [0, 4] {
            // SAFETY: each array has MR = 8 values; wasm loads and stores need no alignment.
            unsafe {
                let at = |p: *const i32| v128_load(p.add(half) as *const v128);
                let diff = i32x4_sub(at(acc.as_ptr()), i32x4_mul(z, at(colsum.as_ptr())));
                let scale = f32x4_mul(a, v128_load(wscale.as_ptr().add(half) as *const v128));
                let v = f32x4_mul(f32x4_convert_i32x4(diff), scale);
                v128_store(y.as_mut_ptr().add(half) as *mut v128, v);
            }
        }
    }
}

/// The product without SIMD128: plain loops, the same exact sums (the tests' reference elsewhere).
#[cfg(not(all(target_arch = "wasm32", target_feature = "simd128")))]
mod portable {
    use super::{Tile, MR, NR};

    pub(super) const KERNEL: &str = "akidb_portable_i32_8x4";

    /// `tile += A·B` over `k`, A and B as [`super::pack_weights`] and [`super::QuantisedRows`] pack them.
    ///
    /// # Safety
    /// `a` holds `k.div_ceil(2) · 2 · MR` readable bytes and `b` `k.div_ceil(2) · 2 · NR` readable i16s.
    pub(super) unsafe fn add_product(tile: &mut Tile, k: usize, a: *const i8, b: *const i16) {
        for step in 0..k.div_ceil(2) {
            for (j, column) in tile.iter_mut().enumerate() {
                for (i, acc) in column.iter_mut().enumerate() {
                    for t in 0..2 {
                        // SAFETY: within the panels, as the caller guarantees.
                        let (av, bv) =
                            unsafe { (*a.add((step * MR + i) * 2 + t), *b.add((step * NR + j) * 2 + t)) };
                        *acc += av as i32 * bv as i32;
                    }
                }
            }
        }
    }
}

impl Op for FusedProducts {
    fn name(&self) -> StaticName {
        "FusedProducts".into()
    }
    op_as_typed_op!();
}

impl EvalOp for FusedProducts {
    op_out_of_plan!();

    fn eval(&self, _ctx: &EvalContext, inputs: TVec<TValue>) -> TractResult<TVec<TValue>> {
        let x = args_1!(inputs);
        let shape = x.shape().to_vec();
        let k = *shape.last().context("FusedProducts needs rank ≥ 1")?;
        ensure!(k > 0, "rows of no values");
        ensure!(
            self.products.iter().all(|p| p.k == k),
            "rows of {k} for weights of {:?}",
            self.products.iter().map(|p| p.k).collect::<Vec<_>>()
        );
        ensure_outliers_within(&self.outliers, k)?;
        let x = x.try_as_plain_ram()?;
        let rows = QuantisedRows::new(x.as_slice::<f32>()?, k, &self.outliers);
        let mut outputs = TVec::with_capacity(self.products.len());
        for product in &self.products {
            let mut out_shape = shape.clone();
            *out_shape.last_mut().expect("rank ≥ 1") = product.n;
            let mut y = Tensor::zero::<f32>(&out_shape)?;
            {
                let mut view = y.try_as_plain_ram_mut()?;
                product.run(&rows, view.as_slice_mut::<f32>()?)?;
            }
            outputs.push(y.into_tvalue());
        }
        Ok(outputs)
    }
}

impl TypedOp for FusedProducts {
    fn output_facts(&self, inputs: &[&TypedFact]) -> TractResult<TVec<TypedFact>> {
        ensure!(inputs[0].datum_type == f32::datum_type() && inputs[0].rank() >= 1);
        Ok(self
            .products
            .iter()
            .map(|p| {
                let mut shape = inputs[0].shape.to_tvec();
                *shape.last_mut().expect("rank ≥ 1") = p.n.to_dim();
                f32::fact(&*shape)
            })
            .collect())
    }
    as_op!();
}

#[cfg(test)]
mod tests {
    use super::super::integer::{ProductOps, QuantizeRows};
    use super::super::rewrite::LazyWeight;
    use super::super::test_models::bundle_model;
    use super::super::{PaddedBatch, SentenceModel};
    use super::*;

    /// Deterministic values in `[-range, range)`.
    fn values(n: usize, seed: u32, range: f32) -> Vec<f32> {
        let mut s = seed | 1;
        (0..n)
            .map(|_| {
                s ^= s << 13;
                s ^= s >> 17;
                s ^= s << 5;
                (s % 20_000) as f32 / 10_000.0 * range - range
            })
            .collect()
    }

    /// Equal f32 bit patterns, or a message naming the first that differs (not thousands of values).
    fn assert_same_bits(got: &[u32], want: &[u32], what: &str) {
        assert_eq!(got.len(), want.len(), "{what}: lengths");
        if let Some(i) = (0..got.len()).find(|&i| got[i] != want[i]) {
            let (g, w) = (f32::from_bits(got[i]), f32::from_bits(want[i]));
            let differ = (0..got.len()).filter(|&i| got[i] != want[i]).count();
            panic!(
                "{what}: {differ} of {} values differ, the first at {i}: {g} against {w}",
                got.len()
            );
        }
    }

    /// What tract's ops give for `x · W` of one weight: [`QuantizeRows`], the i32 product as plain loops
    /// (tract's integer kernels are exact), [`DequantRows`].
    fn three_ops(x: &Tensor, weight: &LazyWeight, outliers: &[usize]) -> Vec<f32> {
        let quantised = QuantizeRows {
            outliers: outliers.into(),
        }
        .eval_out_of_plan(tvec!(x.clone().into_tvalue()))
        .unwrap()
        .unwrap();
        let (k, n) = (weight.q.shape()[0], weight.q.shape()[1]);
        let rows = x.len() / k;
        let p = quantised[0].to_plain_array_view::<i8>().unwrap();
        let p = p.as_slice().unwrap();
        let q = weight.q.to_plain_array_view::<i8>().unwrap();
        let q = q.as_slice().unwrap();
        let acc: Vec<i32> = (0..rows * n)
            .map(|i| {
                (0..k)
                    .map(|j| p[i / n * k + j] as i32 * q[j * n + i % n] as i32)
                    .sum()
            })
            .collect();
        let dequant = DequantRows::for_weight(weight, outliers).unwrap().unwrap();
        let y = dequant
            .eval_out_of_plan(tvec!(
                Tensor::from_shape(&[rows, n], &acc).unwrap().into_tvalue(),
                quantised[1].clone(),
                quantised[2].clone(),
                quantised[3].clone(),
            ))
            .unwrap()
            .unwrap();
        y[0].to_plain_array_view::<f32>()
            .unwrap()
            .iter()
            .copied()
            .collect()
    }

    fn weight(k: usize, n: usize, seed: u32) -> LazyWeight {
        let q: Vec<i8> = values(k * n, seed, 128.0)
            .iter()
            .map(|v| v.clamp(-127.0, 127.0) as i8)
            .collect();
        let scale: Vec<f32> = values(n, seed + 1, 0.01).iter().map(|v| v.abs() + 1e-3).collect();
        LazyWeight {
            q: Arc::new(Tensor::from_shape(&[k, n], &q).unwrap()),
            scale: Arc::new(Tensor::from_shape(&[1, n], &scale).unwrap()),
        }
    }

    /// Odd `k` (a half-filled last pair), rows and output columns that fill no whole panel, outlier
    /// channels, two products on one activation: every value equal to the three ops', bit for bit.
    #[test]
    fn fused_products_give_the_three_ops_values_bit_for_bit() {
        let (k, rows) = (37, 10);
        let mut x = values(rows * k, 7, 3.0);
        for r in 0..rows {
            x[r * k + 5] *= 20.0; // an outlier channel, as this model's LayerNorm outputs have
        }
        let x = Tensor::from_shape(&[2, rows / 2, k], &x).unwrap();
        for outliers in [vec![], vec![5usize, 30]] {
            let weights = [weight(k, 19, 11), weight(k, 8, 23)];
            let op = FusedProducts {
                outliers: outliers.as_slice().into(),
                products: weights
                    .iter()
                    .map(|w| PackedProduct {
                        panels: pack_weights(&w.q).unwrap().into_arc_tensor(),
                        k,
                        n: w.q.shape()[1],
                        dequant: DequantRows::for_weight(w, &outliers).unwrap().unwrap(),
                    })
                    .collect(),
            };
            let outputs = op
                .eval_out_of_plan(tvec!(x.clone().into_tvalue()))
                .unwrap()
                .unwrap();
            assert_eq!(outputs.len(), 2);
            for (w, y) in weights.iter().zip(&outputs) {
                let n = w.q.shape()[1];
                assert_eq!(y.shape(), &[2, rows / 2, n]);
                let fused: Vec<u32> = y
                    .to_plain_array_view::<f32>()
                    .unwrap()
                    .iter()
                    .map(|v| v.to_bits())
                    .collect();
                let want: Vec<u32> = three_ops(&x, w, &outliers).iter().map(|v| v.to_bits()).collect();
                assert_same_bits(&fused, &want, &format!("n = {n}, outliers {outliers:?}"));
            }
        }
    }

    /// `last_hidden_state` of a padded block of three sentences of different lengths.
    fn hidden_states(model: &SentenceModel) -> Vec<u32> {
        let (batch, seq) = (3, 16);
        let lens = [16, 9, 3];
        let mut input = PaddedBatch {
            batch,
            seq,
            ids: vec![0; batch * seq],
            mask: vec![0; batch * seq],
            type_ids: vec![0; batch * seq],
        };
        for (row, &len) in lens.iter().enumerate() {
            for t in 0..len {
                let id = match t {
                    0 => 101,
                    t if t == len - 1 => 102,
                    t => 2000 + (row * 977 + t * 131) % 20_000,
                };
                input.ids[row * seq + t] = id as i64;
                input.mask[row * seq + t] = 1;
            }
        }
        let plan = model.plan(batch, seq).unwrap();
        let out = model.run_plan(&plan, input).unwrap();
        out.to_plain_array_view::<f32>()
            .unwrap()
            .iter()
            .map(|v| v.to_bits())
            .collect()
    }

    /// The whole `int8-dynamic` model, wired both ways: the same hidden states, bit for bit; the fused
    /// graph has no `QuantizeRows` left and reports the fused op's kernel.
    #[test]
    fn the_model_gives_the_same_vectors_fused_or_on_tracts_ops() {
        let wired = |ops: ProductOps| {
            let mut model = bundle_model("int8-dynamic", 4);
            if !model.integer {
                return None; // this CPU runs the bundle in f32 (slow_integer_kernels): nothing to compare
            }
            model.products = ops;
            model.bases.get_mut().unwrap().0.clear();
            Some(model)
        };
        let (Some(tract), Some(fused)) = (wired(ProductOps::Tract), wired(ProductOps::Fused)) else {
            assert!(super::super::slow_integer_kernels().is_some());
            return;
        };
        assert_same_bits(
            &hidden_states(&fused),
            &hidden_states(&tract),
            "last_hidden_state",
        );
        let graph = fused.base(3).unwrap();
        let count = |op: &str| graph.nodes().iter().filter(|n| n.op.name() == op).count();
        // Four activations a layer: attention's input (Q, K and V), its output, the FFN's two.
        assert_eq!((count("FusedProducts"), count("QuantizeRows")), (24, 0));
        assert!(fused
            .matmul_kernels()
            .contains(&FusedProducts::KERNEL.to_string()));
        assert!(!tract
            .matmul_kernels()
            .contains(&FusedProducts::KERNEL.to_string()));
    }
}
