//! One copy of each equal weight, however many graphs and plans hold it: graphs of every shape are
//! built from one model, and each plan compile packs the weights again.

use std::collections::HashMap;
use std::sync::{Arc, Weak};

use tract_onnx::prelude::*;
use tract_onnx::tract_core::ops::konst::Const;
use tract_onnx::tract_core::ops::matmul::optimized::{MatMulOperand, OptMatMul, ProtoFusedSpec};
use tract_onnx::tract_core::tract_linalg::mmm::EagerPackedInput;
use tract_onnx::tract_core::tract_linalg::pack::PackedFormat;

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
    use super::super::SentenceModel;
    use super::*;
    use crate::bundle::Bundle;

    fn int8_model(plan_capacity: usize) -> SentenceModel {
        let dir = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../models/all-MiniLM-L6-v2/int8");
        let read = |p: &str| std::fs::read(dir.join(p)).ok();
        let manifest = read("manifest.json").expect("run scripts/fetch-models.sh first");
        let bundle = Bundle::from_files(&manifest, read).unwrap();
        SentenceModel::load(bundle.model_bytes(), bundle.manifest(), plan_capacity).unwrap()
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
    fn packings_of_the_same_weight_in_the_same_layout_are_held_once() {
        // Two sequence lengths at batch 1: the same weights, mostly packed for the same kernel. tract
        // leaves each panel's padding uninitialised, so without `zero_panel_padding` some of these
        // equal packings differed in their padding bytes and were kept twice.
        let model = int8_model(8);
        let one = packed_operands(&model.plan(1, 8).unwrap());
        let other = packed_operands(&model.plan(1, 12).unwrap());
        assert_eq!(one.len(), other.len());
        let same_layout: Vec<_> = one.iter().zip(&other).filter(|(a, b)| a.fact == b.fact).collect();
        assert!(!same_layout.is_empty(), "no weight packed alike at both lengths");
        for (i, (a, b)) in same_layout.iter().enumerate() {
            assert!(
                Arc::ptr_eq(&a.packed, &b.packed),
                "weight {i} of {} held twice",
                same_layout.len()
            );
        }
    }
}
