//! Signed bundles: a detached ed25519 signature over the exact bytes of `manifest.json`.
//!
//! The manifest pins every other file by size and sha256, so signing it signs the bundle. This module is
//! the one implementation every tier uses (the CLI, `akidb serve --bundle-url`, model-server, and the
//! browser and edge loaders through `akidb-wasm`'s `verifyManifestSignature`). Like the rest of the core it
//! does no I/O and draws no randomness: callers read the files and pass a key's 32-byte seed.
//!
//! The formats (JSON, base64 with padding):
//! - private key file `NAME.key`: `{"kind":"akidb-ed25519-private-key","key_id":"…","private_key":"<32-byte seed>"}`
//! - public key file `NAME.pub`: `{"kind":"akidb-ed25519-public-key","key_id":"…","public_key":"<32 bytes>"}`
//! - signature `manifest.json.sig`: `{"algorithm":"ed25519","key_id":"…","signature":"<64 bytes>"}`
//! - trusted keys: `{"keys":[{"key_id":"…","public_key":"…"}, …]}` (or the bare list); more than one
//!   key is a rotation, removing one revokes it.
//!
//! A key id is the first 16 hex characters of the sha256 of the raw 32-byte public key.
//!
//! ```
//! use akidb_core::signing::{PrivateKey, TrustedKeys};
//! let key = PrivateKey::from_seed([7; 32]);
//! let manifest = br#"{"format_version":1}"#;
//! let signature = key.sign_manifest(manifest);
//! let trusted = TrustedKeys::from_keys(vec![key.public_key()]);
//! let key_id = trusted.verify_manifest(manifest, Some(&signature), "manifest.json")?;
//! assert_eq!(key_id.as_deref(), Some(key.key_id()));
//! # Ok::<(), akidb_core::signing::SignatureError>(())
//! ```

use base64::engine::general_purpose::STANDARD as BASE64;
use base64::Engine as _;
use ed25519_dalek::{Signature, Signer as _, SigningKey, VerifyingKey};
use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};
use thiserror::Error;

/// The file name of a bundle's signature, beside its `manifest.json`.
pub const SIGNATURE_FILE: &str = "manifest.json.sig";
/// What a loader appends to a manifest's URL or path to find its signature.
pub const SIGNATURE_SUFFIX: &str = ".sig";
/// The only signature algorithm.
pub const ALGORITHM: &str = "ed25519";
/// `kind` of a private key file.
pub const PRIVATE_KEY_KIND: &str = "akidb-ed25519-private-key";
/// `kind` of a public key file.
pub const PUBLIC_KEY_KIND: &str = "akidb-ed25519-public-key";

/// Why a key file, a trust list or a signature was refused. Each message names the manifest (its URL or
/// path, as the caller gave it) or the key file, and the key id when there is one.
#[derive(Debug, Error, PartialEq, Eq)]
#[non_exhaustive]
pub enum SignatureError {
    /// Trusted keys are configured but the manifest came without a signature.
    #[error("manifest {manifest} is not signed ({manifest}.sig is missing) but trusted keys are configured; refusing it")]
    Missing { manifest: String },
    /// The signature is not the JSON this format describes.
    #[error("the signature of manifest {manifest}{} is malformed: {reason}", key_suffix(.key_id))]
    Malformed {
        manifest: String,
        key_id: Option<String>,
        reason: String,
    },
    /// Signed by a key that is not (or no longer) trusted.
    #[error("manifest {manifest} is signed by key {key_id}, which is not among the trusted keys (unknown or revoked); refusing it")]
    UntrustedKey { manifest: String, key_id: String },
    /// The signature does not verify over the manifest's bytes with the key it names.
    #[error("the signature by key {key_id} does not verify over manifest {manifest}: the manifest or its signature was changed; refusing it")]
    BadSignature { manifest: String, key_id: String },
    /// A key file or trust list is not valid.
    #[error("{source_name}: {reason}")]
    InvalidKey { source_name: String, reason: String },
}

