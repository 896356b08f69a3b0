//! Publishing signed bundles (issue #19): with trusted keys, a bundle's `manifest.json.sig` must verify
//! over the exact manifest bytes, checked before any blob is stored; without keys, publishing is as before.
//! Keys are made here (fresh seeds from the OS); none is committed.

mod common;

use std::io::Read;
use std::path::Path;

use akidb_core::signing::{PrivateKey, SignatureError, TrustedKeys, SIGNATURE_FILE};
use akidb_core::MANIFEST_FILE;
use common::*;
use model_server::publish::publish_dir_signed;
use model_server::{BlobHash, BlobStore, PublishError};

fn new_key() -> PrivateKey {
    let mut seed = [0u8; 32];
    std::fs::File::open("/dev/urandom")
        .and_then(|mut f| f.read_exact(&mut seed))
        .unwrap();
    PrivateKey::from_seed(seed)
}

fn trust(keys: &[&PrivateKey]) -> TrustedKeys {
    TrustedKeys::from_keys(keys.iter().map(|k| k.public_key()).collect())
}

fn sign(key: &PrivateKey, bundle: &Path) {
    let manifest = std::fs::read(bundle.join(MANIFEST_FILE)).unwrap();
    std::fs::write(bundle.join(SIGNATURE_FILE), key.sign_manifest(&manifest)).unwrap();
}

/// Publishes `bundle` into a fresh data dir under `trusted`; on a refusal, also checks that the store
/// holds none of the bundle's blobs and the registry no version.
fn publish(bundle: &Path, trusted: &TrustedKeys) -> Result<Option<String>, PublishError> {
    let data = tempfile::tempdir().unwrap();
    let (registry, store) = model_server::open_data_dir(data.path()).unwrap();
    let result = publish_dir_signed(&registry, &store, bundle, &["latest".into()], trusted);
    if result.is_err() {
        for file in ["model.onnx", "tokenizer.json", MANIFEST_FILE, SIGNATURE_FILE] {
            let Ok(bytes) = std::fs::read(bundle.join(file)) else {
                continue;
            };
            let size = store.size(&BlobHash::of(&bytes)).unwrap();
            assert_eq!(size, None, "{file} was stored although the publish was refused");
        }
        assert!(
            registry.models().unwrap().is_empty(),
            "a refused publish recorded a model"
        );
    }
    result.map(|(_, _, key_id)| key_id)
}

#[test]
fn a_bundle_signed_by_a_trusted_key_publishes_and_reports_its_key_id() {
    let tmp = tempfile::tempdir().unwrap();
    let bundle = write_real_bundle(tmp.path(), "m", "1.0.0", 1);
    let key = new_key();
    sign(&key, &bundle);
    assert_eq!(
        publish(&bundle, &trust(&[&key])).unwrap().as_deref(),
        Some(key.key_id())
    );
}

#[test]
fn without_trusted_keys_an_unsigned_bundle_publishes_as_before() {
    let tmp = tempfile::tempdir().unwrap();
    let bundle = write_real_bundle(tmp.path(), "m", "1.0.0", 2);
    assert_eq!(publish(&bundle, &TrustedKeys::none()).unwrap(), None);
}

#[test]
fn missing_untrusted_and_changed_are_refused_before_any_blob_is_stored() {
    let tmp = tempfile::tempdir().unwrap();
    let bundle = write_real_bundle(tmp.path(), "m", "1.0.0", 3);
    let manifest_path = bundle.join(MANIFEST_FILE).display().to_string();
    let (key, stranger) = (new_key(), new_key());
    let trusted = trust(&[&key]);

    let err = publish(&bundle, &trusted).unwrap_err();
    assert!(
        matches!(&err, PublishError::Signature(SignatureError::Missing { .. })),
        "{err}"
    );
    assert!(err.to_string().contains(&manifest_path), "{err}");

    sign(&stranger, &bundle);
    let err = publish(&bundle, &trusted).unwrap_err();
    assert!(
        matches!(&err, PublishError::Signature(SignatureError::UntrustedKey { .. })),
        "{err}"
    );
    assert!(err.to_string().contains(stranger.key_id()), "{err}");

    // One changed byte: the version 1.0.0 -> 1.0.1, still a valid manifest whose files all match.
    sign(&key, &bundle);
    let manifest = std::fs::read_to_string(bundle.join(MANIFEST_FILE)).unwrap();
    assert_eq!(manifest.matches("\"1.0.0\"").count(), 1);
    std::fs::write(
        bundle.join(MANIFEST_FILE),
        manifest.replace("\"1.0.0\"", "\"1.0.1\""),
    )
    .unwrap();
    let err = publish(&bundle, &trusted).unwrap_err();
    assert!(
        matches!(&err, PublishError::Signature(SignatureError::BadSignature { .. })),
        "{err}"
    );
    assert!(
        err.to_string().contains(key.key_id()) && err.to_string().contains(&manifest_path),
        "{err}"
    );
}

