//! Loopback ports and minimal HTTP/1.1 over std sockets (enough to poll a readiness route or drive a
//! loopback service without an async runtime or an HTTP client crate).

use std::io::{Read, Write};
use std::net::{TcpListener, TcpStream};
use std::time::{Duration, Instant};

/// A loopback port nothing listens on right now (the OS picks it; it may be taken again before the
/// caller binds it, which loopback tests in one process tree accept).
pub fn free_port() -> u16 {
    TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .expect("bind an ephemeral loopback port")
        .port()
}

/// `127.0.0.1:<free port>`.
pub fn free_addr() -> String {
    format!("127.0.0.1:{}", free_port())
}

/// `GET path` on `addr` with `Connection: close`; the status code, or the I/O error (refused, reset,
/// timed out after `timeout`, or not an HTTP answer).
pub fn get_status(addr: &str, path: &str, timeout: Duration) -> std::io::Result<u16> {
    let mut stream = TcpStream::connect(addr)?;
    stream.set_read_timeout(Some(timeout))?;
    stream.set_write_timeout(Some(timeout))?;
    // One write: `write!` on the stream itself sends each formatted piece in its own segment.
    let request = format!("GET {path} HTTP/1.1\r\nHost: {addr}\r\nConnection: close\r\n\r\n");
    stream.write_all(request.as_bytes())?;
    // The status line is in the first bytes; the rest of the answer does not matter.
    let mut head = [0u8; 64];
    let mut len = 0;
    while len < 12 {
        let n = stream.read(&mut head[len..])?;
        if n == 0 {
            break;
        }
        len += n;
    }
    parse_status(&head[..len]).ok_or_else(|| {
        std::io::Error::new(
            std::io::ErrorKind::InvalidData,
            format!(
                "not an HTTP status line: {:?}",
                String::from_utf8_lossy(&head[..len])
            ),
        )
    })
}

/// Polls `GET path` on `addr` until it answers 200; panics after `timeout` with the last answer. For a
/// server the test runs in-process; a child process is better waited for with
/// [`Spawned::wait_ready`](crate::process::Spawned::wait_ready), which also notices it exiting.
pub fn wait_ok(addr: &str, path: &str, timeout: Duration) {
    let started = Instant::now();
    loop {
        let last = get_status(addr, path, Duration::from_secs(2));
        if matches!(last, Ok(200)) {
            return;
        }
        assert!(
            started.elapsed() < timeout,
            "http://{addr}{path} did not answer 200 within {timeout:?} (last: {last:?})"
        );
        std::thread::sleep(Duration::from_millis(50));
    }
}

/// One HTTP/1.1 request with `Connection: close` and a `Content-Length`; panics on I/O errors (a test
/// that expects a refused connection uses [`get_status`]). Returns (status, lower-cased head, body).
pub fn http_request(
    addr: &str,
    method: &str,
    path: &str,
    headers: &[(&str, &str)],
    body: &[u8],
) -> (u16, String, Vec<u8>) {
    let mut s = TcpStream::connect(addr).unwrap_or_else(|e| panic!("connect {addr}: {e}"));
    s.set_read_timeout(Some(Duration::from_secs(60)))
        .expect("set a read timeout");
    let mut head = format!(
        "{method} {path} HTTP/1.1\r\nHost: {addr}\r\nConnection: close\r\nContent-Length: {}\r\n",
        body.len()
    );
    for (k, v) in headers {
        head.push_str(&format!("{k}: {v}\r\n"));
    }
    head.push_str("\r\n");
    s.write_all(head.as_bytes())
        .and_then(|()| s.write_all(body))
        .unwrap_or_else(|e| panic!("{method} http://{addr}{path}: {e}"));
    read_response(&mut s)
}

