//! A real S3 API on loopback for the suites that need one: `moto_server` (from PyPI, installed by
//! `scripts/install-moto.sh` into `target/tools/moto-venv`, or named by `$MOTO_SERVER`).
//!
//! [`shared`] is the one instance of a test binary (started on first use; each test takes a fresh
//! bucket from it); [`Moto::start`] is a private one, for a test that stops it or turns its credential
//! checks on. Neither outlives the test binary: moto runs under a small shell watchdog that kills it once
//! the test process is gone (a `static` is never dropped, and a test binary killed by a signal runs no
//! destructors at all); a private instance is also killed when dropped.
//!
//! Plain data only (addresses, bucket names, keys): the suites build their own S3 client options.

use std::path::PathBuf;
use std::process::{Command, ExitStatus};
use std::sync::atomic::{AtomicU32, Ordering};
use std::sync::OnceLock;
use std::time::Duration;

use crate::net::{free_port, http_request};
use crate::process::Spawned;

/// The region every bucket is in.
pub const REGION: &str = "us-east-1";
/// The access key the suites sign with. moto accepts any key while its credential checks are off (its
/// default); see [`Moto::enforce_credentials`].
pub const ACCESS_KEY_ID: &str = "testing";
/// The secret that goes with [`ACCESS_KEY_ID`].
pub const SECRET_ACCESS_KEY: &str = "testing";

/// An `Authorization` header naming [`ACCESS_KEY_ID`] with a dummy signature. moto checks object ACLs
/// against the caller (an anonymous GET of an object a signed client wrote is a 403) but, with credential
/// checks off, not signatures: a raw request carrying this header acts as the suites' clients do.
const RAW_S3_AUTH: &str =
    "AWS4-HMAC-SHA256 Credential=testing/20260101/us-east-1/s3/aws4_request, SignedHeaders=host, Signature=0";
/// The same for moto's IAM API (the credential scope names the service moto dispatches to).
const RAW_IAM_AUTH: &str =
    "AWS4-HMAC-SHA256 Credential=testing/20260101/us-east-1/iam/aws4_request, SignedHeaders=host, Signature=0";

/// How long moto (a Python process) may take to answer for the first time on a loaded machine.
const START_TIMEOUT: Duration = Duration::from_secs(60);

/// A running moto_server on a loopback port.
pub struct Moto {
    addr: String,
    /// The watchdog shell, leader of a process group that holds moto too.
    process: Spawned,
    stopped: bool,
}

/// IAM credentials moto issued (see [`Moto::create_user`]).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Credentials {
    /// The access key id (`AKIA…`).
    pub access_key_id: String,
    /// Its secret.
    pub secret_access_key: String,
}

/// The moto_server binary: `$MOTO_SERVER`, else `target/tools/moto-venv/bin/moto_server`; panics naming
/// `scripts/install-moto.sh` when it is missing.
pub fn binary() -> PathBuf {
    let path = std::env::var_os("MOTO_SERVER")
        .map(PathBuf::from)
        .unwrap_or_else(|| crate::paths::workspace().join("target/tools/moto-venv/bin/moto_server"));
    assert!(
        path.is_file(),
        "moto_server not found at {} (nor named by $MOTO_SERVER): run scripts/install-moto.sh",
        path.display()
    );
    path
}

/// The test binary's shared moto_server, started on first use. Tests share it through buckets of their
/// own ([`Moto::bucket`]); a test that must stop moto or change its settings starts its own.
pub fn shared() -> &'static Moto {
    static SHARED: OnceLock<Moto> = OnceLock::new();
    SHARED.get_or_init(Moto::start)
}

impl Moto {
    /// Starts a private moto_server on a free loopback port and waits until it answers. Killed when
    /// dropped, and in any case once the test process is gone.
    pub fn start() -> Moto {
        Moto::start_watched_by(std::process::id())
    }

