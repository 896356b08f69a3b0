//! Registry snapshots and read-only replicas, with the real binary against a real S3 API (moto_server on
//! loopback, installed by scripts/install-moto.sh into target/tools/moto-venv): push → pull → serve,
//! alias moves, the push path, SIGKILL mid-pull, refused snapshots, missing blobs, racing primaries, 403s.

mod common;

use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::{Duration, Instant};

use common::*;

/// The binary under test: cargo's, or `$MODEL_SERVER_BIN` (a copy kept aside where several builds share
/// one target directory and overwrite `target/release/model-server`).
fn bin() -> PathBuf {
    std::env::var_os("MODEL_SERVER_BIN")
        .map(PathBuf::from)
        .unwrap_or_else(|| PathBuf::from(env!("CARGO_BIN_EXE_model-server")))
}
const MODEL: &str = "all-MiniLM-L6-v2";

/// The test binary's moto_server (akidb-testkit's, shared; each test uses buckets of its own).
fn moto() -> &'static moto::Moto {
    moto::shared()
}

/// A fresh bucket on moto; returns `s3://bucket/registry`.
fn bucket(name: &str) -> String {
    moto().create_bucket(name);
    format!("s3://{name}/registry")
}

/// Raw object access on moto (the test plays the tampering party): (status, body).
fn object(method: &str, bucket_url: &str, key: &str, body: &[u8]) -> (u16, Vec<u8>) {
    let path = format!("/{}/{key}", bucket_url.strip_prefix("s3://").unwrap());
    moto().s3(method, &path, body)
}

fn put_object(bucket_url: &str, key: &str, body: &[u8]) {
    let (status, b) = object("PUT", bucket_url, key, body);
    assert_eq!(status, 200, "{}", String::from_utf8_lossy(&b));
}

fn get_object(bucket_url: &str, key: &str) -> Vec<u8> {
    let (status, b) = object("GET", bucket_url, key, b"");
    assert_eq!(status, 200, "{key}: {}", String::from_utf8_lossy(&b));
    b
}

fn delete_object(bucket_url: &str, key: &str) {
    let (status, b) = object("DELETE", bucket_url, key, b"");
    assert_eq!(status, 204, "{key}: {}", String::from_utf8_lossy(&b));
}

fn pointer(bucket_url: &str) -> serde_json::Value {
    serde_json::from_slice(&get_object(bucket_url, "latest.json")).unwrap()
}

fn command() -> Command {
    let mut c = Command::new(bin());
    c.env("AWS_ENDPOINT_URL", moto().endpoint())
        .env("AWS_ALLOW_HTTP", "true")
        .env("AWS_REGION", moto::REGION)
        .env("AWS_ACCESS_KEY_ID", moto::ACCESS_KEY_ID)
        .env("AWS_SECRET_ACCESS_KEY", moto::SECRET_ACCESS_KEY)
        .env_remove("MODEL_SERVER_TEST_PAUSE");
    c
}