fn key_suffix(key_id: &Option<String>) -> String {
    key_id.as_ref().map(|k| format!(" (key {k})")).unwrap_or_default()
}

/// The key id of a raw public key: the first 16 hex characters of its sha256.
pub fn key_id_of(public_key: &VerifyingKey) -> String {
    hex::encode(&Sha256::digest(public_key.as_bytes())[..8])
}

fn decode_fixed<const N: usize>(b64: &str, what: &str) -> Result<[u8; N], String> {
    let bytes = BASE64
        .decode(b64.trim())
        .map_err(|e| format!("{what} is not valid base64: {e}"))?;
    let len = bytes.len();
    bytes
        .try_into()
        .map_err(|_| format!("{what} has {len} bytes; an ed25519 {what} has {N}"))
}

/// A signing key (the 32-byte ed25519 seed) and its key id. Never printed: `Debug` shows the id only.
pub struct PrivateKey {
    key_id: String,
    signing: SigningKey,
}

impl std::fmt::Debug for PrivateKey {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("PrivateKey")
            .field("key_id", &self.key_id)
            .finish_non_exhaustive()
    }
}

#[derive(Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
struct PrivateKeyFile {
    kind: String,
    key_id: String,
    private_key: String,
}

#[derive(Serialize, Deserialize)]
struct PublicKeyFile {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    kind: Option<String>,
    key_id: String,
    public_key: String,
}

#[derive(Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
struct SignatureFile {
    algorithm: String,
    key_id: String,
    signature: String,
}

impl PrivateKey {
    /// The key whose seed is `seed` (32 random bytes from the OS for a new key).
    pub fn from_seed(seed: [u8; 32]) -> PrivateKey {
        let signing = SigningKey::from_bytes(&seed);
        PrivateKey {
            key_id: key_id_of(&signing.verifying_key()),
            signing,
        }
    }

    /// Parses a private key file; `source_name` (its path) names it in errors. The file's `key_id` must
    /// match the key.
    pub fn from_json(bytes: &[u8], source_name: &str) -> Result<PrivateKey, SignatureError> {
        let invalid = |reason: String| SignatureError::InvalidKey {
            source_name: source_name.to_string(),
            reason,
        };
        let file: PrivateKeyFile = serde_json::from_slice(bytes)
            .map_err(|e| invalid(format!("not an akidb private key file: {e}")))?;
        if file.kind != PRIVATE_KEY_KIND {
            return Err(invalid(format!(
                "kind is {:?}, expected {PRIVATE_KEY_KIND:?}",
                file.kind
            )));
        }
        let key =
            PrivateKey::from_seed(decode_fixed::<32>(&file.private_key, "private key").map_err(invalid)?);
        if key.key_id != file.key_id {
            return Err(invalid(format!(
                "key_id {} does not match the key (whose id is {})",
                file.key_id, key.key_id
            )));
        }
        Ok(key)
    }

    /// The private key file's bytes (JSON, one line and a newline). Holds the secret: write it 0600.
    pub fn to_json(&self) -> Vec<u8> {
        let file = PrivateKeyFile {
            kind: PRIVATE_KEY_KIND.into(),
            key_id: self.key_id.clone(),
            private_key: BASE64.encode(self.signing.to_bytes()),
        };
        let mut out = serde_json::to_vec(&file).expect("plain strings serialise");
        out.push(b'\n');
        out
    }

    /// The key id.
    pub fn key_id(&self) -> &str {
        &self.key_id
    }

    /// The matching public key.
    pub fn public_key(&self) -> PublicKey {
        PublicKey {
            key_id: self.key_id.clone(),
            verifying: self.signing.verifying_key(),
        }
    }

