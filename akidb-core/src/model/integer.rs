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
//! Accuracy against sentence-transformers, all 200 golden sentences: see `tests/golden.rs` and PERF.md.
//! Weights stay int8 (11 MB for MiniLM's layers) and are packed once per kernel layout, as f32 weights
//! are (`share::Packings`).

use std::collections::HashMap;
use std::sync::Arc;

use tract_onnx::prelude::*;
use tract_onnx::tract_core::ops::einsum::EinSum;
use tract_onnx::tract_core::ops::konst::Const;
use tract_onnx::tract_hir::internal::*;

use super::rewrite::LazyWeight;

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

/// Rewrites every `EinSum(x, LazyWeight)` weight product of `model` into [`QuantizeRows`], an integer
/// `EinSum` over the int8 weights and [`DequantRows`]; returns how many. Products reading the same
/// activation (attention's Q, K and V) share one quantisation. A weight whose scale varies along `k`
/// can't be factored out of the sum and keeps the f32 product.
pub(super) fn integer_matmuls(model: &mut TypedModel) -> TractResult<usize> {
    let candidates: Vec<usize> = model
        .nodes()
        .iter()
        .filter(|n| n.op_is::<EinSum>())
        .map(|n| n.id)
        .collect();
    let mut quantised: HashMap<OutletId, TVec<OutletId>> = HashMap::new();
    let mut count = 0;
    for id in candidates {
        let node = model.node(id);
        let einsum = node.op_as::<EinSum>().expect("filtered above");
        let [x, w] = &*node.inputs else { continue };
        let Some(weight) = model.node(w.node).op_as::<LazyWeight>() else {
            continue;
        };
        let x_rank = model.outlet_fact(*x)?.rank();
        let prefix: String = ('a'..).take(x_rank.saturating_sub(2)).collect();
        if einsum.q_params.is_some()
            || einsum.operating_dt != f32::datum_type()
            || weight.q.rank() != 2
            || x_rank < 2
            || einsum.axes.to_string() != format!("{prefix}mk,kn->{prefix}mn")
        {
            continue;
        }
        let Some(dequant) = DequantRows::for_weight(weight)? else {
            continue;
        };
        let (name, x, q) = (node.name.clone(), *x, weight.q.clone());
        let mut patch = TypedModelPatch::default();
        let rows = match quantised.get(&x) {
            Some(outlets) => outlets
                .iter()
                .map(|o| patch.tap_model(model, *o))
                .collect::<TractResult<TVec<_>>>()?,
            None => {
                let tapped = patch.tap_model(model, x)?;
                patch.wire_node(format!("{name}.quantize_rows"), QuantizeRows, &[tapped])?
            }
        };
        let q = patch.wire_node(format!("{name}.q"), Const::new(q)?, &[])?[0];
        let int_einsum = EinSum {
            axes: einsum.axes.clone(),
            operating_dt: i32::datum_type(),
            q_params: None,
        };
        let acc = patch.wire_node(format!("{name}.i32"), int_einsum, &[rows[0], q])?[0];
        let y = patch.wire_node(format!("{name}.dequant"), dequant, &[acc, rows[1], rows[2]])?[0];
        patch.shunt_outside(model, id.into(), y)?;
        let first_use = !quantised.contains_key(&x);
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
            quantised.insert(x, (0..3).map(|slot| OutletId::new(qnode, slot)).collect());
        }
        count += 1;
    }
    if count > 0 {
        model.compact()?;
    }
    Ok(count)
}

/// Quantises each row (last axis) of an f32 tensor to int8 with its own scale and zero point.
///
/// Outputs: `p` (i8, the input's shape), `scale` (f32, the last axis 1) and `zero` (i32, the same): the
/// row's values are `scale · (p − zero)` up to half a level.
#[derive(Clone, Debug, PartialEq, Eq)]
pub(crate) struct QuantizeRows;

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
fn quantize_row(row: &[f32], out: &mut [i8]) -> (f32, i32) {
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
    for (o, &v) in out.iter_mut().zip(row) {
        let level = rounded_bits(v / scale) + zero;
        *o = level.clamp(-127, 127) as i8;
    }
    (scale, zero)
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
        let x = x.try_as_plain_ram()?;
        let x = x.as_slice::<f32>()?;
        let rows = x.len().checked_div(k).unwrap_or(0);
        // Written in place into the output tensor: a Vec handed to `Tensor::from_shape` is copied.
        let mut quantised = Tensor::zero::<i8>(&shape)?;
        let mut scales = Vec::with_capacity(rows);
        let mut zeros = Vec::with_capacity(rows);
        {
            let mut view = quantised.try_as_plain_ram_mut()?;
            let p = view.as_slice_mut::<i8>()?;
            for (row, out) in x.chunks_exact(k.max(1)).zip(p.chunks_exact_mut(k.max(1))) {
                let (scale, zero) = quantize_row(row, out);
                scales.push(scale);
                zeros.push(zero);
            }
        }
        let mut row_shape = shape.clone();
        *row_shape.last_mut().expect("rank ≥ 1") = 1;
        Ok(tvec!(
            quantised.into_tvalue(),
            Tensor::from_shape(&row_shape, &scales)?.into_tvalue(),
            Tensor::from_shape(&row_shape, &zeros)?.into_tvalue(),
        ))
    }
}

