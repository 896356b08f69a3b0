//! akidb-core's own x86-64 matmul kernels and the dispatch tier above tract's that picks them for
//! weight products:
//!
//! - [`f32`]: AVX2, 16×6, prefetching the weight stream: the exact path's products (int8 and fp32
//!   bundles) on AVX2 + FMA CPUs without AVX-512 (AMD Zen 1–3, Intel before Skylake-SP and Ice Lake);
//! - [`f32_avx512`]: AVX-512, 32×12, prefetching too: the exact path's products on AVX-512 CPUs, in
//!   place of tract's `avx512_mmm_f32_16x12`;
//! - [`i8`]: AVX2, int8 × int8 → i32, 8×4, exact: the `int8-dynamic` bundles' integer products on CPUs
//!   without AVX-512, which tract 0.23.9 can only run on its `avx2_mmm_i32_8x8`, 50–100× slower than the
//!   f32 kernel (PERF.md). AVX-512 machines keep tract's integer kernels (VNNI, AMX);
//! - [`softmax_rows`]: attention's row softmax (AVX2 + FMA), which tract 0.23.9 writes for wasm32
//!   only, registered as its `SoftmaxRows` routine.

pub mod f32;
pub mod f32_avx512;
pub mod i8;
pub mod softmax_rows;

use tract_onnx::prelude::DatumType;
use tract_onnx::tract_core::tract_linalg::isa::{native, Arch, Isa, IsaReq, IsaSet};
use tract_onnx::tract_core::tract_linalg::mmm::{Query, Suitable};
use tract_onnx::tract_core::tract_linalg::mmm_tiers::MmmTier;

/// Whether this tier speaks on a machine: AVX2 and FMA (every AVX-512 CPU has both).
fn applies(isa: &IsaSet) -> bool {
    KERNEL_ISA.satisfied_by(*isa)
}

/// What the AVX2 kernels need to run at all (their `IsaReq`, and the tier's test).
const KERNEL_ISA: IsaReq = IsaReq::ANY.needing(&[Isa::X86_64Avx2, Isa::X86_64Fma]);

/// Which of our kernels takes a weight product with this accumulator type on a CPU with `isa`, if
/// one does: f32 products go to the AVX-512 kernel where there is AVX-512F and to the AVX2 one
/// elsewhere; i32 (int8) products to the AVX2 int8 kernel only without AVX-512, where tract has no
/// usable integer kernel.
fn ours(isa: &IsaSet, accumulator: DatumType) -> Option<&'static str> {
    let avx512 = f32_avx512::KERNEL_ISA.satisfied_by(*isa);
    match accumulator {
        _ if !applies(isa) => None,
        DatumType::F32 if avx512 => Some(f32_avx512::NAME),
        DatumType::F32 => Some(f32::NAME),
        DatumType::I32 if !avx512 => Some(i8::NAME),
        _ => None,
    }
}

/// The kernel of ours that runs weight products with this accumulator type (`F32`: the exact path,
/// `I32`: the integer path) on this CPU, if one does: the tier's own choice on the instruction set
/// tract sees here (probed once, then edited by `TRACT_CPU_ISA`), so callers choosing sequence
/// buckets or the integer path agree with the kernels tract will plan.
pub fn weight_kernel_here(accumulator: DatumType) -> Option<&'static str> {
    ours(&native(), accumulator)
}

/// Whether this CPU can run a kernel needing `isa`, for the kernels' unit tests; says so on stderr
/// when it can't (such a machine would never plan it).
#[cfg(test)]
fn cpu_runs(kernel: &str, isa: IsaReq) -> bool {
    let runs = isa.satisfied_by(native());
    if !runs {
        eprintln!("NOT RUN: this CPU lacks what {kernel} needs, so it is never picked here");
    }
    runs
}

