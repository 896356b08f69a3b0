//! Concurrent writers on one data directory (issue #21): registry transactions that wait for each other
//! instead of failing, temporary files that belong to their writer, and the registry sound afterwards.
//! Also (issue #12): a registry write stuck on SQLite's lock holds no runtime thread that reads need.

mod common;

use std::io::Write;
use std::path::Path;
use std::process::Command;
use std::time::{Duration, Instant};

use common::*;
use model_server::Registry;

const BIN: &str = env!("CARGO_BIN_EXE_model-server");

fn registry(data: &Path) -> Registry {
    Registry::open(&data.join("registry.sqlite")).unwrap()
}

fn versions(data: &Path, name: &str) -> Vec<String> {
    let mut v: Vec<String> = registry(data)
        .model(name)
        .unwrap()
        .map(|m| m.versions.into_iter().map(|v| v.version).collect())
        .unwrap_or_default();
    v.sort();
    v
}

#[test]
fn concurrent_registry_writers_wait_for_each_other() {
    let tmp = tempfile::tempdir().unwrap();
    let data = tmp.path().to_path_buf();
    model_server::open_data_dir(&data).unwrap();
    let (model, tok) = (bytes(1, 10), bytes(2, 10));
    // Each thread has its own connection, as separate processes would: 4 writers x 6 versions, each
    // version also moving an alias, so every transaction reads and then writes.
    let writers: Vec<_> = (0..4)
        .map(|w| {
            let data = data.clone();
            let (model, tok) = (model.clone(), tok.clone());
            std::thread::spawn(move || {
                let reg = registry(&data);
                for i in 0..6 {
                    let m = manifest_for("m", &format!("{w}.{i}"), &model, &tok);
                    reg.record_version(&m, &m.to_json(), &[format!("w{w}"), "latest".into()])
                        .unwrap_or_else(|e| panic!("writer {w} version {i}: {e}"));
                    reg.set_alias("m", "stable", &format!("{w}.{i}"))
                        .unwrap_or_else(|e| panic!("writer {w} alias {i}: {e}"));
                }
            })
        })
        .collect();
    for w in writers {
        w.join().unwrap();
    }
    let reg = registry(&data);
    assert_eq!(reg.integrity_check().unwrap(), "ok");
    let mut want: Vec<String> = (0..4)
        .flat_map(|w| (0..6).map(move |i| format!("{w}.{i}")))
        .collect();
    want.sort();
    assert_eq!(versions(&data, "m"), want);
}

fn publish_cmd(data: &Path, bundle: &Path) -> Command {
    let mut c = Command::new(BIN);
    c.args([
        "publish",
        "--data",
        data.to_str().unwrap(),
        bundle.to_str().unwrap(),
    ]);
    c
}

/// Runs `cmd` to the end; panics with its output unless it succeeded.
fn run_ok(cmd: Command, what: &str) {
    finished_ok(Spawned::spawn(cmd), what);
}

/// Waits for a started process; panics with its output unless it succeeded.
fn finished_ok(mut process: Spawned, what: &str) {
    let status = process.wait_timeout(Duration::from_secs(120));
    assert!(status.success(), "{what}: {status}: {}", process.output());
}

/// `model-server serve` on a free port with `args` after the data directory, answering `/healthz`.
fn serve(data: &Path, args: &[&str]) -> (Spawned, String) {
    let addr = free_addr();
    let mut cmd = Command::new(BIN);
    cmd.args(["serve", "--data", data.to_str().unwrap(), "--addr", &addr])
        .args(args)
        .env("MODEL_SERVER_TOKEN", TOKEN);
    let mut server = Spawned::spawn(cmd);
    server.wait_ready(&addr, "/healthz", READY_TIMEOUT);
    (server, addr)
}

#[test]
fn publish_x_publish_and_publish_x_alias_set_processes() {
    let tmp = tempfile::tempdir().unwrap();
    let data = tmp.path().join("data");
    let name = "all-MiniLM-L6-v2";
    let first = write_real_bundle(tmp.path(), name, "0.0.1", 10);
    run_ok(publish_cmd(&data, &first), "publish 0.0.1");
    let mut want = vec!["0.0.1".to_owned()];
    for trial in 0..2u8 {
        // Two publishes of new versions into one existing directory, and an alias set, all at once.
        let a = write_real_bundle(tmp.path(), name, &format!("{trial}.1"), 20 + trial);
        let b = write_real_bundle(tmp.path(), name, &format!("{trial}.2"), 30 + trial);
        let pa = Spawned::spawn(publish_cmd(&data, &a));
        let pb = Spawned::spawn(publish_cmd(&data, &b));
        let mut alias = Command::new(BIN);
        alias.args([
            "alias",
            "set",
            "--data",
            data.to_str().unwrap(),
            name,
            "stable",
            "0.0.1",
        ]);
        let alias = Spawned::spawn(alias);
        finished_ok(pa, "publish a");
        finished_ok(pb, "publish b");
        finished_ok(alias, "alias set");
        want.extend([format!("{trial}.1"), format!("{trial}.2")]);
    }
    want.sort();
    assert_eq!(versions(&data, name), want);
    assert_eq!(registry(&data).integrity_check().unwrap(), "ok");
    assert_eq!(
        std::fs::read_dir(data.join("blobs/tmp")).unwrap().count(),
        0,
        "no temporary file left behind"
    );
}

