//! The manifest parser under hostile input (#21's standing hostile-input suite): byte-level mutations and
//! arbitrary JSON never panic, every refusal says what is wrong, and whatever is accepted is a manifest
//! whose file paths stay inside the bundle.

use akidb_core::Manifest;
use proptest::prelude::*;

const MANIFEST: &str = r#"{
  "format_version": 1, "name": "all-MiniLM-L6-v2", "version": "1.0.0-int8", "dim": 384,
  "max_seq_length": 256, "pooling": "mean", "normalize": true, "quantization": "int8-weights",
  "onnx": {"input_ids": "input_ids", "attention_mask": "attention_mask",
           "token_type_ids": "token_type_ids", "output": "last_hidden_state"},
  "files": [
    {"path": "model.onnx", "role": "model", "size": 22928619,
     "sha256": "8199be6f699a395f99f89df973f9dc5285fbcfcdb2ae1a4e1201dab014f3d2a6"},
    {"path": "tokenizer.json", "role": "tokenizer", "size": 466247,
     "sha256": "be50c3628f2bf5bb5e3a7f17b1f74611b2561a3a27eeab05e5aa30f411572037"}
  ]
}"#;

/// Checks what the parser made of `bytes`: an accepted manifest names safe relative files with sha256
/// digests; a refusal has a message.
fn check(bytes: &[u8]) -> Result<(), TestCaseError> {
    match Manifest::from_json(bytes) {
        Ok(m) => {
            prop_assert!(!m.files.is_empty());
            for f in &m.files {
                prop_assert!(
                    !f.path.starts_with('/') && !f.path.split('/').any(|c| c == ".."),
                    "{}",
                    f.path
                );
                prop_assert!(f.sha256.len() == 64 && f.sha256.bytes().all(|c| c.is_ascii_hexdigit()));
            }
        }
        Err(e) => prop_assert!(e.to_string().len() > 20, "a refusal without a message: {e}"),
    }
    Ok(())
}

#[test]
fn the_sample_is_accepted() {
    assert!(Manifest::from_json(MANIFEST.as_bytes()).is_ok());
}

/// Values that stress the fields: paths, numbers, and strings of every kind.
fn hostile_value() -> impl Strategy<Value = serde_json::Value> {
    prop_oneof![
        Just(serde_json::json!(-1)),
        Just(serde_json::json!(1e300)),
        Just(serde_json::json!(u64::MAX)),
        Just(serde_json::json!("../../etc/passwd")),
        Just(serde_json::json!("/abs/model.onnx")),
        Just(serde_json::json!("a\u{0}b")),
        Just(serde_json::json!(null)),
        Just(serde_json::json!([])),
        Just(serde_json::json!({})),
        any::<i64>().prop_map(|n| serde_json::json!(n)),
        "\\PC{0,12}".prop_map(|s| serde_json::json!(s)),
    ]
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(1500))]

    #[test]
    fn mutated_bytes_never_panic(edits in proptest::collection::vec((any::<usize>(), any::<u8>()), 1..6)) {
        let mut bytes = MANIFEST.as_bytes().to_vec();
        for (at, byte) in edits {
            let i = at % bytes.len();
            bytes[i] = byte;
        }
        check(&bytes)?;
    }

    #[test]
    fn any_field_replaced_by_a_hostile_value_is_handled(
        field in prop::sample::select(vec![
            "format_version", "name", "version", "dim", "max_seq_length", "pooling", "normalize",
            "quantization", "onnx", "files", "files.0.path", "files.0.size", "files.1.sha256", "files.1.role",
        ]),
        value in hostile_value(),
    ) {
        let mut doc: serde_json::Value = serde_json::from_str(MANIFEST).unwrap();
        let target = field
            .split('.')
            .try_fold(&mut doc, |v, key| match key.parse::<usize>() {
                Ok(i) => v.get_mut(i),
                Err(_) => v.get_mut(key),
            })
            .unwrap();
        *target = value;
        check(&serde_json::to_vec(&doc).unwrap())?;
    }

    #[test]
    fn truncations_are_refused(cut in 0usize..MANIFEST.len() - 1) {
        prop_assert!(Manifest::from_json(&MANIFEST.as_bytes()[..cut]).is_err());
    }
}
