//! A verified bundle in memory: the manifest and the bytes of the files it lists, each checked by size
//! and sha256 before anything reads them.

use crate::error::{Error, Result};
use crate::manifest::{sha256_hex, FileRole, Manifest};

/// A bundle file's bytes with the sha256 its caller computed of them, for [`Bundle::from_hashed_files`].
#[derive(Clone, Debug)]
pub struct HashedFile {
    /// The file's bytes.
    pub bytes: Vec<u8>,
    /// Hex sha256 of `bytes`, as computed by the caller.
    pub sha256: String,
}

/// A verified bundle held in memory: the manifest and the bytes of its model and tokenizer.
#[derive(Clone)]
pub struct Bundle {
    manifest: Manifest,
    model: Vec<u8>,
    tokenizer: Vec<u8>,
}

impl std::fmt::Debug for Bundle {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Bundle")
            .field("manifest", &self.manifest)
            .finish_non_exhaustive()
    }
}

impl Bundle {
    /// Wraps bytes that `manifest` describes, without checking them: for [`Bundle::create`], which
    /// wrote the manifest from these very bytes.
    pub(crate) fn from_verified_parts(manifest: Manifest, model: Vec<u8>, tokenizer: Vec<u8>) -> Bundle {
        Bundle {
            manifest,
            model,
            tokenizer,
        }
    }

    /// Loads a bundle from its manifest and a reader of its files, verifying every file's size and sha256.
    ///
    /// `read_file` gets each path the manifest lists and returns its bytes, or `None` if it is absent.
    pub fn from_files(
        manifest_json: &[u8],
        mut read_file: impl FnMut(&str) -> Option<Vec<u8>>,
    ) -> Result<Bundle> {
        Self::from_hashed_files(manifest_json, |path| {
            read_file(path).map(|bytes| HashedFile {
                sha256: sha256_hex(&bytes),
                bytes,
            })
        })
    }

    /// Loads a bundle whose files the caller has already hashed: sizes are verified here and each given
    /// sha256 is compared with the manifest's, but the bytes are not hashed again.
    ///
    /// For callers with a faster hash than this crate's: in a browser, WebCrypto hashes the 23 MB int8
    /// model about three times as fast as sha2 compiled to wasm. The digests must be of the bytes given.
    ///
    /// ```no_run
    /// # fn read(p: &str) -> Vec<u8> { std::fs::read(format!("models/all-MiniLM-L6-v2/int8/{p}")).unwrap() }
    /// use akidb_core::{sha256_hex, Bundle, HashedFile};
    /// let bundle = Bundle::from_hashed_files(&read("manifest.json"), |path| {
    ///     let bytes = read(path);
    ///     Some(HashedFile { sha256: sha256_hex(&bytes), bytes })
    /// })?;
    /// assert!(bundle.model_bytes().len() > 0);
    /// # Ok::<(), akidb_core::Error>(())
    /// ```
    pub fn from_hashed_files(
        manifest_json: &[u8],
        mut read_file: impl FnMut(&str) -> Option<HashedFile>,
    ) -> Result<Bundle> {
        let manifest = Manifest::from_json(manifest_json)?;
        let mut load = |role| -> Result<Vec<u8>> {
            let entry = manifest.file(role);
            let HashedFile { bytes, sha256 } = read_file(&entry.path).ok_or_else(|| Error::MissingFile {
                path: entry.path.clone(),
            })?;
            manifest.verify_hashed_file(entry, &bytes, || sha256)?;
            Ok(bytes)
        };
        let model = load(FileRole::Model)?;
        let tokenizer = load(FileRole::Tokenizer)?;
        Ok(Bundle {
            manifest,
            model,
            tokenizer,
        })
    }

    /// The manifest.
    pub fn manifest(&self) -> &Manifest {
        &self.manifest
    }

    /// The ONNX model bytes.
    pub fn model_bytes(&self) -> &[u8] {
        &self.model
    }

    /// The `tokenizer.json` bytes.
    pub fn tokenizer_bytes(&self) -> &[u8] {
        &self.tokenizer
    }

    /// The files the manifest lists, with their bytes (the manifest itself is [`Manifest::to_json`]).
    pub fn files(&self) -> Vec<(String, &[u8])> {
        vec![
            (self.manifest.file(FileRole::Model).path.clone(), &self.model[..]),
            (
                self.manifest.file(FileRole::Tokenizer).path.clone(),
                &self.tokenizer[..],
            ),
        ]
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::manifest::tests::manifest;

    #[test]
    fn a_bundle_with_a_missing_file_names_it() {
        let json = serde_json::to_vec(&manifest()).unwrap();
        let err = Bundle::from_files(&json, |p| (p == "model.onnx").then(|| b"abc".to_vec())).unwrap_err();
        assert!(
            matches!(err, Error::MissingFile { ref path } if path == "tokenizer.json"),
            "{err}"
        );
    }

    #[test]
    fn caller_digests_are_compared_not_trusted() {
        let json = serde_json::to_vec(&manifest()).unwrap();
        let content = |p: &str| {
            if p == "model.onnx" {
                b"abc".to_vec()
            } else {
                b"{}".to_vec()
            }
        };
        let honest = |p: &str| {
            let bytes = content(p);
            Some(HashedFile {
                sha256: sha256_hex(&bytes).to_uppercase(),
                bytes,
            })
        };
        let bundle = Bundle::from_hashed_files(&json, honest);
        assert!(bundle.is_ok(), "{:?}", bundle.err());
        // A digest of other bytes (a corrupt cache entry the caller hashed) is a mismatch naming the file.
        let err = Bundle::from_hashed_files(&json, |p| {
            let mut file = honest(p)?;
            if p == "model.onnx" {
                file.sha256 = sha256_hex(b"abd");
            }
            Some(file)
        })
        .unwrap_err();
        assert!(
            matches!(err, Error::HashMismatch { ref path, .. } if path == "model.onnx"),
            "{err}"
        );
        // The size is checked whatever the digest says.
        let err = Bundle::from_hashed_files(&json, |p| {
            let mut file = honest(p)?;
            file.bytes.push(0);
            Some(file)
        })
        .unwrap_err();
        assert!(matches!(err, Error::SizeMismatch { .. }), "{err}");
    }
}