#[test]
fn an_upload_in_flight_survives_a_replica_start_and_an_alias_set() {
    let tmp = tempfile::tempdir().unwrap();
    let data = tmp.path().join("data");
    let d = data.to_str().unwrap();
    let bundle = write_real_bundle(tmp.path(), "m", "1.0.0", 1);
    run_ok(publish_cmd(&data, &bundle), "publish 1.0.0");

    let (mut writer, writer_addr) = serve(&data, &[]);

    // Half an upload: the server holds its temporary file while it waits for the rest.
    let blob = bytes(9, 2_000_000);
    let hash = akidb_core::sha256_hex(&blob);
    let mut upload = std::net::TcpStream::connect(&writer_addr).unwrap();
    upload.set_read_timeout(Some(Duration::from_secs(60))).unwrap();
    write!(
        upload,
        "PUT /v1/blobs/sha256/{hash} HTTP/1.1\r\nHost: x\r\nConnection: close\r\nAuthorization: Bearer {TOKEN}\r\n\
         Content-Length: {}\r\n\r\n",
        blob.len()
    )
    .unwrap();
    upload.write_all(&blob[..1_000_000]).unwrap();
    let start = Instant::now();
    while std::fs::read_dir(data.join("blobs/tmp")).unwrap().count() == 0 {
        assert!(
            start.elapsed() < Duration::from_secs(20),
            "the upload never started writing"
        );
        std::thread::sleep(Duration::from_millis(20));
    }

    // A read-only replica starts on the same directory (as the README suggests), and an alias is set.
    let (mut replica, replica_addr) = serve(&data, &["--read-only"]);
    let mut alias = Command::new(BIN);
    alias.args(["alias", "set", "--data", d, "m", "stable", "1.0.0"]);
    run_ok(alias, "alias set");

    upload.write_all(&blob[1_000_000..]).unwrap();
    let (status, _, body) = read_response(&mut upload);
    assert_eq!(status, 201, "{}", String::from_utf8_lossy(&body));
    // The replica serves what the writer stored.
    let (status, _, got) = http_request(
        &replica_addr,
        "GET",
        &format!("/v1/blobs/sha256/{hash}"),
        &[],
        b"",
    );
    assert_eq!(status, 200);
    assert_eq!(got, blob);

    for server in [&mut writer, &mut replica] {
        server.kill();
    }
    assert_eq!(versions(&data, "m"), ["1.0.0"]);
    assert_eq!(registry(&data).integrity_check().unwrap(), "ok");
}

/// While another connection holds SQLite's write lock, writes wait (in the blocking pool) and reads of
/// blobs still answer promptly on a live server whose runtime has a single worker thread.
#[test]
fn blob_gets_answer_while_a_registry_write_waits_for_the_database() {
    const HOLD: Duration = Duration::from_secs(3);
    // Wide margin: a blob GET on loopback takes about a millisecond; one stuck behind the lock would take
    // the whole HOLD.
    const BOUND: Duration = Duration::from_millis(1000);
    let tmp = tempfile::tempdir().unwrap();
    let data = tmp.path().join("data");
    run_ok(
        publish_cmd(&data, &write_real_bundle(tmp.path(), "m", "1.0.0", 1)),
        "publish 1.0.0",
    );
    let blob = bytes(3, 100_000);
    let hash = akidb_core::sha256_hex(&blob);
    let state = state(&data, writable());
    {
        let (_, store) = model_server::open_data_dir(&data).unwrap();
        use model_server::BlobStore;
        store
            .put(&model_server::BlobHash::of(&blob), &mut &blob[..], 200_000)
            .unwrap();
    }

    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(1)
        .enable_all()
        .build()
        .unwrap();
    let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let addr = listener.local_addr().unwrap().to_string();
    listener.set_nonblocking(true).unwrap();
    rt.spawn(async move {
        let listener = tokio::net::TcpListener::from_std(listener).unwrap();
        axum::serve(listener, model_server::router(state)).await.unwrap();
    });
    akidb_testkit::net::wait_ok(&addr, "/healthz", READY_TIMEOUT);

    let lock = rusqlite::Connection::open(data.join("registry.sqlite")).unwrap();
    lock.execute_batch("BEGIN IMMEDIATE").unwrap();
    let locked_at = Instant::now();
    // Writes that must wait for the lock.
    let writes: Vec<_> = (0..3)
        .map(|_| {
            let addr = addr.clone();
            std::thread::spawn(move || {
                http_request(
                    &addr,
                    "PUT",
                    "/v1/models/m/aliases/stable",
                    &[("authorization", &format!("Bearer {TOKEN}"))],
                    br#"{"version": "1.0.0"}"#,
                )
            })
        })
        .collect();
    std::thread::sleep(Duration::from_millis(300));
    let mut slowest = Duration::ZERO;
    while locked_at.elapsed() < HOLD - Duration::from_millis(500) {
        let t = Instant::now();
        let (status, _, body) = http_request(&addr, "GET", &format!("/v1/blobs/sha256/{hash}"), &[], b"");
        slowest = slowest.max(t.elapsed());
        assert_eq!(status, 200);
        assert_eq!(body, blob);
        std::thread::sleep(Duration::from_millis(100));
    }
    assert!(
        slowest < BOUND,
        "a blob GET took {slowest:?} while a registry write waited for SQLite (bound {BOUND:?})"
    );
    assert!(
        writes.iter().all(|w| !w.is_finished()),
        "the writes did not wait for the lock: the test proves nothing"
    );
    lock.execute_batch("COMMIT").unwrap();
    for w in writes {
        let (status, _, body) = w.join().unwrap();
        assert_eq!(status, 200, "{}", String::from_utf8_lossy(&body));
    }
}
