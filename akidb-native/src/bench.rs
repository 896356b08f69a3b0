//! `akidb bench`: the core's own figures, in a form the peer benchmark scripts read.

use std::time::Instant;

use akidb_core::{Embedder, EmbedderOptions};
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
    /// tract's matmul kernels in the plans the run compiled.
    pub matmul_kernels: Vec<String>,
}

fn percentile(sorted: &[f64], p: f64) -> f64 {
    let i = ((sorted.len() as f64 - 1.0) * p).round() as usize;
    sorted[i.min(sorted.len() - 1)]
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

/// Runs the benchmark on the bundle in `dir`: `single_runs` single-sentence calls, `batch_rounds` batches.
pub fn run(dir: &std::path::Path, single_runs: usize, batch_rounds: usize) -> Result<BenchReport> {
    let inputs: BenchSentences = serde_json::from_str(SENTENCES_JSON)?;
    let start = Instant::now();
    let bundle = crate::bundle_dir::load(dir)?;
    let embedder = Embedder::with_options(&bundle, EmbedderOptions::default())?;
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
    embedder.embed(&batch)?; // compiles the batch's plans
    let mut batch_times: Vec<f64> = (0..batch_rounds.max(1))
        .map(|_| {
            let t = Instant::now();
            embedder.embed(&batch).map(|_| ms(t))
        })
        .collect::<Result<_, _>>()?;
    batch_times.sort_by(f64::total_cmp);
    let batch32_ms = percentile(&batch_times, 0.5);
    let m = embedder.manifest();
    Ok(BenchReport {
        model: format!("{}@{}", m.name, m.version),
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
    })
}
