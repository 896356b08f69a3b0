//! Fetching a bundle over HTTP: from a model-server or any static host.
//!
//! Every download is bounded: a connect timeout, a read timeout (a server that accepts and then sends
//! nothing fails within it, naming the URL), a size cap (the manifest's own for each file, 1 MiB for the
//! manifest), and retries with backoff for failures that may pass (connection errors, timeouts, 5xx).

use std::collections::HashMap;
use std::time::Duration;

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

/// One GET of at most `cap` bytes. `Err((message, retry))`.
async fn get_once(
    client: &reqwest::Client,
    url: &str,
    cap: u64,
    options: &FetchOptions,
) -> Result<Vec<u8>, (String, bool)> {
    let mut response = client
        .get(url)
        .send()
        .await
        .map_err(|e| (describe(url, &e, options), transient(&e)))?;
    let status = response.status();
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
    Ok(bytes)
}

/// GET with retries and backoff for transient failures.
async fn get(client: &reqwest::Client, url: &str, cap: u64, options: &FetchOptions) -> Result<Vec<u8>> {
    let mut wait = options.backoff;
    let attempts = options.attempts.max(1);
    for attempt in 1..=attempts {
        match get_once(client, url, cap, options).await {
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
/// them all.
pub async fn fetch_bundle_with(manifest_url: &str, options: &FetchOptions) -> Result<Bundle> {
    let client = reqwest::Client::builder()
        .connect_timeout(options.connect_timeout)
        .read_timeout(options.read_timeout)
        .build()
        .context("building the HTTP client")?;
    let manifest_bytes = get(&client, manifest_url, MAX_MANIFEST_BYTES, options).await?;
    let manifest =
        Manifest::from_json(&manifest_bytes).with_context(|| format!("manifest at {manifest_url}"))?;
    let mut files = HashMap::new();
    for entry in &manifest.files {
        let url = file_url(manifest_url, entry);
        tracing::info!(file = %entry.path, bytes = entry.size, %url, "downloading");
        files.insert(entry.path.clone(), get(&client, &url, entry.size, options).await?);
    }
    Bundle::from_files(&manifest_bytes, |path| files.remove(path))
        .with_context(|| format!("bundle at {manifest_url} failed verification"))
}

#[cfg(test)]
mod tests {
    use super::*;

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
