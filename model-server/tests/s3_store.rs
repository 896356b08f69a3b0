//! The S3 blob store against a real S3 API (`moto_server` on loopback, from akidb-testkit): the blob
//! route answers the same status, headers and bytes as with the local store; writes verify the hash
//! (nothing stored otherwise); a missing bucket, wrong credentials and an unreachable S3 give clear
//! errors, not hangs and never a wrong answer. (The whole HTTP suite runs against S3 too: api.rs and
//! security.rs, `s3::`.)
//!
//! moto_server comes from `scripts/install-moto.sh` (target/tools/moto-venv) or `$MOTO_SERVER`; without
//! it these tests fail and say so.

mod common;

use std::process::Command;
use std::sync::Arc;
use std::time::{Duration, Instant};

use axum::body::Body;
use axum::http::{Request, StatusCode};
use common::moto::Moto;
use common::*;
use model_server::{router, AppState, BlobHash, BlobStore, Registry, S3BlobStore, S3Options};

/// An S3 store of `moto` at `s3://bucket/blobs`.
fn s3_store(moto: &Moto, bucket: &str) -> S3BlobStore {
    S3BlobStore::open(&format!("s3://{bucket}/blobs"), &s3_options(moto)).unwrap()
}

fn app_with(store: Arc<dyn BlobStore>, dir: &std::path::Path) -> axum::Router {
    let registry = Registry::open(&dir.join("registry.sqlite")).unwrap();
    router(AppState::new(registry, store, writable()))
}