    /// The `manifest.json.sig` bytes for `manifest`: a detached signature over exactly these bytes.
    pub fn sign_manifest(&self, manifest: &[u8]) -> Vec<u8> {
        let file = SignatureFile {
            algorithm: ALGORITHM.into(),
            key_id: self.key_id.clone(),
            signature: BASE64.encode(self.signing.sign(manifest).to_bytes()),
        };
        let mut out = serde_json::to_vec(&file).expect("plain strings serialise");
        out.push(b'\n');
        out
    }
}

/// A verifying key and its key id.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct PublicKey {
    key_id: String,
    verifying: VerifyingKey,
}

impl PublicKey {
    fn from_file(file: PublicKeyFile, source_name: &str) -> Result<PublicKey, SignatureError> {
        let invalid = |reason: String| SignatureError::InvalidKey {
            source_name: source_name.to_string(),
            reason,
        };
        if let Some(kind) = file.kind.as_deref().filter(|k| *k != PUBLIC_KEY_KIND) {
            return Err(invalid(format!("kind is {kind:?}, expected {PUBLIC_KEY_KIND:?}")));
        }
        let raw = decode_fixed::<32>(&file.public_key, "public key")
            .map_err(|e| invalid(format!("key {}: {e}", file.key_id)))?;
        let verifying = VerifyingKey::from_bytes(&raw)
            .map_err(|_| invalid(format!("key {}: not a valid ed25519 public key", file.key_id)))?;
        let key_id = key_id_of(&verifying);
        if key_id != file.key_id {
            return Err(invalid(format!(
                "key_id {} does not match its public key (whose id is {key_id})",
                file.key_id
            )));
        }
        Ok(PublicKey { key_id, verifying })
    }

    /// Parses a public key file (`NAME.pub`); `source_name` names it in errors.
    pub fn from_json(bytes: &[u8], source_name: &str) -> Result<PublicKey, SignatureError> {
        let file = serde_json::from_slice(bytes).map_err(|e| SignatureError::InvalidKey {
            source_name: source_name.to_string(),
            reason: format!("not an akidb public key file: {e}"),
        })?;
        PublicKey::from_file(file, source_name)
    }

    /// The public key file's bytes (JSON, one line and a newline).
    pub fn to_json(&self) -> Vec<u8> {
        let file = PublicKeyFile {
            kind: Some(PUBLIC_KEY_KIND.into()),
            key_id: self.key_id.clone(),
            public_key: BASE64.encode(self.verifying.as_bytes()),
        };
        let mut out = serde_json::to_vec(&file).expect("plain strings serialise");
        out.push(b'\n');
        out
    }

    /// The key id.
    pub fn key_id(&self) -> &str {
        &self.key_id
    }
}

/// The keys a loader accepts signatures from. Empty means signatures are not checked at all (bundles
/// load as they did before signing existed).
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct TrustedKeys {
    keys: Vec<PublicKey>,
}

#[derive(Deserialize)]
#[serde(untagged)]
enum TrustFile {
    Object { keys: Vec<serde_json::Value> },
    List(Vec<serde_json::Value>),
}

impl TrustedKeys {
    /// No keys: nothing is checked.
    pub fn none() -> TrustedKeys {
        TrustedKeys::default()
    }

    /// These keys.
    pub fn from_keys(keys: Vec<PublicKey>) -> TrustedKeys {
        TrustedKeys { keys }
    }

    /// Parses a trust list: `{"keys":[{"key_id","public_key"}, …]}`, or the bare list (JS's
    /// `trustedKeys`). Each entry has the fields of a `.pub` file (its `kind` is optional); a key id
    /// that does not match its key, or the same id twice, is refused. `source_name` names the list in
    /// errors.
    pub fn from_json(bytes: &[u8], source_name: &str) -> Result<TrustedKeys, SignatureError> {
        let invalid = |reason: String| SignatureError::InvalidKey {
            source_name: source_name.to_string(),
            reason,
        };
        let entries = match serde_json::from_slice::<TrustFile>(bytes) {
            Ok(TrustFile::Object { keys } | TrustFile::List(keys)) => keys,
            Err(_) => return Err(invalid(
                r#"not a trusted-keys list: expected {"keys":[{"key_id":"…","public_key":"<base64>"}, …]}"#
                    .into(),
            )),
        };
        let mut keys: Vec<PublicKey> = Vec::with_capacity(entries.len());
        for (i, entry) in entries.into_iter().enumerate() {
            let file: PublicKeyFile = serde_json::from_value(entry).map_err(|e| {
                invalid(format!(
                    "keys[{i}] needs string fields key_id and public_key: {e}"
                ))
            })?;
            let key = PublicKey::from_file(file, source_name)?;
            if keys.iter().any(|k| k.key_id == key.key_id) {
                return Err(invalid(format!("key {} is listed twice", key.key_id)));
            }
            keys.push(key);
        }
        Ok(TrustedKeys { keys })
    }

