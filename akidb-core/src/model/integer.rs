//! The integer matmul path of `int8-dynamic` bundles: each weight product `x · W` with int8 weights
//! runs as int8 × int8 → i32 on tract's integer kernels, its activations quantised per row at run time.
//!
//! For a weight `W = q · s` (q int8 `[k, n]`, one f32 scale per output column `s[n]`, no zero point, as
//! the `LazyWeight`s of [`super::rewrite`] hold them) and an activation row `x` (`k` values):
//!
//! 1. [`QuantizeRows`] maps the row to 255 levels spanning `[min(x, 0), max(x, 0)]`: a scale `a`, a zero
//!    point `z` and `p = clamp(round(x / a) + z)`, all int8 (asymmetric: the LayerNorm outputs this model
//!    feeds its products are lopsided, about −6 … +28, and a symmetric scale wastes half the levels);
//! 2. tract's `EinSum` computes `acc = p · q` in i32 (tract's VNNI, AMX and aarch64 dot-product kernels,
//!    or akidb's own AVX2 and wasm SIMD128 ones);
//! 3. [`DequantRows`] gives `y[n] = a · s[n] · (acc[n] − z · Σₖ q[k, n])`, exact in i32 up to the last
//!    two f32 products: what `x̂ · W` is for the rounded `x̂ = a · (p − z)`.
//!
//! That is how the steps are wired natively ([`ProductOps::Tract`]); in wasm the three run as one op per
//! activation ([`super::fused`], [`ProductOps::Fused`]), with the same values.
//!
//! A bundle may name, per product, a few outlier input channels (`outlier_channels` in the manifest,
//! found at bundle build by [`super::calibrate`]): [`QuantizeRows`] takes them out of the row before it
//! picks the row's range, hands their f32 values on, and [`DequantRows`] adds their exact f32 product.
//! This model's LayerNorm outputs have a few channels 15× wider than the rest; left in, they set every
//! row's range and leave the other channels a few levels each.
//!
//! Accuracy against sentence-transformers, all 200 golden sentences: see `tests/golden.rs` and PERF.md.
//! Weights stay int8 (11 MB for MiniLM's layers) and are packed once per kernel layout, as f32 weights
//! are (`share::Packings`).

use std::collections::{HashMap, HashSet};
use std::sync::Arc;

use tract_onnx::prelude::*;
use tract_onnx::tract_core::ops::einsum::EinSum;
use tract_onnx::tract_core::ops::konst::Const;
use tract_onnx::tract_hir::internal::*;

use super::rewrite::{FoldedWeights, LazyWeight};
use crate::manifest::OutlierChannels;

/// Why the integer path would be slower than the exact one on this CPU (or wrong), if it would.
///
/// - x86-64: tract's int8 kernels are fast only with a dot-product instruction (AVX512-VNNI, AVX-VNNI or
///   AMX-INT8); its AVX2 emulation measured 50× slower than the f32 kernel (PERF.md). On AVX2 + FMA
///   CPUs without AVX-512 our own kernel (`crate::x86_kernels::i8`) runs the products instead; an
///   AVX-512 CPU without VNNI or AMX (Skylake-SP, Cascade Lake without VNNI) has neither and keeps
///   the f32 path. `TRACT_CPU_ISA` edits what tract sees, and both checks read that.
/// - wasm32: tract 0.23.9's int8 kernel (`wasm_i32_4x4`) is slower than akidb-core's f32 kernel in the
///   SIMD128 build, and in the relaxed-SIMD build its results varied from run to run (PERF.md); our own
///   SIMD128 kernel (`crate::wasm_kernels::i8`) runs the products in every build of akidb-wasm instead.
///   Only a build without SIMD128 (none ships) would be left with tract's scalar fallback.
/// - aarch64 (SDOT or SMLAL kernels) has no such cliff.
pub(crate) fn slow_integer_kernels() -> Option<&'static str> {
    #[cfg(target_arch = "x86_64")]
    {
        use tract_onnx::tract_core::tract_linalg::isa::{native, Isa};
        let dot = native()
            .iter()
            .any(|i| matches!(i, Isa::X86_64Avx512Vnni | Isa::X86_64AvxVnni | Isa::X86_64AmxInt8));
        let ours = crate::x86_kernels::weight_kernel_here(DatumType::I32).is_some();
        if !dot && !ours {
            return Some("this x86-64 CPU has AVX-512 but no AVX512-VNNI, AVX-VNNI or AMX-INT8");
        }
    }
    if cfg!(all(target_arch = "wasm32", not(target_feature = "simd128"))) {
        return Some("this wasm build has no SIMD128, which akidb's int8 kernel needs");
    }
    None
}

