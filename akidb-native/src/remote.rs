//! Fetching a bundle over HTTP: from a model-server or any static host.
//!
//! Every download is bounded: a connect timeout, a read timeout (a server that accepts and then sends
//! nothing fails within it, naming the URL), a size cap (the manifest's own for each file, 1 MiB for the
//! manifest), and retries with backoff for failures that may pass (connection errors, timeouts, 5xx).

use std::collections::HashMap;
use std::time::Duration;

use akidb_core::signing::{TrustedKeys, SIGNATURE_SUFFIX};
use akidb_core::{Bundle, FileEntry, Manifest};
use anyhow::{bail, Context, Result};

/// Limits of a bundle download.
#[derive(Clone, Debug)]
pub struct FetchOptions {
    /// Longest wait for a TCP connection.
    pub connect_timeout: Duration,
    /// Longest wait for the next bytes of an answer (head or body).
    pub read_timeout: Duration,
    /// Tries per file, the first included.
    pub attempts: u32,
    /// Wait before the second try; doubled for each later one.
    pub backoff: Duration,
}

impl Default for FetchOptions {
    fn default() -> FetchOptions {
        FetchOptions {
            connect_timeout: Duration::from_secs(10),
            read_timeout: Duration::from_secs(30),
            attempts: 4,
            backoff: Duration::from_millis(500),
        }
    }
}

/// Largest manifest accepted, in bytes.
const MAX_MANIFEST_BYTES: u64 = 1 << 20;

/// Where a bundle file lives, given its manifest's URL: the rule `tests/blob-urls.json` states, which
/// the browser loader follows too. A model-server manifest (`…/v1/models/{name}/{version}/manifest.json`)
/// has its files at `…/v1/blobs/sha256/{hex}`, keeping any path prefix before that `/v1/`; elsewhere
/// files sit beside the manifest. The manifest's query string and fragment are not carried over.
pub fn file_url(manifest_url: &str, entry: &FileEntry) -> String {
    blob_url(manifest_url, &entry.sha256, &entry.path)
}

fn blob_url(manifest_url: &str, sha256: &str, path: &str) -> String {
    let url = manifest_url.split(['?', '#']).next().unwrap_or(manifest_url);
    let model_server_prefix = url.strip_suffix("/manifest.json").and_then(|rest| {
        // rest = PREFIX/v1/models/{name}/{version}
        let (rest, version) = rest.rsplit_once('/')?;
        let (rest, name) = rest.rsplit_once('/')?;
        let prefix = rest.strip_suffix("/v1/models")?;
        (!name.is_empty() && !version.is_empty()).then_some(prefix)
    });
    match model_server_prefix {
        Some(prefix) => format!("{prefix}/v1/blobs/sha256/{sha256}"),
        None => {
            let base = url.rsplit_once('/').map_or(url, |(b, _)| b);
            format!("{base}/{path}")
        }
    }
}

/// A failure worth another try.
fn transient(e: &reqwest::Error) -> bool {
    e.is_timeout() || e.is_connect() || e.is_request() || e.is_body()
}

fn describe(url: &str, e: &reqwest::Error, options: &FetchOptions) -> String {
    if e.is_timeout() {
        format!(
            "{url}: no answer within {} s (the server accepted the request but stalled)",
            options.read_timeout.as_secs_f64()
        )
    } else if e.is_connect() {
        format!("{url}: cannot connect: {e}")
    } else {
        format!("{url}: {e}")
    }
}

/// Largest signature accepted, in bytes (a real one is about 150).
const MAX_SIGNATURE_BYTES: u64 = 4096;

/// Where a manifest's detached signature lives: its URL with `.sig` appended to the path (the query
/// string and fragment, if any, stay after it).
pub fn signature_url(manifest_url: &str) -> String {
    let end = manifest_url.find(['?', '#']).unwrap_or(manifest_url.len());
    format!(
        "{}{SIGNATURE_SUFFIX}{}",
        &manifest_url[..end],
        &manifest_url[end..]
    )
}

/// One GET of at most `cap` bytes; `Ok(None)` for a 404 when `allow_404`. `Err((message, retry))`.
async fn get_once(
    client: &reqwest::Client,
    url: &str,
    cap: u64,
    options: &FetchOptions,
    allow_404: bool,
) -> Result<Option<Vec<u8>>, (String, bool)> {
    let mut response = client
        .get(url)
        .send()
        .await
        .map_err(|e| (describe(url, &e, options), transient(&e)))?;
    let status = response.status();
    if allow_404 && status == reqwest::StatusCode::NOT_FOUND {
        return Ok(None);
    }
    if !status.is_success() {
        return Err((format!("{url} answered {status}"), status.is_server_error()));
    }
    if let Some(n) = response.content_length() {
        if n > cap {
            return Err((format!("{url} is {n} bytes; at most {cap} were expected"), false));
        }
    }
    let mut bytes = Vec::new();
    while let Some(chunk) = response
        .chunk()
        .await
        .map_err(|e| (describe(url, &e, options), transient(&e)))?
    {
        if bytes.len() as u64 + chunk.len() as u64 > cap {
            return Err((format!("{url} sent more than the {cap} bytes expected"), false));
        }
        bytes.extend_from_slice(&chunk);
    }
    Ok(Some(bytes))
}