    /// Whether no key is configured (and so nothing is checked).
    pub fn is_empty(&self) -> bool {
        self.keys.is_empty()
    }

    /// The configured key ids, in order.
    pub fn key_ids(&self) -> Vec<&str> {
        self.keys.iter().map(|k| k.key_id.as_str()).collect()
    }

    /// Checks `signature` (the bytes of `manifest.json.sig`, `None` when there is none) over the exact
    /// bytes of `manifest`. `manifest_name` (the manifest's URL or path) names it in errors.
    ///
    /// With no trusted keys nothing is checked and `Ok(None)` is returned. Otherwise a missing or
    /// malformed signature, a key id not in the list, or a signature that does not verify is an error;
    /// success is `Ok(Some(key_id))`.
    pub fn verify_manifest(
        &self,
        manifest: &[u8],
        signature: Option<&[u8]>,
        manifest_name: &str,
    ) -> Result<Option<String>, SignatureError> {
        if self.keys.is_empty() {
            return Ok(None);
        }
        let manifest_name = manifest_name.to_string();
        let Some(signature) = signature else {
            return Err(SignatureError::Missing {
                manifest: manifest_name,
            });
        };
        let (file, raw) = parse_signature_file(signature, &manifest_name)?;
        let key_id = file.key_id.as_str();
        let Some(key) = self.keys.iter().find(|k| k.key_id == key_id) else {
            return Err(SignatureError::UntrustedKey {
                manifest: manifest_name,
                key_id: file.key_id,
            });
        };
        // verify_strict: also refuses the non-canonical and small-order forms plain verify lets through.
        key.verifying
            .verify_strict(manifest, &Signature::from_bytes(&raw))
            .map_err(|_| SignatureError::BadSignature {
                manifest: manifest_name.clone(),
                key_id: file.key_id.clone(),
            })?;
        Ok(Some(file.key_id))
    }
}

/// The key id a `manifest.json.sig` names, once the file has a signature file's shape: JSON with
/// `algorithm` ed25519, a non-empty `key_id` and a `signature` that is the base64 of 64 bytes. Nothing is
/// verified (that needs the key: [`TrustedKeys::verify_manifest`]); for a server without trusted keys
/// that stores a signature for clients that check it themselves. `manifest_name` names it in errors.
///
/// ```
/// use akidb_core::signing::{signature_key_id, PrivateKey};
/// let key = PrivateKey::from_seed([7; 32]);
/// let sig = key.sign_manifest(b"{}");
/// assert_eq!(signature_key_id(&sig, "manifest.json").unwrap(), key.key_id());
/// assert!(signature_key_id(b"{}", "manifest.json").is_err());
/// ```
pub fn signature_key_id(signature: &[u8], manifest_name: &str) -> Result<String, SignatureError> {
    parse_signature_file(signature, manifest_name).map(|(file, _)| file.key_id)
}

