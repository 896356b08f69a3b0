//! The ONNX sentence model under tract: graph rewrites at load, and concrete-shape plans cached per
//! (batch, sequence) bucket.

use std::collections::HashMap;
use std::sync::{Arc, Mutex, Weak};

use tract_onnx::prelude::*;
use tract_onnx::tract_core::ops::array::Gather;
use tract_onnx::tract_core::ops::cast::Cast;
use tract_onnx::tract_core::ops::konst::Const;
use tract_onnx::tract_core::ops::matmul::optimized::{MatMulOperand, OptMatMul, ProtoFusedSpec};
use tract_onnx::tract_core::tract_linalg::mmm::EagerPackedInput;
use tract_onnx::tract_core::tract_linalg::pack::PackedFormat;
use tract_onnx::tract_hir::internal::{DimLike, TractErrorContext};

use crate::bundle::{Manifest, OnnxIo, Quantization};
use crate::error::{Error, Result};

/// What a bundle's manifest records about a model, read off the model itself.
pub(crate) struct ModelFacts {
    pub dim: usize,
    pub quantization: Quantization,
    pub io: OnnxIo,
}

fn model_error(path: &str, e: impl std::fmt::Display) -> Error {
    Error::Model {
        path: path.into(),
        reason: e.to_string(),
    }
}

fn parse(bytes: &[u8], path: &str) -> Result<InferenceModel> {
    tract_onnx::onnx()
        .model_for_read(&mut &bytes[..])
        .map_err(|e| model_error(path, format!("{e:#}")))
}

/// The learned position embeddings of a model: the table a `Gather` reads one vector per token
/// position from.
#[derive(Debug, PartialEq, Eq)]
pub(crate) struct PositionTable {
    /// The table's constant (ONNX initializer) name.
    pub name: String,
    /// Its first dimension: the number of positions, hence the longest sequence the model can run.
    pub rows: usize,
}

/// The model's position-embedding table, or `None` if it has none that can be recognised (a model with
/// rotary or relative positions has no such limit).
///
/// It is the rank-2 constant that a `Gather` reads as its data, directly (fp32 exports) or through the
/// few ops that dequantise it (int8 exports: `Mul(Cast(table_q), scale)`), and whose name says it holds
/// position embeddings, as every Hugging Face BERT-family export names it
/// (`embeddings.position_embeddings.weight`). The shape alone can't tell it from the token-type table.
/// A model with several is limited by the smallest.
pub(crate) fn position_table(model: &InferenceModel) -> Option<PositionTable> {
    // Cast and Mul of an int8 table, and a little slack for other dequantisation chains.
    const MAX_STEPS_BACK: usize = 4;
    let mut found: Option<PositionTable> = None;
    for gather in model.nodes().iter().filter(|n| n.op.name() == "Gather") {
        let mut source = gather.inputs.first().map(|o| o.node);
        for _ in 0..MAX_STEPS_BACK {
            let Some(node) = source.map(|id| model.node(id)) else {
                break;
            };
            if let Some(konst) = node.op_as::<tract_onnx::tract_hir::ops::konst::Const>() {
                let shape = konst.val().shape();
                if shape.len() == 2 && node.name.to_ascii_lowercase().contains("position_embedding") {
                    let table = PositionTable {
                        name: node.name.clone(),
                        rows: shape[0],
                    };
                    if found.as_ref().is_none_or(|f| table.rows < f.rows) {
                        found = Some(table);
                    }
                }
                break;
            }
            source = node.inputs.first().map(|o| o.node);
        }
    }
    found
}

/// Refuses a `max_seq_length` longer than the model's position-embedding table: tract would index past
/// the table for longer inputs, which ended in an allocation abort rather than an error.
///
/// Every path from model bytes to a usable bundle runs it: [`inspect`] (building a bundle) and
/// [`SentenceModel::load`] (verifying or loading one, on every tier).
fn check_max_seq_length(model: &InferenceModel, max_seq_length: usize, path: &str) -> Result<()> {
    match position_table(model) {
        Some(table) if max_seq_length > table.rows => Err(Error::SeqLengthOverPositions {
            path: path.into(),
            table: table.name,
            max_seq_length,
            positions: table.rows,
        }),
        _ => Ok(()),
    }
}

