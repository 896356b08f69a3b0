//! A whole-buffer row softmax for x86-64 (AVX2 + FMA), registered as tract's `SoftmaxRows` routine.
//!
//! Why: tract 0.23.9 writes that routine for wasm32 only. Elsewhere its `Softmax` op runs each row
//! through three 64-lane kernels (max, `exp` and sum, scale), each copying the row into an aligned
//! thread-local buffer first; attention's rows are as short as the sentence (12 numbers for the
//! bench's sentence, 864 rows a sentence), so that set-up is most of the work: with our AVX-512
//! matmul kernel in place, `Softmax` was 15% of a fp32 sentence (PERF.md). This routine does each row
//! in registers: 8-lane vectors, the last 4 numbers of a row under a mask (tract calls it only for
//! rows whose length is a multiple of 4).
//!
//! The arithmetic is tract's own `Softmax2` (the exp polynomial of its wasm routine and generic
//! kernel, here with fused multiply-adds): the row max, `exp(x - max)`, their sum, a multiply by
//! `1 / sum`. A row holding a NaN comes out all NaN, as through tract's per-row kernels.

use std::arch::x86_64::*;

use tract_onnx::tract_core::tract_linalg::isa::Arch;
use tract_onnx::tract_core::tract_linalg::routines::{Func, Routine, RoutineFactory};

/// The routine's name, as tract's routine registry reports it.
pub const NAME: &str = "akidb_avx2_softmax_rows_f32";

inventory::submit! {
    Routine {
        func: Func::SoftmaxRows,
        arch: Some(Arch::X86_64),
        isa: super::KERNEL_ISA,
        boost: 0,
        round_trip: false,
        factory: RoutineFactory::SoftmaxRowsF32 { name: NAME, run },
    }
}

/// Softmax in place over each `row_len` row of `buf`; `row_len` is a non-zero multiple of 4 and
/// `buf.len()` a multiple of it (tract's contract for the routine).
pub fn run(buf: &mut [f32], row_len: usize) {
    assert!(
        row_len > 0 && row_len.is_multiple_of(4),
        "softmax rows of {row_len} numbers: a multiple of 4 is needed"
    );
    assert!(
        std::arch::is_x86_feature_detected!("avx2") && std::arch::is_x86_feature_detected!("fma"),
        "{NAME} needs AVX2 and FMA"
    );
    for row in buf.chunks_exact_mut(row_len) {
        // SAFETY: AVX2 and FMA are present (checked above); the row is `row_len` f32s.
        unsafe { softmax_row(row) }
    }
}

/// The lanes of a row's last, 4-number step: the low half of a vector.
#[inline]
#[target_feature(enable = "avx2,fma")]
fn tail_mask() -> __m256i {
    _mm256_setr_epi32(-1, -1, -1, -1, 0, 0, 0, 0)
}

#[target_feature(enable = "avx2,fma")]
unsafe fn softmax_row(row: &mut [f32]) {
    let p = row.as_mut_ptr();
    let full = row.len() / 8 * 8;
    let tail = row.len() > full;
    let mask = tail_mask();
    // SAFETY, for every load and store below: offsets stay within the row's `len()` f32s; the tail
    // step touches only its 4 lanes through the mask.
    unsafe {
        let mut max = _mm256_set1_ps(f32::NEG_INFINITY);
        for i in (0..full).step_by(8) {
            max = _mm256_max_ps(max, _mm256_loadu_ps(p.add(i)));
        }
        if tail {
            let x = _mm256_maskload_ps(p.add(full), mask);
            let x = _mm256_blendv_ps(_mm256_set1_ps(f32::NEG_INFINITY), x, _mm256_castsi256_ps(mask));
            max = _mm256_max_ps(max, x);
        }
        let max = _mm256_set1_ps(horizontal(max, _mm_max_ps));

        let mut sum = _mm256_setzero_ps();
        for i in (0..full).step_by(8) {
            let y = exp(_mm256_sub_ps(_mm256_loadu_ps(p.add(i)), max));
            _mm256_storeu_ps(p.add(i), y);
            sum = _mm256_add_ps(sum, y);
        }
        if tail {
            let y = exp(_mm256_sub_ps(_mm256_maskload_ps(p.add(full), mask), max));
            _mm256_maskstore_ps(p.add(full), mask, y);
            sum = _mm256_add_ps(sum, _mm256_and_ps(y, _mm256_castsi256_ps(mask)));
        }
        let scale = _mm256_set1_ps(horizontal(sum, _mm_add_ps).recip());

        for i in (0..full).step_by(8) {
            _mm256_storeu_ps(p.add(i), _mm256_mul_ps(_mm256_loadu_ps(p.add(i)), scale));
        }
        if tail {
            let x = _mm256_maskload_ps(p.add(full), mask);
            _mm256_maskstore_ps(p.add(full), mask, _mm256_mul_ps(x, scale));
        }
    }
}

/// Folds a vector's 8 lanes into one with `op` (max or add).
#[inline]
#[target_feature(enable = "avx2,fma")]
fn horizontal(v: __m256, op: unsafe fn(__m128, __m128) -> __m128) -> f32 {
    // SAFETY: `op` is an SSE intrinsic; SSE is part of the x86-64 baseline.
    unsafe {
        let x = op(_mm256_castps256_ps128(v), _mm256_extractf128_ps::<1>(v));
        let x = op(x, _mm_movehl_ps(x, x));
        let x = op(x, _mm_movehdup_ps(x));
        _mm_cvtss_f32(x)
    }
}