/// Runs the CLI; panics with its stderr unless it succeeds.
fn cli(args: &[&str]) -> String {
    let out = command().args(args).output().unwrap();
    assert!(
        out.status.success(),
        "model-server {args:?}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8_lossy(&out.stdout).into_owned()
}

fn s(p: &Path) -> &str {
    p.to_str().unwrap()
}

/// Publishes a loadable bundle `version` (bytes of its own from `seed`) into `data`, with `aliases`.
fn publish(data: &Path, version: &str, seed: u8, aliases: &[&str]) -> Vec<u8> {
    let dir = data.parent().unwrap().join(format!("bundle-{version}"));
    let bundle = write_real_bundle(&dir, MODEL, version, seed);
    let mut args = vec!["publish", "--data", s(data), s(&bundle)];
    for a in aliases {
        args.extend(["--alias", a]);
    }
    cli(&args);
    std::fs::read(bundle.join("manifest.json")).unwrap()
}

fn push(data: &Path, to: &str) -> String {
    cli(&["snapshot", "push", "--data", s(data), "--to", to])
}

/// A running server (killed with SIGKILL when dropped) and its address.
struct Proc {
    process: Spawned,
    addr: String,
}

impl Proc {
    /// Starts `cmd`, which serves on `addr`, and waits until it answers `/healthz`.
    fn serve(cmd: Command, addr: String) -> Proc {
        let mut process = Spawned::spawn(cmd);
        process.wait_ready(&addr, "/healthz", READY_TIMEOUT);
        Proc { process, addr }
    }

    /// Waits for an output line equal to `line`.
    fn wait_line(&mut self, line: &str) {
        self.process.wait_for_line(line, Duration::from_secs(30));
    }

    fn get(&self, path: &str) -> (u16, String, Vec<u8>) {
        http_request(&self.addr, "GET", path, &[], b"")
    }

    fn metrics(&self) -> String {
        String::from_utf8(self.get("/metrics").2).unwrap()
    }

    fn versions(&self) -> Vec<String> {
        let (status, _, body) = self.get(&format!("/v1/models/{MODEL}"));
        if status == 404 {
            return vec![];
        }
        let v: serde_json::Value = serde_json::from_slice(&body).unwrap();
        v["versions"]
            .as_array()
            .unwrap()
            .iter()
            .map(|v| v["version"].as_str().unwrap().to_owned())
            .collect()
    }

    fn latest(&self) -> Vec<u8> {
        let (status, _, body) = self.get(&format!("/v1/models/{MODEL}/latest/manifest.json"));
        assert_eq!(status, 200, "{}", String::from_utf8_lossy(&body));
        body
    }
}

/// Polls `f` every 20 ms until it holds (or panics after `secs`); returns the time it took.
fn until(secs: u64, what: &str, mut f: impl FnMut() -> bool) -> Duration {
    let start = Instant::now();
    while !f() {
        assert!(
            start.elapsed() < Duration::from_secs(secs),
            "timed out waiting for: {what}"
        );
        std::thread::sleep(Duration::from_millis(20));
    }
    start.elapsed()
}

/// `model-server replica` on a free port; `extra` arguments after the common ones.
fn replica(from: &str, data: &Path, extra: &[&str], pause: Option<&str>) -> Proc {
    let addr = free_addr();
    let mut cmd = command();
    cmd.args(["replica", "--from", from, "--data", s(data), "--addr", &addr])
        .args(extra);
    if let Some(p) = pause {
        cmd.env("MODEL_SERVER_TEST_PAUSE", p);
    }
    Proc::serve(cmd, addr)
}

#[test]
fn publish_push_pull_serves_the_new_version_and_alias_moves() {
    let tmp = tempfile::tempdir().unwrap();
    let (primary, rdata) = (tmp.path().join("primary"), tmp.path().join("replica"));
    let to = bucket("push-pull");
    let v1 = publish(&primary, "1.0.0", 1, &["latest"]);
    let out = push(&primary, &to);
    assert!(
        out.starts_with("pushed generation 1 as s3://push-pull/registry/snapshots/"),
        "{out}"
    );
    assert_eq!(pointer(&to)["generation"], 1);
    // Pushing again with nothing published moves nothing.
    assert!(push(&primary, &to).starts_with("unchanged"), "pushing twice");

    // The replica's store is the primary's blob directory (as if S3 replication had copied it).
    let store = primary.join("blobs");
    let r = replica(&to, &rdata, &["--every", "200ms", "--store", s(&store)], None);
    until(20, "first pull", || r.get("/readyz").0 == 200);
    assert_eq!(r.latest(), v1);
    assert!(r.metrics().contains("model_server_snapshot_generation 1\n"));

    let v2 = publish(&primary, "2.0.0", 2, &["latest"]);
    push(&primary, &to);
    until(20, "2.0.0 on the replica", || r.versions() == ["1.0.0", "2.0.0"]);
    assert_eq!(r.latest(), v2);
    // Polled: the replica reopens the swapped database a moment before it records the generation it
    // serves (src/replica.rs, `pull`), so the metric can lag the listing by that moment.
    until(20, "generation 2 in the metrics", || {
        r.metrics().contains("model_server_snapshot_generation 2\n")
    });

    cli(&["alias", "set", "--data", s(&primary), MODEL, "latest", "1.0.0"]);
    push(&primary, &to);
    until(20, "alias move on the replica", || r.latest() == v1);
    until(20, "generation 3 in the metrics", || {
        r.metrics().contains("model_server_snapshot_generation 3\n")
    });
    let m = r.metrics();
    assert!(m.contains("model_server_snapshot_missing_blobs 0\n"), "{m}");
    assert!(!m.contains("model_server_snapshot_last_error{"), "{m}");

    // Every write to a replica: 403, JSON, saying it is a replica.
    let manifest = v2.as_slice();
    let auth = [("authorization", "Bearer anything")];
    for (method, path, body) in [
        ("PUT", format!("/v1/models/{MODEL}/3.0.0/manifest.json"), manifest),
        (
            "PUT",
            format!("/v1/models/{MODEL}/aliases/latest"),
            &br#"{"version":"2.0.0"}"#[..],
        ),
        ("PUT", format!("/v1/blobs/sha256/{}", "a".repeat(64)), &b"x"[..]),
        ("GET", "/v1/registry/events".to_owned(), &b""[..]),
    ] {
        let (status, _, body) = http_request(&r.addr, method, &path, &auth, body);
        assert_eq!(status, 403, "{method} {path}");
        let e: serde_json::Value = serde_json::from_slice(&body).unwrap();
        let msg = e["error"]["message"].as_str().unwrap();
        assert!(
            msg.contains("read-only replica of s3://push-pull/registry"),
            "{msg}"
        );
    }
    assert_eq!(r.versions(), ["1.0.0", "2.0.0"]);
}

#[test]
fn push_path_announces_and_the_replica_pulls_at_once() {
    let tmp = tempfile::tempdir().unwrap();
    let (pdata, rdata) = (tmp.path().join("primary"), tmp.path().join("replica"));
    let to = bucket("push-path");
    let token_file = tmp.path().join("token");
    std::fs::write(&token_file, TOKEN).unwrap();
    publish(&pdata, "1.0.0", 1, &["latest"]);
    let paddr = free_addr();
    let mut cmd = command();
    cmd.args([
        "serve",
        "--data",
        s(&pdata),
        "--addr",
        &paddr,
        "--snapshot-to",
        &to,
    ])
    .env("MODEL_SERVER_TOKEN", TOKEN);
    let primary = Proc::serve(cmd, paddr);
    until(20, "the start-up push", || {
        object("GET", &to, "latest.json", b"").0 == 200
    });
    // The events need the token.
    let (status, _, _) = primary.get("/v1/registry/events");
    assert_eq!(status, 401);

    // Polling once an hour: only the announcement can make the replica pull.
    let r = replica(
        &to,
        &rdata,
        &[
            "--every",
            "1h",
            "--store",
            s(&pdata.join("blobs")),
            "--primary",
            &format!("http://{}", primary.addr),
            "--primary-token-file",
            s(&token_file),
        ],
        None,
    );
    until(20, "first pull", || r.get("/readyz").0 == 200);
    assert_eq!(r.versions(), ["1.0.0"]);
    let v2 = publish(&pdata, "2.0.0", 2, &["latest"]);
    let took = until(20, "2.0.0 through the push path", || {
        r.versions() == ["1.0.0", "2.0.0"]
    });
    assert_eq!(r.latest(), v2);
    eprintln!("publish → visible on the replica through the push path: {took:?}");
}

#[test]
fn sigkill_mid_pull_restarts_on_the_previous_snapshot_and_the_next_pull_completes() {
    let tmp = tempfile::tempdir().unwrap();
    let (primary, rdata) = (tmp.path().join("primary"), tmp.path().join("replica"));
    let to = bucket("crash");
    let v1 = publish(&primary, "1.0.0", 1, &["latest"]);
    push(&primary, &to);
    let store = primary.join("blobs");
    let args = ["--every", "200ms", "--store", s(&store)];
    {
        let r = replica(&to, &rdata, &args, None);
        until(20, "first pull", || r.get("/readyz").0 == 200);
    }
    let v2 = publish(&primary, "2.0.0", 2, &["latest"]);
    push(&primary, &to);
    let db = std::fs::read(rdata.join("registry.sqlite")).unwrap();
    for point in ["pull-fetched", "pull-unpacked"] {
        let mut r = replica(&to, &rdata, &args, Some(point));
        r.wait_line(&format!("paused at {point}"));
        assert_eq!(
            r.latest(),
            v1,
            "{point}: the previous snapshot serves during the pull"
        );
        drop(r); // SIGKILL
        assert_eq!(
            std::fs::read(rdata.join("registry.sqlite")).unwrap(),
            db,
            "{point}"
        );
        // Restarted (and held before its own pull swaps anything): the previous snapshot, ready, and the
        // killed pull's temporary file gone.
        let mut r = replica(&to, &rdata, &args, Some("pull-fetched"));
        r.wait_line("paused at pull-fetched");
        assert!(!rdata.join(".pull.tmp").exists(), "{point}");
        assert_eq!(r.latest(), v1, "{point}");
        assert_eq!(r.versions(), ["1.0.0"], "{point}");
        assert_eq!(r.get("/readyz").0, 200, "{point}");
    }
    // Killed after the rename: the swapped file is complete and verified, so it serves the new snapshot.
    let mut r = replica(&to, &rdata, &args, Some("pull-renamed"));
    r.wait_line("paused at pull-renamed");
    drop(r);
    let r = replica(&to, &rdata, &["--every", "200ms", "--store", s(&store)], None);
    assert_eq!(r.latest(), v2);
    // The next pull completes (it rewrites the record the kill skipped) and the replica is current.
    until(20, "pull after the crash", || {
        r.metrics().contains("model_server_snapshot_age_seconds 0\n") && r.get("/readyz").0 == 200
    });
    assert_eq!(r.versions(), ["1.0.0", "2.0.0"]);
    let state: serde_json::Value =
        serde_json::from_slice(&std::fs::read(rdata.join("replica.json")).unwrap()).unwrap();
    assert_eq!(state["served"]["snapshot"], pointer(&to)["snapshot"]);
}

#[test]
fn flipped_truncated_and_missing_snapshots_are_refused_naming_the_object() {
    let tmp = tempfile::tempdir().unwrap();
    let (primary, rdata) = (tmp.path().join("primary"), tmp.path().join("replica"));
    let to = bucket("refuse");
    publish(&primary, "1.0.0", 1, &["latest"]);
    push(&primary, &to);
    let r = replica(
        &to,
        &rdata,
        &["--every", "100ms", "--store", s(&primary.join("blobs"))],
        None,
    );
    until(20, "first pull", || r.get("/readyz").0 == 200);

    publish(&primary, "2.0.0", 2, &["latest"]);
    push(&primary, &to);
    until(20, "2.0.0", || r.versions().len() == 2);
    let served = r.latest();
    let p = pointer(&to);
    // The next snapshot is pushed to another prefix first (so the replica cannot take the intact one),
    // then copied here with the damage applied: each case replaces the object the pointer names.
    publish(&primary, "3.0.0", 3, &["latest"]);
    let staging = format!("{to}-staging");
    push(&primary, &staging);
    let sp = pointer(&staging);
    let key = format!("snapshots/{}.sqlite.gz", sp["snapshot"].as_str().unwrap());
    let good = get_object(&staging, &key);
    assert_ne!(sp["snapshot"], p["snapshot"]);
    let mut flipped = good.clone();
    let mid = flipped.len() / 2;
    flipped[mid] ^= 0x01;
    let truncated = good[..good.len() - 100].to_vec();
    let url = format!("{to}/{key}");
    for (case, object, want) in [
        (
            "flipped byte",
            Some(&flipped),
            format!("snapshot {url} is corrupt"),
        ),
        (
            "truncated",
            Some(&truncated),
            format!("snapshot {url} is corrupt"),
        ),
        (
            "missing",
            None,
            format!("snapshot {url} (named by {to}/latest.json) not found"),
        ),
    ] {
        if let Some(bytes) = object {
            put_object(&to, &key, bytes);
        } else {
            delete_object(&to, &key);
        }
        put_object(&to, "latest.json", &serde_json::to_vec(&sp).unwrap());
        until(20, case, || r.metrics().contains(&want));
        assert_eq!(r.latest(), served, "{case}: nothing changes");
        assert_eq!(r.versions(), ["1.0.0", "2.0.0"], "{case}");
        assert!(!rdata.join(".pull.tmp").exists(), "{case}");
        assert!(
            r.metrics().contains("model_server_snapshot_generation 2\n"),
            "{case}"
        );
        // Put the previous pointer back, so the next case starts from "current".
        put_object(&to, "latest.json", &serde_json::to_vec(&p).unwrap());
        until(20, "error cleared", || {
            !r.metrics().contains("model_server_snapshot_last_error{")
        });
    }
    // The intact snapshot is taken.
    put_object(&to, &key, &good);
    put_object(&to, "latest.json", &serde_json::to_vec(&sp).unwrap());
    until(20, "3.0.0", || r.versions().len() == 3);
}

/// The replica's own blob store: a directory, or (`--store s3://…`) its region's bucket, which S3
/// replication fills.
#[derive(Clone, Copy)]
enum ReplicaStore {
    Dir,
    Bucket,
}

#[test]
fn a_version_with_missing_blobs_is_not_listed_until_they_arrive() {
    missing_blobs_hold_a_version_back(ReplicaStore::Dir);
}

#[test]
fn a_version_with_blobs_missing_from_the_regions_bucket_is_not_listed_until_they_arrive() {
    missing_blobs_hold_a_version_back(ReplicaStore::Bucket);
}

fn missing_blobs_hold_a_version_back(kind: ReplicaStore) {
    let tmp = tempfile::tempdir().unwrap();
    let (primary, rdata) = (tmp.path().join("primary"), tmp.path().join("replica"));
    // The Bucket case's store: its region's bucket, under the prefix the replica is given.
    const REGION_BUCKET: &str = "missing-blobs-region";
    let (to, store_arg) = match kind {
        ReplicaStore::Dir => {
            let dir = tmp.path().join("replica-blobs");
            (bucket("missing-blobs"), s(&dir).to_owned())
        }
        ReplicaStore::Bucket => {
            moto().create_bucket(REGION_BUCKET);
            (bucket("missing-blobs-s3"), format!("s3://{REGION_BUCKET}/blobs"))
        }
    };
    let copy_blobs = || {
        // What S3 replication does for the replica's region: copy every blob.
        for entry in walk(&primary.join("blobs/sha256")) {
            let rel = entry.strip_prefix(primary.join("blobs")).unwrap();
            match kind {
                ReplicaStore::Dir => {
                    let dest = Path::new(&store_arg).join(rel);
                    std::fs::create_dir_all(dest.parent().unwrap()).unwrap();
                    std::fs::copy(&entry, dest).unwrap();
                }
                ReplicaStore::Bucket => {
                    let key = format!("blobs/{}", rel.to_str().unwrap());
                    moto().put_object(REGION_BUCKET, &key, &std::fs::read(&entry).unwrap());
                }
            }
        }
    };
    let v1 = publish(&primary, "1.0.0", 1, &["latest"]);
    push(&primary, &to);
    // Nothing replicated yet: the first snapshot is held back, the replica is not ready and says why.
    let r = replica(&to, &rdata, &["--every", "100ms", "--store", &store_arg], None);
    until(20, "missing blobs reported", || {
        r.metrics().contains("model_server_snapshot_missing_blobs 3\n")
    });
    let (status, _, body) = r.get("/readyz");
    assert_eq!(status, 503);
    let msg = String::from_utf8(body).unwrap();
    assert!(
        msg.contains("never loaded a snapshot") && msg.contains("3 blobs missing"),
        "{msg}"
    );
    assert!(
        msg.contains("all-MiniLM-L6-v2@1.0.0 model.onnx (sha256 "),
        "{msg}"
    );
    assert_eq!(r.versions(), Vec::<String>::new());
    copy_blobs();
    until(20, "1.0.0 once its blobs arrived", || r.versions() == ["1.0.0"]);
    assert_eq!(r.latest(), v1);

    let v2 = publish(&primary, "2.0.0", 2, &["latest"]);
    push(&primary, &to);
    until(20, "2.0.0's blobs reported missing", || {
        r.metrics().contains("model_server_snapshot_missing_blobs 3\n")
    });
    // Held back: 2.0.0 absent, latest still 1.0.0, and the replica still ready (it serves a consistent
    // snapshot; it turns unready only past --max-staleness).
    assert_eq!(r.versions(), ["1.0.0"]);
    assert_eq!(r.latest(), v1);
    let (status, _, _) = r.get(&format!("/v1/models/{MODEL}/2.0.0/manifest.json"));
    assert_eq!(status, 404);
    assert_eq!(r.get("/readyz").0, 200);
    copy_blobs();
    until(20, "2.0.0 once its blobs arrived", || {
        r.versions() == ["1.0.0", "2.0.0"]
    });
    assert_eq!(r.latest(), v2);
    until(20, "no blob missing", || {
        r.metrics().contains("model_server_snapshot_missing_blobs 0\n")
    });
}

fn walk(dir: &Path) -> Vec<PathBuf> {
    let mut out = Vec::new();
    for e in std::fs::read_dir(dir).unwrap() {
        let p = e.unwrap().path();
        if p.is_dir() {
            out.extend(walk(&p));
        } else {
            out.push(p);
        }
    }
    out
}

#[test]
fn staleness_bound_makes_readyz_fail() {
    let tmp = tempfile::tempdir().unwrap();
    let (primary, rdata) = (tmp.path().join("primary"), tmp.path().join("replica"));
    let to = bucket("stale");
    publish(&primary, "1.0.0", 1, &["latest"]);
    push(&primary, &to);
    let blobs = primary.join("blobs");
    let args = ["--every", "100ms", "--max-staleness", "1s", "--store", s(&blobs)];
    let r = replica(&to, &rdata, &args, None);
    until(20, "first pull", || r.get("/readyz").0 == 200);
    // The pointer disappears: the replica keeps serving what it has, but cannot confirm it is current.
    delete_object(&to, "latest.json");
    until(20, "stale", || r.get("/readyz").0 == 503);
    let (_, _, body) = r.get("/readyz");
    let e: serde_json::Value = serde_json::from_slice(&body).unwrap();
    let msg = e["error"]["message"].as_str().unwrap();
    assert!(msg.contains("more than --max-staleness 1 s"), "{msg}");
    assert!(
        msg.contains("pointer s3://stale/registry/latest.json not found"),
        "{msg}"
    );
    assert_eq!(r.versions(), ["1.0.0"]);
    assert!(r.metrics().contains("model_server_ready 0\n"));
}

#[test]
fn two_primaries_racing_for_the_pointer_one_wins_one_gets_a_conflict() {
    let tmp = tempfile::tempdir().unwrap();
    let (a, b) = (tmp.path().join("a"), tmp.path().join("b"));
    let to = bucket("race");
    publish(&a, "1.0.0", 1, &[]);
    publish(&b, "1.0.0", 1, &["latest"]);
    publish(&b, "2.0.0", 2, &[]);

    // Both read "no pointer"; B creates it first; A's create-if-absent then fails.
    let race = |data: &Path, rival: &Path, round: &str| -> String {
        let resume = tmp.path().join(format!("resume-{round}"));
        let mut cmd = command();
        cmd.args(["snapshot", "push", "--data", s(data), "--to", &to])
            .env("MODEL_SERVER_TEST_PAUSE", "push-before-pointer")
            .env("MODEL_SERVER_TEST_RESUME", &resume);
        let mut p = Spawned::spawn(cmd);
        p.wait_for_line("paused at push-before-pointer", Duration::from_secs(30));
        push(rival, &to);
        std::fs::write(&resume, b"").unwrap();
        let status = p.wait_timeout(Duration::from_secs(60));
        assert!(!status.success(), "{round}: the paused push must lose");
        p.output()
    };
    let err = race(&a, &b, "first");
    assert!(
        err.contains("conflict: s3://race/registry/latest.json was moved by another writer since this push read it (none existed)"),
        "{err}"
    );
    assert_eq!(pointer(&to)["generation"], 2, "B's pointer stands");

    // Both read B's pointer (generation 2); B moves it to 3 first; A's If-Match then fails.
    publish(&a, "2.0.0", 2, &[]);
    publish(&a, "3.0.0", 3, &[]);
    publish(&b, "3.0.0", 4, &[]);
    let err = race(&a, &b, "second");
    assert!(
        err.contains("conflict: s3://race/registry/latest.json was moved by another writer since this push read it (it had ETag"),
        "{err}"
    );
    assert_eq!(pointer(&to)["generation"], 3, "B's pointer stands");
    // A pointer past this registry's generation, from another registry: refused, not rolled back.
    let out = command()
        .args(["snapshot", "push", "--data", s(&b), "--to", &to])
        .output()
        .unwrap();
    assert!(out.status.success(), "B is current: unchanged");
    publish(&a, "4.0.0", 5, &[]);
    let before = pointer(&to);
    let out = command()
        .args(["snapshot", "push", "--data", s(&a), "--to", &to])
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "A (generation 4) moves B's pointer (generation 3) by If-Match"
    );
    assert_eq!(pointer(&to)["generation"], 4);
    let out = command()
        .args(["snapshot", "push", "--data", s(&b), "--to", &to])
        .output()
        .unwrap();
    assert!(!out.status.success());
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(
        err.contains("names generation 4") && err.contains("did not write"),
        "{err}"
    );
    assert_ne!(pointer(&to), before);
}

