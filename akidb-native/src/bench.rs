//! `akidb bench`: the core's own figures, in a form the peer benchmark scripts read.

use std::time::Instant;

use akidb_core::{Device, Embedder, EmbedderOptions};
use anyhow::Result;
use serde::{Deserialize, Serialize};

/// The benchmark's fixed inputs: one ~12-token sentence and 32 real sentences of 3..54 tokens.
/// `scripts/bench_peers.py` reads the same file so both sides embed the same text.
pub const SENTENCES_JSON: &str = include_str!("bench_sentences.json");

/// The fixed inputs, parsed.
#[derive(Deserialize)]
pub struct BenchSentences {
    /// The single-sentence latency input.
    pub single: String,
    /// The batch throughput input.
    pub batch: Vec<String>,
}

/// What one bench run measured.
#[derive(Debug, Serialize)]
pub struct BenchReport {
    /// Bundle name and version.
    pub model: String,
    /// Where the model ran: `cpu` or `cuda:N`.
    pub device: String,
    /// `cpu`, or the GPU's name.
    pub device_name: String,
    /// Reading, verifying and preparing the bundle, in seconds.
    pub load_s: f64,
    /// Milliseconds to the first embedding after load (includes compiling its plan).
    pub first_ms: f64,
    /// Tokens in the single sentence.
    pub single_tokens: usize,
    /// Warm single-sentence latency, median.
    pub single_p50_ms: f64,
    /// Warm single-sentence latency, 95th percentile.
    pub single_p95_ms: f64,
    /// Real tokens in the batch.
    pub batch_tokens: usize,
    /// Median time to embed the whole batch, warm.
    pub batch32_ms: f64,
    /// Batch throughput, sentences per second.
    pub sentences_per_s: f64,
    /// Peak resident set size of the process, MB.
    pub peak_rss_mb: f64,
    /// tract's matmul kernels in the plans the run compiled (CPU plans only).
    pub matmul_kernels: Vec<String>,
    /// Whether the weight products ran as int8 × int8 → i32 (an `int8-dynamic` bundle on a CPU whose
    /// integer kernels are fast).
    pub integer_matmuls: bool,
    /// Texts in the large batch (`--big-batch`), if measured.
    pub big_batch: Option<usize>,
    /// Median time to embed the large batch, warm.
    pub big_batch_ms: Option<f64>,
    /// Large-batch throughput, sentences per second.
    pub big_batch_sentences_per_s: Option<f64>,
    /// Ops of the GPU plans that ran on the CPU (none on the CPU).
    pub host_ops: Vec<String>,
    /// Every warm single-sentence latency, ms (the raw samples, for scripts/lib/benchstats.py).
    pub single_samples_ms: Vec<f64>,
    /// Every warm batch time, ms.
    pub batch32_samples_ms: Vec<f64>,
}

/// Nearest rank, the definition of scripts/lib/benchstats.py: the smallest sample with at least `p`
/// (0..=1) of the samples at or below it, `sorted[ceil(p * n) - 1]`.
fn percentile(sorted: &[f64], p: f64) -> f64 {
    // Rounded before the ceiling so that float error cannot move a whole rank (0.95 * 20 is rank 19).
    let rank = ((p * sorted.len() as f64 * 1e9).round() / 1e9).ceil() as usize;
    sorted[rank.clamp(1, sorted.len()) - 1]
}

fn ms(t: Instant) -> f64 {
    t.elapsed().as_secs_f64() * 1e3
}

/// Peak RSS from `/proc/self/status` (`VmHWM`), in MB; 0 where unavailable.
pub fn peak_rss_mb() -> f64 {
    std::fs::read_to_string("/proc/self/status")
        .ok()
        .and_then(|s| s.lines().find(|l| l.starts_with("VmHWM:")).map(str::to_string))
        .and_then(|l| l.split_whitespace().nth(1).and_then(|kb| kb.parse::<f64>().ok()))
        .map_or(0.0, |kb| kb / 1024.0)
}