/// The activation and weight of `id` if it is a weight product the integer path can take: an f32
/// `EinSum` `…mk,kn->…mn` of an activation and a 2-D [`LazyWeight`].
pub(super) fn weight_product(model: &TypedModel, id: usize) -> TractResult<Option<(OutletId, &LazyWeight)>> {
    let node = model.node(id);
    let Some(einsum) = node.op_as::<EinSum>() else {
        return Ok(None);
    };
    let [x, w] = &*node.inputs else { return Ok(None) };
    let Some(weight) = model.node(w.node).op_as::<LazyWeight>() else {
        return Ok(None);
    };
    let x_rank = model.outlet_fact(*x)?.rank();
    let prefix: String = ('a'..).take(x_rank.saturating_sub(2)).collect();
    let takes = einsum.q_params.is_none()
        && einsum.operating_dt == f32::datum_type()
        && weight.q.rank() == 2
        && x_rank >= 2
        && einsum.axes.to_string() == format!("{prefix}mk,kn->{prefix}mn");
    Ok(takes.then_some((*x, weight)))
}

/// How the integer path's weight products are wired into the graph.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum ProductOps {
    /// [`QuantizeRows`] → tract's integer `EinSum` → [`DequantRows`]: tract picks the kernel (VNNI, AMX,
    /// aarch64's dot products, akidb's AVX2 one) and runs its tile loop.
    Tract,
    /// One [`FusedProducts`](super::fused::FusedProducts) per activation: akidb's 8×4 int8 kernel called
    /// tile by tile with the quantisation and the epilogue around it; the same values, bit for bit.
    Fused,
}

impl ProductOps {
    /// What runs fastest here: the fused op on wasm32 with SIMD128 (its kernel is the one tract would
    /// pick there, minus tract's per-tile work: PERF.md), tract's ops natively (wider kernels).
    pub(crate) fn here() -> ProductOps {
        if cfg!(all(target_arch = "wasm32", target_feature = "simd128")) {
            ProductOps::Fused
        } else {
            ProductOps::Tract
        }
    }
}

/// One weight product the integer path takes: the node, its activation, its int8 weights, the outlier
/// channels of that activation and the epilogue's constants.
pub(super) struct IntegerProduct {
    pub(super) node: usize,
    /// The activation, as the graph had it before any rewrite (the key that groups products).
    pub(super) x: OutletId,
    pub(super) q: Arc<Tensor>,
    pub(super) channels: Arc<[usize]>,
    pub(super) dequant: DequantRows,
}

/// The weight products of `model` the integer path takes, in graph order. Products reading the same
/// activation (attention's Q, K and V) share one quantisation, and so the outlier channels `outliers`
/// names for the first of them. A weight whose scale varies along `k` can't be factored out of the sum
/// and keeps the f32 product. Outlier channels named for a product the model does not have, or past
/// its input's width, are an error: the bundle was calibrated for another model.
fn integer_products(model: &TypedModel, outliers: &OutlierChannels) -> TractResult<Vec<IntegerProduct>> {
    let mut channels_of: HashMap<OutletId, Arc<[usize]>> = HashMap::new();
    let mut named: HashSet<String> = HashSet::new();
    let mut products = Vec::new();
    for node in model.nodes().iter().filter(|n| n.op_is::<EinSum>()) {
        let Some((x, weight)) = weight_product(model, node.id)? else {
            continue;
        };
        let (name, k) = (&node.name, weight.q.shape()[0]);
        let own: Option<Arc<[usize]>> = match outliers.get(name) {
            Some(channels) => {
                named.insert(name.clone());
                if let Some(&c) = channels.iter().find(|&&c| c as usize >= k) {
                    bail!("outlier channel {c} of {name} is past its {k} input channels");
                }
                Some(channels.iter().map(|&c| c as usize).collect())
            }
            None => None,
        };
        let channels = match channels_of.get(&x) {
            Some(shared) => shared.clone(),
            None => own.unwrap_or_else(|| Arc::from([])),
        };
        let Some(dequant) = DequantRows::for_weight(weight, &channels)? else {
            continue;
        };
        channels_of.entry(x).or_insert_with(|| channels.clone());
        products.push(IntegerProduct {
            node: node.id,
            x,
            q: weight.q.clone(),
            channels,
            dequant,
        });
    }
    if let Some(missing) = outliers.keys().find(|name| !named.contains(*name)) {
        bail!(
            "the manifest names outlier channels for {missing}, which is not a weight product of this model \
             (a bundle calibrated for another model)"
        );
    }
    Ok(products)
}

/// Rewrites every `EinSum(x, LazyWeight)` weight product of `model` into integer ops (see
/// [`integer_products`] for which, and [`ProductOps`] for the two wirings); returns how many. The fused
/// op's packed weights are kept in `packed` by product name, so graphs of every batch size share them.
pub(super) fn integer_matmuls(
    model: &mut TypedModel,
    outliers: &OutlierChannels,
    ops: ProductOps,
    packed: &mut FoldedWeights,
) -> TractResult<usize> {
    let products = integer_products(model, outliers)?;
    let count = products.len();
    match ops {
        ProductOps::Tract => wire_tract_products(model, products)?,
        ProductOps::Fused => super::fused::wire_fused_products(model, products, packed)?,
    }
    if count > 0 {
        model.compact()?;
    }
    Ok(count)
}