impl TypedOp for QuantizeRows {
    fn output_facts(&self, inputs: &[&TypedFact]) -> TractResult<TVec<TypedFact>> {
        ensure!(inputs[0].datum_type == f32::datum_type() && inputs[0].rank() >= 1);
        let shape = inputs[0].shape.to_tvec();
        let mut row_shape = shape.clone();
        *row_shape.last_mut().expect("rank ≥ 1") = 1.to_dim();
        Ok(tvec!(
            i8::fact(&*shape),
            f32::fact(&*row_shape),
            i32::fact(&*row_shape)
        ))
    }
    as_op!();
}

/// `y[.., c] = scale[..] · wscale[c] · (acc[.., c] − zero[..] · colsum[c])`: the f32 product of a row
/// quantised by [`QuantizeRows`] and the weights `q · wscale`, from the i32 `acc = p · q`.
#[derive(Clone, Debug)]
pub(crate) struct DequantRows {
    /// `Σₖ q[k, c]` per output column (i32).
    colsum: Arc<Tensor>,
    /// The weights' scale per output column (f32).
    wscale: Arc<Tensor>,
}

impl PartialEq for DequantRows {
    fn eq(&self, other: &Self) -> bool {
        self.colsum == other.colsum && self.wscale == other.wscale
    }
}
impl Eq for DequantRows {}

impl DequantRows {
    /// The epilogue for `weight` (`[k, n]`), if its scale is one per output column (or one in all).
    fn for_weight(weight: &LazyWeight) -> TractResult<Option<DequantRows>> {
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
        Ok(Some(DequantRows {
            colsum: Arc::new(Tensor::from_shape(&[n], &colsum)?),
            wscale: Arc::new(Tensor::from_shape(&[n], &wscale)?),
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
        let (acc, scales, zeros) = args_3!(inputs);
        let shape = acc.shape().to_vec();
        let colsum = self.colsum.try_as_plain_ram()?;
        let colsum = colsum.as_slice::<i32>()?;
        let wscale = self.wscale.try_as_plain_ram()?;
        let wscale = wscale.as_slice::<f32>()?;
        let n = colsum.len();
        ensure!(shape.last() == Some(&n), "accumulator {shape:?} for {n} columns");
        let acc = acc.try_as_plain_ram()?;
        let acc = acc.as_slice::<i32>()?;
        let scales = scales.try_as_plain_ram()?;
        let scales = scales.as_slice::<f32>()?;
        let zeros = zeros.try_as_plain_ram()?;
        let zeros = zeros.as_slice::<i32>()?;
        ensure!(acc.len() == scales.len() * n && zeros.len() == scales.len());
        // Written in place into the output tensor: a Vec handed to `Tensor::from_shape` is copied.
        let mut output = Tensor::zero::<f32>(&shape)?;
        let mut view = output.try_as_plain_ram_mut()?;
        let y = view.as_slice_mut::<f32>()?;
        ensure!(y.len() == acc.len());
        for (((out, acc), &a), &z) in y
            .chunks_exact_mut(n)
            .zip(acc.chunks_exact(n))
            .zip(scales)
            .zip(zeros)
        {
            for (((o, &acc), &sum), &s) in out.iter_mut().zip(acc).zip(colsum).zip(wscale) {
                *o = acc.wrapping_sub(z.wrapping_mul(sum)) as f32 * (a * s);
            }
        }
        Ok(tvec!(output.into_tvalue()))
    }
}

impl TypedOp for DequantRows {
    fn output_facts(&self, inputs: &[&TypedFact]) -> TractResult<TVec<TypedFact>> {
        ensure!(inputs.len() == 3 && inputs[0].datum_type == i32::datum_type());
        Ok(tvec!(f32::fact(&*inputs[0].shape.to_tvec())))
    }
    as_op!();
}

#[cfg(test)]
mod tests {
    use super::*;

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
        let dequant = DequantRows::for_weight(&weight)
            .unwrap()
            .expect("per-column scale");
        let quantised = QuantizeRows
            .eval_out_of_plan(tvec!(Tensor::from_shape(&[2, 3], &x).unwrap().into_tvalue()))
            .unwrap()
            .unwrap();
        let p = plain::<i8>(&quantised[0]);
        let scales = plain::<f32>(&quantised[1]);
        let zeros = plain::<i32>(&quantised[2]);
        let acc: Vec<i32> = (0..2)
            .flat_map(|r| (0..2).map(move |c| (r, c)))
            .map(|(r, c)| (0..3).map(|k| p[r * 3 + k] as i32 * q[k * 2 + c] as i32).sum())
            .collect();
        let y = dequant
            .eval_out_of_plan(tvec!(
                Tensor::from_shape(&[2, 2], &acc).unwrap().into_tvalue(),
                quantised[1].clone(),
                quantised[2].clone(),
            ))
            .unwrap()
            .unwrap();
        let y = plain::<f32>(&y[0]);
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
}
