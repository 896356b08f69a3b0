//! Hostile and careless input (issue #21): odd ranges, reserved names, compressed bodies, bearer-scheme
//! spelling, bundles that do not load, and `--static` confinement.

mod common;

use axum::body::Body;
use axum::http::{Request, StatusCode};
use common::*;
use model_server::{publish_dir, publish_manifest, BlobHash, BlobStore, Config, PublishError};

/// A data dir with `m@1.0.0` published (`latest`) and a 1,000-byte blob stored.
fn published() -> (tempfile::TempDir, std::path::PathBuf, Vec<u8>) {
    let tmp = tempfile::tempdir().unwrap();
    let data = tmp.path().join("data");
    let bundle = write_real_bundle(tmp.path(), "m", "1.0.0", 1);
    let (registry, store) = model_server::open_data_dir(&data).unwrap();
    publish_dir(&registry, &store, &bundle, &["latest".into()]).unwrap();
    let blob = bytes(4, 1000);
    store.put(&BlobHash::of(&blob), &mut &blob[..], 1000).unwrap();
    (tmp, data, blob)
}

#[tokio::test]
async fn ranges_past_u64_are_clamped_or_unsatisfiable() {
    let (_tmp, data, blob) = published();
    let app = app(&data, Config::default());
    let uri = format!("/v1/blobs/sha256/{}", akidb_core::sha256_hex(&blob));
    let range = |r: &str| Request::get(&uri).header("range", r).body(Body::empty()).unwrap();
    // An end past any length: the rest of the blob.
    let (res, body) = send(&app, range("bytes=0-999999999999999999999")).await;
    assert_eq!(res.status(), StatusCode::PARTIAL_CONTENT);
    assert_eq!(header(&res, "content-range"), Some("bytes 0-999/1000"));
    assert_eq!(body, blob);
    let (res, body) = send(&app, range("bytes=990-999999999999999999999")).await;
    assert_eq!(res.status(), StatusCode::PARTIAL_CONTENT);
    assert_eq!(body, &blob[990..]);
    // A start past any length: nothing is satisfiable.
    for r in [
        "bytes=999999999999999999999-",
        "bytes=999999999999999999999-999999999999999999999",
    ] {
        let (res, _) = send(&app, range(r)).await;
        assert_eq!(res.status(), StatusCode::RANGE_NOT_SATISFIABLE, "{r}");
        assert_eq!(header(&res, "content-range"), Some("bytes */1000"), "{r}");
    }
    // A suffix longer than any blob: the whole blob as a range.
    let (res, body) = send(&app, range("bytes=-999999999999999999999")).await;
    assert_eq!(res.status(), StatusCode::PARTIAL_CONTENT);
    assert_eq!(body, blob);
}

