//! Registry snapshots in S3: `snapshot push` (primary) and the pieces a replica pulls with.
//!
//! Layout under `s3://BUCKET/PREFIX/`:
//!
//! ```text
//! snapshots/SHA256.sqlite.gz   a registry database (VACUUM INTO, integrity-checked), gzip, named by the
//!                              sha256 of these compressed bytes; written once (create-if-absent)
//! latest.json                  the pointer: {snapshot, generation, created_at, size, db_size}; moved only
//!                              with a conditional write on the ETag read before (If-Match), or
//!                              If-None-Match: * for the first, so two writers never overwrite each other
//! ```

use std::io::{Read, Write};
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::{SystemTime, UNIX_EPOCH};

use bytes::Bytes;
use object_store::aws::AmazonS3Builder;
use object_store::path::Path as ObjectPath;
use object_store::{ObjectStore, ObjectStoreExt, PutMode, PutOptions, PutPayload, UpdateVersion};
use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};

use crate::registry::Registry;

/// Name of the pointer object under the prefix.
pub const POINTER: &str = "latest.json";

/// The pointer object `latest.json`: which snapshot is current.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Pointer {
    /// sha256 (hex) of the compressed snapshot object; its key is `snapshots/{snapshot}.sqlite.gz`.
    pub snapshot: String,
    /// The registry generation the snapshot holds.
    pub generation: i64,
    /// Unix seconds at which the snapshot was taken.
    pub created_at: i64,
    /// Size of the compressed object, in bytes.
    pub size: u64,
    /// Size of the database it decompresses to, in bytes.
    pub db_size: u64,
}

impl Pointer {
    /// The snapshot object's key, relative to the prefix.
    pub fn snapshot_key(&self) -> String {
        snapshot_key(&self.snapshot)
    }
}

fn snapshot_key(sha: &str) -> String {
    format!("snapshots/{sha}.sqlite.gz")
}

/// Snapshot errors. Each names the object (or file) it is about.
#[derive(Debug, thiserror::Error)]
pub enum SnapshotError {
    /// Another writer moved `latest.json` between our read and our write, or it names a snapshot this
    /// registry did not produce.
    #[error("conflict: {url} {reason}; nothing was overwritten")]
    Conflict {
        /// The pointer's URL.
        url: String,
        /// What happened.
        reason: String,
    },
    /// An object is missing.
    #[error("{0} not found")]
    Missing(String),
    /// An object's bytes are not what its name or the pointer says.
    #[error("{0}")]
    Corrupt(String),
    /// The object store failed.
    #[error("{url}: {source}")]
    Store {
        /// The object's URL.
        url: String,
        /// The error.
        source: object_store::Error,
    },
    /// A local file or the registry failed.
    #[error("{0}")]
    Local(String),
}

/// An `s3://bucket/prefix` location: the store (AWS settings from the usual `AWS_*` variables:
/// `AWS_ENDPOINT_URL`, `AWS_REGION`, `AWS_ACCESS_KEY_ID`, `AWS_SECRET_ACCESS_KEY`, `AWS_ALLOW_HTTP`) and
/// the prefix every key lives under.
#[derive(Clone, Debug)]
pub struct Location {
    store: Arc<dyn ObjectStore>,
    url: String,
    prefix: String,
}

impl Location {
    /// Parses `s3://bucket[/prefix]`.
    pub fn parse(url: &str) -> Result<Location, SnapshotError> {
        let rest = url
            .strip_prefix("s3://")
            .ok_or_else(|| SnapshotError::Local(format!("`{url}` is not an s3://bucket/prefix URL")))?;
        let (bucket, prefix) = rest.split_once('/').unwrap_or((rest, ""));
        if bucket.is_empty() {
            return Err(SnapshotError::Local(format!("`{url}` names no bucket")));
        }
        crate::tls::install_crypto_provider();
        let store = AmazonS3Builder::from_env()
            .with_bucket_name(bucket)
            .build()
            .map_err(|source| SnapshotError::Store {
                url: url.to_owned(),
                source,
            })?;
        let prefix = prefix.trim_matches('/').to_owned();
        Ok(Location {
            store: Arc::new(store),
            url: format!("s3://{bucket}/{prefix}").trim_end_matches('/').to_owned(),
            prefix,
        })
    }

    fn path(&self, key: &str) -> ObjectPath {
        if self.prefix.is_empty() {
            ObjectPath::from(key)
        } else {
            ObjectPath::from(format!("{}/{key}", self.prefix))
        }
    }

