//! Reading an ONNX model: parsing it with its inputs named, and the facts a bundle's manifest records
//! about it (embedding dimension, weight storage, input and output names, position limit).
//!
//! Building a bundle learns these facts here; loading one checks the manifest against the same
//! functions, so a bundle can't promise what its model does not have.

use tract_onnx::prelude::*;
use tract_onnx::tract_hir::internal::DimLike;

use super::model_error;
use super::rewrite::{prepare, FoldedWeights};
use crate::error::{Error, Result};
use crate::manifest::{OnnxIo, Quantization};

/// What a bundle's manifest records about a model, read off the model itself.
pub(crate) struct ModelFacts {
    pub dim: usize,
    pub quantization: Quantization,
    pub io: OnnxIo,
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
/// [`SentenceModel::load`](super::SentenceModel::load) (verifying or loading one, on every tier).
pub(super) fn check_max_seq_length(model: &InferenceModel, max_seq_length: usize, path: &str) -> Result<()> {
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
    let typed = prepare(named, 1, None, &mut FoldedWeights::new(), path)?;
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
pub(super) fn parse_named(bytes: &[u8], io: &OnnxIo, path: &str) -> Result<InferenceModel> {
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

#[cfg(test)]
mod tests {
    use super::*;

    /// A graph gathering from a constant `table` of `rows` × 4 by the ids input, as an embedding layer
    /// does; with `int8`, the table is stored as a dequantising `Mul(Cast(table_q), scale)`.
    fn gather_graph(table: &str, rows: usize, int8: bool) -> InferenceModel {
        use tract_onnx::tract_core::ops::math::Mul;
        use tract_onnx::tract_hir::ops::{array, binary::BinIntoHir, cast, expandable::expand};
        let mut model = InferenceModel::default();
        let ids = model
            .add_source(
                "input_ids",
                InferenceFact::dt_shape(i64::datum_type(), [1usize, 8]),
            )
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
}
