//! `int8-dynamic` bundles (issue #18): asked for at build time, only of an int8 model.

use akidb_core::{Bundle, BundleSpec, Error, Pooling, Quantization};
use akidb_testkit::paths::{self, read};

fn spec(quantization: Option<Quantization>) -> BundleSpec {
    BundleSpec {
        name: "all-MiniLM-L6-v2".into(),
        version: "test".into(),
        pooling: Pooling::Mean,
        max_seq_length: 256,
        normalize: true,
        quantization,
        calibration: Vec::new(),
    }
}

#[test]
fn an_int8_model_builds_as_int8_dynamic_when_asked_and_as_int8_weights_otherwise() {
    let dir = paths::int8_bundle();
    let (model, tokenizer) = (read(&dir, "model.onnx"), read(&dir, "tokenizer.json"));
    let asked = Bundle::create(
        spec(Some(Quantization::Int8Dynamic)),
        model.clone(),
        tokenizer.clone(),
    )
    .expect("int8 model as int8-dynamic");
    assert_eq!(asked.manifest().quantization, Quantization::Int8Dynamic);
    let plain = Bundle::create(spec(None), model, tokenizer).expect("int8 model");
    assert_eq!(plain.manifest().quantization, Quantization::Int8Weights);
}

#[test]
fn an_fp32_model_is_refused_as_int8_dynamic_naming_why() {
    let dir = paths::fp32_bundle();
    let err = Bundle::create(
        spec(Some(Quantization::Int8Dynamic)),
        read(&dir, "model.onnx"),
        read(&dir, "tokenizer.json"),
    )
    .expect_err("fp32 weights can't run integer products");
    assert!(matches!(err, Error::Model { .. }), "{err:?}");
    let message = err.to_string();
    assert!(
        message.contains("int8-dynamic") && message.contains("weights are none"),
        "{message}"
    );
}

#[test]
fn a_manifest_saying_int8_dynamic_over_an_fp32_model_fails_to_load_naming_it() {
    let dir = paths::fp32_bundle();
    let manifest = String::from_utf8(read(&dir, "manifest.json")).unwrap();
    let edited = manifest.replace("\"quantization\": \"none\"", "\"quantization\": \"int8-dynamic\"");
    assert_ne!(manifest, edited, "the fp32 manifest names its quantization");
    let bundle =
        Bundle::from_files(edited.as_bytes(), |p| std::fs::read(dir.join(p)).ok()).expect("files verify");
    match akidb_core::Embedder::new(&bundle) {
        // An x86-64 CPU with AVX-512 but no VNNI/AMX runs the exact path, where fp32 weights are fine.
        Ok(e) => assert!(!e.integer_matmuls()),
        Err(e) => assert!(e.to_string().contains("no int8 weight products"), "{e}"),
    }
}

fn calibrated(texts: &[&str]) -> Bundle {
    let dir = paths::int8_bundle();
    let mut spec = spec(Some(Quantization::Int8Dynamic));
    spec.calibration = texts.iter().map(|t| t.to_string()).collect();
    Bundle::create(spec, read(&dir, "model.onnx"), read(&dir, "tokenizer.json")).expect("int8-dynamic")
}

#[test]
fn an_int8_dynamic_build_records_the_outlier_channels_its_calibration_finds() {
    let texts = [
        "The quick brown fox jumps over the lazy dog.",
        "A man is playing a guitar on the street.",
        "Embeddings map text to vectors.",
    ];
    let bundle = calibrated(&texts);
    let outliers = &bundle.manifest().outlier_channels;
    // This model's LayerNorm outputs have a few channels far wider than the rest (PERF.md): the
    // products reading them get channels, each list increasing and short.
    assert!(
        outliers.len() >= 12,
        "{} products with outliers: {outliers:?}",
        outliers.len()
    );
    for (product, channels) in outliers {
        assert!(
            !channels.is_empty() && channels.len() <= 64,
            "{product}: {channels:?}"
        );
        assert!(
            channels.windows(2).all(|w| w[0] < w[1]),
            "{product}: {channels:?}"
        );
    }
    // Q, K and V read one activation, so they share its channels: the 6 layers' 18 are in groups of ≥ 3
    // equal lists (node names are the ONNX export's, `node_MatMul_48` …, so they are not named here).
    let lists: Vec<&Vec<u32>> = outliers.values().collect();
    let grouped = lists
        .iter()
        .filter(|l| lists.iter().filter(|m| m == l).count() >= 3)
        .count();
    assert!(
        grouped >= 18,
        "{grouped} products share their channels with two others: {outliers:?}"
    );
    // Calibration is deterministic (a rebuilt bundle is the same bundle), and without texts there is none.
    assert_eq!(calibrated(&texts).manifest(), bundle.manifest());
    assert!(calibrated(&[]).manifest().outlier_channels.is_empty());
}

#[test]
fn outlier_channels_the_model_cannot_have_fail_the_load_naming_them() {
    let dir = paths::int8_dynamic_bundle();
    let manifest: serde_json::Value = serde_json::from_slice(&read(&dir, "manifest.json")).unwrap();
    let product = manifest["outlier_channels"]
        .as_object()
        .and_then(|o| o.keys().next().cloned())
        .expect("scripts/fetch-models.sh calibrates the int8-dynamic bundle");
    for (edit, why) in [
        (serde_json::json!({"/no/such/MatMul": [1]}), "/no/such/MatMul"),
        (
            serde_json::json!({product.clone(): [100000]}),
            "outlier channel 100000",
        ),
    ] {
        let mut edited = manifest.clone();
        edited["outlier_channels"] = edit;
        let bytes = serde_json::to_vec(&edited).unwrap();
        let bundle = Bundle::from_files(&bytes, |p| std::fs::read(dir.join(p)).ok()).expect("files verify");
        match akidb_core::Embedder::new(&bundle) {
            // Where the integer path does not run (AVX-512 without VNNI/AMX), nothing reads them.
            Ok(e) => assert!(!e.integer_matmuls()),
            Err(e) => assert!(e.to_string().contains(why), "{e}"),
        }
    }
}
