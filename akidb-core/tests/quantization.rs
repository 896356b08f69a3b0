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