/// Reads one whole response from `s` (the server closes after it): (status, lower-cased head, body).
pub fn read_response(s: &mut impl Read) -> (u16, String, Vec<u8>) {
    let mut raw = Vec::new();
    s.read_to_end(&mut raw).expect("read the response");
    let split = raw
        .windows(4)
        .position(|w| w == b"\r\n\r\n")
        .unwrap_or_else(|| panic!("no response head in {:?}", String::from_utf8_lossy(&raw)));
    let head = String::from_utf8_lossy(&raw[..split]).to_string();
    let status = parse_status(head.as_bytes()).unwrap_or_else(|| panic!("not an HTTP status line: {head:?}"));
    (status, head.to_ascii_lowercase(), raw[split + 4..].to_vec())
}

/// The status code of an `HTTP/1.x NNN` status line.
fn parse_status(head: &[u8]) -> Option<u16> {
    let text = std::str::from_utf8(head.get(..12)?).ok()?;
    let code = text.strip_prefix("HTTP/1.")?.get(2..5)?;
    code.parse().ok().filter(|c| (100..600).contains(c))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn status_lines_parse_and_garbage_does_not() {
        assert_eq!(parse_status(b"HTTP/1.1 200 OK\r\n"), Some(200));
        assert_eq!(parse_status(b"HTTP/1.0 503 Service Unavailable"), Some(503));
        assert_eq!(parse_status(b"HTTP/1.1 20"), None);
        assert_eq!(parse_status(b"SSH-2.0-OpenSSH_9.2p1"), None);
        assert_eq!(parse_status(b"HTTP/1.1 abc xyz"), None);
    }

    /// What a test server reads from `s` up to and including `end`, however TCP splits it.
    fn read_until(s: &mut impl Read, end: &[u8]) -> Vec<u8> {
        let mut buf = Vec::new();
        let mut chunk = [0u8; 256];
        while !buf.ends_with(end) {
            let n = s.read(&mut chunk).unwrap();
            assert!(n > 0, "request cut short: {:?}", String::from_utf8_lossy(&buf));
            buf.extend_from_slice(&chunk[..n]);
        }
        buf
    }

    #[test]
    fn a_real_listener_answers_and_a_free_port_refuses() {
        let listener = TcpListener::bind("127.0.0.1:0").unwrap();
        let addr = listener.local_addr().unwrap().to_string();
        let server = std::thread::spawn(move || {
            let (mut s, _) = listener.accept().unwrap();
            // The whole head: TCP may hand it over in pieces (one read got a partial request in CI).
            let buf = read_until(&mut s, b"\r\n\r\n");
            assert!(
                buf.starts_with(b"GET /readyz HTTP/1.1\r\n"),
                "{:?}",
                String::from_utf8_lossy(&buf)
            );
            s.write_all(b"HTTP/1.1 503 Service Unavailable\r\ncontent-length: 0\r\n\r\n")
                .unwrap();
        });
        assert_eq!(get_status(&addr, "/readyz", Duration::from_secs(5)).unwrap(), 503);
        server.join().unwrap();
        let refused = get_status(&free_addr(), "/readyz", Duration::from_secs(5));
        assert!(refused.is_err(), "{refused:?}");
    }

    #[test]
    fn a_request_sends_headers_and_body_and_reads_the_whole_answer() {
        let listener = TcpListener::bind("127.0.0.1:0").unwrap();
        let addr = listener.local_addr().unwrap().to_string();
        let server = std::thread::spawn(move || {
            let (mut s, _) = listener.accept().unwrap();
            let buf = read_until(&mut s, b"\r\n\r\nbody");
            let text = String::from_utf8(buf).unwrap();
            assert!(text.starts_with("PUT /x HTTP/1.1\r\n"), "{text}");
            assert!(text.contains("\r\nContent-Length: 4\r\n"), "{text}");
            assert!(text.contains("\r\nX-Test: yes\r\n"), "{text}");
            s.write_all(b"HTTP/1.1 201 Created\r\nX-Answer: A\r\n\r\nanswer")
                .unwrap();
        });
        let (status, head, body) = http_request(&addr, "PUT", "/x", &[("X-Test", "yes")], b"body");
        server.join().unwrap();
        assert_eq!(status, 201);
        assert!(head.contains("x-answer: a"), "{head}");
        assert_eq!(body, b"answer");
    }
}
