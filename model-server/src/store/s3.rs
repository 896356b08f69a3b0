//! The S3 backend: blobs as objects `PREFIX/sha256/ab/abcdef...` in one bucket (object_store's AWS client).
//!
//! Writes hash the bytes as they stream and only make an object visible once the hash matched: a blob that
//! fits in one part is sent with one conditional `PUT` (`If-None-Match: *`, create-if-absent: an existing
//! object is success, not an error); a larger one goes up as a multipart upload whose completion is the
//! only step that creates the object, and which is aborted when the hash does not match. S3 has no
//! create-if-absent for multipart completion in object_store, and none is needed: the key is the sha256 of
//! the verified bytes, so two writers racing to complete it write identical objects.
//!
//! Reads stream: `open` is a `HEAD` (the size), `read` one `GET` with the `Range` the client asked for.
//!
//! The store runs its S3 client on a runtime of its own. Its blocking calls (the CLI, the server's
//! blocking pool, tests on a runtime thread) wait on that runtime, never inside another one; its async
//! calls hand their work to it, so the HTTP client's connections always belong to the runtime that made
//! them, whichever runtime (or none) the caller has.

use std::future::Future;
use std::io::{self, Read};
use std::ops::Range;
use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use futures_util::future::BoxFuture;
use futures_util::StreamExt;
use object_store::aws::{AmazonS3, AmazonS3Builder, AmazonS3ConfigKey};
use object_store::path::Path;
use object_store::{
    BackoffConfig, ClientConfigKey, GetOptions, GetRange, ObjectStore, ObjectStoreExt, PutMode, PutOptions,
    PutPayload, RetryConfig, WriteMultipart,
};

use super::{read_verified, Blob, BlobHash, BlobStore, ByteStream, PutError, Unavailable};

/// A blob up to this size is sent in one `PUT`; a larger one in parts of this size (S3's minimum part
/// is 5 MiB).
const PART_BYTES: usize = 8 << 20;
/// Parts of one upload in flight at once (so at most this many parts are buffered).
const PARTS_IN_FLIGHT: usize = 4;
/// Chunks of a download buffered between S3 and the client.
const READ_AHEAD_CHUNKS: usize = 4;

/// Where the bucket is and how to reach it. Every field left `None` comes from the environment
/// (`AWS_ENDPOINT_URL`, `AWS_REGION`, `AWS_ACCESS_KEY_ID`, `AWS_SECRET_ACCESS_KEY`, `AWS_SESSION_TOKEN`,
/// `AWS_ALLOW_HTTP`, ...), as the AWS tools read it.
#[derive(Clone, Debug, Default)]
pub struct S3Options {
    /// An S3-compatible endpoint, e.g. `http://127.0.0.1:9000` (else AWS's own, by region).
    pub endpoint: Option<String>,
    /// The bucket's region.
    pub region: Option<String>,
    /// Access key id (tests; in production leave it to the environment or the instance role).
    pub access_key_id: Option<String>,
    /// Secret access key.
    pub secret_access_key: Option<String>,
    /// Allow plain `http://` endpoints (a loopback emulator).
    pub allow_http: Option<bool>,
}

/// Blobs in an S3 bucket under a key prefix. See the module documentation.
pub struct S3BlobStore {
    s3: Arc<AmazonS3>,
    bucket: String,
    /// Keys start with `PREFIX/sha256/`.
    root: Path,
    /// Runs the S3 client; `None` only while dropping.
    runtime: Option<tokio::runtime::Runtime>,
}

impl std::fmt::Debug for S3BlobStore {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "S3BlobStore(s3://{}/{})", self.bucket, self.root)
    }
}

impl Drop for S3BlobStore {
    fn drop(&mut self) {
        // Dropping a runtime blocks until its tasks end, which panics inside another runtime (a store
        // dropped by an async test or the server); the store's tasks are only S3 requests: let them go.
        if let Some(rt) = self.runtime.take() {
            rt.shutdown_background();
        }
    }
}

