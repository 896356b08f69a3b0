//! The IndexedDB model cache written in Rust on `rexie` (the crate the design names), doing what
//! `akidb-wasm/js/cache.js` does for the loader: store a bundle file as a record `{sha256, path, bytes:
//! Blob}` keyed by its sha256, read it back into wasm memory and check its hash with WebCrypto. `bench.mjs`
//! times these against the JS cache on the same files in the same page (see ../../js/CACHE.md).
use js_sys::{Object, Reflect, Uint8Array};
use rexie::{ObjectStore, Rexie, TransactionMode};
use wasm_bindgen::prelude::*;
use wasm_bindgen::JsCast;
use wasm_bindgen_futures::JsFuture;

const STORE: &str = "files";

fn err(e: rexie::Error) -> JsValue {
    JsError::new(&e.to_string()).into()
}

async fn open(db_name: &str) -> Result<Rexie, JsValue> {
    Rexie::builder(db_name)
        .version(1)
        .add_object_store(ObjectStore::new(STORE).key_path("sha256"))
        .build()
        .await
        .map_err(err)
}

/// Stores `bytes` (copied into wasm memory first, as a Rust cache would hold a download) as a Blob
/// record under `sha256`.
#[wasm_bindgen(js_name = rexiePut)]
pub async fn rexie_put(db_name: String, sha256: String, path: String, bytes: Vec<u8>) -> Result<(), JsValue> {
    let db = open(&db_name).await?;
    let parts = js_sys::Array::of1(&Uint8Array::from(bytes.as_slice()));
    let blob = web_sys::Blob::new_with_u8_array_sequence(&parts)?;
    let record = Object::new();
    Reflect::set(&record, &"sha256".into(), &sha256.into())?;
    Reflect::set(&record, &"path".into(), &path.into())?;
    Reflect::set(&record, &"bytes".into(), &blob)?;
    let tx = db
        .transaction(&[STORE], TransactionMode::ReadWrite)
        .map_err(err)?;
    tx.store(STORE)
        .map_err(err)?
        .put(&record, None)
        .await
        .map_err(err)?;
    tx.done().await.map_err(err)?;
    db.close();
    Ok(())
}

/// Reads the records `sha256s` into wasm memory in one read-only transaction and, when `verify`, checks
/// each one's SHA-256 with WebCrypto (off the main thread, as the JS cache does). Returns the total byte
/// count; throws when a record is missing or its hash differs.
#[wasm_bindgen(js_name = rexieRead)]
pub async fn rexie_read(db_name: String, sha256s: Vec<String>, verify: bool) -> Result<usize, JsValue> {
    let db = open(&db_name).await?;
    let tx = db.transaction(&[STORE], TransactionMode::ReadOnly).map_err(err)?;
    let store = tx.store(STORE).map_err(err)?;
    let mut records = Vec::with_capacity(sha256s.len());
    for sha256 in &sha256s {
        let record = store.get(sha256.clone().into()).await.map_err(err)?;
        records.push(record.ok_or_else(|| JsError::new(&format!("no record {sha256}")))?);
    }
    tx.done().await.map_err(err)?;
    db.close();
    let mut total = 0;
    for (record, sha256) in records.iter().zip(&sha256s) {
        let blob: web_sys::Blob = Reflect::get(record, &"bytes".into())?.dyn_into()?;
        let buffer = JsFuture::from(blob.array_buffer()).await?;
        let bytes = Uint8Array::new(&buffer).to_vec();
        if verify {
            let digest = webcrypto_sha256(&bytes).await?;
            if &digest != sha256 {
                return Err(JsError::new(&format!("sha256 mismatch: {digest} != {sha256}")).into());
            }
        }
        total += bytes.len();
    }
    Ok(total)
}

/// Copies `bytes` into wasm memory (what handing a JS-cached file to the core costs), returns the count.
#[wasm_bindgen(js_name = copyIntoWasm)]
pub fn copy_into_wasm(bytes: Vec<u8>) -> usize {
    bytes.len()
}

async fn webcrypto_sha256(bytes: &[u8]) -> Result<String, JsValue> {
    let global = js_sys::global();
    let crypto: web_sys::Crypto = Reflect::get(&global, &"crypto".into())?.dyn_into()?;
    let digest = JsFuture::from(crypto.subtle().digest_with_str_and_u8_array("SHA-256", bytes)?).await?;
    Ok(Uint8Array::new(&digest)
        .to_vec()
        .iter()
        .map(|b| format!("{b:02x}"))
        .collect())
}
