//! The real binary: CLI publish and alias, `serve` over TCP with graceful shutdown, and SIGKILL in the
//! middle of a publish.

mod common;

use std::path::Path;
use std::process::Command;
use std::time::Duration;

use axum::http::StatusCode;
use common::*;
use model_server::Config;

const BIN: &str = env!("CARGO_BIN_EXE_model-server");

fn cli(args: &[&str]) -> std::process::Output {
    let out = Command::new(BIN).args(args).output().unwrap();
    assert!(
        out.status.success(),
        "model-server {args:?}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    out
}

fn http(addr: &str, method: &str, path: &str) -> (u16, String, Vec<u8>) {
    http_request(addr, method, path, &[], b"")
}

#[test]
fn publish_alias_serve_and_shut_down_gracefully() {
    let tmp = tempfile::tempdir().unwrap();
    let data = tmp.path().join("data");
    let d = data.to_str().unwrap();
    let out = cli(&[
        "publish",
        "--data",
        d,
        int8_bundle().to_str().unwrap(),
        "--alias",
        "latest",
    ]);
    assert!(String::from_utf8_lossy(&out.stdout).contains("published all-MiniLM-L6-v2@1.0.0-int8"));
    // Publishing the same bundle again changes nothing.
    let out = cli(&["publish", "--data", d, int8_bundle().to_str().unwrap()]);
    assert!(String::from_utf8_lossy(&out.stdout).contains("already published"));
    let other = write_real_bundle(tmp.path(), "all-MiniLM-L6-v2", "2.0.0-test", 5);
    cli(&["publish", "--data", d, other.to_str().unwrap()]);
    cli(&[
        "alias",
        "set",
        "--data",
        d,
        "all-MiniLM-L6-v2",
        "stable",
        "1.0.0-int8",
    ]);

    // Same name@version with different content: refused, exit code non-zero.
    let clash = write_real_bundle(&tmp.path().join("clash"), "all-MiniLM-L6-v2", "2.0.0-test", 6);
    let out = Command::new(BIN)
        .args(["publish", "--data", d, clash.to_str().unwrap()])
        .output()
        .unwrap();
    assert!(!out.status.success());
    assert!(
        String::from_utf8_lossy(&out.stderr).contains("different content"),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );

    let addr = free_addr();
    let mut serve = Command::new(BIN);
    serve.args(["serve", "--data", d, "--addr", &addr, "--read-only"]);
    let mut server = Spawned::spawn(serve);
    server.wait_ready(&addr, "/healthz", READY_TIMEOUT);
    let (status, _, body) = http(&addr, "GET", "/v1/models/all-MiniLM-L6-v2/stable/manifest.json");
    assert_eq!(status, 200);
    assert_eq!(body, std::fs::read(int8_bundle().join("manifest.json")).unwrap());
    let manifest = akidb_core::Manifest::from_json(&body).unwrap();
    let model = manifest.file(akidb_core::FileRole::Model);
    let (status, head, body) = http(&addr, "GET", &format!("/v1/blobs/sha256/{}", model.sha256));
    assert_eq!(status, 200);
    assert!(head.contains("cache-control: public, max-age=31536000, immutable"));
    manifest.verify_file(model, &body).unwrap();
    // HEAD over real hyper keeps Content-Length and sends no body.
    let (status, head, body) = http(&addr, "HEAD", &format!("/v1/blobs/sha256/{}", model.sha256));
    assert_eq!(status, 200);
    assert!(
        head.contains(&format!("content-length: {}", model.size)),
        "{head}"
    );
    assert!(body.is_empty());
    let (status, _, _) = http(&addr, "GET", "/readyz");
    assert_eq!(status, 200);

    // SIGTERM: graceful shutdown, exit 0.
    server.terminate();
    let status = server.wait_timeout(Duration::from_secs(20));
    assert!(status.success(), "{status:?}: {}", server.output());
}

/// The arguments of `model-server publish --data DATA BUNDLE --alias latest`.
fn publish_as_latest<'a>(data: &'a Path, bundle: &'a Path) -> [&'a str; 6] {
    [
        "publish",
        "--data",
        data.to_str().unwrap(),
        bundle.to_str().unwrap(),
        "--alias",
        "latest",
    ]
}

