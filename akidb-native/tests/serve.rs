//! `akidb serve` over real HTTP on loopback, with the real int8 bundle.

use std::sync::{Arc, OnceLock};
use std::time::Duration;

use akidb_core::Embedder;
use akidb_http::ServeOptions;
use akidb_native::serve::{self, AppState, EmbedResponse, ErrorBody, OpenAiResponse, ServeConfig};
use akidb_testkit::golden::{self, max_abs_diff, INT8_BARS};
use akidb_testkit::{net, paths, process::Spawned};
use base64::Engine;
use tokio::io::{AsyncReadExt, AsyncWriteExt};

fn embedder() -> Arc<Embedder> {
    static E: OnceLock<Arc<Embedder>> = OnceLock::new();
    E.get_or_init(|| {
        Arc::new(Embedder::new(&akidb_native::bundle_dir::load(&paths::int8_bundle()).unwrap()).unwrap())
    })
    .clone()
}

/// Starts the service in this process on an ephemeral loopback port; returns its base URL.
async fn start(config: ServeConfig, ready: bool) -> String {
    let state = AppState::new(config.limits.clone());
    if ready {
        state.set_ready(embedder(), config.batching.clone());
    }
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let app = serve::router(state, &config.connections);
    tokio::spawn(akidb_http::serve(
        listener,
        app,
        config.connections.clone(),
        std::future::pending(),
    ));
    format!("http://{addr}")
}

/// The value of the first sample of `metric` whose labels include every `label="value"` given, or 0.
fn sample(metrics: &str, metric: &str, labels: &[&str]) -> f64 {
    metrics
        .lines()
        .filter(|l| l.starts_with(&format!("{metric}{{")) || l.starts_with(&format!("{metric} ")))
        .find(|l| labels.iter().all(|want| l.contains(want)))
        .and_then(|l| l.rsplit(' ').next()?.parse().ok())
        .unwrap_or(0.0)
}

async fn metrics_text(client: &reqwest::Client, base: &str) -> String {
    client
        .get(format!("{base}/metrics"))
        .send()
        .await
        .unwrap()
        .text()
        .await
        .unwrap()
}

async fn get_status(client: &reqwest::Client, url: String) -> u16 {
    client.get(url).send().await.unwrap().status().as_u16()
}

