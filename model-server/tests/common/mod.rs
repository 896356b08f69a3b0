//! Helpers shared by the integration tests: synthetic bundles and an in-process app.
#![allow(dead_code)]

use std::path::{Path, PathBuf};
use std::sync::Arc;

use akidb_core::{sha256_hex, FileEntry, FileRole, Manifest, OnnxIo, Pooling, Quantization, MANIFEST_FILE};
use axum::body::Body;
use axum::http::{Request, Response};
use axum::Router;
use http_body_util::BodyExt;
use model_server::{open_data_dir, router, AppState, Config};
use tower::ServiceExt;

pub const TOKEN: &str = "test-token-123";

/// A manifest for `model` and `tokenizer` bytes (the server never loads the model, so any bytes do).
pub fn manifest_for(name: &str, version: &str, model: &[u8], tokenizer: &[u8]) -> Manifest {
    let entry = |path: &str, role, bytes: &[u8]| FileEntry {
        path: path.into(),
        role,
        size: bytes.len() as u64,
        sha256: sha256_hex(bytes),
    };
    Manifest {
        format_version: 1,
        name: name.into(),
        version: version.into(),
        dim: 4,
        max_seq_length: 16,
        pooling: Pooling::Mean,
        normalize: true,
        quantization: Quantization::None,
        onnx: OnnxIo {
            input_ids: "input_ids".into(),
            attention_mask: "attention_mask".into(),
            token_type_ids: None,
            output: "last_hidden_state".into(),
        },
        files: vec![
            entry("model.onnx", FileRole::Model, model),
            entry("tokenizer.json", FileRole::Tokenizer, tokenizer),
        ],
    }
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