/// Each product as [`QuantizeRows`] (one per activation) → an integer `EinSum` over the int8 weights →
/// [`DequantRows`].
fn wire_tract_products(model: &mut TypedModel, products: Vec<IntegerProduct>) -> TractResult<()> {
    let mut quantised: HashMap<OutletId, TVec<OutletId>> = HashMap::new();
    for product in products {
        let node = model.node(product.node);
        let name = node.name.clone();
        let einsum = node.op_as::<EinSum>().context("a weight product")?;
        let int_einsum = EinSum {
            axes: einsum.axes.clone(),
            operating_dt: i32::datum_type(),
            q_params: None,
        };
        let mut patch = TypedModelPatch::default();
        let rows = match quantised.get(&product.x) {
            Some(outlets) => outlets
                .iter()
                .map(|o| patch.tap_model(model, *o))
                .collect::<TractResult<TVec<_>>>()?,
            None => {
                // The activation as the graph has it now: an earlier rewrite may have shunted its producer.
                let tapped = patch.tap_model(model, node.inputs[0])?;
                let op = QuantizeRows {
                    outliers: product.channels.clone(),
                };
                patch.wire_node(format!("{name}.quantize_rows"), op, &[tapped])?
            }
        };
        let q = patch.wire_node(format!("{name}.q"), Const::new(product.q)?, &[])?[0];
        let acc = patch.wire_node(format!("{name}.i32"), int_einsum, &[rows[0], q])?[0];
        let y = patch.wire_node(
            format!("{name}.dequant"),
            product.dequant,
            &[acc, rows[1], rows[2], rows[3]],
        )?[0];
        patch.shunt_outside(model, product.node.into(), y)?;
        let first_use = !quantised.contains_key(&product.x);
        patch.apply(model)?;
        if first_use {
            let quantize = format!("{name}.quantize_rows");
            let qnode = model
                .nodes()
                .iter()
                .rev()
                .find(|n| n.name == quantize)
                .map(|n| n.id)
                .context("the quantisation just wired")?;
            let outlets = (0..4).map(|slot| OutletId::new(qnode, slot)).collect();
            quantised.insert(product.x, outlets);
        }
    }
    Ok(())
}

/// Quantises each row (last axis) of an f32 tensor to int8 with its own scale and zero point, leaving
/// out the `outliers` channels.
///
/// Outputs: `p` (i8, the input's shape), `scale` (f32, the last axis 1), `zero` (i32, the same) and
/// `kept` (f32, the last axis the outlier channels' count): the row's values are `scale · (p − zero)`
/// up to half a level, except the outlier channels, whose `p` is `zero` (the value 0) and whose values
/// are `kept` as they are.
#[derive(Clone, Debug, PartialEq, Eq)]
pub(crate) struct QuantizeRows {
    /// Channel indices, increasing, each below the row length.
    pub(crate) outliers: Arc<[usize]>,
}

/// Scale, zero point and levels of one row: 255 levels (−127 … 127) over `[min(row, 0), max(row, 0)]`,
/// rounded half to even (as ONNX `Round`, which the accuracy simulation used).
///
/// Not −128, like the weights: an int8 dot-product kernel that splits one operand into sign and 7-bit
/// magnitude (tract's wasm relaxed-SIMD one) can't take it; with it that build's golden min cosine fell
/// to 0.38. One level fewer costs nothing measurable (native min cosine 0.991876 against 0.991204).
///
/// Written for the compiler to vectorise (this op was a third of a batch's time as scalar `f32::min` and
/// libm `rintf` calls): 16 lanes of running min/max, and rounding by the 1.5 · 2²³ trick, exact
/// round-half-even for |v| < 2²² (levels are within ±383 here).
///
/// With AVX2 where the CPU has it (the same operations in the same order, so the same levels).
pub(super) fn quantize_row(row: &[f32], out: &mut [i8]) -> (f32, i32) {
    #[cfg(target_arch = "x86_64")]
    if std::arch::is_x86_feature_detected!("avx2") {
        // SAFETY: the CPU has AVX2, all the function asks for.
        return unsafe { quantize_row_avx2(row, out) };
    }
    quantize_row_body(row, out)
}

#[cfg(target_arch = "x86_64")]
#[target_feature(enable = "avx2")]
unsafe fn quantize_row_avx2(row: &[f32], out: &mut [i8]) -> (f32, i32) {
    quantize_row_body(row, out)
}

