//! In-process tests of every route, header and status of the router, each run against both blob stores
//! (`local::` and `s3::`, from one body: see `per_store!`), except the static site's, which is about
//! the local file system only.

mod common;

use axum::body::Body;
use axum::http::{Request, StatusCode};
use common::*;
use model_server::{publish_dir, BlobHash, Config};

const IMMUTABLE: &str = "public, max-age=31536000, immutable";
const SHORT: &str = "public, max-age=60, stale-while-revalidate=300";

struct Fixture {
    _tmp: tempfile::TempDir,
    data: std::path::PathBuf,
    store: Store,
    v1: std::path::PathBuf,
    v2: std::path::PathBuf,
    model1: Vec<u8>,
    /// A 100,000-byte blob stored directly (no version lists it), for the byte-range tests.
    blob: Vec<u8>,
}

/// A data dir and a blob store of `kind` with `m@1.0.0` and `m@2.0.0` published, `latest` -> 1.0.0, and
/// [`Fixture::blob`] stored.
fn fixture(kind: StoreKind) -> Fixture {
    let tmp = tempfile::tempdir().unwrap();
    let data = tmp.path().join("data");
    let model1 = model_variant(1, 1000);
    let v1 = write_bundle(tmp.path(), "m", "1.0.0", &model1, &tokenizer_variant(1));
    let v2 = write_bundle(
        tmp.path(),
        "m",
        "2.0.0",
        &model_variant(2, 500),
        &tokenizer_variant(2),
    );
    let store = Store::new(kind);
    let (registry, blobs) = store.open(&data);
    publish_dir(&registry, &*blobs, &v1, &["latest".into()]).unwrap();
    publish_dir(&registry, &*blobs, &v2, &[]).unwrap();
    let blob = bytes(1, 100_000);
    blobs
        .put(&BlobHash::of(&blob), &mut &blob[..], blob.len() as u64)
        .unwrap();
    Fixture {
        _tmp: tmp,
        data,
        store,
        v1,
        v2,
        model1,
        blob,
    }
}

impl Fixture {
    /// The router over the fixture's registry and store, as a server started with `config` serves it.
    fn app(&self, config: Config) -> axum::Router {
        self.store.app(&self.data, config)
    }
}

/// The value of the Prometheus sample `name{labels}` in `text` (labels in any order), if present.
fn sample(text: &str, name: &str, labels: &[(&str, &str)]) -> Option<f64> {
    let mut want: Vec<String> = labels.iter().map(|(k, v)| format!("{k}=\"{v}\"")).collect();
    want.sort();
    text.lines().find_map(|line| {
        let (series, value) = line.rsplit_once(' ')?;
        let (n, rest) = series.split_once('{')?;
        let mut got: Vec<String> = rest.strip_suffix('}')?.split(',').map(str::to_owned).collect();
        got.sort();
        (n == name && got == want).then(|| value.parse().ok())?
    })
}

/// Asserts that header `name` lists each of `items` (compared case-insensitively, as CORS lists are).
fn assert_lists(res: &axum::http::Response<Body>, name: &str, items: &[&str]) {
    let value = header(res, name)
        .unwrap_or_else(|| panic!("no {name} header"))
        .to_ascii_lowercase();
    for item in items {
        assert!(
            value.contains(&item.to_ascii_lowercase()),
            "{name}: {value:?} lacks {item}"
        );
    }
}

/// The number of series of `name` in `text`.
fn series_count(text: &str, name: &str) -> usize {
    text.lines()
        .filter(|l| l.starts_with(&format!("{name}{{")))
        .count()
}

fn hash(b: &[u8]) -> String {
    akidb_core::sha256_hex(b)
}

