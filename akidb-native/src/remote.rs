//! Fetching a bundle over HTTP: from a model-server or any static host.

use std::collections::HashMap;

use akidb_core::{Bundle, FileEntry, Manifest};
use anyhow::{Context, Result};

/// Where a bundle file lives, given its manifest's URL. A model-server manifest
/// (`…/v1/models/{name}/{version}/manifest.json`) has its files at `…/v1/blobs/sha256/{hex}`;
/// elsewhere files sit beside the manifest.
pub fn file_url(manifest_url: &str, entry: &FileEntry) -> String {
    match manifest_url.find("/v1/models/") {
        Some(i) => format!("{}/v1/blobs/sha256/{}", &manifest_url[..i], entry.sha256),
        None => {
            let base = manifest_url.rsplit_once('/').map_or(manifest_url, |(b, _)| b);
            format!("{base}/{}", entry.path)
        }
    }
}

async fn get(client: &reqwest::Client, url: &str) -> Result<Vec<u8>> {
    let response = client
        .get(url)
        .send()
        .await
        .with_context(|| format!("cannot fetch {url}"))?;
    let status = response.status();
    anyhow::ensure!(status.is_success(), "{url} answered {status}");
    Ok(response
        .bytes()
        .await
        .with_context(|| format!("reading {url}"))?
        .to_vec())
}

/// Downloads the manifest at `manifest_url`, then each file, and verifies them all.
pub async fn fetch_bundle(manifest_url: &str) -> Result<Bundle> {
    let client = reqwest::Client::new();
    let manifest_bytes = get(&client, manifest_url).await?;
    let manifest =
        Manifest::from_json(&manifest_bytes).with_context(|| format!("manifest at {manifest_url}"))?;
    let mut files = HashMap::new();
    for entry in &manifest.files {
        let url = file_url(manifest_url, entry);
        tracing::info!(file = %entry.path, bytes = entry.size, %url, "downloading");
        files.insert(entry.path.clone(), get(&client, &url).await?);
    }
    Bundle::from_files(&manifest_bytes, |path| files.remove(path))
        .with_context(|| format!("bundle at {manifest_url} failed verification"))
}