/// `s3://bucket/prefix` → (bucket, prefix).
fn parse_url(url: &str) -> io::Result<(String, String)> {
    let invalid =
        |why: &str| io::Error::new(io::ErrorKind::InvalidInput, format!("store URL `{url}`: {why}"));
    let rest = url
        .strip_prefix("s3://")
        .ok_or_else(|| invalid("expected s3://BUCKET/PREFIX"))?;
    let (bucket, prefix) = rest.split_once('/').unwrap_or((rest, ""));
    if bucket.is_empty() {
        return Err(invalid("no bucket name"));
    }
    Ok((bucket.to_owned(), prefix.trim_matches('/').to_owned()))
}

/// An S3 error as an `io::Error`: absent objects are handled before this; everything else means the
/// store did not serve the request.
fn unavailable(bucket: &str, e: object_store::Error) -> io::Error {
    io::Error::other(Unavailable(format!("S3 bucket `{bucket}`: {e}")))
}

impl S3BlobStore {
    /// Connects to `url` (`s3://BUCKET/PREFIX`) and checks that the bucket answers: a missing bucket,
    /// refused credentials or an unreachable endpoint fail here, naming the bucket.
    pub fn open(url: &str, options: &S3Options) -> io::Result<S3BlobStore> {
        let (bucket, prefix) = parse_url(url)?;
        let root = Path::parse(&prefix)
            .map_err(|e| io::Error::new(io::ErrorKind::InvalidInput, format!("store URL `{url}`: {e}")))?;
        crate::tls::install_crypto_provider();
        let mut builder = AmazonS3Builder::from_env().with_bucket_name(&bucket);
        if let Some(v) = &options.endpoint {
            builder = builder.with_endpoint(v);
        }
        if let Some(v) = &options.region {
            builder = builder.with_region(v);
        }
        if let Some(v) = &options.access_key_id {
            builder = builder.with_access_key_id(v);
        }
        if let Some(v) = &options.secret_access_key {
            builder = builder.with_secret_access_key(v);
        }
        if let Some(v) = options.allow_http {
            builder = builder.with_allow_http(v);
        }
        // Fail fast when S3 is gone (a few quick retries, then a 503), yet let a slow client take its time
        // over a 90 MB download (the timeout covers a whole request, body included). Set key by key:
        // `with_client_options` would replace the client options whole, dropping allow_http (from the
        // flag or AWS_ALLOW_HTTP) and every other AWS_* client setting read by `from_env`.
        let s3 = builder
            .with_config(
                AmazonS3ConfigKey::Client(ClientConfigKey::ConnectTimeout),
                "3 seconds",
            )
            .with_config(AmazonS3ConfigKey::Client(ClientConfigKey::Timeout), "600 seconds")
            .with_retry(RetryConfig {
                backoff: BackoffConfig {
                    init_backoff: Duration::from_millis(50),
                    max_backoff: Duration::from_secs(1),
                    base: 2.0,
                },
                max_retries: 3,
                retry_timeout: Duration::from_secs(15),
            })
            .build()
            .map_err(|e| io::Error::new(io::ErrorKind::InvalidInput, format!("S3 store `{url}`: {e}")))?;
        let runtime = tokio::runtime::Builder::new_multi_thread()
            .worker_threads(2)
            .thread_name("s3-store")
            .enable_all()
            .build()?;
        let store = S3BlobStore {
            s3: Arc::new(s3),
            bucket,
            root,
            runtime: Some(runtime),
        };
        store.check()?;
        Ok(store)
    }

    /// The bucket's name.
    pub fn bucket(&self) -> &str {
        &self.bucket
    }

    /// The object key of a blob. Only a validated [`BlobHash`] can name one.
    pub fn key_of(&self, hash: &BlobHash) -> Path {
        self.root
            .clone()
            .join("sha256")
            .join(&hash.0[..2])
            .join(hash.as_str())
    }

