//! Publishing: verify a bundle, make its blobs durable, then record the version in one transaction.

use std::path::{Path, PathBuf};

use akidb_core::signing::{SignatureError, TrustedKeys, SIGNATURE_FILE};
use akidb_core::{Bundle, Embedder, Manifest, MANIFEST_FILE};
use anyhow::Context;

use crate::registry::{check_version_names, Recorded, Registry, RegistryError};
use crate::store::{test_pause, BlobHash, BlobStore, LocalBlobStore, PutError};

/// Why a publish failed. When it fails, the registry is unchanged (blobs already stored stay, unreferenced;
/// they are content-addressed, so a rerun reuses them).
#[derive(Debug, thiserror::Error)]
pub enum PublishError {
    /// The manifest does not parse or validate, or a file does not match it (the error names the file).
    #[error("{0}")]
    Bundle(#[from] akidb_core::Error),
    /// The manifest's name or version differs from the URL it was published to.
    #[error("{0}")]
    Mismatch(String),
    /// The files match the manifest but do not load as a model and tokenizer (garbage, empty or truncated
    /// files whose hashes were rewritten to match).
    #[error("the bundle does not load: {0}")]
    Unloadable(akidb_core::Error),
    /// Files the manifest lists are not in the blob store (HTTP publish: upload them first).
    #[error("blobs missing from the store (upload them first): {}", .0.join(", "))]
    MissingBlobs(Vec<String>),
    /// Trusted keys are configured and the manifest's signature is missing, malformed, by an unknown or
    /// revoked key, or does not verify (the error names the key id and the manifest).
    #[error("{0}")]
    Signature(#[from] SignatureError),
    /// Storing a blob failed.
    #[error("storing a blob: {0}")]
    Put(#[from] PutError),
    /// The registry refused or failed.
    #[error(transparent)]
    Registry(#[from] RegistryError),
    /// Reading the bundle directory failed.
    #[error("reading {path}: {source}")]
    Read {
        /// The file.
        path: PathBuf,
        /// The error.
        source: std::io::Error,
    },
}

/// The on-disk layout of a data directory: `DIR/registry.sqlite` (+ WAL files) and `DIR/blobs/`.
pub fn open_data_dir(dir: &Path) -> anyhow::Result<(Registry, LocalBlobStore)> {
    let open = || -> anyhow::Result<(Registry, LocalBlobStore)> {
        std::fs::create_dir_all(dir)?;
        let registry = Registry::open(&dir.join("registry.sqlite"))?;
        let store = LocalBlobStore::open(dir.join("blobs"))?;
        Ok((registry, store))
    };
    open().with_context(|| format!("opening the data directory {}", dir.display()))
}

/// The keys of a `--trusted-keys` file (akidb-core's trust list format). An empty list is refused: it
/// would silently turn checking off, which is what leaving the flag out is for.
pub fn read_trusted_keys(path: &Path) -> anyhow::Result<TrustedKeys> {
    let bytes = std::fs::read(path).with_context(|| format!("reading trusted keys {}", path.display()))?;
    let keys = TrustedKeys::from_json(&bytes, &path.display().to_string())?;
    if keys.is_empty() {
        anyhow::bail!(
            "{} lists no keys; give at least one, or leave out --trusted-keys",
            path.display()
        );
    }
    Ok(keys)
}

/// Loads the bundle the way every client will (akidb-core's tokenizer and model loader), so a bundle that
/// cannot be served to anyone is refused before it is published.
fn check_loads(
    manifest_bytes: &[u8],
    mut file: impl FnMut(&str) -> Option<Vec<u8>>,
) -> Result<(), PublishError> {
    let bundle = Bundle::from_files(manifest_bytes, &mut file)?;
    Embedder::new(&bundle).map_err(PublishError::Unloadable)?;
    Ok(())
}

fn refuse_conflict(
    registry: &Registry,
    manifest: &Manifest,
    manifest_bytes: &[u8],
) -> Result<(), PublishError> {
    if let Some((existing, false)) = registry.resolve(&manifest.name, &manifest.version)? {
        if existing.manifest_sha256 != akidb_core::sha256_hex(manifest_bytes) {
            return Err(RegistryError::Conflict {
                name: manifest.name.clone(),
                version: manifest.version.clone(),
            }
            .into());
        }
    }
    Ok(())
}

/// Publishes the bundle in directory `bundle`: checks every file against the manifest, stores the files and
/// the manifest as blobs (each durable before the next step), then records the version and `aliases`.
/// No signature check: see [`publish_dir_signed`].
pub fn publish_dir(
    registry: &Registry,
    store: &dyn BlobStore,
    bundle: &Path,
    aliases: &[String],
) -> Result<(Manifest, Recorded), PublishError> {
    publish_dir_signed(registry, store, bundle, aliases, &TrustedKeys::none()).map(|(m, r, _)| (m, r))
}

/// What the registry records with the version: `(key id, signature bytes)`, or `None` for an unsigned
/// publish. With `trusted` keys the signature must verify over the exact manifest bytes (a missing one is
/// refused); without keys a given signature is recorded as given once it has the signature file's shape
/// (so a server without keys still serves it to clients that check it themselves). Called before any blob
/// is stored, so a refused publish leaves the store unchanged.
fn check_signature(
    trusted: &TrustedKeys,
    manifest_bytes: &[u8],
    signature: Option<&[u8]>,
    manifest_name: &str,
) -> Result<Option<(String, Vec<u8>)>, PublishError> {
    if let Some(key_id) = trusted.verify_manifest(manifest_bytes, signature, manifest_name)? {
        let signature = signature.expect("a verified signature exists");
        return Ok(Some((key_id, signature.to_vec())));
    }
    let Some(signature) = signature else {
        return Ok(None);
    };
    let key_id = akidb_core::signing::signature_key_id(signature, manifest_name)?;
    Ok(Some((key_id, signature.to_vec())))
}

/// [`publish_dir`], and with `trusted` keys the bundle's `manifest.json.sig` must be a valid signature by
/// one of them over the exact manifest bytes: checked first, before any blob is stored. Returns the
/// signing key's id too (`None`: no keys configured).
pub fn publish_dir_signed(
    registry: &Registry,
    store: &dyn BlobStore,
    bundle: &Path,
    aliases: &[String],
    trusted: &TrustedKeys,
) -> Result<(Manifest, Recorded, Option<String>), PublishError> {
    let read = |path: PathBuf| std::fs::read(&path).map_err(|source| PublishError::Read { path, source });
    let manifest_path = bundle.join(MANIFEST_FILE);
    let manifest_bytes = read(manifest_path.clone())?;
    let signature = match std::fs::read(bundle.join(SIGNATURE_FILE)) {
        Ok(bytes) => Some(bytes),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => None,
        Err(source) => {
            return Err(PublishError::Read {
                path: bundle.join(SIGNATURE_FILE),
                source,
            })
        }
    };
    let signature = check_signature(
        trusted,
        &manifest_bytes,
        signature.as_deref(),
        &manifest_path.display().to_string(),
    )?;
    let manifest = Manifest::from_json(&manifest_bytes)?;
    check_version_names(&manifest.name, &manifest.version)?;
    refuse_conflict(registry, &manifest, &manifest_bytes)?;
    let mut files = Vec::with_capacity(manifest.files.len());
    for entry in &manifest.files {
        let bytes = read(bundle.join(&entry.path))?;
        manifest.verify_file(entry, &bytes)?;
        files.push(bytes);
    }
    check_loads(&manifest_bytes, |path| {
        let i = manifest.files.iter().position(|e| e.path == path)?;
        Some(files[i].clone())
    })?;
    for (entry, bytes) in manifest.files.iter().zip(&files) {
        let hash = BlobHash::parse(&entry.sha256).expect("validated manifests have well-formed hashes");
        store.put(&hash, &mut &bytes[..], entry.size)?;
    }
    store.put(
        &BlobHash::of(&manifest_bytes),
        &mut &manifest_bytes[..],
        manifest_bytes.len() as u64,
    )?;
    test_pause("after-blobs");
    let recorded =
        registry.record_version_signed(&manifest, &manifest_bytes, aliases, as_record(&signature))?;
    Ok((manifest, recorded, signature.map(|(key_id, _)| key_id)))
}

/// Publishes a manifest whose files were uploaded to the blob store already (the HTTP protocol): checks every
/// listed blob is present with the listed size, stores the manifest as a blob, and records the version.
/// No signature check: see [`publish_manifest_signed`].
pub fn publish_manifest(
    registry: &Registry,
    store: &dyn BlobStore,
    manifest_bytes: &[u8],
    aliases: &[String],
) -> Result<(Manifest, Recorded), PublishError> {
    publish_manifest_signed(
        registry,
        store,
        manifest_bytes,
        aliases,
        None,
        &TrustedKeys::none(),
        MANIFEST_FILE,
    )
    .map(|(m, r, _)| (m, r))
}

/// [`publish_manifest`] with the manifest's `signature` (the bytes of its `manifest.json.sig`, if any),
/// checked under `trusted` before anything is stored (see [`publish_dir_signed`]) and recorded with the
/// version. `manifest_name` names the manifest in errors. Returns the signature's key id too.
pub fn publish_manifest_signed(
    registry: &Registry,
    store: &dyn BlobStore,
    manifest_bytes: &[u8],
    aliases: &[String],
    signature: Option<&[u8]>,
    trusted: &TrustedKeys,
    manifest_name: &str,
) -> Result<(Manifest, Recorded, Option<String>), PublishError> {
    let signature = check_signature(trusted, manifest_bytes, signature, manifest_name)?;
    let manifest = Manifest::from_json(manifest_bytes)?;
    check_version_names(&manifest.name, &manifest.version)?;
    refuse_conflict(registry, &manifest, manifest_bytes)?;
    let mut missing = Vec::new();
    for entry in &manifest.files {
        let hash = BlobHash::parse(&entry.sha256).expect("validated manifests have well-formed hashes");
        let size = store.size(&hash).map_err(PutError::Io)?;
        if size != Some(entry.size) {
            missing.push(format!(
                "{} ({} bytes, sha256 {})",
                entry.path, entry.size, entry.sha256
            ));
        }
    }
    if !missing.is_empty() {
        return Err(PublishError::MissingBlobs(missing));
    }
    let mut read_error = None;
    check_loads(manifest_bytes, |path| {
        let entry = manifest.files.iter().find(|e| e.path == path)?;
        let hash = BlobHash::parse(&entry.sha256)?;
        match store.get(&hash) {
            Ok(bytes) => bytes.map(|b| b.to_vec()),
            Err(e) => {
                read_error = Some(e);
                None
            }
        }
    })
    .map_err(|e| match read_error.take() {
        Some(io) => PublishError::Put(PutError::Io(io)),
        None => e,
    })?;
    store.put(
        &BlobHash::of(manifest_bytes),
        &mut &manifest_bytes[..],
        manifest_bytes.len() as u64,
    )?;
    let recorded =
        registry.record_version_signed(&manifest, manifest_bytes, aliases, as_record(&signature))?;
    Ok((manifest, recorded, signature.map(|(key_id, _)| key_id)))
}

fn as_record(signature: &Option<(String, Vec<u8>)>) -> Option<(&str, &[u8])> {
    signature.as_ref().map(|(k, s)| (k.as_str(), s.as_slice()))
}