/// Reads the embedding dimension, weight storage and input/output names off an ONNX model, and checks
/// that it has positions for `max_seq_length` tokens.
pub(crate) fn inspect(bytes: &[u8], path: &str, max_seq_length: usize) -> Result<ModelFacts> {
    let model = parse(bytes, path)?;
    check_max_seq_length(&model, max_seq_length, path)?;
    let names: Vec<String> = model
        .input_outlets()
        .map_err(|e| model_error(path, e))?
        .iter()
        .map(|o| model.node(o.node).name.clone())
        .collect();
    let find = |wanted: &str| names.iter().find(|n| n.as_str() == wanted).cloned();
    let input_ids = find("input_ids")
        .ok_or_else(|| model_error(path, format!("it has no `input_ids` input (inputs: {names:?})")))?;
    let attention_mask = find("attention_mask").ok_or_else(|| {
        model_error(
            path,
            format!("it has no `attention_mask` input (inputs: {names:?})"),
        )
    })?;
    let token_type_ids = find("token_type_ids");
    let outputs = model.output_outlets().map_err(|e| model_error(path, e))?;
    let output_outlet = *outputs
        .first()
        .ok_or_else(|| model_error(path, "it has no output"))?;
    let output = model.node(output_outlet.node).name.clone();
    let output = model
        .outlet_label(output_outlet)
        .map(str::to_string)
        .unwrap_or(output);
    let quantization = if model.nodes().iter().any(|n| {
        n.op_as::<tract_onnx::tract_hir::ops::konst::Const>()
            .is_some_and(|k| k.val().datum_type() == i8::datum_type())
    }) {
        Quantization::Int8Weights
    } else {
        Quantization::None
    };
    let io = OnnxIo {
        input_ids,
        attention_mask,
        token_type_ids,
        output,
    };
    let named = parse_named(bytes, &io, path)?;
    let typed = prepare(named, 1, &mut FoldedWeights::new(), path)?;
    let fact = typed.output_fact(0).map_err(|e| model_error(path, e))?;
    let dim = fact
        .shape
        .last()
        .and_then(|d| d.to_usize().ok())
        .filter(|_| fact.rank() == 3)
        .ok_or_else(|| {
            model_error(
                path,
                format!("output is {fact:?}, expected f32 [batch, sequence, dim]"),
            )
        })?;
    Ok(ModelFacts {
        dim,
        quantization,
        io,
    })
}

/// Parses the model and names its inputs; typing waits until the batch size is known.
fn parse_named(bytes: &[u8], io: &OnnxIo, path: &str) -> Result<InferenceModel> {
    let mut model = parse(bytes, path)?;
    let mut inputs = vec![io.input_ids.as_str(), io.attention_mask.as_str()];
    inputs.extend(io.token_type_ids.as_deref());
    model
        .set_input_names(&inputs)
        .map_err(|e| model_error(path, format!("{e:#}")))?;
    // Shapes the exporter wrote on intermediate values name a symbolic batch, which would contradict
    // the concrete batch sizes used here; tract infers them again from the inputs.
    let inputs = model.input_outlets().map_err(|e| model_error(path, e))?.to_vec();
    for node in model.nodes_mut() {
        if inputs.iter().any(|o| o.node == node.id)
            || node.op_is::<tract_onnx::tract_hir::ops::konst::Const>()
        {
            continue;
        }
        for output in &mut node.outputs {
            output.fact = InferenceFact::default();
        }
    }
    Ok(model)
}