#[inline(always)]
fn quantize_row_body(row: &[f32], out: &mut [i8]) -> (f32, i32) {
    const LANES: usize = 16;
    let (mut lo, mut hi) = ([0f32; LANES], [0f32; LANES]);
    let mut chunks = row.chunks_exact(LANES);
    for chunk in &mut chunks {
        for j in 0..LANES {
            lo[j] = if chunk[j] < lo[j] { chunk[j] } else { lo[j] };
            hi[j] = if chunk[j] > hi[j] { chunk[j] } else { hi[j] };
        }
    }
    for &v in chunks.remainder() {
        lo[0] = if v < lo[0] { v } else { lo[0] };
        hi[0] = if v > hi[0] { v } else { hi[0] };
    }
    let lo = lo.iter().fold(0f32, |a, &b| a.min(b));
    let hi = hi.iter().fold(0f32, |a, &b| a.max(b));
    let scale = (hi - lo) / 254.0;
    if !(scale > 0.0 && scale.is_finite()) {
        // All zeros (or not finite): level 0 is the value 0.
        out.fill(0);
        return (1.0, 0);
    }
    let zero = rounded_bits(-127.0 - lo / scale).clamp(-127, 127);
    // A product, not a division per value: the division's latency was most of this op's time.
    let inverse = 1.0 / scale;
    for (o, &v) in out.iter_mut().zip(row) {
        let level = rounded_bits(v * inverse) + zero;
        *o = level.clamp(-127, 127) as i8;
    }
    (scale, zero)
}

/// An error unless every outlier channel is within a row of `k` values.
pub(super) fn ensure_outliers_within(outliers: &[usize], k: usize) -> TractResult<()> {
    ensure!(
        outliers.iter().all(|&c| c < k),
        "outlier channels {outliers:?} past a row of {k}"
    );
    Ok(())
}

/// [`quantize_row`] of `row` with its `outliers` channels taken out: their values are pushed onto `kept`
/// and they quantise as 0 (level `zero`). `inliers` is scratch space.
pub(super) fn quantize_without_outliers(
    row: &[f32],
    outliers: &[usize],
    out: &mut [i8],
    inliers: &mut Vec<f32>,
    kept: &mut Vec<f32>,
) -> (f32, i32) {
    if outliers.is_empty() {
        return quantize_row(row, out);
    }
    inliers.clear();
    inliers.extend_from_slice(row);
    for &c in outliers {
        kept.push(row[c]);
        inliers[c] = 0.0;
    }
    quantize_row(inliers, out)
}

/// `v` rounded to the nearest integer, ties to even, for |v| < 2²² (under the default rounding mode): read
/// off the bits of `v + 1.5 · 2²³`, whose last mantissa bits hold it. No float-to-int conversion, which
/// SSE2 can't vectorise with Rust's saturating `as`.
#[inline(always)]
fn rounded_bits(v: f32) -> i32 {
    const MAGIC: f32 = 12_582_912.0; // 1.5 · 2²³: adding it leaves no fraction bits.
    (v + MAGIC).to_bits() as i32 - MAGIC.to_bits() as i32
}

impl Op for QuantizeRows {
    fn name(&self) -> StaticName {
        "QuantizeRows".into()
    }
    op_as_typed_op!();
}

impl EvalOp for QuantizeRows {
    op_out_of_plan!();

    fn eval(&self, _ctx: &EvalContext, inputs: TVec<TValue>) -> TractResult<TVec<TValue>> {
        let x = args_1!(inputs);
        let shape = x.shape().to_vec();
        let k = *shape.last().context("QuantizeRows needs rank ≥ 1")?;
        let outliers = &*self.outliers;
        ensure_outliers_within(outliers, k)?;
        let x = x.try_as_plain_ram()?;
        let x = x.as_slice::<f32>()?;
        let rows = x.len().checked_div(k).unwrap_or(0);
        // Written in place into the output tensor: a Vec handed to `Tensor::from_shape` is copied.
        let mut quantised = Tensor::zero::<i8>(&shape)?;
        let mut scales = Vec::with_capacity(rows);
        let mut zeros = Vec::with_capacity(rows);
        let mut kept = Vec::with_capacity(rows * outliers.len());
        // A row with its outlier channels zeroed (empty when there are none).
        let mut inliers = Vec::new();
        {
            let mut view = quantised.try_as_plain_ram_mut()?;
            let p = view.as_slice_mut::<i8>()?;
            for (row, out) in x.chunks_exact(k.max(1)).zip(p.chunks_exact_mut(k.max(1))) {
                let (scale, zero) = quantize_without_outliers(row, outliers, out, &mut inliers, &mut kept);
                scales.push(scale);
                zeros.push(zero);
            }
        }
        let mut row_shape = shape.clone();
        *row_shape.last_mut().expect("rank ≥ 1") = 1;
        let mut kept_shape = shape;
        *kept_shape.last_mut().expect("rank ≥ 1") = outliers.len();
        Ok(tvec!(
            quantised.into_tvalue(),
            Tensor::from_shape(&row_shape, &scales)?.into_tvalue(),
            Tensor::from_shape(&row_shape, &zeros)?.into_tvalue(),
            Tensor::from_shape(&kept_shape, &kept)?.into_tvalue(),
        ))
    }
}

