//! `akidb serve` over real HTTP on loopback, with the real int8 bundle.

#[path = "../../akidb-core/tests/support/golden.rs"]
mod golden;

use std::path::{Path, PathBuf};
use std::sync::{Arc, OnceLock};
use std::time::Duration;

use akidb_core::Embedder;
use akidb_native::serve::{self, AppState, EmbedResponse, ErrorBody, OpenAiResponse, ServeConfig};
use golden::Golden;

fn workspace() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .parent()
        .unwrap()
        .to_path_buf()
}

fn bundle_dir() -> PathBuf {
    workspace().join("models/all-MiniLM-L6-v2/int8")
}

fn embedder() -> Arc<Embedder> {
    static E: OnceLock<Arc<Embedder>> = OnceLock::new();
    E.get_or_init(|| {
        Arc::new(Embedder::new(&akidb_native::bundle_dir::load(&bundle_dir()).unwrap()).unwrap())
    })
    .clone()
}

fn golden_data() -> &'static Golden {
    static G: OnceLock<Golden> = OnceLock::new();
    G.get_or_init(|| {
        let dir = std::env::var_os("AKIDB_GOLDEN")
            .map(PathBuf::from)
            .unwrap_or_else(|| workspace().join("../shared/golden"));
        let read = |f: &str| std::fs::read(dir.join(f)).unwrap();
        Golden::parse(
            &read("sentences.json"),
            &read("embeddings.f32"),
            &read("token_ids.json"),
        )
    })
}

/// Starts the service in this process on an ephemeral loopback port; returns its base URL.
async fn start(config: ServeConfig, ready: bool) -> String {
    let state = AppState::new(config.limits.clone());
    if ready {
        state.set_ready(embedder(), config.batching.clone());
    }
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    tokio::spawn(async move { axum::serve(listener, serve::router(state)).await.unwrap() });
    format!("http://{addr}")
}

fn max_abs_diff(a: &[f32], b: &[f32]) -> f32 {
    a.iter().zip(b).map(|(x, y)| (x - y).abs()).fold(0.0, f32::max)
}