    /// [`Moto::start`], killed once process `owner` is gone rather than this one (the kit's own check of
    /// the watchdog uses it with a process it can end).
    pub fn start_watched_by(owner: u32) -> Moto {
        let port = free_port().to_string();
        // `$0` moto, `$1` port, `$2` the owner (the test process). The loop polls the owner: when it is gone
        // (finished, panicked, killed), moto goes too. SIGKILL of the group (drop) ends all three.
        let watchdog = r#""$0" -H 127.0.0.1 -p "$1" & moto=$!
while kill -0 "$2" 2>/dev/null; do sleep 1; done
kill "$moto" 2>/dev/null"#;
        let mut command = Command::new("sh");
        command
            .args(["-c", watchdog])
            .arg(binary())
            .args([&port, &owner.to_string()]);
        // A group of its own, so that stopping it reaches moto and nothing else.
        std::os::unix::process::CommandExt::process_group(&mut command, 0);
        let mut process = Spawned::spawn(command);
        let addr = format!("127.0.0.1:{port}");
        process.wait_ready(&addr, "/moto-api/data.json", START_TIMEOUT);
        Moto {
            addr,
            process,
            stopped: false,
        }
    }

    /// `127.0.0.1:PORT`.
    pub fn addr(&self) -> &str {
        &self.addr
    }

    /// `http://127.0.0.1:PORT`, the endpoint an S3 client is given.
    pub fn endpoint(&self) -> String {
        format!("http://{}", self.addr)
    }

    /// Creates bucket `name`; panics with moto's answer unless it was created.
    pub fn create_bucket(&self, name: &str) {
        let (status, body) = self.s3("PUT", &format!("/{name}"), b"");
        assert_eq!(
            status,
            200,
            "creating bucket {name}: {}",
            String::from_utf8_lossy(&body)
        );
    }

    /// A new, empty bucket with a name no other call of this test binary gets.
    pub fn bucket(&self) -> String {
        static NEXT: AtomicU32 = AtomicU32::new(0);
        let name = format!("t{}-{}", std::process::id(), NEXT.fetch_add(1, Ordering::Relaxed));
        self.create_bucket(&name);
        name
    }

    /// A raw S3 request on `path` (`/bucket/key?query`) as the suites' own key: (status, body). For what a
    /// test does behind the service's back (tampering, listing, planting objects).
    pub fn s3(&self, method: &str, path: &str, body: &[u8]) -> (u16, Vec<u8>) {
        let (status, _, body) =
            http_request(&self.addr, method, path, &[("authorization", RAW_S3_AUTH)], body);
        (status, body)
    }

    /// Writes object `key` of `bucket`; panics unless moto stored it.
    pub fn put_object(&self, bucket: &str, key: &str, body: &[u8]) {
        let (status, answer) = self.s3("PUT", &format!("/{bucket}/{key}"), body);
        assert_eq!(
            status,
            200,
            "PUT s3://{bucket}/{key}: {}",
            String::from_utf8_lossy(&answer)
        );
    }

    /// Every object key in `bucket`, in S3's order (lexicographic).
    pub fn keys(&self, bucket: &str) -> Vec<String> {
        let (status, body) = self.s3("GET", &format!("/{bucket}?list-type=2&max-keys=1000"), b"");
        let xml = String::from_utf8_lossy(&body);
        assert_eq!(status, 200, "listing s3://{bucket}: {xml}");
        assert!(
            xml_values(&xml, "IsTruncated") == ["false"],
            "s3://{bucket} holds more than 1000 objects: {xml}"
        );
        xml_values(&xml, "Key")
    }

    /// The multipart uploads of `bucket` begun and neither completed nor aborted.
    pub fn pending_uploads(&self, bucket: &str) -> usize {
        let (status, body) = self.s3("GET", &format!("/{bucket}?uploads"), b"");
        let xml = String::from_utf8_lossy(&body);
        assert_eq!(status, 200, "listing the uploads of s3://{bucket}: {xml}");
        xml_values(&xml, "UploadId").len()
    }

    /// An IAM user `name` allowed every S3 action, and an access key of it. Call before
    /// [`Moto::enforce_credentials`] (moto's IAM API needs no credentials until then).
    pub fn create_user(&self, name: &str) -> Credentials {
        let policy =
            r#"{"Version":"2012-10-17","Statement":[{"Effect":"Allow","Action":"s3:*","Resource":"*"}]}"#;
        self.iam(&[("Action", "CreateUser"), ("UserName", name)]);
        self.iam(&[
            ("Action", "PutUserPolicy"),
            ("UserName", name),
            ("PolicyName", "all-of-s3"),
            ("PolicyDocument", policy),
        ]);
        let xml = self.iam(&[("Action", "CreateAccessKey"), ("UserName", name)]);
        let one = |tag: &str| match xml_values(&xml, tag).as_slice() {
            [value] => value.clone(),
            other => panic!("CreateAccessKey answered {other:?} for <{tag}>: {xml}"),
        };
        Credentials {
            access_key_id: one("AccessKeyId"),
            secret_access_key: one("SecretAccessKey"),
        }
    }