async fn listing_and_model_detail(kind: StoreKind) {
    let f = fixture(kind);
    let app = f.app(Config::default());
    let (res, body) = get(&app, "/v1/models").await;
    assert_eq!(res.status(), StatusCode::OK);
    assert_eq!(header(&res, "cache-control"), Some(SHORT));
    assert_eq!(header(&res, "cross-origin-resource-policy"), Some("cross-origin"));
    assert!(header(&res, "content-type")
        .unwrap()
        .starts_with("application/json"));
    let v = json(&body);
    assert_eq!(v["models"][0]["name"], "m");
    assert_eq!(v["models"][0]["versions"], serde_json::json!(["1.0.0", "2.0.0"]));
    assert_eq!(v["models"][0]["aliases"]["latest"], "1.0.0");

    let (res, body) = get(&app, "/v1/models/m").await;
    assert_eq!(res.status(), StatusCode::OK);
    assert_eq!(header(&res, "cache-control"), Some(SHORT));
    let v = json(&body);
    let files = &v["versions"][0]["files"];
    assert_eq!(files[0]["path"], "model.onnx");
    assert_eq!(files[0]["url"], format!("/v1/blobs/sha256/{}", hash(&f.model1)));
    assert_eq!(
        v["versions"][1]["manifest_url"],
        "/v1/models/m/2.0.0/manifest.json"
    );

    let (res, body) = get(&app, "/v1/models/nope").await;
    assert_eq!(res.status(), StatusCode::NOT_FOUND);
    assert_eq!(header(&res, "cache-control"), Some("no-store"));
    assert!(json(&body)["error"]["message"].as_str().unwrap().contains("nope"));
    let (res, _) = get(&app, "/v1/models/..").await;
    assert_eq!(res.status(), StatusCode::BAD_REQUEST);
    let (res, _) = get(&app, "/v1/nothing-here").await;
    assert_eq!(res.status(), StatusCode::NOT_FOUND);
}

async fn manifest_by_version_is_immutable_and_exact(kind: StoreKind) {
    let f = fixture(kind);
    let app = f.app(Config::default());
    let file = std::fs::read(f.v2.join("manifest.json")).unwrap();
    let (res, body) = get(&app, "/v1/models/m/2.0.0/manifest.json").await;
    assert_eq!(res.status(), StatusCode::OK);
    assert_eq!(body, file, "the manifest is served byte for byte");
    assert_eq!(header(&res, "cache-control"), Some(IMMUTABLE));
    let etag = format!("\"{}\"", hash(&file));
    assert_eq!(header(&res, "etag"), Some(etag.as_str()));
    assert_eq!(header(&res, "content-type"), Some("application/json"));

    // If-None-Match (also in a list, and weak) -> 304 with the validators, no body.
    for inm in [
        etag.clone(),
        format!("\"x\", {etag}"),
        format!("W/{etag}"),
        "*".into(),
    ] {
        let (res, body) = get_with(
            &app,
            "/v1/models/m/2.0.0/manifest.json",
            &[("if-none-match", &inm)],
        )
        .await;
        assert_eq!(res.status(), StatusCode::NOT_MODIFIED);
        assert!(body.is_empty());
        assert_eq!(header(&res, "etag"), Some(etag.as_str()));
        assert_eq!(header(&res, "cache-control"), Some(IMMUTABLE));
    }
    let (res, _) = get_with(
        &app,
        "/v1/models/m/2.0.0/manifest.json",
        &[("if-none-match", "\"other\"")],
    )
    .await;
    assert_eq!(res.status(), StatusCode::OK);

    // HEAD: headers, no body.
    let (res, body) = send(
        &app,
        Request::head("/v1/models/m/2.0.0/manifest.json")
            .body(Body::empty())
            .unwrap(),
    )
    .await;
    assert_eq!(res.status(), StatusCode::OK);
    assert!(body.is_empty());
    assert_eq!(header(&res, "etag"), Some(etag.as_str()));

    // Never compressed: clients verify these bytes and the ETag names them.
    let (res, body) = get_with(
        &app,
        "/v1/models/m/2.0.0/manifest.json",
        &[("accept-encoding", "gzip, br")],
    )
    .await;
    assert_eq!(header(&res, "content-encoding"), None);
    assert_eq!(body, file);

    for (uri, status) in [
        ("/v1/models/m/9.9.9/manifest.json", StatusCode::NOT_FOUND),
        ("/v1/models/zz/1.0.0/manifest.json", StatusCode::NOT_FOUND),
        ("/v1/models/m/%2e%2e/manifest.json", StatusCode::BAD_REQUEST),
        ("/v1/models/m/a%00b/manifest.json", StatusCode::BAD_REQUEST),
        ("/v1/models/m/%ff/manifest.json", StatusCode::BAD_REQUEST),
    ] {
        let (res, body) = get(&app, uri).await;
        assert_eq!(res.status(), status, "{uri}");
        assert!(json(&body)["error"]["message"].is_string(), "{uri}");
    }
}

