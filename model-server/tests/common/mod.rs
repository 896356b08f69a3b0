//! Helpers shared by the integration tests: bundles that load (variants of the int8 bundle), the blob
//! store a test runs against (local or S3, [`StoreKind`]) and an in-process app over it, and the CLI's
//! keys and signatures. Ports, plain HTTP requests, processes and moto_server come from akidb-testkit.
#![allow(dead_code, unused_imports, unused_macros)]

use std::path::{Path, PathBuf};
use std::sync::{Arc, OnceLock};

use akidb_core::{sha256_hex, FileEntry, FileRole, Manifest, MANIFEST_FILE};
pub use akidb_testkit::moto;
pub use akidb_testkit::net::{free_addr, http_request, read_response};
pub use akidb_testkit::paths::int8_bundle;
pub use akidb_testkit::process::Spawned;
use axum::body::Body;
use axum::http::{Request, Response};
use axum::Router;
use http_body_util::BodyExt;
use model_server::{open_data_dir, router, AppState, BlobStore, Config, Registry, S3BlobStore, S3Options};
use tower::ServiceExt;

pub const TOKEN: &str = "test-token-123";

/// How long a spawned server may take to answer `/healthz` (a loaded 2-core machine runs several test
/// binaries at once).
pub const READY_TIMEOUT: std::time::Duration = std::time::Duration::from_secs(30);

fn int8_file(name: &str) -> &'static [u8] {
    static FILES: OnceLock<Vec<(String, Vec<u8>)>> = OnceLock::new();
    let files = FILES.get_or_init(|| {
        ["model.onnx", "tokenizer.json", MANIFEST_FILE]
            .iter()
            .map(|f| (f.to_string(), std::fs::read(int8_bundle().join(f)).unwrap()))
            .collect()
    });
    &files.iter().find(|(f, _)| f == name).unwrap().1
}

/// A model that loads, with bytes of its own: the int8 model with `extra` bytes (from `seed`) appended as
/// a protobuf field ONNX does not define, which parsers skip. `extra == 0` is the int8 model itself.
pub fn model_variant(seed: u8, extra: usize) -> Vec<u8> {
    let mut m = int8_file("model.onnx").to_vec();
    if extra > 0 {
        let varint = |out: &mut Vec<u8>, mut v: u64| loop {
            let b = (v & 0x7f) as u8;
            v >>= 7;
            if v == 0 {
                out.push(b);
                break;
            }
            out.push(b | 0x80);
        };
        varint(&mut m, (1000 << 3) | 2); // field 1000, length-delimited
        varint(&mut m, extra as u64);
        m.extend(bytes(seed, extra));
    }
    m
}

/// A tokenizer that loads, with bytes of its own: the int8 bundle's `tokenizer.json` followed by
/// `variant` spaces.
pub fn tokenizer_variant(variant: usize) -> Vec<u8> {
    let mut t = int8_file("tokenizer.json").to_vec();
    t.extend(std::iter::repeat_n(b' ', variant));
    t
}

/// A manifest for `model` and `tokenizer` bytes, with the int8 bundle's settings (so a model and
/// tokenizer from [`model_variant`] and [`tokenizer_variant`] load under it).
pub fn manifest_for(name: &str, version: &str, model: &[u8], tokenizer: &[u8]) -> Manifest {
    let entry = |path: &str, role, bytes: &[u8]| FileEntry {
        path: path.into(),
        role,
        size: bytes.len() as u64,
        sha256: sha256_hex(bytes),
    };
    let mut m = Manifest::from_json(int8_file(MANIFEST_FILE)).unwrap();
    m.name = name.into();
    m.version = version.into();
    m.files = vec![
        entry("model.onnx", FileRole::Model, model),
        entry("tokenizer.json", FileRole::Tokenizer, tokenizer),
    ];
    m
}

/// Writes a bundle directory `dir/name-version` and returns it.
pub fn write_bundle(dir: &Path, name: &str, version: &str, model: &[u8], tokenizer: &[u8]) -> PathBuf {
    let out = dir.join(format!("{name}-{version}"));
    std::fs::create_dir_all(&out).unwrap();
    let m = manifest_for(name, version, model, tokenizer);
    std::fs::write(out.join("model.onnx"), model).unwrap();
    std::fs::write(out.join("tokenizer.json"), tokenizer).unwrap();
    std::fs::write(out.join(MANIFEST_FILE), m.to_json()).unwrap();
    out
}