/// Evaluates, once at load, every node whose inputs are all constants — the int8 weights' `Cast` and
/// `Mul`, shape arithmetic — within tract's own budget for constant folding, and makes it a constant.
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
fn fold_constants(model: &mut InferenceModel) -> TractResult<()> {
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
/// embedding tables behind their Gather and folds the other dequantised weights to f32. Decluttering is
/// left to [`SentenceModel::base`].
///
/// The batch is concrete because some exports (the fp32 file's Flatten of the attention mask) cannot be
/// typed with both axes symbolic in tract 0.23. Folded weights are shared between batch sizes through
/// `folded`, keyed by node name, so each is materialised once.
fn prepare(
    mut model: InferenceModel,
    batch: usize,
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
    fold_dequantised_weights(&mut typed, folded).map_err(|e| model_error(path, format!("{e:#}")))?;
    Ok(typed)
}

/// Dequantised weights already computed, by the name of their Mul node.
type FoldedWeights = HashMap<String, Arc<Tensor>>;

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

/// Constants of every graph built from this model, so that graphs of different shapes hold one copy of
/// each equal constant.
///
/// Optimising a plan packs each weight matrix for its matmul kernel and bakes the packed bytes into the
/// `OptMatMul` op (about 45 MB per plan for MiniLM). Plans whose kernel and fusions coincide pack equal
/// bytes; sharing them (with [`release_freed_memory`]) cut the peak RSS of embedding the 200 golden
/// sentences, about 40 shapes, from 1.70 GB to 0.72 GB (int8) on x86-64. Weak references let a constant
/// go once no cached graph uses it.
#[derive(Default)]
struct SharedConsts {
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
    fn share(&mut self, model: &mut TypedModel) -> TractResult<()> {
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
fn release_freed_memory() {
    #[cfg(all(target_os = "linux", target_env = "gnu"))]
    // SAFETY: malloc_trim only releases free memory of the allocator's own heap.
    unsafe {
        libc::malloc_trim(0);
    }
}

type Plan = Arc<TypedRunnableModel>;

/// A cached plan, or the place one is being compiled. Each shape has its own lock, so a compile holds up
/// only the callers waiting for that same shape, never the runs of plans already cached.
type PlanSlot = Arc<Mutex<Option<Plan>>>;

/// Plans are compiled per (batch, padded sequence) shape; the cache keeps the most recently used.
struct PlanCache {
    plans: HashMap<(usize, usize), (PlanSlot, u64)>,
    clock: u64,
    capacity: usize,
}

impl PlanCache {
    /// The slot for `shape`, made (evicting the least recently used) if the cache has none.
    fn slot(&mut self, shape: (usize, usize)) -> PlanSlot {
        self.clock += 1;
        let now = self.clock;
        if let Some((slot, used)) = self.plans.get_mut(&shape) {
            *used = now;
            return slot.clone();
        }
        if self.plans.len() >= self.capacity {
            let oldest = self
                .plans
                .iter()
                .min_by_key(|(_, (_, used))| *used)
                .map(|(k, _)| *k);
            if let Some(key) = oldest {
                self.plans.remove(&key);
            }
        }
        let slot = PlanSlot::default();
        self.plans.insert(shape, (slot.clone(), now));
        slot
    }
}

/// The typed graph of one batch size, from which its plans are compiled.
///
/// Its first plan is compiled straight from the typed graph: `into_optimized` declutters the concrete
/// shape anyway, and decluttering with `sequence` symbolic as well cost more than the compile itself
/// (native, int8: load + first embedding about 60 ms less). A second sequence length declutters the
/// graph once, and every later plan of that batch size starts from the decluttered graph.
struct Base {
    graph: Arc<TypedModel>,
    decluttered: bool,
    plans_compiled: usize,
}

impl Base {
    fn new(graph: Arc<TypedModel>) -> Base {
        Base {
            graph,
            decluttered: false,
            plans_compiled: 0,
        }
    }
}

/// A loaded sentence model.
pub(crate) struct SentenceModel {
    source: InferenceModel,
    /// Typed graphs by batch size, with `sequence` still symbolic.
    bases: Mutex<(HashMap<usize, Base>, FoldedWeights)>,
    consts: Mutex<SharedConsts>,
    sequence: Symbol,
    has_token_types: bool,
    plans: Mutex<PlanCache>,
    path: String,
}

/// Token ids and masks of a padded `[batch, seq]` block, row-major.
pub(crate) struct PaddedBatch {
    pub batch: usize,
    pub seq: usize,
    pub ids: Vec<i64>,
    pub mask: Vec<i64>,
    pub type_ids: Vec<i64>,
}

impl SentenceModel {
    /// Parses and prepares the model named by `manifest`; `plan_capacity` bounds the cached shapes.
    pub(crate) fn load(bytes: &[u8], manifest: &Manifest, plan_capacity: usize) -> Result<SentenceModel> {
        let path = manifest.file(crate::bundle::FileRole::Model).path.clone();
        #[cfg(all(target_arch = "wasm32", target_feature = "simd128"))]
        crate::wasm_kernels::keep_linked();
        let mut source = parse_named(bytes, &manifest.onnx, &path)?;
        check_max_seq_length(&source, manifest.max_seq_length, &path)?;
        fold_constants(&mut source).map_err(|e| model_error(&path, format!("{e:#}")))?;
        let mut folded = FoldedWeights::new();
        let mut consts = SharedConsts::default();
        let mut base = prepare(source.clone(), 1, &mut folded, &path)?;
        consts.share(&mut base).map_err(|e| model_error(&path, e))?;
        let base = Arc::new(base);
        let fact = base.output_fact(0).map_err(|e| model_error(&path, e))?;
        if fact.rank() != 3 || fact.shape[2] != manifest.dim.to_dim() {
            return Err(model_error(
                &path,
                format!(
                    "output shape is {:?} but the manifest says dim {}",
                    fact.shape, manifest.dim
                ),
            ));
        }
        let sequence = base.symbols.sym("sequence");
        Ok(SentenceModel {
            source,
            bases: Mutex::new((HashMap::from([(1, Base::new(base))]), folded)),
            consts: Mutex::new(consts),
            sequence,
            has_token_types: manifest.onnx.token_type_ids.is_some(),
            plans: Mutex::new(PlanCache {
                plans: HashMap::new(),
                clock: 0,
                capacity: plan_capacity.max(1),
            }),
            path,
        })
    }

    /// The graph to compile a new plan of `batch` from (see [`Base`]).
    fn base(&self, batch: usize) -> Result<Arc<TypedModel>> {
        let mut guard = self.bases.lock().unwrap_or_else(|p| p.into_inner());
        let (bases, folded) = &mut *guard;
        let base = match bases.entry(batch) {
            std::collections::hash_map::Entry::Occupied(entry) => entry.into_mut(),
            std::collections::hash_map::Entry::Vacant(entry) => {
                let mut graph = prepare(self.source.clone(), batch, folded, &self.path)?;
                self.share_consts(&mut graph)?;
                entry.insert(Base::new(Arc::new(graph)))
            }
        };
        if base.plans_compiled > 0 && !base.decluttered {
            let mut graph = (*base.graph)
                .clone()
                .into_decluttered()
                .map_err(|e| model_error(&self.path, format!("{e:#}")))?;
            self.share_consts(&mut graph)?;
            base.graph = Arc::new(graph);
            base.decluttered = true;
        }
        base.plans_compiled += 1;
        Ok(base.graph.clone())
    }

    fn share_consts(&self, model: &mut TypedModel) -> Result<()> {
        let mut consts = self.consts.lock().unwrap_or_else(|p| p.into_inner());
        consts.share(model).map_err(|e| model_error(&self.path, e))
    }

    fn plan(&self, batch: usize, seq: usize) -> Result<Plan> {
        let slot = self
            .plans
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .slot((batch, seq));
        let mut slot = slot.lock().unwrap_or_else(|p| p.into_inner());
        if let Some(plan) = &*slot {
            return Ok(plan.clone());
        }
        let subs = HashMap::from([(self.sequence.clone(), seq.to_dim())]);
        let planning_error =
            |e: TractError| model_error(&self.path, format!("planning shape [{batch}, {seq}]: {e:#}"));
        let mut optimized = self
            .base(batch)?
            .set_symbols(&subs)
            .and_then(|m| m.into_optimized())
            .map_err(planning_error)?;
        self.share_consts(&mut optimized)?;
        let plan: Plan = optimized.into_runnable().map_err(planning_error)?;
        release_freed_memory();
        *slot = Some(plan.clone());
        Ok(plan)
    }

    /// Names of the matmul kernels of the cached plans, sorted and deduplicated; a plan being compiled
    /// is skipped rather than waited for.
    pub(crate) fn matmul_kernels(&self) -> Vec<String> {
        let slots: Vec<PlanSlot> = {
            let cache = self.plans.lock().unwrap_or_else(|p| p.into_inner());
            cache.plans.values().map(|(slot, _)| slot.clone()).collect()
        };
        let mut names = std::collections::BTreeSet::new();
        for slot in slots {
            let Ok(slot) = slot.try_lock() else { continue };
            for node in slot.iter().flat_map(|plan| plan.model().nodes()) {
                if let Some(matmul) = node.op_as::<OptMatMul>() {
                    names.extend(matmul.mmm.iter().map(|k| k.name().to_string()));
                }
            }
        }
        names.into_iter().collect()
    }

    /// Runs one padded block and returns `last_hidden_state`, `[batch, seq, dim]` row-major.
    pub(crate) fn run(&self, input: PaddedBatch) -> Result<Tensor> {
        let PaddedBatch {
            batch,
            seq,
            ids,
            mask,
            type_ids,
        } = input;
        let plan = self.plan(batch, seq)?;
        let to_tensor = |v: Vec<i64>| -> Result<TValue> {
            Ok(tract_ndarray::Array2::from_shape_vec((batch, seq), v)
                .map_err(|e| Error::Inference(e.to_string()))?
                .into_tensor()
                .into_tvalue())
        };
        let mut inputs = tvec!(to_tensor(ids)?, to_tensor(mask)?);
        if self.has_token_types {
            inputs.push(to_tensor(type_ids)?);
        }
        let mut out = plan.run(inputs).map_err(|e| Error::Inference(format!("{e:#}")))?;
        Ok(out.remove(0).into_tensor())
    }
}

#[cfg(test)]
mod tests {
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

    /// A graph gathering from a constant `table` of `rows` × 4 by the ids input, as an embedding layer
    /// does; with `int8`, the table is stored as a dequantising `Mul(Cast(table_q), scale)`.
    fn gather_graph(table: &str, rows: usize, int8: bool) -> InferenceModel {
        use tract_onnx::tract_core::ops::math::Mul;
        use tract_onnx::tract_hir::ops::{array, binary::BinIntoHir, cast, expandable::expand};
        let mut model = InferenceModel::default();
        let ids = model
            .add_source("input_ids", InferenceFact::dt_shape(i64::datum_type(), [1usize, 8]))
            .unwrap();
        let data = if int8 {
            let q = model.add_const(format!("{table}_q"), Tensor::zero::<i8>(&[rows, 4]).unwrap());
            let scale = model.add_const(format!("{table}_scale"), Tensor::zero::<f32>(&[rows, 1]).unwrap());
            let f = model
                .wire_node(
                    format!("{table}_cast"),
                    cast::cast(f32::datum_type()),
                    &[q.unwrap()],
                )
                .unwrap();
            model
                .wire_node(table, Mul.into_hir(), &[f[0], scale.unwrap()])
                .unwrap()[0]
        } else {
            model
                .add_const(table, Tensor::zero::<f32>(&[rows, 4]).unwrap())
                .unwrap()
        };
        model
            .wire_node("gather", expand(array::Gather::new(0)), &[data, ids])
            .unwrap();
        model
    }

    #[test]
    fn the_position_limit_is_the_position_tables_first_dimension() {
        for int8 in [false, true] {
            let model = gather_graph("m.embeddings.position_embeddings.weight", 64, int8);
            let table = position_table(&model).expect("a position table");
            assert_eq!(table.rows, 64, "int8: {int8}");
            assert!(check_max_seq_length(&model, 64, "model.onnx").is_ok());
            let err = check_max_seq_length(&model, 65, "model.onnx")
                .unwrap_err()
                .to_string();
            assert!(
                err.contains("max_seq_length 65") && err.contains("64 positions"),
                "{err}"
            );
        }
        // Another embedding table (word, token type) says nothing about positions.
        let model = gather_graph("m.embeddings.word_embeddings.weight", 64, false);
        assert_eq!(position_table(&model), None);
        assert!(check_max_seq_length(&model, 100_000, "model.onnx").is_ok());
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
