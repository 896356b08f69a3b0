//! Graph rewrites made once at load, so that no run repeats work on constants: folding what only
//! depends on constants, looking up int8 embedding rows before dequantising them, and turning the other
//! int8 weights into f32 constants. Also the typing of the graph for one batch size, which runs them.

use std::collections::HashMap;
use std::sync::Arc;

use tract_onnx::prelude::*;
use tract_onnx::tract_core::ops::array::Gather;
use tract_onnx::tract_core::ops::cast::Cast;
use tract_onnx::tract_core::ops::konst::Const;
use tract_onnx::tract_hir::internal::TractErrorContext;

use super::integer::ProductOps;
use super::model_error;
use crate::error::Result;
use crate::manifest::OutlierChannels;

/// Evaluates, once at load, every node whose inputs are all constants — shape arithmetic, small
/// tables — within tract's own budget for constant folding, and makes it a constant. The int8 layer
/// weights' `Mul(Cast(q), scale)` are made [`LazyWeight`]s first ([`lazy_dequantise`]) and stay int8.
///
/// tract's type analysis does exactly this while it types the graph, and it does it again for every
/// batch size's graph: it was a quarter of the load (the first plan's compile included) on x86-64. Done
/// here, the analysis finds the results already constant, and every batch size's graph shares them.
/// The int8 word-embedding table (11.7 MB) is over the budget, as it is for tract, and stays int8 for
/// [`gather_before_dequantise`].
///
/// Everything is evaluated first and the graph is rewritten by one patch: a patch per folded node cost
/// more than the evaluation (each apply walks the graph). An intermediate value (a `Cast` feeding only
/// its `Mul`) is dropped as soon as its last consumer has run, so at most one layer's worth is held.
pub(super) fn fold_constants(model: &mut InferenceModel) -> TractResult<()> {
    lazy_dequantise(model)?;
    use tract_onnx::tract_core::optim::CONST_FOLD_MEM_BUDGET;
    use tract_onnx::tract_hir::infer::InferenceModelPatch;
    let bytes = |t: &Tensor| (t.len() * t.datum_type().size_of()) as u64;
    let outputs: Vec<OutletId> = model.output_outlets()?.to_vec();
    // The constant value of each node's (single) output: Const nodes, then every node folded.
    let mut values: HashMap<usize, Arc<Tensor>> = HashMap::new();
    // For each constant node (Const or folded), its consumers not yet visited; at zero, a value no
    // outside node needs can go. Its keys are the graph's constant part.
    let mut pending: HashMap<usize, usize> = HashMap::new();
    let mut folded: Vec<usize> = vec![];
    let consumed_outside = |model: &InferenceModel, pending: &HashMap<usize, usize>, id: usize| {
        outputs.contains(&id.into())
            || model.node(id).outputs[0]
                .successors
                .iter()
                .any(|s| !pending.contains_key(&s.node))
    };
    for id in model.eval_order()? {
        let node = model.node(id);
        if let Some(konst) = node.op_as::<Const>() {
            values.insert(id, konst.val().clone());
            pending.insert(id, node.outputs[0].successors.len());
            continue;
        }
        let foldable = (|| {
            if node.inputs.is_empty() || node.outputs.len() != 1 {
                return None;
            }
            let inputs = node
                .inputs
                .iter()
                .map(|o| (o.slot == 0).then(|| values.get(&o.node).cloned()).flatten())
                .collect::<Option<TVec<Arc<Tensor>>>>()?;
            if inputs
                .iter()
                .any(|v| !v.is_plain_ram() || bytes(v) > CONST_FOLD_MEM_BUDGET)
            {
                return None;
            }
            let input_bytes: u64 = inputs.iter().map(|v| bytes(v)).sum();
            if node.op.name() == "Mul" {
                if let Some(product) = f32_product(&inputs) {
                    return Some(product);
                }
            }
            let inputs = inputs.into_iter().map(|v| v.into_tvalue()).collect();
            // An op that can't run out of a plan (it wants its facts, or a session) is left to tract.
            let mut out = node.op.eval_out_of_plan(inputs).ok()??;
            (out.len() == 1 && bytes(&out[0]) <= input_bytes.max(CONST_FOLD_MEM_BUDGET))
                .then(|| out.remove(0).into_arc_tensor())
        })();
        if let Some(value) = foldable {
            values.insert(id, value);
            pending.insert(id, node.outputs[0].successors.len());
            folded.push(id);
        }
        for input in &node.inputs {
            let Some(left) = pending.get_mut(&input.node) else {
                continue;
            };
            *left -= 1;
            if *left == 0 && !consumed_outside(model, &pending, input.node) {
                values.remove(&input.node);
            }
        }
    }
    let mut patch = InferenceModelPatch::default();
    for id in folded {
        if consumed_outside(model, &pending, id) {
            let value = values.remove(&id).expect("a value consumed outside is kept");
            let wire = patch.add_const(format!("{}.folded", model.node(id).name), value)?;
            patch.shunt_outside(model, id.into(), wire)?;
        }
    }
    patch.apply(model)?;
    model.compact()
}

