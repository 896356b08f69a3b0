//! The golden suite, written once: sentence-transformers' reference data and the checks every backend
//! (native, the service, wasm) must pass. [`Golden::parse`] takes bytes, so it runs wherever the core runs
//! (a wasm test `include_bytes!`s the files); [`reference`] reads them from disk once per test binary.

use std::path::PathBuf;
use std::sync::OnceLock;

use akidb_core::Embedder;

/// Minimum and mean cosine against the reference that a set of vectors must reach.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct CosineBars {
    pub min: f64,
    pub mean: f64,
}

/// The int8 bundle's bars: quantisation costs a little, never more than this.
pub const INT8_BARS: CosineBars = CosineBars {
    min: 0.995,
    mean: 0.999,
};

/// The `int8-dynamic` bundle's bars: activations rounded to 8 bits per row cost more than int8 weights
/// alone (onnxruntime's `quantize_dynamic` of this model falls to min 0.96). Issue #18 asked for min 0.99,
/// mean 0.998, which the integer path met with 0.9919 / 0.9983; with the outlier channels its bundles are
/// calibrated with (`outlier_channels`) it gives 0.9951 / 0.9991, and these bars hold that gain.
pub const INT8_DYNAMIC_BARS: CosineBars = CosineBars {
    min: 0.994,
    mean: 0.999,
};

/// The fp32 bundle's bars: the same graph as sentence-transformers', so float noise only.
pub const FP32_BARS: CosineBars = CosineBars {
    min: 0.99999,
    mean: 0.99999,
};

/// The golden data directory: `$AKIDB_GOLDEN`, else `../shared/golden` beside the workspace.
pub fn dir() -> PathBuf {
    std::env::var_os("AKIDB_GOLDEN")
        .map(PathBuf::from)
        .unwrap_or_else(|| crate::paths::workspace().join("../shared/golden"))
}

/// The golden data of [`dir`], read and parsed once per process.
pub fn reference() -> &'static Golden {
    static GOLDEN: OnceLock<Golden> = OnceLock::new();
    GOLDEN.get_or_init(|| {
        let dir = dir();
        let read = |f: &str| {
            std::fs::read(dir.join(f)).unwrap_or_else(|e| {
                panic!(
                    "{}/{f}: {e} (golden data: set AKIDB_GOLDEN or put shared/ beside the workspace)",
                    dir.display()
                )
            })
        };
        Golden::parse(
            &read("sentences.json"),
            &read("embeddings.f32"),
            &read("token_ids.json"),
        )
    })
}

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

/// Embeds all golden sentences in one call and checks them against `bars`; returns (min, mean) cosine.
pub fn check_embeddings(embedder: &Embedder, golden: &Golden, bars: CosineBars) -> (f64, f64) {
    let vectors = embedder.embed(&golden.texts()).expect("embed");
    assert_eq!(vectors.len(), golden.sentences.len());
    assert_eq!(vectors.dim(), golden.dim);
    check_vectors(golden, (0..vectors.len()).map(|i| vectors.row(i)), bars)
}