    /// The URL of `key` under this location (for messages).
    pub fn url_of(&self, key: &str) -> String {
        format!("{}/{key}", self.url)
    }

    fn store_error(&self, key: &str, source: object_store::Error) -> SnapshotError {
        match source {
            object_store::Error::NotFound { .. } => SnapshotError::Missing(self.url_of(key)),
            source => SnapshotError::Store {
                url: self.url_of(key),
                source,
            },
        }
    }

    /// Reads the pointer and its ETag; `None` when there is none yet.
    pub async fn read_pointer(&self) -> Result<Option<(Pointer, Option<String>)>, SnapshotError> {
        let got = match self.store.get(&self.path(POINTER)).await {
            Ok(g) => g,
            Err(object_store::Error::NotFound { .. }) => return Ok(None),
            Err(e) => return Err(self.store_error(POINTER, e)),
        };
        let etag = got.meta.e_tag.clone();
        let bytes = got.bytes().await.map_err(|e| self.store_error(POINTER, e))?;
        let pointer: Pointer = serde_json::from_slice(&bytes).map_err(|e| {
            SnapshotError::Corrupt(format!("{} is not a snapshot pointer: {e}", self.url_of(POINTER)))
        })?;
        if !is_sha256(&pointer.snapshot) {
            return Err(SnapshotError::Corrupt(format!(
                "{} names `{}`, not a sha256",
                self.url_of(POINTER),
                pointer.snapshot.escape_debug()
            )));
        }
        Ok(Some((pointer, etag)))
    }

    /// Downloads the snapshot `pointer` names and checks its bytes hash to its name: a missing, truncated
    /// or altered object is refused with an error naming it.
    pub async fn fetch_snapshot(&self, pointer: &Pointer) -> Result<Bytes, SnapshotError> {
        let key = pointer.snapshot_key();
        let got = self
            .store
            .get(&self.path(&key))
            .await
            .map_err(|e| match self.store_error(&key, e) {
                SnapshotError::Missing(url) => {
                    SnapshotError::Missing(format!("snapshot {url} (named by {})", self.url_of(POINTER)))
                }
                e => e,
            })?;
        let bytes = got.bytes().await.map_err(|e| self.store_error(&key, e))?;
        let actual = hex::encode(Sha256::digest(&bytes));
        if actual != pointer.snapshot {
            return Err(SnapshotError::Corrupt(format!(
                "snapshot {} is corrupt: its {} bytes hash to {actual}, not {} (pointer says {} bytes)",
                self.url_of(&key),
                bytes.len(),
                pointer.snapshot,
                pointer.size
            )));
        }
        Ok(bytes)
    }
}

fn is_sha256(s: &str) -> bool {
    s.len() == 64
        && s.bytes()
            .all(|b| b.is_ascii_digit() || (b'a'..=b'f').contains(&b))
}

fn now_secs() -> i64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_secs() as i64)
        .unwrap_or(0)
}

/// A test hook (with the `test-hooks` feature) like [`crate::store::test_pause`], but resumable: when
/// `MODEL_SERVER_TEST_PAUSE` equals `point`, print `paused at POINT` to stderr and wait until the file
/// named by `MODEL_SERVER_TEST_RESUME` exists (or an hour without it), so a test can run a rival in
/// between or SIGKILL the process there.
#[cfg(feature = "test-hooks")]
pub fn test_pause_resumable(point: &str) {
    if std::env::var("MODEL_SERVER_TEST_PAUSE").is_ok_and(|v| v == point) {
        eprintln!("paused at {point}");
        let resume = std::env::var_os("MODEL_SERVER_TEST_RESUME").map(PathBuf::from);
        let start = std::time::Instant::now();
        while start.elapsed() < std::time::Duration::from_secs(3600) {
            if resume.as_ref().is_some_and(|f| f.exists()) {
                return;
            }
            std::thread::sleep(std::time::Duration::from_millis(20));
        }
    }
}

/// Without the `test-hooks` feature the pause points compile to nothing.
#[cfg(not(feature = "test-hooks"))]
#[inline(always)]
pub fn test_pause_resumable(_point: &str) {}

/// A snapshot taken and compressed, ready to upload.
pub struct Prepared {
    /// The pointer that will name it.
    pub pointer: Pointer,
    /// The compressed bytes.
    pub bytes: Bytes,
}

