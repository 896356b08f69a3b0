//! Path traversal and odd names never reach outside the store (property tests over the real router),
//! with the blobs on the local disk and in S3 (`local::` and `s3::`, one body each: see `per_store!`).

mod common;

use axum::body::Body;
use axum::http::{Request, StatusCode};
use common::*;
use model_server::{publish_dir, BlobHash, Config, LocalBlobStore, S3BlobStore};
use proptest::prelude::*;

const SECRET: &str = "TOP-SECRET-CONTENT";

/// A data dir and a blob store of one kind with one bundle, a static site, and secrets that must never
/// be served: files beside the data dir, in it and in its blob directory; with S3, objects beside the
/// store's prefix in its bucket (at the root, in the prefix beside `sha256/`, under a sibling prefix) and
/// in another bucket.
struct Site {
    _tmp: tempfile::TempDir,
    app: axum::Router,
    /// With S3: the store's bucket and the other one, each with its keys as planted.
    buckets: Vec<(String, Vec<String>)>,
}

fn setup(kind: StoreKind) -> Site {
    let tmp = tempfile::tempdir().unwrap();
    let data = tmp.path().join("data");
    let bundle = write_real_bundle(tmp.path(), "m", "1.0.0", 1);
    let store = Store::new(kind);
    let (registry, blobs) = store.open(&data);
    publish_dir(&registry, &*blobs, &bundle, &["latest".into()]).unwrap();
    std::fs::write(tmp.path().join("secret.txt"), SECRET).unwrap();
    std::fs::write(data.join("secret.txt"), SECRET).unwrap();
    std::fs::create_dir_all(data.join("blobs")).unwrap();
    std::fs::write(data.join("blobs").join("secret.txt"), SECRET).unwrap();
    let mut buckets = Vec::new();
    if let Some(bucket) = store.bucket() {
        let moto = moto::shared();
        for key in [
            "secret.txt".to_owned(),
            format!("{S3_PREFIX}/secret.txt"),
            format!("{S3_PREFIX}/sha256/secret.txt"),
            format!("{S3_PREFIX}-beside/sha256/secret.txt"),
        ] {
            moto.put_object(bucket, &key, SECRET.as_bytes());
        }
        let outside = moto.bucket();
        moto.put_object(&outside, "secret.txt", SECRET.as_bytes());
        moto.put_object(&outside, &format!("{S3_PREFIX}/secret.txt"), SECRET.as_bytes());
        for b in [bucket.to_owned(), outside] {
            let keys = moto.keys(&b);
            buckets.push((b, keys));
        }
    }
    let site = tmp.path().join("site");
    std::fs::create_dir_all(&site).unwrap();
    std::fs::write(site.join("index.html"), "hi").unwrap();
    let app = store.app(
        &data,
        Config {
            static_dir: Some(site),
            ..writable()
        },
    );
    Site {
        _tmp: tmp,
        app,
        buckets,
    }
}

impl Site {
    /// No request wrote into either bucket (every write of these tests is refused).
    fn assert_buckets_unchanged(&self) {
        for (bucket, keys) in &self.buckets {
            assert_eq!(&moto::shared().keys(bucket), keys, "s3://{bucket} changed");
        }
    }
}

/// Percent-encodes every byte that is not unreserved, so arbitrary names survive as one path segment.
fn encode(s: &str) -> String {
    s.bytes()
        .map(|b| {
            if b.is_ascii_alphanumeric() || b"-_.~".contains(&b) {
                (b as char).to_string()
            } else {
                format!("%{b:02X}")
            }
        })
        .collect()
}

/// Mostly sha256 names (which parse), some near misses and some odd names (which must not).
fn blob_name() -> impl Strategy<Value = String> {
    prop_oneof![
        6 => "[0-9a-f]{64}",
        1 => "[0-9a-fA-F./]{63,65}",
        1 => odd_name(),
    ]
}

fn odd_name() -> impl Strategy<Value = String> {
    prop_oneof![
        Just("..".to_owned()),
        Just("../../secret.txt".to_owned()),
        Just("/etc/passwd".to_owned()),
        Just("secret.txt".to_owned()),
        Just("a\0b".to_owned()),
        Just("..\\..\\secret.txt".to_owned()),
        "[./\\\\a-f0-9%\0]{0,80}",
        ".{0,40}",
        "[a-f0-9]{60,70}",
        "(\\.\\./){1,8}(secret\\.txt|blobs/secret\\.txt)",
        Just("a".repeat(5000)),
    ]
}