pub(super) use lazy::LazyWeight;

/// Makes every [`LazyWeight`] of `model` a constant holding its f32 weights; returns how many.
///
/// For GPU plans: tract-cuda uploads a plan's constants to the device once and runs the weight products
/// on cuBLAS, but it has no kernel for a `LazyWeight`. Left lazy, each weight would stay a CPU op, and
/// every call would dequantise all the layers' weights on the CPU and copy them up (about 88 MB for
/// MiniLM). The f32 copies live only while the plan is compiled; the plan keeps the device's.
#[cfg_attr(not(feature = "cuda-backend"), allow(dead_code))]
pub(super) fn materialise_lazy_weights(model: &mut TypedModel) -> TractResult<usize> {
    let lazy: Vec<usize> = model
        .nodes()
        .iter()
        .filter(|n| n.op_is::<LazyWeight>())
        .map(|n| n.id)
        .collect();
    if lazy.is_empty() {
        return Ok(0);
    }
    let mut patch = TypedModelPatch::default();
    for &id in &lazy {
        let node = model.node(id);
        let weight = node.op_as::<LazyWeight>().expect("filtered above");
        let wire = patch.add_const(format!("{}.dequantised", node.name), weight.dequantise()?)?;
        patch.shunt_outside(model, id.into(), wire)?;
    }
    patch.apply(model)?;
    model.compact()?;
    Ok(lazy.len())
}

/// Rewrites every `IsNan(x)` of `model` as `x != x` (true exactly for NaN); returns how many.
///
/// For GPU plans: the exported attention zeroes a softmax's NaNs (`Where(IsNan(p), 0, p)`, a row whose
/// keys are all masked) in every layer, and tract-cuda has no IsNan kernel but has `ne`. Left as it is,
/// each layer's attention probabilities went to the CPU and back, a synchronisation per layer.
#[cfg_attr(not(feature = "cuda-backend"), allow(dead_code))]
pub(super) fn is_nan_as_self_comparison(model: &mut TypedModel) -> TractResult<usize> {
    use tract_onnx::tract_core::ops::binary::TypedBinOp;
    use tract_onnx::tract_core::ops::element_wise::ElementWiseOp;
    use tract_onnx::tract_core::ops::logic::comp_ne;
    let is_nan: Vec<usize> = model
        .nodes()
        .iter()
        .filter(|n| {
            n.op_as::<ElementWiseOp>()
                .is_some_and(|op| op.0.name() == "IsNan")
        })
        .map(|n| n.id)
        .collect();
    if is_nan.is_empty() {
        return Ok(0);
    }
    let mut patch = TypedModelPatch::default();
    for &id in &is_nan {
        let node = model.node(id);
        let x = patch.tap_model(model, node.inputs[0])?;
        let ne = patch.wire_node(&node.name, TypedBinOp(comp_ne(), None), &[x, x])?;
        patch.shunt_outside(model, id.into(), ne[0])?;
    }
    patch.apply(model)?;
    model.compact()?;
    Ok(is_nan.len())
}

mod lazy {
    use std::sync::Arc;

    use tract_onnx::tract_hir::internal::*;