async fn post(client: &reqwest::Client, url: String, body: serde_json::Value) -> reqwest::Response {
    client.post(url).json(&body).send().await.unwrap()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn both_routes_return_the_cores_vectors_and_meet_the_golden_bars() {
    let base = start(ServeConfig::default(), true).await;
    let client = reqwest::Client::new();
    let golden = golden::reference();
    let texts = golden.texts();
    let core = embedder().embed(&texts).unwrap();
    let mut served = Vec::new();
    for chunk in golden.sentences.chunks(50) {
        let r = post(
            &client,
            format!("{base}/v1/embed"),
            serde_json::json!({ "texts": chunk }),
        )
        .await;
        assert_eq!(r.status(), 200);
        let body: EmbedResponse = r.json().await.unwrap();
        assert_eq!(
            (body.dim, body.model.as_str()),
            (384, "all-MiniLM-L6-v2@1.0.0-int8")
        );
        served.extend(body.embeddings);
    }
    assert_eq!(served.len(), texts.len());
    golden::check_vectors(golden, served.iter().map(Vec::as_slice), INT8_BARS);
    for (i, v) in served.iter().enumerate() {
        assert!(
            max_abs_diff(v, core.row(i)) <= 1e-5,
            "sentence {i} differs from the core"
        );
    }

    let r = post(
        &client,
        format!("{base}/v1/embeddings"),
        serde_json::json!({"input": texts[18], "model": "x"}),
    )
    .await;
    assert_eq!(r.status(), 200);
    let one: OpenAiResponse = r.json().await.unwrap();
    assert_eq!(one.data.len(), 1);
    assert!(max_abs_diff(&floats(&one.data[0].embedding), core.row(18)) <= 1e-5);
    assert_eq!(one.usage.prompt_tokens, golden.token_ids[18].len());
    let r = post(
        &client,
        format!("{base}/v1/embeddings"),
        serde_json::json!({"input": [texts[3], texts[40]]}),
    )
    .await;
    let two: OpenAiResponse = r.json().await.unwrap();
    assert_eq!(two.data.iter().map(|d| d.index).collect::<Vec<_>>(), vec![0, 1]);
    assert!(max_abs_diff(&floats(&two.data[1].embedding), core.row(40)) <= 1e-5);

    // What the official OpenAI clients ask for by default: base64 of the little-endian f32 bytes.
    let r = post(
        &client,
        format!("{base}/v1/embeddings"),
        serde_json::json!({"input": [texts[3], texts[40]], "encoding_format": "base64", "dimensions": 384}),
    )
    .await;
    assert_eq!(r.status(), 200);
    let b64: serde_json::Value = r.json().await.unwrap();
    let encoded = b64["data"][1]["embedding"].as_str().expect("a base64 string");
    let bytes = base64::engine::general_purpose::STANDARD.decode(encoded).unwrap();
    let decoded: Vec<f32> = bytes
        .chunks_exact(4)
        .map(|c| f32::from_le_bytes(c.try_into().unwrap()))
        .collect();
    assert_eq!(decoded.len(), 384);
    assert!(max_abs_diff(&decoded, core.row(40)) <= 1e-5);
}

fn floats(v: &serve::OpenAiVector) -> Vec<f32> {
    match v {
        serve::OpenAiVector::Float(f) => f.clone(),
        serve::OpenAiVector::Base64(_) => panic!("asked for floats, got base64"),
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn concurrent_clients_each_get_their_own_vectors() {
    let base = start(ServeConfig::default(), true).await;
    let client = reqwest::Client::new();
    let golden = golden::reference();
    let core = Arc::new(embedder().embed(&golden.texts()).unwrap());
    let mut tasks = Vec::new();
    for c in 0..40usize {
        let (client, base, core) = (client.clone(), base.clone(), core.clone());
        let sentences = golden.sentences.clone();
        tasks.push(tokio::spawn(async move {
            for k in 0..5usize {
                // Each client asks for its own mix of 1..=3 sentences of different lengths.
                let idx: Vec<usize> = (0..1 + (c + k) % 3)
                    .map(|j| (c * 7 + k * 13 + j * 61) % sentences.len())
                    .collect();
                let texts: Vec<&str> = idx.iter().map(|&i| sentences[i].as_str()).collect();
                let r = post(
                    &client,
                    format!("{base}/v1/embed"),
                    serde_json::json!({ "texts": texts }),
                )
                .await;
                assert_eq!(r.status(), 200);
                let body: EmbedResponse = r.json().await.unwrap();
                for (v, &i) in body.embeddings.iter().zip(&idx) {
                    assert!(
                        max_abs_diff(v, core.row(i)) <= 1e-5,
                        "client {c} got another request's vector"
                    );
                }
            }
        }));
    }
    for t in tasks {
        t.await.unwrap();
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn overload_gives_429_with_retry_after_and_the_service_recovers() {
    let mut config = ServeConfig::default();
    config.batching.queue_capacity = 8;
    config.batching.workers = 1;
    config.batching.max_batch = 4;
    let base = start(config, true).await;
    let client = reqwest::Client::new();
    let long = golden::reference()
        .sentences
        .iter()
        .max_by_key(|s| s.len())
        .unwrap()
        .clone();
    let mut tasks = Vec::new();
    for _ in 0..24 {
        let (client, base, long) = (client.clone(), base.clone(), long.clone());
        tasks.push(tokio::spawn(async move {
            let r = post(
                &client,
                format!("{base}/v1/embed"),
                serde_json::json!({ "texts": vec![long; 4] }),
            )
            .await;
            let retry = r
                .headers()
                .get("retry-after")
                .map(|v| v.to_str().unwrap().to_string());
            (r.status().as_u16(), retry)
        }));
    }
    let mut statuses = Vec::new();
    for t in tasks {
        statuses.push(t.await.unwrap());
    }
    let rejected: Vec<_> = statuses.iter().filter(|(s, _)| *s == 429).collect();
    assert!(!rejected.is_empty(), "no request was refused: {statuses:?}");
    assert!(rejected.iter().all(|(_, retry)| retry.as_deref() == Some("1")));
    assert!(
        statuses.iter().all(|(s, _)| *s == 200 || *s == 429),
        "{statuses:?}"
    );
    let r = post(
        &client,
        format!("{base}/v1/embed"),
        serde_json::json!({"texts": ["after the storm"]}),
    )
    .await;
    assert_eq!(r.status(), 200, "the service did not recover");
    let metrics = client
        .get(format!("{base}/metrics"))
        .send()
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    assert!(
        metrics.contains("akidb_rejections_total{reason=\"queue_full\"}"),
        "{metrics}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn bad_requests_get_4xx_with_a_message() {
    let mut config = ServeConfig::default();
    config.limits.max_texts = 4;
    config.limits.max_chars = 100;
    config.limits.max_body_bytes = 4096;
    let base = start(config, true).await;
    let client = reqwest::Client::new();
    let url = format!("{base}/v1/embed");
    let cases: Vec<(reqwest::RequestBuilder, u16, &str)> = vec![
        (
            client
                .post(&url)
                .header("content-type", "application/json")
                .body("{\"texts\": [\"a\""),
            400,
            "EOF while parsing",
        ),
        (
            client.post(&url).json(&serde_json::json!({"texts": []})),
            422,
            "no texts",
        ),
        (
            client.post(&url).json(&serde_json::json!({"text": ["a"]})),
            422,
            "texts",
        ),
        (
            client
                .post(&url)
                .json(&serde_json::json!({"texts": vec!["a"; 5]})),
            413,
            "5 texts",
        ),
        (
            client
                .post(&url)
                .json(&serde_json::json!({"texts": ["x".repeat(101)]})),
            413,
            "101 characters",
        ),
        (
            client
                .post(&url)
                .json(&serde_json::json!({"texts": ["x".repeat(5000)]})),
            413,
            "larger than",
        ),
        (
            client.post(&url).body("{\"texts\": [\"a\"]}"),
            415,
            "Content-Type: application/json",
        ),
        (
            client
                .post(&url)
                .header("content-type", "application/json")
                .header("content-encoding", "gzip")
                .body(vec![0x1f, 0x8b, 0x08, 0x00]),
            415,
            "Content-Encoding \"gzip\"",
        ),
        (client.get(&url), 405, "GET is not allowed"),
        (client.post(format!("{base}/v2/embed")), 404, "no such route"),
        (
            client
                .post(format!("{base}/v1/embeddings"))
                .json(&serde_json::json!({"input": []})),
            422,
            "no texts",
        ),
        (
            client
                .post(format!("{base}/v1/embeddings"))
                .json(&serde_json::json!({"input": "a", "encoding_format": "int8"})),
            422,
            "\"float\" or \"base64\"",
        ),
        (
            client
                .post(format!("{base}/v1/embeddings"))
                .json(&serde_json::json!({"input": "a", "dimensions": 128})),
            422,
            "fixed size of 384",
        ),
        (
            client
                .post(format!("{base}/v1/embeddings"))
                .json(&serde_json::json!({"input": [[101, 7592, 102]]})),
            422,
            "token-id input is not supported",
        ),
    ];
    for (request, status, needle) in cases {
        let r = request.send().await.unwrap();
        assert_eq!(r.status().as_u16(), status);
        assert_eq!(r.headers()["cache-control"], "no-store");
        let body: ErrorBody = r.json().await.expect("a JSON error body");
        assert!(body.error.message.contains(needle), "{}", body.error.message);
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn readiness_metrics_and_openapi() {
    let client = reqwest::Client::new();
    let loading = start(ServeConfig::default(), false).await;
    assert_eq!(get_status(&client, format!("{loading}/healthz")).await, 200);
    assert_eq!(get_status(&client, format!("{loading}/readyz")).await, 503);
    let r = post(
        &client,
        format!("{loading}/v1/embed"),
        serde_json::json!({"texts": ["a"]}),
    )
    .await;
    assert_eq!(r.status(), 503);

    let base = start(ServeConfig::default(), true).await;
    assert_eq!(get_status(&client, format!("{base}/readyz")).await, 200);
    let before = metrics_text(&client, &base).await;
    post(
        &client,
        format!("{base}/v1/embed"),
        serde_json::json!({"texts": ["count me", "and me"]}),
    )
    .await;
    let after = metrics_text(&client, &base).await;
    let embed_200 = ["route=\"/v1/embed\"", "method=\"POST\"", "status=\"200\""];
    let grew =
        |metric: &str, labels: &[&str]| sample(&after, metric, labels) - sample(&before, metric, labels);
    assert_eq!(grew("akidb_requests_total", &embed_200), 1.0);
    assert_eq!(grew("akidb_request_duration_seconds_count", &embed_200), 1.0);
    assert!(grew("akidb_response_bytes_total", &embed_200) > 2.0 * 384.0);
    assert_eq!(grew("akidb_batch_size_sum", &[]), 2.0);
    assert_eq!(grew("akidb_queue_wait_seconds_count", &[]), 2.0);
    // "[CLS] count me [SEP]" and "[CLS] and me [SEP]".
    assert_eq!(grew("akidb_tokens_total", &[]), 8.0);
    assert_eq!(sample(&after, "akidb_ready", &[]), 1.0);
    assert_eq!(
        sample(&metrics_text(&client, &loading).await, "akidb_ready", &[]),
        0.0
    );
    let doc: serde_json::Value = client
        .get(format!("{base}/openapi.json"))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert!(
        doc["paths"]["/v1/embed"]["post"].is_object() && doc["paths"]["/v1/embeddings"]["post"].is_object()
    );
    // Every schema the document refers to is in it.
    let text = doc.to_string();
    for reference in text.split("\"#/components/schemas/").skip(1) {
        let name = reference.split('"').next().unwrap();
        assert!(
            doc["components"]["schemas"][name].is_object(),
            "dangling $ref to {name}"
        );
    }
    assert!(doc["paths"]["/v1/embed"]["post"]["responses"]["413"].is_object());
    let preflight = client
        .request(reqwest::Method::OPTIONS, format!("{base}/v1/embed"))
        .header("origin", "http://example.test")
        .header("access-control-request-method", "POST")
        .send()
        .await
        .unwrap();
    assert!(preflight.headers().contains_key("access-control-allow-origin"));
}

/// The real binary: SIGTERM while a request is being computed (a batch held by the `test-hooks`
/// feature's hook, so the test knows it is in flight); the request still gets its vectors.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn shutdown_finishes_accepted_requests() {
    let addr = net::free_addr();
    let hold = tempfile::tempdir().unwrap();
    let marker = hold.path().join("batch-held");
    // Warm-up calls the core directly, so only requests' batches meet the hook.
    let mut command = std::process::Command::new(env!("CARGO_BIN_EXE_akidb"));
    command
        .args(["serve", "--bundle", paths::int8_bundle().to_str().unwrap()])
        .args(["--addr", &addr, "--workers", "1"])
        .env("AKIDB_TEST_HOLD_BATCH", &marker);
    let mut child = Spawned::spawn(command);
    let base = format!("http://{addr}");
    let client = reqwest::Client::new();
    tokio::task::block_in_place(|| child.wait_ready(&addr, "/readyz", Duration::from_secs(30)));
    let request = {
        let (client, base) = (client.clone(), base.clone());
        tokio::spawn(async move {
            let r = post(
                &client,
                format!("{base}/v1/embed"),
                serde_json::json!({ "texts": ["in flight when SIGTERM arrives"] }),
            )
            .await;
            let status = r.status().as_u16();
            let body: EmbedResponse = r.json().await.unwrap();
            (status, body.embeddings.len())
        })
    };
    let mut held = false;
    for _ in 0..500 {
        if marker.exists() {
            held = true;
            break;
        }
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    assert!(
        held,
        "no batch reached the hook: is akidb built with --features akidb-native/test-hooks? Its output:\n{}",
        child.output()
    );
    child.terminate();
    // The process is shutting down with the request in its worker; let the worker go on.
    tokio::time::sleep(Duration::from_millis(300)).await;
    assert!(
        child.try_wait().is_none(),
        "the process exited with a request in flight; its output:\n{}",
        child.output()
    );
    std::fs::remove_file(&marker).unwrap();
    assert_eq!(request.await.unwrap(), (200, 1));
    let exit = tokio::task::block_in_place(|| child.wait_timeout(Duration::from_secs(30)));
    assert!(exit.success(), "exit status {exit}; output:\n{}", child.output());
}

/// A request of many texts runs as batches of at most `max_batch`, over every worker.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_large_request_is_split_into_max_batch_batches() {
    let mut config = ServeConfig::default();
    config.batching.max_batch = 8;
    config.batching.workers = 2;
    let base = start(config, true).await;
    let client = reqwest::Client::new();
    let golden = golden::reference();
    let texts: Vec<&str> = golden.texts().into_iter().take(64).collect();
    let r = post(
        &client,
        format!("{base}/v1/embed"),
        serde_json::json!({ "texts": texts }),
    )
    .await;
    assert_eq!(r.status(), 200);
    let body: EmbedResponse = r.json().await.unwrap();
    let core = embedder().embed(&texts).unwrap();
    for (i, v) in body.embeddings.iter().enumerate() {
        assert!(max_abs_diff(v, core.row(i)) <= 1e-5, "text {i} out of order");
    }
    let metrics = metrics_text(&client, &base).await;
    let batches = sample(&metrics, "akidb_batch_size_count", &[]);
    let at_most_8 = sample(&metrics, "akidb_batch_size_bucket", &["le=\"8\""]);
    assert_eq!(sample(&metrics, "akidb_batch_size_sum", &[]), 64.0);
    assert!(batches >= 8.0, "{batches} batches for 64 texts");
    assert_eq!(at_most_8, batches, "a batch exceeded --max-batch 8:\n{metrics}");
}

/// Routing misses are JSON errors, and a made-up method adds no metrics series.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn made_up_methods_and_paths_do_not_grow_the_metrics() {
    let base = start(ServeConfig::default(), true).await;
    let client = reqwest::Client::new();
    let series = |m: &str| m.lines().filter(|l| !l.starts_with('#')).count();
    // Every route's series once, so that only new label values could add lines.
    for method in ["FOO", "BAR"] {
        let r = client
            .request(
                reqwest::Method::from_bytes(method.as_bytes()).unwrap(),
                format!("{base}/v1/embed"),
            )
            .send()
            .await
            .unwrap();
        assert_eq!(r.status(), 405);
        let body: ErrorBody = r.json().await.expect("a JSON 405");
        assert_eq!(body.error.kind, "method_not_allowed");
        let r = client
            .get(format!("{base}/no/such/{method}"))
            .send()
            .await
            .unwrap();
        assert_eq!(r.status(), 404);
        let body: ErrorBody = r.json().await.expect("a JSON 404");
        assert_eq!(body.error.kind, "not_found");
    }
    metrics_text(&client, &base).await; // the /metrics route's own series, recorded after it answers
    let before = metrics_text(&client, &base).await;
    for method in ["BAZ", "QUUX", "X-ANYTHING"] {
        client
            .request(
                reqwest::Method::from_bytes(method.as_bytes()).unwrap(),
                format!("{base}/v1/embed"),
            )
            .send()
            .await
            .unwrap();
        client
            .get(format!("{base}/another/{method}"))
            .send()
            .await
            .unwrap();
    }
    let after = metrics_text(&client, &base).await;
    assert_eq!(series(&after), series(&before), "new series:\n{after}");
    assert_eq!(
        sample(
            &after,
            "akidb_requests_total",
            &["method=\"other\"", "status=\"405\""]
        ) - sample(
            &before,
            "akidb_requests_total",
            &["method=\"other\"", "status=\"405\""]
        ),
        3.0
    );
}

/// Idle and half-sent connections are closed after the header timeout while requests are served, and a
/// body announced over the limit is refused before it is sent.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn slow_clients_are_cut_off_and_oversized_bodies_refused_early() {
    let config = ServeConfig {
        connections: ServeOptions {
            header_read_timeout: Duration::from_secs(1),
            ..ServeOptions::default()
        },
        ..ServeConfig::default()
    };
    let base = start(config, true).await;
    let addr = base.trim_start_matches("http://").to_string();
    let started = std::time::Instant::now();
    let mut idle = tokio::net::TcpStream::connect(&addr).await.unwrap();
    let mut partial = tokio::net::TcpStream::connect(&addr).await.unwrap();
    partial
        .write_all(b"POST /v1/embed HTTP/1.1\r\nHost: x\r\n")
        .await
        .unwrap();
    // Meanwhile a normal client is served.
    let client = reqwest::Client::new();
    let r = post(
        &client,
        format!("{base}/v1/embed"),
        serde_json::json!({"texts": ["hi"]}),
    )
    .await;
    assert_eq!(r.status(), 200);
    for (name, stream) in [("idle", &mut idle), ("partial-header", &mut partial)] {
        let mut buf = Vec::new();
        let read = tokio::time::timeout(Duration::from_secs(5), stream.read_to_end(&mut buf)).await;
        assert!(read.is_ok(), "the {name} connection was still open after 5 s");
        let waited = started.elapsed();
        assert!(
            waited >= Duration::from_millis(900),
            "{name} closed after {waited:?}, before the timeout"
        );
    }

    let mut big = tokio::net::TcpStream::connect(&addr).await.unwrap();
    big.write_all(
        b"POST /v1/embed HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\nContent-Length: 10000000\r\n\r\n",
    )
    .await
    .unwrap();
    let mut head = vec![0u8; 512];
    let n = tokio::time::timeout(Duration::from_secs(2), big.read(&mut head))
        .await
        .expect("no answer without the body")
        .unwrap();
    let head = String::from_utf8_lossy(&head[..n]);
    assert!(head.starts_with("HTTP/1.1 413"), "{head}");
    assert!(head.contains("larger than the limit"), "{head}");
}

/// `--bundle-url` against a server that accepts connections and never answers: the process ends within
/// its timeouts (4 tries of 1 s plus backoff), with an error naming the URL.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_stalled_bundle_server_fails_the_start_naming_the_url() {
    let silent = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let url = format!(
        "http://{}/v1/models/m/1/manifest.json",
        silent.local_addr().unwrap()
    );
    // Accept and hold every connection, reading nothing and answering nothing.
    tokio::spawn(async move {
        let mut held = Vec::new();
        while let Ok((stream, _)) = silent.accept().await {
            held.push(stream);
        }
    });
    let started = std::time::Instant::now();
    let child = tokio::process::Command::new(env!("CARGO_BIN_EXE_akidb"))
        .args(["serve", "--bundle-url", &url, "--fetch-timeout-s", "1"])
        .args(["--addr", &net::free_addr()])
        .output();
    let out = tokio::time::timeout(Duration::from_secs(30), child)
        .await
        .expect("akidb serve still waiting after 30 s")
        .unwrap();
    let took = started.elapsed();
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(!out.status.success());
    assert!(stderr.contains(&url), "{stderr}");
    assert!(stderr.contains("stalled"), "{stderr}");
    assert!(took < Duration::from_secs(15), "took {took:?}");
}

/// A request that times out stops costing work: its texts not yet reached are dropped, so a small
/// request queued behind it is served at once instead of timing out too.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_timed_out_request_stops_costing_work() {
    let mut config = ServeConfig::default();
    config.batching.workers = 1;
    config.batching.max_batch = 1;
    config.limits.request_timeout = Duration::from_millis(500);
    let base = start(config, true).await;
    let client = reqwest::Client::new();
    let long = "a sentence that keeps going and going ".repeat(40);
    let r = post(
        &client,
        format!("{base}/v1/embed"),
        serde_json::json!({ "texts": vec![long; 200] }),
    )
    .await;
    assert_eq!(r.status(), 503);
    let r = post(
        &client,
        format!("{base}/v1/embed"),
        serde_json::json!({ "texts": ["quick"] }),
    )
    .await;
    assert_eq!(
        r.status(),
        200,
        "the request behind the timed-out one timed out too"
    );
    let computed = sample(&metrics_text(&client, &base).await, "akidb_batch_size_sum", &[]);
    // 200 long texts take far more than 500 ms on one worker: most were dropped, not computed.
    assert!(computed < 150.0, "{computed} of 201 texts were computed");
}

/// The real binary on the integer path's bundle (int8-dynamic, the demo's and the deployments' `latest`):
/// its `ready` log line says how the weight products run, as this process's own core runs them on this CPU.
#[test]
fn the_ready_line_says_how_weight_products_run() {
    let dir = paths::int8_dynamic_bundle();
    let expected =
        serve::weight_products(&Embedder::new(&akidb_native::bundle_dir::load(&dir).unwrap()).unwrap());
    let addr = net::free_addr();
    let mut command = std::process::Command::new(env!("CARGO_BIN_EXE_akidb"));
    command.args(["serve", "--bundle", dir.to_str().unwrap()]).args([
        "--addr",
        &addr,
        "--workers",
        "1",
        "--max-batch",
        "1",
    ]);
    let mut child = Spawned::spawn(command);
    child.wait_ready(&addr, "/readyz", Duration::from_secs(60));
    child.terminate();
    child.wait_timeout(Duration::from_secs(30));
    let output = child.output();
    let ready = output
        .lines()
        .find(|l| l.contains(" ready") && l.contains("version="))
        .unwrap_or_else(|| panic!("no ready line in:\n{output}"));
    assert!(
        ready.contains(&format!("weight_products=\"{expected}\"")),
        "expected weight_products=\"{expected}\" in {ready:?}"
    );
    assert!(ready.contains("1.0.0-int8-dynamic"), "{ready}");
    // wait_ready polled /readyz while the model loaded: its 503s are the probe's answer, not errors.
    assert!(
        !output.lines().any(|l| l.contains(" ERROR ")),
        "ERROR lines in a normal start and stop:\n{output}"
    );
}