async fn assert_safe(app: &axum::Router, uri: &str, method: &str) {
    let mut req = Request::builder().method(method).uri(uri);
    if method == "PUT" {
        req = req.header("authorization", format!("Bearer {TOKEN}"));
    }
    let req = match req.body(Body::from("x")) {
        Ok(r) => r,
        Err(_) => return, // not even a valid URI: hyper would refuse it before the router
    };
    let (res, body) = send(app, req).await;
    let text = String::from_utf8_lossy(&body);
    assert!(
        !text.contains(SECRET),
        "{method} {uri} leaked a file outside the store"
    );
    assert!(
        res.status() != StatusCode::INTERNAL_SERVER_ERROR,
        "{method} {uri} -> 500: {text}"
    );
    if method == "GET" && res.status() == StatusCode::OK && uri.starts_with("/v1/blobs/") {
        // A blob answer is always bytes that hash to the name asked for.
        let name = uri.trim_start_matches("/v1/blobs/sha256/");
        assert_eq!(akidb_core::sha256_hex(&body), name, "{uri}");
    }
    if method == "PUT" {
        assert!(
            res.status().is_client_error(),
            "{method} {uri} -> {}",
            res.status()
        );
    }
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 200, ..ProptestConfig::default() })]

    /// Every name that parses names a file inside `ROOT/sha256/`, checked on the resolved path of a
    /// real file (so `..`, symlinks or an absolute join would show), and names that do not parse are
    /// refused. Most cases generate names that parse.
    #[test]
    fn blob_names_never_leave_the_store(name in blob_name()) {
        let dir = tempfile::tempdir().unwrap();
        let store = LocalBlobStore::open(dir.path()).unwrap();
        let well_formed = name.len() == 64 && name.bytes().all(|b| b.is_ascii_digit() || (b'a'..=b'f').contains(&b));
        let Some(h) = BlobHash::parse(&name) else {
            prop_assert!(!well_formed, "{name:?} is a sha256 but was refused");
            return Ok(());
        };
        prop_assert!(well_formed, "{name:?} parsed");
        let path = store.path_of(&h);
        std::fs::create_dir_all(path.parent().unwrap()).unwrap();
        std::fs::write(&path, b"x").unwrap();
        let resolved = path.canonicalize().unwrap();
        let root = dir.path().join("sha256").canonicalize().unwrap();
        let below = resolved.strip_prefix(&root);
        prop_assert!(below.is_ok(), "{} is outside {}", resolved.display(), root.display());
        let parts: Vec<String> = below.unwrap().components().map(|c| c.as_os_str().to_string_lossy().into_owned()).collect();
        prop_assert_eq!(parts, vec![name[..2].to_owned(), name.clone()]);
    }

}

/// The S3 twin of `blob_names_never_leave_the_store`: every name that parses is the key
/// `PREFIX/sha256/<first two>/<name>`, segment by segment (so no `..`, no empty segment and no second
/// prefix can appear), and names that do not parse are refused. One store serves every case.
#[test]
fn blob_keys_never_leave_the_prefix() {
    let moto = moto::shared();
    let store = S3BlobStore::open(&format!("s3://{}/{S3_PREFIX}", moto.bucket()), &s3_options(moto)).unwrap();
    let mut runner = proptest::test_runner::TestRunner::new(ProptestConfig {
        cases: 200,
        ..ProptestConfig::default()
    });
    runner
        .run(&blob_name(), |name| {
            let well_formed = name.len() == 64
                && name
                    .bytes()
                    .all(|b| b.is_ascii_digit() || (b'a'..=b'f').contains(&b));
            let Some(h) = BlobHash::parse(&name) else {
                prop_assert!(!well_formed, "{name:?} is a sha256 but was refused");
                return Ok(());
            };
            prop_assert!(well_formed, "{name:?} parsed");
            let key = store.key_of(&h);
            let parts: Vec<String> = key.parts().map(|p| p.as_ref().to_owned()).collect();
            prop_assert_eq!(
                parts,
                vec![
                    S3_PREFIX.to_owned(),
                    "sha256".into(),
                    name[..2].to_owned(),
                    name.clone()
                ]
            );
            Ok(())
        })
        .unwrap();
}