/// GET with retries and backoff for transient failures.
async fn get(client: &reqwest::Client, url: &str, cap: u64, options: &FetchOptions) -> Result<Vec<u8>> {
    Ok(get_maybe(client, url, cap, options, false)
        .await?
        .expect("a 404 is an error unless allowed"))
}

/// [`get`], with `Ok(None)` for a 404 when `allow_404`.
async fn get_maybe(
    client: &reqwest::Client,
    url: &str,
    cap: u64,
    options: &FetchOptions,
    allow_404: bool,
) -> Result<Option<Vec<u8>>> {
    let mut wait = options.backoff;
    let attempts = options.attempts.max(1);
    for attempt in 1..=attempts {
        match get_once(client, url, cap, options, allow_404).await {
            Ok(bytes) => return Ok(bytes),
            Err((message, retry)) if retry && attempt < attempts => {
                tracing::warn!(%message, attempt, "download failed; retrying in {wait:?}");
                tokio::time::sleep(wait).await;
                wait *= 2;
            }
            Err((message, _)) => bail!("{message} (after {attempt} of {attempts} tries)"),
        }
    }
    unreachable!("the loop returns on its last attempt")
}

/// Downloads the manifest at `manifest_url`, then each file, within `options`' limits, and verifies
/// them all (no signature check).
pub async fn fetch_bundle_with(manifest_url: &str, options: &FetchOptions) -> Result<Bundle> {
    Ok(fetch_signed_bundle(manifest_url, options, &TrustedKeys::none())
        .await?
        .0)
}

/// [`fetch_bundle_with`], and with `trusted` keys the manifest's signature (`<manifest URL>.sig`) is
/// fetched and checked over the exact manifest bytes before any other file is downloaded: a missing
/// (404), malformed, untrusted or not-verifying signature fails, naming the key id and the URL. Returns
/// the bundle and the signing key's id (`None`: no keys configured, nothing checked).
pub async fn fetch_signed_bundle(
    manifest_url: &str,
    options: &FetchOptions,
    trusted: &TrustedKeys,
) -> Result<(Bundle, Option<String>)> {
    let client = reqwest::Client::builder()
        .connect_timeout(options.connect_timeout)
        .read_timeout(options.read_timeout)
        .build()
        .context("building the HTTP client")?;
    let manifest_bytes = get(&client, manifest_url, MAX_MANIFEST_BYTES, options).await?;
    let key_id = if trusted.is_empty() {
        None
    } else {
        let sig_url = signature_url(manifest_url);
        let signature = get_maybe(&client, &sig_url, MAX_SIGNATURE_BYTES, options, true).await?;
        trusted.verify_manifest(&manifest_bytes, signature.as_deref(), manifest_url)?
    };
    let manifest =
        Manifest::from_json(&manifest_bytes).with_context(|| format!("manifest at {manifest_url}"))?;
    let mut files = HashMap::new();
    for entry in &manifest.files {
        let url = file_url(manifest_url, entry);
        tracing::info!(file = %entry.path, bytes = entry.size, %url, "downloading");
        files.insert(entry.path.clone(), get(&client, &url, entry.size, options).await?);
    }
    let bundle = Bundle::from_files(&manifest_bytes, |path| files.remove(path))
        .with_context(|| format!("bundle at {manifest_url} failed verification"))?;
    Ok((bundle, key_id))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_signature_sits_beside_the_manifest_before_any_query() {
        let cases = [
            (
                "http://h/v1/models/m/1/manifest.json",
                "http://h/v1/models/m/1/manifest.json.sig",
            ),
            (
                "http://h/b/manifest.json?x=1#f",
                "http://h/b/manifest.json.sig?x=1#f",
            ),
            ("http://h/b/manifest.json#f", "http://h/b/manifest.json.sig#f"),
        ];
        for (manifest, signature) in cases {
            assert_eq!(signature_url(manifest), signature);
        }
    }

    /// The one table of cases, shared with the browser loader's tests.
    #[test]
    fn blob_urls_follow_the_shared_table() {
        let path = concat!(env!("CARGO_MANIFEST_DIR"), "/../tests/blob-urls.json");
        let cases: Vec<serde_json::Value> = serde_json::from_slice(&std::fs::read(path).unwrap()).unwrap();
        assert!(cases.len() >= 10);
        for case in cases {
            let s = |k: &str| case[k].as_str().unwrap().to_owned();
            assert_eq!(
                blob_url(&s("manifest_url"), &s("sha256"), &s("path")),
                s("blob_url"),
                "case: {}",
                s("case")
            );
        }
    }
}