/// Runs `publish` with the test pause hook at `point`, waits until it pauses, and SIGKILLs it.
fn publish_and_kill(data: &Path, bundle: &Path, point: &str) {
    let mut publish = Command::new(BIN);
    publish
        .args(publish_as_latest(data, bundle))
        .env("MODEL_SERVER_TEST_PAUSE", point);
    let mut publish = Spawned::spawn(publish);
    let paused = format!("paused at {point}");
    publish.wait_for_line(&paused, Duration::from_secs(60));
    // Paused before anything else was printed: the pause point is where the publish stands.
    assert_eq!(publish.output().lines().next(), Some(paused.as_str()));
    let status = publish.kill(); // SIGKILL
    assert!(!status.success());
}

#[tokio::test(flavor = "multi_thread")]
async fn sigkill_mid_publish_leaves_the_registry_consistent() {
    let tmp = tempfile::tempdir().unwrap();
    let data = tmp.path().join("data");
    let v1 = int8_bundle();
    cli(&publish_as_latest(&data, &v1));
    let v1_manifest = std::fs::read(v1.join("manifest.json")).unwrap();
    let v2_model = model_variant(7, 3_000_000);
    let v2 = write_bundle(
        tmp.path(),
        "all-MiniLM-L6-v2",
        "1.1.0-test",
        &v2_model,
        &tokenizer_variant(7),
    );
    let v2_hash = akidb_core::sha256_hex(&v2_model);

    for point in ["mid-blob", "after-blobs"] {
        publish_and_kill(&data, &v2, point);
        if point == "mid-blob" {
            let parts: Vec<_> = std::fs::read_dir(data.join("blobs/tmp")).unwrap().collect();
            assert_eq!(
                parts.len(),
                1,
                "the killed publish left its half-written temporary file"
            );
        }
        // A fresh server over the same data: the old version unchanged, the new one absent.
        let app = app(&data, Config::default());
        let (res, body) = get(&app, "/v1/models/all-MiniLM-L6-v2/latest/manifest.json").await;
        assert_eq!(res.status(), StatusCode::OK, "{point}");
        assert_eq!(body, v1_manifest, "{point}");
        let (res, _) = get(&app, "/v1/models/all-MiniLM-L6-v2/1.1.0-test/manifest.json").await;
        assert_eq!(res.status(), StatusCode::NOT_FOUND, "{point}");
        let (_, body) = get(&app, "/v1/models").await;
        let list: serde_json::Value = serde_json::from_slice(&body).unwrap();
        assert_eq!(
            list["models"][0]["versions"],
            serde_json::json!(["1.0.0-int8"]),
            "{point}"
        );
        let m = akidb_core::Manifest::from_json(&v1_manifest).unwrap();
        for entry in &m.files {
            let (res, bytes) = get(&app, &format!("/v1/blobs/sha256/{}", entry.sha256)).await;
            assert_eq!(res.status(), StatusCode::OK);
            m.verify_file(entry, &bytes).unwrap();
        }
        // No half-written blob is ever served: the model blob is either absent or complete.
        let (res, bytes) = get(&app, &format!("/v1/blobs/sha256/{v2_hash}")).await;
        match point {
            "mid-blob" => assert_eq!(res.status(), StatusCode::NOT_FOUND),
            _ => assert_eq!(bytes, v2_model),
        }
        assert_eq!(
            std::fs::read_dir(data.join("blobs/tmp")).unwrap().count(),
            0,
            "opening the store clears the temp files of writers that are gone"
        );
        let db = rusqlite_check(&data);
        assert_eq!(db, "ok", "{point}");
    }

    // The publish can be rerun and completes.
    cli(&publish_as_latest(&data, &v2));
    let app = app(&data, Config::default());
    let (_, body) = get(&app, "/v1/models/all-MiniLM-L6-v2/latest/manifest.json").await;
    assert_eq!(body, std::fs::read(v2.join("manifest.json")).unwrap());
    let (_, bytes) = get(&app, &format!("/v1/blobs/sha256/{v2_hash}")).await;
    assert_eq!(bytes, v2_model);
}

/// SQLite's own integrity check of the registry, through the registry's connection settings.
fn rusqlite_check(data: &Path) -> String {
    let reg = model_server::Registry::open(&data.join("registry.sqlite")).unwrap();
    reg.integrity_check().unwrap()
}
