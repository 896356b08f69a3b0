//! Signed bundles on disk: `akidb keygen`, `akidb bundle sign`, and reading `--trusted-keys`.
//!
//! The format and the verification rules are `akidb_core::signing`'s (one implementation for every
//! tier); this module adds the files: key pairs written with the private key created 0600 (never
//! widened afterwards, never printed), private keys that group or others can read refused, the
//! signature written atomically beside `manifest.json`.

use std::fs;
use std::io::{Read, Write};
use std::os::unix::fs::{MetadataExt, OpenOptionsExt};
use std::path::{Path, PathBuf};

use akidb_core::signing::{PrivateKey, SignatureError, TrustedKeys, SIGNATURE_FILE};
use akidb_core::{Bundle, MANIFEST_FILE};
use anyhow::{bail, Context, Result};

/// The two files `akidb keygen` wrote, and the key's id.
#[derive(Debug)]
pub struct KeyFiles {
    /// `DIR/NAME.key`, mode 0600.
    pub private_key: PathBuf,
    /// `DIR/NAME.pub`.
    pub public_key: PathBuf,
    /// The key id (first 16 hex characters of the sha256 of the public key).
    pub key_id: String,
}

/// A new key pair from the OS's randomness, written as `out/NAME.key` (created 0600, exclusively: an
/// existing file is never overwritten) and `out/NAME.pub`.
pub fn keygen(out: &Path, name: &str) -> Result<KeyFiles> {
    if name.is_empty() || name.contains(['/', '\\']) || name.starts_with('.') {
        bail!("key name {name:?} must be a plain file name (no slashes, not starting with a dot)");
    }
    fs::create_dir_all(out).with_context(|| format!("cannot create {}", out.display()))?;
    let mut seed = [0u8; 32];
    fs::File::open("/dev/urandom")
        .and_then(|mut f| f.read_exact(&mut seed))
        .context("cannot read /dev/urandom for the new key")?;
    let key = PrivateKey::from_seed(seed);
    seed.fill(0);
    let files = KeyFiles {
        private_key: out.join(format!("{name}.key")),
        public_key: out.join(format!("{name}.pub")),
        key_id: key.key_id().to_string(),
    };
    for path in [&files.private_key, &files.public_key] {
        if path.exists() {
            bail!("{} already exists; choose another --name", path.display());
        }
    }
    // O_EXCL with the mode given at open: the secret is never in a file anyone else could read, not even
    // for a moment, and an existing key is never replaced.
    let mut private = fs::OpenOptions::new()
        .write(true)
        .create_new(true)
        .mode(0o600)
        .open(&files.private_key)
        .with_context(|| {
            format!(
                "cannot create {} (it must not exist yet; choose another --name)",
                files.private_key.display()
            )
        })?;
    private
        .write_all(&key.to_json())
        .and_then(|()| private.sync_all())
        .with_context(|| format!("cannot write {}", files.private_key.display()))?;
    write_atomically(&files.public_key, &key.public_key().to_json())?;
    Ok(files)
}

/// Reads a private key file, refusing one that group or others can read (mode & 0o077).
pub fn load_private_key(path: &Path) -> Result<PrivateKey> {
    let file = fs::File::open(path).with_context(|| format!("cannot open private key {}", path.display()))?;
    let mode = file
        .metadata()
        .with_context(|| format!("cannot stat {}", path.display()))?
        .mode()
        & 0o7777;
    if mode & 0o077 != 0 {
        bail!(
            "private key {} has mode {mode:04o}: readable or writable by group or others; refusing to use it \
             (chmod 600 {} if it has not leaked, else make a new key)",
            path.display(),
            path.display()
        );
    }
    let mut bytes = Vec::new();
    (&file)
        .read_to_end(&mut bytes)
        .with_context(|| format!("cannot read {}", path.display()))?;
    Ok(PrivateKey::from_json(&bytes, &path.display().to_string())?)
}

/// The keys of a `--trusted-keys` file; none (nothing checked) without one.
pub fn trusted_keys(path: Option<&Path>) -> Result<TrustedKeys> {
    let Some(path) = path else {
        return Ok(TrustedKeys::none());
    };
    let bytes = fs::read(path).with_context(|| format!("cannot read trusted keys {}", path.display()))?;
    let keys = TrustedKeys::from_json(&bytes, &path.display().to_string())?;
    if keys.is_empty() {
        // An empty list would silently turn checking off; that is what leaving the flag out is for.
        bail!(
            "{} lists no keys; give at least one, or leave out --trusted-keys",
            path.display()
        );
    }
    Ok(keys)
}

/// Signs the bundle in `dir` with the key at `key`: its files are verified first (a broken bundle is not
/// signed), then `dir/manifest.json.sig` is written atomically. Returns the key id.
pub fn sign_dir(key: &Path, dir: &Path) -> Result<String> {
    let key = load_private_key(key)?;
    let manifest = read_manifest(dir)?;
    Bundle::from_files(&manifest, |path| fs::read(dir.join(path)).ok())
        .with_context(|| format!("bundle {} failed verification; not signing it", dir.display()))?;
    write_atomically(&dir.join(SIGNATURE_FILE), &key.sign_manifest(&manifest))?;
    Ok(key.key_id().to_string())
}

fn read_manifest(dir: &Path) -> Result<Vec<u8>> {
    let path = dir.join(MANIFEST_FILE);
    fs::read(&path).with_context(|| {
        format!(
            "cannot read {}: is {} a bundle directory?",
            path.display(),
            dir.display()
        )
    })
}

/// Checks `manifest` (the bytes of `dir/manifest.json`) against `dir/manifest.json.sig` under
/// `trusted`: `Ok(None)` when no keys are configured, the signing key's id otherwise.
pub fn verify_in_dir(
    dir: &Path,
    manifest: &[u8],
    trusted: &TrustedKeys,
) -> Result<Option<String>, SignatureError> {
    if trusted.is_empty() {
        return Ok(None);
    }
    let signature = fs::read(dir.join(SIGNATURE_FILE)).ok();
    trusted.verify_manifest(
        manifest,
        signature.as_deref(),
        &dir.join(MANIFEST_FILE).display().to_string(),
    )
}

/// Checks the signature of the bundle in `dir` (before a load that reads the manifest again): see
/// [`verify_in_dir`].
pub fn verify_dir(dir: &Path, trusted: &TrustedKeys) -> Result<Option<String>> {
    if trusted.is_empty() {
        return Ok(None);
    }
    Ok(verify_in_dir(dir, &read_manifest(dir)?, trusted)?)
}

fn write_atomically(path: &Path, bytes: &[u8]) -> Result<()> {
    let name = path
        .file_name()
        .map(|n| n.to_string_lossy().into_owned())
        .unwrap_or_default();
    let tmp = path.with_file_name(format!(".{name}.tmp-{}", std::process::id()));
    let result = (|| -> Result<()> {
        let mut f = fs::File::create(&tmp).with_context(|| format!("cannot create {}", tmp.display()))?;
        f.write_all(bytes)
            .and_then(|()| f.sync_all())
            .with_context(|| format!("cannot write {}", tmp.display()))?;
        fs::rename(&tmp, path).with_context(|| format!("cannot move {} to {}", tmp.display(), path.display()))
    })();
    if result.is_err() {
        let _ = fs::remove_file(&tmp);
    }
    result
}