    /// An int8 weight matrix and its f32 scale, dequantised (`q as f32 * scale`) only when evaluated.
    ///
    /// Holding the weights this way is what keeps the model's memory to its int8 size (11 MB for
    /// MiniLM's layers) plus their packed copy: folded to f32 at load they were 42 MB more, kept for the
    /// life of the model to compile plans for new shapes. Its evaluation is not offered to constant folding
    /// (`eval_out_of_plan` answers `None`), so no graph ever holds the whole f32 set; a plan compile packs
    /// each weight from it one at a time, or takes a packing made before (see `share::Packings`).
    #[derive(Clone, Debug)]
    pub(crate) struct LazyWeight {
        pub(crate) q: Arc<Tensor>,
        pub(crate) scale: Arc<Tensor>,
    }

    impl PartialEq for LazyWeight {
        fn eq(&self, other: &Self) -> bool {
            (Arc::ptr_eq(&self.q, &other.q) || self.q == other.q)
                && (Arc::ptr_eq(&self.scale, &other.scale) || self.scale == other.scale)
        }
    }
    impl Eq for LazyWeight {}

    impl LazyWeight {
        /// A lazy `Mul(Cast(q), scale)`, if `q` is int8, `scale` f32 and broadcasting keeps q's shape.
        pub(super) fn new(q: Arc<Tensor>, scale: Arc<Tensor>) -> Option<LazyWeight> {
            if q.datum_type() != i8::datum_type() || scale.datum_type() != f32::datum_type() {
                return None;
            }
            let shape = tract_core::broadcast::multi_broadcast(&[q.shape(), scale.shape()]).ok()?;
            (*shape == *q.shape()).then_some(LazyWeight { q, scale })
        }

        /// The f32 weights, exactly as the graph's `Mul(Cast(q), scale)` computes them.
        pub(crate) fn dequantise(&self) -> TractResult<Tensor> {
            let q = self.q.to_plain_array_view::<i8>()?;
            let scale = self.scale.to_plain_array_view::<f32>()?;
            let scale = scale
                .broadcast(q.shape())
                .context("scale does not broadcast to the weights")?;
            Ok(tract_ndarray::Zip::from(&q)
                .and(&scale)
                .map_collect(|&q, &s| q as f32 * s)
                .into_tensor())
        }
    }

    impl Op for LazyWeight {
        fn name(&self) -> StaticName {
            "LazyWeight".into()
        }
        op_as_typed_op!();
    }

    impl EvalOp for LazyWeight {
        // Never folded: that would hold every layer's f32 weights at once.
        fn eval_out_of_plan(&self, _inputs: TVec<TValue>) -> TractResult<Option<TVec<TValue>>> {
            Ok(None)
        }

        fn eval(&self, _ctx: &EvalContext, _inputs: TVec<TValue>) -> TractResult<TVec<TValue>> {
            Ok(tvec!(self.dequantise()?.into_tvalue()))
        }
    }

    impl TypedOp for LazyWeight {
        fn output_facts(&self, _inputs: &[&TypedFact]) -> TractResult<TVec<TypedFact>> {
            Ok(tvec!(f32::fact(self.q.shape())))
        }
        as_op!();
    }

    impl InferenceRulesOp for LazyWeight {
        fn rules<'r, 'p: 'r, 's: 'r>(
            &'s self,
            s: &mut Solver<'r>,
            inputs: &'p [TensorProxy],
            outputs: &'p [TensorProxy],
        ) -> InferenceResult {
            check_input_arity(inputs, 0)?;
            check_output_arity(outputs, 1)?;
            s.equals(&outputs[0].datum_type, f32::datum_type())?;
            s.equals(
                &outputs[0].shape,
                self.q.shape().iter().copied().collect::<ShapeFactoid>(),
            )?;
            Ok(())
        }
        as_op!();
        to_typed!();
    }
}

