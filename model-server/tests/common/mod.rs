//! Helpers shared by the integration tests: bundles that load (variants of the int8 bundle) and an
//! in-process app.
#![allow(dead_code)]

use std::path::{Path, PathBuf};
use std::sync::{Arc, OnceLock};

use akidb_core::{sha256_hex, FileEntry, FileRole, Manifest, MANIFEST_FILE};
use axum::body::Body;
use axum::http::{Request, Response};
use axum::Router;
use http_body_util::BodyExt;
use model_server::{open_data_dir, router, AppState, Config};
use tower::ServiceExt;

pub const TOKEN: &str = "test-token-123";

/// The int8 bundle that `scripts/fetch-models.sh` builds.
pub fn int8_bundle() -> PathBuf {
    let p = Path::new(env!("CARGO_MANIFEST_DIR")).join("../models/all-MiniLM-L6-v2/int8");
    assert!(
        p.join(MANIFEST_FILE).exists(),
        "run scripts/fetch-models.sh first"
    );
    p
}

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

pub fn state(data: &Path, config: Config) -> AppState {
    let (registry, store) = open_data_dir(data).unwrap();
    AppState::new(registry, Arc::new(store), config)
}

pub fn writable() -> Config {
    Config {
        token: Some(TOKEN.into()),
        ..Config::default()
    }
}

pub fn app(data: &Path, config: Config) -> Router {
    router(state(data, config))
}

pub async fn send(app: &Router, req: Request<Body>) -> (Response<Body>, Vec<u8>) {
    let res = app.clone().oneshot(req).await.unwrap();
    let (parts, body) = res.into_parts();
    let bytes = body.collect().await.unwrap().to_bytes().to_vec();
    (Response::from_parts(parts, Body::empty()), bytes)
}

pub async fn get(app: &Router, uri: &str) -> (Response<Body>, Vec<u8>) {
    send(app, Request::get(uri).body(Body::empty()).unwrap()).await
}

pub fn header<'a>(res: &'a Response<Body>, name: &str) -> Option<&'a str> {
    res.headers().get(name).map(|v| v.to_str().unwrap())
}

/// One HTTP/1.1 request over a plain socket (`Connection: close`); returns (status, lower-cased head, body).
pub fn http_request(
    addr: &str,
    method: &str,
    path: &str,
    headers: &[(&str, &str)],
    body: &[u8],
) -> (u16, String, Vec<u8>) {
    use std::io::Write;
    let mut s = std::net::TcpStream::connect(addr).unwrap();
    s.set_read_timeout(Some(std::time::Duration::from_secs(60)))
        .unwrap();
    let mut head = format!(
        "{method} {path} HTTP/1.1\r\nHost: {addr}\r\nConnection: close\r\nContent-Length: {}\r\n",
        body.len()
    );
    for (k, v) in headers {
        head.push_str(&format!("{k}: {v}\r\n"));
    }
    head.push_str("\r\n");
    s.write_all(head.as_bytes()).unwrap();
    s.write_all(body).unwrap();
    read_response(&mut s)
}

/// Reads one whole response from `s` (the server closes after it): (status, lower-cased head, body).
pub fn read_response(s: &mut impl std::io::Read) -> (u16, String, Vec<u8>) {
    let mut raw = Vec::new();
    s.read_to_end(&mut raw).unwrap();
    let split = raw
        .windows(4)
        .position(|w| w == b"\r\n\r\n")
        .unwrap_or_else(|| panic!("no response head in {:?}", String::from_utf8_lossy(&raw)));
    let head = String::from_utf8_lossy(&raw[..split]).to_string();
    let status = head.split(' ').nth(1).unwrap().parse().unwrap();
    (status, head.to_ascii_lowercase(), raw[split + 4..].to_vec())
}

/// A loopback address nothing listens on (yet).
pub fn free_addr() -> String {
    let l = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    l.local_addr().unwrap().to_string()
}

/// Waits until `GET /healthz` at `addr` answers 200.
pub fn wait_ready(addr: &str) {
    let start = std::time::Instant::now();
    loop {
        if std::net::TcpStream::connect(addr).is_ok()
            && http_request(addr, "GET", "/healthz", &[], b"").0 == 200
        {
            return;
        }
        assert!(
            start.elapsed() < std::time::Duration::from_secs(30),
            "{addr} did not start"
        );
        std::thread::sleep(std::time::Duration::from_millis(50));
    }
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
