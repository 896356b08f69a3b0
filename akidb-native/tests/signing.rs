//! Signed bundles through the real `akidb` binary (issue #19): `akidb keygen`, `akidb bundle sign`, and
//! `--trusted-keys` on `bundle verify`, `embed`, `bench` and `serve --bundle-url` (against a real HTTP
//! server on loopback). Keys are made here, in temporary directories; none is committed.

use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};
use std::process::{Command, Output};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use akidb_testkit::net::free_addr;
use akidb_testkit::paths;
use akidb_testkit::process::Spawned;

fn akidb(args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_akidb"))
        .args(args)
        .output()
        .expect("akidb runs")
}

fn text(bytes: &[u8]) -> String {
    String::from_utf8_lossy(bytes).into_owned()
}

fn ok(out: Output) -> Output {
    assert!(
        out.status.success(),
        "expected success; stderr: {}",
        text(&out.stderr)
    );
    out
}

/// Fails, writes nothing to stdout, and its stderr holds every needle.
fn refused(out: &Output, needles: &[&str]) {
    let err = text(&out.stderr);
    assert!(!out.status.success(), "expected a refusal; stderr: {err}");
    assert!(
        out.stdout.is_empty(),
        "wrote to stdout despite failing: {}",
        text(&out.stdout)
    );
    for n in needles {
        assert!(err.contains(n), "stderr lacks {n:?}: {err}");
    }
}

fn s(p: &Path) -> &str {
    p.to_str().unwrap()
}

/// A copy of the int8 bundle (the three files; no signature).
fn copy_bundle(to: &Path) -> PathBuf {
    let src = paths::int8_bundle();
    let dst = to.join("bundle");
    std::fs::create_dir_all(&dst).unwrap();
    for f in ["manifest.json", "model.onnx", "tokenizer.json"] {
        std::fs::copy(src.join(f), dst.join(f))
            .unwrap_or_else(|e| panic!("{}: {e} (run scripts/fetch-models.sh)", src.join(f).display()));
    }
    dst
}

struct Key {
    private: PathBuf,
    public: PathBuf,
    id: String,
}

fn keygen(dir: &Path, name: &str) -> Key {
    let out = ok(akidb(&["keygen", "--out", s(dir), "--name", name]));
    Key {
        private: dir.join(format!("{name}.key")),
        public: dir.join(format!("{name}.pub")),
        id: text(&out.stdout).trim().to_string(),
    }
}

/// A trust file listing `keys` (their .pub files' contents).
fn trust_file(dir: &Path, name: &str, keys: &[&Key]) -> PathBuf {
    let entries: Vec<serde_json::Value> = keys
        .iter()
        .map(|k| serde_json::from_slice(&std::fs::read(&k.public).unwrap()).unwrap())
        .collect();
    let path = dir.join(name);
    std::fs::write(&path, serde_json::json!({ "keys": entries }).to_string()).unwrap();
    path
}

fn sign(key: &Key, bundle: &Path) {
    ok(akidb(&["bundle", "sign", "--key", s(&key.private), s(bundle)]));
}

fn verify(bundle: &Path, trust: &Path) -> Output {
    akidb(&["bundle", "verify", s(bundle), "--trusted-keys", s(trust)])
}

/// Changes one byte of the manifest so that it still parses and still matches every file's hash: only
/// the signature can tell.
fn change_one_byte(manifest: &Path) {
    let bytes = std::fs::read(manifest).unwrap();
    let at = text(&bytes)
        .find("1.0.0-int8")
        .expect("the int8 manifest's version")
        + "1.0.0-int".len();
    let mut changed = bytes;
    changed[at] = b'9';
    std::fs::write(manifest, changed).unwrap();
}

#[test]
fn keygen_writes_a_0600_private_key_never_printed_and_a_public_key() {
    let dir = tempfile::tempdir().unwrap();
    let out = ok(akidb(&["keygen", "--out", s(dir.path()), "--name", "release"]));
    let key_id = text(&out.stdout).trim().to_string();
    assert_eq!(key_id.len(), 16, "{key_id}");
    assert!(key_id.bytes().all(|b| b.is_ascii_hexdigit()), "{key_id}");

    let private_path = dir.path().join("release.key");
    let mode = std::fs::metadata(&private_path).unwrap().permissions().mode() & 0o777;
    assert_eq!(mode, 0o600, "private key mode {mode:o}");
    let private: serde_json::Value = serde_json::from_slice(&std::fs::read(&private_path).unwrap()).unwrap();
    assert_eq!(private["kind"], "akidb-ed25519-private-key");
    assert_eq!(private["key_id"], key_id.as_str());
    let secret = private["private_key"].as_str().unwrap();
    assert_eq!(secret.len(), 44, "base64 of 32 bytes");
    assert!(!text(&out.stdout).contains(secret) && !text(&out.stderr).contains(secret));

    let public: serde_json::Value =
        serde_json::from_slice(&std::fs::read(dir.path().join("release.pub")).unwrap()).unwrap();
    assert_eq!(public["kind"], "akidb-ed25519-public-key");
    assert_eq!(public["key_id"], key_id.as_str());

    // A second keygen under the same name is refused and leaves the first key as it was.
    let before = std::fs::read(&private_path).unwrap();
    refused(
        &akidb(&["keygen", "--out", s(dir.path()), "--name", "release"]),
        &["release.key"],
    );
    assert_eq!(std::fs::read(&private_path).unwrap(), before);
}