impl TypedOp for QuantizeRows {
    fn output_facts(&self, inputs: &[&TypedFact]) -> TractResult<TVec<TypedFact>> {
        ensure!(inputs[0].datum_type == f32::datum_type() && inputs[0].rank() >= 1);
        let shape = inputs[0].shape.to_tvec();
        let mut row_shape = shape.clone();
        *row_shape.last_mut().expect("rank ≥ 1") = 1.to_dim();
        let mut kept_shape = shape.clone();
        *kept_shape.last_mut().expect("rank ≥ 1") = self.outliers.len().to_dim();
        Ok(tvec!(
            i8::fact(&*shape),
            f32::fact(&*row_shape),
            i32::fact(&*row_shape),
            f32::fact(&*kept_shape)
        ))
    }
    as_op!();
}

/// `y[.., c] = scale[..] · wscale[c] · (acc[.., c] − zero[..] · colsum[c]) + Σⱼ kept[.., j] · outlier_weights[j, c]`:
/// the f32 product of a row quantised by [`QuantizeRows`] and the weights `q · wscale`, from the i32
/// `acc = p · q` and the f32 values of the row's outlier channels.
#[derive(Clone, Debug)]
pub(crate) struct DequantRows {
    /// `Σₖ q[k, c]` per output column (i32).
    pub(super) colsum: Arc<Tensor>,
    /// The weights' scale per output column (f32).
    pub(super) wscale: Arc<Tensor>,
    /// The dequantised weight rows of the outlier channels, `[outliers, n]` (f32).
    pub(super) outlier_weights: Arc<Tensor>,
}

impl PartialEq for DequantRows {
    fn eq(&self, other: &Self) -> bool {
        self.colsum == other.colsum
            && self.wscale == other.wscale
            && self.outlier_weights == other.outlier_weights
    }
}
impl Eq for DequantRows {}

impl DequantRows {
    /// The epilogue for `weight` (`[k, n]`), if its scale is one per output column (or one in all), with
    /// the input channels `outliers` multiplied in f32.
    pub(super) fn for_weight(weight: &LazyWeight, outliers: &[usize]) -> TractResult<Option<DequantRows>> {
        let (k, n) = (weight.q.shape()[0], weight.q.shape()[1]);
        let scale = weight.scale.to_plain_array_view::<f32>()?;
        let scale_shape: TVec<usize> = scale.shape().into();
        // One scale per column broadcasts as [n], [1, n] or a scalar: constant along k.
        let per_column = match &*scale_shape {
            [] | [1] => true,
            [c] => *c == n,
            [1, c] | [1, 1, c] => *c == n || *c == 1,
            _ => false,
        };
        if !per_column || k == 0 {
            return Ok(None);
        }
        let scale = scale
            .broadcast((k, n))
            .context("scale does not broadcast to the weights")?;
        let wscale: Vec<f32> = scale.row(0).to_vec();
        let q = weight.q.to_plain_array_view::<i8>()?;
        let q = q.into_dimensionality::<tract_ndarray::Ix2>()?;
        let colsum: Vec<i32> = q
            .columns()
            .into_iter()
            .map(|c| c.iter().map(|&v| v as i32).sum())
            .collect();
        // The same f32 values the exact path multiplies by (`q as f32 * scale`, one product each).
        let mut outlier_weights = Vec::with_capacity(outliers.len() * n);
        for &c in outliers {
            ensure!(c < k, "outlier channel {c} past {k} input channels");
            outlier_weights.extend(q.row(c).iter().zip(&wscale).map(|(&v, &s)| v as f32 * s));
        }
        Ok(Some(DequantRows {
            colsum: Arc::new(Tensor::from_shape(&[n], &colsum)?),
            wscale: Arc::new(Tensor::from_shape(&[n], &wscale)?),
            outlier_weights: Arc::new(Tensor::from_shape(&[outliers.len(), n], &outlier_weights)?),
        }))
    }
}

impl Op for DequantRows {
    fn name(&self) -> StaticName {
        "DequantRows".into()
    }
    op_as_typed_op!();
}

impl EvalOp for DequantRows {
    op_out_of_plan!();