/// A loadable bundle `dir/name-version` whose model and tokenizer are variants `seed` (distinct blobs for
/// distinct seeds).
pub fn write_real_bundle(dir: &Path, name: &str, version: &str, seed: u8) -> PathBuf {
    write_bundle(
        dir,
        name,
        version,
        &model_variant(seed, 1000),
        &tokenizer_variant(seed as usize),
    )
}

/// Deterministic pseudo-random bytes.
pub fn bytes(seed: u8, len: usize) -> Vec<u8> {
    let mut x = seed as u32 * 2654435761 + 1;
    (0..len)
        .map(|_| {
            x ^= x << 13;
            x ^= x >> 17;
            x ^= x << 5;
            x as u8
        })
        .collect()
}

/// An app state over the local store of data directory `data` (created if absent).
pub fn state(data: &Path, config: Config) -> AppState {
    Store::Local.state(data, config)
}

pub fn writable() -> Config {
    Config {
        token: Some(TOKEN.into()),
        ..Config::default()
    }
}

/// The router over the local store of `data`.
pub fn app(data: &Path, config: Config) -> Router {
    Store::Local.app(data, config)
}

/// Which blob store a parameterised test runs against.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum StoreKind {
    /// `DATA/blobs` on the local disk.
    Local,
    /// A fresh bucket of the test binary's shared moto_server, under [`S3_PREFIX`].
    S3,
}

/// The key prefix of the blobs in a test bucket (the server's `--store s3://BUCKET/blobs`).
pub const S3_PREFIX: &str = "blobs";

/// The blob store of one test: the local one of its data directory, or a bucket of its own. Opened
/// again with the same data directory it is the same store (as a restarted server would find it).
#[derive(Clone, Debug)]
pub enum Store {
    /// `DATA/blobs`.
    Local,
    /// `s3://BUCKET/blobs` on the shared moto_server.
    S3 {
        /// The test's own bucket.
        bucket: String,
    },
}

impl Store {
    /// A store of `kind`: for S3, a new bucket on the shared moto_server (started on first use).
    pub fn new(kind: StoreKind) -> Store {
        match kind {
            StoreKind::Local => Store::Local,
            StoreKind::S3 => Store::S3 {
                bucket: moto::shared().bucket(),
            },
        }
    }

    /// The bucket of an S3 store.
    pub fn bucket(&self) -> Option<&str> {
        match self {
            Store::Local => None,
            Store::S3 { bucket } => Some(bucket),
        }
    }

    /// The registry of data directory `data` (created if absent) and this blob store, as
    /// `model-server serve --data DATA [--store s3://BUCKET/blobs]` opens them.
    pub fn open(&self, data: &Path) -> (Registry, Arc<dyn BlobStore>) {
        match self {
            Store::Local => {
                let (registry, store) = open_data_dir(data).unwrap();
                (registry, Arc::new(store))
            }
            Store::S3 { bucket } => {
                std::fs::create_dir_all(data).unwrap();
                let registry = Registry::open(&data.join("registry.sqlite")).unwrap();
                let url = format!("s3://{bucket}/{S3_PREFIX}");
                let store = S3BlobStore::open(&url, &s3_options(moto::shared()))
                    .unwrap_or_else(|e| panic!("opening {url}: {e}"));
                (registry, Arc::new(store))
            }
        }
    }

    /// An app state over `data`'s registry and this store.
    pub fn state(&self, data: &Path, config: Config) -> AppState {
        let (registry, store) = self.open(data);
        AppState::new(registry, store, config)
    }

    /// The router over `data`'s registry and this store.
    pub fn app(&self, data: &Path, config: Config) -> Router {
        router(self.state(data, config))
    }
}

/// The S3 client options that reach `moto` with the kit's test credentials.
pub fn s3_options(moto: &moto::Moto) -> S3Options {
    S3Options {
        endpoint: Some(moto.endpoint()),
        region: Some(moto::REGION.into()),
        access_key_id: Some(moto::ACCESS_KEY_ID.into()),
        secret_access_key: Some(moto::SECRET_ACCESS_KEY.into()),
        allow_http: Some(true),
    }
}

