//! `model-server`: serves versioned, content-addressed model bundles (the offline model download API).
//!
//! Clients fetch `GET /v1/models/{name}/{version}/manifest.json` (a version or an alias such as `latest`),
//! then every file the manifest lists from `GET /v1/blobs/sha256/{sha256}`, and verify each file against the
//! manifest. Blobs are immutable and cached forever; listings and alias-resolved manifests live 60 s.
//!
//! - [`store`]: the [`store::BlobStore`] trait and its backends: a local content-addressed directory, and
//!   an S3 bucket.
//! - [`registry`]: SQLite metadata (models, versions, files, aliases).
//! - [`publish`]: verify a bundle, store its blobs durably, then record the version in one transaction.
//! - [`server`]: the axum [`server::router`].
//! - [`snapshot`]: registry snapshots in S3 (push, pointer); [`replica`]: read-only replicas that pull them.
//! - [`tls`]: the HTTPS clients' crypto provider (ring).
//!
//! The HTTP plumbing (error shape, metrics middleware, timeouts, shutdown, tracing) is akidb-http's.

pub mod publish;
pub mod registry;
pub mod replica;
pub mod server;
pub mod snapshot;
pub mod store;
pub mod tls;

pub use publish::{open_data_dir, publish_dir, publish_manifest, PublishError};
pub use registry::{Recorded, Registry, RegistryError};
pub use server::{router, ApiDoc, AppState, Config};
pub use store::{BlobHash, BlobStore, LocalBlobStore, PutError, S3BlobStore, S3Options};