/// A signature file's fields and its raw signature, or why it is malformed.
fn parse_signature_file(
    signature: &[u8],
    manifest_name: &str,
) -> Result<(SignatureFile, [u8; 64]), SignatureError> {
    let malformed = |key_id: Option<&str>, reason: String| SignatureError::Malformed {
        manifest: manifest_name.to_string(),
        key_id: key_id.map(str::to_string),
        reason,
    };
    let file: SignatureFile = serde_json::from_slice(signature).map_err(|e| {
        malformed(
            None,
            format!(r#"expected {{"algorithm":"ed25519","key_id":"…","signature":"<base64>"}}: {e}"#),
        )
    })?;
    let key_id = file.key_id.as_str();
    if key_id.is_empty() {
        return Err(malformed(None, "the key id is empty".into()));
    }
    if file.algorithm != ALGORITHM {
        return Err(malformed(
            Some(key_id),
            format!("algorithm {:?} is not {ALGORITHM:?}", file.algorithm),
        ));
    }
    let raw = decode_fixed::<64>(&file.signature, "signature").map_err(|e| malformed(Some(key_id), e))?;
    Ok((file, raw))
}

#[cfg(test)]
mod tests {
    use super::*;

    const MANIFEST: &[u8] = br#"{"format_version":1,"name":"m","version":"1"}"#;
    const NAME: &str = "https://example.test/v1/models/m/1/manifest.json";

    fn trusted(keys: &[&PrivateKey]) -> TrustedKeys {
        TrustedKeys::from_keys(keys.iter().map(|k| k.public_key()).collect())
    }

    #[test]
    fn a_signature_verifies_and_returns_the_key_id() {
        let key = PrivateKey::from_seed([1; 32]);
        let sig = key.sign_manifest(MANIFEST);
        let got = trusted(&[&key])
            .verify_manifest(MANIFEST, Some(&sig), NAME)
            .unwrap();
        assert_eq!(got.as_deref(), Some(key.key_id()));
        assert_eq!(key.key_id().len(), 16);
        assert!(key.key_id().bytes().all(|b| b.is_ascii_hexdigit()));
    }

    #[test]
    fn a_signature_files_shape_is_checked_without_a_key() {
        let key = PrivateKey::from_seed([3; 32]);
        let good = key.sign_manifest(MANIFEST);
        assert_eq!(signature_key_id(&good, NAME).unwrap(), key.key_id());
        let file: serde_json::Value = serde_json::from_slice(&good).unwrap();
        let with = |field: &str, value: &str| {
            let mut f = file.clone();
            f[field] = value.into();
            serde_json::to_vec(&f).unwrap()
        };
        for (case, bytes, reason) in [
            ("not JSON", b"ed25519".to_vec(), "expected {"),
            ("empty key id", with("key_id", ""), "key id is empty"),
            ("other algorithm", with("algorithm", "rsa"), "is not \"ed25519\""),
            ("short signature", with("signature", "AAAA"), "signature"),
        ] {
            match signature_key_id(&bytes, NAME) {
                Err(SignatureError::Malformed {
                    manifest,
                    reason: got,
                    ..
                }) => {
                    assert_eq!(manifest, NAME, "{case}");
                    assert!(got.contains(reason), "{case}: {got}");
                }
                other => panic!("{case}: {other:?}"),
            }
        }
    }

    #[test]
    fn key_id_is_sha256_of_the_raw_public_key() {
        let key = PrivateKey::from_seed([2; 32]);
        let raw = key.signing.verifying_key().to_bytes();
        assert_eq!(key.key_id(), &hex::encode(Sha256::digest(raw))[..16]);
    }

    #[test]
    fn no_trusted_keys_checks_nothing() {
        assert_eq!(
            TrustedKeys::none().verify_manifest(MANIFEST, None, NAME),
            Ok(None)
        );
        assert_eq!(
            TrustedKeys::none().verify_manifest(MANIFEST, Some(b"junk"), NAME),
            Ok(None)
        );
    }

    #[test]
    fn every_single_changed_byte_of_the_manifest_is_refused() {
        let key = PrivateKey::from_seed([3; 32]);
        let sig = key.sign_manifest(MANIFEST);
        let trust = trusted(&[&key]);
        for i in 0..MANIFEST.len() {
            let mut changed = MANIFEST.to_vec();
            changed[i] ^= 0x01;
            let err = trust.verify_manifest(&changed, Some(&sig), NAME).unwrap_err();
            assert_eq!(
                err,
                SignatureError::BadSignature {
                    manifest: NAME.into(),
                    key_id: key.key_id().into()
                },
                "byte {i}"
            );
            let message = err.to_string();
            assert!(
                message.contains(key.key_id()) && message.contains(NAME),
                "{message}"
            );
        }
    }

    #[test]
    fn a_changed_signature_byte_is_refused() {
        let key = PrivateKey::from_seed([4; 32]);
        let file: SignatureFile = serde_json::from_slice(&key.sign_manifest(MANIFEST)).unwrap();
        let mut raw = BASE64.decode(&file.signature).unwrap();
        raw[10] ^= 0x80;
        let forged = serde_json::to_vec(&SignatureFile {
            signature: BASE64.encode(raw),
            ..file
        })
        .unwrap();
        let err = trusted(&[&key])
            .verify_manifest(MANIFEST, Some(&forged), NAME)
            .unwrap_err();
        assert!(matches!(err, SignatureError::BadSignature { .. }), "{err}");
    }

    #[test]
    fn an_untrusted_key_is_refused_naming_it() {
        let (signer, other) = (PrivateKey::from_seed([5; 32]), PrivateKey::from_seed([6; 32]));
        let sig = signer.sign_manifest(MANIFEST);
        let err = trusted(&[&other])
            .verify_manifest(MANIFEST, Some(&sig), NAME)
            .unwrap_err();
        assert_eq!(
            err,
            SignatureError::UntrustedKey {
                manifest: NAME.into(),
                key_id: signer.key_id().into()
            }
        );
        assert!(err.to_string().contains(signer.key_id()));
    }

    #[test]
    fn a_key_id_lying_about_its_signer_does_not_verify() {
        // Signed by an untrusted key but claiming a trusted key's id: the trusted key's check fails.
        let (trusted_key, attacker) = (PrivateKey::from_seed([7; 32]), PrivateKey::from_seed([8; 32]));
        let file: SignatureFile = serde_json::from_slice(&attacker.sign_manifest(MANIFEST)).unwrap();
        let claimed = serde_json::to_vec(&SignatureFile {
            key_id: trusted_key.key_id().into(),
            ..file
        })
        .unwrap();
        let err = trusted(&[&trusted_key])
            .verify_manifest(MANIFEST, Some(&claimed), NAME)
            .unwrap_err();
        assert!(matches!(err, SignatureError::BadSignature { .. }), "{err}");
    }

    #[test]
    fn a_missing_signature_is_refused_when_keys_are_configured() {
        let key = PrivateKey::from_seed([9; 32]);
        let err = trusted(&[&key])
            .verify_manifest(MANIFEST, None, NAME)
            .unwrap_err();
        assert_eq!(
            err,
            SignatureError::Missing {
                manifest: NAME.into()
            }
        );
        assert!(err.to_string().contains(NAME));
    }

    #[test]
    fn rotation_accepts_either_key_and_revocation_refuses_the_removed_one() {
        let (old, new) = (PrivateKey::from_seed([10; 32]), PrivateKey::from_seed([11; 32]));
        let both = trusted(&[&old, &new]);
        for key in [&old, &new] {
            let sig = key.sign_manifest(MANIFEST);
            assert_eq!(
                both.verify_manifest(MANIFEST, Some(&sig), NAME)
                    .unwrap()
                    .as_deref(),
                Some(key.key_id())
            );
        }
        let revoked = trusted(&[&new]);
        let err = revoked
            .verify_manifest(MANIFEST, Some(&old.sign_manifest(MANIFEST)), NAME)
            .unwrap_err();
        assert!(matches!(err, SignatureError::UntrustedKey { .. }), "{err}");
    }

    #[test]
    fn malformed_signatures_are_refused() {
        let key = PrivateKey::from_seed([12; 32]);
        let trust = trusted(&[&key]);
        let id = key.key_id();
        let cases: Vec<Vec<u8>> = vec![
            b"".to_vec(),
            b"not json".to_vec(),
            br#"{"algorithm":"ed25519","key_id":"x"}"#.to_vec(),
            format!(r#"{{"algorithm":"rsa","key_id":"{id}","signature":"AAAA"}}"#).into_bytes(),
            format!(r#"{{"algorithm":"ed25519","key_id":"{id}","signature":"!!!"}}"#).into_bytes(),
            format!(r#"{{"algorithm":"ed25519","key_id":"{id}","signature":"AAAA"}}"#).into_bytes(),
        ];
        for case in cases {
            let err = trust.verify_manifest(MANIFEST, Some(&case), NAME).unwrap_err();
            assert!(matches!(err, SignatureError::Malformed { .. }), "{err}");
            assert!(err.to_string().contains(NAME), "{err}");
        }
    }

    #[test]
    fn key_files_round_trip_and_check_their_ids() {
        let key = PrivateKey::from_seed([13; 32]);
        let back = PrivateKey::from_json(&key.to_json(), "k.key").unwrap();
        assert_eq!(back.key_id(), key.key_id());
        assert_eq!(back.signing.to_bytes(), key.signing.to_bytes());
        let public = PublicKey::from_json(&key.public_key().to_json(), "k.pub").unwrap();
        assert_eq!(public, key.public_key());
        assert!(!format!("{key:?}").contains(&BASE64.encode(key.signing.to_bytes())));

        let mut wrong_id: serde_json::Value = serde_json::from_slice(&key.public_key().to_json()).unwrap();
        wrong_id["key_id"] = "0000000000000000".into();
        let err = PublicKey::from_json(&serde_json::to_vec(&wrong_id).unwrap(), "k.pub").unwrap_err();
        assert!(
            err.to_string().contains("k.pub") && err.to_string().contains("does not match"),
            "{err}"
        );

        let mut wrong_kind: serde_json::Value = serde_json::from_slice(&key.to_json()).unwrap();
        wrong_kind["kind"] = PUBLIC_KEY_KIND.into();
        let err = PrivateKey::from_json(&serde_json::to_vec(&wrong_kind).unwrap(), "k.key").unwrap_err();
        assert!(err.to_string().contains("kind"), "{err}");
    }

    #[test]
    fn trust_lists_parse_in_both_forms_and_refuse_bad_entries() {
        let (a, b) = (PrivateKey::from_seed([14; 32]), PrivateKey::from_seed([15; 32]));
        let entry =
            |k: &PrivateKey| serde_json::from_slice::<serde_json::Value>(&k.public_key().to_json()).unwrap();
        let object = serde_json::json!({"keys": [entry(&a), entry(&b)]}).to_string();
        let list = serde_json::json!([entry(&a), entry(&b)]).to_string();
        for text in [object, list] {
            let keys = TrustedKeys::from_json(text.as_bytes(), "trust.json").unwrap();
            assert_eq!(keys.key_ids(), vec![a.key_id(), b.key_id()]);
        }
        let twice = serde_json::json!({"keys": [entry(&a), entry(&a)]}).to_string();
        let err = TrustedKeys::from_json(twice.as_bytes(), "trust.json").unwrap_err();
        assert!(err.to_string().contains("listed twice"), "{err}");
        for bad in [
            r#"{"keys":[{"key_id":"ab"}]}"#,
            r#"{"keys":"x"}"#,
            "nope",
            r#"[{"key_id":"ab","public_key":"AAAA"}]"#,
        ] {
            let err = TrustedKeys::from_json(bad.as_bytes(), "trust.json").unwrap_err();
            assert!(err.to_string().starts_with("trust.json: "), "{err}");
        }
        assert!(TrustedKeys::from_json(br#"{"keys":[]}"#, "t").unwrap().is_empty());
    }
}
