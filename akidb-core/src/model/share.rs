//! One copy of each equal weight, however many graphs and plans hold it: graphs of every shape are
//! built from one model, and each plan compile packs the weights again.

use std::collections::HashMap;
use std::sync::{Arc, Mutex, Weak};

use tract_onnx::prelude::*;
use tract_onnx::tract_core::ops::konst::Const;
use tract_onnx::tract_core::ops::matmul::optimized::{MatMulOperand, OptMatMul, ProtoFusedSpec};
use tract_onnx::tract_core::ops::matmul::pack::OptMatMulPack;
// Explicit: with tract-cuda in the build (feature `cuda`), the prelude's globs no longer bring it.
use tract_onnx::tract_core::ops::EvalOp;
use tract_onnx::tract_core::optim::{Optimizer, OptimizerSession, TypedPass};
use tract_onnx::tract_core::tract_linalg::mmm::EagerPackedInput;
use tract_onnx::tract_core::tract_linalg::pack::PackedFormat;

use super::rewrite::LazyWeight;
use super::SentenceModel;

/// Constants of every graph built from this model, so that graphs of different shapes hold one copy of
/// each equal constant.
///
/// Optimising a plan packs each weight matrix for its matmul kernel and bakes the packed bytes into the
/// `OptMatMul` op (about 45 MB per plan for MiniLM). Plans whose kernel and fusions coincide pack equal
/// bytes; sharing them (with [`release_freed_memory`]) cut the peak RSS of embedding the 200 golden
/// sentences, about 40 shapes, from 1.70 GB to 0.72 GB (int8) on x86-64. Weak references let a constant
/// go once no cached graph uses it.
#[derive(Default)]
pub(super) struct SharedConsts {
    tensors: HashMap<String, Vec<Weak<Tensor>>>,
    packed: HashMap<(usize, u64), Vec<Weak<Blob>>>,
    packings: Arc<Mutex<Packings>>,
}

/// A cheap key for packed bytes: their length and a hash of every 4096th byte (equality is checked in
/// full). Node names can't be the key: the optimiser fuses ops differently at different shapes.
fn fingerprint(bytes: &[u8]) -> (usize, u64) {
    use std::hash::{Hash, Hasher};
    let mut hasher = std::collections::hash_map::DefaultHasher::new();
    bytes.iter().step_by(4096).for_each(|b| b.hash(&mut hasher));
    (bytes.len(), hasher.finish())
}

/// Zeroes the bytes past each panel's `k` records in a freshly packed operand.
///
/// tract leaves them uninitialised (its kernels never read them into a result), so two packings of the
/// same weights differed there and [`SharedConsts`] kept both: about 8 MB more per cached plan natively,
/// up to 40 MB in wasm. A buffer already shared is left as it is.
fn zero_panel_padding(packed: &mut EagerPackedInput) {
    let Some(format) = packed.fact.format.downcast_ref::<PackedFormat>() else {
        return;
    };
    let used = packed.fact.k * format.r * format.dt.size_of();
    let panel = packed.panel_bytes;
    let Some(blob) = Arc::get_mut(&mut packed.packed) else {
        return;
    };
    if panel <= used {
        return;
    }
    for chunk in blob.as_bytes_mut().chunks_mut(panel) {
        chunk.get_mut(used..).into_iter().for_each(|pad| pad.fill(0));
    }
}

/// An equal value already in `seen` (dropping dead entries), or `None` after recording `value`.
fn find_equal<T: PartialEq>(seen: &mut Vec<Weak<T>>, value: &Arc<T>) -> Option<Arc<T>> {
    seen.retain(|w| w.strong_count() > 0);
    // The same allocation is found without reading its bytes.
    let found = seen
        .iter()
        .filter_map(Weak::upgrade)
        .find(|t| Arc::ptr_eq(t, value) || **t == **value);
    if found.is_none() {
        seen.push(Arc::downgrade(value));
    }
    found
}

impl SharedConsts {
    /// Points every constant of `model` (`Const` nodes, packed matmul operands) that equals one already
    /// seen at that one.
    pub(super) fn share(&mut self, model: &mut TypedModel) -> TractResult<()> {
        for node in model.nodes_mut() {
            if let Some(konst) = node.op_as::<Const>() {
                let tensor = konst.val().clone();
                let seen = self.tensors.entry(node.name.clone()).or_default();
                if let Some(shared) = find_equal(seen, &tensor).filter(|t| !Arc::ptr_eq(t, &tensor)) {
                    let exotic = node.outputs[0].fact.exotic_fact.clone();
                    node.op = Box::new(Const::new_with_opt_exotic_fact(shared.clone(), exotic)?);
                    node.outputs[0].fact.konst = Some(shared);
                }
            } else if let Some(matmul) = node.op.downcast_mut::<OptMatMul>() {
                for spec in matmul.micro_ops.iter_mut() {
                    let ProtoFusedSpec::AddMatMul { a, b, .. } = spec else {
                        continue;
                    };
                    for operand in [a, b] {
                        let MatMulOperand::Const(value) = operand else {
                            continue;
                        };
                        let Some(packed) = value.downcast_mut::<EagerPackedInput>() else {
                            continue;
                        };
                        zero_panel_padding(packed);
                        let seen = self.packed.entry(fingerprint(&packed.packed)).or_default();
                        if let Some(shared) = find_equal(seen, &packed.packed) {
                            packed.packed = shared;
                        }
                    }
                }
            }
        }
        Ok(())
    }
}