#[test]
fn a_private_key_readable_by_group_or_others_is_refused() {
    let dir = tempfile::tempdir().unwrap();
    let bundle = copy_bundle(dir.path());
    let key = keygen(dir.path(), "k");
    for mode in [0o644, 0o640, 0o604] {
        std::fs::set_permissions(&key.private, std::fs::Permissions::from_mode(mode)).unwrap();
        let out = akidb(&["bundle", "sign", "--key", s(&key.private), s(&bundle)]);
        refused(&out, &[s(&key.private), &format!("{mode:04o}")]);
        assert!(!bundle.join("manifest.json.sig").exists());
    }
    std::fs::set_permissions(&key.private, std::fs::Permissions::from_mode(0o600)).unwrap();
    sign(&key, &bundle);
    assert!(bundle.join("manifest.json.sig").exists());
}

#[test]
fn a_signed_bundle_verifies_and_a_changed_byte_is_refused() {
    let dir = tempfile::tempdir().unwrap();
    let bundle = copy_bundle(dir.path());
    let key = keygen(dir.path(), "k");
    let trust = trust_file(dir.path(), "trust.json", &[&key]);
    sign(&key, &bundle);
    let sig: serde_json::Value =
        serde_json::from_slice(&std::fs::read(bundle.join("manifest.json.sig")).unwrap()).unwrap();
    assert_eq!(sig["algorithm"], "ed25519");
    assert_eq!(sig["key_id"], key.id.as_str());

    let out = ok(verify(&bundle, &trust));
    assert!(
        text(&out.stdout).contains(&format!("signature: ok, key {}", key.id)),
        "{}",
        text(&out.stdout)
    );
    // Without --trusted-keys nothing is checked, and verify says so.
    let out = ok(akidb(&["bundle", "verify", s(&bundle)]));
    assert!(text(&out.stdout).contains("signature: not checked"));

    change_one_byte(&bundle.join("manifest.json"));
    let manifest = bundle.join("manifest.json");
    // The files still match the changed manifest: only the signature catches it.
    ok(akidb(&["bundle", "verify", s(&bundle)]));
    refused(
        &verify(&bundle, &trust),
        &[&key.id, s(&manifest), "does not verify"],
    );
    refused(
        &akidb(&[
            "embed",
            "--bundle",
            s(&bundle),
            "--trusted-keys",
            s(&trust),
            "hello",
        ]),
        &[&key.id, s(&manifest)],
    );
    refused(
        &akidb(&[
            "bench",
            "--bundle",
            s(&bundle),
            "--trusted-keys",
            s(&trust),
            "--single-runs",
            "1",
        ]),
        &[&key.id, s(&manifest)],
    );
}

#[test]
fn an_untrusted_key_and_a_missing_signature_are_refused() {
    let dir = tempfile::tempdir().unwrap();
    let bundle = copy_bundle(dir.path());
    let (signer, other) = (keygen(dir.path(), "signer"), keygen(dir.path(), "other"));
    let trust_other = trust_file(dir.path(), "trust.json", &[&other]);
    let manifest = bundle.join("manifest.json");

    refused(&verify(&bundle, &trust_other), &[s(&manifest), "not signed"]);
    refused(
        &akidb(&[
            "embed",
            "--bundle",
            s(&bundle),
            "--trusted-keys",
            s(&trust_other),
            "hi",
        ]),
        &[s(&manifest), "not signed"],
    );

    sign(&signer, &bundle);
    refused(
        &verify(&bundle, &trust_other),
        &[&signer.id, s(&manifest), "not among the trusted keys"],
    );
    let out = ok(akidb(&[
        "embed",
        "--bundle",
        s(&bundle),
        "--trusted-keys",
        s(&trust_file(dir.path(), "t2.json", &[&signer])),
        "hi",
    ]));
    assert_eq!(text(&out.stdout).lines().count(), 1);
}

#[test]
fn a_rotated_key_set_accepts_either_key_and_a_removed_key_is_revoked() {
    let dir = tempfile::tempdir().unwrap();
    let bundle = copy_bundle(dir.path());
    let (old, new) = (keygen(dir.path(), "old"), keygen(dir.path(), "new"));
    let both = trust_file(dir.path(), "both.json", &[&old, &new]);
    for key in [&old, &new] {
        sign(key, &bundle);
        let out = ok(verify(&bundle, &both));
        assert!(text(&out.stdout).contains(&key.id), "{}", text(&out.stdout));
    }
    // Revocation: the old key removed from the list.
    let only_new = trust_file(dir.path(), "only-new.json", &[&new]);
    sign(&old, &bundle);
    refused(
        &verify(&bundle, &only_new),
        &[&old.id, "not among the trusted keys"],
    );
    sign(&new, &bundle);
    ok(verify(&bundle, &only_new));
}

