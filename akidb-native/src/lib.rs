//! The native side of AkiDB Edge: bundles on disk and over HTTP, the `akidb` CLI's building blocks and
//! the HTTP embedding service. All inference goes through `akidb-core`.

pub mod bench;
pub mod bundle_dir;
pub mod jsonl;
pub mod remote;
pub mod serve;
pub mod signing;
