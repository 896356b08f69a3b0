//! The native side of AkiDB Edge: bundles on disk, the `akidb` CLI's building blocks and (with the
//! embedding service) the HTTP server. All inference goes through `akidb-core`.

pub mod bench;
pub mod bundle_dir;
pub mod jsonl;