    fn runtime(&self) -> &tokio::runtime::Handle {
        self.runtime
            .as_ref()
            .expect("the runtime lives as long as the store")
            .handle()
    }

    /// Runs `fut` on the store's runtime and waits for it (a blocking call).
    fn wait<T: Send + 'static>(&self, fut: impl Future<Output = T> + Send + 'static) -> io::Result<T> {
        let (tx, rx) = std::sync::mpsc::sync_channel(1);
        self.runtime().spawn(async move {
            let _ = tx.send(fut.await);
        });
        rx.recv()
            .map_err(|_| io::Error::other("the S3 store's runtime stopped"))
    }

    /// The object's size, `None` when absent.
    async fn head(s3: Arc<AmazonS3>, bucket: String, key: Path) -> io::Result<Option<u64>> {
        match s3.head(&key).await {
            Ok(meta) => Ok(Some(meta.size)),
            Err(object_store::Error::NotFound { .. }) => Ok(None),
            Err(e) => Err(unavailable(&bucket, e)),
        }
    }
}

impl BlobStore for S3BlobStore {
    fn get(&self, hash: &BlobHash) -> io::Result<Option<Bytes>> {
        let (s3, bucket, key) = (self.s3.clone(), self.bucket.clone(), self.key_of(hash));
        self.wait(async move {
            match s3.get(&key).await {
                Ok(r) => r.bytes().await.map(Some).map_err(|e| unavailable(&bucket, e)),
                Err(object_store::Error::NotFound { .. }) => Ok(None),
                Err(e) => Err(unavailable(&bucket, e)),
            }
        })?
    }

    fn size(&self, hash: &BlobHash) -> io::Result<Option<u64>> {
        let fut = Self::head(self.s3.clone(), self.bucket.clone(), self.key_of(hash));
        self.wait(fut)?
    }

    fn put(&self, hash: &BlobHash, src: &mut dyn Read, limit: u64) -> Result<u64, PutError> {
        let key = self.key_of(hash);
        let exists = self.size(hash)?.is_some();
        let mut upload: Option<WriteMultipart> = None;
        // Bytes not yet handed to S3: less than a part, plus the chunk that crossed the line.
        let mut pending = Vec::with_capacity(PART_BYTES);
        let read = read_verified(src, limit, hash, |chunk| {
            if exists {
                return Ok(());
            }
            pending.extend_from_slice(chunk);
            // A part is only handed over once more bytes follow it, so a blob of exactly one part
            // still goes up in one conditional PUT.
            if pending.len() <= PART_BYTES {
                return Ok(());
            }
            let rest = pending.split_off(PART_BYTES);
            let part = Bytes::from(std::mem::replace(&mut pending, rest));
            let (s3, bucket, key) = (self.s3.clone(), self.bucket.clone(), key.clone());
            let started = upload.take();
            let next = self.wait(async move {
                let mut w = match started {
                    Some(w) => w,
                    None => WriteMultipart::new_with_chunk_size(
                        s3.put_multipart(&key)
                            .await
                            .map_err(|e| unavailable(&bucket, e))?,
                        PART_BYTES,
                    ),
                };
                if let Err(e) = w.wait_for_capacity(PARTS_IN_FLIGHT).await {
                    let _ = w.abort().await;
                    return Err(unavailable(&bucket, e));
                }
                w.put(part);
                Ok(w)
            })??;
            upload = Some(next);
            Ok(())
        });
        let total = match read {
            Ok(total) => total,
            Err(e) => {
                // Nothing was completed, so no object exists under the name; the parts are dropped.
                if let Some(w) = upload {
                    let _ = self.wait(w.abort());
                }
                return Err(e);
            }
        };
        if exists {
            return Ok(total);
        }
        let (s3, bucket) = (self.s3.clone(), self.bucket.clone());
        self.wait(async move {
            match upload {
                Some(mut w) => {
                    w.put(Bytes::from(pending));
                    w.finish().await.map(drop).map_err(|e| unavailable(&bucket, e))
                }
                None => {
                    let create = PutOptions::from(PutMode::Create);
                    match s3.put_opts(&key, PutPayload::from(pending), create).await {
                        Ok(_) | Err(object_store::Error::AlreadyExists { .. }) => Ok(()),
                        Err(e) => Err(unavailable(&bucket, e)),
                    }
                }
            }
        })??;
        Ok(total)
    }