/// Claims products of more than one column whose `m` is a weight's output width (at least 64 rows),
/// for the kernel [`ours`] names. Attention's per-head products (12×32 by 32×12) and single columns
/// stay on tract's picks.
fn preferred(isa: &IsaSet, accumulator: DatumType, query: &Query, _: &[Suitable]) -> Option<&'static str> {
    match (query.m, query.n) {
        (Some(m), Some(n)) if m >= 64 && n > 1 => ours(isa, accumulator),
        _ => None,
    }
}

inventory::submit! {
    MmmTier {
        arch: Some(Arch::X86_64),
        // Above every tier of tract 0.23.9's x86-64 ladder (1–8).
        precedence: 9,
        name: "akidb-x86",
        applies,
        preferred,
    }
}

/// Keeps this module linked in: a linker may drop an object that nothing references, and with it
/// the kernels' and the tier's registrations.
pub(crate) fn keep_linked() {
    std::hint::black_box((
        preferred as *const (),
        f32::run as *const (),
        f32_avx512::run as *const (),
        i8::run as *const (),
        softmax_rows::run as *const (),
    ));
}

#[cfg(test)]
mod tests {
    use super::*;
    use tract_onnx::prelude::tvec;
    use tract_onnx::tract_core::tract_linalg::WeightType;

    fn query(weight: DatumType, m: usize, n: usize) -> Query {
        Query {
            weight: WeightType::Plain(weight),
            activation: weight,
            accumulators: tvec![if weight == DatumType::I8 {
                DatumType::I32
            } else {
                weight
            }],
            store: None,
            allow_extractor: true,
            m: Some(m),
            k: Some(384),
            n: Some(n),
        }
    }

    /// The tier claims weight products (tens of rows and up, more than one column) and leaves
    /// attention's small ones and single columns to tract.
    #[test]
    fn the_tier_claims_weight_products_only() {
        let isa = IsaSet::of_arch(Arch::X86_64)
            .with(Isa::X86_64Avx2)
            .with(Isa::X86_64Fma);
        let f32_query = |m, n| query(DatumType::F32, m, n);
        let i8_query = |m, n| query(DatumType::I8, m, n);
        assert_eq!(
            preferred(&isa, DatumType::F32, &f32_query(384, 12), &[]),
            Some(f32::NAME)
        );
        assert_eq!(
            preferred(&isa, DatumType::F32, &f32_query(1536, 512), &[]),
            Some(f32::NAME)
        );
        assert_eq!(preferred(&isa, DatumType::F32, &f32_query(12, 12), &[]), None);
        assert_eq!(preferred(&isa, DatumType::F32, &f32_query(384, 1), &[]), None);
        assert_eq!(
            preferred(&isa, DatumType::I32, &i8_query(384, 12), &[]),
            Some(i8::NAME)
        );
        assert_eq!(preferred(&isa, DatumType::I32, &i8_query(12, 12), &[]), None);
        assert_eq!(preferred(&isa, DatumType::F16, &f32_query(384, 12), &[]), None);
    }

    /// AVX2 + FMA CPUs get both AVX2 kernels; AVX-512 ones the AVX-512 f32 kernel and tract's
    /// integer kernels; CPUs without FMA none of ours.
    #[test]
    fn each_instruction_set_gets_its_kernels() {
        let avx2 = IsaSet::of_arch(Arch::X86_64).with(Isa::X86_64Avx2);
        assert_eq!(ours(&avx2, DatumType::F32), None);
        assert_eq!(ours(&avx2, DatumType::I32), None);
        let fma = avx2.with(Isa::X86_64Fma);
        assert_eq!(ours(&fma, DatumType::F32), Some(f32::NAME));
        assert_eq!(ours(&fma, DatumType::I32), Some(i8::NAME));
        let avx512 = fma.with(Isa::X86_64Avx512f);
        assert_eq!(ours(&avx512, DatumType::F32), Some(f32_avx512::NAME));
        assert_eq!(ours(&avx512, DatumType::I32), None);
    }
}