    /// From now on moto checks every request's access key and signature (its
    /// `INITIAL_NO_AUTH_ACTION_COUNT` set to 0): only keys from [`Moto::create_user`] pass. Global to
    /// this moto, so only for a private instance ([`Moto::start`]); the raw helpers stop working too.
    pub fn enforce_credentials(&self) {
        let (status, _, body) = http_request(
            &self.addr,
            "POST",
            "/moto-api/reset-auth",
            &[("content-type", "text/plain")],
            b"0",
        );
        assert_eq!(status, 200, "reset-auth: {}", String::from_utf8_lossy(&body));
    }

    /// Kills moto (S3 gone, as a test simulates an outage) and returns the watchdog's exit status.
    pub fn stop(&mut self) -> ExitStatus {
        self.kill_group();
        self.process.kill()
    }

    /// One call of moto's IAM query API; its XML answer, or a panic with it.
    fn iam(&self, params: &[(&str, &str)]) -> String {
        let mut form: Vec<String> = params
            .iter()
            .map(|(k, v)| format!("{k}={}", form_encode(v)))
            .collect();
        form.push("Version=2010-05-08".into());
        let (status, _, body) = http_request(
            &self.addr,
            "POST",
            "/",
            &[
                ("authorization", RAW_IAM_AUTH),
                ("content-type", "application/x-www-form-urlencoded"),
            ],
            form.join("&").as_bytes(),
        );
        let xml = String::from_utf8_lossy(&body).into_owned();
        assert_eq!(status, 200, "IAM {params:?}: {xml}");
        xml
    }

    fn kill_group(&mut self) {
        if !self.stopped {
            self.stopped = true;
            // The group is the watchdog's pid (`process_group(0)`): moto, the shell and its sleep.
            let _ = Command::new("kill")
                .args(["-KILL", "--", &format!("-{}", self.process.id())])
                .status();
        }
    }
}

impl Drop for Moto {
    fn drop(&mut self) {
        self.kill_group();
    }
}

/// The text of every `<tag>…</tag>` in `xml`, in order, with XML's five entities decoded.
fn xml_values(xml: &str, tag: &str) -> Vec<String> {
    let (open, close) = (format!("<{tag}>"), format!("</{tag}>"));
    let mut out = Vec::new();
    let mut rest = xml;
    while let Some(start) = rest.find(&open) {
        let after = &rest[start + open.len()..];
        let Some(end) = after.find(&close) else { break };
        out.push(
            after[..end]
                .replace("&lt;", "<")
                .replace("&gt;", ">")
                .replace("&quot;", "\"")
                .replace("&apos;", "'")
                .replace("&amp;", "&"),
        );
        rest = &after[end + close.len()..];
    }
    out
}

/// `application/x-www-form-urlencoded` encoding of one value.
fn form_encode(value: &str) -> String {
    value
        .bytes()
        .map(|b| match b {
            b'A'..=b'Z' | b'a'..=b'z' | b'0'..=b'9' | b'-' | b'_' | b'.' | b'~' => (b as char).to_string(),
            _ => format!("%{b:02X}"),
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn xml_values_in_order_and_decoded() {
        let xml = "<R><Key>a&amp;b</Key><Size>1</Size><Key>c</Key><Key>unclosed";
        assert_eq!(xml_values(xml, "Key"), ["a&b", "c"]);
        assert_eq!(xml_values(xml, "Size"), ["1"]);
        assert!(xml_values(xml, "Nope").is_empty());
    }

    #[test]
    fn form_values_are_percent_encoded() {
        assert_eq!(
            form_encode(r#"{"a": "s3:*"}"#),
            "%7B%22a%22%3A%20%22s3%3A%2A%22%7D"
        );
        assert_eq!(form_encode("Plain-1_2.3~"), "Plain-1_2.3~");
    }
}