/// Odd names in every URL position: never a leak, never a 500, writes always refused. One data dir and
/// router serve every case (requests do not change it: every write is refused, and with S3 the buckets
/// are checked to be as planted afterwards).
fn odd_names_in_urls_are_refused(kind: StoreKind) {
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    let site = setup(kind);
    let app = &site.app;
    let mut runner = proptest::test_runner::TestRunner::new(ProptestConfig {
        cases: 200,
        ..ProptestConfig::default()
    });
    runner
        .run(&odd_name(), |name| {
            rt.block_on(async {
                let enc = encode(&name);
                for uri in [
                    format!("/v1/blobs/sha256/{enc}"),
                    format!("/v1/models/{enc}"),
                    format!("/v1/models/m/{enc}/manifest.json"),
                    format!("/v1/models/{enc}/latest/manifest.json"),
                    format!("/{enc}"),
                    format!("/{}", name.replace('\0', "%00")),
                    format!("/v1/blobs/sha256/{}", name.replace('\0', "%00")),
                ] {
                    assert_safe(app, &uri, "GET").await;
                }
                for uri in [
                    format!("/v1/blobs/sha256/{enc}"),
                    format!("/v1/models/m/{enc}/manifest.json"),
                    format!("/v1/models/m/aliases/{enc}"),
                ] {
                    assert_safe(app, &uri, "PUT").await;
                }
            });
            Ok(())
        })
        .unwrap();
    site.assert_buckets_unchanged();
}

async fn known_traversals(kind: StoreKind) {
    let site = setup(kind);
    let app = &site.app;
    for uri in [
        "/v1/blobs/sha256/..%2f..%2fsecret.txt",
        "/v1/blobs/sha256/%2e%2e",
        "/v1/blobs/sha256/%2e%2e%2fsecret.txt",
        "/v1/blobs/sha256/..",
        "/v1/blobs/sha256/%00",
        "/v1/blobs/sha256/secret.txt",
        "/../secret.txt",
        "/..%2fsecret.txt",
        "/%2e%2e/secret.txt",
        "/%2e%2e%2fsecret.txt",
        "/%2Fetc%2Fpasswd",
        "//etc/passwd",
        "/v1/models/..%2f..%2fsecret.txt",
        "/v1/models/m/..%2f..%2fsecret.txt/manifest.json",
        // The keys planted beside the S3 store's prefix, and the local files of the same names.
        "/v1/blobs/sha256/..%2f..%2fblobs-beside%2fsha256%2fsecret.txt",
        "/v1/blobs/sha256/%2e%2e%2fsecret.txt",
        "/v1/blobs/sha256/..%2f..%2f..%2fsecret.txt",
        "/blobs/secret.txt",
        "/secret.txt",
    ] {
        let (res, body) = get(app, uri).await;
        assert!(res.status().is_client_error(), "{uri} -> {}", res.status());
        assert!(!String::from_utf8_lossy(&body).contains(SECRET), "{uri}");
    }
    let long = format!("/v1/blobs/sha256/{}", "a".repeat(60_000));
    assert!(get(app, &long).await.0.status().is_client_error());
    // Authorised writes through the same holes, and one under a well-formed name with other bytes: all
    // refused, and nothing written anywhere in the buckets.
    let well_formed = format!("/v1/blobs/sha256/{}", akidb_core::sha256_hex(b"not these bytes"));
    for uri in [
        well_formed.as_str(),
        "/v1/blobs/sha256/..%2f..%2fsecret.txt",
        "/v1/blobs/sha256/..%2f..%2fblobs-beside%2fsha256%2fsecret.txt",
        "/v1/models/m/..%2f..%2fsecret.txt/manifest.json",
    ] {
        let req = authed(Request::put(uri)).body(Body::from("x")).unwrap();
        let (res, _) = send(app, req).await;
        assert!(res.status().is_client_error(), "PUT {uri} -> {}", res.status());
    }
    site.assert_buckets_unchanged();
}

per_store!(async: known_traversals; sync: odd_names_in_urls_are_refused);
