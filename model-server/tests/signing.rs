//! Publishing signed bundles (issue #19): with trusted keys, a bundle's `manifest.json.sig` must verify
//! over the exact manifest bytes, checked before any blob is stored; without keys, publishing is as before.
//! Keys are made here (fresh seeds from the OS); none is committed.

mod common;

use std::io::Read;
use std::path::Path;

use akidb_core::signing::{PrivateKey, SignatureError, TrustedKeys, SIGNATURE_FILE};
use akidb_core::MANIFEST_FILE;
use common::*;
use model_server::publish::publish_dir_signed;
use model_server::{BlobHash, BlobStore, PublishError};

fn new_key() -> PrivateKey {
    let mut seed = [0u8; 32];
    std::fs::File::open("/dev/urandom")
        .and_then(|mut f| f.read_exact(&mut seed))
        .unwrap();
    PrivateKey::from_seed(seed)
}

fn trust(keys: &[&PrivateKey]) -> TrustedKeys {
    TrustedKeys::from_keys(keys.iter().map(|k| k.public_key()).collect())
}

fn sign(key: &PrivateKey, bundle: &Path) {
    let manifest = std::fs::read(bundle.join(MANIFEST_FILE)).unwrap();
    std::fs::write(bundle.join(SIGNATURE_FILE), key.sign_manifest(&manifest)).unwrap();
}

/// Publishes `bundle` into a fresh data dir under `trusted`; on a refusal, also checks that the store
/// holds none of the bundle's blobs and the registry no version.
fn publish(bundle: &Path, trusted: &TrustedKeys) -> Result<Option<String>, PublishError> {
    let data = tempfile::tempdir().unwrap();
    let (registry, store) = model_server::open_data_dir(data.path()).unwrap();
    let result = publish_dir_signed(&registry, &store, bundle, &["latest".into()], trusted);
    if result.is_err() {
        for file in ["model.onnx", "tokenizer.json", MANIFEST_FILE, SIGNATURE_FILE] {
            let Ok(bytes) = std::fs::read(bundle.join(file)) else {
                continue;
            };
            let size = store.size(&BlobHash::of(&bytes)).unwrap();
            assert_eq!(size, None, "{file} was stored although the publish was refused");
        }
        assert!(
            registry.models().unwrap().is_empty(),
            "a refused publish recorded a model"
        );
    }
    result.map(|(_, _, key_id)| key_id)
}

#[test]
fn a_bundle_signed_by_a_trusted_key_publishes_and_reports_its_key_id() {
    let tmp = tempfile::tempdir().unwrap();
    let bundle = write_real_bundle(tmp.path(), "m", "1.0.0", 1);
    let key = new_key();
    sign(&key, &bundle);
    assert_eq!(
        publish(&bundle, &trust(&[&key])).unwrap().as_deref(),
        Some(key.key_id())
    );
}

#[test]
fn without_trusted_keys_an_unsigned_bundle_publishes_as_before() {
    let tmp = tempfile::tempdir().unwrap();
    let bundle = write_real_bundle(tmp.path(), "m", "1.0.0", 2);
    assert_eq!(publish(&bundle, &TrustedKeys::none()).unwrap(), None);
}

#[test]
fn missing_untrusted_and_changed_are_refused_before_any_blob_is_stored() {
    let tmp = tempfile::tempdir().unwrap();
    let bundle = write_real_bundle(tmp.path(), "m", "1.0.0", 3);
    let manifest_path = bundle.join(MANIFEST_FILE).display().to_string();
    let (key, stranger) = (new_key(), new_key());
    let trusted = trust(&[&key]);

    let err = publish(&bundle, &trusted).unwrap_err();
    assert!(
        matches!(&err, PublishError::Signature(SignatureError::Missing { .. })),
        "{err}"
    );
    assert!(err.to_string().contains(&manifest_path), "{err}");

    sign(&stranger, &bundle);
    let err = publish(&bundle, &trusted).unwrap_err();
    assert!(
        matches!(&err, PublishError::Signature(SignatureError::UntrustedKey { .. })),
        "{err}"
    );
    assert!(err.to_string().contains(stranger.key_id()), "{err}");

    // One changed byte: the version 1.0.0 -> 1.0.1, still a valid manifest whose files all match.
    sign(&key, &bundle);
    let manifest = std::fs::read_to_string(bundle.join(MANIFEST_FILE)).unwrap();
    assert_eq!(manifest.matches("\"1.0.0\"").count(), 1);
    std::fs::write(
        bundle.join(MANIFEST_FILE),
        manifest.replace("\"1.0.0\"", "\"1.0.1\""),
    )
    .unwrap();
    let err = publish(&bundle, &trusted).unwrap_err();
    assert!(
        matches!(&err, PublishError::Signature(SignatureError::BadSignature { .. })),
        "{err}"
    );
    assert!(
        err.to_string().contains(key.key_id()) && err.to_string().contains(&manifest_path),
        "{err}"
    );
}

#[test]
fn a_rotated_key_set_accepts_either_key_and_a_removed_key_is_revoked() {
    let tmp = tempfile::tempdir().unwrap();
    let bundle = write_real_bundle(tmp.path(), "m", "1.0.0", 4);
    let (old, new) = (new_key(), new_key());
    for key in [&old, &new] {
        sign(key, &bundle);
        assert_eq!(
            publish(&bundle, &trust(&[&old, &new])).unwrap().as_deref(),
            Some(key.key_id())
        );
    }
    sign(&old, &bundle);
    let err = publish(&bundle, &trust(&[&new])).unwrap_err();
    assert!(
        matches!(&err, PublishError::Signature(SignatureError::UntrustedKey { .. })),
        "{err}"
    );
}