#[tokio::test(flavor = "multi_thread")]
async fn generation_counts_publishes_and_alias_moves_and_the_manifest_cache_follows_other_writers() {
    let tmp = tempfile::tempdir().unwrap();
    let data = tmp.path().join("data");
    let reg = || model_server::Registry::open(&data.join("registry.sqlite")).unwrap();
    let v1 = publish(&data, "1.0.0", 1, &["latest"]);
    assert_eq!(reg().generation().unwrap(), 1);
    // The server's own connection caches `latest`; another process then moves it.
    let app = app(&data, model_server::Config::default());
    let path = format!("/v1/models/{MODEL}/latest/manifest.json");
    assert_eq!(get(&app, &path).await.1, v1);
    assert_eq!(get(&app, &path).await.1, v1);
    let v2 = publish(&data, "2.0.0", 2, &["latest"]);
    assert_eq!(reg().generation().unwrap(), 2);
    assert_eq!(
        get(&app, &path).await.1,
        v2,
        "a publish by another process is seen at once"
    );
    cli(&["alias", "set", "--data", s(&data), MODEL, "latest", "1.0.0"]);
    assert_eq!(reg().generation().unwrap(), 3);
    assert_eq!(
        get(&app, &path).await.1,
        v1,
        "an alias move by another process is seen at once"
    );
    let r = reg();
    let m = akidb_core::Manifest::from_json(&v1).unwrap();
    // Republishing the same manifest without aliases records nothing and bumps nothing.
    assert_eq!(
        r.record_version(&m, &v1, &[]).unwrap(),
        model_server::Recorded::Unchanged
    );
    assert_eq!(r.generation().unwrap(), 3);
}