/// Runs each listed test body once per blob store, from the one body: for every
/// `async fn NAME(kind: StoreKind)` listed, the tokio tests `local::NAME` and `s3::NAME` (so `-- s3::`
/// runs the S3 half); after `sync:`, plain `fn NAME(kind: StoreKind)` bodies, as `#[test]`s. Forms:
/// `per_store!(a, b)`, `per_store!(sync: c)`, `per_store!(async: a, b; sync: c)`.
macro_rules! per_store {
    (async: $($a:ident),* ; sync: $($s:ident),* $(,)?) => {
        mod local {
            use super::common::StoreKind::Local;
            $(#[tokio::test] async fn $a() { super::$a(Local).await })*
            $(#[test] fn $s() { super::$s(Local) })*
        }
        mod s3 {
            use super::common::StoreKind::S3;
            $(#[tokio::test] async fn $a() { super::$a(S3).await })*
            $(#[test] fn $s() { super::$s(S3) })*
        }
    };
    (sync: $($s:ident),* $(,)?) => { per_store!(async: ; sync: $($s),*); };
    ($($a:ident),* $(,)?) => { per_store!(async: $($a),*; sync: ); };
}
pub(crate) use per_store;

pub async fn send(app: &Router, req: Request<Body>) -> (Response<Body>, Vec<u8>) {
    let res = app.clone().oneshot(req).await.unwrap();
    let (parts, body) = res.into_parts();
    let bytes = body.collect().await.unwrap().to_bytes().to_vec();
    (Response::from_parts(parts, Body::empty()), bytes)
}

pub async fn get(app: &Router, uri: &str) -> (Response<Body>, Vec<u8>) {
    send(app, Request::get(uri).body(Body::empty()).unwrap()).await
}

/// `GET uri` with `headers`.
pub async fn get_with(app: &Router, uri: &str, headers: &[(&str, &str)]) -> (Response<Body>, Vec<u8>) {
    let mut req = Request::get(uri);
    for (name, value) in headers {
        req = req.header(*name, *value);
    }
    send(app, req.body(Body::empty()).unwrap()).await
}

pub fn header<'a>(res: &'a Response<Body>, name: &str) -> Option<&'a str> {
    res.headers().get(name).map(|v| v.to_str().unwrap())
}

/// A JSON body, or a panic showing what came instead.
pub fn json(body: &[u8]) -> serde_json::Value {
    serde_json::from_slice(body).unwrap_or_else(|e| panic!("{e}: {}", String::from_utf8_lossy(body)))
}

/// The request with the test token as its bearer credential.
pub fn authed(req: axum::http::request::Builder) -> axum::http::request::Builder {
    req.header("authorization", format!("Bearer {TOKEN}"))
}

/// The `akidb` CLI of the same build as the model-server binary (the workspace build makes both): tests
/// make keys and signatures with it, as a publisher does.
pub fn akidb_cli() -> PathBuf {
    let bin = Path::new(env!("CARGO_BIN_EXE_model-server")).with_file_name("akidb");
    assert!(
        bin.exists(),
        "{} is missing: build the workspace (cargo build --release --workspace)",
        bin.display()
    );
    bin
}

fn run_akidb(args: &[&str]) -> String {
    let out = std::process::Command::new(akidb_cli())
        .args(args)
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "akidb {args:?}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8_lossy(&out.stdout).trim().to_owned()
}

/// A key pair written by `akidb keygen` (`dir/NAME.key`, `dir/NAME.pub`) and its key id.
pub struct CliKey {
    pub private: PathBuf,
    pub public: PathBuf,
    pub id: String,
}

pub fn akidb_keygen(dir: &Path, name: &str) -> CliKey {
    let id = run_akidb(&["keygen", "--out", dir.to_str().unwrap(), "--name", name]);
    CliKey {
        private: dir.join(format!("{name}.key")),
        public: dir.join(format!("{name}.pub")),
        id,
    }
}

/// Signs the bundle in `bundle` with `akidb bundle sign` (writes `manifest.json.sig`).
pub fn akidb_sign(key: &CliKey, bundle: &Path) {
    run_akidb(&[
        "bundle",
        "sign",
        "--key",
        key.private.to_str().unwrap(),
        bundle.to_str().unwrap(),
    ]);
}

/// A `--trusted-keys` file `dir/name` listing `keys` (their `.pub` files).
pub fn trust_file(dir: &Path, name: &str, keys: &[&CliKey]) -> PathBuf {
    // Each `.pub` file is one JSON object, an entry of the list as it stands.
    let public_keys: Vec<String> = keys
        .iter()
        .map(|k| std::fs::read_to_string(&k.public).unwrap())
        .collect();
    let path = dir.join(name);
    std::fs::write(&path, format!(r#"{{"keys":[{}]}}"#, public_keys.join(","))).unwrap();
    path
}