/// `e^x` for `x` ≤ 0 (the row's numbers less its max): `2^k · q(r)` with `k = round(x / ln 2)`, `r` the
/// remainder in two parts and `q` tract's degree-5 polynomial; 0 below −103 (and for a positive `x`,
/// which no row produces), NaN for NaN.
#[inline]
#[target_feature(enable = "avx2,fma")]
fn exp(x: __m256) -> __m256 {
    let splat = _mm256_set1_ps;
    let k = _mm256_round_ps::<{ _MM_FROUND_TO_NEAREST_INT | _MM_FROUND_NO_EXC }>(_mm256_mul_ps(
        x,
        splat(std::f32::consts::LOG2_E),
    ));
    let r = _mm256_fnmadd_ps(k, splat(0.693_145_75), x);
    let r = _mm256_fnmadd_ps(k, splat(1.428_606_8e-6), r);
    let mut q = splat(8.297_654e-3);
    for c in [
        4.191_538e-2,
        1.666_757_5e-1,
        4.999_889_4e-1,
        9.999_997e-1,
        1.000_000_1,
    ] {
        q = _mm256_fmadd_ps(q, r, splat(c));
    }
    let biased = _mm256_add_epi32(_mm256_cvttps_epi32(k), _mm256_set1_epi32(127));
    let biased = _mm256_max_epi32(
        _mm256_min_epi32(biased, _mm256_set1_epi32(254)),
        _mm256_set1_epi32(1),
    );
    let two_to_k = _mm256_castsi256_ps(_mm256_slli_epi32::<23>(biased));
    let out_of_range = _mm256_or_ps(
        _mm256_cmp_ps::<_CMP_LT_OQ>(x, splat(-103.0)),
        _mm256_cmp_ps::<_CMP_GT_OQ>(x, _mm256_setzero_ps()),
    );
    _mm256_blendv_ps(_mm256_mul_ps(q, two_to_k), _mm256_setzero_ps(), out_of_range)
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Softmax of one row in f64, the reference.
    fn plain(row: &[f32]) -> Vec<f32> {
        let max = row.iter().fold(f64::NEG_INFINITY, |m, &x| m.max(x as f64));
        let exps: Vec<f64> = row.iter().map(|&x| (x as f64 - max).exp()).collect();
        let sum: f64 = exps.iter().sum();
        exps.iter().map(|e| (e / sum) as f32).collect()
    }

    fn runs_here() -> bool {
        super::super::cpu_runs(NAME, super::super::KERNEL_ISA)
    }

    /// Rows of every length tract may pass up to 68 (full steps, the masked tail, both), values of
    /// both signs and attention's masked scores (−3.4e38, −1e4), three rows a buffer so a row
    /// boundary in the wrong place shows.
    #[test]
    fn rows_match_plain_softmax() {
        if !runs_here() {
            return;
        }
        for row_len in (4..=68).step_by(4) {
            let mut buf: Vec<f32> = (0..3 * row_len)
                .map(|i| ((i as f32 * 0.37).sin() * 9.0) + (i / row_len) as f32)
                .collect();
            buf[row_len + 1] = -3.4e38;
            buf[2 * row_len + row_len - 1] = -1.0e4;
            let want: Vec<f32> = buf.chunks(row_len).flat_map(plain).collect();
            run(&mut buf, row_len);
            for (i, (g, w)) in buf.iter().zip(&want).enumerate() {
                assert!(
                    (g - w).abs() <= 2e-6 * w.max(1e-3),
                    "row_len {row_len}, element {i}: {g} against {w}"
                );
            }
            for row in buf.chunks(row_len) {
                let sum: f32 = row.iter().sum();
                assert!((sum - 1.0).abs() < 1e-5, "row_len {row_len}: a row sums to {sum}");
            }
        }
    }

    /// A NaN anywhere in a row makes that row NaN and leaves the next one alone; a row too short to
    /// divide by 4 is refused rather than read past.
    #[test]
    fn a_nan_spoils_its_row_only_and_odd_rows_are_refused() {
        if !runs_here() {
            return;
        }
        let mut buf = vec![0.5f32; 24];
        buf[10] = f32::NAN;
        run(&mut buf, 12);
        assert!(buf[..12].iter().all(|x| x.is_nan()), "{buf:?}");
        assert!(
            buf[12..].iter().all(|&x| (x - 1.0 / 12.0).abs() < 1e-7),
            "{buf:?}"
        );
        assert!(std::panic::catch_unwind(|| run(&mut [0.0; 6], 6)).is_err());
    }

    /// tract's `Softmax` op finds this routine: it is the one registered for x86-64.
    #[test]
    fn tract_picks_this_routine() {
        if !runs_here() {
            return;
        }
        let picked = tract_onnx::tract_core::tract_linalg::routines::softmax_rows_f32();
        assert_eq!(
            picked.map(|f| f as usize),
            Some(run as fn(&mut [f32], usize) as usize)
        );
    }
}