#[test]
fn a_rotated_key_set_accepts_either_key_and_a_removed_key_is_revoked() {
    let tmp = tempfile::tempdir().unwrap();
    let bundle = write_real_bundle(tmp.path(), "m", "1.0.0", 4);
    let (old, new) = (new_key(), new_key());
    for key in [&old, &new] {
        sign(key, &bundle);
        assert_eq!(
            publish(&bundle, &trust(&[&old, &new])).unwrap().as_deref(),
            Some(key.key_id())
        );
    }
    sign(&old, &bundle);
    let err = publish(&bundle, &trust(&[&new])).unwrap_err();
    assert!(
        matches!(&err, PublishError::Signature(SignatureError::UntrustedKey { .. })),
        "{err}"
    );
}

// ---- Over HTTP: the signature route, key ids in listings, and the signed publish (Akidb-Signature). ----

use axum::body::Body;
use axum::http::{Request, StatusCode};
use model_server::Config;

const IMMUTABLE: &str = "public, max-age=31536000, immutable";
const SHORT_LIVED: &str = "public, max-age=60, stale-while-revalidate=300";

fn base64(bytes: &[u8]) -> String {
    use base64::Engine as _;
    base64::engine::general_purpose::STANDARD.encode(bytes)
}

/// A writable in-process server with `trusted` keys.
fn server(data: &Path, trusted: TrustedKeys) -> axum::Router {
    app(
        data,
        Config {
            trusted_keys: trusted,
            ..writable()
        },
    )
}

/// A model and tokenizer (variant `seed`) uploaded as blobs; returns the manifest of `m@version` over them.
async fn upload_files(app: &axum::Router, version: &str, seed: u8) -> Vec<u8> {
    let (model, tokenizer) = (model_variant(seed, 1000), tokenizer_variant(seed as usize));
    for blob in [&model, &tokenizer] {
        let uri = format!("/v1/blobs/sha256/{}", akidb_core::sha256_hex(blob));
        let (res, body) = send(
            app,
            authed(Request::put(uri)).body(Body::from(blob.clone())).unwrap(),
        )
        .await;
        assert!(res.status().is_success(), "{}", String::from_utf8_lossy(&body));
    }
    manifest_for("m", version, &model, &tokenizer).to_json()
}

/// `PUT` the manifest of `m@version`, with `signature` (the bytes of a manifest.json.sig) in the header.
async fn put_manifest(
    app: &axum::Router,
    version: &str,
    manifest: &[u8],
    signature: Option<&[u8]>,
) -> (StatusCode, serde_json::Value) {
    let mut req = authed(Request::put(format!("/v1/models/m/{version}/manifest.json")));
    if let Some(sig) = signature {
        req = req.header("akidb-signature", base64(sig));
    }
    let (res, body) = send(app, req.body(Body::from(manifest.to_vec())).unwrap()).await;
    (res.status(), json(&body))
}