/// Each weight matrix packed for a kernel, by the weight's content and the packing op, so that a plan
/// compile finds a packing made before rather than making (and then dropping) its own.
///
/// Sharing equal packed bytes after the compile ([`SharedConsts::share`]) leaves one copy in the end, but
/// each compile still packed every weight afresh first: about 44 MB that were dropped again, and in wasm,
/// whose memory never shrinks, that transient stayed in the module's footprint. The packings are kept for
/// the model's life: one per weight and packing layout (one layout in wasm, a few natively, where the
/// kernel depends on the shape).
#[derive(Default)]
struct Packings {
    entries: Vec<Packing>,
    made: usize,
    reused: usize,
}

struct Packing {
    /// The weight last packed into this, to recognise the same tensor without reading it.
    source: Weak<Tensor>,
    /// Or the int8 weight and scale it was dequantised from.
    lazy: Option<(Weak<Tensor>, Weak<Tensor>)>,
    digest: u64,
    shape: TVec<usize>,
    datum_type: DatumType,
    op: OptMatMulPack,
    packed: Arc<Tensor>,
}

/// A hash of every byte of `tensor`, 8 at a time: tells apart weights of the same shape (a full compare
/// would need the unpacked copy that the cache exists to let go).
fn digest(tensor: &Tensor) -> u64 {
    let bytes = tensor.as_bytes();
    let mut hash = 0xcbf2_9ce4_8422_2325u64 ^ bytes.len() as u64;
    let mut words = bytes.chunks_exact(8);
    for word in &mut words {
        let w = u64::from_le_bytes(word.try_into().expect("8 bytes"));
        hash = (hash.rotate_left(23) ^ w).wrapping_mul(0x0100_0000_01b3_5a4d);
    }
    for &b in words.remainder() {
        hash = (hash.rotate_left(23) ^ b as u64).wrapping_mul(0x0100_0000_01b3_5a4d);
    }
    hash
}

impl Packings {
    /// The packing of `weight` by `op`, made now if none was made before.
    fn get(&mut self, op: &OptMatMulPack, weight: &Arc<Tensor>) -> TractResult<Option<Arc<Tensor>>> {
        let same_tensor = |p: &Packing| p.source.upgrade().is_some_and(|s| Arc::ptr_eq(&s, weight));
        if let Some(p) = self.entries.iter().find(|p| same_tensor(p) && p.op == *op) {
            self.reused += 1;
            return Ok(Some(p.packed.clone()));
        }
        let digest = digest(weight);
        let found = self.entries.iter_mut().find(|p| {
            p.digest == digest
                && p.datum_type == weight.datum_type()
                && *p.shape == *weight.shape()
                && p.op == *op
        });
        if let Some(p) = found {
            p.source = Arc::downgrade(weight);
            self.reused += 1;
            return Ok(Some(p.packed.clone()));
        }
        let Some(mut out) = op.eval_out_of_plan(tvec!(weight.clone().into_tvalue()))? else {
            return Ok(None);
        };
        let packed = out.remove(0).into_arc_tensor();
        self.entries.push(Packing {
            source: Arc::downgrade(weight),
            lazy: None,
            digest,
            shape: weight.shape().into(),
            datum_type: weight.datum_type(),
            op: op.clone(),
            packed: packed.clone(),
        });
        self.made += 1;
        Ok(Some(packed))
    }
}