/// Replaces each constant `Mul(Cast(q), scale)` of int8 weights by a [`LazyWeight`], before anything
/// folds it to f32; returns how many. Embedding tables (the Mul feeds a Gather) are left to
/// [`gather_before_dequantise`], which looks up int8 rows first.
pub(super) fn lazy_dequantise(model: &mut InferenceModel) -> TractResult<usize> {
    use tract_onnx::tract_hir::infer::InferenceModelPatch;
    let konst =
        |model: &InferenceModel, o: OutletId| model.node(o.node).op_as::<Const>().map(|c| c.val().clone());
    let mut patch = InferenceModelPatch::default();
    let mut count = 0;
    for node in model.nodes() {
        if node.op.name() != "Mul" || node.inputs.len() != 2 || node.outputs.len() != 1 {
            continue;
        }
        // `Mul(Cast(q), scale)` or `Mul(scale, Cast(q))`; tract-onnx names its Cast `onnx.Cast`.
        let is_cast = |o: &OutletId| {
            let n = model.node(o.node);
            matches!(&*n.op.name(), "Cast" | "onnx.Cast")
                && n.inputs.len() == 1
                && n.outputs[0].successors.len() == 1
        };
        let (cast, scale) = match (is_cast(&node.inputs[0]), is_cast(&node.inputs[1])) {
            (true, false) => (model.node(node.inputs[0].node), node.inputs[1]),
            (false, true) => (model.node(node.inputs[1].node), node.inputs[0]),
            _ => continue,
        };
        let (Some(q), Some(scale)) = (konst(model, cast.inputs[0]), konst(model, scale)) else {
            continue;
        };
        let feeds_gather = node.outputs[0]
            .successors
            .iter()
            .any(|s| model.node(s.node).op.name().contains("Gather"));
        if feeds_gather {
            continue;
        }
        // The Cast must be to f32: asked of the op itself on one int8 value.
        let casts_to_f32 = cast
            .op
            .eval_out_of_plan(tvec!(tensor1(&[1i8]).into_tvalue()))
            .ok()
            .flatten()
            .is_some_and(|out| out[0].datum_type() == f32::datum_type());
        let Some(lazy) = LazyWeight::new(q, scale).filter(|_| casts_to_f32) else {
            continue;
        };
        let wire = patch.wire_node(format!("{}.lazy", node.name), lazy, &[])?[0];
        patch.shunt_outside(model, node.id.into(), wire)?;
        count += 1;
    }
    patch.apply(model)?;
    model.compact()?;
    Ok(count)
}

/// The broadcasting product of two f32 tensors, or `None` for other types or shapes that don't broadcast.
///
/// The int8 weights' dequantising `Mul` (the f32 weights times their scales) is most of
/// [`fold_constants`]' work; tract evaluates an ONNX `Mul` out of a plan by building and running a one-node
/// model, which took about twice as long as this single pass.
fn f32_product(inputs: &[Arc<Tensor>]) -> Option<Arc<Tensor>> {
    let [a, b] = inputs else { return None };
    let (a, b) = (
        a.to_plain_array_view::<f32>().ok()?,
        b.to_plain_array_view::<f32>().ok()?,
    );
    let shape = tract_onnx::tract_core::broadcast::multi_broadcast(&[a.shape(), b.shape()]).ok()?;
    let (a, b) = (a.broadcast(&*shape)?, b.broadcast(&*shape)?);
    let product = tract_ndarray::Zip::from(&a).and(&b).map_collect(|x, y| x * y);
    Some(product.into_tensor().into_arc_tensor())
}

/// Types the graph for a concrete `batch` and a symbolic `sequence`, moves the int8 dequantisation of
/// embedding tables behind their Gather, makes the int8 weight products integer ones when `integer`
/// is given, with those outlier channels ([`super::integer`]), and folds the other dequantised weights to f32. Decluttering is
/// left to [`SentenceModel::base`](super::SentenceModel::base).
///
/// The batch is concrete because some exports (the fp32 file's Flatten of the attention mask) cannot be
/// typed with both axes symbolic in tract 0.23. Folded weights are shared between batch sizes through
/// `folded`, keyed by node name, so each is materialised once.
pub(super) fn prepare(
    mut model: InferenceModel,
    batch: usize,
    integer: Option<(&OutlierChannels, ProductOps)>,
    folded: &mut FoldedWeights,
    path: &str,
) -> Result<TypedModel> {
    let sequence = model.symbols.sym("sequence");
    let inputs = model.input_outlets().map_err(|e| model_error(path, e))?.len();
    for ix in 0..inputs {
        model
            .set_input_fact(ix, i64::fact([batch.to_dim(), sequence.to_dim()]).into())
            .map_err(|e| model_error(path, e))?;
    }
    let mut typed = model
        .into_typed()
        .map_err(|e| model_error(path, format!("{e:#}")))?;
    gather_before_dequantise(&mut typed).map_err(|e| model_error(path, format!("{e:#}")))?;
    if let Some((outliers, ops)) = integer {
        let products = super::integer::integer_matmuls(&mut typed, outliers, ops, folded)
            .map_err(|e| model_error(path, format!("integer matmuls: {e:#}")))?;
        if products == 0 {
            return Err(model_error(
                path,
                "the manifest says int8-dynamic, but the model has no int8 weight products",
            ));
        }
    }
    fold_dequantised_weights(&mut typed, folded).map_err(|e| model_error(path, format!("{e:#}")))?;
    Ok(typed)
}

