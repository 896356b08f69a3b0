//! Content-addressed blob storage behind the [`BlobStore`] trait, with two backends: a local directory
//! ([`LocalBlobStore`]) and an S3 bucket ([`S3BlobStore`]).
//!
//! A blob is named only by the lower-case hex sha256 of its bytes ([`BlobHash`]); nothing else from a
//! request ever reaches a file-system path or an object key, so no name can escape the store.

use std::fmt;
use std::io::{self, Read};
use std::ops::Range;

use bytes::Bytes;
use futures_util::future::BoxFuture;
use futures_util::stream::BoxStream;
use sha2::{Digest, Sha256};

mod local;
mod s3;

pub use local::LocalBlobStore;
pub use s3::{S3BlobStore, S3Options};

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
/// must never store bytes under a name they do not hash to.
///
/// `get`, `size`, `put` and `check` block (file-system calls, or a wait on S3): call them from the CLI or
/// on tokio's blocking pool, never on a runtime thread. `open` is the async path the download route uses.
pub trait BlobStore: Send + Sync + 'static {
    /// The whole blob, or `None` when absent. The local backend maps the file (no copy).
    fn get(&self, hash: &BlobHash) -> io::Result<Option<Bytes>>;
    /// The blob's size, or `None` when absent.
    fn size(&self, hash: &BlobHash) -> io::Result<Option<u64>>;
    /// Streams `src` into the store under `hash`, verifying the hash and reading at most `limit` bytes.
    /// Returns the size. A blob already present is left as it is (the source is still read and checked).
    fn put(&self, hash: &BlobHash, src: &mut dyn Read, limit: u64) -> Result<u64, PutError>;
    /// Whether the store answers (for `/readyz`): the local one is written to, the bucket is listed.
    fn check(&self) -> io::Result<()>;
    /// Opens a blob for serving (size known, bytes not read yet), or `None` when absent. Never blocks the
    /// runtime thread that polls it.
    fn open<'a>(&'a self, hash: &'a BlobHash) -> BoxFuture<'a, io::Result<Option<Blob>>>;
}

/// A blob's bytes as they are read: chunks, or an error that ends the stream.
pub type ByteStream = BoxStream<'static, io::Result<Bytes>>;

/// Reads a byte range of a remote blob (`None`: all of it); resolves once the store has answered.
type RangeReader = Box<dyn FnOnce(Option<Range<u64>>) -> BoxFuture<'static, io::Result<ByteStream>> + Send>;

/// An opened blob: its size, and the way to read it (mapped bytes, or ranged requests to S3).
pub struct Blob {
    len: u64,
    bytes: BlobBytes,
}

enum BlobBytes {
    Mapped(Bytes),
    Remote(RangeReader),
}

impl Blob {
    /// A blob whose bytes are in memory (or mapped).
    pub fn mapped(bytes: Bytes) -> Blob {
        Blob {
            len: bytes.len() as u64,
            bytes: BlobBytes::Mapped(bytes),
        }
    }

    /// A blob of `len` bytes that `read` fetches (a range at a time: a 206 never fetches the whole blob).
    fn remote(len: u64, read: RangeReader) -> Blob {
        Blob {
            len,
            bytes: BlobBytes::Remote(read),
        }
    }

    /// Its size in bytes.
    pub fn len(&self) -> u64 {
        self.len
    }

    /// Whether it has no bytes.
    pub fn is_empty(&self) -> bool {
        self.len == 0
    }

    /// The bytes of `range` (which must lie inside the blob), or all of them.
    pub async fn read(self, range: Option<Range<u64>>) -> io::Result<ByteStream> {
        match self.bytes {
            BlobBytes::Mapped(b) => {
                let part = match range {
                    Some(r) => b.slice(r.start as usize..r.end as usize),
                    None => b,
                };
                Ok(Box::pin(futures_util::stream::once(async move { Ok(part) })))
            }
            BlobBytes::Remote(read) => read(range).await,
        }
    }
}

/// Reads `src` to its end, at most `limit` bytes, handing each chunk to `sink` as it arrives, and checks
/// that the bytes hash to `expected`. Returns the size. The one read-limit-hash loop both backends'
/// `put` run: a backend only decides where the chunks go (a temporary file, S3 parts) and what to do when
/// this fails (nothing it wrote may become visible).
fn read_verified(
    src: &mut dyn Read,
    limit: u64,
    expected: &BlobHash,
    mut sink: impl FnMut(&[u8]) -> Result<(), PutError>,
) -> Result<u64, PutError> {
    let mut hasher = Sha256::new();
    let mut buf = vec![0u8; 256 * 1024];
    let mut total = 0u64;
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
        sink(&buf[..n])?;
    }
    let actual = hex::encode(hasher.finalize());
    if actual != expected.0 {
        return Err(PutError::HashMismatch {
            expected: expected.clone(),
            actual,
        });
    }
    Ok(total)
}

/// The error of a store that did not answer or refused (S3 unreachable, credentials refused, bucket
/// gone): the routes answer 503 with its message instead of a bare 500. Carried inside an `io::Error`.
#[derive(Debug, thiserror::Error)]
#[error("blob store unavailable: {0}")]
pub struct Unavailable(pub String);

impl Unavailable {
    /// Whether `e` is (or wraps) an [`Unavailable`].
    pub fn is(e: &io::Error) -> bool {
        e.get_ref().is_some_and(|inner| inner.is::<Unavailable>())
    }
}

/// A test hook (only with the `test-hooks` feature, which the process tests enable): when the environment
/// variable `MODEL_SERVER_TEST_PAUSE` equals `point`, print `paused at POINT` to stderr and sleep for an hour,
/// so a test can SIGKILL the process at a known place. Points: `mid-blob` (a temporary blob file half
/// written) and `after-blobs` (all blobs of a publish durable, the registry not yet written).
#[cfg(feature = "test-hooks")]
pub fn test_pause(point: &str) {
    if std::env::var("MODEL_SERVER_TEST_PAUSE").is_ok_and(|v| v == point) {
        eprintln!("paused at {point}");
        std::thread::sleep(std::time::Duration::from_secs(3600));
    }
}

/// Without the `test-hooks` feature the pause points compile to nothing.
#[cfg(not(feature = "test-hooks"))]
#[inline(always)]
pub fn test_pause(_point: &str) {}

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
}
