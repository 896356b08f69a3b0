//! What the workspace's Rust test suites share, written once (issue #12): the golden reference data and
//! its cosine bars, the bundle paths, free loopback ports and plain HTTP/1.1 requests, a binary spawned
//! and waited for over HTTP with its output kept for the failure message, and a real S3 API (moto_server)
//! that never outlives the test binary.
//!
//! A dev-dependency only: no shipped crate links it. [`golden`] is plain computation over bytes and
//! builds for wasm32 too (the browser golden suite parses `include_bytes!` data with it); the other
//! modules need a filesystem, sockets and processes.

pub mod golden;
// Process groups (the watchdog that kills moto with the test binary) are a unix API; the wasm32 build of
// the kit (for the browser golden suite) has no processes at all.
#[cfg(unix)]
pub mod moto;
pub mod net;
pub mod paths;
pub mod process;
