//! The core against sentence-transformers' reference (`../shared/golden/`), on the real bundles that
//! `scripts/fetch-models.sh` builds under `models/`.

use std::path::Path;
use std::sync::OnceLock;

use akidb_core::{Bundle, Embedder};
use akidb_testkit::golden::{self, FP32_BARS, INT8_BARS, INT8_DYNAMIC_BARS};
use akidb_testkit::paths;

fn embedder(dir: &Path) -> Embedder {
    let manifest = paths::read(dir, "manifest.json");
    let bundle = Bundle::from_files(&manifest, |p| std::fs::read(dir.join(p)).ok()).expect("bundle verifies");
    Embedder::new(&bundle).expect("model loads")
}

fn int8() -> &'static Embedder {
    static E: OnceLock<Embedder> = OnceLock::new();
    E.get_or_init(|| embedder(&paths::int8_bundle()))
}

#[test]
fn token_ids_equal_the_reference_for_every_sentence() {
    golden::check_token_ids(int8(), golden::reference());
}

#[test]
fn int8_bundle_meets_the_cosine_bars() {
    let (min, mean) = golden::check_embeddings(int8(), golden::reference(), INT8_BARS);
    eprintln!("int8: min cosine {min:.6}, mean {mean:.6}");
}

/// On x86-64 CPUs with AVX2 + FMA, weight products run akidb-core's own kernels (`src/x86_kernels/`):
/// the exact path on the AVX-512 f32 kernel where there is AVX-512F and on the AVX2 one elsewhere;
/// `int8-dynamic` bundles on the AVX2 int8 kernel where there is no AVX-512 (AVX-512 machines keep
/// tract's VNNI or AMX kernels). The cosine bars of this suite are then their accuracy.
#[cfg(target_arch = "x86_64")]
#[test]
fn weight_products_run_our_kernels_exactly_where_they_apply() {
    use akidb_core::x86_kernels;
    use tract_onnx::prelude::DatumType;
    let f32_kernels = [x86_kernels::f32::NAME, x86_kernels::f32_avx512::NAME];
    let int8_kernels = [x86_kernels::i8::NAME];
    // Each bundle's own weight products; an int8-dynamic plan may hold f32 products as well (long
    // sequences' attention), which the int8 bundle's check covers.
    for (e, accumulator, ours) in [
        (int8(), DatumType::F32, &f32_kernels[..]),
        (int8_dynamic(), DatumType::I32, &int8_kernels[..]),
    ] {
        e.embed(&["a sentence of a few words", "and a second one"])
            .expect("embed two");
        let kernels = e.matmul_kernels();
        let expected = x86_kernels::weight_kernel_here(accumulator);
        eprintln!("{accumulator:?} weight products: ours here {expected:?}; kernels {kernels:?}");
        let planned: Vec<&str> = ours
            .iter()
            .copied()
            .filter(|k| kernels.iter().any(|p| p == k))
            .collect();
        assert_eq!(
            planned,
            expected.into_iter().collect::<Vec<_>>(),
            "our kernel planned where it applies and only there: {kernels:?}"
        );
    }
}

fn int8_dynamic() -> &'static Embedder {
    static E: OnceLock<Embedder> = OnceLock::new();
    E.get_or_init(|| embedder(&paths::int8_dynamic_bundle()))
}

/// An int8-dynamic bundle on the CPU names why it is off the integer path exactly when it is (what
/// `akidb serve` warns with); the exact int8 bundle never asked for it.
#[test]
fn the_integer_fallback_has_a_reason_exactly_when_the_integer_path_does_not_run() {
    let e = int8_dynamic();
    let why = e.integer_fallback();
    eprintln!(
        "int8-dynamic: integer matmuls {}, fallback {why:?}",
        e.integer_matmuls()
    );
    assert_eq!(why.is_some(), !e.integer_matmuls(), "{why:?}");
    assert_eq!(int8().integer_fallback(), None);
}