#[test]
fn bad_trust_files_are_refused_naming_the_file() {
    let dir = tempfile::tempdir().unwrap();
    let bundle = copy_bundle(dir.path());
    let key = keygen(dir.path(), "k");
    let cases = [
        ("empty.json", r#"{"keys":[]}"#.to_string(), "lists no keys"),
        ("junk.json", "not json".to_string(), "not a trusted-keys list"),
        (
            "wrong-id.json",
            {
                let mut entry: serde_json::Value =
                    serde_json::from_slice(&std::fs::read(&key.public).unwrap()).unwrap();
                entry["key_id"] = "0123456789abcdef".into();
                serde_json::json!({ "keys": [entry] }).to_string()
            },
            "does not match",
        ),
    ];
    for (name, contents, needle) in cases {
        let path = dir.path().join(name);
        std::fs::write(&path, contents).unwrap();
        refused(&verify(&bundle, &path), &[s(&path), needle]);
    }
}

/// A static HTTP server on loopback over `dir` (`/b/<file>`), recording the paths asked for.
async fn static_server(dir: PathBuf) -> (String, Arc<Mutex<Vec<String>>>) {
    use axum::extract::{Path as UrlPath, State};
    use axum::http::StatusCode;
    let asked = Arc::new(Mutex::new(Vec::new()));
    let state = (dir, asked.clone());
    let app = axum::Router::new()
        .route(
            "/b/{file}",
            axum::routing::get(
                |State((dir, asked)): State<(PathBuf, Arc<Mutex<Vec<String>>>)>,
                 UrlPath(file): UrlPath<String>| async move {
                    asked.lock().unwrap().push(file.clone());
                    std::fs::read(dir.join(&file)).map_err(|_| StatusCode::NOT_FOUND)
                },
            ),
        )
        .with_state(state);
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    tokio::spawn(async move { axum::serve(listener, app).await.unwrap() });
    (format!("http://{addr}/b/manifest.json"), asked)
}

/// `akidb serve --bundle-url URL --trusted-keys FILE` until it exits (a refused bundle) or 30 s pass.
async fn serve_until_exit(url: &str, trust: &Path) -> Output {
    let child = tokio::process::Command::new(env!("CARGO_BIN_EXE_akidb"))
        .args([
            "serve",
            "--bundle-url",
            url,
            "--trusted-keys",
            s(trust),
            "--fetch-timeout-s",
            "5",
        ])
        .args(["--addr", &free_addr()])
        .kill_on_drop(true)
        .output();
    tokio::time::timeout(Duration::from_secs(30), child)
        .await
        .expect("akidb serve did not refuse the bundle within 30 s")
        .unwrap()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn serve_bundle_url_refuses_unsigned_tampered_and_untrusted_bundles_before_downloading_them() {
    let dir = tempfile::tempdir().unwrap();
    let bundle = copy_bundle(dir.path());
    let (key, stranger) = (keygen(dir.path(), "k"), keygen(dir.path(), "stranger"));
    let trust = trust_file(dir.path(), "trust.json", &[&key]);
    let (url, asked) = static_server(bundle.clone()).await;

    // Unsigned: the .sig is a 404.
    let out = serve_until_exit(&url, &trust).await;
    refused(&out, &[&url, "not signed"]);
    assert_eq!(
        *asked.lock().unwrap(),
        ["manifest.json", "manifest.json.sig"],
        "no model file fetched"
    );

    // Signed by a key not in the list.
    sign(&stranger, &bundle);
    refused(
        &serve_until_exit(&url, &trust).await,
        &[&url, &stranger.id, "not among the trusted keys"],
    );

    // Signed by the trusted key, then one byte of the manifest changed on the server.
    sign(&key, &bundle);
    change_one_byte(&bundle.join("manifest.json"));
    asked.lock().unwrap().clear();
    refused(
        &serve_until_exit(&url, &trust).await,
        &[&url, &key.id, "does not verify"],
    );
    assert!(
        !asked.lock().unwrap().iter().any(|p| p == "model.onnx"),
        "the model was downloaded"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn serve_bundle_url_loads_a_bundle_signed_by_a_trusted_key() {
    let dir = tempfile::tempdir().unwrap();
    let bundle = copy_bundle(dir.path());
    let key = keygen(dir.path(), "k");
    let trust = trust_file(dir.path(), "trust.json", &[&key]);
    sign(&key, &bundle);
    let (url, _) = static_server(bundle).await;
    let addr = free_addr();
    let mut command = Command::new(env!("CARGO_BIN_EXE_akidb"));
    command.args([
        "serve",
        "--bundle-url",
        &url,
        "--trusted-keys",
        s(&trust),
        "--addr",
        &addr,
    ]);
    let mut child = Spawned::spawn(command);
    tokio::task::block_in_place(|| child.wait_ready(&addr, "/readyz", Duration::from_secs(60)));
    let client = reqwest::Client::new();
    let r = client
        .post(format!("http://{addr}/v1/embed"))
        .json(&serde_json::json!({ "texts": ["signed and served"] }))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 200);
    drop(child); // killed
}
