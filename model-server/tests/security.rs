//! Path traversal and odd names never reach outside the store (property tests over the real router).

mod common;

use axum::body::Body;
use axum::http::{Request, StatusCode};
use common::*;
use model_server::{publish_dir, BlobHash, Config, LocalBlobStore};
use proptest::prelude::*;

const SECRET: &str = "TOP-SECRET-CONTENT";

/// A data dir with one bundle, a static site, and secret files beside them that must never be served.
fn setup() -> (tempfile::TempDir, axum::Router) {
    let tmp = tempfile::tempdir().unwrap();
    let data = tmp.path().join("data");
    let bundle = write_real_bundle(tmp.path(), "m", "1.0.0", 1);
    let (registry, store) = model_server::open_data_dir(&data).unwrap();
    publish_dir(&registry, &store, &bundle, &["latest".into()]).unwrap();
    std::fs::write(tmp.path().join("secret.txt"), SECRET).unwrap();
    std::fs::write(data.join("secret.txt"), SECRET).unwrap();
    std::fs::write(data.join("blobs").join("secret.txt"), SECRET).unwrap();
    let site = tmp.path().join("site");
    std::fs::create_dir_all(&site).unwrap();
    std::fs::write(site.join("index.html"), "hi").unwrap();
    let app = app(
        &data,
        Config {
            static_dir: Some(site),
            ..writable()
        },
    );
    (tmp, app)
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

/// Odd names in every URL position: never a leak, never a 500, writes always refused. One data dir and
/// router serve every case (requests do not change it: every write is refused).
#[test]
fn odd_names_in_urls_are_refused() {
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    let (_tmp, app) = setup();
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
                    assert_safe(&app, &uri, "GET").await;
                }
                for uri in [
                    format!("/v1/blobs/sha256/{enc}"),
                    format!("/v1/models/m/{enc}/manifest.json"),
                    format!("/v1/models/m/aliases/{enc}"),
                ] {
                    assert_safe(&app, &uri, "PUT").await;
                }
            });
            Ok(())
        })
        .unwrap();
}

#[tokio::test]
async fn known_traversals() {
    let (_tmp, app) = setup();
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
    ] {
        let (res, body) = get(&app, uri).await;
        assert!(res.status().is_client_error(), "{uri} -> {}", res.status());
        assert!(!String::from_utf8_lossy(&body).contains(SECRET), "{uri}");
    }
    let long = format!("/v1/blobs/sha256/{}", "a".repeat(60_000));
    assert!(get(&app, &long).await.0.status().is_client_error());
}
