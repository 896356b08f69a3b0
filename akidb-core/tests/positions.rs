//! A bundle may not truncate at more tokens than its model has positions (issue #21, defect 1): with
//! `max_seq_length` 100000 on MiniLM (512 positions), a long text made tract index past the
//! position-embedding table and the process grew until the allocator aborted. Such a bundle is refused
//! when it is built, verified or loaded, and the error names both numbers.

use std::path::Path;

use akidb_core::{Bundle, BundleSpec, Embedder, Error, Pooling};
use akidb_testkit::paths::{self, read};

/// MiniLM's position-embedding table has 512 rows (`max_position_embeddings` of BERT).
const MINILM_POSITIONS: usize = 512;

fn spec(max_seq_length: usize) -> BundleSpec {
    BundleSpec {
        name: "all-MiniLM-L6-v2".into(),
        version: "test".into(),
        pooling: Pooling::Mean,
        max_seq_length,
        normalize: true,
        quantization: None,
        calibration: Vec::new(),
    }
}

/// Asserts that `err` is the refusal of `max_seq_length`, naming it and the model's 512 positions.
fn assert_refused(err: &Error, max_seq_length: usize) {
    assert!(
        matches!(
            err,
            Error::SeqLengthOverPositions { max_seq_length: asked, positions: MINILM_POSITIONS, .. }
                if *asked == max_seq_length
        ),
        "{err:?}"
    );
    let message = err.to_string();
    assert!(
        message.contains(&format!("max_seq_length {max_seq_length}"))
            && message.contains(&format!("{MINILM_POSITIONS} positions")),
        "{message}"
    );
}

/// The bundle in `dir` with its manifest's `max_seq_length` rewritten; every file still matches its
/// hash, so only the model can tell that the setting is wrong.
fn bundle_with_max_seq_length(dir: &Path, max_seq_length: usize) -> Bundle {
    let mut manifest: serde_json::Value = serde_json::from_slice(&read(dir, "manifest.json")).unwrap();
    manifest["max_seq_length"] = max_seq_length.into();
    let json = serde_json::to_vec(&manifest).unwrap();
    Bundle::from_files(&json, |path| std::fs::read(dir.join(path)).ok()).expect("the files verify")
}

#[test]
fn building_a_bundle_longer_than_the_models_positions_is_refused() {
    let dir = paths::int8_bundle();
    let (model, tokenizer) = (read(&dir, "model.onnx"), read(&dir, "tokenizer.json"));
    for too_long in [MINILM_POSITIONS + 1, 100_000] {
        let err = Bundle::create(spec(too_long), model.clone(), tokenizer.clone()).unwrap_err();
        assert_refused(&err, too_long);
    }
    let bundle = Bundle::create(spec(MINILM_POSITIONS), model, tokenizer).expect("512 tokens fit");
    assert_eq!(bundle.manifest().max_seq_length, MINILM_POSITIONS);
}

#[test]
fn verifying_or_loading_a_bundle_longer_than_the_models_positions_is_refused() {
    // int8 stores the table behind a dequantising Cast and Mul; fp32 stores it plain.
    for variant in ["int8", "fp32"] {
        let bundle = bundle_with_max_seq_length(&paths::bundle(variant), 100_000);
        let err = Embedder::new(&bundle).err().expect("a 100000-token bundle loads");
        assert_refused(&err, 100_000);
    }
}

#[test]
fn a_bundle_at_the_models_position_limit_embeds_a_longer_text() {
    let bundle = bundle_with_max_seq_length(&paths::int8_bundle(), MINILM_POSITIONS);
    let embedder = Embedder::new(&bundle).expect("512 tokens fit");
    let long = "word ".repeat(2 * MINILM_POSITIONS);
    assert_eq!(
        embedder.tokenize(&[&long]).unwrap()[0].ids.len(),
        MINILM_POSITIONS
    );
    let v = embedder.embed(&[&long]).unwrap();
    let norm: f32 = v.row(0).iter().map(|x| x * x).sum::<f32>().sqrt();
    assert!((norm - 1.0).abs() < 1e-4, "norm {norm}");
}