/// Runs the benchmark on the bundle in `dir` on the CPU: `single_runs` single-sentence calls,
/// `batch_rounds` batches.
pub fn run(dir: &std::path::Path, single_runs: usize, batch_rounds: usize) -> Result<BenchReport> {
    run_on(dir, single_runs, batch_rounds, 0, Device::Cpu)
}

/// Times `rounds` (at least one) embeddings of `texts` after a warm-up one; milliseconds, sorted.
fn time_batches(embedder: &Embedder, texts: &[&str], rounds: usize) -> Result<Vec<f64>> {
    embedder.embed(texts)?; // compiles the batch's plans
    let mut times: Vec<f64> = (0..rounds.max(1))
        .map(|_| {
            let t = Instant::now();
            embedder.embed(texts).map(|_| ms(t))
        })
        .collect::<Result<_, _>>()?;
    times.sort_by(f64::total_cmp);
    Ok(times)
}

/// [`run`] on `device`, and with `big_batch` > 0 also batches of that many texts (the batch repeated),
/// `batch_rounds` of them.
pub fn run_on(
    dir: &std::path::Path,
    single_runs: usize,
    batch_rounds: usize,
    big_batch: usize,
    device: Device,
) -> Result<BenchReport> {
    let inputs: BenchSentences = serde_json::from_str(SENTENCES_JSON)?;
    let start = Instant::now();
    let bundle = crate::bundle_dir::load(dir)?;
    let options = EmbedderOptions {
        device,
        max_batch: EmbedderOptions::default().max_batch.max(big_batch),
        ..EmbedderOptions::default()
    };
    let embedder = Embedder::with_options(&bundle, options)?;
    let load_s = start.elapsed().as_secs_f64();
    drop(bundle);

    let single = [inputs.single.as_str()];
    let t = Instant::now();
    embedder.embed(&single)?;
    let first_ms = ms(t);
    for _ in 0..5 {
        embedder.embed(&single)?;
    }
    let mut times: Vec<f64> = (0..single_runs.max(1))
        .map(|_| {
            let t = Instant::now();
            embedder.embed(&single).map(|_| ms(t))
        })
        .collect::<Result<_, _>>()?;
    times.sort_by(f64::total_cmp);

    let batch: Vec<&str> = inputs.batch.iter().map(String::as_str).collect();
    let batch_times = time_batches(&embedder, &batch, batch_rounds)?;
    let batch32_ms = percentile(&batch_times, 0.5);
    let big_batch_ms = if big_batch > 0 {
        let texts: Vec<&str> = batch.iter().copied().cycle().take(big_batch).collect();
        Some(percentile(&time_batches(&embedder, &texts, batch_rounds)?, 0.5))
    } else {
        None
    };
    let m = embedder.manifest();
    Ok(BenchReport {
        model: format!("{}@{}", m.name, m.version),
        device: embedder.device().to_string(),
        device_name: embedder.device_name().to_string(),
        load_s,
        first_ms,
        single_tokens: embedder.tokenize(&single)?[0].ids.len(),
        single_p50_ms: percentile(&times, 0.5),
        single_p95_ms: percentile(&times, 0.95),
        batch_tokens: embedder.tokenize(&batch)?.iter().map(|t| t.ids.len()).sum(),
        batch32_ms,
        sentences_per_s: batch.len() as f64 / (batch32_ms / 1e3),
        peak_rss_mb: peak_rss_mb(),
        matmul_kernels: embedder.matmul_kernels(),
        integer_matmuls: embedder.integer_matmuls(),
        big_batch: big_batch_ms.map(|_| big_batch),
        big_batch_ms,
        big_batch_sentences_per_s: big_batch_ms.map(|ms| big_batch as f64 / (ms / 1e3)),
        host_ops: embedder.host_ops(),
        single_samples_ms: times,
        batch32_samples_ms: batch_times,
    })
}