/// The requests of the blob route's contract, each answered by both stores: status, the headers that
/// matter, and the body must be identical.
#[tokio::test]
async fn the_blob_route_answers_the_same_from_s3_and_from_disk() {
    let moto = moto::shared();
    let tmp = tempfile::tempdir().unwrap();
    let local: Arc<dyn BlobStore> =
        Arc::new(model_server::LocalBlobStore::open(tmp.path().join("blobs")).unwrap());
    let s3: Arc<dyn BlobStore> = Arc::new(s3_store(moto, &moto.bucket()));
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
    let moto = moto::shared();
    let bucket = moto.bucket();
    let store = Arc::new(s3_store(moto, &bucket));
    let tmp = tempfile::tempdir().unwrap();
    let app = app_with(store.clone(), tmp.path());
    for len in [1_000usize, 17 << 20] {
        let data = bytes(3, len);
        let wrong = BlobHash::of(b"something else");
        let put = |name: String, body: Vec<u8>| {
            authed(Request::put(format!("/v1/blobs/sha256/{name}")))
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
    let moto = moto::shared();
    let err = S3BlobStore::open("s3://no-such-bucket-h2/p", &s3_options(moto)).unwrap_err();
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
        .env("AWS_ENDPOINT_URL", moto.endpoint())
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
    // A moto of its own: this test stops it.
    let mut moto = Moto::start();
    let bucket = moto.bucket();
    let store = Arc::new(s3_store(&moto, &bucket));
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
    moto.stop();
    let start = Instant::now();
    let (res, body) = get(&app, &uri).await;
    assert_eq!(res.status(), StatusCode::SERVICE_UNAVAILABLE);
    let v: serde_json::Value = serde_json::from_slice(&body).unwrap();
    assert!(v["error"]["message"].as_str().unwrap().contains(&bucket), "{v}");
    // A kind a client can act on (retry), not a bare internal error.
    assert_eq!(v["error"]["type"], "unavailable", "{v}");
    assert!(
        start.elapsed() < Duration::from_secs(10),
        "took {:?}",
        start.elapsed()
    );
    let (res, _) = get(&app, "/readyz").await;
    assert_eq!(res.status(), StatusCode::SERVICE_UNAVAILABLE);
}

/// moto with its credential checks on (a private moto: the switch is global to it). Stores whose
/// credentials are wrong (a wrong secret; a key moto never issued) answer every read and write with a
/// 503 JSON naming the bucket — never a 404 (a "not there" a client would believe), never bytes, never
/// a 201 — while a store with the issued key, over the same bucket and the same requests, serves the
/// blob (so the refusals are about the credentials). Opening a store with wrong credentials fails naming
/// the bucket and S3's reason, and `serve` refuses to start, naming the bucket.
///
/// moto 5.2.1 with credential checks on cannot verify a signed request that carries a query string
/// (boto3's own `ListObjectsV2` gets `SignatureDoesNotMatch` too), and opening a store lists the bucket:
/// so the stores are opened before the checks are turned on, the issued key is proven on the read path
/// (HEAD and GET carry no query), and of the refusals at open only the unknown key's
/// (`InvalidAccessKeyId`, decided before any signature) discriminates.
#[tokio::test]
async fn wrong_credentials_fail_clearly_and_never_give_a_wrong_answer() {
    let moto = Moto::start();
    let bucket = moto.bucket();
    let url = format!("s3://{bucket}/blobs");
    let issued = moto.create_user("model-server");
    let unknown_key = "AKIAUNKNOWN000000000";
    let options = |key: &str, secret: &str| S3Options {
        access_key_id: Some(key.into()),
        secret_access_key: Some(secret.into()),
        ..s3_options(&moto)
    };
    let tmp = tempfile::tempdir().unwrap();
    let app = |name: &str, key: &str, secret: &str| {
        let store = S3BlobStore::open(&url, &options(key, secret)).unwrap();
        let dir = tmp.path().join(name);
        std::fs::create_dir_all(&dir).unwrap();
        app_with(Arc::new(store), &dir)
    };
    let right = app("right", &issued.access_key_id, &issued.secret_access_key);
    let wrong = [
        (
            "wrong secret",
            app("wrong-secret", &issued.access_key_id, "not-the-secret"),
        ),
        (
            "unknown key",
            app("unknown-key", unknown_key, &issued.secret_access_key),
        ),
    ];
    let data = bytes(5, 50_000);
    let uri = format!("/v1/blobs/sha256/{}", BlobHash::of(&data));
    let other = bytes(6, 1_000);
    let other_uri = format!("/v1/blobs/sha256/{}", BlobHash::of(&other));
    let put = |uri: &str, body: &[u8]| authed(Request::put(uri)).body(Body::from(body.to_vec())).unwrap();
    assert_eq!(
        send(&right, put(&uri, &data)).await.0.status(),
        StatusCode::CREATED
    );
    moto.enforce_credentials();

    // The issued key: the blob, whole and by range.
    let (res, body) = get(&right, &uri).await;
    assert_eq!(res.status(), StatusCode::OK);
    assert!(body == data, "the issued key reads the blob");
    let range = Request::get(&uri).header("range", "bytes=0-9");
    let (res, body) = send(&right, range.body(Body::empty()).unwrap()).await;
    assert_eq!(
        (res.status(), body.as_slice()),
        (StatusCode::PARTIAL_CONTENT, &data[..10])
    );

    // Wrong credentials: 503 JSON naming the bucket, for reads and writes, and /readyz fails.
    for (case, app) in &wrong {
        for req in [
            Request::get(&uri).body(Body::empty()).unwrap(),
            Request::head(&uri).body(Body::empty()).unwrap(),
            Request::get(&uri)
                .header("range", "bytes=0-9")
                .body(Body::empty())
                .unwrap(),
            put(&other_uri, &other),
        ] {
            let what = format!("{case}: {} {}", req.method(), req.uri());
            let head_only = req.method() == axum::http::Method::HEAD;
            let (res, body) = send(app, req).await;
            assert_eq!(res.status(), StatusCode::SERVICE_UNAVAILABLE, "{what}");
            if !head_only {
                let v = json(&body);
                let message = v["error"]["message"].as_str().unwrap_or_default();
                assert!(message.contains(&format!("`{bucket}`")), "{what}: {v}");
                assert_eq!(v["error"]["type"], "unavailable", "{what}: {v}");
            }
        }
        let (res, _) = get(app, "/readyz").await;
        assert_eq!(res.status(), StatusCode::SERVICE_UNAVAILABLE, "{case}");
    }
    // The refused writes stored nothing (seen with the issued key).
    assert_eq!(get(&right, &other_uri).await.0.status(), StatusCode::NOT_FOUND);

    for (case, key, secret, reason) in [
        (
            "wrong secret",
            issued.access_key_id.as_str(),
            "not-the-secret",
            "SignatureDoesNotMatch",
        ),
        (
            "unknown key",
            unknown_key,
            issued.secret_access_key.as_str(),
            "InvalidAccessKeyId",
        ),
    ] {
        let err = S3BlobStore::open(&url, &options(key, secret))
            .expect_err(&format!("{case}: the store opened"))
            .to_string();
        assert!(err.contains(&format!("`{bucket}`")), "{case}: {err}");
        assert!(err.contains(reason), "{case}: {err}");

        // The binary refuses to start, naming the bucket (and exits: it does not hang retrying).
        let mut serve = Command::new(env!("CARGO_BIN_EXE_model-server"));
        serve
            .args(["serve", "--data"])
            .arg(tmp.path().join("serve"))
            .args(["--store", &url, "--s3-allow-http", "--addr", &free_addr()])
            .env("AWS_ENDPOINT_URL", moto.endpoint())
            .env("AWS_REGION", moto::REGION)
            .env("AWS_ACCESS_KEY_ID", key)
            .env("AWS_SECRET_ACCESS_KEY", secret);
        let mut serve = Spawned::spawn(serve);
        let status = serve.wait_timeout(Duration::from_secs(60));
        assert!(!status.success(), "{case}: serve started:\n{}", serve.output());
        assert!(serve.output().contains(&bucket), "{case}: {}", serve.output());
    }
}

/// The kit's moto never outlives the process it belongs to (a shared moto is a static, never dropped; a
/// killed test binary drops nothing): watched by a process that then dies, it stops answering.
#[test]
fn moto_does_not_outlive_its_owner() {
    let mut owner = Command::new("sh");
    owner.args(["-c", "exec sleep 600"]);
    let mut owner = Spawned::spawn(owner);
    let moto = Moto::start_watched_by(owner.id());
    let addr = moto.addr().to_owned();
    let answers = || akidb_testkit::net::get_status(&addr, "/moto-api/data.json", Duration::from_secs(2));
    assert_eq!(answers().ok(), Some(200));
    // Not dropped (a drop would kill it): only the watchdog can end it now.
    std::mem::forget(moto);
    owner.kill();
    let start = Instant::now();
    while answers().is_ok() {
        assert!(
            start.elapsed() < Duration::from_secs(15),
            "moto at {addr} outlived its owner by {:?}",
            start.elapsed()
        );
        std::thread::sleep(Duration::from_millis(100));
    }
}
