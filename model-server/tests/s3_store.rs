//! The S3 blob store against a real S3 API (`moto_server` on loopback): the blob route answers the same
//! status, headers and bytes as with the local store; writes verify the hash (nothing stored otherwise);
//! a missing bucket and an unreachable S3 give clear errors, not hangs.
//!
//! moto_server comes from `scripts/install-moto.sh` (target/tools/moto-venv) or `$MOTO_SERVER`; without
//! it these tests fail and say so.

mod common;

use std::process::{Child, Command, Stdio};
use std::sync::atomic::{AtomicU32, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use axum::body::Body;
use axum::http::{Request, StatusCode};
use common::*;
use model_server::{router, AppState, BlobHash, BlobStore, Registry, S3BlobStore, S3Options};

/// A moto_server on a free loopback port, killed when dropped.
struct Moto {
    addr: String,
    child: Child,
}

impl Drop for Moto {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

fn moto_binary() -> std::path::PathBuf {
    let path = std::env::var_os("MOTO_SERVER")
        .map(std::path::PathBuf::from)
        .unwrap_or_else(|| {
            std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../target/tools/moto-venv/bin/moto_server")
        });
    assert!(
        path.exists(),
        "moto_server not found at {} (or $MOTO_SERVER): run scripts/install-moto.sh",
        path.display()
    );
    path
}

impl Moto {
    fn start() -> Moto {
        let addr = free_addr();
        let port = addr.rsplit(':').next().unwrap().to_owned();
        let child = Command::new(moto_binary())
            .args(["-H", "127.0.0.1", "-p", &port])
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("starting moto_server");
        let moto = Moto { addr, child };
        let start = Instant::now();
        while std::net::TcpStream::connect(&moto.addr).is_err() {
            assert!(
                start.elapsed() < Duration::from_secs(30),
                "moto_server did not start"
            );
            std::thread::sleep(Duration::from_millis(50));
        }
        moto
    }

    fn options(&self) -> S3Options {
        S3Options {
            endpoint: Some(format!("http://{}", self.addr)),
            region: Some("us-east-1".into()),
            access_key_id: Some("testing".into()),
            secret_access_key: Some("testing".into()),
            allow_http: Some(true),
        }
    }

    /// A new, empty bucket (moto takes unsigned requests).
    fn bucket(&self) -> String {
        static NEXT: AtomicU32 = AtomicU32::new(0);
        let name = format!("b{}-{}", std::process::id(), NEXT.fetch_add(1, Ordering::Relaxed));
        let (status, _, body) = http_request(&self.addr, "PUT", &format!("/{name}"), &[], b"");
        assert_eq!(
            status,
            200,
            "creating bucket {name}: {}",
            String::from_utf8_lossy(&body)
        );
        name
    }

    fn store(&self, bucket: &str) -> S3BlobStore {
        S3BlobStore::open(&format!("s3://{bucket}/blobs"), &self.options()).unwrap()
    }
}

fn app_with(store: Arc<dyn BlobStore>, dir: &std::path::Path) -> axum::Router {
    let registry = Registry::open(&dir.join("registry.sqlite")).unwrap();
    router(AppState::new(registry, store, writable()))
}

/// The requests of the blob route's contract, each answered by both stores: status, the headers that
/// matter, and the body must be identical.
#[tokio::test]
async fn the_blob_route_answers_the_same_from_s3_and_from_disk() {
    let moto = Moto::start();
    let tmp = tempfile::tempdir().unwrap();
    let local: Arc<dyn BlobStore> =
        Arc::new(model_server::LocalBlobStore::open(tmp.path().join("blobs")).unwrap());
    let s3: Arc<dyn BlobStore> = Arc::new(moto.store(&moto.bucket()));
    // One small blob (one PUT) and one of 20 MB (a multipart upload), stored through each store.
    let small = bytes(1, 100_000);
    let large = bytes(2, 20 << 20);
    for b in [&small, &large] {
        for store in [&local, &s3] {
            let (store, b) = (store.clone(), b.clone());
            tokio::task::spawn_blocking(move || store.put(&BlobHash::of(&b), &mut &b[..], 1 << 30))
                .await
                .unwrap()
                .unwrap();
        }
    }
    for d in ["l", "s"] {
        std::fs::create_dir_all(tmp.path().join(d)).unwrap();
    }
    let apps = [
        app_with(local, &tmp.path().join("l")),
        app_with(s3, &tmp.path().join("s")),
    ];
    let small_uri = format!("/v1/blobs/sha256/{}", BlobHash::of(&small));
    let large_uri = format!("/v1/blobs/sha256/{}", BlobHash::of(&large));
    let etag = format!("\"{}\"", BlobHash::of(&small));
    // (method, URI, request headers)
    type Case<'a> = (&'a str, String, Vec<(&'a str, String)>);
    let cases: Vec<Case> = vec![
        ("GET", small_uri.clone(), vec![]),
        ("GET", large_uri.clone(), vec![]),
        ("HEAD", small_uri.clone(), vec![]),
        ("GET", small_uri.clone(), vec![("range", "bytes=10-19".into())]),
        ("GET", large_uri.clone(), vec![("range", "bytes=-5".into())]),
        ("GET", small_uri.clone(), vec![("range", "bytes=100000-".into())]),
        ("GET", small_uri.clone(), vec![("if-none-match", etag.clone())]),
        (
            "GET",
            small_uri.clone(),
            vec![("range", "bytes=0-9".into()), ("if-range", "\"other\"".into())],
        ),
        (
            "GET",
            format!("/v1/blobs/sha256/{}", BlobHash::of(b"absent")),
            vec![],
        ),
    ];
    for (method, uri, headers) in &cases {
        let mut answers = Vec::new();
        for app in &apps {
            let mut req = Request::builder().method(*method).uri(uri);
            for (k, v) in headers {
                req = req.header(*k, v);
            }
            let (res, body) = send(app, req.body(Body::empty()).unwrap()).await;
            let keep = [
                "etag",
                "content-length",
                "cache-control",
                "content-range",
                "accept-ranges",
                "content-type",
            ];
            let heads: Vec<_> = keep
                .iter()
                .map(|h| (h.to_string(), header(&res, h).map(str::to_owned)))
                .collect();
            answers.push((res.status(), heads, body));
        }
        assert_eq!(answers[0], answers[1], "{method} {uri} {headers:?}: local vs S3");
    }
    // And the answers are the right ones (not merely equal).
    let (res, body) = send(&apps[1], Request::get(&large_uri).body(Body::empty()).unwrap()).await;
    assert_eq!(res.status(), StatusCode::OK);
    assert!(body == large, "the 20 MB blob comes back whole from S3");
    let (res, body) = send(
        &apps[1],
        Request::get(&small_uri)
            .header("range", "bytes=10-19")
            .body(Body::empty())
            .unwrap(),
    )
    .await;
    assert_eq!(res.status(), StatusCode::PARTIAL_CONTENT);
    assert_eq!(body, small[10..20]);
}

#[tokio::test]
async fn uploads_are_hash_checked_and_create_if_absent() {
    let moto = Moto::start();
    let bucket = moto.bucket();
    let store = Arc::new(moto.store(&bucket));
    let tmp = tempfile::tempdir().unwrap();
    let app = app_with(store.clone(), tmp.path());
    for len in [1_000usize, 17 << 20] {
        let data = bytes(3, len);
        let wrong = BlobHash::of(b"something else");
        let put = |name: String, body: Vec<u8>| {
            Request::put(format!("/v1/blobs/sha256/{name}"))
                .header("authorization", format!("Bearer {TOKEN}"))
                .body(Body::from(body))
                .unwrap()
        };
        let (res, body) = send(&app, put(wrong.to_string(), data.clone())).await;
        assert_eq!(
            res.status(),
            StatusCode::BAD_REQUEST,
            "{len}: {}",
            String::from_utf8_lossy(&body)
        );
        let s = store.clone();
        let w = wrong.clone();
        let left = tokio::task::spawn_blocking(move || s.size(&w))
            .await
            .unwrap()
            .unwrap();
        assert_eq!(left, None, "{len} bytes under a wrong name left an object");
        let h = BlobHash::of(&data);
        assert_eq!(
            send(&app, put(h.to_string(), data.clone())).await.0.status(),
            StatusCode::CREATED
        );
        // Already there: success, not an error.
        assert_eq!(
            send(&app, put(h.to_string(), data.clone())).await.0.status(),
            StatusCode::OK
        );
        let s = store.clone();
        let got = tokio::task::spawn_blocking(move || s.get(&h))
            .await
            .unwrap()
            .unwrap()
            .unwrap();
        assert!(got == data, "{len} bytes round trip");
    }
}

#[test]
fn a_missing_bucket_is_named_at_start() {
    let moto = Moto::start();
    let err = S3BlobStore::open("s3://no-such-bucket-h2/p", &moto.options()).unwrap_err();
    assert!(err.to_string().contains("no-such-bucket-h2"), "{err}");
    // The binary refuses to start, naming it too.
    let tmp = tempfile::tempdir().unwrap();
    let out = Command::new(env!("CARGO_BIN_EXE_model-server"))
        .args(["serve", "--data"])
        .arg(tmp.path())
        .args([
            "--store",
            "s3://no-such-bucket-h2/p",
            "--s3-allow-http",
            "--addr",
            &free_addr(),
        ])
        .env("AWS_ENDPOINT_URL", format!("http://{}", moto.addr))
        .env("AWS_ACCESS_KEY_ID", "testing")
        .env("AWS_SECRET_ACCESS_KEY", "testing")
        .env("AWS_REGION", "us-east-1")
        .output()
        .unwrap();
    assert!(!out.status.success());
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(stderr.contains("no-such-bucket-h2"), "{stderr}");
}

#[tokio::test]
async fn s3_gone_mid_service_is_a_quick_503_json() {
    let mut moto = Moto::start();
    let bucket = moto.bucket();
    let store = Arc::new(moto.store(&bucket));
    let data = bytes(4, 5_000);
    let s = store.clone();
    let d = data.clone();
    tokio::task::spawn_blocking(move || s.put(&BlobHash::of(&d), &mut &d[..], 1 << 20))
        .await
        .unwrap()
        .unwrap();
    let tmp = tempfile::tempdir().unwrap();
    let app = app_with(store, tmp.path());
    let uri = format!("/v1/blobs/sha256/{}", BlobHash::of(&data));
    assert_eq!(get(&app, &uri).await.1, data);
    moto.child.kill().unwrap();
    moto.child.wait().unwrap();
    let start = Instant::now();
    let (res, body) = get(&app, &uri).await;
    assert_eq!(res.status(), StatusCode::SERVICE_UNAVAILABLE);
    let v: serde_json::Value = serde_json::from_slice(&body).unwrap();
    assert!(v["error"]["message"].as_str().unwrap().contains(&bucket), "{v}");
    assert!(
        start.elapsed() < Duration::from_secs(10),
        "took {:?}",
        start.elapsed()
    );
    let (res, _) = get(&app, "/readyz").await;
    assert_eq!(res.status(), StatusCode::SERVICE_UNAVAILABLE);
}