    fn eval(&self, _ctx: &EvalContext, inputs: TVec<TValue>) -> TractResult<TVec<TValue>> {
        let (acc, scales, zeros, kept) = args_4!(inputs);
        let shape = acc.shape().to_vec();
        let colsum = self.colsum.try_as_plain_ram()?;
        let colsum = colsum.as_slice::<i32>()?;
        let wscale = self.wscale.try_as_plain_ram()?;
        let wscale = wscale.as_slice::<f32>()?;
        let outlier_weights = self.outlier_weights.try_as_plain_ram()?;
        let outlier_weights = outlier_weights.as_slice::<f32>()?;
        let n = colsum.len();
        let outliers = self.outlier_weights.shape()[0];
        ensure!(shape.last() == Some(&n), "accumulator {shape:?} for {n} columns");
        let acc = acc.try_as_plain_ram()?;
        let acc = acc.as_slice::<i32>()?;
        let scales = scales.try_as_plain_ram()?;
        let scales = scales.as_slice::<f32>()?;
        let zeros = zeros.try_as_plain_ram()?;
        let zeros = zeros.as_slice::<i32>()?;
        let kept = kept.try_as_plain_ram()?;
        let kept = kept.as_slice::<f32>()?;
        ensure!(acc.len() == scales.len() * n && zeros.len() == scales.len());
        ensure!(
            kept.len() == scales.len() * outliers,
            "{} kept values",
            kept.len()
        );
        // Written in place into the output tensor: a Vec handed to `Tensor::from_shape` is copied.
        let mut output = Tensor::zero::<f32>(&shape)?;
        let mut view = output.try_as_plain_ram_mut()?;
        let y = view.as_slice_mut::<f32>()?;
        ensure!(y.len() == acc.len());
        for (row, (((out, acc), &a), &z)) in y
            .chunks_exact_mut(n)
            .zip(acc.chunks_exact(n))
            .zip(scales)
            .zip(zeros)
            .enumerate()
        {
            let row_kept = &kept[row * outliers..(row + 1) * outliers];
            dequant_row(out, acc, colsum, wscale, (a, z), row_kept, outlier_weights);
        }
        Ok(tvec!(output.into_tvalue()))
    }
}

/// One row of [`DequantRows`]: `out[c] = a · wscale[c] · (acc[c] − z · colsum[c]) + Σⱼ kept[j] ·
/// outlier_weights[j, c]`. With AVX2 where the CPU has it (the same operations in the same order, so the
/// same results): 8 lanes instead of SSE2's 4. With [`quantize_row`]'s, a single sentence of the
/// `int8-dynamic` bundle fell from 3.4 to 2.4 ms natively (PERF.md).
fn dequant_row(
    out: &mut [f32],
    acc: &[i32],
    colsum: &[i32],
    wscale: &[f32],
    (a, z): (f32, i32),
    kept: &[f32],
    outlier_weights: &[f32],
) {
    #[cfg(target_arch = "x86_64")]
    if std::arch::is_x86_feature_detected!("avx2") {
        // SAFETY: the CPU has AVX2, all the function asks for.
        return unsafe { dequant_row_avx2(out, acc, colsum, wscale, (a, z), kept, outlier_weights) };
    }
    dequant_row_body(out, acc, colsum, wscale, (a, z), kept, outlier_weights)
}

#[cfg(target_arch = "x86_64")]
#[target_feature(enable = "avx2")]
unsafe fn dequant_row_avx2(
    out: &mut [f32],
    acc: &[i32],
    colsum: &[i32],
    wscale: &[f32],
    scale_zero: (f32, i32),
    kept: &[f32],
    outlier_weights: &[f32],
) {
    dequant_row_body(out, acc, colsum, wscale, scale_zero, kept, outlier_weights)
}

#[inline(always)]
fn dequant_row_body(
    out: &mut [f32],
    acc: &[i32],
    colsum: &[i32],
    wscale: &[f32],
    (a, z): (f32, i32),
    kept: &[f32],
    outlier_weights: &[f32],
) {
    for (((o, &acc), &sum), &s) in out.iter_mut().zip(acc).zip(colsum).zip(wscale) {
        *o = acc.wrapping_sub(z.wrapping_mul(sum)) as f32 * (a * s);
    }
    for (&v, weights) in kept.iter().zip(outlier_weights.chunks_exact(out.len().max(1))) {
        for (o, &w) in out.iter_mut().zip(weights) {
            *o += v * w;
        }
    }
}

impl TypedOp for DequantRows {
    fn output_facts(&self, inputs: &[&TypedFact]) -> TractResult<TVec<TypedFact>> {
        ensure!(inputs.len() == 4 && inputs[0].datum_type == i32::datum_type());
        Ok(tvec!(f32::fact(&*inputs[0].shape.to_tvec())))
    }
    as_op!();
}

#[cfg(test)]
mod tests {
    use super::*;

    fn no_outliers() -> QuantizeRows {
        QuantizeRows {
            outliers: Arc::from([]),
        }
    }