async fn post(client: &reqwest::Client, url: String, body: serde_json::Value) -> reqwest::Response {
    client.post(url).json(&body).send().await.unwrap()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn both_routes_return_the_cores_vectors_and_meet_the_golden_bars() {
    let base = start(ServeConfig::default(), true).await;
    let client = reqwest::Client::new();
    let golden = golden_data();
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
    let cosines: Vec<f64> = served
        .iter()
        .enumerate()
        .map(|(i, v)| golden::cosine(v, golden.row(i)))
        .collect();
    let min = cosines.iter().copied().fold(1.0, f64::min);
    let mean = cosines.iter().sum::<f64>() / cosines.len() as f64;
    assert!(min >= 0.995 && mean >= 0.999, "min {min} mean {mean}");
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
    assert!(max_abs_diff(&one.data[0].embedding, core.row(18)) <= 1e-5);
    assert_eq!(one.usage.prompt_tokens, golden.token_ids[18].len());
    let r = post(
        &client,
        format!("{base}/v1/embeddings"),
        serde_json::json!({"input": [texts[3], texts[40]]}),
    )
    .await;
    let two: OpenAiResponse = r.json().await.unwrap();
    assert_eq!(two.data.iter().map(|d| d.index).collect::<Vec<_>>(), vec![0, 1]);
    assert!(max_abs_diff(&two.data[1].embedding, core.row(40)) <= 1e-5);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn concurrent_clients_each_get_their_own_vectors() {
    let base = start(ServeConfig::default(), true).await;
    let client = reqwest::Client::new();
    let golden = golden_data();
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
    let long = golden_data()
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
            "",
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
        (client.post(&url).body("{\"texts\": [\"a\"]}"), 415, ""),
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
                .json(&serde_json::json!({"input": "a", "encoding_format": "base64"})),
            422,
            "float",
        ),
    ];
    for (request, status, needle) in cases {
        let r = request.send().await.unwrap();
        assert_eq!(r.status().as_u16(), status);
        let body: ErrorBody = r.json().await.expect("a JSON error body");
        assert!(
            !body.error.message.is_empty() && body.error.message.contains(needle),
            "{}",
            body.error.message
        );
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn readiness_metrics_and_openapi() {
    let client = reqwest::Client::new();
    let loading = start(ServeConfig::default(), false).await;
    assert_eq!(
        client
            .get(format!("{loading}/healthz"))
            .send()
            .await
            .unwrap()
            .status(),
        200
    );
    assert_eq!(
        client
            .get(format!("{loading}/readyz"))
            .send()
            .await
            .unwrap()
            .status(),
        503
    );
    let r = post(
        &client,
        format!("{loading}/v1/embed"),
        serde_json::json!({"texts": ["a"]}),
    )
    .await;
    assert_eq!(r.status(), 503);

    let base = start(ServeConfig::default(), true).await;
    assert_eq!(
        client
            .get(format!("{base}/readyz"))
            .send()
            .await
            .unwrap()
            .status(),
        200
    );
    post(
        &client,
        format!("{base}/v1/embed"),
        serde_json::json!({"texts": ["count me"]}),
    )
    .await;
    let metrics = client
        .get(format!("{base}/metrics"))
        .send()
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    for name in [
        "akidb_request_duration_seconds_bucket{route=\"/v1/embed\",status=\"200\"",
        "akidb_batch_size",
        "akidb_queue_wait_seconds",
        "akidb_tokens_total",
    ] {
        assert!(metrics.contains(name), "metrics lack {name}");
    }
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
    let preflight = client
        .request(reqwest::Method::OPTIONS, format!("{base}/v1/embed"))
        .header("origin", "http://example.test")
        .header("access-control-request-method", "POST")
        .send()
        .await
        .unwrap();
    assert!(preflight.headers().contains_key("access-control-allow-origin"));
}

/// The real binary: SIGTERM while requests are in flight; every accepted request still gets its vectors.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn shutdown_finishes_accepted_requests() {
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    let mut child = std::process::Command::new(env!("CARGO_BIN_EXE_akidb"))
        .args([
            "serve",
            "--bundle",
            bundle_dir().to_str().unwrap(),
            "--addr",
            &format!("127.0.0.1:{port}"),
        ])
        .args(["--workers", "1"])
        .stderr(std::process::Stdio::null())
        .spawn()
        .unwrap();
    let base = format!("http://127.0.0.1:{port}");
    let client = reqwest::Client::new();
    let mut ready = false;
    for _ in 0..300 {
        if let Ok(r) = client.get(format!("{base}/readyz")).send().await {
            if r.status() == 200 {
                ready = true;
                break;
            }
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    assert!(ready, "the service never became ready");
    let long = golden_data()
        .sentences
        .iter()
        .max_by_key(|s| s.len())
        .unwrap()
        .clone();
    let mut tasks = Vec::new();
    for _ in 0..8 {
        let (client, base, long) = (client.clone(), base.clone(), long.clone());
        tasks.push(tokio::spawn(async move {
            let r = post(
                &client,
                format!("{base}/v1/embed"),
                serde_json::json!({ "texts": vec![long; 4] }),
            )
            .await;
            let status = r.status();
            let text = r.text().await.unwrap();
            let body: EmbedResponse =
                serde_json::from_str(&text).unwrap_or_else(|e| panic!("{status} {text}: {e}"));
            (status, body.embeddings.len())
        }));
    }
    tokio::time::sleep(Duration::from_millis(300)).await;
    let kill = std::process::Command::new("kill")
        .args(["-TERM", &child.id().to_string()])
        .status()
        .unwrap();
    assert!(kill.success());
    for t in tasks {
        let (status, n) = t.await.unwrap();
        assert_eq!((status.as_u16(), n), (200, 4));
    }
    let exit = child.wait().unwrap();
    assert!(exit.success(), "exit status {exit}");
}
