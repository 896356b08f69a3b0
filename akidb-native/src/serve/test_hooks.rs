//! Test-only hooks, compiled with the `test-hooks` feature (which `make test` enables for the process
//! tests, and no shipped build does).
//!
//! `AKIDB_TEST_HOLD_BATCH=PATH`: each worker, before it runs a batch, creates the file PATH and then
//! holds the batch until PATH is removed (at most 30 s). A test thereby knows a request is being worked
//! on — in flight — when it acts (e.g. sends SIGTERM), and decides when the work may finish.

use std::path::PathBuf;
use std::time::{Duration, Instant};

pub(super) fn hold_batch() {
    let Some(path) = std::env::var_os("AKIDB_TEST_HOLD_BATCH").map(PathBuf::from) else {
        return;
    };
    if std::fs::write(&path, b"held\n").is_err() {
        return;
    }
    let deadline = Instant::now() + Duration::from_secs(30);
    while path.exists() && Instant::now() < deadline {
        std::thread::sleep(Duration::from_millis(10));
    }
}