    /// `DequantRows` of `rows × k` levels `quantised` (QuantizeRows' outputs) times the int8 weights `q`
    /// (`[k, n]`, row-major): the i32 product computed here, then the epilogue; `[rows, n]` row-major.
    fn dequantised(
        dequant: &DequantRows,
        quantised: &[TValue],
        q: &[i8],
        (rows, k, n): (usize, usize, usize),
    ) -> Vec<f32> {
        let p = plain::<i8>(&quantised[0]);
        let acc: Vec<i32> = (0..rows * n)
            .map(|i| (i / n, i % n))
            .map(|(r, c)| (0..k).map(|j| p[r * k + j] as i32 * q[j * n + c] as i32).sum())
            .collect();
        let y = dequant
            .eval_out_of_plan(tvec!(
                Tensor::from_shape(&[rows, n], &acc).unwrap().into_tvalue(),
                quantised[1].clone(),
                quantised[2].clone(),
                quantised[3].clone(),
            ))
            .unwrap()
            .unwrap();
        plain::<f32>(&y[0])
    }

    /// A tensor's elements, copied out (the tensors here are plain host memory).
    fn plain<T: Datum + Copy>(t: &Tensor) -> Vec<T> {
        t.try_as_plain_ram().unwrap().as_slice::<T>().unwrap().to_vec()
    }

    #[test]
    fn a_quantised_row_comes_back_within_half_a_level() {
        let row: Vec<f32> = (0..384).map(|i| ((i * 37 % 101) as f32 - 20.0) * 0.3).collect();
        let mut p = vec![0i8; row.len()];
        let (scale, zero) = quantize_row(&row, &mut p);
        let (lo, hi) = (-20.0 * 0.3, 80.0 * 0.3);
        assert!((scale - (hi - lo) / 254.0).abs() < 1e-6, "scale {scale}");
        for (&v, &q) in row.iter().zip(&p) {
            let back = scale * (q as i32 - zero) as f32;
            assert!((back - v).abs() <= scale * 0.5 + 1e-5, "{v} came back as {back}");
        }
        // The extremes take the end levels; 0 is exactly representable.
        assert_eq!((p.iter().min(), p.iter().max()), (Some(&-127), Some(&127)));
        assert_eq!(scale * (zero - zero) as f32, 0.0);
    }

    #[test]
    fn rounding_is_half_to_even_like_onnx_round() {
        for (v, want) in [
            (0.5f32, 0.0f32),
            (1.5, 2.0),
            (2.5, 2.0),
            (-0.5, -0.0),
            (-1.5, -2.0),
            (2.4999, 2.0),
            (-383.5, -384.0),
        ] {
            assert_eq!(rounded_bits(v), want as i32, "{v}");
            assert_eq!(rounded_bits(v), v.round_ties_even() as i32, "{v}");
        }
    }

    #[test]
    fn an_all_zero_row_is_all_zero_levels() {
        let mut p = vec![1i8; 8];
        assert_eq!(quantize_row(&[0.0; 8], &mut p), (1.0, 0));
        assert_eq!(p, vec![0; 8]);
    }

    #[test]
    fn the_epilogue_gives_the_f32_product_of_the_rounded_rows() {
        // x: 2 rows of k = 3; q: [3, 2] with per-column scales.
        let x = [0.5f32, -1.0, 2.0, 3.0, 0.0, -0.25];
        let q = [1i8, -2, 3, 4, -5, 6];
        let wscale = [0.1f32, 0.02];
        let weight = LazyWeight {
            q: Arc::new(Tensor::from_shape(&[3, 2], &q).unwrap()),
            scale: Arc::new(Tensor::from_shape(&[1, 2], &wscale).unwrap()),
        };
        let dequant = DequantRows::for_weight(&weight, &[])
            .unwrap()
            .expect("per-column scale");
        let quantised = no_outliers()
            .eval_out_of_plan(tvec!(Tensor::from_shape(&[2, 3], &x).unwrap().into_tvalue()))
            .unwrap()
            .unwrap();
        let p = plain::<i8>(&quantised[0]);
        let scales = plain::<f32>(&quantised[1]);
        let zeros = plain::<i32>(&quantised[2]);
        let y = dequantised(&dequant, &quantised, &q, (2, 3, 2));
        for r in 0..2 {
            for c in 0..2 {
                let rounded = |k: usize| scales[r] * (p[r * 3 + k] as i32 - zeros[r]) as f32;
                let want: f32 = (0..3).map(|k| rounded(k) * q[k * 2 + c] as f32 * wscale[c]).sum();
                let exact: f32 = (0..3)
                    .map(|k| x[r * 3 + k] * q[k * 2 + c] as f32 * wscale[c])
                    .sum();
                assert!(
                    (y[r * 2 + c] - want).abs() < 1e-6,
                    "[{r},{c}] {} vs {want}",
                    y[r * 2 + c]
                );
                assert!(
                    (y[r * 2 + c] - exact).abs() < 0.02,
                    "[{r},{c}] {} vs exact {exact}",
                    y[r * 2 + c]
                );
            }
        }
    }