#[tokio::test]
async fn the_reserved_version_aliases_is_a_400() {
    let (_tmp, data, _) = published();
    let app = app(&data, writable());
    let (res, body) = get(&app, "/v1/models/m/aliases/manifest.json").await;
    assert_eq!(res.status(), StatusCode::BAD_REQUEST);
    assert!(
        String::from_utf8_lossy(&body).contains("reserved"),
        "{}",
        String::from_utf8_lossy(&body)
    );
    let manifest = manifest_for("m", "aliases", &model_variant(1, 1000), &tokenizer_variant(1)).to_json();
    let (res, _) = send(
        &app,
        authed(Request::put("/v1/models/m/aliases/manifest.json"))
            .body(Body::from(manifest))
            .unwrap(),
    )
    .await;
    assert_eq!(res.status(), StatusCode::BAD_REQUEST);
    // Nor can an alias be called `aliases` (its manifest URL would be the reserved one).
    let (res, _) = send(
        &app,
        authed(Request::put("/v1/models/m/aliases/aliases"))
            .body(Body::from(r#"{"version": "1.0.0"}"#))
            .unwrap(),
    )
    .await;
    assert_eq!(res.status(), StatusCode::BAD_REQUEST);
}

#[tokio::test]
async fn compressed_request_bodies_are_415() {
    let (_tmp, data, _) = published();
    let app = app(&data, writable());
    let blob = bytes(5, 100);
    let gz_body = vec![0x1f, 0x8b, 8, 0, 0, 0, 0, 0, 0, 3];
    for (uri, enc) in [
        (
            format!("/v1/blobs/sha256/{}", akidb_core::sha256_hex(&blob)),
            "gzip",
        ),
        ("/v1/models/m/1.0.0/manifest.json".into(), "gzip"),
        ("/v1/models/m/aliases/stable".into(), "br"),
        ("/v1/models/m/aliases/stable".into(), "gzip, identity"),
    ] {
        let (res, body) = send(
            &app,
            authed(Request::put(&uri))
                .header("content-encoding", enc)
                .body(Body::from(gz_body.clone()))
                .unwrap(),
        )
        .await;
        assert_eq!(res.status(), StatusCode::UNSUPPORTED_MEDIA_TYPE, "{uri} {enc}");
        assert!(
            json(&body)["error"]["message"]
                .to_string()
                .contains("Content-Encoding"),
            "{uri}"
        );
    }
    // `identity` is no encoding at all.
    let (res, _) = send(
        &app,
        authed(Request::put(format!(
            "/v1/blobs/sha256/{}",
            akidb_core::sha256_hex(&blob)
        )))
        .header("content-encoding", "identity")
        .body(Body::from(blob.clone()))
        .unwrap(),
    )
    .await;
    assert_eq!(res.status(), StatusCode::CREATED);
}

#[tokio::test]
async fn the_bearer_scheme_is_case_insensitive_and_the_token_exact() {
    let (_tmp, data, _) = published();
    let app = app(&data, writable());
    let put = |auth: String| {
        Request::put("/v1/models/m/aliases/stable")
            .header("authorization", auth)
            .body(Body::from(r#"{"version": "1.0.0"}"#))
            .unwrap()
    };
    for scheme in ["Bearer", "bearer", "BEARER", "bEaReR"] {
        let (res, body) = send(&app, put(format!("{scheme} {TOKEN}"))).await;
        assert_eq!(
            res.status(),
            StatusCode::OK,
            "{scheme}: {}",
            String::from_utf8_lossy(&body)
        );
    }
    for auth in [
        format!("Basic {TOKEN}"),
        format!("Bearer {TOKEN}x"),
        format!("Bearer {}", &TOKEN[..TOKEN.len() - 1]),
        format!("Bearer{TOKEN}"),
        TOKEN.to_owned(),
        "Bearer ".to_owned(),
    ] {
        let (res, _) = send(&app, put(auth.clone())).await;
        assert_eq!(res.status(), StatusCode::UNAUTHORIZED, "{auth}");
    }
}

/// Bundles whose hashes match but whose model does not load: garbage, empty, truncated.
fn unloadable_models() -> Vec<(&'static str, Vec<u8>)> {
    let model = model_variant(0, 0);
    vec![
        ("garbage", bytes(8, 5000)),
        ("empty", Vec::new()),
        ("truncated", model[..model.len() / 2].to_vec()),
    ]
}

#[test]
fn publish_refuses_a_model_that_does_not_load_and_stores_nothing() {
    for (what, model) in unloadable_models() {
        let tmp = tempfile::tempdir().unwrap();
        let bundle = write_bundle(tmp.path(), "m", "1.0.0", &model, &tokenizer_variant(0));
        let (registry, store) = model_server::open_data_dir(&tmp.path().join("data")).unwrap();
        let err = publish_dir(&registry, &store, &bundle, &[]).unwrap_err();
        assert!(matches!(err, PublishError::Unloadable(_)), "{what}: {err}");
        assert!(err.to_string().contains("model.onnx"), "{what}: {err}");
        assert!(registry.model("m").unwrap().is_none(), "{what}");
        assert_eq!(
            store.size(&BlobHash::of(&model)).unwrap(),
            None,
            "{what}: blob stored"
        );
    }
    // A tokenizer that does not load is refused the same way.
    let tmp = tempfile::tempdir().unwrap();
    let bundle = write_bundle(tmp.path(), "m", "1.0.0", &model_variant(0, 0), b"{}");
    let (registry, store) = model_server::open_data_dir(&tmp.path().join("data")).unwrap();
    let err = publish_dir(&registry, &store, &bundle, &[]).unwrap_err();
    assert!(matches!(err, PublishError::Unloadable(_)), "{err}");
}

#[tokio::test]
async fn http_publish_refuses_a_model_that_does_not_load() {
    let tmp = tempfile::tempdir().unwrap();
    let data = tmp.path().join("data");
    let app = app(&data, writable());
    let tok = tokenizer_variant(0);
    for (what, model) in unloadable_models() {
        for b in [&model, &tok] {
            let (res, _) = send(
                &app,
                authed(Request::put(format!(
                    "/v1/blobs/sha256/{}",
                    akidb_core::sha256_hex(b)
                )))
                .body(Body::from(b.clone()))
                .unwrap(),
            )
            .await;
            assert!(res.status().is_success(), "{what}");
        }
        let manifest = manifest_for("m", "1.0.0", &model, &tok).to_json();
        let (res, body) = send(
            &app,
            authed(Request::put("/v1/models/m/1.0.0/manifest.json"))
                .body(Body::from(manifest))
                .unwrap(),
        )
        .await;
        assert_eq!(res.status(), StatusCode::UNPROCESSABLE_ENTITY, "{what}");
        assert!(
            json(&body)["error"]["message"]
                .to_string()
                .contains("does not load"),
            "{what}: {}",
            String::from_utf8_lossy(&body)
        );
        assert_eq!(
            get(&app, "/v1/models/m").await.0.status(),
            StatusCode::NOT_FOUND,
            "{what}"
        );
    }
}

#[test]
fn publish_refuses_a_bad_name_before_storing_any_blob() {
    for (name, version) in [
        ("bad name", "1.0.0"),
        ("m", "aliases"),
        ("m", ".hidden"),
        ("../m", "1"),
    ] {
        let tmp = tempfile::tempdir().unwrap();
        let model = model_variant(3, 1000);
        let bundle = tmp.path().join("b");
        std::fs::create_dir_all(&bundle).unwrap();
        let m = manifest_for(name, version, &model, &tokenizer_variant(3));
        std::fs::write(bundle.join("model.onnx"), &model).unwrap();
        std::fs::write(bundle.join("tokenizer.json"), tokenizer_variant(3)).unwrap();
        std::fs::write(bundle.join("manifest.json"), m.to_json()).unwrap();
        let (registry, store) = model_server::open_data_dir(&tmp.path().join("data")).unwrap();
        let err = publish_dir(&registry, &store, &bundle, &[]).unwrap_err();
        assert!(
            err.to_string().contains("not allowed") || err.to_string().contains("reserved"),
            "{name}@{version}: {err}"
        );
        assert_eq!(
            store.size(&BlobHash::of(&model)).unwrap(),
            None,
            "{name}@{version}: blob stored"
        );
        // The same through the HTTP protocol's publish step: refused, nothing recorded.
        let err = publish_manifest(&registry, &store, &m.to_json(), &[]).unwrap_err();
        assert!(
            err.to_string().contains("not allowed") || err.to_string().contains("reserved"),
            "{err}"
        );
        assert_eq!(
            store.size(&BlobHash::of(&m.to_json())).unwrap(),
            None,
            "{name}@{version}: manifest blob stored"
        );
    }
}

/// A static site beside secrets, with symlinks pointing out of it and dotfiles in it.
fn hostile_site() -> (tempfile::TempDir, axum::Router) {
    let (tmp, data, _) = published();
    let site = tmp.path().join("site");
    std::fs::create_dir_all(site.join("sub")).unwrap();
    std::fs::create_dir_all(site.join(".git")).unwrap();
    std::fs::write(site.join("index.html"), "<h1>demo</h1>").unwrap();
    std::fs::write(site.join("sub/index.html"), "sub").unwrap();
    std::fs::write(site.join(".env"), "SECRET=1").unwrap();
    std::fs::write(site.join(".git/config"), "[core] secret").unwrap();
    std::fs::write(tmp.path().join("outside.txt"), "SECRET outside").unwrap();
    let link =
        |target: &std::path::Path, name: &str| std::os::unix::fs::symlink(target, site.join(name)).unwrap();
    link(std::path::Path::new("/etc/passwd"), "x");
    link(&data.join("registry.sqlite"), "db");
    link(&tmp.path().join("outside.txt"), "out.txt");
    link(tmp.path(), "up");
    link(&site.join(".env"), "env.txt");
    link(&site.join("index.html"), "home.html");
    let app = app(
        &data,
        Config {
            static_dir: Some(site),
            ..Config::default()
        },
    );
    (tmp, app)
}

#[tokio::test]
async fn static_files_are_confined_and_dotfiles_hidden() {
    let (_tmp, app) = hostile_site();
    for uri in [
        "/x",
        "/db",
        "/out.txt",
        "/up/outside.txt",
        "/up/data/registry.sqlite",
        "/env.txt",
        "/.env",
        "/.git/config",
        "/.git/",
        "/%2eenv",
        "/sub/..%2f.env",
        "/sub/%2e%2e/.env",
        "/..%2foutside.txt",
        "/missing.html",
    ] {
        let (res, body) = get(&app, uri).await;
        assert_eq!(res.status(), StatusCode::NOT_FOUND, "{uri}");
        assert_eq!(header(&res, "cache-control"), Some("no-store"), "{uri}");
        let text = String::from_utf8_lossy(&body);
        assert!(
            !text.contains("SECRET") && !text.contains("root:"),
            "{uri}: {text}"
        );
        assert!(json(&body)["error"]["message"].is_string(), "{uri}");
    }
    // What is inside and not hidden is served, a symlink within the site included (and a path through a
    // symlink out and back in, which resolves inside).
    for (uri, want) in [
        ("/", "<h1>demo</h1>"),
        ("/index.html", "<h1>demo</h1>"),
        ("/sub/", "sub"),
        ("/sub", "sub"),
        ("/home.html", "<h1>demo</h1>"),
        ("/up/site/index.html", "<h1>demo</h1>"),
    ] {
        let (res, body) = get(&app, uri).await;
        assert_eq!(res.status(), StatusCode::OK, "{uri}");
        assert_eq!(body, want.as_bytes(), "{uri}");
    }
    let (res, _) = send(&app, Request::delete("/index.html").body(Body::empty()).unwrap()).await;
    assert_eq!(res.status(), StatusCode::METHOD_NOT_ALLOWED);
}

#[test]
fn publish_names_the_data_directory_it_cannot_open() {
    let tmp = tempfile::tempdir().unwrap();
    let file = tmp.path().join("a-file");
    std::fs::write(&file, "not a directory").unwrap();
    let Err(err) = model_server::open_data_dir(&file) else {
        panic!("a file opened as a data directory")
    };
    assert!(
        format!("{err:#}").contains(&file.display().to_string()),
        "{err:#}"
    );
}
