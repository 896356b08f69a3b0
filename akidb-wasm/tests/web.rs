//! The core's golden suite (`akidb-testkit`'s golden module, the one the native tests use)
//! inside headless Chromium through wasm-bindgen-test, on the int8 bundle embedded in the test module.
//! Run by `akidb-wasm/tests/run.sh`; fp32 (90 MB) and the wasm-vs-native comparison run in Node
//! (`tests/js/node.test.mjs`).
#![cfg(target_arch = "wasm32")]

use akidb_core::{Bundle, Embedder};
use akidb_testkit::golden::{self, Golden, INT8_BARS};
use wasm_bindgen_test::*;

wasm_bindgen_test_configure!(run_in_browser);

macro_rules! int8 {
    ($f:literal) => {
        include_bytes!(concat!(
            env!("CARGO_MANIFEST_DIR"),
            "/../models/all-MiniLM-L6-v2/int8/",
            $f
        ))
    };
}
macro_rules! golden {
    ($f:literal) => {
        include_bytes!(concat!(env!("CARGO_MANIFEST_DIR"), "/../../shared/golden/", $f))
    };
}

fn golden_data() -> Golden {
    Golden::parse(
        golden!("sentences.json"),
        golden!("embeddings.f32"),
        golden!("token_ids.json"),
    )
}

fn int8() -> Embedder {
    let bundle = Bundle::from_files(int8!("manifest.json"), |path| match path {
        "model.onnx" => Some(int8!("model.onnx").to_vec()),
        "tokenizer.json" => Some(int8!("tokenizer.json").to_vec()),
        _ => None,
    })
    .expect("bundle verifies");
    Embedder::new(&bundle).expect("model loads")
}

#[wasm_bindgen_test]
fn golden_suite_in_the_browser() {
    let golden = golden_data();
    let embedder = int8();
    golden::check_token_ids(&embedder, &golden);
    let (min, mean) = golden::check_embeddings(&embedder, &golden, INT8_BARS);
    console_log!("wasm int8 in the browser: min cosine {min:.6}, mean {mean:.6}");
    let texts: Vec<&str> = golden.texts().into_iter().take(40).collect();
    golden::check_batch_matches_single(&embedder, &texts, 1e-5);
}

#[wasm_bindgen_test]
fn plans_run_wasm_simd_kernels() {
    let embedder = int8();
    golden::check_simd_kernels(&embedder);
    let kernels = embedder.matmul_kernels();
    console_log!("wasm matmul kernels: {kernels:?}");
    // Every f32 product with more than a column runs akidb-core's own 8×4 kernel (wasm_kernels/f32.rs),
    // picked by its dispatch tier over tract's choice; anything else is one of tract's wasm kernels.
    assert!(kernels.iter().any(|k| k == "akidb_wasm_f32_8x4"), "{kernels:?}");
    assert!(
        kernels
            .iter()
            .all(|k| k == "akidb_wasm_f32_8x4" || k.starts_with("wasm_f32_") && k.ends_with("x1")),
        "{kernels:?}"
    );
}

#[wasm_bindgen_test]
fn a_corrupt_file_is_named() {
    let mut model = int8!("model.onnx").to_vec();
    model[1000] ^= 1;
    let err = Bundle::from_files(int8!("manifest.json"), |path| match path {
        "model.onnx" => Some(model.clone()),
        "tokenizer.json" => Some(int8!("tokenizer.json").to_vec()),
        _ => None,
    })
    .expect_err("a flipped byte fails verification");
    assert!(err.to_string().contains("model.onnx"), "{err}");
}

/// The browser's signature check (`verifyManifestSignature`): the real manifest signed by a key made
/// here verifies to its key id; one changed byte is refused naming the key id and the manifest.
#[wasm_bindgen_test]
fn a_signed_manifest_with_a_changed_byte_is_refused() {
    use akidb_core::signing::PrivateKey;
    let mut seed = [0u8; 32];
    seed.iter_mut()
        .for_each(|b| *b = (js_sys::Math::random() * 256.0) as u8);
    let key = PrivateKey::from_seed(seed);
    let trusted = String::from_utf8(key.public_key().to_json()).unwrap();
    let trusted = format!("[{trusted}]");
    let manifest = int8!("manifest.json");
    let signature = key.sign_manifest(manifest);
    let name = "https://cdn.example/v1/models/all-MiniLM-L6-v2/1.0.0-int8/manifest.json";
    let key_id = akidb_wasm::verify_manifest_signature(manifest, Some(signature.clone()), &trusted, name)
        .unwrap_or_else(|_| panic!("the signed manifest verifies"));
    assert_eq!(key_id.as_deref(), Some(key.key_id()));

    let mut changed = manifest.to_vec();
    changed[manifest.len() / 2] ^= 1;
    let err = akidb_wasm::verify_manifest_signature(&changed, Some(signature), &trusted, name)
        .expect_err("a changed byte is refused");
    let message = js_sys::Error::from(wasm_bindgen::JsValue::from(err))
        .message()
        .as_string()
        .unwrap();
    assert!(
        message.contains(key.key_id()) && message.contains(name),
        "{message}"
    );
}
