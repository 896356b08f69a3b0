//! Content-addressed blob storage behind the [`BlobStore`] trait, and its local-directory backend.
//!
//! A blob is named only by the lower-case hex sha256 of its bytes ([`BlobHash`]); nothing else from a
//! request ever reaches a file-system path, so no name can escape the store.

use std::fmt;
use std::fs::{self, File};
use std::io::{self, Read, Write};
use std::path::{Path, PathBuf};

use bytes::Bytes;
use sha2::{Digest, Sha256};

/// A validated blob name: exactly 64 lower-case hex digits (a sha256).
#[derive(Clone, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct BlobHash(String);

impl BlobHash {
    /// Accepts exactly 64 characters from `0-9a-f`; anything else (upper case, `..`, `/`, NUL, ...) is `None`.
    pub fn parse(s: &str) -> Option<BlobHash> {
        (s.len() == 64
            && s.bytes()
                .all(|b| b.is_ascii_digit() || (b'a'..=b'f').contains(&b)))
        .then(|| BlobHash(s.to_owned()))
    }

    /// The hash of `bytes`.
    pub fn of(bytes: &[u8]) -> BlobHash {
        BlobHash(hex::encode(Sha256::digest(bytes)))
    }

    /// The hex digits.
    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl fmt::Display for BlobHash {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

/// Why a blob could not be stored. Nothing is stored when `put` fails.
#[derive(Debug, thiserror::Error)]
pub enum PutError {
    /// The bytes did not hash to the name they were stored under.
    #[error("content hashes to {actual}, not {expected}")]
    HashMismatch {
        /// The name the blob was offered under.
        expected: BlobHash,
        /// What the bytes hash to.
        actual: String,
    },
    /// More than the allowed number of bytes arrived.
    #[error("blob is larger than the limit of {limit} bytes")]
    TooLarge {
        /// The limit, in bytes.
        limit: u64,
    },
    /// Reading the source or writing the store failed.
    #[error("i/o error: {0}")]
    Io(#[from] io::Error),
}

/// Where blobs live. Implementations must make `put` all-or-nothing and durable before it returns, and
/// must never return bytes that do not hash to the requested name.
///
/// The local backend is [`LocalBlobStore`]; an S3 backend (regional tier) implements the same trait.
pub trait BlobStore: Send + Sync + 'static {
    /// The whole blob, or `None` when absent. The local backend maps the file (no copy).
    fn get(&self, hash: &BlobHash) -> io::Result<Option<Bytes>>;
    /// The blob's size, or `None` when absent.
    fn size(&self, hash: &BlobHash) -> io::Result<Option<u64>>;
    /// Streams `src` into the store under `hash`, verifying the hash and reading at most `limit` bytes.
    /// Returns the size. A blob already present is left as it is (the source is still read and checked).
    fn put(&self, hash: &BlobHash, src: &mut dyn Read, limit: u64) -> Result<u64, PutError>;
    /// Whether the store can be read and written (for `/readyz`).
    fn check(&self) -> io::Result<()>;
}

/// Blobs as files on a local directory:
///
/// ```text
/// ROOT/sha256/ab/abcdef...   one file per blob, named by its full hash, fanned out by the first two digits
/// ROOT/tmp/                  uploads in progress; emptied at start-up
/// ```
///
/// A write goes to a temporary file in `ROOT/tmp`, is hashed as it streams, fsynced, renamed into place,
/// and the directory is fsynced: a crash leaves either nothing or the complete blob under its name.
#[derive(Debug)]
pub struct LocalBlobStore {
    root: PathBuf,
}

/// A test hook: when the environment variable `MODEL_SERVER_TEST_PAUSE` equals `point`, print
/// `paused at POINT` to stderr and sleep for an hour, so a test can SIGKILL the process at a known place.
/// Points: `mid-blob` (a temporary blob file half written) and `after-blobs` (all blobs of a publish
/// durable, the registry not yet written).
pub fn test_pause(point: &str) {
    if std::env::var("MODEL_SERVER_TEST_PAUSE").is_ok_and(|v| v == point) {
        eprintln!("paused at {point}");
        std::thread::sleep(std::time::Duration::from_secs(3600));
    }
}

impl LocalBlobStore {
    /// Opens (creating if needed) a store at `root` and removes leftover temporary files.
    pub fn open(root: impl Into<PathBuf>) -> io::Result<LocalBlobStore> {
        let root = root.into();
        fs::create_dir_all(root.join("sha256"))?;
        let tmp = root.join("tmp");
        fs::create_dir_all(&tmp)?;
        for entry in fs::read_dir(&tmp)? {
            let _ = fs::remove_file(entry?.path());
        }
        Ok(LocalBlobStore { root })
    }

    /// The file a blob lives in. Only a validated [`BlobHash`] can name one.
    pub fn path_of(&self, hash: &BlobHash) -> PathBuf {
        self.root.join("sha256").join(&hash.0[..2]).join(&hash.0)
    }

    /// The store's root directory.
    pub fn root(&self) -> &Path {
        &self.root
    }

    fn temp_file(&self) -> io::Result<(PathBuf, File)> {
        use std::sync::atomic::{AtomicU64, Ordering};
        static NEXT: AtomicU64 = AtomicU64::new(0);
        loop {
            let n = NEXT.fetch_add(1, Ordering::Relaxed);
            let path = self
                .root
                .join("tmp")
                .join(format!("{}-{n}.part", std::process::id()));
            match File::options().write(true).create_new(true).open(&path) {
                Ok(f) => return Ok((path, f)),
                Err(e) if e.kind() == io::ErrorKind::AlreadyExists => continue,
                Err(e) => return Err(e),
            }
        }
    }
}

fn sync_dir(dir: &Path) -> io::Result<()> {
    File::open(dir)?.sync_all()
}

impl BlobStore for LocalBlobStore {
    fn get(&self, hash: &BlobHash) -> io::Result<Option<Bytes>> {
        let file = match File::open(self.path_of(hash)) {
            Ok(f) => f,
            Err(e) if e.kind() == io::ErrorKind::NotFound => return Ok(None),
            Err(e) => return Err(e),
        };
        if file.metadata()?.len() == 0 {
            return Ok(Some(Bytes::new()));
        }
        // SAFETY: blob files are written once through a rename and never modified or truncated afterwards.
        let map = unsafe { memmap2::Mmap::map(&file)? };
        Ok(Some(Bytes::from_owner(map)))
    }

    fn size(&self, hash: &BlobHash) -> io::Result<Option<u64>> {
        match fs::metadata(self.path_of(hash)) {
            Ok(m) => Ok(Some(m.len())),
            Err(e) if e.kind() == io::ErrorKind::NotFound => Ok(None),
            Err(e) => Err(e),
        }
    }

    fn put(&self, hash: &BlobHash, src: &mut dyn Read, limit: u64) -> Result<u64, PutError> {
        let (tmp_path, mut file) = self.temp_file()?;
        let result = (|| {
            let mut hasher = Sha256::new();
            let mut buf = vec![0u8; 256 * 1024];
            let mut total = 0u64;
            let mut paused = false;
            loop {
                let n = match src.read(&mut buf) {
                    Ok(0) => break,
                    Ok(n) => n,
                    Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
                    Err(e) => return Err(PutError::Io(e)),
                };
                total += n as u64;
                if total > limit {
                    return Err(PutError::TooLarge { limit });
                }
                hasher.update(&buf[..n]);
                file.write_all(&buf[..n])?;
                if !paused && total > 0 {
                    paused = true;
                    file.flush()?;
                    test_pause("mid-blob");
                }
            }
            let actual = hex::encode(hasher.finalize());
            if actual != hash.0 {
                return Err(PutError::HashMismatch {
                    expected: hash.clone(),
                    actual,
                });
            }
            file.sync_all()?;
            let dest = self.path_of(hash);
            let dir = dest.parent().expect("blob paths have a parent");
            fs::create_dir_all(dir)?;
            fs::rename(&tmp_path, &dest)?;
            sync_dir(dir)?;
            Ok(total)
        })();
        if result.is_err() {
            let _ = fs::remove_file(&tmp_path);
        }
        result
    }

    fn check(&self) -> io::Result<()> {
        let (path, _file) = self.temp_file()?;
        fs::remove_file(path)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parse_accepts_only_lower_hex_of_length_64() {
        let h = "a".repeat(64);
        assert!(BlobHash::parse(&h).is_some());
        assert!(BlobHash::parse(&"A".repeat(64)).is_none());
        assert!(BlobHash::parse(&"a".repeat(63)).is_none());
        assert!(BlobHash::parse(&format!("../{}", "a".repeat(61))).is_none());
    }

    #[test]
    fn put_verifies_and_get_returns_the_bytes() {
        let dir = tempfile::tempdir().unwrap();
        let store = LocalBlobStore::open(dir.path()).unwrap();
        let data = b"hello blob".to_vec();
        let h = BlobHash::of(&data);
        assert_eq!(store.put(&h, &mut &data[..], 100).unwrap(), data.len() as u64);
        assert_eq!(store.get(&h).unwrap().unwrap(), Bytes::from(data.clone()));
        assert_eq!(store.size(&h).unwrap(), Some(data.len() as u64));

        let wrong = BlobHash::of(b"other");
        assert!(matches!(
            store.put(&wrong, &mut &data[..], 100),
            Err(PutError::HashMismatch { .. })
        ));
        assert!(store.get(&wrong).unwrap().is_none());
        let big = vec![7u8; 1000];
        assert!(matches!(
            store.put(&BlobHash::of(&big), &mut &big[..], 999),
            Err(PutError::TooLarge { .. })
        ));
        assert!(store.get(&BlobHash::of(&big)).unwrap().is_none());
        assert_eq!(
            fs::read_dir(dir.path().join("tmp")).unwrap().count(),
            0,
            "no temp file left"
        );
    }
}
