//! Bundles on disk: loading a directory and writing one atomically.

use std::fs;
use std::io::Write;
use std::path::{Path, PathBuf};

use akidb_core::signing::TrustedKeys;
use akidb_core::{Bundle, Manifest, MANIFEST_FILE};
use anyhow::{bail, Context, Result};

/// Reads and verifies the bundle in `dir` (no signature check).
pub fn load(dir: &Path) -> Result<Bundle> {
    load_with(dir, &TrustedKeys::none()).map(|(bundle, _)| bundle)
}

/// Reads and verifies the bundle in `dir`; with `trusted` keys, its `manifest.json.sig` must verify over
/// the very manifest bytes the bundle is then built from. Returns the signing key's id (`None`: no keys).
pub fn load_with(dir: &Path, trusted: &TrustedKeys) -> Result<(Bundle, Option<String>)> {
    let manifest_path = dir.join(MANIFEST_FILE);
    let manifest = fs::read(&manifest_path).with_context(|| {
        format!(
            "cannot read {}: is {} a bundle directory?",
            manifest_path.display(),
            dir.display()
        )
    })?;
    let key_id = crate::signing::verify_in_dir(dir, &manifest, trusted)?;
    let bundle = Bundle::from_files(&manifest, |path| fs::read(dir.join(path)).ok())
        .with_context(|| format!("bundle {} failed verification", dir.display()))?;
    Ok((bundle, key_id))
}

/// What [`write`] did.
#[derive(Debug, PartialEq, Eq)]
pub enum Written {
    /// A new bundle directory was created.
    Created,
    /// An identical bundle was already there; nothing was touched.
    Unchanged,
}

/// Writes `bundle` to `out` atomically: into a temporary sibling directory, synced, then renamed.
///
/// A crash leaves either no `out` or a complete one. An existing `out` holding the same manifest is
/// left as it is; one holding a different bundle is refused, never overwritten.
pub fn write(bundle: &Bundle, out: &Path) -> Result<Written> {
    let manifest = bundle.manifest().to_json();
    if out.exists() {
        let existing = fs::read(out.join(MANIFEST_FILE))
            .ok()
            .and_then(|m| Manifest::from_json(&m).ok());
        if existing.as_ref() == Some(bundle.manifest()) {
            load(out).with_context(|| {
                format!(
                    "{} has this bundle's manifest but its files do not verify; remove it and rebuild",
                    out.display()
                )
            })?;
            return Ok(Written::Unchanged);
        }
        bail!(
            "{} already exists and holds a different bundle; choose another --out or remove it first",
            out.display()
        );
    }
    let parent = out
        .parent()
        .filter(|p| !p.as_os_str().is_empty())
        .unwrap_or(Path::new("."));
    fs::create_dir_all(parent).with_context(|| format!("cannot create {}", parent.display()))?;
    let tmp = temp_sibling(out);
    let result = (|| -> Result<()> {
        fs::create_dir(&tmp).with_context(|| format!("cannot create {}", tmp.display()))?;
        for (name, bytes) in bundle.files() {
            write_synced(&tmp.join(name), bytes)?;
        }
        write_synced(&tmp.join(MANIFEST_FILE), &manifest)?;
        fs::rename(&tmp, out)
            .with_context(|| format!("cannot move {} to {}", tmp.display(), out.display()))?;
        sync_dir(parent);
        Ok(())
    })();
    if result.is_err() {
        let _ = fs::remove_dir_all(&tmp);
    }
    result.map(|()| Written::Created)
}

fn temp_sibling(out: &Path) -> PathBuf {
    let name = out
        .file_name()
        .map(|n| n.to_string_lossy().into_owned())
        .unwrap_or_else(|| "bundle".into());
    out.with_file_name(format!(".{name}.tmp-{}", std::process::id()))
}

fn write_synced(path: &Path, bytes: &[u8]) -> Result<()> {
    let mut f = fs::File::create(path).with_context(|| format!("cannot create {}", path.display()))?;
    f.write_all(bytes)
        .and_then(|()| f.sync_all())
        .with_context(|| format!("cannot write {}", path.display()))
}

/// Makes a rename durable; best effort, as not every filesystem supports syncing a directory.
fn sync_dir(dir: &Path) {
    if let Ok(d) = fs::File::open(dir) {
        let _ = d.sync_all();
    }
}
