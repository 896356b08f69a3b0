//! The exported attention's NaN guard, `Where(IsNan(p), 0, p)` on every layer's softmax, as one
//! in-place op: [`ZeroNans`].
//!
//! Why: tract evaluates that `Where` as its generic `Iff`, an ndarray zip of four strided operands,
//! plus an `IsNan` pass that writes a boolean tensor: 3.7% of a 12-token sentence on the wasm
//! integer path (Node 20 profile), for six tensors of `[1, 12, 12, 12]`. The values are the same:
//! `ZeroNans` replaces each NaN by 0 and leaves every other value as it is, in the buffer it was given.
//!
//! GPU plans keep the pattern (`rewrite::is_nan_as_self_comparison` makes it run on tract-cuda's ops).

use tract_onnx::prelude::*;
use tract_onnx::tract_core::ops::element_wise::ElementWiseOp;
use tract_onnx::tract_core::ops::konst::Const;
use tract_onnx::tract_core::ops::logic::Iff;
use tract_onnx::tract_hir::internal::*;

/// `y = if x is NaN { 0 } else { x }`, f32, in place.
#[derive(Clone, Debug, Hash, PartialEq, Eq)]
pub(crate) struct ZeroNans;

impl Op for ZeroNans {
    fn name(&self) -> StaticName {
        "ZeroNans".into()
    }
    op_as_typed_op!();
}

impl EvalOp for ZeroNans {
    op_out_of_plan!();

    fn eval(&self, _ctx: &EvalContext, inputs: TVec<TValue>) -> TractResult<TVec<TValue>> {
        // In the input's own buffer when nothing else holds it (the softmax's output, read only here).
        let mut x = args_1!(inputs).into_tensor();
        {
            let mut view = x.try_as_plain_ram_mut()?;
            // Written so that it vectorises: a select, no branch.
            for v in view.as_slice_mut::<f32>()? {
                *v = if v.is_nan() { 0.0 } else { *v };
            }
        }
        Ok(tvec!(x.into_tvalue()))
    }
}

impl TypedOp for ZeroNans {
    fn output_facts(&self, inputs: &[&TypedFact]) -> TractResult<TVec<TypedFact>> {
        ensure!(inputs[0].datum_type == f32::datum_type(), "ZeroNans takes f32");
        Ok(tvec!(f32::fact(&*inputs[0].shape.to_tvec())))
    }
    as_op!();
}

/// Replaces every `Iff(IsNan(x), 0, x)` of f32 `x` whose output has `x`'s shape by [`ZeroNans`]`(x)`;
/// returns how many.
pub(super) fn fuse_nan_guards(model: &mut TypedModel) -> TractResult<usize> {
    let mut guards = Vec::new();
    for node in model.nodes() {
        if let Some(x) = guarded(model, node)? {
            guards.push((node.id, x));
        }
    }
    if guards.is_empty() {
        return Ok(0);
    }
    let mut patch = TypedModelPatch::default();
    for &(id, x) in &guards {
        let x = patch.tap_model(model, x)?;
        let zeroed = patch.wire_node(&model.node(id).name, ZeroNans, &[x])?;
        patch.shunt_outside(model, id.into(), zeroed[0])?;
    }
    patch.apply(model)?;
    model.compact()?;
    Ok(guards.len())
}

/// `x` if `node` is `Iff(IsNan(x), zeros, x)`, f32, shaped as `x`.
fn guarded(model: &TypedModel, node: &TypedNode) -> TractResult<Option<OutletId>> {
    if !node.op_is::<Iff>() {
        return Ok(None);
    }
    let [condition, zeros, x] = &*node.inputs else {
        return Ok(None);
    };
    let is_nan = model.node(condition.node);
    let tests_x = is_nan
        .op_as::<ElementWiseOp>()
        .is_some_and(|op| op.0.name() == "IsNan")
        && is_nan.inputs.first() == Some(x);
    let zero_const = model.node(zeros.node).op_as::<Const>().is_some_and(|c| {
        c.val().datum_type() == f32::datum_type()
            && c.val()
                .try_as_plain_ram()
                .is_ok_and(|v| v.as_slice::<f32>().is_ok_and(|v| v.iter().all(|z| *z == 0.0)))
    });
    let x_fact = model.outlet_fact(*x)?;
    let same_shape =
        x_fact.datum_type == f32::datum_type() && model.outlet_fact(node.id.into())?.shape == x_fact.shape;
    Ok((tests_x && zero_const && same_shape).then_some(*x))
}

#[cfg(test)]
mod tests {
    use super::*;
    use tract_onnx::tract_core::ops::math::is_nan;

    /// `Iff(IsNan(x), zero, x)` over an input `[2, 3]`, with the given zero constant.
    fn guard_model(zero: Tensor) -> TypedModel {
        let mut model = TypedModel::default();
        let x = model.add_source("x", f32::fact([2, 3])).unwrap();
        let nan = model.wire_node("nan", is_nan(), &[x]).unwrap();
        let zero = model.add_const("zero", zero).unwrap();
        let y = model.wire_node("guard", Iff, &[nan[0], zero, x]).unwrap();
        model.select_output_outlets(&y).unwrap();
        model
    }

    fn run(model: TypedModel, x: &[f32]) -> Vec<f32> {
        let plan = model.into_runnable().unwrap();
        let out = plan
            .run(tvec!(Tensor::from_shape(&[2, 3], x).unwrap().into_tvalue()))
            .unwrap();
        out[0]
            .try_as_plain_ram()
            .unwrap()
            .as_slice::<f32>()
            .unwrap()
            .to_vec()
    }

    #[test]
    fn the_guard_becomes_one_op_with_the_same_values() {
        let x = [1.0, f32::NAN, -0.5, f32::INFINITY, f32::NAN, 0.0];
        let zero = tensor0(0f32).broadcast_into_rank(2).unwrap();
        let want = run(guard_model(zero.clone()), &x);
        assert_eq!(want, [1.0, 0.0, -0.5, f32::INFINITY, 0.0, 0.0]);

        let mut fused = guard_model(zero);
        assert_eq!(fuse_nan_guards(&mut fused).unwrap(), 1);
        assert!(fused.nodes().iter().any(|n| n.op_is::<ZeroNans>()));
        assert!(!fused
            .nodes()
            .iter()
            .any(|n| n.op_is::<Iff>() || n.op_is::<ElementWiseOp>()));
        assert_eq!(run(fused, &x), want);
    }

    #[test]
    fn a_guard_that_puts_anything_but_zero_in_a_nans_place_stays() {
        let mut model = guard_model(tensor0(1f32).broadcast_into_rank(2).unwrap());
        assert_eq!(fuse_nan_guards(&mut model).unwrap(), 0);
        assert!(model.nodes().iter().any(|n| n.op_is::<Iff>()));
    }

    #[test]
    fn each_layer_of_the_int8_export_gets_one_in_place_guard() {
        // The fp32 file is another export, without the guard.
        for (variant, guards) in [("int8", 6), ("int8-dynamic", 6), ("fp32", 0)] {
            let model = super::super::test_models::bundle_model(variant, 1);
            let plan = model.plan(1, 12).unwrap();
            let count = |f: &dyn Fn(&TypedNode) -> bool| plan.model().nodes().iter().filter(|n| f(n)).count();
            assert_eq!(count(&|n| n.op_is::<ZeroNans>()), guards, "{variant}");
            let is_nan = |n: &TypedNode| {
                n.op_as::<ElementWiseOp>()
                    .is_some_and(|op| op.0.name() == "IsNan")
            };
            assert_eq!(count(&is_nan), 0, "{variant}: no NaN test left");
        }
    }
}
