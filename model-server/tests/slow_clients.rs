//! Slow clients (issue #21): idle connections and connections that send part of a request head are closed
//! within the configured header-read timeout, while normal requests are served meanwhile.

mod common;

use std::io::{Read, Write};
use std::net::TcpStream;
use std::process::Command;
use std::time::{Duration, Instant};

use common::*;

const BIN: &str = env!("CARGO_BIN_EXE_model-server");

/// How long the server takes to close `s`, which sends nothing more; panics after `limit`.
fn closed_within(mut s: TcpStream, limit: Duration) -> Duration {
    let start = Instant::now();
    s.set_read_timeout(Some(limit)).unwrap();
    let mut buf = [0u8; 1024];
    loop {
        match s.read(&mut buf) {
            Ok(0) => return start.elapsed(),
            Ok(_) => continue, // an error answer (408) before the close is fine
            Err(e) if e.kind() == std::io::ErrorKind::ConnectionReset => return start.elapsed(),
            Err(e) => panic!("still open after {:?}: {e}", start.elapsed()),
        }
    }
}

/// `serve` with a 1 s header-read timeout; the process is killed when the guard drops (also when an
/// assertion fails, so no server outlives its test).
struct Server {
    _process: Spawned,
    addr: String,
    _tmp: tempfile::TempDir,
}

fn server() -> Server {
    let tmp = tempfile::tempdir().unwrap();
    let addr = free_addr();
    let mut serve = Command::new(BIN);
    serve
        .args([
            "serve",
            "--data",
            tmp.path().join("data").to_str().unwrap(),
            "--addr",
            &addr,
        ])
        .args(["--read-only", "--header-read-timeout-secs", "1"]);
    let mut process = Spawned::spawn(serve);
    process.wait_ready(&addr, "/healthz", READY_TIMEOUT);
    Server {
        _process: process,
        addr,
        _tmp: tmp,
    }
}

/// Normal requests answered meanwhile: the slowest of ten.
fn served_meanwhile(addr: &str) -> std::thread::JoinHandle<Duration> {
    let addr = addr.to_owned();
    std::thread::spawn(move || {
        (0..10)
            .map(|_| {
                let t = Instant::now();
                assert_eq!(http_request(&addr, "GET", "/v1/models", &[], b"").0, 200);
                t.elapsed()
            })
            .max()
            .unwrap()
    })
}

/// Configured 1 s; allow 5 s for a loaded machine. Without a timeout they stay open indefinitely.
const LIMIT: Duration = Duration::from_secs(5);

#[test]
fn partial_header_and_idle_keep_alive_connections_are_closed_while_others_are_served() {
    let srv = server();
    let mut partial = TcpStream::connect(&srv.addr).unwrap();
    partial
        .write_all(b"GET /v1/models HTTP/1.1\r\nHost: x\r\nX-Slow: ")
        .unwrap();
    // A keep-alive connection that was served once and then goes quiet.
    let mut kept = TcpStream::connect(&srv.addr).unwrap();
    kept.write_all(b"GET /healthz HTTP/1.1\r\nHost: x\r\n\r\n")
        .unwrap();
    let mut first = [0u8; 12];
    kept.read_exact(&mut first).unwrap();
    assert_eq!(&first, b"HTTP/1.1 200");
    let served = served_meanwhile(&srv.addr);
    for (what, s) in [("partial head", partial), ("idle keep-alive", kept)] {
        let took = closed_within(s, LIMIT);
        assert!(took < LIMIT, "{what} connection closed after {took:?}");
    }
    let slowest = served.join().unwrap();
    assert!(
        slowest < Duration::from_secs(2),
        "a normal request took {slowest:?}"
    );
}

/// A connection that never sends a byte. The HTTP/1-or-2 auto-detection reads the first bytes before
/// hyper's header timer starts, so akidb-http's `serve` waits for them under the same timeout itself
/// (this test failed before it did).
#[test]
fn a_connection_that_sends_nothing_is_closed() {
    let srv = server();
    let idle = TcpStream::connect(&srv.addr).unwrap();
    let served = served_meanwhile(&srv.addr);
    let took = closed_within(idle, LIMIT);
    assert!(took < LIMIT, "idle connection closed after {took:?}");
    assert!(served.join().unwrap() < Duration::from_secs(2));
}