/// Dequantised weights already computed, by the name of their Mul node; and the integer path's packed
/// weights ([`super::fused`]), by their product's name and `.fused_panels`.
pub(super) type FoldedWeights = HashMap<String, Arc<Tensor>>;

/// The const int8 tensor and f32 scale of a `Mul(Cast(q), scale)` node, if `outlet` is one.
fn dequantise_parts(model: &TypedModel, outlet: OutletId) -> Option<(OutletId, OutletId, usize)> {
    let mul = model.node(outlet.node);
    if mul.op.name() != "Mul" || mul.inputs.len() != 2 {
        return None;
    }
    let cast = model.node(mul.inputs[0].node);
    let cast_op = cast.op_as::<Cast>()?;
    let q = cast.inputs[0];
    let scale = mul.inputs[1];
    let q_fact = model.outlet_fact(q).ok()?;
    (cast_op.to == f32::datum_type()
        && q_fact.datum_type == i8::datum_type()
        && q_fact.konst.is_some()
        && model.outlet_fact(scale).ok()?.konst.is_some())
    .then_some((q, scale, cast.id))
}

/// `Gather(Mul(Cast(q), scale), ids)` becomes `Mul(Cast(Gather(q, ids)), Gather(scale, ids))`.
///
/// Without it, every call dequantises the whole 30522×384 word-embedding table to look up a few rows.
/// Only per-row (or scalar) scales commute with a gather along axis 0.
fn gather_before_dequantise(model: &mut TypedModel) -> TractResult<()> {
    let candidates: Vec<usize> = model
        .nodes()
        .iter()
        .filter(|n| {
            n.op_as::<Gather>()
                .is_some_and(|g| g.axis == 0 && g.output_type.is_none())
        })
        .map(|n| n.id)
        .collect();
    for gather_id in candidates {
        let gather = model.node(gather_id).clone();
        let Some((q, scale, cast_id)) = dequantise_parts(model, gather.inputs[0]) else {
            continue;
        };
        let scale_shape = model.outlet_fact(scale)?.shape.to_tvec();
        let q_rank = model.outlet_fact(q)?.rank();
        if scale_shape.len() != q_rank || scale_shape[1..].iter().any(|d| *d != 1.to_dim()) {
            continue;
        }
        let scale_rows = scale_shape[0].clone();
        let mut patch = TypedModelPatch::default();
        let q = patch.tap_model(model, q)?;
        let scale = patch.tap_model(model, scale)?;
        let ids = patch.tap_model(model, gather.inputs[1])?;
        let rows_q = patch.wire_node(format!("{}.gather_q", gather.name), gather.op.clone(), &[q, ids])?[0];
        let rows_f = patch.wire_node(
            format!("{}.dequant_cast", gather.name),
            model.node(cast_id).op.clone(),
            &[rows_q],
        )?[0];
        let scale_rows_wire = if scale_rows == 1.to_dim() {
            // A scalar scale: the Mul broadcasts it as it did before the gather, after lifting its rank.
            let mut wire = scale;
            for _ in q_rank..q_rank + model.outlet_fact(ids)?.rank() - 1 {
                wire = patch.wire_node(
                    format!("{}.scale_axis", gather.name),
                    tract_onnx::tract_core::ops::change_axes::AxisOp::Add(0),
                    &[wire],
                )?[0];
            }
            wire
        } else {
            patch.wire_node(
                format!("{}.gather_scale", gather.name),
                gather.op.clone(),
                &[scale, ids],
            )?[0]
        };
        let mul_op = model.node(gather.inputs[0].node).op.clone();
        let out = patch.wire_node(
            format!("{}.dequant_mul", gather.name),
            mul_op,
            &[rows_f, scale_rows_wire],
        )?[0];
        patch.shunt_outside(model, gather_id.into(), out)?;
        patch.apply(model)?;
    }
    model.compact()?;
    Ok(())
}