/// Points alias `latest` of `m` at `version`; panics unless it was moved.
async fn set_latest(app: &axum::Router, version: &str) {
    let body = format!(r#"{{"version":"{version}"}}"#);
    let (res, body) = send(
        app,
        authed(Request::put("/v1/models/m/aliases/latest"))
            .body(Body::from(body))
            .unwrap(),
    )
    .await;
    assert_eq!(res.status(), StatusCode::OK, "{}", String::from_utf8_lossy(&body));
}

/// A refused publish recorded nothing: no model, and the manifest is not stored as a blob.
async fn nothing_published(app: &axum::Router, manifest: &[u8]) {
    assert_eq!(get(app, "/v1/models/m").await.0.status(), StatusCode::NOT_FOUND);
    let blob = format!("/v1/blobs/sha256/{}", akidb_core::sha256_hex(manifest));
    assert_eq!(get(app, &blob).await.0.status(), StatusCode::NOT_FOUND);
}

#[tokio::test]
async fn the_signature_is_served_by_version_and_alias_and_its_key_id_listed() {
    let tmp = tempfile::tempdir().unwrap();
    let key = new_key();
    let app = server(&tmp.path().join("data"), trust(&[&key]));
    let manifest = upload_files(&app, "1.0.0", 11).await;
    let signature = key.sign_manifest(&manifest);
    let (status, body) = put_manifest(&app, "1.0.0", &manifest, Some(&signature)).await;
    assert_eq!(status, StatusCode::CREATED, "{body}");
    assert_eq!(body["key_id"], key.key_id());
    set_latest(&app, "1.0.0").await;

    let etag = format!("\"{}\"", akidb_core::sha256_hex(&signature));
    for (uri, cache) in [
        ("/v1/models/m/1.0.0/manifest.json.sig", IMMUTABLE),
        ("/v1/models/m/latest/manifest.json.sig", SHORT_LIVED),
    ] {
        let (res, body) = get(&app, uri).await;
        assert_eq!(res.status(), StatusCode::OK, "{uri}");
        assert_eq!(body, signature, "{uri} serves the signature byte for byte");
        assert_eq!(header(&res, "cache-control"), Some(cache), "{uri}");
        assert_eq!(header(&res, "etag"), Some(etag.as_str()), "{uri}");
        assert_eq!(header(&res, "content-type"), Some("application/json"), "{uri}");
        assert_eq!(
            header(&res, "content-location"),
            Some("/v1/models/m/1.0.0/manifest.json.sig"),
            "{uri}"
        );
        assert_eq!(header(&res, "x-model-version"), Some("1.0.0"), "{uri}");
        let (res, body) = get_with(&app, uri, &[("if-none-match", &etag)]).await;
        assert_eq!(res.status(), StatusCode::NOT_MODIFIED, "{uri}");
        assert!(body.is_empty());
    }
    // What a client fetches verifies under the publisher's key.
    let (_, served_manifest) = get(&app, "/v1/models/m/latest/manifest.json").await;
    let (_, served_signature) = get(&app, "/v1/models/m/latest/manifest.json.sig").await;
    assert_eq!(
        trust(&[&key])
            .verify_manifest(&served_manifest, Some(&served_signature), "served")
            .unwrap()
            .as_deref(),
        Some(key.key_id())
    );

    let (_, body) = get(&app, "/v1/models").await;
    assert_eq!(json(&body)["models"][0]["key_ids"]["1.0.0"], key.key_id());
    let (_, body) = get(&app, "/v1/models/m").await;
    let version = &json(&body)["versions"][0];
    assert_eq!(version["key_id"], key.key_id());
    assert_eq!(version["signature_url"], "/v1/models/m/1.0.0/manifest.json.sig");
}

#[tokio::test]
async fn an_unsigned_version_has_no_signature_a_json_404_and_a_null_key_id() {
    let tmp = tempfile::tempdir().unwrap();
    let app = server(&tmp.path().join("data"), TrustedKeys::none());
    let manifest = upload_files(&app, "1.0.0", 12).await;
    let (status, body) = put_manifest(&app, "1.0.0", &manifest, None).await;
    assert_eq!(status, StatusCode::CREATED, "{body}");
    assert_eq!(body["key_id"], serde_json::Value::Null);
    set_latest(&app, "1.0.0").await;
    for uri in [
        "/v1/models/m/1.0.0/manifest.json.sig",
        "/v1/models/m/latest/manifest.json.sig",
        "/v1/models/m/9.9.9/manifest.json.sig",
        "/v1/models/nope/1.0.0/manifest.json.sig",
    ] {
        let (res, body) = get(&app, uri).await;
        assert_eq!(res.status(), StatusCode::NOT_FOUND, "{uri}");
        assert_eq!(header(&res, "cache-control"), Some("no-store"), "{uri}");
        assert_eq!(json(&body)["error"]["type"], "not_found", "{uri}");
    }
    let (_, body) = get(&app, "/v1/models/m/latest/manifest.json.sig").await;
    let message = json(&body)["error"]["message"].as_str().unwrap().to_owned();
    assert!(
        message.contains("m@1.0.0") && message.contains("without a signature"),
        "{message}"
    );

    let (_, body) = get(&app, "/v1/models").await;
    assert_eq!(json(&body)["models"][0]["key_ids"], serde_json::json!({}));
    let (_, body) = get(&app, "/v1/models/m").await;
    let version = &json(&body)["versions"][0];
    assert!(
        version["key_id"].is_null() && version["signature_url"].is_null(),
        "{version}"
    );
}

#[tokio::test]
async fn with_trusted_keys_an_http_publish_that_is_unsigned_untrusted_changed_or_revoked_is_refused() {
    let tmp = tempfile::tempdir().unwrap();
    let (key, stranger) = (new_key(), new_key());
    let app = server(&tmp.path().join("data"), trust(&[&key]));
    let manifest = upload_files(&app, "1.0.0", 13).await;
    let manifest_url = "/v1/models/m/1.0.0/manifest.json";
    // One changed byte: signed as 1.0.0, sent as 1.0.1 (a valid manifest whose blobs are all present).
    let text = String::from_utf8(manifest.clone()).unwrap();
    assert_eq!(text.matches("\"1.0.0\"").count(), 1);
    let changed = text.replace("\"1.0.0\"", "\"1.0.1\"").into_bytes();
    // Revoked: the key was trusted by an earlier configuration, no longer.
    let revoked = server(&tmp.path().join("data"), trust(&[&stranger]));
    let signed_by = |k: &PrivateKey| Some(k.sign_manifest(&manifest));
    // Each refused with a 422 whose message names the key and the manifest's URL; nothing published.
    for (case, app, version, bytes, signature, needles) in [
        (
            "unsigned",
            &app,
            "1.0.0",
            &manifest,
            None,
            vec!["not signed", manifest_url],
        ),
        (
            "untrusted",
            &app,
            "1.0.0",
            &manifest,
            signed_by(&stranger),
            vec![stranger.key_id(), manifest_url, "not among the trusted keys"],
        ),
        (
            "changed",
            &app,
            "1.0.1",
            &changed,
            signed_by(&key),
            vec![
                key.key_id(),
                "/v1/models/m/1.0.1/manifest.json",
                "does not verify",
            ],
        ),
        (
            "revoked",
            &revoked,
            "1.0.0",
            &manifest,
            signed_by(&key),
            vec![key.key_id(), manifest_url],
        ),
    ] {
        let (status, body) = put_manifest(app, version, bytes, signature.as_deref()).await;
        assert_eq!(status, StatusCode::UNPROCESSABLE_ENTITY, "{case}: {body}");
        let message = body["error"]["message"].as_str().unwrap();
        for n in needles {
            assert!(message.contains(n), "{case}: {message} lacks {n}");
        }
        nothing_published(app, bytes).await;
    }

    // Not base64: 400, before anything else.
    let (res, body) = send(
        &app,
        authed(Request::put(manifest_url))
            .header("akidb-signature", "%%% not base64 %%%")
            .body(Body::from(manifest.clone()))
            .unwrap(),
    )
    .await;
    assert_eq!(
        res.status(),
        StatusCode::BAD_REQUEST,
        "{}",
        String::from_utf8_lossy(&body)
    );
    assert!(String::from_utf8_lossy(&body).contains("akidb-signature"));
    nothing_published(&app, &manifest).await;

    // The same manifest, properly signed, publishes.
    let (status, body) = put_manifest(&app, "1.0.0", &manifest, Some(&key.sign_manifest(&manifest))).await;
    assert_eq!(status, StatusCode::CREATED, "{body}");
}

#[tokio::test]
async fn a_rotated_key_set_accepts_http_publishes_signed_by_either_key() {
    let tmp = tempfile::tempdir().unwrap();
    let (old, new) = (new_key(), new_key());
    let app = server(&tmp.path().join("data"), trust(&[&old, &new]));
    for (version, key, seed) in [("1.0.0", &old, 14), ("2.0.0", &new, 15)] {
        let manifest = upload_files(&app, version, seed).await;
        let (status, body) =
            put_manifest(&app, version, &manifest, Some(&key.sign_manifest(&manifest))).await;
        assert_eq!(status, StatusCode::CREATED, "{body}");
        assert_eq!(body["key_id"], key.key_id());
    }
    let (_, body) = get(&app, "/v1/models").await;
    assert_eq!(
        json(&body)["models"][0]["key_ids"],
        serde_json::json!({"1.0.0": old.key_id(), "2.0.0": new.key_id()})
    );
}

#[tokio::test]
async fn without_trusted_keys_a_given_signature_is_stored_and_served_as_given() {
    let tmp = tempfile::tempdir().unwrap();
    let key = new_key();
    let app = server(&tmp.path().join("data"), TrustedKeys::none());
    let manifest = upload_files(&app, "1.0.0", 16).await;
    // Not even the shape of a signature file: refused rather than served to clients.
    let (status, body) = put_manifest(&app, "1.0.0", &manifest, Some(b"not a signature")).await;
    assert_eq!(status, StatusCode::UNPROCESSABLE_ENTITY, "{body}");
    nothing_published(&app, &manifest).await;
    let signature = key.sign_manifest(&manifest);
    let (status, body) = put_manifest(&app, "1.0.0", &manifest, Some(&signature)).await;
    assert_eq!(status, StatusCode::CREATED, "{body}");
    assert_eq!(body["key_id"], key.key_id());
    let (res, body) = get(&app, "/v1/models/m/1.0.0/manifest.json.sig").await;
    assert_eq!(res.status(), StatusCode::OK);
    assert_eq!(body, signature);
}

#[tokio::test]
async fn a_bundle_published_from_a_directory_serves_its_signature() {
    let tmp = tempfile::tempdir().unwrap();
    let bundle = write_real_bundle(tmp.path(), "m", "1.0.0", 17);
    let key = new_key();
    sign(&key, &bundle);
    let data = tmp.path().join("data");
    {
        let (registry, store) = model_server::open_data_dir(&data).unwrap();
        publish_dir_signed(&registry, &store, &bundle, &[], &trust(&[&key])).unwrap();
    }
    let app = server(&data, TrustedKeys::none());
    let (res, body) = get(&app, "/v1/models/m/1.0.0/manifest.json.sig").await;
    assert_eq!(res.status(), StatusCode::OK);
    assert_eq!(body, std::fs::read(bundle.join(SIGNATURE_FILE)).unwrap());
}

// ---- The real binary: `publish --trusted-keys` and `serve --trusted-keys`, keys from `akidb keygen`. ----

fn model_server(args: &[&str]) -> std::process::Output {
    std::process::Command::new(env!("CARGO_BIN_EXE_model-server"))
        .args(args)
        .env_remove("MODEL_SERVER_TEST_PAUSE")
        .output()
        .unwrap()
}

fn stderr_of(out: &std::process::Output) -> String {
    String::from_utf8_lossy(&out.stderr).into_owned()
}

#[test]
fn the_cli_publish_and_serve_take_trusted_keys_and_refuse_an_empty_list() {
    let tmp = tempfile::tempdir().unwrap();
    let s = |p: &Path| p.to_str().unwrap().to_owned();
    let (key, stranger) = (
        akidb_keygen(tmp.path(), "release"),
        akidb_keygen(tmp.path(), "stranger"),
    );
    let trust = trust_file(tmp.path(), "trusted.json", &[&key]);
    let empty = trust_file(tmp.path(), "empty.json", &[]);
    let data = tmp.path().join("data");
    let bundle = write_real_bundle(tmp.path(), "m", "1.0.0", 21);
    let publish = |trust: &Path| {
        model_server(&[
            "publish",
            "--data",
            &s(&data),
            &s(&bundle),
            "--trusted-keys",
            &s(trust),
        ])
    };

    let out = publish(&empty);
    assert!(!out.status.success());
    assert!(stderr_of(&out).contains("lists no keys"), "{}", stderr_of(&out));
    let out = publish(&trust);
    assert!(!out.status.success());
    assert!(stderr_of(&out).contains("is not signed"), "{}", stderr_of(&out));
    akidb_sign(&stranger, &bundle);
    let out = publish(&trust);
    assert!(!out.status.success());
    assert!(stderr_of(&out).contains(&stranger.id), "{}", stderr_of(&out));
    {
        let (registry, _) = model_server::open_data_dir(&data).unwrap();
        assert!(
            registry.models().unwrap().is_empty(),
            "a refused publish recorded a version"
        );
    }
    akidb_sign(&key, &bundle);
    let out = publish(&trust);
    assert!(out.status.success(), "{}", stderr_of(&out));
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(stdout.contains(&format!("signed by key {}", key.id)), "{stdout}");

    let addr = free_addr();
    let serve = |trust: &Path| {
        let mut serve = std::process::Command::new(env!("CARGO_BIN_EXE_model-server"));
        serve.args([
            "serve",
            "--data",
            &s(&data),
            "--addr",
            &addr,
            "--trusted-keys",
            &s(trust),
        ]);
        Spawned::spawn(serve)
    };
    let mut refused = serve(&empty);
    assert!(!refused.wait_timeout(READY_TIMEOUT).success());
    assert!(refused.output().contains("lists no keys"), "{}", refused.output());

    let mut server = serve(&trust);
    server.wait_ready(&addr, "/healthz", READY_TIMEOUT);
    let (status, _, body) = http_request(&addr, "GET", "/v1/models/m/1.0.0/manifest.json.sig", &[], b"");
    drop(server);
    assert_eq!(status, 200);
    assert_eq!(body, std::fs::read(bundle.join(SIGNATURE_FILE)).unwrap());
}