    #[test]
    fn outlier_channels_leave_the_range_and_come_back_exact() {
        // Two rows of k = 6; channel 4 is 40× the others, as this model's LayerNorm outliers are.
        let x = [
            0.1f32, -0.2, 0.3, 0.05, 12.0, -0.15, -0.3, 0.2, 0.1, 0.25, 9.5, 0.0,
        ];
        let q = [3i8, -7, 12, 5, -9, 1, 4, -2, 100, -100, 6, 8]; // [6, 2]
        let wscale = [0.01f32, 0.03];
        let weight = LazyWeight {
            q: Arc::new(Tensor::from_shape(&[6, 2], &q).unwrap()),
            scale: Arc::new(Tensor::from_shape(&[2], &wscale).unwrap()),
        };
        let input = || tvec!(Tensor::from_shape(&[2, 6], &x).unwrap().into_tvalue());
        let exact = |r: usize, c: usize| -> f32 {
            (0..6)
                .map(|k| x[r * 6 + k] * (q[k * 2 + c] as f32 * wscale[c]))
                .sum()
        };
        let error_with = |outliers: &[usize]| -> f32 {
            let op = QuantizeRows {
                outliers: outliers.into(),
            };
            let out = op.eval_out_of_plan(input()).unwrap().unwrap();
            let p = plain::<i8>(&out[0]);
            let kept = plain::<f32>(&out[3]);
            assert_eq!(out[3].shape(), &[2, outliers.len()]);
            let zeros = plain::<i32>(&out[2]);
            for (r, &z) in zeros.iter().enumerate() {
                for (j, &c) in outliers.iter().enumerate() {
                    assert_eq!(p[r * 6 + c] as i32, z, "an outlier channel reads as 0");
                    assert_eq!(kept[r * outliers.len() + j], x[r * 6 + c], "kept as it was");
                }
            }
            let dequant = DequantRows::for_weight(&weight, outliers).unwrap().unwrap();
            let y = dequantised(&dequant, &out, &q, (2, 6, 2));
            (0..4)
                .map(|i| (y[i] - exact(i / 2, i % 2)).abs())
                .fold(0.0, f32::max)
        };
        let with_all = error_with(&[]);
        let without_outlier = error_with(&[4]);
        // The outlier sets the range: a level is 12.3 / 254 ≈ 0.05, so the small channels round badly.
        assert!(with_all > 2e-3, "all channels quantised: max error {with_all}");
        // Out of the range, a level is 0.6 / 254: the error falls by an order of magnitude at least.
        assert!(
            without_outlier < with_all / 10.0,
            "outlier kept in f32: {without_outlier} vs {with_all}"
        );
    }

    #[test]
    fn an_outlier_channel_past_the_row_is_an_error() {
        let op = QuantizeRows {
            outliers: Arc::from([6usize]),
        };
        let x = Tensor::from_shape(&[1, 6], &[0f32; 6]).unwrap();
        let err = op.eval_out_of_plan(tvec!(x.into_tvalue())).unwrap_err();
        assert!(format!("{err}").contains("outlier channels [6]"), "{err}");
    }

    /// The AVX2 builds of the row loops (picked at run time) give what the portable ones give, bit for
    /// bit: a wasm build and an x86-64 one differ only in how many lanes run at once.
    #[test]
    fn the_dispatched_row_loops_equal_the_portable_ones() {
        let mut seed = 0x2545_f491_u32;
        let mut next = || {
            seed ^= seed << 13;
            seed ^= seed >> 17;
            seed ^= seed << 5;
            (seed % 20_000) as f32 / 1000.0 - 6.0
        };
        for k in [7usize, 384, 1536] {
            let row: Vec<f32> = (0..k).map(|_| next()).collect();
            let (mut fast, mut portable) = (vec![0i8; k], vec![0i8; k]);
            assert_eq!(
                quantize_row(&row, &mut fast),
                quantize_row_body(&row, &mut portable)
            );
            assert_eq!(fast, portable, "k = {k}");

            let n = k;
            let acc: Vec<i32> = (0..n).map(|_| (next() * 4000.0) as i32).collect();
            let colsum: Vec<i32> = (0..n).map(|_| (next() * 300.0) as i32).collect();
            let wscale: Vec<f32> = (0..n).map(|_| next().abs() * 1e-3).collect();
            let kept = [next(), next(), next()];
            let weights: Vec<f32> = (0..3 * n).map(|_| next() * 0.01).collect();
            let (mut fast, mut portable) = (vec![0f32; n], vec![0f32; n]);
            let az = (0.037, 12);
            dequant_row(&mut fast, &acc, &colsum, &wscale, az, &kept, &weights);
            dequant_row_body(&mut portable, &acc, &colsum, &wscale, az, &kept, &weights);
            assert_eq!(
                fast.iter().map(|v| v.to_bits()).collect::<Vec<_>>(),
                portable.iter().map(|v| v.to_bits()).collect::<Vec<_>>(),
                "n = {n}"
            );
        }
    }
}