/// Signed bundles (issue #19): a replica started with `--trusted-keys` swaps in only snapshots whose every
/// version carries a signature that verifies; one signed by an untrusted key (the primary, without keys,
/// records signatures as given) is refused as a whole, naming the version and the key id, and the previous
/// snapshot stays served.
#[test]
fn a_replica_with_trusted_keys_refuses_a_snapshot_holding_an_untrusted_signature() {
    let tmp = tempfile::tempdir().unwrap();
    let (primary, rdata) = (tmp.path().join("primary"), tmp.path().join("replica"));
    let (key, stranger) = (
        akidb_keygen(tmp.path(), "release"),
        akidb_keygen(tmp.path(), "stranger"),
    );
    let trust = trust_file(tmp.path(), "trusted.json", &[&key]);
    let to = bucket("signed");
    let publish_signed = |version: &str, seed: u8, by: &CliKey| {
        let bundle = write_real_bundle(
            &tmp.path().join(format!("bundle-{version}")),
            MODEL,
            version,
            seed,
        );
        akidb_sign(by, &bundle);
        cli(&["publish", "--data", s(&primary), s(&bundle), "--alias", "latest"]);
        std::fs::read(bundle.join("manifest.json.sig")).unwrap()
    };
    let signature = publish_signed("1.0.0", 1, &key);
    push(&primary, &to);
    let r = replica(
        &to,
        &rdata,
        &[
            "--every",
            "100ms",
            "--store",
            s(&primary.join("blobs")),
            "--trusted-keys",
            s(&trust),
        ],
        None,
    );
    until(20, "first pull", || r.get("/readyz").0 == 200);
    assert_eq!(r.versions(), ["1.0.0"]);
    let (status, _, body) = r.get(&format!("/v1/models/{MODEL}/latest/manifest.json.sig"));
    assert_eq!((status, body), (200, signature));

    publish_signed("2.0.0", 2, &stranger);
    push(&primary, &to);
    let want = format!("manifest {MODEL}@2.0.0 is signed by key {}", stranger.id);
    until(20, "the untrusted snapshot refused", || {
        r.metrics().contains(&want)
    });
    assert_eq!(r.versions(), ["1.0.0"], "the previous snapshot stays served");
    assert!(r.metrics().contains("model_server_snapshot_generation 1\n"));
    assert!(!rdata.join(".pull.tmp").exists());
}