/// Folds every remaining `Mul(Cast(q), scale)` over constants into an f32 constant, once at load.
///
/// tract's own constant folding leaves them alone (the f32 result is 4× the int8 input), so they would
/// be dequantised on every call; here memory is traded for latency, as onnxruntime does.
fn fold_dequantised_weights(model: &mut TypedModel, cache: &mut FoldedWeights) -> TractResult<()> {
    let muls: Vec<usize> = model.nodes().iter().map(|n| n.id).collect();
    let mut folded = false;
    for mul_id in muls {
        let Some((q, scale, cast_id)) = dequantise_parts(model, mul_id.into()) else {
            continue;
        };
        let name = model.node(mul_id).name.clone();
        let weights = match cache.get(&name) {
            Some(w) => w.clone(),
            None => {
                let q_val = model.outlet_fact(q)?.konst.clone().unwrap();
                let scale_val = model.outlet_fact(scale)?.konst.clone().unwrap();
                let cast = model.node(cast_id).op.clone();
                let f = cast
                    .eval_out_of_plan(tvec!(q_val.into_tvalue()))?
                    .context("cast gave no output")?
                    .remove(0);
                let mul = model.node(mul_id).op.clone();
                let out = mul
                    .eval_out_of_plan(tvec!(f, scale_val.into_tvalue()))?
                    .context("mul gave no output")?
                    .remove(0)
                    .into_arc_tensor();
                cache.insert(name.clone(), out.clone());
                out
            }
        };
        let mut patch = TypedModelPatch::default();
        let wire = patch.add_const(format!("{name}.folded"), weights)?;
        patch.shunt_outside(model, mul_id.into(), wire)?;
        patch.apply(model)?;
        folded = true;
    }
    if folded {
        model.compact()?;
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::super::test_models::bundle_model;
    use super::*;

    fn lazy_weights(model: &TypedModel) -> usize {
        model.nodes().iter().filter(|n| n.op_is::<LazyWeight>()).count()
    }

    /// One 12-token sentence's inputs: ids, attention mask, token types (as many as `model` takes).
    fn sentence_inputs(model: &TypedModel) -> TVec<TValue> {
        let ids = [
            101i64, 2023, 2003, 1037, 3231, 1997, 1996, 14324, 2944, 2015, 1012, 102,
        ];
        let input = |v: Vec<i64>| Tensor::from_shape(&[1, 12], &v).unwrap().into_tvalue();
        [ids.to_vec(), vec![1; 12], vec![0; 12]]
            .into_iter()
            .take(model.input_outlets().unwrap().len())
            .map(input)
            .collect()
    }

    #[test]
    fn materialised_weights_give_the_lazy_graph_s_outputs() {
        let model = bundle_model("int8", 1);
        let subs = HashMap::from([(model.sequence.clone(), 12.to_dim())]);
        let lazy = model.base(1).unwrap().set_symbols(&subs).unwrap();
        assert!(lazy_weights(&lazy) >= 36, "{} lazy weights", lazy_weights(&lazy));
        let mut eager = lazy.clone();
        let made = materialise_lazy_weights(&mut eager).unwrap();
        assert_eq!(made, lazy_weights(&lazy));
        assert_eq!(lazy_weights(&eager), 0, "a weight left lazy");
        // Unoptimised plans on the CPU: the lazy one dequantises its weights as it runs.
        let run = |m: TypedModel| {
            let inputs = sentence_inputs(&m);
            m.into_runnable().unwrap().run(inputs).unwrap().remove(0)
        };
        assert_eq!(run(lazy), run(eager), "the constants are not the weights");
    }

    #[test]
    fn is_nan_as_self_comparison_keeps_the_outputs_and_survives_decluttering() {
        let model = bundle_model("int8", 1);
        let subs = HashMap::from([(model.sequence.clone(), 12.to_dim())]);
        // Decluttered both, as a GPU plan's compile does (decluttering alone reorders some arithmetic).
        let original = model.base(1).unwrap().set_symbols(&subs).unwrap();
        let named = |m: &TypedModel, name: &str| m.nodes().iter().filter(|n| n.op.name() == name).count();
        let is_nan = named(&original, "IsNan");
        assert_eq!(is_nan, 6, "one IsNan per layer's attention");
        let mut rewritten = original.clone();
        assert_eq!(is_nan_as_self_comparison(&mut rewritten).unwrap(), is_nan);
        let rewritten = rewritten.into_decluttered().unwrap();
        let original = original.into_decluttered().unwrap();
        assert_eq!(named(&original, "IsNan"), is_nan);
        assert_eq!(named(&rewritten, "IsNan"), 0);
        assert!(named(&rewritten, "NE") >= is_nan, "x != x folded away");
        let run = |m: TypedModel| {
            let inputs = sentence_inputs(&m);
            m.into_runnable().unwrap().run(inputs).unwrap().remove(0)
        };
        assert_eq!(run(original), run(rewritten));
    }

    #[test]
    fn a_nan_is_the_one_value_not_equal_to_itself() {
        let mut model = TypedModel::default();
        let x = model.add_source("x", f32::fact([4])).unwrap();
        let is_nan = model
            .wire_node("is_nan", tract_onnx::tract_core::ops::math::is_nan(), &[x])
            .unwrap();
        model.select_output_outlets(&is_nan).unwrap();
        assert_eq!(is_nan_as_self_comparison(&mut model).unwrap(), 1);
        let x = tensor1(&[1.0f32, f32::NAN, f32::INFINITY, -0.0]);
        let out = model
            .into_runnable()
            .unwrap()
            .run(tvec!(x.into_tvalue()))
            .unwrap();
        assert_eq!(*out[0], tensor1(&[false, true, false, false]));
    }

    #[cfg(feature = "cuda-backend")]
    #[test]
    fn on_the_gpu_an_int8_dynamic_bundle_runs_its_products_in_f32() {
        let model = bundle_model("int8-dynamic", 1);
        let integer_ops = |m: &TypedModel| {
            m.nodes()
                .iter()
                .filter(|n| ["QuantizeRows", "DequantRows"].contains(&&*n.op.name()))
                .count()
        };
        // On a CPU whose integer kernels are slow the bundle runs in f32 anyway.
        let on_cpu = model.base(1).unwrap();
        assert_eq!(
            model.integer_matmuls(),
            super::super::integer::slow_integer_kernels().is_none()
        );
        assert_eq!(integer_ops(&on_cpu) > 0, model.integer_matmuls());
        let model = model.on_gpu();
        assert!(!model.integer_matmuls());
        let on_gpu = model.base(1).unwrap();
        assert_eq!(integer_ops(&on_gpu), 0, "an integer op left for tract-cuda");
        assert!(
            lazy_weights(&on_gpu) >= 36,
            "the weight products are not the exact path's"
        );
    }

    #[test]
    fn f32_product_broadcasts_like_onnx_mul_and_declines_the_rest() {
        let t = |shape: &[usize], v: Vec<f32>| Arc::new(Tensor::from_shape(shape, &v).unwrap());
        let q = t(&[2, 3], vec![1., 2., 3., 4., 5., 6.]);
        let per_row = f32_product(&[q.clone(), t(&[2, 1], vec![10., 100.])]).unwrap();
        assert_eq!(*per_row, *t(&[2, 3], vec![10., 20., 30., 400., 500., 600.]));
        let per_col = f32_product(&[t(&[3], vec![1., 0., -1.]), q.clone()]).unwrap();
        assert_eq!(*per_col, *t(&[2, 3], vec![1., 0., -3., 4., 0., -6.]));
        assert!(
            f32_product(&[q.clone(), t(&[2], vec![1., 2.])]).is_none(),
            "[2,3] x [2] broadcast"
        );
        let ints = Arc::new(Tensor::from_shape(&[2], &[1i32, 2]).unwrap());
        assert!(f32_product(&[ints.clone(), ints]).is_none());
    }
}