async fn manifest_by_alias_is_short_lived_and_alias_moves_show_at_once(kind: StoreKind) {
    let f = fixture(kind);
    let app = f.app(writable());
    let v1 = std::fs::read(f.v1.join("manifest.json")).unwrap();
    let v2 = std::fs::read(f.v2.join("manifest.json")).unwrap();
    let (res, body) = get(&app, "/v1/models/m/latest/manifest.json").await;
    assert_eq!(res.status(), StatusCode::OK);
    assert_eq!(body, v1);
    assert_eq!(header(&res, "cache-control"), Some(SHORT));
    assert_eq!(
        header(&res, "content-location"),
        Some("/v1/models/m/1.0.0/manifest.json")
    );
    assert_eq!(header(&res, "x-model-version"), Some("1.0.0"));

    // Move the alias over HTTP; the listing and the alias-resolved manifest follow immediately.
    let (res, body) = send(
        &app,
        authed(Request::put("/v1/models/m/aliases/latest"))
            .header("content-type", "application/json")
            .body(Body::from(r#"{"version": "2.0.0"}"#))
            .unwrap(),
    )
    .await;
    assert_eq!(res.status(), StatusCode::OK, "{}", String::from_utf8_lossy(&body));
    let (_, body) = get(&app, "/v1/models").await;
    assert_eq!(json(&body)["models"][0]["aliases"]["latest"], "2.0.0");
    let (res, body) = get(&app, "/v1/models/m/latest/manifest.json").await;
    assert_eq!(body, v2);
    assert_eq!(header(&res, "x-model-version"), Some("2.0.0"));

    // Aliases to missing versions, or named like a version, are refused.
    let put_alias = |alias: &str, body: &'static str| {
        authed(Request::put(format!("/v1/models/m/aliases/{alias}")))
            .body(Body::from(body))
            .unwrap()
    };
    assert_eq!(
        send(&app, put_alias("stable", r#"{"version": "7"}"#))
            .await
            .0
            .status(),
        StatusCode::NOT_FOUND
    );
    assert_eq!(
        send(&app, put_alias("1.0.0", r#"{"version": "2.0.0"}"#))
            .await
            .0
            .status(),
        StatusCode::BAD_REQUEST
    );
    assert_eq!(
        send(&app, put_alias("stable", "not json")).await.0.status(),
        StatusCode::BAD_REQUEST
    );
    assert_eq!(
        send(&app, put_alias("stable", r#"{"version": "../x"}"#))
            .await
            .0
            .status(),
        StatusCode::BAD_REQUEST
    );
}

async fn blobs_etag_range_head(kind: StoreKind) {
    let f = fixture(kind);
    let app = f.app(Config::default());
    let h = hash(&f.blob);
    let uri = format!("/v1/blobs/sha256/{h}");
    let etag = format!("\"{h}\"");
    let len = f.blob.len();

    let (res, body) = get(&app, &uri).await;
    assert_eq!(res.status(), StatusCode::OK);
    assert_eq!(body, f.blob);
    assert_eq!(header(&res, "etag"), Some(etag.as_str()));
    assert_eq!(header(&res, "cache-control"), Some(IMMUTABLE));
    assert_eq!(header(&res, "accept-ranges"), Some("bytes"));
    assert_eq!(header(&res, "content-type"), Some("application/octet-stream"));
    assert_eq!(header(&res, "content-length"), Some(len.to_string().as_str()));
    assert_eq!(header(&res, "cross-origin-resource-policy"), Some("cross-origin"));

    // Model bytes are never compressed.
    let (res, body) = get_with(&app, &uri, &[("accept-encoding", "gzip, br")]).await;
    assert_eq!(header(&res, "content-encoding"), None);
    assert_eq!(body.len(), len);

    let (res, body) = get_with(&app, &uri, &[("if-none-match", &etag)]).await;
    assert_eq!(res.status(), StatusCode::NOT_MODIFIED);
    assert!(body.is_empty());
    assert_eq!(header(&res, "etag"), Some(etag.as_str()));

    let range = |r: &str| Request::get(&uri).header("range", r).body(Body::empty()).unwrap();
    for (r, start, end) in [
        ("bytes=0-9", 0, 9),
        ("bytes=99990-", 99_990, len - 1),
        ("bytes=-5", len - 5, len - 1),
        ("bytes=10-99999999", 10, len - 1),
    ] {
        let (res, body) = send(&app, range(r)).await;
        assert_eq!(res.status(), StatusCode::PARTIAL_CONTENT, "{r}");
        assert_eq!(body, &f.blob[start..=end], "{r}");
        assert_eq!(
            header(&res, "content-range"),
            Some(format!("bytes {start}-{end}/{len}").as_str())
        );
        assert_eq!(
            header(&res, "content-length"),
            Some((end - start + 1).to_string().as_str())
        );
        assert_eq!(header(&res, "cache-control"), Some(IMMUTABLE));
    }
    for r in [
        format!("bytes={len}-"),
        "bytes=200000-300000".into(),
        "bytes=-0".into(),
    ] {
        let (res, _) = send(&app, range(&r)).await;
        assert_eq!(res.status(), StatusCode::RANGE_NOT_SATISFIABLE, "{r}");
        assert_eq!(
            header(&res, "content-range"),
            Some(format!("bytes */{len}").as_str())
        );
    }
    // Malformed or multiple ranges: the whole blob.
    for r in ["bytes=5-2", "items=0-1", "bytes=0-1,4-5", "bytes=x-"] {
        let (res, body) = send(&app, range(r)).await;
        assert_eq!(res.status(), StatusCode::OK, "{r}");
        assert_eq!(body.len(), len);
    }
    // If-Range: the range only applies to the same entity.
    let (res, _) = send(
        &app,
        Request::get(&uri)
            .header("range", "bytes=0-9")
            .header("if-range", &etag)
            .body(Body::empty())
            .unwrap(),
    )
    .await;
    assert_eq!(res.status(), StatusCode::PARTIAL_CONTENT);
    let (res, body) = send(
        &app,
        Request::get(&uri)
            .header("range", "bytes=0-9")
            .header("if-range", "\"stale\"")
            .body(Body::empty())
            .unwrap(),
    )
    .await;
    assert_eq!(res.status(), StatusCode::OK);
    assert_eq!(body.len(), len);

    // HEAD: the full headers, no body.
    let (res, body) = send(&app, Request::head(&uri).body(Body::empty()).unwrap()).await;
    assert_eq!(res.status(), StatusCode::OK);
    assert!(body.is_empty());
    assert_eq!(header(&res, "content-length"), Some(len.to_string().as_str()));
    assert_eq!(header(&res, "etag"), Some(etag.as_str()));

    // The manifest itself is a blob too.
    let mf = std::fs::read(f.v1.join("manifest.json")).unwrap();
    let (res, body) = get(&app, &format!("/v1/blobs/sha256/{}", hash(&mf))).await;
    assert_eq!(res.status(), StatusCode::OK);
    assert_eq!(body, mf);

    let (res, _) = get(&app, &format!("/v1/blobs/sha256/{}", "0".repeat(64))).await;
    assert_eq!(res.status(), StatusCode::NOT_FOUND);
    assert_eq!(header(&res, "cache-control"), Some("no-store"));
    let (res, _) = get(&app, &format!("/v1/blobs/sha256/{}", h.to_uppercase())).await;
    assert_eq!(res.status(), StatusCode::BAD_REQUEST);
}

async fn cors_preflight_and_simple_requests(kind: StoreKind) {
    let f = fixture(kind);
    let app = f.app(Config::default());
    let h = hash(&f.model1);
    let (res, _) = send(
        &app,
        Request::options(format!("/v1/blobs/sha256/{h}"))
            .header("origin", "https://demo.example")
            .header("access-control-request-method", "GET")
            .header("access-control-request-headers", "range, if-none-match")
            .body(Body::empty())
            .unwrap(),
    )
    .await;
    assert!(res.status().is_success(), "{}", res.status());
    assert_eq!(header(&res, "access-control-allow-origin"), Some("*"));
    assert_lists(&res, "access-control-allow-methods", &["GET", "HEAD"]);
    assert_lists(&res, "access-control-allow-headers", &["range", "if-none-match"]);
    assert_eq!(header(&res, "access-control-max-age"), Some("86400"));

    let (res, _) = get_with(
        &app,
        &format!("/v1/blobs/sha256/{h}"),
        &[("origin", "https://demo.example")],
    )
    .await;
    assert_eq!(header(&res, "access-control-allow-origin"), Some("*"));
    assert_lists(&res, "access-control-expose-headers", &["etag", "content-range"]);
    assert_eq!(header(&res, "cross-origin-resource-policy"), Some("cross-origin"));
}

async fn json_is_compressed_with_gzip_and_br(kind: StoreKind) {
    let f = fixture(kind);
    let app = f.app(Config::default());
    for enc in ["gzip", "br"] {
        let (res, body) = get_with(&app, "/v1/models/m", &[("accept-encoding", enc)]).await;
        assert_eq!(res.status(), StatusCode::OK);
        assert_eq!(header(&res, "content-encoding"), Some(enc));
        assert!(
            serde_json::from_slice::<serde_json::Value>(&body).is_err(),
            "compressed bytes are not JSON"
        );
    }
    let (res, _) = get(&app, "/v1/models/m").await;
    assert_eq!(header(&res, "content-encoding"), None);
}

async fn http_publish_protocol(kind: StoreKind) {
    let tmp = tempfile::tempdir().unwrap();
    let data = tmp.path().join("data");
    let model = model_variant(9, 150_000);
    let tok = tokenizer_variant(9);
    let limit = model.len() as u64 + 50_000;
    let config = Config {
        max_blob_bytes: limit,
        ..writable()
    };
    let store = Store::new(kind);
    let app = store.app(&data, config);
    let manifest = manifest_for("web", "0.1.0", &model, &tok).to_json();
    let put_blob = |b: &[u8], auth: Option<&str>| {
        let mut r = Request::put(format!("/v1/blobs/sha256/{}", hash(b)));
        if let Some(t) = auth {
            r = r.header("authorization", format!("Bearer {t}"));
        }
        r.body(Body::from(b.to_vec())).unwrap()
    };
    let blob_absent = |b: Vec<u8>| {
        let app = app.clone();
        async move {
            get(&app, &format!("/v1/blobs/sha256/{}", hash(&b)))
                .await
                .0
                .status()
                == StatusCode::NOT_FOUND
        }
    };

    // No token, wrong token: 401, nothing stored.
    let (res, _) = send(&app, put_blob(&model, None)).await;
    assert_eq!(res.status(), StatusCode::UNAUTHORIZED);
    assert_eq!(header(&res, "www-authenticate"), Some("Bearer"));
    assert_eq!(
        send(&app, put_blob(&model, Some("wrong"))).await.0.status(),
        StatusCode::UNAUTHORIZED
    );
    assert_eq!(
        send(&app, put_blob(&model, Some(""))).await.0.status(),
        StatusCode::UNAUTHORIZED
    );
    assert!(blob_absent(model.clone()).await);

    // Bytes that do not match the name: 400, nothing stored.
    let (res, _) = send(
        &app,
        authed(Request::put(format!(
            "/v1/blobs/sha256/{}",
            hash(b"something else")
        )))
        .body(Body::from(model.clone()))
        .unwrap(),
    )
    .await;
    assert_eq!(res.status(), StatusCode::BAD_REQUEST);
    assert!(blob_absent(b"something else".to_vec()).await);
    assert!(blob_absent(model.clone()).await);

    // Oversized: 413, nothing stored — with a Content-Length and when streamed without one.
    let big = bytes(3, limit as usize + 1);
    assert_eq!(
        send(&app, put_blob(&big, Some(TOKEN))).await.0.status(),
        StatusCode::PAYLOAD_TOO_LARGE
    );
    let stream = futures_util::stream::iter(
        big.chunks(10_000)
            .map(|c| Ok::<_, std::io::Error>(c.to_vec()))
            .collect::<Vec<_>>(),
    );
    let (res, _) = send(
        &app,
        authed(Request::put(format!("/v1/blobs/sha256/{}", hash(&big))))
            .body(Body::from_stream(stream))
            .unwrap(),
    )
    .await;
    assert_eq!(res.status(), StatusCode::PAYLOAD_TOO_LARGE);
    assert!(blob_absent(big.clone()).await);
    // Every upload so far was refused: nothing half-written is left in the store either.
    match store.bucket() {
        None => assert_eq!(
            std::fs::read_dir(data.join("blobs/tmp")).unwrap().count(),
            0,
            "no temp files left"
        ),
        Some(bucket) => {
            let moto = moto::shared();
            assert_eq!(moto.keys(bucket), Vec::<String>::new(), "no object stored");
            assert_eq!(moto.pending_uploads(bucket), 0, "no multipart upload left");
        }
    }

    // PUT of a manifest (authorised unless told otherwise): (status, body).
    const WEB: &str = "/v1/models/web/0.1.0/manifest.json";
    let put_manifest = |uri: &str, body: Vec<u8>, authorised: bool| {
        let req = Request::put(uri);
        let req = if authorised { authed(req) } else { req };
        let app = app.clone();
        async move {
            let (res, body) = send(&app, req.body(Body::from(body)).unwrap()).await;
            (res.status(), String::from_utf8_lossy(&body).into_owned())
        }
    };
    let web_absent = || {
        let app = app.clone();
        async move { get(&app, "/v1/models/web").await.0.status() == StatusCode::NOT_FOUND }
    };

    // The manifest before its blobs: 422, nothing recorded.
    let (status, body) = put_manifest(WEB, manifest.clone(), true).await;
    assert_eq!(status, StatusCode::UNPROCESSABLE_ENTITY, "{body}");
    assert!(body.contains("model.onnx"), "{body}");
    assert!(web_absent().await);

    // Upload the blobs (201, then 200 when repeated).
    assert_eq!(
        send(&app, put_blob(&model, Some(TOKEN))).await.0.status(),
        StatusCode::CREATED
    );
    let (res, body) = send(&app, put_blob(&model, Some(TOKEN))).await;
    assert_eq!(res.status(), StatusCode::OK);
    assert_eq!(json(&body)["size"], model.len());
    assert_eq!(
        send(&app, put_blob(&tok, Some(TOKEN))).await.0.status(),
        StatusCode::CREATED
    );

    // Refused with the blobs in place, nothing recorded: malformed manifests and a manifest under the
    // wrong URL (400), an oversized one (413), and one without the token (401).
    for (uri, body, authorised, want) in [
        (WEB, b"{not json".to_vec(), true, StatusCode::BAD_REQUEST),
        (
            WEB,
            br#"{"format_version": 99}"#.to_vec(),
            true,
            StatusCode::BAD_REQUEST,
        ),
        (
            "/v1/models/web/0.2.0/manifest.json",
            manifest.clone(),
            true,
            StatusCode::BAD_REQUEST,
        ),
        (WEB, vec![b' '; 2 << 20], true, StatusCode::PAYLOAD_TOO_LARGE),
        (WEB, manifest.clone(), false, StatusCode::UNAUTHORIZED),
    ] {
        let (status, answer) = put_manifest(uri, body, authorised).await;
        assert_eq!(status, want, "{uri} (authorised: {authorised}): {answer}");
    }
    assert!(web_absent().await);

    // Publish: 201; again with the same bytes: 200; with other bytes: 409.
    let (status, body) = put_manifest(WEB, manifest.clone(), true).await;
    assert_eq!(status, StatusCode::CREATED, "{body}");
    assert_eq!(json(body.as_bytes())["manifest_sha256"], hash(&manifest));
    assert_eq!(put_manifest(WEB, manifest.clone(), true).await.0, StatusCode::OK);
    let mut other = manifest_for("web", "0.1.0", &model, &tok);
    other.dim = 8;
    assert_eq!(
        put_manifest(WEB, other.to_json(), true).await.0,
        StatusCode::CONFLICT
    );

    let (_, body) = get(&app, WEB).await;
    assert_eq!(body, manifest);
    let (_, body) = get(&app, &format!("/v1/blobs/sha256/{}", hash(&model))).await;
    assert_eq!(body, model);
}

async fn read_only_refuses_writes_and_serves_reads(kind: StoreKind) {
    let f = fixture(kind);
    let app = f.app(Config {
        read_only: true,
        ..writable()
    });
    let (res, _) = send(
        &app,
        authed(Request::put(format!("/v1/blobs/sha256/{}", hash(b"x"))))
            .body(Body::from("x"))
            .unwrap(),
    )
    .await;
    assert_eq!(res.status(), StatusCode::FORBIDDEN);
    let (res, _) = send(
        &app,
        authed(Request::put("/v1/models/m/aliases/latest"))
            .body(Body::from(r#"{"version":"2.0.0"}"#))
            .unwrap(),
    )
    .await;
    assert_eq!(res.status(), StatusCode::FORBIDDEN);
    let (_, body) = get(&app, "/v1/models").await;
    assert_eq!(json(&body)["models"][0]["aliases"]["latest"], "1.0.0");
    assert_eq!(
        get(&app, &format!("/v1/blobs/sha256/{}", hash(&f.model1)))
            .await
            .0
            .status(),
        StatusCode::OK
    );

    // And a server without a token refuses writes with 401.
    let app = f.app(Config::default());
    let (res, _) = send(
        &app,
        authed(Request::put(format!("/v1/blobs/sha256/{}", hash(b"x"))))
            .body(Body::from("x"))
            .unwrap(),
    )
    .await;
    assert_eq!(res.status(), StatusCode::UNAUTHORIZED);
}

async fn health_ready_metrics_openapi(kind: StoreKind) {
    let f = fixture(kind);
    let app = f.app(Config::default());
    let (res, body) = get(&app, "/healthz").await;
    assert_eq!((res.status(), body.as_slice()), (StatusCode::OK, &b"ok\n"[..]));
    let (res, body) = get(&app, "/readyz").await;
    assert_eq!((res.status(), body.as_slice()), (StatusCode::OK, &b"ready\n"[..]));

    let h = hash(&f.blob);
    get(&app, &format!("/v1/blobs/sha256/{h}")).await;
    get_with(&app, &format!("/v1/blobs/sha256/{h}"), &[("range", "bytes=0-9")]).await;
    get(&app, "/v1/models/nope").await;
    let (res, body) = get(&app, "/metrics").await;
    assert_eq!(res.status(), StatusCode::OK);
    assert!(header(&res, "content-type").unwrap().starts_with("text/plain"));
    let text = String::from_utf8(body).unwrap();
    assert!(text.lines().any(|l| l == "model_server_ready 1"), "{text}");
    let blob = [("route", "/v1/blobs/sha256/{sha256}"), ("method", "GET")];
    let with = |status: &'static str| [blob[0], blob[1], ("status", status)];
    assert_eq!(
        sample(&text, "model_server_requests_total", &with("200")),
        Some(1.0),
        "{text}"
    );
    assert_eq!(
        sample(&text, "model_server_requests_total", &with("206")),
        Some(1.0),
        "{text}"
    );
    assert_eq!(
        sample(&text, "model_server_response_bytes_total", &with("200")),
        Some(100_000.0),
        "{text}"
    );
    assert_eq!(
        sample(&text, "model_server_response_bytes_total", &with("206")),
        Some(10.0),
        "{text}"
    );
    assert_eq!(
        sample(
            &text,
            "model_server_requests_total",
            &[
                ("route", "/v1/models/{name}"),
                ("method", "GET"),
                ("status", "404")
            ]
        ),
        Some(1.0),
        "{text}"
    );
    let [r, m, st] = with("200");
    assert_eq!(
        sample(
            &text,
            "model_server_request_duration_seconds_bucket",
            &[r, m, st, ("le", "+Inf")]
        ),
        Some(1.0),
        "{text}"
    );
    assert!(text.contains("# TYPE model_server_request_duration_seconds histogram"));

    let (res, body) = get(&app, "/openapi.json").await;
    assert_eq!(res.status(), StatusCode::OK);
    let doc = json(&body);
    assert!(doc["openapi"].as_str().unwrap().starts_with("3."));
    for p in [
        "/v1/models",
        "/v1/models/{name}",
        "/v1/models/{name}/{version}/manifest.json",
        "/v1/models/{name}/aliases/{alias}",
        "/v1/blobs/sha256/{sha256}",
        "/healthz",
        "/readyz",
        "/metrics",
        "/openapi.json",
    ] {
        assert!(
            doc["paths"][p].is_object(),
            "{p} missing from the OpenAPI document"
        );
    }
    assert!(doc["paths"]["/v1/blobs/sha256/{sha256}"]["put"].is_object());
    assert!(doc["components"]["securitySchemes"]["bearer"].is_object());
}

/// Local only: the static site is a directory on the local disk whichever store holds the blobs.
#[tokio::test]
async fn static_directory_with_mime_types() {
    let f = fixture(StoreKind::Local);
    let site = f.data.parent().unwrap().join("site");
    std::fs::create_dir_all(&site).unwrap();
    std::fs::write(site.join("index.html"), "<h1>demo</h1>").unwrap();
    std::fs::write(site.join("akidb_wasm_bg.wasm"), b"\0asm\x01\0\0\0").unwrap();
    std::fs::write(site.join("app.js"), "export {}").unwrap();
    let app = f.app(Config {
        static_dir: Some(site),
        ..Config::default()
    });
    let (res, body) = get(&app, "/").await;
    assert_eq!(res.status(), StatusCode::OK);
    assert_eq!(body, b"<h1>demo</h1>");
    assert!(header(&res, "content-type").unwrap().starts_with("text/html"));
    let (res, _) = get(&app, "/akidb_wasm_bg.wasm").await;
    assert_eq!(header(&res, "content-type"), Some("application/wasm"));
    let (res, _) = get(&app, "/app.js").await;
    assert!(header(&res, "content-type").unwrap().contains("javascript"));
    assert_eq!(get(&app, "/missing.html").await.0.status(), StatusCode::NOT_FOUND);
    // The API still wins over the static site.
    assert_eq!(get(&app, "/v1/models").await.0.status(), StatusCode::OK);
}

async fn real_int8_bundle_round_trips(kind: StoreKind) {
    let bundle = int8_bundle();
    let tmp = tempfile::tempdir().unwrap();
    let store = Store::new(kind);
    let (registry, blobs) = store.open(tmp.path());
    publish_dir(&registry, &*blobs, &bundle, &["latest".into()]).unwrap();
    let app = store.app(tmp.path(), Config::default());
    let (res, body) = get(&app, "/v1/models/all-MiniLM-L6-v2/latest/manifest.json").await;
    assert_eq!(res.status(), StatusCode::OK);
    let manifest = akidb_core::Manifest::from_json(&body).unwrap();
    assert_eq!(manifest.version, "1.0.0-int8");
    // A client's view: every file by hash, verified against the manifest.
    for entry in &manifest.files {
        let (res, bytes) = get(&app, &format!("/v1/blobs/sha256/{}", entry.sha256)).await;
        assert_eq!(res.status(), StatusCode::OK);
        manifest.verify_file(entry, &bytes).unwrap();
    }
}

async fn routing_misses_are_json_and_made_up_methods_add_no_series(kind: StoreKind) {
    let f = fixture(kind);
    let app = f.app(Config::default());
    for (method, uri, status) in [
        ("GET", "/v1/nothing-here", StatusCode::NOT_FOUND),
        ("DELETE", "/v1/models", StatusCode::METHOD_NOT_ALLOWED),
        (
            "POST",
            "/v1/models/m/1.0.0/manifest.json",
            StatusCode::METHOD_NOT_ALLOWED,
        ),
    ] {
        let (res, body) = send(
            &app,
            Request::builder()
                .method(method)
                .uri(uri)
                .body(Body::empty())
                .unwrap(),
        )
        .await;
        assert_eq!(res.status(), status, "{method} {uri}");
        assert_eq!(header(&res, "cache-control"), Some("no-store"), "{method} {uri}");
        let v = json(&body);
        assert!(
            v["error"]["message"].as_str().is_some_and(|m| !m.is_empty()),
            "{method} {uri}: {v}"
        );
        assert!(
            v["error"]["type"].as_str().is_some_and(|t| !t.is_empty()),
            "{method} {uri}: {v}"
        );
    }
    let metrics =
        |app: axum::Router| async move { String::from_utf8(get(&app, "/metrics").await.1).unwrap() };
    send(
        &app,
        Request::builder()
            .method("FOO")
            .uri("/v1/models")
            .body(Body::empty())
            .unwrap(),
    )
    .await;
    let before = metrics(app.clone()).await;
    for m in ["BAR", "QUUX", "FOO", "X-MADE-UP"] {
        let (res, _) = send(
            &app,
            Request::builder()
                .method(m)
                .uri("/v1/models")
                .body(Body::empty())
                .unwrap(),
        )
        .await;
        assert_eq!(res.status(), StatusCode::METHOD_NOT_ALLOWED, "{m}");
    }
    let after = metrics(app.clone()).await;
    for m in ["FOO", "BAR", "QUUX", "X-MADE-UP"] {
        assert!(
            !after.contains(&format!("method=\"{m}\"")),
            "{m} became a label:\n{after}"
        );
    }
    // The made-up methods share one bounded series, counted: no new series, the count went up by 4.
    let other = [("route", "/v1/models"), ("method", "other"), ("status", "405")];
    let count = |t: &str| sample(t, "model_server_requests_total", &other);
    assert_eq!(count(&after), count(&before).map(|c| c + 4.0), "{after}");
    // `/metrics` itself adds one series between the two scrapes; nothing else may.
    assert!(
        series_count(&after, "model_server_requests_total")
            <= series_count(&before, "model_server_requests_total") + 1,
        "before:\n{before}\nafter:\n{after}"
    );
}

per_store!(
    listing_and_model_detail,
    manifest_by_version_is_immutable_and_exact,
    manifest_by_alias_is_short_lived_and_alias_moves_show_at_once,
    blobs_etag_range_head,
    cors_preflight_and_simple_requests,
    json_is_compressed_with_gzip_and_br,
    http_publish_protocol,
    read_only_refuses_writes_and_serves_reads,
    health_ready_metrics_openapi,
    real_int8_bundle_round_trips,
    routing_misses_are_json_and_made_up_methods_add_no_series,
);