/// The integer path where this CPU runs it (x86-64 with VNNI, AMX, or AVX2 without AVX-512; aarch64);
/// elsewhere the bundle runs the exact path, and this says so rather than passing for the integer path.
#[test]
fn int8_dynamic_bundle_meets_its_cosine_bars() {
    let e = int8_dynamic();
    golden::check_token_ids(e, golden::reference());
    let (min, mean) = golden::check_embeddings(e, golden::reference(), INT8_DYNAMIC_BARS);
    let kernels = e.matmul_kernels();
    eprintln!(
        "int8-dynamic (integer: {}): min cosine {min:.6}, mean {mean:.6}; kernels {kernels:?}",
        e.integer_matmuls()
    );
    assert_eq!(
        e.integer_matmuls(),
        kernels.iter().any(|k| k.contains("i32")),
        "integer products run exactly when an i32 kernel is planned: {kernels:?}"
    );
    if cfg!(target_arch = "x86_64") && e.integer_matmuls() {
        assert!(
            !kernels
                .iter()
                .any(|k| k.starts_with("avx2_mmm_i32") || k.starts_with("generic")),
            "the integer path must not run tract's slow AVX2 or generic int8 kernels: {kernels:?}"
        );
    }
}

/// The calibrated outlier channels (`outlier_channels` in the bundle's manifest) are what gives the
/// integer path its margin over the bar: the same bundle with them left out is less exact.
#[test]
fn outlier_channels_make_the_integer_path_more_exact() {
    let dir = paths::int8_dynamic_bundle();
    let mut manifest: serde_json::Value =
        serde_json::from_slice(&paths::read(&dir, "manifest.json")).unwrap();
    let products = manifest["outlier_channels"].as_object().map_or(0, |o| o.len());
    assert!(
        products > 0,
        "scripts/fetch-models.sh calibrates the int8-dynamic bundle"
    );
    manifest.as_object_mut().unwrap().remove("outlier_channels");
    let bytes = serde_json::to_vec(&manifest).unwrap();
    let bundle = Bundle::from_files(&bytes, |p| std::fs::read(dir.join(p)).ok()).expect("bundle verifies");
    let uncalibrated = Embedder::new(&bundle).expect("model loads");
    let loose = golden::CosineBars {
        min: 0.98,
        mean: 0.995,
    };
    let (min_without, mean_without) = golden::check_embeddings(&uncalibrated, golden::reference(), loose);
    let (min, mean) = golden::check_embeddings(int8_dynamic(), golden::reference(), INT8_DYNAMIC_BARS);
    eprintln!(
        "int8-dynamic, {products} products with outlier channels: min {min:.6}, mean {mean:.6}; \
         without them: min {min_without:.6}, mean {mean_without:.6}"
    );
    if int8_dynamic().integer_matmuls() {
        assert!(
            min > min_without + 0.001,
            "min cosine {min} with outlier channels, {min_without} without"
        );
        assert!(
            mean > mean_without,
            "mean cosine {mean} with outlier channels, {mean_without} without"
        );
    } else {
        // The exact path (x86-64 AVX-512 without VNNI/AMX) reads no outlier channels.
        assert_eq!((min, mean), (min_without, mean_without));
    }
}

#[test]
fn int8_dynamic_batches_agree_with_single_sentences() {
    let golden = golden::reference();
    let texts: Vec<&str> = golden.texts().into_iter().step_by(5).collect();
    // Per-row quantisation makes a row's result independent of its batch neighbours; padding only adds rows.
    golden::check_batch_matches_single(int8_dynamic(), &texts, 1e-5);
}

#[test]
fn fp32_bundle_matches_the_reference_for_every_sentence() {
    let (min, mean) =
        golden::check_embeddings(&embedder(&paths::fp32_bundle()), golden::reference(), FP32_BARS);
    eprintln!("fp32: min cosine {min:.8}, mean {mean:.8}");
}

#[test]
fn a_batch_gives_the_same_vectors_as_one_by_one() {
    let golden = golden::reference();
    // Lengths from 2 to 256 tokens, several per bucket, in no particular order.
    let texts: Vec<&str> = golden.texts().into_iter().step_by(3).collect();
    golden::check_batch_matches_single(int8(), &texts, 1e-5);
}

#[test]
fn plans_run_simd_kernels() {
    golden::check_simd_kernels(int8());
}

#[test]
fn empty_and_whitespace_texts_get_normal_embeddings() {
    let v = int8().embed(&["", "   ", "\n\t"]).unwrap();
    for row in v.rows() {
        let norm: f32 = row.iter().map(|x| x * x).sum::<f32>().sqrt();
        assert!((norm - 1.0).abs() < 1e-4 && row.iter().all(|x| x.is_finite()));
    }
    assert_eq!(int8().tokenize(&[""]).unwrap()[0].ids, vec![101, 102]);
}
