//! Where the workspace and its model bundles are.

use std::path::{Path, PathBuf};

/// The workspace root (this crate's parent directory), whichever crate's test asks.
pub fn workspace() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .parent()
        .expect("akidb-testkit sits in the workspace")
        .to_path_buf()
}

/// `models/all-MiniLM-L6-v2/<variant>` (`int8`, `int8-dynamic` or `fp32`), as `scripts/fetch-models.sh` builds it;
/// panics naming the script when it has not been run.
pub fn bundle(variant: &str) -> PathBuf {
    let dir = workspace().join("models/all-MiniLM-L6-v2").join(variant);
    assert!(
        dir.join("manifest.json").is_file(),
        "{}/manifest.json missing: run scripts/fetch-models.sh first",
        dir.display()
    );
    dir
}

/// The int8 bundle, the one every service test serves.
pub fn int8_bundle() -> PathBuf {
    bundle("int8")
}

/// The int8 model as an `int8-dynamic` bundle (integer weight products).
pub fn int8_dynamic_bundle() -> PathBuf {
    bundle("int8-dynamic")
}

/// The fp32 bundle.
pub fn fp32_bundle() -> PathBuf {
    bundle("fp32")
}

/// The bytes of `file` in `dir`, or a panic naming the path.
pub fn read(dir: &Path, file: &str) -> Vec<u8> {
    std::fs::read(dir.join(file)).unwrap_or_else(|e| panic!("{}/{file}: {e}", dir.display()))
}
