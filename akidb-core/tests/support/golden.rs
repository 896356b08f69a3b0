//! The golden suite, written once: sentence-transformers' reference data and the checks every backend
//! (native here, wasm in `akidb-wasm`) must pass. Takes bytes, so it runs wherever the core runs.

#![allow(dead_code)]

use akidb_core::Embedder;

/// `../shared/golden/`: 200 sentences, their reference embeddings and token ids.
pub struct Golden {
    pub sentences: Vec<String>,
    pub embeddings: Vec<f32>,
    pub token_ids: Vec<Vec<u32>>,
    pub dim: usize,
}

impl Golden {
    /// Parses `sentences.json`, `embeddings.f32` and `token_ids.json`.
    pub fn parse(sentences_json: &[u8], embeddings_f32: &[u8], token_ids_json: &[u8]) -> Golden {
        let sentences: Vec<String> = serde_json::from_slice(sentences_json).expect("sentences.json");
        #[derive(serde::Deserialize)]
        struct Ids {
            token_ids: Vec<Vec<u32>>,
        }
        let ids: Ids = serde_json::from_slice(token_ids_json).expect("token_ids.json");
        let embeddings: Vec<f32> = embeddings_f32
            .chunks_exact(4)
            .map(|b| f32::from_le_bytes([b[0], b[1], b[2], b[3]]))
            .collect();
        let dim = embeddings.len() / sentences.len();
        assert_eq!(
            dim * sentences.len(),
            embeddings.len(),
            "embeddings.f32 is not n × dim"
        );
        assert_eq!(ids.token_ids.len(), sentences.len());
        Golden {
            sentences,
            embeddings,
            token_ids: ids.token_ids,
            dim,
        }
    }

    pub fn texts(&self) -> Vec<&str> {
        self.sentences.iter().map(String::as_str).collect()
    }

    pub fn row(&self, i: usize) -> &[f32] {
        &self.embeddings[i * self.dim..(i + 1) * self.dim]
    }
}

pub fn cosine(a: &[f32], b: &[f32]) -> f64 {
    let dot: f64 = a.iter().zip(b).map(|(x, y)| *x as f64 * *y as f64).sum();
    let na: f64 = a.iter().map(|x| (*x as f64).powi(2)).sum::<f64>().sqrt();
    let nb: f64 = b.iter().map(|x| (*x as f64).powi(2)).sum::<f64>().sqrt();
    dot / (na * nb)
}

/// Every sentence's token ids equal the reference's.
pub fn check_token_ids(embedder: &Embedder, golden: &Golden) {
    let tokens = embedder.tokenize(&golden.texts()).expect("tokenize");
    let mismatches: Vec<usize> = (0..golden.sentences.len())
        .filter(|&i| tokens[i].ids != golden.token_ids[i])
        .collect();
    assert!(
        mismatches.is_empty(),
        "{} sentences tokenize differently, first {:?}: {:?} vs golden {:?}",
        mismatches.len(),
        golden.sentences[mismatches[0]],
        tokens[mismatches[0]].ids,
        golden.token_ids[mismatches[0]]
    );
}

/// Embeds all golden sentences in one call and checks cosine bars; returns (min, mean) cosine.
pub fn check_embeddings(embedder: &Embedder, golden: &Golden, min_bar: f64, mean_bar: f64) -> (f64, f64) {
    let vectors = embedder.embed(&golden.texts()).expect("embed");
    assert_eq!(vectors.len(), golden.sentences.len());
    assert_eq!(vectors.dim(), golden.dim);
    let cosines: Vec<f64> = (0..vectors.len())
        .map(|i| cosine(vectors.row(i), golden.row(i)))
        .collect();
    let (worst, min) = cosines
        .iter()
        .copied()
        .enumerate()
        .min_by(|a, b| a.1.total_cmp(&b.1))
        .expect("200 sentences");
    let mean = cosines.iter().sum::<f64>() / cosines.len() as f64;
    assert!(
        min >= min_bar,
        "min cosine {min:.6} < {min_bar} at sentence {worst} {:?}",
        golden.sentences[worst].chars().take(60).collect::<String>()
    );
    assert!(mean >= mean_bar, "mean cosine {mean:.6} < {mean_bar}");
    (min, mean)
}

/// The same texts embedded in one batch and one by one agree to `tol` (max abs diff).
pub fn check_batch_matches_single(embedder: &Embedder, texts: &[&str], tol: f32) {
    let batch = embedder.embed(texts).expect("embed batch");
    let mut worst = 0f32;
    for (i, text) in texts.iter().enumerate() {
        let single = embedder.embed(&[text]).expect("embed one");
        let diff = single
            .row(0)
            .iter()
            .zip(batch.row(i))
            .map(|(a, b)| (a - b).abs())
            .fold(0f32, f32::max);
        worst = worst.max(diff);
    }
    assert!(
        worst <= tol,
        "batch vs one-by-one max abs diff {worst:e} > {tol:e}"
    );
}

/// The plans run this target's SIMD matmul kernels, not tract's portable scalar ones: those give the
/// same vectors about twice as slowly, so no accuracy check would notice the loss (a kernel registry
/// the linker dropped, a build without `+simd128`).
pub fn check_simd_kernels(embedder: &Embedder) {
    embedder.embed(&["one sentence"]).expect("embed one");
    embedder
        .embed(&["a batch of", "two sentences of a few words"])
        .expect("embed two");
    let kernels = embedder.matmul_kernels();
    assert!(!kernels.is_empty(), "no matmul kernel in the compiled plans");
    let portable: Vec<&String> = kernels.iter().filter(|k| k.starts_with("generic")).collect();
    assert!(
        portable.is_empty(),
        "portable scalar kernels in use: {portable:?} (all: {kernels:?})"
    );
}
