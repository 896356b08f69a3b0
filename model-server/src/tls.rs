//! rustls's crypto provider for the HTTPS clients (the S3 store, snapshots, a replica following its
//! primary): ring, installed as the process default before any client is built.
//!
//! reqwest and object_store are built without a bundled provider (`rustls-no-provider`, object_store's
//! `ring`), so that the C library aws-lc-sys, their default, is not compiled: it cost about two minutes of
//! CI's CPU in each of the x86-64 and aarch64 builds. Without an installed provider, building a client
//! panics; every constructor calls [`install_crypto_provider`] first.

use std::sync::Once;

/// Installs ring as rustls's process-wide provider, once. Idempotent; if the embedding program installed
/// a provider of its own before, that one is kept.
///
/// ```
/// model_server::tls::install_crypto_provider();
/// assert!(rustls::crypto::CryptoProvider::get_default().is_some());
/// ```
pub fn install_crypto_provider() {
    static INSTALL: Once = Once::new();
    INSTALL.call_once(|| {
        // Err only when a provider is already installed: then that one serves.
        let _ = rustls::crypto::ring::default_provider().install_default();
    });
}

#[cfg(test)]
mod tests {
    /// An HTTPS client builds: without a provider, reqwest's builder panics
    /// ("no process-level CryptoProvider available").
    #[test]
    fn an_https_client_builds_once_the_provider_is_installed() {
        super::install_crypto_provider();
        super::install_crypto_provider();
        reqwest::Client::builder()
            .https_only(true)
            .build()
            .expect("a TLS client builds");
    }
}