/// Checks vectors for the golden sentences, in order from the first (from any backend: the core, a
/// service's JSON) against `bars`, naming the worst sentence; returns (min, mean) cosine.
pub fn check_vectors<'a>(
    golden: &Golden,
    vectors: impl IntoIterator<Item = &'a [f32]>,
    bars: CosineBars,
) -> (f64, f64) {
    let cosines: Vec<f64> = vectors
        .into_iter()
        .enumerate()
        .map(|(i, v)| cosine(v, golden.row(i)))
        .collect();
    let (worst, min) = cosines
        .iter()
        .copied()
        .enumerate()
        .min_by(|a, b| a.1.total_cmp(&b.1))
        .expect("at least one vector");
    let mean = cosines.iter().sum::<f64>() / cosines.len() as f64;
    assert!(
        min >= bars.min,
        "min cosine {min:.6} < {} at sentence {worst} {:?}",
        bars.min,
        golden.sentences[worst].chars().take(60).collect::<String>()
    );
    assert!(mean >= bars.mean, "mean cosine {mean:.6} < {}", bars.mean);
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

/// The largest element-wise difference of two vectors (how two backends' answers for one text compare).
pub fn max_abs_diff(a: &[f32], b: &[f32]) -> f32 {
    assert_eq!(a.len(), b.len(), "vectors of different lengths");
    a.iter().zip(b).map(|(x, y)| (x - y).abs()).fold(0.0, f32::max)
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Three sentences of dimension 2, with reference vectors along the axes and the diagonal.
    fn tiny() -> Golden {
        let rows: [[f32; 2]; 3] = [[1.0, 0.0], [0.0, 1.0], [0.6, 0.8]];
        let bytes: Vec<u8> = rows.iter().flatten().flat_map(|x| x.to_le_bytes()).collect();
        Golden::parse(
            br#"["a", "b", "c"]"#,
            &bytes,
            br#"{"token_ids": [[101, 1037, 102], [101, 1038, 102], [101, 1039, 102]]}"#,
        )
    }

    #[test]
    fn parse_reads_rows_of_the_inferred_dimension() {
        let g = tiny();
        assert_eq!((g.dim, g.texts()), (2, vec!["a", "b", "c"]));
        assert_eq!(g.row(2), &[0.6, 0.8]);
        assert_eq!(g.token_ids[1], vec![101, 1038, 102]);
    }

    #[test]
    fn cosine_is_scale_free_and_signed() {
        assert!((cosine(&[3.0, 4.0], &[0.6, 0.8]) - 1.0).abs() < 1e-12);
        assert!(cosine(&[1.0, 0.0], &[0.0, 1.0]).abs() < 1e-12);
        assert!((cosine(&[1.0, 0.0], &[-2.0, 0.0]) + 1.0).abs() < 1e-12);
    }

    #[test]
    fn vectors_are_held_to_both_bars_and_the_worst_sentence_is_named() {
        let g = tiny();
        let exact: Vec<&[f32]> = (0..3).map(|i| g.row(i)).collect();
        let (min, mean) = check_vectors(&g, exact, INT8_BARS);
        assert!(
            (min - 1.0).abs() < 1e-12 && (mean - 1.0).abs() < 1e-12,
            "{min} {mean}"
        );
        // Sentence "b" off by 0.1 rad: cosine cos(0.1) = 0.995004, the mean (2 + 0.995004) / 3.
        let b_off = [0.1f32.sin(), 0.1f32.cos()];
        let (min, mean) = check_vectors(
            &g,
            [g.row(0), &b_off, g.row(2)],
            CosineBars {
                min: 0.995,
                mean: 0.998,
            },
        );
        assert!(
            (min - 0.995004).abs() < 1e-6 && (mean - 0.998335).abs() < 1e-6,
            "{min} {mean}"
        );
        let failed = std::panic::catch_unwind(|| check_vectors(&g, [g.row(0), &b_off, g.row(2)], INT8_BARS))
            .expect_err("0.998335 mean passed a 0.999 bar");
        let message = failed.downcast_ref::<String>().unwrap();
        assert!(message.contains("mean cosine 0.998335 < 0.999"), "{message}");
        let failed =
            std::panic::catch_unwind(|| check_vectors(&g, [g.row(0), g.row(1), &[0.8, 0.6]], INT8_BARS))
                .expect_err("cosine 0.96 passed a 0.995 bar");
        let message = failed.downcast_ref::<String>().unwrap();
        assert!(message.contains("at sentence 2 \"c\""), "{message}");
    }

    #[test]
    fn max_abs_diff_is_the_largest_elementwise_gap() {
        assert_eq!(max_abs_diff(&[1.0, -2.0, 0.5], &[1.0, -1.5, 0.25]), 0.5);
    }
}