/// Takes a consistent snapshot of `registry` (VACUUM INTO a temporary file in `tmp_dir`, so the primary
/// keeps serving and publishing), checks it with `PRAGMA integrity_check`, switches it out of WAL mode (a
/// replica opens it read-only as one file) and gzips it. Blocking.
pub fn prepare(registry: &Registry, tmp_dir: &Path) -> Result<Prepared, SnapshotError> {
    let local = |what: &str, e: &dyn std::fmt::Display| SnapshotError::Local(format!("{what}: {e}"));
    let tmp = tempfile_in(tmp_dir).map_err(|e| local("creating a temporary file", &e))?;
    let path = tmp.path().join("registry.sqlite");
    registry
        .vacuum_into(&path)
        .map_err(|e| local("snapshotting the registry (VACUUM INTO)", &e))?;
    let generation = {
        let conn = rusqlite::Connection::open(&path).map_err(|e| local("opening the snapshot", &e))?;
        let mode: String = conn
            .pragma_update_and_check(None, "journal_mode", "DELETE", |r| r.get(0))
            .map_err(|e| local("snapshot journal mode", &e))?;
        debug_assert_eq!(mode.to_ascii_lowercase(), "delete");
        let integrity: String = conn
            .query_row("PRAGMA integrity_check", [], |r| r.get(0))
            .map_err(|e| local("snapshot integrity check", &e))?;
        if integrity != "ok" {
            return Err(SnapshotError::Corrupt(format!(
                "the snapshot of the registry fails integrity_check: {integrity}"
            )));
        }
        conn.query_row("SELECT value FROM meta WHERE key = 'generation'", [], |r| {
            r.get(0)
        })
        .map_err(|e| local("reading the snapshot's generation", &e))?
    };
    let db = std::fs::read(&path).map_err(|e| local("reading the snapshot", &e))?;
    let mut gz = flate2::write::GzEncoder::new(Vec::with_capacity(db.len() / 3), flate2::Compression::new(6));
    gz.write_all(&db).map_err(|e| local("compressing", &e))?;
    let bytes = gz.finish().map_err(|e| local("compressing", &e))?;
    let pointer = Pointer {
        snapshot: hex::encode(Sha256::digest(&bytes)),
        generation,
        created_at: now_secs(),
        size: bytes.len() as u64,
        db_size: db.len() as u64,
    };
    Ok(Prepared {
        pointer,
        bytes: Bytes::from(bytes),
    })
}

/// A temporary directory under `dir` (removed on drop).
struct TempDir(PathBuf);

impl TempDir {
    fn path(&self) -> &Path {
        &self.0
    }
}

impl Drop for TempDir {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

fn tempfile_in(dir: &Path) -> std::io::Result<TempDir> {
    use std::sync::atomic::{AtomicU64, Ordering};
    static N: AtomicU64 = AtomicU64::new(0);
    std::fs::create_dir_all(dir)?;
    let p = dir.join(format!(
        ".snapshot-{}-{}.tmp",
        std::process::id(),
        N.fetch_add(1, Ordering::SeqCst)
    ));
    std::fs::create_dir(&p)?;
    Ok(TempDir(p))
}

/// What a push did.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Pushed {
    /// The pointer now names this new snapshot.
    Moved(Pointer),
    /// The pointer already named a snapshot of this generation with the same content; nothing written.
    Unchanged(Pointer),
}

