//! Cross-origin isolation of the static site, over real HTTP from the real binary: the page `make demo`
//! serves (`--static`) must come with COOP/COEP so that it is `crossOriginIsolated` (the threaded wasm
//! build needs SharedArrayBuffer), while the API it and other origins fetch stays CORS- and CORP-readable.

mod common;

use std::process::Command;

use common::*;

const BIN: &str = env!("CARGO_BIN_EXE_model-server");

/// The value of header `name` in a lower-cased response head, if present.
fn head_value<'a>(head: &'a str, name: &str) -> Option<&'a str> {
    head.lines()
        .find_map(|l| l.strip_prefix(name)?.strip_prefix(':'))
        .map(str::trim)
}

#[test]
fn static_site_is_cross_origin_isolated_and_the_api_stays_readable() {
    let tmp = tempfile::tempdir().unwrap();
    let data = tmp.path().join("data");
    let site = tmp.path().join("site");
    std::fs::create_dir_all(site.join("pkg")).unwrap();
    std::fs::write(site.join("index.html"), "<h1>demo</h1>").unwrap();
    std::fs::write(site.join("pkg").join("akidb_wasm_bg.wasm"), b"\0asm\x01\0\0\0").unwrap();
    std::fs::write(site.join("sw.js"), "self.onfetch = null;").unwrap();
    let out = Command::new(BIN)
        .args(["publish", "--data", data.to_str().unwrap()])
        .arg(int8_bundle())
        .output()
        .unwrap();
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));

    let addr = free_addr();
    let mut serve = Command::new(BIN);
    serve
        .args(["serve", "--read-only", "--addr", &addr, "--data"])
        .arg(&data)
        .arg("--static")
        .arg(&site);
    let mut server = Spawned::spawn(serve);
    server.wait_ready(&addr, "/healthz", READY_TIMEOUT);

    // The page, its worker-capable scripts and its .wasm: isolated (COOP + COEP), CORP as everywhere.
    for path in ["/", "/index.html", "/sw.js", "/pkg/akidb_wasm_bg.wasm"] {
        let (status, head, _) = http_request(&addr, "GET", path, &[], b"");
        assert_eq!(status, 200, "GET {path}");
        assert_eq!(
            head_value(&head, "cross-origin-opener-policy"),
            Some("same-origin"),
            "GET {path}: {head}"
        );
        assert_eq!(
            head_value(&head, "cross-origin-embedder-policy"),
            Some("require-corp"),
            "GET {path}: {head}"
        );
        assert_eq!(
            head_value(&head, "cross-origin-resource-policy"),
            Some("cross-origin"),
            "GET {path}"
        );
    }

    // What an isolated page on another origin fetches (a cors request): the manifest and a blob answer
    // with CORS for any origin and CORP cross-origin, so require-corp lets them through.
    let origin = [("Origin", "http://127.0.0.1:1")];
    let (status, head, body) = http_request(
        &addr,
        "GET",
        "/v1/models/all-MiniLM-L6-v2/1.0.0-int8/manifest.json",
        &origin,
        b"",
    );
    assert_eq!(status, 200);
    assert_eq!(head_value(&head, "access-control-allow-origin"), Some("*"));
    assert_eq!(
        head_value(&head, "cross-origin-resource-policy"),
        Some("cross-origin")
    );
    let manifest = akidb_core::Manifest::from_json(&body).unwrap();
    let blob = format!("/v1/blobs/sha256/{}", manifest.files[0].sha256);
    let (status, head, _) = http_request(&addr, "GET", &blob, &origin, b"");
    assert_eq!(status, 200);
    assert_eq!(head_value(&head, "access-control-allow-origin"), Some("*"));
    assert_eq!(
        head_value(&head, "cross-origin-resource-policy"),
        Some("cross-origin")
    );
}