    fn check(&self) -> io::Result<()> {
        let (s3, bucket, root) = (self.s3.clone(), self.bucket.clone(), self.root.clone());
        self.wait(async move {
            match s3.list_with_delimiter(Some(&root)).await {
                Ok(_) => Ok(()),
                Err(object_store::Error::NotFound { .. }) => Err(io::Error::other(Unavailable(format!(
                    "S3 bucket `{bucket}` does not exist"
                )))),
                Err(e) => Err(unavailable(&bucket, e)),
            }
        })?
    }

    fn open<'a>(&'a self, hash: &'a BlobHash) -> BoxFuture<'a, io::Result<Option<Blob>>> {
        let (s3, bucket, key) = (self.s3.clone(), self.bucket.clone(), self.key_of(hash));
        let runtime = self.runtime().clone();
        Box::pin(async move {
            let head = runtime.spawn(Self::head(s3.clone(), bucket.clone(), key.clone()));
            let Some(len) = head.await.map_err(io::Error::other)?? else {
                return Ok(None);
            };
            let read = move |range: Option<Range<u64>>| -> BoxFuture<'static, io::Result<ByteStream>> {
                Box::pin(async move { read_range(runtime, s3, bucket, key, range).await })
            };
            Ok(Some(Blob::remote(len, Box::new(read))))
        })
    }
}

/// One `GET` (with `Range` when `range` is set) on the store's runtime; resolves once S3 has answered, then
/// streams the body through a small channel, so a slow client slows the download instead of buffering it.
async fn read_range(
    runtime: tokio::runtime::Handle,
    s3: Arc<AmazonS3>,
    bucket: String,
    key: Path,
    range: Option<Range<u64>>,
) -> io::Result<ByteStream> {
    let (tx, mut rx) = tokio::sync::mpsc::channel::<io::Result<Bytes>>(READ_AHEAD_CHUNKS);
    let (started_tx, started) = tokio::sync::oneshot::channel::<io::Result<()>>();
    runtime.spawn(async move {
        let options = GetOptions {
            range: range.map(GetRange::Bounded),
            ..GetOptions::default()
        };
        let mut body = match s3.get_opts(&key, options).await {
            Ok(r) => {
                let _ = started_tx.send(Ok(()));
                r.into_stream()
            }
            Err(e) => {
                let _ = started_tx.send(Err(unavailable(&bucket, e)));
                return;
            }
        };
        while let Some(chunk) = body.next().await {
            let chunk = chunk.map_err(|e| unavailable(&bucket, e));
            let failed = chunk.is_err();
            // The client went away: stop reading from S3.
            if tx.send(chunk).await.is_err() || failed {
                return;
            }
        }
    });
    started
        .await
        .map_err(|_| io::Error::other("the S3 store's runtime stopped"))??;
    Ok(Box::pin(futures_util::stream::poll_fn(move |cx| {
        rx.poll_recv(cx)
    })))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn store_urls_name_a_bucket_and_an_optional_prefix() {
        assert_eq!(parse_url("s3://b/p/q/").unwrap(), ("b".into(), "p/q".into()));
        assert_eq!(parse_url("s3://b").unwrap(), ("b".into(), "".into()));
        assert!(parse_url("s3:///p").is_err());
        assert!(parse_url("http://b/p").is_err());
    }
}