impl Packings {
    /// The packing of a [`LazyWeight`] by `op`, dequantised and made now if none was made before: the
    /// f32 weights exist only while they are packed, one matrix at a time.
    fn get_lazy(&mut self, op: &OptMatMulPack, weight: &LazyWeight) -> TractResult<Option<Arc<Tensor>>> {
        let same = |w: &Weak<Tensor>, t: &Arc<Tensor>| w.upgrade().is_some_and(|w| Arc::ptr_eq(&w, t));
        let found = self.entries.iter().find(|p| {
            p.lazy
                .as_ref()
                .is_some_and(|(q, s)| same(q, &weight.q) && same(s, &weight.scale))
                && p.op == *op
        });
        if let Some(p) = found {
            self.reused += 1;
            return Ok(Some(p.packed.clone()));
        }
        let f32_weight = weight.dequantise()?;
        let Some(mut out) = op.eval_out_of_plan(tvec!(f32_weight.into_tvalue()))? else {
            return Ok(None);
        };
        let packed = out.remove(0).into_arc_tensor();
        self.entries.push(Packing {
            source: Weak::new(),
            lazy: Some((Arc::downgrade(&weight.q), Arc::downgrade(&weight.scale))),
            digest: 0,
            shape: weight.q.shape().into(),
            datum_type: f32::datum_type(),
            op: op.clone(),
            packed: packed.clone(),
        });
        self.made += 1;
        Ok(Some(packed))
    }
}

/// The optimiser pass that puts [`Packings`] in place of tract's own constant folding of each weight's
/// packing: it runs first in each round of the codegen optimiser, so the `OptMatMulPack` of a constant
/// weight is replaced by the cached packing before tract's `PropConst` would evaluate it again.
#[derive(Clone)]
struct ReusePackings(Arc<Mutex<Packings>>);

impl std::fmt::Debug for ReusePackings {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("ReusePackings")
    }
}

impl TypedPass for ReusePackings {
    fn reset(&mut self) -> TractResult<()> {
        Ok(())
    }

    fn next(
        &mut self,
        _session: &mut OptimizerSession,
        model: &TypedModel,
    ) -> TractResult<Option<TypedModelPatch>> {
        for node in model.nodes() {
            let Some(op) = node.op_as::<OptMatMulPack>() else {
                continue;
            };
            let [input] = &*node.inputs else { continue };
            let lazy = model.node(input.node).op_as::<LazyWeight>();
            let konst = model
                .outlet_fact(*input)?
                .konst
                .clone()
                .filter(|k| k.is_plain_ram());
            let mut packings = self.0.lock().unwrap_or_else(|p| p.into_inner());
            let packed = match (lazy, konst) {
                (Some(lazy), _) => packings.get_lazy(op, lazy)?,
                (None, Some(weight)) => packings.get(op, &weight)?,
                (None, None) => continue,
            };
            let Some(packed) = packed else { continue };
            let exotic = node.outputs[0].fact.exotic_fact.clone();
            let mut patch = TypedModelPatch::default();
            let wire = patch.wire_node(&node.name, Const::new_with_opt_exotic_fact(packed, exotic)?, &[])?[0];
            patch.shunt_outside(model, node.id.into(), wire)?;
            return Ok(Some(patch));
        }
        Ok(None)
    }
}

impl SentenceModel {
    /// `model` decluttered and optimised as tract's `into_optimized` does, but with each weight's
    /// packing taken from those made for earlier plans (see [`Packings`]).
    pub(super) fn optimize(&self, mut model: TypedModel) -> TractResult<TypedModel> {
        let packings = self
            .consts
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .packings
            .clone();
        model.declutter()?;
        let mut codegen = Optimizer::codegen();
        codegen.add_pass(0, Box::new(ReusePackings(packings)));
        model.optimize_with_session(&mut codegen.session())?;
        Ok(model)
    }
}

impl SharedConsts {
    /// How many weight packings were made, and how many times one was reused, since the model loaded.
    #[cfg(test)]
    pub(super) fn packing_counts(&self) -> (usize, usize) {
        let p = self.packings.lock().unwrap_or_else(|p| p.into_inner());
        (p.made, p.reused)
    }
}

/// Hands memory freed by a plan compile back to the OS.
///
/// A compile packs every weight matrix (about 45 MB for MiniLM) before [`SharedConsts`] drops the
/// duplicate; glibc's malloc keeps such large freed blocks in its heap (its mmap threshold rises with
/// each one), so without a trim the process grew by about 40 MB per cached plan.
pub(super) fn release_freed_memory() {
    #[cfg(all(target_os = "linux", target_env = "gnu"))]
    // SAFETY: malloc_trim only releases free memory of the allocator's own heap.
    unsafe {
        libc::malloc_trim(0);
    }
}

#[cfg(test)]
mod tests {
    use super::super::plans::Plan;
    use super::super::test_models::bundle_model;
    use super::super::SentenceModel;
    use super::*;

    fn int8_model(plan_capacity: usize) -> SentenceModel {
        bundle_model("int8", plan_capacity)
    }

    /// The packed weight buffers baked into a plan's matmuls, in graph order.
    fn packed_weights(plan: &Plan) -> Vec<Arc<Blob>> {
        packed_operands(plan).into_iter().map(|p| p.packed).collect()
    }