/// Pushes a snapshot of `registry`: uploads it (create-if-absent: content-addressed, so an existing one
/// is the same bytes), then moves `latest.json` with a conditional write against the pointer read before
/// the snapshot was taken. A rival writer's move in between is a [`SnapshotError::Conflict`], never an
/// overwrite.
///
/// `take` makes the snapshot ([`prepare`]); it runs on the blocking pool.
pub async fn push(
    to: &Location,
    take: impl FnOnce() -> Result<Prepared, SnapshotError> + Send + 'static,
) -> Result<Pushed, SnapshotError> {
    let before = to.read_pointer().await?;
    let prepared = tokio::task::spawn_blocking(take)
        .await
        .map_err(|e| SnapshotError::Local(format!("snapshot task: {e}")))??;
    if let Some((old, _)) = &before {
        if old.snapshot == prepared.pointer.snapshot {
            return Ok(Pushed::Unchanged(old.clone()));
        }
        // Generations only grow on one primary: a pointer at or past ours with other content was moved
        // by another registry, and moving it back would roll every replica back.
        if old.generation >= prepared.pointer.generation {
            return Err(SnapshotError::Conflict {
                url: to.url_of(POINTER),
                reason: format!(
                    "names generation {} (snapshot {}), which this registry (generation {}) did not write",
                    old.generation, old.snapshot, prepared.pointer.generation
                ),
            });
        }
    }
    let key = prepared.pointer.snapshot_key();
    let create = PutOptions {
        mode: PutMode::Create,
        ..PutOptions::default()
    };
    match to
        .store
        .put_opts(&to.path(&key), PutPayload::from_bytes(prepared.bytes), create)
        .await
    {
        Ok(_) | Err(object_store::Error::AlreadyExists { .. }) => {}
        Err(e) => return Err(to.store_error(&key, e)),
    }
    test_pause_resumable("push-before-pointer");
    let (mode, expected) = match &before {
        None => (PutMode::Create, "none existed".to_owned()),
        Some((_, etag)) => (
            PutMode::Update(UpdateVersion {
                e_tag: etag.clone(),
                version: None,
            }),
            format!("it had ETag {}", etag.as_deref().unwrap_or("(none)")),
        ),
    };
    let conflict = || SnapshotError::Conflict {
        url: to.url_of(POINTER),
        reason: format!("was moved by another writer since this push read it ({expected})"),
    };
    let body = serde_json::to_vec_pretty(&prepared.pointer).expect("a pointer serialises");
    let opts = PutOptions {
        mode,
        ..PutOptions::default()
    };
    match to
        .store
        .put_opts(&to.path(POINTER), PutPayload::from(body), opts)
        .await
    {
        Ok(_) => Ok(Pushed::Moved(prepared.pointer)),
        Err(object_store::Error::AlreadyExists { .. } | object_store::Error::Precondition { .. }) => {
            Err(conflict())
        }
        // S3 answers If-Match on a deleted pointer with 404: someone else changed it too.
        Err(object_store::Error::NotFound { .. }) if before.is_some() => Err(conflict()),
        Err(e) => Err(to.store_error(POINTER, e)),
    }
}

/// Decompresses a snapshot (already hash-checked) into `dest`, fsynced. Blocking.
pub fn unpack(bytes: &[u8], dest: &Path, what: &str) -> Result<u64, SnapshotError> {
    let mut gz = flate2::read::GzDecoder::new(bytes);
    let mut file = std::fs::File::create(dest)
        .map_err(|e| SnapshotError::Local(format!("creating {}: {e}", dest.display())))?;
    let mut buf = vec![0u8; 1 << 16];
    let mut total = 0u64;
    loop {
        let n = gz
            .read(&mut buf)
            .map_err(|e| SnapshotError::Corrupt(format!("snapshot {what} does not decompress: {e}")))?;
        if n == 0 {
            break;
        }
        file.write_all(&buf[..n])
            .map_err(|e| SnapshotError::Local(format!("writing {}: {e}", dest.display())))?;
        total += n as u64;
    }
    file.sync_all()
        .map_err(|e| SnapshotError::Local(format!("fsync {}: {e}", dest.display())))?;
    Ok(total)
}

/// How often `serve --snapshot-to` looks at the registry generation for a publish or alias move (its own
/// or another process's, such as the `publish` CLI on the same data directory).
pub const CHANGE_POLL: std::time::Duration = std::time::Duration::from_millis(100);

/// After a failed push, how long `serve --snapshot-to` waits before the next try.
pub const PUSH_RETRY: std::time::Duration = std::time::Duration::from_secs(5);

/// `serve --snapshot-to`: pushes a snapshot at start and whenever the registry generation changes, and
/// announces each pushed snapshot to the `/v1/registry/events` listeners. Never returns.
pub async fn push_on_change(app: crate::server::AppState, to: Location, tmp_dir: PathBuf) {
    let mut pushed: Option<i64> = None;
    loop {
        let a = app.clone();
        let generation = tokio::task::spawn_blocking(move || a.registry().generation())
            .await
            .ok()
            .and_then(Result::ok);
        if generation.is_some() && generation != pushed {
            let (a, dir) = (app.clone(), tmp_dir.clone());
            match push(&to, move || prepare(a.registry(), &dir)).await {
                Ok(Pushed::Moved(p) | Pushed::Unchanged(p)) => {
                    tracing::info!(generation = p.generation, snapshot = %p.snapshot, "snapshot pushed");
                    pushed = Some(p.generation);
                    app.announce(crate::server::Announcement {
                        generation: p.generation,
                        snapshot: p.snapshot,
                    });
                }
                Err(e) => {
                    tracing::error!(error = %e, "snapshot push failed");
                    tokio::time::sleep(PUSH_RETRY).await;
                }
            }
        }
        tokio::time::sleep(CHANGE_POLL).await;
    }
}