    /// The packed weight operands of a plan's matmuls, in graph order.
    fn packed_operands(plan: &Plan) -> Vec<EagerPackedInput> {
        let mut found = vec![];
        for node in plan.model().nodes() {
            let Some(matmul) = node.op_as::<OptMatMul>() else {
                continue;
            };
            for spec in &matmul.micro_ops {
                if let ProtoFusedSpec::AddMatMul { a, b, .. } = spec {
                    for operand in [a, b] {
                        if let MatMulOperand::Const(value) = operand {
                            found.extend(value.downcast_ref::<EagerPackedInput>().cloned());
                        }
                    }
                }
            }
        }
        found
    }

    #[test]
    fn equal_packed_weights_are_held_once() {
        let model = int8_model(8);
        let plans: Vec<Vec<Arc<Blob>>> = [(1, 12), (1, 16), (1, 40), (2, 12), (4, 40), (16, 128)]
            .iter()
            .map(|&(batch, seq)| packed_weights(&model.plan(batch, seq).unwrap()))
            .collect();
        // 6 layers × (query, key, value, attention output, intermediate, output).
        assert!(plans[0].len() >= 36, "{} packed weights", plans[0].len());
        // Which plans pack equal bytes depends on the kernels the CPU offers for each shape and on how
        // the optimiser fused each graph; whichever they are, equal bytes must be one allocation.
        let mut equal_pairs = 0;
        for (i, one) in plans.iter().enumerate() {
            for other in &plans[i + 1..] {
                for a in one {
                    for b in other.iter().filter(|b| ***b == **a) {
                        assert!(Arc::ptr_eq(a, b), "equal packed weights held twice");
                        equal_pairs += 1;
                    }
                }
            }
        }
        assert!(equal_pairs > 0, "no two plans packed any weight alike");
    }

    #[test]
    fn a_recompiled_plan_reuses_the_packings_made_before() {
        // One cached plan: the third compile is of a shape evicted by the second.
        let model = int8_model(1);
        // The int8 layer weights stay int8 in the model, each packed from int8 when a plan compiles.
        let lazy = |m: &TypedModel| m.nodes().iter().filter(|n| n.op_is::<LazyWeight>()).count();
        let lazy_in_source = model
            .source
            .nodes()
            .iter()
            .filter(|n| n.op.name() == "LazyWeight")
            .count();
        assert!(lazy_in_source >= 36, "{lazy_in_source} lazy weights");
        let plan = model.plan(1, 12).unwrap();
        assert_eq!(
            lazy(plan.model()),
            0,
            "a weight left to be dequantised at every run"
        );
        let first = packed_weights(&plan);
        let (made, reused) = model.consts.lock().unwrap().packing_counts();
        assert!(made >= 36, "{made} packings made for the first plan");
        model.plan(2, 16).unwrap();
        let (after_second, _) = model.consts.lock().unwrap().packing_counts();
        let again = packed_weights(&model.plan(1, 12).unwrap());
        let (after_third, reused_now) = model.consts.lock().unwrap().packing_counts();
        assert_eq!(
            after_third, after_second,
            "the same shape packed its weights again"
        );
        assert!(
            reused_now >= reused + first.len(),
            "{reused} -> {reused_now} reuses"
        );
        assert_eq!(first.len(), again.len());
        for (i, (a, b)) in first.iter().zip(&again).enumerate() {
            assert!(Arc::ptr_eq(a, b), "weight {i} packed twice for the same shape");
        }
    }

    #[test]
    fn packings_of_the_same_weight_in_the_same_layout_are_held_once() {
        // Sequence lengths at batch 1: the same weights, packed for whichever kernel tract picks for each
        // length. tract leaves each panel's padding uninitialised, so without `zero_panel_padding` some of
        // the equal packings differed in their padding bytes and were kept twice. Which lengths share a
        // kernel depends on the CPU (one AVX-512 kernel for all of these; on an AVX2-only EPYC the 8-token
        // plan packed no weight like the 12-token one), so every pair is compared and at least one pair must
        // pack alike.
        let model = int8_model(8);
        let plans: Vec<_> = [8, 12, 16, 24]
            .iter()
            .map(|&seq| (seq, packed_operands(&model.plan(1, seq).unwrap())))
            .collect();
        let mut same_layout = 0;
        for (i, (seq_a, one)) in plans.iter().enumerate() {
            for (seq_b, other) in &plans[i + 1..] {
                assert_eq!(one.len(), other.len());
                for (w, (a, b)) in one
                    .iter()
                    .zip(other)
                    .filter(|(a, b)| a.fact == b.fact)
                    .enumerate()
                {
                    assert!(
                        Arc::ptr_eq(&a.packed, &b.packed),
                        "weight {w} packed alike at {seq_a} and {seq_b} tokens but held twice"
                    );
                    same_layout += 1;
                }
            }
        }
        assert!(
            same_layout > 0,
            "no weight packed alike at any two of the lengths"
        );
    }
}
